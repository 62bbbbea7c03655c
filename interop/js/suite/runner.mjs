// Runs the conformance checks, scenarios and transcripts, against one server URL and
// reports each as pass, fail or skip. Used by conformance.mjs (Node) and the browser
// test page; the Node test files run the same pieces under node:test.

import { connect } from '../rpcws.js';
import { openRaw } from './frames.mjs';
import { scenarios, probes } from './scenarios.mjs';
import { parseTranscript, replayTranscript } from './transcripts.mjs';

/**
 * Asks the target for each type; resolves with the set of those it answers
 * MethodNotFound. Any other answer, success or error, means the method exists.
 * @param {string} url
 * @param {string[]} types
 * @returns {Promise<Set<string>>}
 */
export async function probe(url, types) {
  const client = await connect(url, { timeoutMs: 5000 });
  try {
    const missing = new Set();
    await Promise.all(
      [...new Set(types)].map((type) =>
        client.request(type, probes[type] ?? null).catch((err) => {
          if (err.code === 'MethodNotFound') missing.add(type);
          else if (err.code === 'Timeout' || err.code === 'Disconnected') throw err;
        }),
      ),
    );
    return missing;
  } finally {
    await client.close();
  }
}

/**
 * Runs one scenario against url, bounded by its timeout, and closes every connection
 * it opened. Rejects with the scenario's failure.
 * @param {(typeof scenarios)[number]} scenario
 * @param {{url: string, assert: any}} env
 */
export async function runScenario(scenario, { url, assert }) {
  const opened = [];
  const t = {
    url,
    assert,
    /** A client connected to the target; options as for connect. */
    connect: async (options) => {
      const client = await connect(url, options);
      opened.push(() => client.close());
      return client;
    },
    /** A raw WebSocket to the target. */
    raw: async () => {
      const conn = await openRaw(url);
      opened.push(() => conn.close());
      return conn;
    },
  };
  const limit = scenario.timeoutMs ?? 15_000;
  let timer;
  try {
    await Promise.race([
      scenario.run(t),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`did not finish within ${limit} ms`)), limit);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await Promise.all(opened.map((close) => close().catch(() => {})));
  }
}

/**
 * Runs every check and calls report({kind, name, status, reason?, ms}) after each.
 * Resolves with the list of results.
 * @param {object} o
 * @param {string} o.url Target, e.g. ws://127.0.0.1:8080/rpc.
 * @param {any} o.assert node:assert/strict or suite/assert.mjs.
 * @param {{name: string, text: string}[]} [o.transcripts]
 * @param {boolean} [o.slow] Run the slow scenarios too (the 15 s lesson exercise).
 * @param {RegExp} [o.filter] Only checks whose "kind name" matches.
 * @param {(result: object) => void} [o.report]
 */
export async function runChecks({ url, assert, transcripts = [], slow = false, filter, report = () => {} }) {
  const results = [];
  const add = (r) => {
    results.push(r);
    report(r);
  };
  const chosen = (kind, name) => !filter || filter.test(`${kind} ${name}`);

  const wanted = scenarios.filter((s) => chosen('scenario', s.name));
  let missing = new Set();
  try {
    missing = await probe(url, wanted.flatMap((s) => s.needs));
  } catch (err) {
    add({ kind: 'probe', name: url, status: 'fail', reason: String(err?.message ?? err), ms: 0 });
    return results;
  }

  for (const s of wanted) {
    const lacking = s.needs.filter((type) => missing.has(type));
    if (lacking.length > 0) {
      add({ kind: 'scenario', name: s.name, status: 'skip', reason: `target lacks ${lacking.join(', ')}`, ms: 0 });
      continue;
    }
    if (s.slow && !slow) {
      add({ kind: 'scenario', name: s.name, status: 'skip', reason: 'slow (run with slow checks on)', ms: 0 });
      continue;
    }
    const start = performance.now();
    try {
      await runScenario(s, { url, assert });
      add({ kind: 'scenario', name: s.name, status: 'pass', ms: performance.now() - start });
    } catch (err) {
      add({ kind: 'scenario', name: s.name, status: 'fail', reason: describe(err), ms: performance.now() - start });
    }
  }

  for (const { name, text } of transcripts) {
    if (!chosen('transcript', name)) continue;
    const start = performance.now();
    try {
      const r = await replayTranscript(url, parseTranscript(text));
      add({ kind: 'transcript', name, ...r, ms: performance.now() - start });
    } catch (err) {
      add({ kind: 'transcript', name, status: 'fail', reason: describe(err), ms: performance.now() - start });
    }
  }
  return results;
}

function describe(err) {
  if (err instanceof Error) return err.message || String(err);
  return String(err);
}
