#!/usr/bin/env node
// A server written from the server shape of the lesson the protocol comes from
// ("Request-Response over WebSocket", see PROTOCOL.md), not from this project's Go code: a
// dispatch table keyed by request types, the request's id echoed back, and an exception's
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
import { isUtf8 } from 'node:buffer';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });

// Errors whose class name is the wire code, as the lesson's `type(e).__name__`.
class NotFound extends Error {
  name = 'NotFound';
}
class MethodNotFound extends Error {
  name = 'MethodNotFound';
}

// PROTOCOL.md, "Frames": the limits this server documents, rpcws's own.
const MAX_FRAME = 1 << 20; // bytes of a frame
const MAX_TYPE = 256; // bytes of a request's type
const MAX_ID = 1024; // bytes of a request's id, its raw JSON text

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const users = new Map([['123', { id: '123', name: 'Ada Lovelace' }]]);

class InvalidParams extends Error {
  name = 'InvalidParams';
}
class BadRequest extends Error {
  name = 'BadRequest';
}

// The dispatch table. A handler gets the request's data and the connection's context,
// and returns the reply's data or throws.
const handlers = {
  'user.get': async (data = {}) => {
    if (data === null || typeof data !== 'object' || Array.isArray(data)) throw new InvalidParams('user.get takes {id}');
    const { id = '' } = data;
    if (typeof id !== 'string') throw new InvalidParams('id must be a string');
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

// The lesson's handle(ws, msg), one per frame. rid is the id as the raw text that
// arrived (PROTOCOL.md: echoed as it came, not re-encoded), or undefined.
async function handle(ws, msg, rid) {
  const type = msg.type;
  const after = [];
  const ctx = {
    ws,
    push: (t, data) => send(ws, { type: t, data }),
    afterReply: (fn) => after.push(fn),
  };
  try {
    if (typeof type !== 'string' || type === '') throw new BadRequest('no type');
    if (Buffer.byteLength(type) > MAX_TYPE) throw new BadRequest(`type is longer than ${MAX_TYPE} bytes`);
    const result = await dispatch(type, msg.data, ctx);
    if (rid === undefined) return; // a notification: no reply
    const reply = `{"id":${rid},"type":${JSON.stringify(`${type}.response`)},"data":${JSON.stringify(result ?? null)}}`;
    if (Buffer.byteLength(reply) > MAX_FRAME) throw Object.assign(new Error(`the reply is over ${MAX_FRAME} bytes`), { code: 'TooLarge' });
    sendText(ws, reply);
  } catch (e) {
    if (rid === undefined) return console.error(`notification ${type}: ${e.message}`);
    const code = e.code ?? e.name;
    sendText(ws, `{"id":${rid},"type":"error","code":${JSON.stringify(code)},"message":${JSON.stringify(e.message)}}`);
  }
  for (const fn of after) fn();
}

function send(ws, frame) {
  sendText(ws, JSON.stringify(frame));
}

function sendText(ws, text) {
  if (ws.readyState === ws.OPEN) ws.send(text);
}

// The raw text of the top-level "id" of a JSON object's text (the last one, as
// JSON.parse keeps), or undefined when there is none or it is null. text parses.
function rawId(text) {
  const re = /\s*("(?:[^"\\]|\\.)*")\s*:\s*/y;
  let i = text.indexOf('{') + 1;
  let id;
  for (;;) {
    re.lastIndex = i;
    const m = re.exec(text);
    if (!m) return id === 'null' ? undefined : id;
    const start = re.lastIndex;
    const end = valueEnd(text, start);
    if (JSON.parse(m[1]) === 'id') id = text.slice(start, end);
    i = end;
    while (/\s/.test(text[i])) i++;
    if (text[i] === ',') i++;
  }
}

// The index just past the JSON value that starts at text[i].
function valueEnd(text, i) {
  let depth = 0;
  for (let inString = false; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      if (!inString && depth === 0) return i + 1;
    } else if (c === '"') inString = true;
    else if (depth === 0 && /[\s,}\]]/.test(c)) return i;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return i;
}

// ws would close the connection on a text frame that is not UTF-8 (1007): PROTOCOL.md
// wants ParseError and the connection kept, so the frames are checked here instead.
const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(values.port), skipUTF8Validation: true });
wss.on('connection', (ws) => {
  ws.on('error', (err) => console.error(`connection: ${err.message}`));
  ws.on('message', (raw, isBinary) => {
    let msg;
    let rid;
    try {
      if (isBinary) throw new Error('binary frame');
      if (!isUtf8(raw)) throw new Error('not valid UTF-8');
      msg = JSON.parse(raw.toString('utf8'));
      if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) throw new Error('not a JSON object');
      rid = rawId(raw.toString('utf8'));
    } catch (e) {
      return send(ws, { type: 'error', code: 'ParseError', message: e.message });
    }
    // An id over the limit is not echoed: nothing of the request is kept.
    if (rid !== undefined && Buffer.byteLength(rid) > MAX_ID) return send(ws, { type: 'error', code: 'BadRequest', message: `id is longer than ${MAX_ID} bytes` });
    handle(ws, msg, rid);
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
