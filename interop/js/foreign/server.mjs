#!/usr/bin/env node
// A server written from the lesson's server shape, not from this project's Go code: a
// dispatch table keyed by lesson types, the request's id echoed back, and an exception's
// name and text sent as the error's code and message. The Go tests in interop/ call it
// with rpcws.Dial and the stock net/rpc Call, to show that the Go client talks to a
// server that never heard of net/rpc.
//
//   node foreign/server.mjs [--port 0]
//
// It listens on 127.0.0.1, prints "listening ws://127.0.0.1:PORT/" on stdout once ready,
// and exits when stdin closes (its parent went away) or on SIGINT/SIGTERM.
//
// Besides the lesson's user.get and user.save, it has methods that misbehave on
// purpose: demo.never never replies, demo.late replies after a delay and then pushes
// demo.late.sent, demo.chatty pushes events before its reply, demo.drop hangs up.

import { WebSocketServer } from 'ws';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

// Errors whose class name is the wire code, as the lesson's `type(e).__name__`.
class NotFound extends Error {
  name = 'NotFound';
}
class MethodNotFound extends Error {
  name = 'MethodNotFound';
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const users = new Map([['123', { id: '123', name: 'Ada Lovelace' }]]);

// The dispatch table. A handler gets the request's data and the connection's context,
// and returns the reply's data or throws.
const handlers = {
  'user.get': async ({ id } = {}) => {
    const user = users.get(id);
    if (!user) throw new NotFound(`no user ${id}`);
    return user;
  },
  'user.save': async ({ id, name } = {}) => {
    if (typeof id !== 'string' || id === '') throw new TypeError('id must be a non-empty string');
    users.set(id, { id, name });
    return { id, name };
  },
  'demo.echo': async (data) => data,
  'demo.never': () => new Promise(() => {}),
  'demo.late': async ({ ms = 0 } = {}, ctx) => {
    await sleep(ms);
    ctx.afterReply(() => ctx.push('demo.late.sent', { ms }));
    return { ms };
  },
  'demo.chatty': async ({ count = 0 } = {}, ctx) => {
    for (let n = 1; n <= count; n++) ctx.push('demo.chat', { n });
    return { count };
  },
  'demo.drop': async (data, ctx) => {
    ctx.ws.terminate();
    return new Promise(() => {});
  },
};

async function dispatch(type, data, ctx) {
  const handler = Object.hasOwn(handlers, type) ? handlers[type] : undefined;
  if (!handler) throw new MethodNotFound(`no method ${type}`);
  return handler(data ?? undefined, ctx);
}

// The lesson's handle(ws, msg), one per frame.
async function handle(ws, msg) {
  const rid = msg.id;
  const type = msg.type;
  const after = [];
  const ctx = {
    ws,
    push: (t, data) => send(ws, { type: t, data }),
    afterReply: (fn) => after.push(fn),
  };
  try {
    const result = await dispatch(type, msg.data, ctx);
    if (rid == null) return; // a notification: no reply
    send(ws, { id: rid, type: `${type}.response`, data: result ?? null });
  } catch (e) {
    if (rid == null) return console.error(`notification ${type}: ${e.message}`);
    send(ws, { id: rid, type: 'error', code: e.code ?? e.name, message: e.message });
  }
  for (const fn of after) fn();
}

function send(ws, frame) {
  if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(frame));
}

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values.port) });
wss.on('connection', (ws) => {
  ws.on('message', (raw, isBinary) => {
    let msg;
    try {
      if (isBinary) throw new Error('binary frame');
      msg = JSON.parse(raw.toString('utf8'));
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('not a JSON object');
    } catch (e) {
      return send(ws, { type: 'error', code: 'ParseError', message: e.message });
    }
    handle(ws, msg);
  });
});
wss.on('listening', () => {
  const { port } = wss.address();
  console.log(`listening ws://127.0.0.1:${port}/`);
});

const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
