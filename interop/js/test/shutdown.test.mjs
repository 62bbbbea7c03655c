// A server that shuts down gracefully: the request in flight gets its reply, then the
// connection closes with 1001 and the client reports it. RPCWS_URL is the server and
// RPCWS_SHUTDOWN_URL an endpoint that, POSTed to, starts its shutdown; the Go test in
// interop/ sets both. Skipped without them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from '../rpcws.js';

const url = process.env.RPCWS_URL;
const shutdownURL = process.env.RPCWS_SHUTDOWN_URL;

test('graceful shutdown: the reply in flight arrives, then close 1001', { skip: !(url && shutdownURL) && 'RPCWS_URL or RPCWS_SHUTDOWN_URL is not set', timeout: 20_000 }, async () => {
  const client = await connect(url);
  const disconnected = new Promise((resolve) => client.on('disconnect', resolve));
  const held = client.request('demo.sleep', { ms: 500 });
  // The server reads a connection's frames in order: once this reply is here, it has
  // read the sleep too, which is now in flight.
  assert.equal(await client.request('demo.echo', 'read'), 'read');
  const res = await fetch(shutdownURL, { method: 'POST' });
  assert.equal(res.status, 202);
  assert.deepEqual(await held, { ms: 500 });
  const info = await disconnected;
  assert.equal(info.code, 1001);
  assert.equal(info.reconnecting, false);
  assert.equal(client.connected, false);
  await assert.rejects(client.request('demo.echo', 1), { code: 'Disconnected' });
});
