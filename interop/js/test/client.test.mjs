// Unit tests of the client against FakeSocket: the exact frames it writes, how it
// settles requests, its timers (with mocked time), events and reconnection. No
// network; the interop suites test the same client against real servers.

import { test, beforeEach, afterEach, mock } from 'node:test';
import assert from 'node:assert/strict';
import { connect, randomId, RpcError, DEFAULT_TIMEOUT_MS } from '../rpcws.js';
import { FakeSocket } from './fakesocket.mjs';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeEach(() => FakeSocket.reset());
const opened = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
  mock.timers.reset();
  mock.restoreAll();
});

/** Lets promise callbacks run (setImmediate is not mocked). */
const flush = () => new Promise((resolve) => setImmediate(resolve));

/** Connects a client to a FakeSocket that accepts at once. */
async function open(options = {}) {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket, ...options });
  const ws = FakeSocket.last;
  ws.accept();
  const client = await p;
  opened.push(client);
  return { client, ws };
}

/** Resolves with the settled state of p: {value} or {error}. */
function settle(p) {
  return p.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

test('connect resolves when the socket opens, with the subprotocols passed on', async () => {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket, protocols: ['rpcws', 'token.abc'] });
  const ws = FakeSocket.last;
  assert.equal(ws.url, 'ws://fake/rpc');
  assert.deepEqual(ws.protocols, ['rpcws', 'token.abc']);
  ws.accept();
  const client = await p;
  assert.equal(client.connected, true);
  assert.equal(client.socket, ws);
});

test('connect without protocols does not pass any', async () => {
  await open();
  assert.equal(FakeSocket.last.protocols, undefined);
});

test('connect rejects with Disconnected when the socket closes before it opens', async () => {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket });
  FakeSocket.last.serverClose(1006);
  await assert.rejects(p, { name: 'RpcError', code: 'Disconnected', closeCode: 1006 });
});

test('connect rejects when the handshake fails with only an error event', async () => {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket });
  FakeSocket.last.dispatchEvent(new Event('error')); // Node 20 fires no close after it
  await assert.rejects(p, { code: 'Disconnected', closeCode: 1006 });
});

test('connect stops when its signal aborts', async () => {
  const ac = new AbortController();
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket, signal: ac.signal });
  ac.abort(new Error('gave up'));
  await assert.rejects(p, { message: 'gave up' });
  assert.ok(FakeSocket.last.readyState >= FakeSocket.CLOSING, 'the socket is closed');
});

test('connect without a WebSocket constructor says what to do', async () => {
  await assert.rejects(connect('ws://fake/rpc', { WebSocket: {} }), /--experimental-websocket/);
});

test('a request is written as {"id","type","data"} in that order, with a UUID id', async () => {
  const { client, ws } = await open();
  settle(client.request('user.get', { id: '123' }));
  settle(client.request('demo.echo'));
  const [a, b] = ws.requests;
  assert.match(a.id, UUID);
  assert.equal(ws.sent[0], `{"id":"${a.id}","type":"user.get","data":{"id":"123"}}`);
  assert.equal(ws.sent[1], `{"id":"${b.id}","type":"demo.echo","data":null}`);
  assert.notEqual(a.id, b.id);
});

test('replies settle their own requests, whatever their order', async () => {
  const { client, ws } = await open();
  const ps = ['a', 'b', 'c', 'd', 'e'].map((name) => client.request('demo.echo', name));
  assert.equal(client.pendingCount, 5);
  const ids = ws.requests.map((r) => r.id);
  for (const i of [3, 0, 4, 2, 1]) {
    ws.receive({ id: ids[i], type: 'demo.echo.response', data: `reply ${i}` });
  }
  assert.deepEqual(await Promise.all(ps), ['reply 0', 'reply 1', 'reply 2', 'reply 3', 'reply 4']);
  assert.equal(client.pendingCount, 0);
});

test('an error reply rejects with an Error carrying code and message', async () => {
  const { client, ws } = await open();
  const p = client.request('user.get', { id: '999' });
  ws.receive({ id: ws.requests[0].id, type: 'error', code: 'NotFound', message: 'no user 999' });
  const { error } = await settle(p);
  assert.ok(error instanceof Error);
  assert.ok(error instanceof RpcError);
  assert.equal(error.code, 'NotFound');
  assert.equal(error.message, 'no user 999');
});

