// The history level of the conformance tool (suite/history.mjs) against the scripted
// server of test/history-server.mjs: it passes a server that keeps the rules, is
// skipped for a server that keeps no history (failed when required), and fails each
// fault of the scripted server on the check and rule the fault breaks.
//
//   node --experimental-websocket --test test/history.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runChecks } from '../suite/runner.mjs';
import { historyScenarios } from '../suite/history.mjs';
import { startHistoryServer, faults } from './history-server.mjs';

const size = 10;
const onlyHistory = (check) => check.startsWith('history/');

/** Runs the history level against a scripted server started with options. */
async function level(options, history = 'on') {
  const server = await startHistoryServer({ size, ...options });
  try {
    return await runChecks({ url: server.url, assert, history, historySize: size, select: onlyHistory });
  } finally {
    await server.close();
  }
}

test('a server that keeps the rules passes every check of the level', async () => {
  const results = await level({});
  assert.deepEqual(
    results.map((r) => [r.check, r.status, r.reason]),
    historyScenarios.map((s) => [s.check, 'pass', undefined]),
  );
});

test('a server that keeps no history: the level is skipped, or fails when required', async () => {
  for (const r of await level({ history: false }, 'auto')) {
    assert.deepEqual([r.status, r.reason], ['skip', 'the target keeps no history: its first frame is not rpcws.session'], r.check);
  }
  for (const r of await level({ history: false }, 'on')) {
    assert.equal(r.status, 'fail', r.check);
    assert.equal(r.rule.name, 'session', r.check);
  }
});

test('the level is left out unless asked for', async () => {
  assert.deepEqual(await level({}, 'off'), []);
});

for (const [fault, { check, rule }] of Object.entries(faults)) {
  test(`fault ${fault}: ${check} fails on rule ${rule}`, async () => {
    const results = await level({ fault });
    const r = results.find((x) => x.check === check);
    assert.equal(r?.status, 'fail', `${check}: ${r?.status} ${r?.reason ?? ''}`);
    assert.equal(r.rule.name, rule, r.reason);
  });
}
