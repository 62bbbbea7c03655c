// Unit tests of session recovery (PROTOCOL.md, "Sessions and recovery") against
// FakeSocket, the test playing a server that keeps history: the client keeps the
// session and each topic's position, sends rpcws.recover as the first frame of its new
// socket, holds the application's frames until the reply, passes the replayed events
// and the resync on, and never shows the library's frames. The end-to-end tests
// against a Go server are in interop/recovery_test.go.

import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { connect, MAX_HELD } from '../rpcws.js';
import { FakeSocket } from './fakesocket.mjs';

beforeEach(() => {
  FakeSocket.reset();
  // Reconnection attempts come at once (initialDelayMs < 0) when time is ticked.
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
});
const opened = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  mock.timers.reset();
  mock.restoreAll();
});

/** Lets promise callbacks run (setImmediate is not mocked). */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Resolves with the settled state of p: {value} or {error}. */
function settle(p) {
  return p.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

/** Connects a client with reconnect to a FakeSocket that accepts at once. */
async function open(options = {}) {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket, reconnect: { initialDelayMs: -1 }, ...options });
  const ws = FakeSocket.last;
  ws.accept();
  const client = await p;
  opened.push(client);
  return { client, ws };
}

/** Drops ws from the server's side and lets the client's first attempt open a new socket. */
async function dropAndReopen(ws) {
  const before = FakeSocket.made.length;
  ws.serverClose(1006);
  mock.timers.tick(1);
  assert.equal(FakeSocket.made.length, before + 1, 'a reconnection attempt');
  const fresh = FakeSocket.last;
  fresh.accept();
  await flush();
  return fresh;
}

/** Records, in order, what the application sees: server events and "reconnect". */
function watch(client) {
  const seen = [];
  client.on('*', (data, frame) => seen.push([frame.type, data]));
  client.on('reconnect', (info) => seen.push(['reconnect', info]));
  return seen;
}

/** An event published to a topic, as a server with history writes it. */
const event = (topic, epoch, offset, data) => ({ type: 'topic.message', data, topic, epoch, offset });

/** Plays a server with history: session S1, topics a and b joined, events received. */
async function inTopics() {
  const { client, ws } = await open();
  const seen = watch(client);
  ws.receive({ type: 'rpcws.session', data: { id: 'S1', window: 120000 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'a', epoch: 'ea', offset: 3 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'b', epoch: 'eb', offset: 0 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'c', epoch: 'ec', offset: 9 } });
  ws.receive(event('a', 'ea', 4, 'a4'));
  ws.receive(event('b', 'eb', 1, 'b1'));
  ws.receive(event('a', 'ea', 5, 'a5'));
  ws.receive({ type: 'rpcws.left', data: { topic: 'c' } });
  return { client, ws, seen };
}

test('the frames of sessions never reach a listener; topic events do, fields and all', async () => {
  const { seen } = await inTopics();
  const types = [];
  assert.deepEqual(seen, [
    ['topic.message', 'a4'],
    ['topic.message', 'b1'],
    ['topic.message', 'a5'],
  ]);
  const { client, ws } = await open();
  client.on('rpcws.session', () => types.push('session'));
  client.on('rpcws.joined', () => types.push('joined'));
  client.on('rpcws.left', () => types.push('left'));
  let frame;
  client.on('topic.message', (data, f) => (frame = f));
  ws.receive({ type: 'rpcws.session', data: { id: 'S', window: 1 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 't', epoch: 'e', offset: 0 } });
  ws.receive(event('t', 'e', 1, 'x'));
  ws.receive({ type: 'rpcws.left', data: { topic: 't' } });
  assert.deepEqual(types, []);
  assert.deepEqual(frame, event('t', 'e', 1, 'x'));
});

test('rpcws.recover is the new socket\'s first frame, with the session and each topic\'s last position', async () => {
  const { client, ws } = await inTopics();
  const pending = settle(client.request('demo.sleep', { ms: 100 }));
  const fresh = await dropAndReopen(ws);
  assert.equal((await pending).error.code, 'Disconnected', 'a request pending at the drop fails');
  assert.equal(fresh.sent.length, 1);
  const [recover] = fresh.requests;
  assert.equal(
    fresh.sent[0],
    `{"id":"${recover.id}","type":"rpcws.recover","data":{"session":"S1","topics":{"a":{"epoch":"ea","offset":5},"b":{"epoch":"eb","offset":1}}}}`,
  );
  assert.equal(client.pendingCount, 0, 'the recovery is not an application request');
});