test('the default timeout is 10 s and rejects with "timeout: <type>"', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const { client, ws } = await open();
  const p = settle(client.request('demo.sleep', { ms: 15000 }));
  mock.timers.tick(DEFAULT_TIMEOUT_MS - 1);
  assert.equal(client.pendingCount, 1);
  mock.timers.tick(1);
  const { error } = await p;
  assert.equal(DEFAULT_TIMEOUT_MS, 10_000);
  assert.equal(error.code, 'Timeout');
  assert.equal(error.message, 'timeout: demo.sleep');
  assert.equal(client.pendingCount, 0);

  // The reply that comes later is dropped: no event, nothing thrown, client still works.
  const events = [];
  client.on('*', (data, frame) => events.push(frame));
  ws.receive({ id: ws.requests[0].id, type: 'demo.sleep.response', data: { ms: 15000 } });
  assert.deepEqual(events, []);
  const q = client.request('demo.echo', 1);
  ws.receive({ id: ws.requests[1].id, type: 'demo.echo.response', data: 1 });
  assert.equal(await q, 1);
});

test('timeoutMs per client and per request: 0 means the default, negative or Infinity none', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const { client } = await open({ timeoutMs: 50 });
  const a = settle(client.request('a'));
  const b = settle(client.request('b', null, { timeoutMs: 500 }));
  const c = settle(client.request('c', null, { timeoutMs: 0 })); // the client's 50 ms
  settle(client.request('d', null, { timeoutMs: -1 }));
  settle(client.request('e', null, { timeoutMs: Infinity }));
  mock.timers.tick(50);
  assert.equal((await a).error.message, 'timeout: a');
  assert.equal((await c).error.message, 'timeout: c');
  assert.equal(client.pendingCount, 3);
  mock.timers.tick(450);
  assert.equal((await b).error.message, 'timeout: b');
  mock.timers.tick(1e9);
  assert.equal(client.pendingCount, 2, 'd and e wait for ever');
});

test('one timer serves every deadline: each request times out at its own, in any order', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const { client, ws } = await open({ timeoutMs: 50 });
  const a = settle(client.request('a')); // due at 50, replied at 10
  const long = settle(client.request('long', null, { timeoutMs: 500 }));
  const short = settle(client.request('short', null, { timeoutMs: 20 })); // sooner than both
  const beyond = settle(client.request('beyond', null, { timeoutMs: 2 ** 31 + 1000 })); // past what setTimeout takes
  mock.timers.tick(10);
  ws.receive({ id: ws.requests[0].id, type: 'a.response', data: 1 });
  assert.equal((await a).value, 1);
  mock.timers.tick(10);
  assert.equal((await short).error.message, 'timeout: short');
  mock.timers.tick(10);
  const b = settle(client.request('b')); // due at 80, after a's deadline has passed unused
  mock.timers.tick(49);
  assert.equal(client.pendingCount, 3, 'b is not due before 80');
  mock.timers.tick(1);
  assert.equal((await b).error.message, 'timeout: b');
  mock.timers.tick(419);
  assert.equal(client.pendingCount, 2, 'long is not due before 500');
  mock.timers.tick(1);
  assert.equal((await long).error.message, 'timeout: long');
  mock.timers.tick(2 ** 31 - 1);
  assert.equal(client.pendingCount, 1, 'beyond is not due when the longest timer fires');
  mock.timers.tick(1000);
  assert.equal((await beyond).error.message, 'timeout: beyond');
  assert.equal(client.pendingCount, 0);
});

test('a client timeoutMs of 0 is the default 10 s; negative is none, and a request may set one', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const zero = (await open({ timeoutMs: 0 })).client;
  const p = settle(zero.request('demo.sleep'));
  mock.timers.tick(DEFAULT_TIMEOUT_MS - 1);
  assert.equal(zero.pendingCount, 1);
  mock.timers.tick(1);
  assert.equal((await p).error.code, 'Timeout');

  const none = (await open({ timeoutMs: -1 })).client;
  settle(none.request('demo.sleep'));
  settle(none.request('demo.sleep', null, { timeoutMs: 0 })); // the client's: none
  const q = settle(none.request('demo.sleep', null, { timeoutMs: 20 }));
  mock.timers.tick(20);
  assert.equal((await q).error.code, 'Timeout');
  mock.timers.tick(1e10);
  assert.equal(none.pendingCount, 2);
});

