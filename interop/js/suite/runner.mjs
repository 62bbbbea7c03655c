// Runs the conformance checks, scenarios and transcripts, against one server URL and
// reports each as pass, fail or skip. Used by conformance.mjs (Node) and the browser
// test page; the Node test files run the same pieces under node:test.

import { connect } from '../rpcws.js';
import { openRaw } from './frames.mjs';
import { scenarios, probes } from './scenarios.mjs';
import { historyScenarios, historyNeeds, historyProbes, detectHistory } from './history.mjs';
import { parseTranscript, replayTranscript } from './transcripts.mjs';
import { compareFrame } from './compare.mjs';
import { rules, historyRules, SkipCheck } from './rules.mjs';

/** The limits of PROTOCOL.md's "Frames" that rpcws documents; a server may document others. */
export const defaultLimits = Object.freeze({ maxFrame: 1 << 20, maxType: 256, maxId: 1024 });

/** Whether this runs in Node, where the checks that write raw bytes (node: true) can run. */
export const inNode = typeof process === 'object' && typeof process.versions?.node === 'string';

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
        client.request(type, probes[type] ?? historyProbes[type] ?? null).catch((err) => {
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
 * @param {{url: string, assert: any, strict?: boolean, limits?: Partial<typeof defaultLimits>}} env
 *   strict: frames compared with t.frame must be the reference server's exact bytes (the
 *   default: this project's tests run the scenarios against its own servers); limits:
 *   the target's documented limits (t.limits), rpcws's by default.
 */
export async function runScenario(scenario, { url, assert, strict = true, limits, historySize = 100 }) {
  const opened = [];
  const t = {
    url,
    assert,
    strict,
    historySize,
    limits: { ...defaultLimits, ...limits },
    /** Compares a frame with the reference server's (suite/compare.mjs). */
    frame: (got, want, options = {}) => compareFrame(got, want, { strict, ...options }),
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
    /** A WebSocket on a bare socket that writes any bytes (suite/rawbytes.mjs, Node only). */
    bytes: async (target = url) => {
      if (!inNode) throw new SkipCheck('needs Node: a browser cannot write a text frame that is not UTF-8');
      const { openBytes } = await import('./rawbytes.mjs');
      const conn = await openBytes(target);
      opened.push(() => conn.close());
      return conn;
    },
    /**
     * A raw WebSocket to another URL (the target's with another query, say) that reads
     * a first rpcws.session frame as any other.
     */
    rawAt: async (target) => {
      const conn = await openRaw(target, { keepSession: true });
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
 * Runs every check and calls report({kind, name, check, rule, status, reason?, ms})
 * after each: kind is "scenario" or "transcript", name what the check shows (a
 * transcript's file name), check its short name ("id-echo", "transcript/id_kinds"),
 * rule the PROTOCOL.md rule it holds or, on failure, the one the server broke.
 * Resolves with the list of results.
 * @param {object} o
 * @param {string} o.url Target, e.g. ws://127.0.0.1:8080/rpc.
 * @param {any} o.assert node:assert/strict or suite/assert.mjs.
 * @param {{name: string, text: string}[]} [o.transcripts]
 * @param {boolean} [o.slow] Run the slow scenarios too (the 15 s lesson exercise).
 * @param {boolean} [o.strict] Compare frames byte for byte with the reference server's (the
 *   default); false: judge only what PROTOCOL.md pins.
 * @param {RegExp} [o.filter] Only checks whose "kind name" matches.
 * @param {(check: string) => boolean} [o.select] Only checks whose short name it accepts.
 * @param {Partial<typeof defaultLimits>} [o.limits] The target's documented limits.
 * @param {'off' | 'auto' | 'on'} [o.history] The history level (suite/history.mjs): left
 *   out (the default), run if the target keeps history and skipped if not, or required.
 * @param {number} [o.historySize] How many events per topic the target keeps (100).
 * @param {(result: object) => void} [o.report]
 */
export async function runChecks({ url, assert, transcripts = [], slow = false, strict = true, filter, select = () => true, limits, history = 'off', historySize = 100, report = () => {} }) {
  const results = [];
  const add = (r) => {
    results.push(r);
    report(r);
  };
  const chosen = (kind, name, check) => (!filter || filter.test(`${kind} ${name}`)) && select(check);
  const env = { url, assert, strict, limits, historySize, slow, add };

  // A browser leaves out the checks that need Node; it does not report them either.
  const wanted = scenarios.filter((s) => (inNode || !s.node) && chosen('scenario', s.name, s.check));
  const scripts = [];
  for (const { name, text } of transcripts) {
    const check = `transcript/${name.replace(/\.txt$/, '')}`;
    if (!chosen('transcript', name, check)) continue;
    try {
      const steps = parseTranscript(text);
      scripts.push({ name, check, steps, rule: steps.rule ?? rules.textObject });
    } catch (err) {
      add({ kind: 'transcript', name, check, rule: rules.textObject, status: 'fail', reason: `cannot read the transcript: ${describe(err)}`, ms: 0 });
    }
  }
  let missing = new Set();
  try {
    missing = await probe(url, wanted.flatMap((s) => s.needs));
  } catch (err) {
    add({ kind: 'probe', name: url, check: 'probe', rule: rules.textObject, status: 'fail', reason: String(err?.message ?? err), ms: 0 });
    return results;
  }

  await runList(wanted, missing, env);

  for (const { name, check, steps, rule } of scripts) {
    const base = { kind: 'transcript', name, check, rule };
    const start = performance.now();
    try {
      const r = await replayTranscript(url, steps, { strict });
      add({ ...base, ...r, ms: performance.now() - start });
    } catch (err) {
      add({ ...base, rule: err?.rule ?? rule, status: 'fail', reason: describe(err), ms: performance.now() - start });
    }
  }

  if (history !== 'off') {
    await runHistoryLevel(
      historyScenarios.filter((s) => chosen('scenario', s.name, s.check)),
      history === 'on',
      env,
    );
  }
  return results;
}

/**
 * Runs the scenarios of list, each skipped if the target lacks a type it needs (in
 * missing) or if it is slow and env.slow is not set, and adds each result.
 */
async function runList(list, missing, { url, assert, strict, limits, historySize, slow, add }) {
  for (const s of list) {
    const base = { kind: 'scenario', name: s.name, check: s.check, rule: s.rule };
    const lacking = s.needs.filter((type) => missing.has(type));
    if (lacking.length > 0) {
      add({ ...base, status: 'skip', reason: `target lacks ${lacking.join(', ')}`, ms: 0 });
      continue;
    }
    if (s.slow && !slow) {
      add({ ...base, status: 'skip', reason: 'slow (run with slow checks on)', ms: 0 });
      continue;
    }
    const start = performance.now();
    try {
      await runScenario(s, { url, assert, strict, limits, historySize });
      add({ ...base, status: 'pass', ms: performance.now() - start });
    } catch (err) {
      if (err instanceof SkipCheck) add({ ...base, status: 'skip', reason: err.message, ms: 0 });
      else add({ ...base, rule: err?.rule ?? s.rule, status: 'fail', reason: describe(err), ms: performance.now() - start });
    }
  }
}

/**
 * Runs the history level's scenarios of list if the target keeps history (its first
 * frame is rpcws.session); if not, skips each, saying why, or, when required, fails it.
 */
async function runHistoryLevel(list, required, env) {
  if (list.length === 0) return;
  let why = await withoutHistory(env.url); // {skip, fail}: the reasons to report
  let missing;
  if (why === undefined) {
    try {
      missing = await probe(env.url, historyNeeds);
    } catch (err) {
      const reason = `cannot probe for ${historyNeeds.join(', ')}: ${describe(err)}`;
      why = { skip: reason, fail: reason };
    }
  }
  if (why === undefined) return runList(list, missing, env);
  for (const s of list) {
    const base = { kind: 'scenario', name: s.name, check: s.check, ms: 0 };
    if (required) env.add({ ...base, rule: historyRules.session, status: 'fail', reason: why.fail });
    else env.add({ ...base, rule: s.rule, status: 'skip', reason: why.skip });
  }
}

/**
 * Why the history level cannot run against url, as the reasons to report when it is
 * skipped and when it is failed; undefined when it can run.
 * @param {string} url
 * @returns {Promise<{skip: string, fail: string} | undefined>}
 */
async function withoutHistory(url) {
  try {
    const { history, first } = await detectHistory(url);
    if (history) return undefined;
    const skip = 'the target keeps no history: its first frame is not rpcws.session';
    return { skip, fail: `${skip} but ${first.slice(0, 120)}` };
  } catch (err) {
    const reason = `cannot tell whether the target keeps history: ${describe(err)}`;
    return { skip: reason, fail: reason };
  }
}

function describe(err) {
  if (err instanceof Error) return err.message || String(err);
  return String(err);
}
