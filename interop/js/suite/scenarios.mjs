// The interop scenarios: what a server of this protocol must do for the reference
// client, checked against the reference services of PROTOCOL.md. The same list runs in
// Node (test/scenarios.test.mjs), in a browser (test/browser.html) and from the command
// line (conformance.mjs).
//
// A scenario is {check, name, rule, needs, slow?, timeoutMs?, run}: `check` is its short
// name (for --only and --skip), `name` says what it shows, `rule` is the rule of
// PROTOCOL.md it holds (suite/rules.mjs). `needs` lists the request types it uses; a
// target that answers MethodNotFound to one of them skips the scenario. `run(t)` gets
// t.assert (node:assert/strict or suite/assert.mjs), t.connect(options) for a client,
// t.raw() for a raw WebSocket (both closed after the scenario) and t.frame(got, want,
// options) to compare a frame with the reference server's at the level of the run
// (suite/compare.mjs).

import { RpcError } from '../rpcws.js';
import { rules, RuleError } from './rules.mjs';

/** Starts a stopwatch: returns a function that tells the milliseconds since. */
const within = () => {
  const start = performance.now();
  return () => performance.now() - start;
};

/** Resolves on the first frame on ws for which match(parsed frame) holds. */
function frameSeen(ws, match) {
  return new Promise((resolve) => {
    const onMessage = (e) => {
      let f;
      try {
        f = JSON.parse(e.data);
      } catch {
        return;
      }
      if (match(f)) {
        ws.removeEventListener('message', onMessage);
        resolve(f);
      }
    };
    ws.addEventListener('message', onMessage);
  });
}

/**
 * A '*' handler that pushes onto list every event but the library's own (rpcws.*, such
 * as the rpcws.session a server that keeps history sends first): those are not the
 * application's (PROTOCOL.md, "Events the library sends").
 */
const appEvents = (list) => (data, frame) => {
  if (!String(frame?.type).startsWith('rpcws.')) list.push(frame);
};

/** Resolves once `count` events of `type` arrived on client; returns their data. */
function collectEvents(client, type, count) {
  const got = [];
  return new Promise((resolve) => {
    const off = client.on(type, (data) => {
      got.push(data);
      if (got.length === count) {
        off();
        resolve(got);
      }
    });
  });
}

/**
 * The lesson's exercise: five concurrent requests whose replies come back out of order,
 * all matched to their own request; the server holds one past the client's timeout,
 * which rejects it with "timeout: demo.sleep" while the other four resolve. The reply
 * to the held request still comes, later, and is dropped without harm.
 */
function lessonExercise({ holdMs, timeoutMs }) {
  return async ({ connect, assert }) => {
    const client = await connect(timeoutMs === undefined ? {} : { timeoutMs });
    const limit = timeoutMs ?? 10_000; // the client's default
    const sleeps = [700, 100, holdMs, 500, 300]; // sent in this order
    const arrived = []; // indexes, in the order the replies arrived
    const events = [];
    client.on('*', appEvents(events));
    const late = frameSeen(client.socket, (f) => f.type === 'demo.sleep.response' && f.data?.ms === holdMs);

    const elapsed = within();
    let timedOutAt;
    const results = await Promise.allSettled(
      sleeps.map((ms, i) =>
        client.request('demo.sleep', { ms }).finally(() => {
          arrived.push(i);
          if (ms === holdMs) timedOutAt = elapsed();
        }),
      ),
    );

    for (const [i, ms] of sleeps.entries()) {
      if (ms === holdMs) continue;
      assert.deepEqual(results[i], { status: 'fulfilled', value: { ms } }, `request ${i} (${ms} ms)`);
    }
    const held = results[2];
    assert.equal(held.status, 'rejected');
    assert.ok(held.reason instanceof RpcError, `got ${held.reason}, want an RpcError`);
    assert.equal(held.reason.code, 'Timeout');
    assert.equal(held.reason.message, 'timeout: demo.sleep');
    assert.deepEqual(arrived, [1, 4, 3, 0, 2], 'replies settle in the order of their sleeps, not of sending');
    assert.ok(timedOutAt >= limit - 5 && timedOutAt < holdMs, `timed out after ${timedOutAt} ms, want about ${limit}`);
    assert.equal(client.pendingCount, 0);

    // The held reply arrives after the timeout: it settles nothing and raises no event.
    await late;
    assert.ok(elapsed() >= holdMs - 5, `the held reply came after ${elapsed()} ms, want ${holdMs}`);
    assert.deepEqual(events, []);
    assert.deepEqual(await client.request('demo.echo', 'still here'), 'still here');
  };
}