test('a numeric option that is not a number is refused with a TypeError', async () => {
  const { client, ws } = await open();
  await assert.rejects(client.request('a', null, { timeoutMs: '5000' }), TypeError);
  await assert.rejects(client.request('a', null, { timeoutMs: NaN }), /timeoutMs must be a number/);
  assert.equal(ws.sent.length, 0);
  const made = FakeSocket.made.length;
  await assert.rejects(connect('ws://fake/rpc', { WebSocket: FakeSocket, timeoutMs: '1s' }), TypeError);
  await assert.rejects(connect('ws://fake/rpc', { WebSocket: FakeSocket, reconnect: { maxAttempts: 'three' } }), /reconnect\.maxAttempts/);
  assert.equal(FakeSocket.made.length, made, 'no socket opened with bad options');
});

test('an AbortSignal cancels a request; an aborted one is never sent', async () => {
  const { client, ws } = await open();
  const ac = new AbortController();
  const p = settle(client.request('demo.sleep', { ms: 100 }, { signal: ac.signal }));
  ac.abort();
  const { error } = await p;
  assert.equal(error.name, 'AbortError');
  assert.equal(client.pendingCount, 0);
  ws.receive({ id: ws.requests[0].id, type: 'demo.sleep.response', data: { ms: 100 } }); // dropped

  const reason = new Error('user navigated away');
  await assert.rejects(client.request('demo.echo', 1, { signal: AbortSignal.abort(reason) }), reason);
  assert.equal(ws.sent.length, 1);
});

test('closing rejects every pending request at once with Disconnected', async () => {
  const { client, ws } = await open();
  const ps = [1, 2, 3].map((n) => settle(client.request('demo.sleep', { ms: n })));
  ws.serverClose(1001, 'going away');
  for (const { error } of await Promise.all(ps)) {
    assert.equal(error.code, 'Disconnected');
    assert.equal(error.message, 'disconnected: demo.sleep');
    assert.equal(error.closeCode, 1001);
  }
  assert.equal(client.connected, false);
  await assert.rejects(client.request('demo.echo'), { code: 'Disconnected' });
  assert.throws(() => client.notify('demo.echo'), { code: 'Disconnected' });
  assert.equal(ws.sent.length, 3);
});

test('close() rejects pending requests before the socket has closed', async () => {
  const { client, ws } = await open();
  const p = settle(client.request('demo.sleep', { ms: 1 }));
  const closed = client.close();
  assert.equal(client.pendingCount, 0);
  assert.equal((await p).error.code, 'Disconnected');
  await closed;
  assert.equal(ws.readyState, FakeSocket.CLOSED);
});

test('notify writes {"type","data"} without an id', async () => {
  const { client, ws } = await open();
  client.notify('user.save', { id: '7', name: 'Ana' });
  client.notify('demo.echo');
  assert.deepEqual(ws.sent, ['{"type":"user.save","data":{"id":"7","name":"Ana"}}', '{"type":"demo.echo","data":null}']);
  assert.equal(client.pendingCount, 0);
});

test('frames without id reach listeners by type and the catch-all', async () => {
  const { client, ws } = await open();
  const ticks = [];
  const all = [];
  const offTick = client.on('demo.tick', (data) => ticks.push(data.n));
  client.on('*', (data, frame) => all.push(frame.type));
  const errors = [];
  client.on('error', (data, frame) => errors.push([frame.code, frame.message]));

  ws.receive({ type: 'demo.tick', data: { n: 1 } });
  ws.receive({ type: 'demo.tick', data: { n: 2 }, id: null }); // "id": null is no id
  ws.receive({ type: 'other', data: 0 });
  ws.receive({ type: 'error', code: 'ParseError', message: 'not JSON' });
  offTick();
  ws.receive({ type: 'demo.tick', data: { n: 3 } });

  assert.deepEqual(ticks, [1, 2]);
  assert.deepEqual(all, ['demo.tick', 'demo.tick', 'other', 'error', 'demo.tick']);
  assert.deepEqual(errors, [['ParseError', 'not JSON']]);
});

