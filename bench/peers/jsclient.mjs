// jsclient.mjs: calls per second of a JavaScript client in Node against an rpcws
// server, for bench/peers (which writes this file and rpcws.mjs, the reference client,
// side by side into a temporary directory and runs it there).
//
//   node jsclient.mjs URL MODE WARMUP_MS DURATION_MS MAX_CALLS OUTSTANDING[,OUTSTANDING...]
//
// MODE "rpcws" calls through the reference client (rpcws.mjs); MODE "bare" sends the
// same frames over a bare WebSocket and matches the replies to their requests by id by
// hand: what the reference client costs is the difference. For each OUTSTANDING, on
// the same connection, OUTSTANDING loops each call demo.echo with {A: 7, B: 6} and
// await the reply, which must be the same, for WARMUP_MS unmeasured and then for
// DURATION_MS (and at most MAX_CALLS calls). It prints one line of JSON:
//
//   {"mode":"bare","results":[{"outstanding":1,"calls":N,"seconds":S,"peak":P},...]}
//
// where peak is the most requests that were waiting for their reply at once.
// Any error, a wrong reply among them, ends it with a non-zero status.

import { connect } from './rpcws.mjs';

const [url, mode, warmupMs, durationMs, maxCalls, outstandingList] = process.argv.slice(2);

const TYPE = 'demo.echo';
const DATA = { A: 7, B: 6 };

// openRPCWS connects through the reference client.
async function openRPCWS() {
  const client = await connect(url);
  return {
    call: (data) => client.request(TYPE, data),
    pending: () => client.pendingCount,
    close: () => client.close(),
  };
}

// openBare connects a bare WebSocket: requests carry a counter as their id, and a Map
// holds what waits for each reply.
function openBare() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const pending = new Map();
    let nextId = 0;
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      const p = pending.get(msg.id);
      if (p === undefined) return;
      pending.delete(msg.id);
      if (msg.type === 'error') p.reject(new Error(`${msg.code}: ${msg.message}`));
      else p.resolve(msg.data);
    };
    ws.onclose = () => {
      for (const p of pending.values()) p.reject(new Error('disconnected'));
      pending.clear();
    };
    ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
    ws.onopen = () =>
      resolve({
        call: (data) =>
          new Promise((resolve, reject) => {
            const id = ++nextId;
            pending.set(id, { resolve, reject });
            ws.send(JSON.stringify({ id, type: TYPE, data }));
          }),
        pending: () => pending.size,
        close: () =>
          new Promise((resolve) => {
            ws.addEventListener('close', () => resolve(), { once: true });
            ws.close(1000);
          }),
      });
  });
}

// phase runs `outstanding` calling loops for ms milliseconds or max calls.
async function phase(conn, outstanding, ms, max) {
  let started = 0;
  let calls = 0;
  let peak = 0;
  const start = performance.now();
  const deadline = start + ms;
  async function loop() {
    // Every loop calls at least once, so that `outstanding` requests do wait at once.
    while (started < max && (started < outstanding || performance.now() < deadline)) {
      started++;
      const reply = conn.call(DATA);
      peak = Math.max(peak, conn.pending());
      const got = await reply;
      if (got?.A !== DATA.A || got?.B !== DATA.B) throw new Error(`wrong reply: ${JSON.stringify(got)}`);
      calls++;
    }
  }
  await Promise.all(Array.from({ length: outstanding }, loop));
  return { calls, seconds: (performance.now() - start) / 1000, peak };
}

async function main() {
  if (outstandingList === undefined) {
    throw new Error('usage: node jsclient.mjs URL MODE WARMUP_MS DURATION_MS MAX_CALLS OUTSTANDING[,...]');
  }
  if (typeof WebSocket !== 'function') {
    throw new Error('no global WebSocket: run Node 22 or later, or Node 20 with --experimental-websocket');
  }
  const conn = mode === 'rpcws' ? await openRPCWS() : mode === 'bare' ? await openBare() : null;
  if (conn === null) throw new Error(`unknown mode ${mode}: want rpcws or bare`);
  const results = [];
  for (const outstanding of outstandingList.split(',').map(Number)) {
    await phase(conn, outstanding, Number(warmupMs), Number(maxCalls));
    results.push({ outstanding, ...(await phase(conn, outstanding, Number(durationMs), Number(maxCalls))) });
  }
  await conn.close();
  console.log(JSON.stringify({ mode, results }));
}

// One line on stderr for the bench to show.
main().catch((err) => {
  console.error(`jsclient.mjs ${mode}: ${err?.message ?? err}`);
  process.exit(1);
});
