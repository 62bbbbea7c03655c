#!/usr/bin/env node
// Conformance checks for any server of the rpcws protocol.
//
//   node interop/js/conformance.mjs [options] ws://127.0.0.1:8080/rpc
//
// Runs the interop scenarios (suite/scenarios.mjs) and replays the golden transcripts
// (testdata/transcripts/*.txt) against the server, prints one PASS, FAIL or SKIP line
// per check and a closing count, and exits 1 if any check failed. The checks assume the
// reference services of PROTOCOL.md; a check that needs a service the target answers
// MethodNotFound is skipped, not passed.
//
// Options:
//   --quick             skip the slow checks (the lesson's exercise, which takes 15 s)
//   --filter REGEXP     run only the checks whose "scenario NAME" / "transcript FILE" matches
//   --transcripts DIR   read transcripts from DIR instead of testdata/transcripts
//
// Needs Node 20 or later; on Node 20 it restarts itself with --experimental-websocket.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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

const usage = 'usage: node conformance.mjs [--quick] [--filter REGEXP] [--transcripts DIR] ws://host:port/rpc';
let opts;
try {
  opts = parseArgs({
    allowPositionals: true,
    options: {
      quick: { type: 'boolean', default: false },
      filter: { type: 'string' },
      transcripts: { type: 'string', default: fileURLToPath(new URL('../../testdata/transcripts/', import.meta.url)) },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  console.error(`conformance: ${err.message}\n${usage}`);
  process.exit(2);
}
if (opts.values.help || opts.positionals.length !== 1) {
  console.error(usage);
  process.exit(opts.values.help ? 0 : 2);
}
const url = opts.positionals[0];

// Imported only now: the client needs the WebSocket that the restart above provides.
const { default: assert } = await import('node:assert/strict');
const { runChecks } = await import('./suite/runner.mjs');

let transcripts = [];
try {
  const dir = opts.values.transcripts;
  transcripts = readdirSync(dir)
    .filter((n) => n.endsWith('.txt'))
    .sort()
    .map((name) => ({ name, text: readFileSync(join(dir, name), 'utf8') }));
} catch (err) {
  console.error(`conformance: no transcripts: ${err.message}`);
}

const counts = { pass: 0, fail: 0, skip: 0 };
const results = await runChecks({
  url,
  assert,
  transcripts,
  slow: !opts.values.quick,
  filter: opts.values.filter === undefined ? undefined : new RegExp(opts.values.filter),
  report(r) {
    counts[r.status]++;
    const ms = r.status === 'skip' ? '' : ` (${Math.round(r.ms)} ms)`;
    console.log(`${r.status.toUpperCase()}  ${r.kind} ${r.name}${ms}`);
    if (r.reason) console.log(`      ${r.reason.replaceAll('\n', '\n      ')}`);
  },
});
if (results.length === 0) {
  console.error('conformance: no check matched');
  process.exit(1);
}
console.log(`conformance: ${counts.pass} passed, ${counts.fail} failed, ${counts.skip} skipped`);
process.exit(counts.fail > 0 ? 1 : 0);