test('frames that are not JSON objects, replies to no one and binary frames are ignored', async () => {
  const { client, ws } = await open();
  const all = [];
  client.on('*', (data, frame) => all.push(frame));
  ws.receive('not json');
  ws.receive('[1,2]');
  ws.receive('null');
  ws.receive({ id: 'nobody', type: 'x.response', data: 1 });
  ws.receive({ data: 'no type' });
  ws.dispatchEvent(new MessageEvent('message', { data: new ArrayBuffer(2) }));
  assert.deepEqual(all, []);
  assert.equal(client.connected, true);
});

test('a server cannot fake the client\'s own lifecycle events', async () => {
  const { client, ws } = await open();
  let fired = 0;
  client.on('reconnect', () => fired++);
  client.on('disconnect', () => fired++);
  client.on('close', () => fired++);
  const all = [];
  client.on('*', (data, frame) => all.push(frame.type));
  ws.receive({ type: 'reconnect', data: {} });
  ws.receive({ type: 'disconnect', data: {} });
  ws.receive({ type: 'close', data: {} });
  assert.equal(fired, 0);
  assert.deepEqual(all, ['reconnect', 'disconnect', 'close']);
});

test('reconnect: backoff with jitter, a reconnect event, and nothing sent twice', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const random = mock.method(Math, 'random', () => 0.999999);
  const { client, ws } = await open({ reconnect: { initialDelayMs: 100, maxDelayMs: 300 } });
  const events = [];
  client.on('disconnect', (info) => events.push(['disconnect', info.code, info.reconnecting]));
  client.on('reconnect', (info) => events.push(['reconnect', info.attempt]));

  const pending = settle(client.request('user.save', { id: '1', name: 'once' }));
  ws.serverClose(1006);
  assert.equal((await pending).error.code, 'Disconnected');
  assert.deepEqual(events, [['disconnect', 1006, true]]);

  // Attempt 1 waits up to 100 ms, attempt 2 up to 200, then 300 (the cap) each time.
  const ceilings = [100, 200, 300, 300];
  for (const [i, ceiling] of ceilings.entries()) {
    const before = FakeSocket.made.length;
    mock.timers.tick(ceiling - 1);
    assert.equal(FakeSocket.made.length, before, `attempt ${i + 1}: no new socket before ${ceiling} ms`);
    mock.timers.tick(1);
    assert.equal(FakeSocket.made.length, before + 1, `attempt ${i + 1}: a new socket at ${ceiling} ms`);
    if (i < ceilings.length - 1) {
      FakeSocket.last.serverClose(1006); // this attempt fails
      await flush();
    }
  }
  const fresh = FakeSocket.last;
  fresh.accept();
  await flush();
  assert.deepEqual(events.at(-1), ['reconnect', 4]);
  assert.equal(client.socket, fresh);
  assert.deepEqual(fresh.sent, [], 'the failed request is not sent again');

  const p = client.request('demo.echo', 'after');
  fresh.receive({ id: fresh.requests[0].id, type: 'demo.echo.response', data: 'after' });
  assert.equal(await p, 'after');

  // Jitter: with Math.random() at 0 the delay is half the ceiling.
  random.mock.mockImplementation(() => 0);
  fresh.serverClose(1001);
  const before = FakeSocket.made.length;
  mock.timers.tick(49);
  assert.equal(FakeSocket.made.length, before);
  mock.timers.tick(1);
  assert.equal(FakeSocket.made.length, before + 1, 'after half of 100 ms, the first ceiling again');
  await client.close();
});

/** Records the client's lifecycle events as [name, info]. */
function lifecycle(client) {
  const events = [];
  for (const name of ['disconnect', 'reconnect', 'close']) client.on(name, (info) => events.push([name, info]));
  return events;
}