test('requests and notifications made while recovering are held, then sent in order after the reply', async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  assert.equal(client.connected, true);
  const first = client.request('demo.echo', 1);
  client.notify('user.save', { id: '7' });
  const second = client.request('demo.echo', 2);
  assert.equal(client.pendingCount, 2);
  assert.deepEqual(fresh.requests.map((r) => r.type), ['rpcws.recover'], 'nothing sent before the reply');

  const recover = fresh.requests[0];
  fresh.receive({ type: 'rpcws.session', data: { id: 'S2', window: 120000 } });
  fresh.receive({
    id: recover.id,
    type: 'rpcws.recover.response',
    data: { recovered: true, topics: { a: { epoch: 'ea', offset: 5, recovered: true }, b: { epoch: 'eb', offset: 1, recovered: true } } },
  });
  const sent = fresh.requests;
  assert.deepEqual(sent.map((r) => r.type), ['rpcws.recover', 'demo.echo', 'user.save', 'demo.echo']);
  assert.deepEqual(sent.slice(1).map((r) => r.data), [1, { id: '7' }, 2]);
  fresh.receive({ id: sent[3].id, type: 'demo.echo.response', data: 2 });
  fresh.receive({ id: sent[1].id, type: 'demo.echo.response', data: 1 });
  assert.deepEqual([await first, await second], [1, 2]);

  // Once recovered, frames go out at once.
  client.notify('demo.echo', 3);
  assert.equal(fresh.requests.at(-1).data, 3);
});

test('replayed events reach the handlers in order, then the resync of what was lost, then reconnect with the reply', async () => {
  const { client, ws, seen } = await inTopics();
  seen.length = 0;
  const fresh = await dropAndReopen(ws);
  assert.deepEqual(seen, [], 'no reconnect before the reply');
  const recover = fresh.requests[0];
  fresh.receive({ type: 'rpcws.session', data: { id: 'S2', window: 120000 } });
  fresh.receive(event('a', 'ea', 6, 'a6'));
  fresh.receive(event('a', 'ea', 7, 'a7'));
  fresh.receive({ type: 'rpcws.resync', data: { topics: ['b'] } });
  const topics = { a: { epoch: 'ea', offset: 7, recovered: true }, b: { epoch: 'eb2', offset: 4, recovered: false } };
  fresh.receive({ id: recover.id, type: 'rpcws.recover.response', data: { recovered: true, topics } });
  fresh.receive(event('a', 'ea', 8, 'a8')); // live, after the replay
  assert.deepEqual(seen, [
    ['topic.message', 'a6'],
    ['topic.message', 'a7'],
    ['rpcws.resync', { topics: ['b'] }],
    ['reconnect', { attempt: 1, recovered: true, topics }],
    ['topic.message', 'a8'],
  ]);

  // The next drop recovers the new session, from the positions of the reply and of
  // the events since.
  const third = await dropAndReopen(fresh);
  assert.deepEqual(third.requests[0].data, {
    session: 'S2',
    topics: { a: { epoch: 'ea', offset: 8 }, b: { epoch: 'eb2', offset: 4 } },
  });
  assert.equal(client.connected, true);
});

test('a session not restored: the topics are gone, and the next reconnection recovers none', async () => {
  const { client, ws, seen } = await inTopics();
  seen.length = 0;
  const fresh = await dropAndReopen(ws);
  fresh.receive({ type: 'rpcws.session', data: { id: 'S2', window: 120000 } });
  fresh.receive({ type: 'rpcws.resync', data: { topics: ['a', 'b'] } });
  fresh.receive({ id: fresh.requests[0].id, type: 'rpcws.recover.response', data: { recovered: false, topics: {} } });
  assert.deepEqual(seen, [
    ['rpcws.resync', { topics: ['a', 'b'] }],
    ['reconnect', { attempt: 1, recovered: false, topics: {} }],
  ]);
  const p = client.request('demo.echo', 'now');
  assert.equal(fresh.requests.at(-1).type, 'demo.echo', 'sent at once');
  fresh.receive({ id: fresh.requests.at(-1).id, type: 'demo.echo.response', data: 'now' });
  assert.equal(await p, 'now');

  const third = await dropAndReopen(fresh);
  assert.deepEqual(third.sent, [], 'no topics: nothing to recover');
  assert.deepEqual(seen.at(-1), ['reconnect', { attempt: 1 }]);
});

