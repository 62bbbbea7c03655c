#!/usr/bin/env node
// Conformance checks for any server of the rpcws protocol (PROTOCOL.md).
//
//   npx rpcws-conformance [options] ws://127.0.0.1:8080/rpc
//   node interop/js/conformance.mjs [options] ws://127.0.0.1:8080/rpc
//
// Runs the interop scenarios (suite/scenarios.mjs) and replays the golden transcripts
// (testdata/transcripts/*.txt) against the server's reference services (PROTOCOL.md, "The
// reference service"), and prints one PASS, FAIL or SKIP line per check and a closing
// count. A check that needs a service the target answers MethodNotFound is skipped, not
// passed. Every check holds one rule of PROTOCOL.md; a failure names the rule broken.
//
// Two levels:
//   default     what PROTOCOL.md pins: frame shapes and field order, codes, ids echoed as
//               the raw text that arrived, reply types exactly as sent, data as the same
//               JSON value (key order, number and string spelling free), messages as
//               strings whose wording is the server's (where the transcripts mark them
//               free), close codes, concurrency, notifications, the reference services'
//               results. For any implementation.
//   --strict    also the reference server's exact bytes, as the golden transcripts hold
//               them: for this project's own servers.
// and, for servers that keep history (PROTOCOL.md, "Sessions and recovery"), the history
// level (history/*): the session frame, positions on topic events, rpcws.joined and
// rpcws.left, and rpcws.recover (replay, resync, one-time sessions), through the
// reference cluster server's topic.join, topic.leave and topic.publish. It runs when the
// target's first frame is rpcws.session and is skipped, saying so, when not.
//
// Options:
//   --strict            compare frames byte for byte with the reference server's
//   --json              one JSON record per check on stdout, a line each:
//                       {"name","title","rule":{"section","text"},"verdict","detail","ms"}
//   --only NAMES        run only these checks (comma-separated short names; * matches
//                       any run of characters, e.g. "transcript/*"); may be repeated
//   --skip NAMES        do not run these checks; may be repeated
//   --list              list the checks and their rules, run nothing
//   --quick             skip the slow checks (the lesson's exercise, which takes 15 s)
//   --filter REGEXP     run only the checks whose "scenario TITLE" / "transcript FILE" matches
//   --transcripts DIR   read transcripts from DIR instead of the bundled ones
//   --max-frame BYTES   the frame limit the server documents (default 1048576, 1 MiB)
//   --max-type BYTES    the limit on a request's type the server documents (default 256)
//   --max-id BYTES      the limit on a request's id, its raw JSON text (default 1024)
//   --history           require the history level: a target that keeps no history fails it
//   --history-size N    the events per topic the target keeps (default 100, the cluster
//                       server's): a check publishes three times as many to outrun them
//
// Exit code: 0 when no check failed (skipped checks do not fail a run), 1 when one did
// or when no check matched, 2 on a usage error. Needs Node 20 or later; on Node 20 it
// restarts itself with --experimental-websocket.

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