/** @type {Array<{check: string, name: string, rule: import('./rules.mjs').Rule, needs: string[], slow?: boolean, timeoutMs?: number, run: (t: any) => Promise<void>}>} */
export const scenarios = [
  {
    check: 'request-reply',
    name: 'request and reply: user.get, user.save, demo.echo',
    rule: rules.successShape,
    needs: ['user.get', 'user.save', 'demo.echo'],
    async run({ connect, assert }) {
      const client = await connect();
      const user = await client.request('user.get', { id: '123' });
      assert.equal(user.id, '123');
      assert.equal(typeof user.name, 'string');

      const id = `u-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
      const saved = await client.request('user.save', { id, name: 'Ada Lovelace' });
      assert.equal(saved.id, id);
      assert.equal(saved.name, 'Ada Lovelace');
      const again = await client.request('user.get', { id });
      assert.equal(again.name, 'Ada Lovelace');

      const values = [0, -1.5, 1e21, 'héllo ✓ 😀 "quoted" \\ \n', '', true, false, null, [], {}, [1, [2, { a: null }]], { nested: { deep: [1, 'x'] } }];
      for (const v of values) assert.deepEqual(await client.request('demo.echo', v), v);
      assert.equal(await client.request('demo.echo'), null, 'absent data echoes as null');
    },
  },
  {
    check: 'id-echo',
    name: 'ids are echoed as they were sent, whatever their JSON kind',
    rule: rules.idEcho,
    needs: ['demo.echo'],
    async run({ raw, frame, assert }) {
      const conn = await raw();
      for (const id of ['"a\\u0041"', '17', '-0.5e3', '{"k":[1,2]}', '[1,"x"]', 'true']) {
        conn.send(`{"id":${id},"type":"demo.echo","data":1}`);
        frame(await conn.next(), `{"id":${id},"type":"demo.echo.response","data":1}`);
      }
    },
  },
  {
    check: 'lesson-exercise-fast',
    name: 'lesson exercise, fast: 5 concurrent, replies out of order, one held 3 s past a 1 s timeout',
    rule: rules.concurrent,
    needs: ['demo.sleep', 'demo.echo'],
    run: lessonExercise({ holdMs: 3000, timeoutMs: 1000 }),
  },
  {
    check: 'lesson-exercise',
    name: 'lesson exercise: 5 concurrent, one held 15 s, default 10 s timeout',
    rule: rules.concurrent,
    needs: ['demo.sleep', 'demo.echo'],
    slow: true,
    timeoutMs: 30_000,
    run: lessonExercise({ holdMs: 15_000 }),
  },
  {
    check: 'not-held-up',
    name: 'a quick request is not held up behind a slow one on the same connection',
    rule: rules.concurrent,
    needs: ['demo.sleep', 'demo.echo'],
    async run({ raw, frame }) {
      const conn = await raw();
      conn.send('{"id":"slow","type":"demo.sleep","data":{"ms":1000}}');
      conn.send('{"id":"quick","type":"demo.echo","data":"quick"}');
      const first = await conn.next();
      if (typeof first === 'string' && first.includes('"slow"') && JSON.parse(first).id === 'slow') {
        throw new RuleError(rules.concurrent, 'the reply to a 1 s demo.sleep came before the reply to a demo.echo sent after it: requests were served one at a time');
      }
      frame(first, '{"id":"quick","type":"demo.echo.response","data":"quick"}');
      frame(await conn.next(), '{"id":"slow","type":"demo.sleep.response","data":{"ms":1000}}');
    },
  },
  {
    check: 'parse-error',
    name: 'ParseError: frames that are not JSON objects, and binary frames',
    rule: rules.parseError,
    needs: ['demo.echo'],
    async run({ raw, frame, assert }) {
      const conn = await raw();
      const bad = ['not json', '[1,2]', '"text"', '42', 'null', '{"id":"x","type":"demo.echo"', ''];
      for (const frame of bad) {
        conn.send(frame);
        const f = await conn.nextJSON();
        assert.equal(f.type, 'error', `reply to ${JSON.stringify(frame)}`);
        assert.equal(f.code, 'ParseError', `code for ${JSON.stringify(frame)}`);
        assert.equal(typeof f.message, 'string');
        assert.equal('id' in f, false, 'an error that belongs to no request has no id');
      }
      conn.sendBinary('{"id":"b1","type":"demo.echo","data":1}');
      const f = await conn.nextJSON();
      assert.equal(f.code, 'ParseError', 'code for a binary frame');
      assert.equal('id' in f, false);
      conn.send('{"id":"ok","type":"demo.echo","data":1}');
      frame(await conn.next(), '{"id":"ok","type":"demo.echo.response","data":1}');
    },
  },
  {
    check: 'bad-request',
    name: 'BadRequest: type missing, empty or not a string',
    rule: rules.badRequest,
    needs: ['demo.echo'],
    async run({ raw, frame, assert }) {
      const conn = await raw();
      const bad = ['{"id":"b1","data":1}', '{"id":"b2","type":"","data":1}', '{"id":"b3","type":7}', '{"id":"b4","type":{"a":1}}', '{"id":"b5","type":null}'];
      for (const [i, frame] of bad.entries()) {
        conn.send(frame);
        const f = await conn.nextJSON();
        assert.deepEqual([f.id, f.type, f.code], [`b${i + 1}`, 'error', 'BadRequest'], `reply to ${frame}`);
        assert.equal(typeof f.message, 'string');
      }
      conn.send('{"id":"ok","type":"demo.echo","data":2}');
      frame(await conn.next(), '{"id":"ok","type":"demo.echo.response","data":2}');
    },
  },
  {
    check: 'too-large',
    name: 'TooLarge: a reply over the frame limit becomes an error reply, and the connection stays open',
    rule: rules.frameLimit,
    needs: ['demo.echo'],
    timeoutMs: 30_000,
    async run({ raw, frame, assert, limits }) {
      const conn = await raw();
      // A request just under the limit, whose reply (".response" is 9 bytes longer, and
      // a string of x is spelled alike by every encoder) is over it.
      const head = '{"id":"big","type":"demo.echo","data":"';
      const tail = '"}';
      conn.send(`${head}${'x'.repeat(limits.maxFrame - head.length - tail.length - 4)}${tail}`);
      let got;
      try {
        got = await conn.next(20_000);
      } catch (err) {
        throw new RuleError(rules.frameLimit, `a request of ${limits.maxFrame - 4} bytes whose echo is over the limit: ${err.message} (a server with another frame limit than ${limits.maxFrame}: pass --max-frame)`);
      }
      assert.equal(typeof got, 'string', 'want a text frame');
      const size = new TextEncoder().encode(got).length;
      if (size > limits.maxFrame) {
        throw new RuleError(rules.frameLimit, `the server wrote a reply of ${size} bytes, over the frame limit of ${limits.maxFrame}`);
      }
      const f = JSON.parse(got);
      assert.deepEqual([f.id, f.type, f.code], ['big', 'error', 'TooLarge'], `reply ${got.slice(0, 200)}`);
      assert.deepEqual(Object.keys(f), ['id', 'type', 'code', 'message']);
      assert.equal(typeof f.message, 'string');
      conn.send('{"id":"ok","type":"demo.echo","data":3}');
      frame(await conn.next(), '{"id":"ok","type":"demo.echo.response","data":3}');
    },
  },
  {
    check: 'utf8',
    name: 'ParseError: text frames that are not valid UTF-8; no reply echoes their bytes, and the connection stays open',
    rule: rules.utf8,
    needs: ['demo.echo'],
    node: true,
    async run({ bytes, assert }) {
      const conn = await bytes();
      const enc = (s) => [...new TextEncoder().encode(s)];
      const cases = [
        ['a byte no character starts with, in data', '{"id":"u1","type":"demo.echo","data":"', [0xff], '"}'],
        ['an invalid byte in the id', '{"id":"u2', [0xfe], '","type":"demo.echo","data":1}'],
        ['an overlong "/" in the type', '{"id":"u3","type":"demo.echo', [0xc0, 0xaf], '","data":1}'],
        ['a UTF-16 surrogate encoded as UTF-8', '{"id":"u4","type":"demo.echo","data":"', [0xed, 0xa0, 0x80], '"}'],
        ['a sequence cut short', '{"id":"u5","type":"demo.echo","data":"', [0xe2, 0x82], '"}'],
        ['a code point over U+10FFFF', '{"id":"u6","type":"demo.echo","data":"', [0xf4, 0x90, 0x80, 0x80], '"}'],
      ];
      const strict = new TextDecoder('utf-8', { fatal: true });
      for (const [what, before, bad, after] of cases) {
        conn.sendText([...enc(before), ...bad, ...enc(after)]);
        const m = await conn.next();
        if (m.close !== undefined) {
          throw new RuleError(rules.utf8, `${what}: the server closed the connection (${m.close}), where it should reply ParseError and read on`);
        }
        assert.equal(m.text, true, `${what}: the reply is a binary frame`);
        let text;
        try {
          text = strict.decode(m.bytes);
        } catch {
          throw new RuleError(rules.utf8, `${what}: the reply is not valid UTF-8 (it echoes the invalid bytes)`);
        }
        const f = JSON.parse(text);
        assert.deepEqual([f.type, f.code], ['error', 'ParseError'], `${what}: reply ${text}`);
        assert.equal('id' in f, false, `${what}: a frame that cannot be read has no id to echo: ${text}`);
        assert.equal(typeof f.message, 'string');
      }
      conn.sendText(enc('{"id":"ok","type":"demo.echo","data":"héllo ✓ 😀"}'));
      const m = await conn.next();
      assert.equal(m.close, undefined, `the connection closed (${m.close})`);
      assert.deepEqual(JSON.parse(strict.decode(m.bytes)), { id: 'ok', type: 'demo.echo.response', data: 'héllo ✓ 😀' });
    },
  },
  {
    check: 'field-limits',
    name: 'BadRequest: a type or an id over its length limit, and nothing of it echoed',
    rule: rules.fieldLimits,
    needs: ['demo.echo'],
    async run({ raw, frame, assert, limits }) {
      const conn = await raw();
      const reply = async (what) => {
        const text = await conn.next();
        assert.equal(typeof text, 'string', `${what}: want a text frame`);
        return { text, f: JSON.parse(text) };
      };
      // A type at the limit is a type like any other: no method answers it.
      const typeAt = `a.${'b'.repeat(limits.maxType - 2)}`;
      conn.send(JSON.stringify({ id: 't1', type: typeAt, data: 1 }));
      let { f, text } = await reply('a type at the limit');
      assert.deepEqual([f.id, f.type, f.code], ['t1', 'error', 'MethodNotFound'], `a type of ${limits.maxType} bytes (the limit): ${text.slice(0, 200)}`);

      const over = [
        [`a type of ${limits.maxType + 1} bytes`, `a.${'b'.repeat(limits.maxType - 1)}`],
        [`a type of ${limits.maxType + 2} bytes in ${Math.ceil((limits.maxType + 2) / 2)} characters (the limit counts bytes)`, 'é'.repeat(Math.ceil((limits.maxType + 1) / 2))],
      ];
      for (const [i, [what, type]] of over.entries()) {
        conn.send(JSON.stringify({ id: `t${i + 2}`, type, data: 1 }));
        ({ f, text } = await reply(what));
        assert.deepEqual([f.id, f.type, f.code], [`t${i + 2}`, 'error', 'BadRequest'], `${what}: ${text.slice(0, 200)}`);
        assert.deepEqual(Object.keys(f), ['id', 'type', 'code', 'message'], `${what}: ${text.slice(0, 200)}`);
        if (text.includes(type)) throw new RuleError(rules.fieldLimits, `${what}: the error reply echoes the type`);
      }
      // A notification over the limit gets nothing back.
      conn.send(JSON.stringify({ type: `n.${'b'.repeat(limits.maxType)}`, data: 1 }));

      // An id at the limit (its raw text) is echoed; one byte over, the request is
      // refused and its id is not echoed (nothing of it is kept).
      const idAt = `"${'i'.repeat(limits.maxId - 2)}"`;
      conn.send(`{"id":${idAt},"type":"demo.echo","data":4}`);
      ({ f, text } = await reply('an id at the limit'));
      frame(text, `{"id":${idAt},"type":"demo.echo.response","data":4}`);
      for (const [what, id] of [
        [`a string id of ${limits.maxId + 1} bytes`, `"${'i'.repeat(limits.maxId - 1)}"`],
        [`a number id of ${limits.maxId + 1} digits`, '7'.repeat(limits.maxId + 1)],
      ]) {
        conn.send(`{"id":${id},"type":"demo.echo","data":5}`);
        ({ f, text } = await reply(what));
        assert.deepEqual([f.type, f.code], ['error', 'BadRequest'], `${what}: ${text.slice(0, 200)}`);
        if ('id' in f || text.includes(id.slice(0, 64))) {
          throw new RuleError(rules.fieldLimits, `${what}: the error reply echoes the id, where nothing of the request is kept`);
        }
        assert.deepEqual(Object.keys(f), ['type', 'code', 'message'], `${what}: ${text.slice(0, 200)}`);
      }
      conn.send('{"id":"ok","type":"demo.echo","data":6}');
      frame(await conn.next(), '{"id":"ok","type":"demo.echo.response","data":6}', { afterNotification: true });
    },
  },
  {
    check: 'method-not-found',
    name: 'MethodNotFound: unknown services and methods, malformed types',
    rule: rules.malformedType,
    needs: [],
    async run({ connect, assert }) {
      const client = await connect();
      for (const type of ['no.such', 'user.nosuch', 'user..get', '.get', 'user.', 'user', '..']) {
        await assert.rejects(client.request(type, {}), { name: 'RpcError', code: 'MethodNotFound' }, type);
      }
    },
  },
  {
    check: 'invalid-params',
    name: 'InvalidParams: data that does not fit the method',
    rule: rules.invalidParams,
    needs: ['demo.sleep', 'demo.fail', 'user.get'],
    async run({ connect, assert }) {
      const client = await connect();
      const cases = [
        ['demo.sleep', { ms: -1 }],
        ['demo.sleep', { ms: 60_001 }],
        ['demo.sleep', { ms: 'soon' }],
        ['demo.sleep', [1, 2]],
        ['user.get', 'not an object'],
        ['demo.fail', { code: 'not a code', message: 'x' }],
        ['demo.fail', { code: 'lowerCamel', message: 'x' }],
      ];
      for (const [type, data] of cases) {
        await assert.rejects(client.request(type, data), { code: 'InvalidParams' }, `${type} ${JSON.stringify(data)}`);
      }
    },
  },
  {
    check: 'coded-errors',
    name: 'coded errors keep their code and message',
    rule: rules.demoFail,
    needs: ['demo.fail', 'user.get'],
    async run({ connect, assert }) {
      const client = await connect();
      for (const [code, message] of [['NotFound', 'no such thing'], ['PaymentRequired', 'héllo "wörld"'], ['ServerError', 'boom'], ['E2', '']]) {
        await assert.rejects(client.request('demo.fail', { code, message }), { name: 'RpcError', code, message });
      }
      await assert.rejects(client.request('user.get', { id: 'nobody-has-this-id' }), { code: 'NotFound' });
    },
  },
  {
    check: 'client-timeout',
    name: 'Timeout: the client gives up, the late reply is dropped',
    rule: rules.clientTimeout,
    needs: ['demo.sleep', 'demo.echo'],
    async run({ connect, assert }) {
      const client = await connect();
      const events = [];
      client.on('*', appEvents(events));
      const late = frameSeen(client.socket, (f) => f.type === 'demo.sleep.response');
      const elapsed = within();
      await assert.rejects(client.request('demo.sleep', { ms: 600 }, { timeoutMs: 100 }), { code: 'Timeout', message: 'timeout: demo.sleep' });
      assert.ok(elapsed() < 600, `timed out after ${elapsed()} ms, want about 100`);
      assert.equal(client.pendingCount, 0);
      await late;
      assert.deepEqual(events, []);
      assert.equal(await client.request('demo.echo', 3), 3);
    },
  },
  {
    check: 'close-1009',
    name: 'Disconnected: the server closes (frame over 1 MiB, 1009), pending requests fail at once',
    rule: rules.closeCodes,
    needs: ['demo.sleep'],
    async run({ connect, assert, limits }) {
      const client = await connect();
      const elapsed = within();
      const held = client.request('demo.sleep', { ms: 5000 });
      const big = client.request('demo.echo', 'x'.repeat(limits.maxFrame));
      await Promise.all([
        assert.rejects(held, { code: 'Disconnected', message: 'disconnected: demo.sleep', closeCode: 1009 }),
        assert.rejects(big, { code: 'Disconnected' }),
      ]);
      assert.ok(elapsed() < 5000, `failed after ${elapsed()} ms, want before the reply`);
      assert.equal(client.connected, false);
      await assert.rejects(client.request('demo.echo', 1), { code: 'Disconnected' });
    },
  },
  {
    check: 'client-close',
    name: 'Disconnected: the client closes, pending requests fail at once',
    rule: rules.clientDisconnect,
    needs: ['demo.sleep'],
    async run({ connect, assert }) {
      const client = await connect();
      const held = client.request('demo.sleep', { ms: 5000 });
      const elapsed = within();
      const closed = client.close();
      await assert.rejects(held, { code: 'Disconnected', message: 'disconnected: demo.sleep' });
      assert.ok(elapsed() < 1000);
      await closed;
      assert.equal(client.connected, false);
    },
  },
  {
    check: 'abort',
    name: 'an AbortSignal cancels a request in flight',
    rule: rules.anyOrder,
    needs: ['demo.sleep', 'demo.echo'],
    async run({ connect, assert }) {
      const client = await connect();
      const ac = new AbortController();
      const p = client.request('demo.sleep', { ms: 300 }, { signal: ac.signal });
      const late = frameSeen(client.socket, (f) => f.type === 'demo.sleep.response');
      ac.abort();
      await assert.rejects(p, { name: 'AbortError' });
      assert.equal(client.pendingCount, 0);
      await late;
      assert.equal(await client.request('demo.echo', 'x'), 'x');
    },
  },
  {
    check: 'ticks',
    name: 'events: demo.ticks pushes its reply, then N demo.tick events in order',
    rule: rules.demoTicks,
    needs: ['demo.ticks'],
    async run({ raw, connect, assert }) {
      // The order on the wire: the reply first, then the ticks. (A client's
      // handlers cannot show it: frames that arrive together may reach an
      // event handler before a promise's continuation.)
      const conn = await raw();
      conn.send('{"id":"t","type":"demo.ticks","data":{"count":5,"intervalMs":20}}');
      const wire = [];
      for (let i = 0; i < 6; i++) wire.push(await conn.nextJSON());
      assert.deepEqual(
        wire.map((f) => [f.type, f.id, f.data]),
        [['demo.ticks.response', 't', { count: 5 }], ...[1, 2, 3, 4, 5].map((n) => ['demo.tick', undefined, { n }])],
      );
      // Through the client: the reply, and the ticks as events, in order.
      const client = await connect();
      const all = [];
      client.on('*', appEvents(all));
      const ticks = collectEvents(client, 'demo.tick', 5);
      assert.deepEqual(await client.request('demo.ticks', { count: 5, intervalMs: 20 }), { count: 5 });
      assert.deepEqual(await ticks, [1, 2, 3, 4, 5].map((n) => ({ n })));
      assert.deepEqual(all.map((f) => [f.type, f.data.n, 'id' in f]), [1, 2, 3, 4, 5].map((n) => ['demo.tick', n, false]));
    },
  },
  {
    check: 'ticks-with-requests',
    name: 'events do not disturb replies: 50 ticks streaming through 50 requests',
    rule: rules.eventShape,
    needs: ['demo.ticks', 'demo.echo', 'demo.sleep'],
    async run({ connect, assert }) {
      const client = await connect();
      const ticks = collectEvents(client, 'demo.tick', 50);
      assert.deepEqual(await client.request('demo.ticks', { count: 50, intervalMs: 2 }), { count: 50 });
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => (i % 2 ? client.request('demo.echo', { i }) : client.request('demo.sleep', { ms: i }))),
      );
      replies.forEach((r, i) => assert.deepEqual(r, i % 2 ? { i } : { ms: i }));
      assert.deepEqual((await ticks).map((d) => d.n), Array.from({ length: 50 }, (_, i) => i + 1));
    },
  },
  {
    check: 'notifications',
    name: 'notifications: nothing comes back, not even an error; the method runs',
    rule: rules.notification,
    needs: ['demo.echo', 'user.save', 'user.get'],
    async run({ raw, connect, frame, assert }) {
      const conn = await raw();
      conn.send('{"type":"demo.echo","data":1}');
      conn.send('{"id":null,"type":"demo.echo","data":2}');
      conn.send('{"type":"no.such","data":3}');
      conn.send('{"type":"demo.sleep","data":{"ms":-1}}');
      conn.send('{"id":"r1","type":"demo.echo","data":4}');
      frame(await conn.next(), '{"id":"r1","type":"demo.echo.response","data":4}', { afterNotification: true });

      const client = await connect();
      const id = `n-${crypto.getRandomValues(new Uint32Array(2)).join('')}`;
      client.notify('user.save', { id, name: 'Grace Hopper' });
      // A server serves a connection's frames concurrently: the save may land after a
      // get sent behind it. Ask until it has, a bounded number of times.
      for (let attempt = 1; ; attempt++) {
        const got = await client.request('user.get', { id }).catch((err) => err);
        if (got?.name === 'Grace Hopper') break;
        assert.ok(got instanceof RpcError && got.code === 'NotFound', `got ${got}, want the user or NotFound`);
        assert.ok(attempt < 200, 'the notified user.save never took effect');
      }
    },
  },
  {
    check: 'bad-frames-client',
    name: "bad frames on the client's own connection, then good requests",
    rule: rules.staysOpen,
    needs: ['user.get', 'demo.echo'],
    async run({ connect, assert }) {
      const client = await connect();
      const errors = collectEvents(client, 'error', 3);
      client.socket.send('this is not JSON');
      client.socket.send(new Uint8Array([0xff, 0x00, 0x7b]));
      client.socket.send('{"id":"x","type":"demo.echo"'); // cut short
      const user = await client.request('user.get', { id: '123' });
      assert.equal(user.id, '123');
      const frames = await errors;
      assert.deepEqual(frames, [undefined, undefined, undefined], 'error events carry no data');
      assert.equal(await client.request('demo.echo', 'fine'), 'fine');
      assert.equal(client.connected, true);
    },
  },
  {
    check: 'concurrent-1000',
    name: '1000 concurrent requests, replies out of order, all matched',
    rule: rules.anyOrder,
    needs: ['demo.echo', 'demo.sleep'],
    timeoutMs: 30_000,
    async run({ connect, assert }) {
      const client = await connect();
      const n = 1000;
      const replies = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          i % 4 === 0 ? client.request('demo.sleep', { ms: (i * 37) % 100 }) : client.request('demo.echo', { i, text: `payload ${i}` }),
        ),
      );
      for (const [i, r] of replies.entries()) {
        assert.deepEqual(r, i % 4 === 0 ? { ms: (i * 37) % 100 } : { i, text: `payload ${i}` }, `reply ${i}`);
      }
      assert.equal(client.pendingCount, 0);
    },
  },
  {
    check: 'reconnect',
    name: 'reconnect: a dropped connection comes back, pending requests fail and are not resent',
    rule: rules.clientDisconnect,
    needs: ['demo.sleep', 'demo.echo'],
    async run({ connect, assert, limits }) {
      const client = await connect({ reconnect: { initialDelayMs: 20, maxDelayMs: 200 } });
      const first = client.socket;
      const dropped = new Promise((resolve) => client.on('disconnect', resolve));
      const reconnected = new Promise((resolve) => client.on('reconnect', resolve));
      const held = client.request('demo.sleep', { ms: 5000 });
      client.request('demo.echo', 'x'.repeat(limits.maxFrame)).catch(() => {}); // the server closes: 1009
      await assert.rejects(held, { code: 'Disconnected', closeCode: 1009 });
      const info = await dropped;
      assert.deepEqual([info.code, info.reconnecting], [1009, true]);
      assert.deepEqual(await reconnected, { attempt: 1 });
      assert.notEqual(client.socket, first);
      assert.equal(client.connected, true);
      assert.equal(await client.request('demo.echo', 'back'), 'back');
    },
  },
];

/** Data that each reference method accepts, to probe whether a target has it. */
export const probes = {
  'user.get': { id: '123' },
  'user.save': { id: 'probe', name: 'probe' },
  'demo.echo': null,
  'demo.sleep': { ms: 0 },
  'demo.fail': { code: 'Probe', message: 'probe' },
  'demo.ticks': { count: 0, intervalMs: 0 },
};