test('an error reply to the recovery (a server without history now): a resync of every topic, held frames sent', async () => {
  const { client, ws, seen } = await inTopics();
  seen.length = 0;
  const fresh = await dropAndReopen(ws);
  const held = settle(client.request('demo.echo', 'held'));
  const recover = fresh.requests[0];
  fresh.receive({ id: recover.id, type: 'error', code: 'MethodNotFound', message: 'rpc: can\'t find service rpcws.recover' });
  assert.deepEqual(seen, [
    ['rpcws.resync', { topics: ['a', 'b'] }],
    ['reconnect', { attempt: 1, recovered: false, topics: {} }],
  ]);
  assert.equal(fresh.requests[1].type, 'demo.echo');
  fresh.receive({ id: fresh.requests[1].id, type: 'demo.echo.response', data: 'held' });
  assert.equal((await held).value, 'held');

  // No session came on this socket: the next drop recovers nothing, as today.
  const third = await dropAndReopen(fresh);
  assert.deepEqual(third.sent, []);
  assert.deepEqual(seen.at(-1), ['reconnect', { attempt: 1 }]);
});

test('no reply to the recovery within the timeout: a resync of every topic, held frames sent, a late reply dropped', async () => {
  const { client, ws, seen } = await inTopics();
  seen.length = 0;
  const fresh = await dropAndReopen(ws);
  client.notify('demo.echo', 'held');
  mock.timers.tick(10_000 - 1); // the client's timeout, counted from the recovery's start
  assert.equal(fresh.sent.length, 1);
  mock.timers.tick(1);
  assert.deepEqual(seen, [
    ['rpcws.resync', { topics: ['a', 'b'] }],
    ['reconnect', { attempt: 1, recovered: false, topics: {} }],
  ]);
  assert.deepEqual(fresh.requests[1], { type: 'demo.echo', data: 'held' });
  fresh.receive({ id: fresh.requests[0].id, type: 'rpcws.recover.response', data: { recovered: true, topics: {} } });
  assert.equal(seen.length, 2, 'the late reply changes nothing');
  assert.equal(client.pendingCount, 0);
});

test('a held request that times out or is aborted while held is never sent', async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  const short = settle(client.request('demo.sleep', null, { timeoutMs: 50 }));
  const ac = new AbortController();
  const aborted = settle(client.request('demo.sleep', null, { signal: ac.signal }));
  const kept = settle(client.request('demo.echo', 'kept'));
  mock.timers.tick(50);
  ac.abort();
  assert.equal((await short).error.code, 'Timeout');
  assert.equal((await aborted).error.name, 'AbortError');
  fresh.receive({ id: fresh.requests[0].id, type: 'rpcws.recover.response', data: { recovered: true, topics: {} } });
  assert.deepEqual(fresh.requests.map((r) => r.type), ['rpcws.recover', 'demo.echo']);
  fresh.receive({ id: fresh.requests[1].id, type: 'demo.echo.response', data: 'kept' });
  assert.equal((await kept).value, 'kept');
});

test('a drop during the recovery fails the held requests; the next socket recovers with the latest session', async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  const held = settle(client.request('demo.echo', 'held'));
  fresh.receive({ type: 'rpcws.session', data: { id: 'S2', window: 120000 } });
  fresh.receive(event('a', 'ea', 6, 'a6')); // replayed before the drop
  const third = await dropAndReopen(fresh);
  const { error } = await held;
  assert.equal(error.code, 'Disconnected');
  assert.equal(fresh.sent.length, 1, 'the held request was never sent');
  assert.deepEqual(third.requests.map((r) => r.type), ['rpcws.recover']);
  assert.deepEqual(third.requests[0].data, {
    session: 'S2',
    topics: { a: { epoch: 'ea', offset: 6 }, b: { epoch: 'eb', offset: 1 } },
  });
  assert.equal(client.pendingCount, 0);
});

