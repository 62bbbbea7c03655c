// Recovery end to end in Node (recovery-check.mjs) against the Go server of
// interop/recovery_test.go, which sets RPCWS_RECOVERY_URL (its WebSocket endpoint
// through a proxy it cuts) and RPCWS_RECOVERY_CONTROL (its /run); skipped without them.
// The replica restart comes last: it happens once per server.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../rpcws.js';
import { checkRecovery } from './recovery-check.mjs';

const url = process.env.RPCWS_RECOVERY_URL;
const control = process.env.RPCWS_RECOVERY_CONTROL;
const skip = !(url && control) && 'RPCWS_RECOVERY_URL or RPCWS_RECOVERY_CONTROL is not set';

// The server keeps 50 events per topic: an outage of 20 is recovered, one of 80 is not.
test('recovery: every event once, in order, across a cut', { skip, timeout: 45_000 }, async () => {
  await checkRecovery({ url, control, assert, connect, topic: 'node-recovered', run: { count: 60, cut: 20, resume: 40 } });
});

test('recovery: past the history, one resync and every live event after it', { skip, timeout: 45_000 }, async () => {
  await checkRecovery({ url, control, assert, connect, topic: 'node-lost', run: { count: 120, cut: 10, resume: 90 }, lost: true });
});

test('recovery: across a replica restart, every event once, in order', { skip, timeout: 45_000 }, async () => {
  await checkRecovery({ url, control, assert, connect, topic: 'node-restart', run: { count: 60, cut: 20, resume: 40, mode: 'restart' } });
});