if (typeof globalThis.WebSocket !== 'function') {
  if (process.env.RPCWS_CONFORMANCE_REEXEC) {
    console.error('conformance: this Node has no WebSocket, even with --experimental-websocket; use Node 20 or later');
    process.exit(2);
  }
  const args = ['--experimental-websocket', '--no-warnings', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', env: { ...process.env, RPCWS_CONFORMANCE_REEXEC: '1' } });
  process.exit(r.status ?? 2);
}

const usage = `usage: rpcws-conformance [--strict] [--json] [--only NAMES] [--skip NAMES] [--list] [--quick]
                         [--filter REGEXP] [--transcripts DIR] [--max-frame BYTES] [--max-type BYTES]
                         [--max-id BYTES] [--history] [--history-size N] ws://host:port/rpc`;
let opts;
try {
  opts = parseArgs({
    allowPositionals: true,
    options: {
      strict: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true, default: [] },
      skip: { type: 'string', multiple: true, default: [] },
      list: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      filter: { type: 'string' },
      transcripts: { type: 'string' },
      'max-frame': { type: 'string', default: '1048576' },
      'max-type': { type: 'string', default: '256' },
      'max-id': { type: 'string', default: '1024' },
      history: { type: 'boolean', default: false },
      'history-size': { type: 'string', default: '100' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  console.error(`conformance: ${err.message}\n${usage}`);
  process.exit(2);
}
const { values } = opts;
if (values.help || (opts.positionals.length !== 1 && !values.list)) {
  (values.help ? console.log : console.error)(usage);
  process.exit(values.help ? 0 : 2);
}
const url = opts.positionals[0];

// The limits the server documents (PROTOCOL.md, "Frames"): whole numbers of bytes.

const numbers = {};
for (const [flag, key, least] of [['max-frame', 'maxFrame', 64], ['max-type', 'maxType', 3], ['max-id', 'maxId', 3], ['history-size', 'historySize', 1]]) {
  const n = Number(values[flag]);
  if (!Number.isSafeInteger(n) || n < least) {
    console.error(`conformance: --${flag}: want a whole number of bytes, at least ${least}; got ${values[flag]}\n${usage}`);
    process.exit(2);
  }
  numbers[key] = n;
}
const { historySize, ...limits } = numbers;

// Imported only now: the client needs the WebSocket that the restart above provides.
const { default: assert } = await import('node:assert/strict');
const { runChecks } = await import('./suite/runner.mjs');
const { scenarios } = await import('./suite/scenarios.mjs');
const { historyScenarios } = await import('./suite/history.mjs');
const { parseTranscript } = await import('./suite/transcripts.mjs');
const { ruleLine, rules } = await import('./suite/rules.mjs');

// Transcripts: --transcripts, else those bundled with the published package, else the
// repository's.
const bundled = fileURLToPath(new URL('./transcripts/', import.meta.url));
const dir = values.transcripts ?? (existsSync(bundled) ? bundled : fileURLToPath(new URL('../../testdata/transcripts/', import.meta.url)));
let transcripts = [];
try {
  transcripts = readdirSync(dir)
    .filter((n) => n.endsWith('.txt'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
} catch (err) {
  console.error(`conformance: no transcripts: ${err.message}`);
}

// --only and --skip: comma-separated short names, * a wildcard.
const patterns = (list) =>
  list
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean)
    .map((p) => new RegExp(`^${p.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
const only = patterns(values.only);
const skip = patterns(values.skip);
const select = (check) => (only.length === 0 || only.some((re) => re.test(check))) && !skip.some((re) => re.test(check));

let filter;
try {
  filter = values.filter === undefined ? undefined : new RegExp(values.filter);
} catch (err) {
  console.error(`conformance: --filter: ${err.message}`);
  process.exit(2);
}

if (values.list) {
  const all = [
    ...scenarios.map((s) => ({ name: s.check, title: s.name, rule: s.rule })),
    ...transcripts.map(({ name, text }) => {
      let rule = rules.textObject;
      try {
        rule = parseTranscript(text).rule ?? rule;
      } catch {
        // Reported when run.
      }
      return { name: `transcript/${name.replace(/\.txt$/, '')}`, title: `transcript ${name}`, rule };
    }),
    ...historyScenarios.map((s) => ({ name: s.check, title: s.name, rule: s.rule })),
  ].filter((c) => select(c.name));
  for (const c of all) {
    if (values.json) console.log(JSON.stringify(c));
    else console.log(`${c.name}\n      ${c.title}\n      rule: ${ruleLine(c.rule)}`);
  }
  process.exit(0);
}

const counts = { pass: 0, fail: 0, skip: 0 };
const results = await runChecks({
  url,
  assert,
  transcripts,
  strict: values.strict,
  slow: !values.quick,
  filter,
  select,
  limits,
  history: values.history ? 'on' : 'auto',
  historySize,
  report(r) {
    counts[r.status]++;
    const title = r.kind === 'transcript' ? `transcript ${r.name}` : r.name;
    if (values.json) {
      const record = { name: r.check, title, rule: r.rule, verdict: r.status, detail: r.reason ?? '', ms: Math.round(r.ms) };
      console.log(JSON.stringify(record));
      return;
    }
    const ms = r.status === 'skip' ? '' : ` (${Math.round(r.ms)} ms)`;
    console.log(`${r.status.toUpperCase()}  ${r.check}  ${title}${ms}`);
    if (r.status === 'fail') console.log(`      rule: ${ruleLine(r.rule)}`);
    if (r.reason) console.log(`      ${r.reason.replaceAll('\n', '\n      ')}`);
  },
});
if (results.length === 0) {
  console.error('conformance: no check matched');
  process.exit(1);
}
const summary = `conformance: ${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped`;
if (values.json) console.error(summary);
else console.log(summary);
process.exit(counts.fail > 0 ? 1 : 0);