test('close() during the recovery fails the held requests and ends the client', async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  const held = settle(client.request('demo.echo', 'held'));
  let reconnected = false;
  client.on('reconnect', () => (reconnected = true));
  await client.close();
  assert.equal((await held).error.code, 'Disconnected');
  assert.equal(fresh.sent.length, 1);
  mock.timers.tick(60_000);
  assert.equal(reconnected, false);
});

test(`at most ${MAX_HELD} frames are held; one more is refused with Unavailable`, async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  const held = [];
  for (let i = 0; i < MAX_HELD - 1; i++) held.push(settle(client.request('demo.echo', i)));
  client.notify('demo.echo', 'last');
  const { error } = await settle(client.request('demo.echo', 'over'));
  assert.equal(error.code, 'Unavailable');
  assert.throws(() => client.notify('demo.echo', 'over'), { code: 'Unavailable' });
  assert.equal(client.pendingCount, MAX_HELD - 1);
  fresh.receive({ id: fresh.requests[0].id, type: 'rpcws.recover.response', data: { recovered: true, topics: {} } });
  assert.equal(fresh.sent.length, 1 + MAX_HELD);
  await client.close();
  for (const p of held) assert.equal((await p).error.code, 'Disconnected');
});

test('without a session (a server that keeps no history) a reconnection is exactly as before', async () => {
  const { client, ws } = await open();
  const seen = watch(client);
  ws.receive({ type: 'topic.message', data: 'x', topic: 'a', epoch: 'e', offset: 1 }); // fields ignored
  const fresh = await dropAndReopen(ws);
  assert.deepEqual(seen, [['topic.message', 'x'], ['reconnect', { attempt: 1 }]]);
  const p = client.request('demo.echo', 'at once');
  assert.deepEqual(fresh.requests.map((r) => r.type), ['demo.echo']);
  fresh.receive({ id: fresh.requests[0].id, type: 'demo.echo.response', data: 'at once' });
  assert.equal(await p, 'at once');
});

test('a session with no topics left: nothing to recover, and reconnect at once', async () => {
  const { client, ws } = await open();
  const seen = watch(client);
  ws.receive({ type: 'rpcws.session', data: { id: 'S1', window: 120000 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'a', epoch: 'e', offset: 0 } });
  ws.receive({ type: 'rpcws.left', data: { topic: 'a' } });
  const fresh = await dropAndReopen(ws);
  assert.deepEqual(fresh.sent, []);
  assert.deepEqual(seen, [['reconnect', { attempt: 1 }]]);
  assert.equal(client.connected, true);
});

test('malformed session frames are ignored and still hidden', async () => {
  const { client, ws } = await open();
  const seen = watch(client);
  ws.receive({ type: 'rpcws.session', data: { id: 'x'.repeat(129), window: 1 } }); // too long
  ws.receive({ type: 'rpcws.session', data: null });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'a', epoch: 'e', offset: -1 } });
  ws.receive({ type: 'rpcws.joined', data: { topic: 'b', epoch: 7, offset: 1 } });
  ws.receive({ type: 'rpcws.left', data: 'a' });
  const fresh = await dropAndReopen(ws);
  assert.deepEqual(fresh.sent, [], 'no valid session: nothing to recover');
  assert.deepEqual(seen, [['reconnect', { attempt: 1 }]]);
});

test('a live event that overtakes the reply keeps its position; topics the reply does not list are forgotten', async () => {
  const { client, ws } = await inTopics();
  const fresh = await dropAndReopen(ws);
  fresh.receive({ type: 'rpcws.session', data: { id: 'S2', window: 120000 } });
  fresh.receive(event('a', 'ea', 6, 'a6')); // replayed
  fresh.receive(event('a', 'ea', 7, 'a7')); // live, before the reply
  fresh.receive({ type: 'other.topic', data: 1, topic: 'z', epoch: 'ez', offset: 3 }); // a topic it is not in
  fresh.receive({
    id: fresh.requests[0].id,
    type: 'rpcws.recover.response',
    data: { recovered: true, topics: { a: { epoch: 'ea', offset: 6, recovered: true } } },
  });
  const third = await dropAndReopen(fresh);
  assert.deepEqual(third.requests[0].data, { session: 'S2', topics: { a: { epoch: 'ea', offset: 7 } } });
  assert.equal(client.connected, true);
});
