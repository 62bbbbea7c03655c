// bench.mjs: what the client itself costs a request, without a network. A fake socket
// echoes each request back at once (one microtask later); the client sends, matches the
// reply to its request by id and settles the promise. Run it on two checkouts to
// compare them; numbers on one machine move by a tenth or more between runs.
//
//   node bench.mjs [requests]      (npm run bench)
//
// prints, for 1 and for 64 requests outstanding, the µs a request took.

import { connect } from './rpcws.js';
import { FakeSocket } from './test/fakesocket.mjs';

const requests = Number(process.argv[2] ?? 200_000);

// EchoSocket answers every request with a reply that carries its id and data.
class EchoSocket extends FakeSocket {
  send(text) {
    super.send(text);
    this.sent.length = 0; // keep nothing
    const { id, type, data } = JSON.parse(text);
    queueMicrotask(() => this.receive(JSON.stringify({ id, type: `${type}.response`, data })));
  }
}

const opening = connect('ws://fake/rpc', { WebSocket: EchoSocket });
FakeSocket.last.accept();
const client = await opening;

async function loop(n) {
  for (let i = 0; i < n; i++) await client.request('demo.echo', { A: 7, B: 6 });
}

async function run(outstanding, n) {
  const start = performance.now();
  await Promise.all(Array.from({ length: outstanding }, () => loop(Math.ceil(n / outstanding))));
  return ((performance.now() - start) * 1000) / n;
}

const results = [];
for (const outstanding of [1, 64]) {
  await run(outstanding, 2_000); // warm-up
  results.push(`${outstanding} outstanding: ${(await run(outstanding, requests)).toFixed(2)} µs a request`);
}
console.log(results.join(', '));
client.close();
