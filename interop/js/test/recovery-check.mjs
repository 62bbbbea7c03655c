// Recovery end to end (PROTOCOL.md, "Sessions and recovery"), the same check in Node
// and in the browsers: a client in a topic loses its connection while events are
// published to the topic, and gets every one of them exactly once, in order, with no
// code of the application's; or, when more were published than the server's history
// holds, one rpcws.resync for the topic and every event after the reconnection.
//
// The Go tests in interop/ (recovery_test.go) serve it: url is the WebSocket endpoint
// of two replicas of a server that keeps history, reached through a proxy that leads to
// the first, and control the servers' /run, which, POSTed to, publishes count events
// {"type": "room.event", "data": {"n": 1..count}} to topic at a steady rate; after event
// cut it cuts every connection through the proxy (mode "cut"), or shuts the first
// replica down, which closes its connections with 1001, and leads the proxy to the
// second (mode "restart"); it lets connections through again after event resume, and
// answers once it has published the last. Its topic.mine answers the
// topics the calling connection is in: asked while the client recovers (on the first
// frame after the drop, a replayed event or the resync), it must be held until the
// recovery's reply, and then see the topic restored.

/**
 * @param {object} t
 * @param {string} t.url WebSocket URL, through the proxy.
 * @param {string} t.control URL of the server's /run.
 * @param {any} t.assert node:assert/strict, or suite/assert.mjs in a browser.
 * @param {typeof import('../rpcws.js').connect} t.connect
 * @param {string} t.topic A topic no one else uses.
 * @param {{count: number, cut: number, resume: number, mode?: 'cut' | 'restart'}} t.run
 * @param {boolean} [t.lost] Whether the outage outlasts the history: a resync is expected.
 * @param {number} [t.timeoutMs] How long the events may take to arrive.
 */
export async function checkRecovery({ url, control, assert, connect, topic, run, lost = false, timeoutMs = 20_000 }) {
  const client = await connect(url, { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
  /** What the application sees, in order: event numbers, and objects for the rest. */
  const seen = [];
  let gotLast;
  const last = new Promise((resolve) => (gotLast = resolve));
  client.on('*', (data, frame) => {
    if (frame.type === 'room.event') {
      seen.push(data.n);
      if (data.n === run.count) gotLast();
    } else if (frame.type === 'rpcws.resync') {
      seen.push({ resync: data?.topics });
    } else {
      seen.push({ other: frame.type });
    }
  });
  let dropped = false;
  let mine; // topic.mine, asked while recovering
  client.on('*', () => {
    if (dropped && !mine) mine = settle(client.request('topic.mine'));
  });
  client.on('disconnect', (info) => {
    seen.push({ disconnect: info.reconnecting });
    dropped = true;
  });
  client.on('reconnect', (info) => seen.push({ reconnect: info }));
  try {
    assert.deepEqual(await client.request('topic.join', { topic }), { topic });
    const q = new URLSearchParams({ topic, mode: run.mode ?? 'cut', count: run.count, cut: run.cut, resume: run.resume });
    const res = await fetch(`${control}?${q}`, { method: 'POST' });
    assert.equal(res.status, 200, `the control's /run: ${res.status} ${await res.text()}`);
    await within(last, timeoutMs, () => `event ${run.count} did not arrive within ${timeoutMs} ms; seen: ${JSON.stringify(seen)}`);
    assert.ok(mine, `a frame came during the recovery; seen: ${JSON.stringify(seen)}`);
    const { value, error } = await mine;
    assert.equal(error, undefined, 'topic.mine, asked while recovering');
    assert.deepEqual(value, { topics: [topic] }, 'a request made while recovering is sent after the reply');
  } finally {
    await client.close();
  }
  seen.pop(); // the close's own disconnect
  const events = seen.filter((x) => typeof x === 'number');
  const rest = seen.filter((x) => typeof x !== 'number');
  const reconnect = rest.at(-1)?.reconnect;
  assert.ok(reconnect, `the last of the client's events is a reconnect; got ${JSON.stringify(rest)}`);
  assert.equal(reconnect.recovered, true, `the session was restored: ${JSON.stringify(reconnect)}`);
  assert.deepEqual(Object.keys(reconnect.topics), [topic], 'the connection is in its topic again');
  assert.equal(reconnect.topics[topic].recovered, !lost, `the topic recovered: ${JSON.stringify(reconnect.topics)}`);
  if (!lost) {
    assert.deepEqual(events, range(1, run.count), `every event once, in order; seen: ${JSON.stringify(seen)}`);
    assert.deepEqual(rest.slice(0, -1), [{ disconnect: true }], 'one drop, no resync, no library frame');
    return;
  }
  assert.deepEqual(rest.slice(0, -1), [{ disconnect: true }, { resync: [topic] }], 'one drop, one resync for the topic');
  assert.ok(events.length < run.count, `events were lost: got ${events.length} of ${run.count}`);
  for (let i = 1; i < events.length; i++) {
    assert.ok(events[i] > events[i - 1], `events in order, none twice; seen: ${JSON.stringify(seen)}`);
  }
  // After the reconnection, the topic's live events, none missed.
  const after = seen.slice(seen.findIndex((x) => x?.reconnect)).filter((x) => typeof x === 'number');
  assert.ok(after.length > 0, `live events after the reconnection; seen: ${JSON.stringify(seen)}`);
  assert.deepEqual(after, range(after[0], run.count), `live events after the reconnection, none missed; seen: ${JSON.stringify(seen)}`);
}

/** Resolves with the settled state of p: {value} or {error}. */
function settle(p) {
  return p.then(
    (value) => ({ value }),
    (error) => ({ error }),
  );
}

/** The whole numbers from a to b, both included. */
function range(a, b) {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** Resolves as p does, or rejects with message() after ms. */
function within(p, ms, message) {
  let timer;
  const late = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(message())), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