/** Fails every reconnection attempt as it is made, for ms of mocked time. */
async function refuseFor(ms, step = 100) {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step);
    for (const ws of FakeSocket.made) if (ws.readyState === FakeSocket.CONNECTING) ws.serverClose(1006);
    await flush();
  }
}

test('close() ends reconnection, with a last disconnect and close', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const { client, ws } = await open({ reconnect: true });
  const events = lifecycle(client);
  ws.serverClose(1006);
  await client.close();
  const before = FakeSocket.made.length;
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.made.length, before);
  assert.deepEqual(events, [
    ['disconnect', { code: 1006, reason: '', reconnecting: true }],
    ['disconnect', { code: 1000, reason: '', reconnecting: false }],
    ['close', { code: 1000, reason: '', attempts: 0 }],
  ]);
  await client.close(); // again: nothing more
  assert.equal(events.length, 3);
});

test('close() during a reconnection attempt abandons it', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const random = mock.method(Math, 'random', () => 0.999999);
  const { client, ws } = await open({ reconnect: { initialDelayMs: 100 } });
  const events = lifecycle(client);
  ws.serverClose(1006);
  mock.timers.tick(100);
  const attempt = FakeSocket.last;
  assert.notEqual(attempt, ws);
  assert.equal(attempt.readyState, FakeSocket.CONNECTING);
  await client.close(4000, 'bye');
  await flush();
  assert.equal(attempt.readyState, FakeSocket.CLOSED, 'the attempt in flight is closed');
  assert.deepEqual(events.map(([name]) => name), ['disconnect', 'disconnect', 'close']);
  assert.deepEqual(events.at(-1)[1], { code: 4000, reason: 'bye', attempts: 0 });
  assert.equal(client.connected, false);
  random.mock.restore();
});

test('close() on an open client: disconnect, then close', async () => {
  const { client } = await open();
  const events = lifecycle(client);
  await client.close(1000, 'done');
  assert.deepEqual(events, [
    ['disconnect', { code: 1000, reason: 'done', reconnecting: false }],
    ['close', { code: 1000, reason: 'done', attempts: 0 }],
  ]);
});

test('when maxAttempts runs out: a last disconnect with reconnecting false, then close', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const { client, ws } = await open({ reconnect: { initialDelayMs: 100, maxDelayMs: 100, maxAttempts: 3 } });
  const events = lifecycle(client);
  ws.serverClose(1001, 'restart');
  await refuseFor(1000);
  assert.equal(FakeSocket.made.length, 1 + 3, 'three attempts');
  assert.deepEqual(events, [
    ['disconnect', { code: 1001, reason: 'restart', reconnecting: true }],
    ['disconnect', { code: 1006, reason: '', reconnecting: false }],
    ['close', { code: 1006, reason: '', attempts: 3 }],
  ]);
  mock.timers.tick(600_000);
  assert.equal(FakeSocket.made.length, 4, 'no attempt after giving up');
  await assert.rejects(client.request('demo.echo'), { code: 'Disconnected' });
  await client.close();
  assert.equal(events.length, 3);
});

test('without reconnect a drop ends the client: disconnect, then close', async () => {
  const { client, ws } = await open();
  const events = lifecycle(client);
  ws.serverClose(1011, 'oops');
  assert.deepEqual(events, [
    ['disconnect', { code: 1011, reason: 'oops', reconnecting: false }],
    ['close', { code: 1011, reason: 'oops', attempts: 0 }],
  ]);
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.made.length, 1, 'no attempt to reopen');
});

