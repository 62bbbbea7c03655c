// A small scripted server of the history part of PROTOCOL.md ("Sessions and
// recovery"), in one process, for the conformance tool's own tests: the session frame,
// topic.join, topic.leave and topic.publish with positions, rpcws.joined and
// rpcws.left, and rpcws.recover with replay, resync and one-time sessions, the identity
// from the `user` query parameter as the reference cluster server takes it. It is not
// a reference: it exists so that the history level can be shown to pass a server that
// keeps the rules and to fail, naming the rule, one that breaks one (faults).
//
//   const server = await startHistoryServer({ history: true, size: 10, fault: 'no-left' });
//   server.url; await server.close();

import { WebSocketServer } from 'ws';
import { randomBytes } from 'node:crypto';

/**
 * The faults a server can be started with, each breaking one rule, and the check of
 * suite/history.mjs that must then fail, with the rule it names.
 */
export const faults = {
  'joined-after-reply': { check: 'history/joined', rule: 'joined' },
  'field-order': { check: 'history/positions', rule: 'eventPosition' },
  'offset-gap': { check: 'history/positions', rule: 'offsets' },
  'no-left': { check: 'history/left', rule: 'left' },
  'replay-all': { check: 'history/recover-replay', rule: 'replay' },
  'no-resync': { check: 'history/recover-resync', rule: 'resync' },
  'reuse-session': { check: 'history/one-time', rule: 'sessionQualifies' },
  'any-session': { check: 'history/guessed', rule: 'sessionQualifies' },
  'ignore-identity': { check: 'history/other-identity', rule: 'sessionQualifies' },
  'join-unheld': { check: 'history/unheld-topic', rule: 'unheld' },
  'recover-anywhere': { check: 'history/recover-not-first', rule: 'recoverFirst' },
  'short-session': { check: 'history/session', rule: 'session' },
};

/**
 * Starts the server on 127.0.0.1.
 * @param {{history?: boolean, size?: number, fault?: keyof typeof faults}} [options]
 *   history: keep history (else the server is one that keeps none); size: events kept
 *   per topic.
 * @returns {Promise<{url: string, close: () => Promise<void>}>}
 */
export async function startHistoryServer({ history = true, size = 10, fault } = {}) {
  const topics = new Map(); // name → {epoch, offset, events: [{offset, data}], members: Set}
  const sessions = new Map(); // id → {user, topics: Set, recovered}
  const topic = (name) => {
    if (!topics.has(name)) topics.set(name, { epoch: randomBytes(4).toString('hex'), offset: 0, events: [], members: new Set() });
    return topics.get(name);
  };
  const send = (ws, frame) => ws.readyState === ws.OPEN && ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  const event = (name, t, ev) =>
    fault === 'field-order'
      ? { type: 'topic.message', topic: name, data: { topic: name, data: ev.data }, epoch: t.epoch, offset: ev.offset }
      : { type: 'topic.message', data: { topic: name, data: ev.data }, topic: name, epoch: t.epoch, offset: ev.offset };

  const methods = {
    'demo.echo': (c, data) => data,
    'topic.join': (c, { topic: name }) => {
      const t = topic(name);
      t.members.add(c.ws);
      c.session?.topics.add(name);
      if (!history) return { topic: name };
      const joined = { type: 'rpcws.joined', data: { topic: name, epoch: t.epoch, offset: t.offset } };
      if (fault === 'joined-after-reply') c.after.push(() => send(c.ws, joined));
      else send(c.ws, joined);
      return { topic: name };
    },
    'topic.leave': (c, { topic: name }) => {
      topic(name).members.delete(c.ws);
      c.session?.topics.delete(name);
      if (history && fault !== 'no-left') send(c.ws, { type: 'rpcws.left', data: { topic: name } });
      return { topic: name };
    },
    'topic.publish': (c, { topic: name, data }) => {
      const t = topic(name);
      t.offset += fault === 'offset-gap' ? 2 : 1;
      const ev = { offset: t.offset, data };
      t.events.push(ev);
      if (t.events.length > size) t.events.shift();
      for (const ws of t.members) {
        send(ws, history ? event(name, t, ev) : { type: 'topic.message', data: { topic: name, data } });
      }
      return { topic: name };
    },
    'rpcws.recover': (c, { session: id, topics: listed = {} }) => {
      if (c.requests !== 1 && fault !== 'recover-anywhere') throw Object.assign(new Error('rpcws.recover must come first'), { code: 'BadRequest' });
      let s = sessions.get(id);
      if (fault === 'any-session' && !s) s = { user: c.user, topics: new Set(Object.keys(listed)), recovered: false };
      const ok = s && !s.recovered && (s.user === c.user || fault === 'ignore-identity');
      if (!ok) {
        if (Object.keys(listed).length) send(c.ws, { type: 'rpcws.resync', data: { topics: Object.keys(listed) } });
        return { recovered: false, topics: {} };
      }
      if (fault !== 'reuse-session') s.recovered = true;
      const lost = [];
      const out = {};
      const held = fault === 'join-unheld' ? new Set([...s.topics, ...Object.keys(listed)]) : s.topics;
      for (const name of held) {
        const t = topic(name);
        t.members.add(c.ws);
        c.session.topics.add(name);
        const pos = listed[name];
        const after = pos ? t.events.filter((e) => e.offset > pos.offset) : [];
        const whole = pos && pos.epoch === t.epoch && (pos.offset === t.offset || after[0]?.offset === pos.offset + 1);
        if (whole) for (const ev of fault === 'replay-all' ? t.events : after) send(c.ws, event(name, t, ev));
        else lost.push(name);
        out[name] = { epoch: t.epoch, offset: t.offset, recovered: Boolean(whole) };
      }
      if (lost.length && fault !== 'no-resync') send(c.ws, { type: 'rpcws.resync', data: { topics: lost } });
      return { recovered: true, topics: out };
    },
  };

  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  wss.on('connection', (ws, req) => {
    const user = new URL(req.url, 'http://x').searchParams.get('user') ?? '';
    const c = { ws, user, requests: 0, session: null };
    if (history) {
      const id = randomBytes(fault === 'short-session' ? 4 : 16).toString('base64url');
      c.session = { user, topics: new Set(), recovered: false };
      sessions.set(id, c.session);
      send(ws, { type: 'rpcws.session', data: { id, window: 120_000 } });
    }
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString());
      c.requests++;
      c.after = [];
      const method = Object.hasOwn(methods, msg.type) && (history || !msg.type.startsWith('rpcws.')) ? methods[msg.type] : null;
      let reply;
      try {
        if (!method) throw Object.assign(new Error(`no method ${msg.type}`), { code: 'MethodNotFound' });
        reply = { id: msg.id, type: `${msg.type}.response`, data: method(c, msg.data ?? {}) ?? null };
      } catch (err) {
        reply = { id: msg.id, type: 'error', code: err.code ?? 'ServerError', message: err.message };
      }
      if (msg.id !== undefined && msg.id !== null) send(ws, reply);
      for (const f of c.after) f();
    });
    ws.on('close', () => {
      for (const t of topics.values()) t.members.delete(ws);
    });
  });
  await new Promise((resolve) => wss.on('listening', resolve));
  return {
    url: `ws://127.0.0.1:${wss.address().port}/rpc`,
    close: () =>
      new Promise((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}
