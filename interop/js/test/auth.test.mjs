// The token-in-subprotocol check (auth-check.mjs) against RPCWS_AUTH_URL, which the Go
// tests in interop/ set; skipped without it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../rpcws.js';
import { checkToken } from './auth-check.mjs';

const url = process.env.RPCWS_AUTH_URL;

test('a token travels in Sec-WebSocket-Protocol', { skip: !url && 'RPCWS_AUTH_URL is not set' }, async () => {
  await checkToken({ url, assert, connect });
});
