// Reconnection against a real WebSocket server (the ws package's) on 127.0.0.1: the
// first connect waits for a server that is not up yet, and a client whose server
// stays down gives up after maxAttempts with a last disconnect and close. The unit
// tests in client.test.mjs check the same policy in detail against a fake socket.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { connect } from '../rpcws.js';

const ws = await import('ws').catch(() => null);

/** Listens on 127.0.0.1:port (0: any free port) and resolves with the port. */
function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

/** A server of demo.echo, the reference service's echo, on http server hs. */
function echoServer(hs) {
  const wss = new ws.WebSocketServer({ server: hs, path: '/rpc' });
  wss.on('connection', (sock) =>
    sock.on('message', (text) => {
      const { id, type, data } = JSON.parse(String(text));
      sock.send(JSON.stringify({ id, type: `${type}.response`, data }));
    }),
  );
  return wss;
}

test('reconnect against a real server: connect waits for it to come up, and gives up when it stays down', {
  // Under CI a missing ws fails the test instead (npm ci installs it).
  skip: !ws && !process.env.CI && 'the ws package is missing (run npm ci)',
  timeout: 20_000,
}, async () => {
  assert.ok(ws, 'the ws package is missing, and CI is set: run npm ci');
  // A port that nothing listens on: taken, then given back.
  const probe = createServer();
  const port = await listen(probe, 0);
  await new Promise((resolve) => probe.close(resolve));

  // The server starts once the client's first attempt has failed.
  const hs = createServer();
  let wss;
  let attempts = 0;
  class Counting extends ws.WebSocket {
    constructor(...args) {
      super(...args);
      if (++attempts === 1) {
        this.once('error', () => {
          listen(hs, port).then(() => (wss = echoServer(hs)));
        });
      }
    }
  }
  const url = `ws://127.0.0.1:${port}/rpc`;
  const waiting = await connect(url, { WebSocket: Counting, reconnect: { initialDelayMs: 20, maxDelayMs: 100 } });
  assert.ok(attempts >= 2, `connected at attempt ${attempts}, after the first failed`);
  assert.equal(await waiting.request('demo.echo', 'up'), 'up');
  await waiting.close();

  // The server goes away for good: two attempts, then the end.
  const client = await connect(url, { WebSocket: Counting, reconnect: { initialDelayMs: 20, maxAttempts: 2 } });
  const events = [];
  const closed = new Promise((resolve) => client.on('close', resolve));
  client.on('disconnect', (info) => events.push(['disconnect', info.reconnecting]));
  const before = attempts;
  for (const sock of wss.clients) sock.terminate();
  wss.close();
  hs.closeAllConnections();
  await new Promise((resolve) => hs.close(resolve));
  const info = await closed;
  assert.deepEqual(events, [['disconnect', true], ['disconnect', false]]);
  assert.equal(info.attempts, 2);
  assert.equal(attempts - before, 2);
  assert.equal(client.connected, false);
});