test('reconnect options: 0 means the default, negative none', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const random = mock.method(Math, 'random', () => 0.999999); // delays just under their ceilings

  // 0 everywhere: 500 ms, doubling up to 10 s, attempts without end.
  const a = await open({ reconnect: { initialDelayMs: 0, maxDelayMs: 0, maxAttempts: 0 } });
  a.ws.serverClose(1006);
  const ceilings = [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000];
  for (const ceiling of ceilings) {
    const before = FakeSocket.made.length;
    mock.timers.tick(ceiling - 1);
    assert.equal(FakeSocket.made.length, before, `nothing before ${ceiling} ms`);
    mock.timers.tick(1);
    assert.equal(FakeSocket.made.length, before + 1, `an attempt at ${ceiling} ms`);
    FakeSocket.last.serverClose(1006);
    await flush();
  }
  await a.client.close();

  // Negative initial delay: the first attempt at once, then 500 ms doubling; negative
  // maxDelayMs: no cap.
  const b = await open({ reconnect: { initialDelayMs: -1, maxDelayMs: -1 } });
  b.ws.serverClose(1006);
  for (const ceiling of [0, 500, 1000, 2000, 4000, 8000, 16_000, 32_000]) {
    const before = FakeSocket.made.length;
    if (ceiling > 0) {
      mock.timers.tick(ceiling - 1);
      assert.equal(FakeSocket.made.length, before, `nothing before ${ceiling} ms`);
    }
    mock.timers.tick(1);
    assert.equal(FakeSocket.made.length, before + 1, `an attempt at ${ceiling} ms`);
    FakeSocket.last.serverClose(1006);
    await flush();
  }
  await b.client.close();
  random.mock.restore();
});

test('connect with reconnect retries a server that is down, under the same policy', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  mock.method(Math, 'random', () => 0.999999);
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket, reconnect: { initialDelayMs: 100, maxDelayMs: 400 } });
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  for (const ceiling of [100, 200, 400, 400]) {
    FakeSocket.last.serverClose(1006); // refused
    await flush();
    const before = FakeSocket.made.length;
    mock.timers.tick(ceiling - 1);
    await flush();
    assert.equal(FakeSocket.made.length, before);
    mock.timers.tick(1);
    await flush(); // the retry runs after the timer's Promise settles
    assert.equal(FakeSocket.made.length, before + 1, `a new attempt after ${ceiling} ms`);
    assert.equal(settled, false, 'still connecting');
  }
  FakeSocket.last.accept(); // the server is up
  const client = await p;
  opened.push(client);
  assert.equal(client.socket, FakeSocket.last);
  assert.equal(FakeSocket.made.length, 5);
});

test('connect with reconnect rejects once maxAttempts runs out', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const p = settle(connect('ws://fake/rpc', { WebSocket: FakeSocket, reconnect: { initialDelayMs: 10, maxAttempts: 2 } }));
  FakeSocket.last.serverClose(1006);
  await refuseFor(1000, 10);
  const { error } = await p;
  assert.equal(error.code, 'Disconnected');
  assert.equal(FakeSocket.made.length, 3, 'the first try and two more');
});

test('connect with reconnect stops retrying when its signal aborts', async () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'] });
  const ac = new AbortController();
  const p = settle(connect('ws://fake/rpc', { WebSocket: FakeSocket, reconnect: true, signal: ac.signal }));
  FakeSocket.last.serverClose(1006);
  await flush();
  ac.abort(new Error('user gave up'));
  assert.equal((await p).error.message, 'user gave up');
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.made.length, 1);
});

test('connect without reconnect rejects at the first failure', async () => {
  const p = connect('ws://fake/rpc', { WebSocket: FakeSocket });
  FakeSocket.last.serverClose(1006);
  await assert.rejects(p, { code: 'Disconnected' });
  assert.equal(FakeSocket.made.length, 1);
});

test('randomId uses crypto.randomUUID, or getRandomValues where it is missing', () => {
  assert.equal(randomId({ randomUUID: () => 'from-randomUUID', getRandomValues: () => assert.fail() }), 'from-randomUUID');
  const insecure = { getRandomValues: (a) => globalThis.crypto.getRandomValues(a) }; // as on http://192.168.1.10/
  const ids = new Set();
  for (let i = 0; i < 1000; i++) {
    const id = randomId(insecure);
    assert.match(id, UUID);
    ids.add(id);
  }
  assert.equal(ids.size, 1000);
  const zeros = { getRandomValues: (a) => a };
  assert.equal(randomId(zeros), '00000000-0000-4000-8000-000000000000');
});

test('a request whose data cannot be encoded rejects and leaves nothing pending', async () => {
  const { client, ws } = await open();
  await assert.rejects(client.request('demo.echo', { n: 1n }), TypeError);
  assert.equal(client.pendingCount, 0);
  assert.equal(ws.sent.length, 0);
});
