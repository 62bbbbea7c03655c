// The history level: checks for servers that keep history (PROTOCOL.md, "Sessions and
// recovery"): the session frame, positions on topic events, rpcws.joined and
// rpcws.left, and rpcws.recover (replay, resync, one-time sessions). They use the
// reference cluster server's topic.join, topic.leave and topic.publish, and its `user`
// query parameter as the connection's identity. A server whose first frame is not
// rpcws.session keeps no history: detectHistory tells, and the runner skips the level.
//
// Every check talks raw frames (suite/frames.mjs), so that it sees each frame in the
// order the server wrote it; a publisher connection of its own publishes, so that what
// a member reads is only what the server sends it. Topic names are fresh for each run.

import { openRaw } from './frames.mjs';
import { historyRules as rules, RuleError } from './rules.mjs';

/** The request types the level uses. */
export const historyNeeds = ['topic.join', 'topic.leave', 'topic.publish'];

/** Data that each of historyNeeds accepts, to probe whether a target has it. */
export const historyProbes = {
  'topic.join': { topic: 'rpcws-conformance-probe' },
  'topic.leave': { topic: 'rpcws-conformance-probe' },
  'topic.publish': { topic: 'rpcws-conformance-probe', data: null },
};

/**
 * Whether the server at url keeps history: it does when the first frame it writes on
 * a connection is rpcws.session. A request is sent so that a server that keeps none
 * answers at once (its reply, or an error, comes first). Resolves with {history,
 * first}, first the first frame's text.
 * @param {string} url
 */
export async function detectHistory(url) {
  const conn = await openRaw(url, { keepSession: true });
  try {
    conn.send('{"id":"rpcws-conformance-detect","type":"demo.echo","data":null}');
    const first = await conn.next();
    let f;
    try {
      f = JSON.parse(first);
    } catch {
      return { history: false, first: String(first) };
    }
    return { history: f?.type === 'rpcws.session', first };
  } finally {
    await conn.close();
  }
}

const keys = (o) => (o !== null && typeof o === 'object' ? Object.keys(o) : []);
const show = (text) => (text.length > 300 ? `${text.slice(0, 300)}…` : text);
const chars = (s) => [...s].length;
const topicName = (what) => `conf-${crypto.getRandomValues(new Uint32Array(2)).join('')}-${what}`;

/** The url with the `user` query parameter set to user (the cluster server's identity). */
function asUser(url, user) {
  const u = new URL(url);
  u.searchParams.set('user', user);
  return u.toString();
}

/**
 * A raw connection that knows its session and sends requests. Frames that a caller
 * has not taken (a member's own events that came before a publish's reply, say) wait
 * in a backlog, in order, for the next read.
 */
class Peer {
  #n = 0;
  #backlog = [];

  constructor(conn, session) {
    this.conn = conn;
    this.session = session;
  }

  /** Sends a request; returns its id. */
  send(type, data) {
    const id = `h${++this.#n}`;
    this.conn.send(JSON.stringify({ id, type, data }));
    return id;
  }

  /**
   * Sends a request and reads frames until its reply: resolves with {reply, text,
   * before}, before the frames that came first ({f, text} each), taken. An error
   * reply resolves too (reply.type "error").
   */
  async call(type, data) {
    const id = this.send(type, data);
    const before = [];
    for (;;) {
      const { f, text } = await this.read(`the reply to ${type}`);
      if (f.id === id) return { reply: f, text, before };
      before.push({ f, text });
    }
  }

  /** Like call, and fails unless the reply is a success; the frames before it stay unread. */
  async ok(type, data) {
    const r = await this.call(type, data);
    this.#backlog.unshift(...r.before);
    if (r.reply.type !== `${type}.response`) throw new Error(`${type} ${JSON.stringify(data)}: ${show(r.text)}`);
    return r;
  }

  /**
   * Sends the requests [type, data] at once, then reads until every reply has come;
   * fails unless each is a success. Other frames stay unread, in order.
   */
  async okAll(requests) {
    const ids = new Map(requests.map(([type, data]) => [this.send(type, data), type]));
    const others = [];
    while (ids.size > 0) {
      const { f, text } = await this.read(`the replies to ${ids.size} requests`);
      if (!ids.has(f.id)) {
        others.push({ f, text });
        continue;
      }
      if (f.type !== `${ids.get(f.id)}.response`) throw new Error(`${ids.get(f.id)}: ${show(text)}`);
      ids.delete(f.id);
    }
    this.#backlog.unshift(...others);
  }

  /** The next frame, parsed ({f, text}), within 5 s. */
  async read(what) {
    if (this.#backlog.length) return this.#backlog.shift();
    let text;
    try {
      text = await this.conn.next();
    } catch (err) {
      throw new Error(`waiting for ${what}: ${err.message}`);
    }
    return { f: JSON.parse(text), text };
  }

  /** Closes the connection; resolves once it has closed. */
  close() {
    return this.conn.close();
  }
}

/**
 * Opens a connection (as user, if given) and reads its first frame, which must be
 * rpcws.session.
 */
async function open(t, user) {
  const conn = await t.rawAt(user === undefined ? t.url : asUser(t.url, user));
  let text;
  try {
    text = await conn.next();
  } catch (err) {
    throw new RuleError(rules.session, `no first frame: ${err.message}`);
  }
  const f = JSON.parse(text);
  if (f.type !== 'rpcws.session') throw new RuleError(rules.session, `the first frame is not rpcws.session: ${show(text)}`);
  return new Peer(conn, f.data?.id);
}

/** Checks that a frame is an rpcws.joined of topic, and returns its position. */
function joinedOf(frames, topic) {
  const joined = frames.filter(({ f }) => f.type === 'rpcws.joined');
  if (joined.length !== 1) {
    throw new RuleError(rules.joined, `${joined.length} rpcws.joined frames before the reply to topic.join ${topic}, want one: ${frames.map(({ text }) => show(text)).join(' ') || 'none'}`);
  }
  const { f, text } = joined[0];
  if (keys(f).join() !== 'type,data' || keys(f.data).join() !== 'topic,epoch,offset') {
    throw new RuleError(rules.joined, `fields: ${show(text)}`);
  }
  if (f.data.topic !== topic || typeof f.data.epoch !== 'string' || !Number.isSafeInteger(f.data.offset) || f.data.offset < 0) {
    throw new RuleError(rules.joined, `want topic ${topic}, a string epoch and an offset: ${show(text)}`);
  }
  return { epoch: f.data.epoch, offset: f.data.offset };
}

/** Joins topic; returns the position rpcws.joined gave. */
async function join(peer, topic) {
  const { before, reply, text } = await peer.call('topic.join', { topic });
  if (reply.type !== 'topic.join.response') throw new Error(`topic.join ${topic}: ${show(text)}`);
  return joinedOf(before, topic);
}

/** Reads one topic event and checks its shape; returns it. */
function checkEvent({ f, text }, topic, epoch, offset, data) {
  if (keys(f).join() !== 'type,data,topic,epoch,offset') {
    throw new RuleError(rules.eventPosition, `want the fields type, data, topic, epoch, offset in that order: ${show(text)}`);
  }
  if (f.type !== 'topic.message' || f.topic !== topic || JSON.stringify(f.data) !== JSON.stringify({ topic, data })) {
    throw new RuleError(rules.eventPosition, `want the topic.message of ${JSON.stringify(data)} to ${topic}: ${show(text)}`);
  }
  if (typeof f.epoch !== 'string' || chars(f.epoch) > 64 || f.epoch === '') {
    throw new RuleError(rules.offsets, `the epoch is not a string of 1 to 64 characters: ${show(text)}`);
  }
  if (epoch !== undefined && f.epoch !== epoch) throw new RuleError(rules.offsets, `epoch ${JSON.stringify(f.epoch)}, want ${JSON.stringify(epoch)} (the topic's, unchanged): ${show(text)}`);
  if (f.offset !== offset) throw new RuleError(rules.offsets, `offset ${f.offset}, want ${offset}: ${show(text)}`);
  return f;
}

/** Reads the next frame of peer, which must be the event of data at offset. */
async function nextEvent(peer, topic, epoch, offset, data) {
  return checkEvent(await peer.read(`the event at offset ${offset} of ${topic}`), topic, epoch, offset, data);
}

/**
 * Publishes each of datas to topic from pub, one after another (each after the reply
 * to the one before, so that members receive them in this order).
 */
async function publish(pub, topic, datas) {
  for (const data of datas) await pub.ok('topic.publish', { topic, data });
}

/**
 * Checks that peer is not a member of topic: pub publishes to topic, then to marker,
 * which peer is in; the first frame peer reads must be marker's event. (Publishes made
 * one after another reach every member in that order.)
 */
async function notMember(peer, pub, topic, marker, markerPos, rule) {
  await publish(pub, topic, ['not for you']);
  await publish(pub, marker, ['marker']);
  const { f, text } = await peer.read(`the event of ${marker}`);
  if (f.topic === topic || f.data?.topic === topic) throw new RuleError(rule, `an event of ${topic}, which the connection should not be in: ${show(text)}`);
  checkEvent({ f, text }, marker, markerPos.epoch, markerPos.offset + 1, 'marker');
  markerPos.offset++;
}

/** Sends rpcws.recover as the first request of a new connection; returns what came. */
async function recover(t, session, topics, user) {
  const peer = await open(t, user);
  const r = await peer.call('rpcws.recover', { session, topics });
  if (r.reply.type !== 'rpcws.recover.response') throw new RuleError(rules.recoverReply, `rpcws.recover as the first request: ${show(r.text)}`);
  if (keys(r.reply).join() !== 'id,type,data' || keys(r.reply.data).join() !== 'recovered,topics' || typeof r.reply.data.recovered !== 'boolean') {
    throw new RuleError(rules.recoverReply, `fields: ${show(r.text)}`);
  }
  for (const [topic, pos] of Object.entries(r.reply.data.topics ?? {})) {
    if (keys(pos).join() !== 'epoch,offset,recovered') throw new RuleError(rules.recoverReply, `topic ${topic}: ${show(r.text)}`);
  }
  return { peer, ...r };
}

/** The topics an rpcws.resync among frames names (null when there is none). */
function resyncOf(frames) {
  const resyncs = frames.filter(({ f }) => f.type === 'rpcws.resync');
  if (resyncs.length > 1) throw new RuleError(rules.resync, `${resyncs.length} rpcws.resync frames, want at most one`);
  return resyncs.length ? [...(resyncs[0].f.data?.topics ?? [])].sort() : null;
}

/** A recovery that restores nothing: recovered false, no topics, a resync of listed. */
function wantNothing(r, listed, rule, what) {
  if (r.reply.data.recovered !== false || keys(r.reply.data.topics).length !== 0) {
    throw new RuleError(rule, `${what}: want recovered false and no topics: ${show(r.text)}`);
  }
  const named = resyncOf(r.before);
  if (JSON.stringify(named) !== JSON.stringify([...listed].sort())) {
    throw new RuleError(rules.resync, `${what}: want one rpcws.resync naming ${listed.join(', ')} before the reply, got ${JSON.stringify(named)}`);
  }
  const other = r.before.filter(({ f }) => f.type !== 'rpcws.resync');
  if (other.length) throw new RuleError(rule, `${what}: frames that restore something: ${other.map(({ text }) => show(text)).join(' ')}`);
}

/**
 * A connection with a session that was in topic, as a recovering client finds it:
 * returns {session, pos, pub, marker, markerPos} after the old connection closed; pub
 * is a publisher connection, marker a topic a recovering connection may join to
 * check membership.
 */
async function oldSession(t, { user, publishes = 1 } = {}) {
  const topic = topicName('t');
  const old = await open(t, user);
  const pub = await open(t);
  let pos = await join(old, topic);
  await publish(pub, topic, Array.from({ length: publishes }, (_, i) => i + 1));
  for (let i = 1; i <= publishes; i++) await nextEvent(old, topic, pos.epoch, pos.offset + i, i);
  pos = { epoch: pos.epoch, offset: pos.offset + publishes };
  await old.close();
  return { session: old.session, topic, pos, pub };
}

/** @type {Array<{check: string, name: string, rule: import('./rules.mjs').Rule, needs: string[], level: 'history', timeoutMs?: number, run: (t: any) => Promise<void>}>} */
export const historyScenarios = [
  {
    check: 'history/session',
    name: 'the first frame is rpcws.session: an id of at most 128 characters, a window in ms, new on each connection',
    rule: rules.session,
    async run(t) {
      const ids = [];
      for (let i = 0; i < 2; i++) {
        const conn = await t.rawAt(t.url);
        conn.send('{"id":"first","type":"demo.echo","data":null}');
        const text = await conn.next();
        const f = JSON.parse(text);
        if (f.type !== 'rpcws.session') throw new RuleError(rules.session, `the first frame (a request was sent at once): ${show(text)}`);
        if (keys(f).join() !== 'type,data' || keys(f.data).join() !== 'id,window') throw new RuleError(rules.session, `fields: ${show(text)}`);
        const { id, window } = f.data;
        // 128 random bits take 16 characters even as raw bytes; 22 in base64.
        if (typeof id !== 'string' || chars(id) < 16 || chars(id) > 128) throw new RuleError(rules.session, `id of ${chars(String(id))} characters, want 16 to 128 (at least 128 random bits): ${show(text)}`);
        if (!Number.isSafeInteger(window) || window <= 0) throw new RuleError(rules.session, `window ${window}, want a positive whole number of ms`);
        ids.push(id);
        await conn.close();
      }
      if (ids[0] === ids[1]) throw new RuleError(rules.session, 'two connections got the same session id');
    },
  },
  {
    check: 'history/joined',
    name: 'rpcws.joined comes before the join reply and before any event of the topic, with its current position',
    rule: rules.joined,
    async run(t) {
      const pub = await open(t);
      const member = await open(t);
      const fresh = topicName('fresh');
      const pos0 = await join(member, fresh);
      if (pos0.offset !== 0) throw new RuleError(rules.joined, `a topic nothing was published to: offset ${pos0.offset}, want 0`);
      const topic = topicName('busy');
      const { epoch } = await join(pub, topic); // a member, to learn the epoch
      await publish(pub, topic, ['a', 'b']);
      for (const [i, d] of ['a', 'b'].entries()) await nextEvent(pub, topic, epoch, i + 1, d);
      const pos = await join(member, topic);
      if (pos.epoch !== epoch || pos.offset !== 2) throw new RuleError(rules.joined, `after 2 events: ${JSON.stringify(pos)}, want epoch ${JSON.stringify(epoch)}, offset 2`);
      await publish(pub, topic, ['c']);
      await nextEvent(member, topic, epoch, 3, 'c');
    },
  },
  {
    check: 'history/positions',
    name: 'topic events carry topic, epoch and offset, fields in order, offsets one apart',
    rule: rules.eventPosition,
    async run(t) {
      const pub = await open(t);
      const member = await open(t);
      const topic = topicName('pos');
      const pos = await join(member, topic);
      const datas = [{ n: 1 }, 'two', [3], null, 5.5];
      await publish(pub, topic, datas);
      for (const [i, d] of datas.entries()) await nextEvent(member, topic, pos.epoch, pos.offset + i + 1, d);
      // The member's own publish reaches it too, at the next offset.
      const id = member.send('topic.publish', { topic, data: 'own' });
      const frames = [];
      for (let i = 0; i < 2; i++) frames.push(await member.read('the own publish and its reply'));
      const ev = frames.filter(({ f }) => f.id !== id);
      if (ev.length !== 1 || !frames.some(({ f }) => f.id === id)) throw new Error(`want the reply and one event: ${frames.map(({ text }) => show(text)).join(' ')}`);
      checkEvent(ev[0], topic, pos.epoch, pos.offset + datas.length + 1, 'own');
    },
  },
  {
    check: 'history/left',
    name: 'rpcws.left on leaving a topic, and its events no longer come',
    rule: rules.left,
    async run(t) {
      const pub = await open(t);
      const member = await open(t);
      const topic = topicName('left');
      const marker = topicName('marker');
      await join(member, topic);
      const markerPos = await join(member, marker);
      const id = member.send('topic.leave', { topic });
      const frames = [];
      while (!frames.some(({ f }) => f.id === id) || !frames.some(({ f }) => f.type === 'rpcws.left')) {
        frames.push(await member.read('the reply to topic.leave and rpcws.left'));
        if (frames.length > 2) break;
      }
      const left = frames.filter(({ f }) => f.type === 'rpcws.left');
      if (left.length !== 1 || frames.length !== 2) throw new RuleError(rules.left, `want the reply to topic.leave and one rpcws.left: ${frames.map(({ text }) => show(text)).join(' ')}`);
      const { f, text } = left[0];
      if (keys(f).join() !== 'type,data' || keys(f.data).join() !== 'topic' || f.data.topic !== topic) throw new RuleError(rules.left, show(text));
      await notMember(member, pub, topic, marker, markerPos, rules.left);
    },
  },
  {
    check: 'history/recover-replay',
    name: 'recover: the missed events in offset order, then the reply; live events follow, none missed, none twice',
    rule: rules.replay,
    async run(t) {
      const { session, topic, pos, pub } = await oldSession(t, { publishes: 3 });
      // The client got only the first of the three; two more are published while it is away.
      const from = pos.offset - 2;
      await publish(pub, topic, [4, 5]);
      const r = await recover(t, session, { [topic]: { epoch: pos.epoch, offset: from } });
      const events = r.before.filter(({ f }) => f.type !== 'rpcws.resync');
      if (resyncOf(r.before) !== null) throw new RuleError(rules.resync, `an rpcws.resync where every event could be replayed: ${r.before.map(({ text }) => show(text)).join(' ')}`);
      if (events.length !== 4) throw new RuleError(rules.replay, `${events.length} frames before the reply, want the 4 events after offset ${from}: ${events.map(({ text }) => show(text)).join(' ')}`);
      events.forEach((e, i) => checkEvent(e, topic, pos.epoch, from + 1 + i, [2, 3, 4, 5][i]));
      const want = { recovered: true, topics: { [topic]: { epoch: pos.epoch, offset: pos.offset + 2, recovered: true } } };
      if (JSON.stringify(r.reply.data) !== JSON.stringify(want)) throw new RuleError(rules.recoverReply, `got ${show(r.text)}, want data ${JSON.stringify(want)}`);
      await publish(pub, topic, [6]);
      const live = await r.peer.read('the live event after the recovery');
      if (live.f.offset !== pos.offset + 3) throw new RuleError(rules.liveAfter, `after the replay: ${show(live.text)}, want the event at offset ${pos.offset + 3}`);
      checkEvent(live, topic, pos.epoch, pos.offset + 3, 6);
    },
  },
  {
    check: 'history/recover-quiet',
    name: 'recover: a client at the current offset is recovered with no events',
    rule: rules.quiet,
    async run(t) {
      const { session, topic, pos, pub } = await oldSession(t, { publishes: 2 });
      const r = await recover(t, session, { [topic]: pos });
      const want = { recovered: true, topics: { [topic]: { ...pos, recovered: true } } };
      if (r.before.length !== 0 || JSON.stringify(r.reply.data) !== JSON.stringify(want)) {
        throw new RuleError(rules.quiet, `got ${[...r.before.map(({ text }) => text), r.text].map(show).join(' ')}, want only the reply with data ${JSON.stringify(want)}`);
      }
      await publish(pub, topic, ['live']);
      checkEvent(await r.peer.read('the live event'), topic, pos.epoch, pos.offset + 1, 'live');
    },
  },
  {
    check: 'history/recover-resync',
    name: 'recover: rpcws.resync for a topic of another epoch and for one whose events left history; still a member of both',
    rule: rules.resync,
    timeoutMs: 60_000,
    async run(t) {
      const old = await open(t);
      const pub = await open(t);
      const [ok, epoch, trimmed] = ['ok', 'epoch', 'trimmed'].map(topicName);
      const pos = {};
      for (const topic of [ok, epoch, trimmed]) pos[topic] = await join(old, topic);
      await old.close();
      await publish(pub, ok, ['missed']);
      await publish(pub, epoch, ['missed']);
      // More than the history keeps (a broker may keep some more than its size).
      const n = 3 * t.historySize + 1;
      for (let i = 0; i < n; i += 25) {
        await pub.okAll(Array.from({ length: Math.min(25, n - i) }, (_, j) => ['topic.publish', { topic: trimmed, data: i + j }]));
      }
      const r = await recover(t, old.session, {
        [ok]: pos[ok],
        [epoch]: { epoch: `${pos[epoch].epoch}-not`, offset: pos[epoch].offset },
        [trimmed]: pos[trimmed],
      });
      const named = resyncOf(r.before);
      if (JSON.stringify(named) !== JSON.stringify([epoch, trimmed].sort())) {
        throw new RuleError(rules.resync, `want one rpcws.resync naming ${epoch} (another epoch) and ${trimmed} (${n} events since), got ${JSON.stringify(named)}`);
      }
      const events = r.before.filter(({ f }) => f.type !== 'rpcws.resync');
      if (events.length !== 1) throw new RuleError(rules.replay, `want the one missed event of ${ok} only: ${events.map(({ text }) => show(text)).join(' ')}`);
      checkEvent(events[0], ok, pos[ok].epoch, pos[ok].offset + 1, 'missed');
      if (r.before.at(-1).f.type !== 'rpcws.resync') throw new RuleError(rules.resync, 'the rpcws.resync does not come after the replayed events');
      const got = r.reply.data;
      const want = (topic, offset, recovered) => JSON.stringify(got.topics[topic]) === JSON.stringify({ epoch: pos[topic].epoch, offset, recovered });
      if (!got.recovered || keys(got.topics).length !== 3 || !want(ok, pos[ok].offset + 1, true) || !want(epoch, pos[epoch].offset + 1, false) || !want(trimmed, pos[trimmed].offset + n, false)) {
        throw new RuleError(rules.recoverReply, `reply ${show(r.text)}: want recovered true and the three topics' positions, recovered true only for ${ok}`);
      }
      // Not recovered, and a member all the same.
      await publish(pub, epoch, ['live']);
      checkEvent(await r.peer.read(`the live event of ${epoch}`), epoch, pos[epoch].epoch, pos[epoch].offset + 2, 'live');
    },
  },
  {
    check: 'history/one-time',
    name: 'recover: a session recovered once restores nothing the second time',
    rule: rules.sessionQualifies,
    async run(t) {
      const { session, topic, pos, pub } = await oldSession(t);
      const first = await recover(t, session, { [topic]: pos });
      if (first.reply.data.recovered !== true) throw new RuleError(rules.sessionQualifies, `the first recovery: ${show(first.text)}`);
      const second = await recover(t, session, { [topic]: pos });
      wantNothing(second, [topic], rules.sessionQualifies, 'the second recovery');
      const marker = topicName('marker');
      await notMember(second.peer, pub, topic, marker, await join(second.peer, marker), rules.sessionQualifies);
    },
  },
  {
    check: 'history/guessed',
    name: 'recover: a guessed session restores nothing',
    rule: rules.sessionQualifies,
    async run(t) {
      const { topic, pos, pub } = await oldSession(t);
      const guess = [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
      const r = await recover(t, guess, { [topic]: pos });
      wantNothing(r, [topic], rules.sessionQualifies, 'a random session');
      const marker = topicName('marker');
      await notMember(r.peer, pub, topic, marker, await join(r.peer, marker), rules.sessionQualifies);
    },
  },
  {
    check: 'history/other-identity',
    name: "recover: another identity's session restores nothing (identity: the user query parameter)",
    rule: rules.sessionQualifies,
    async run(t) {
      const { session, topic, pos } = await oldSession(t, { user: 'conf-ada' });
      const r = await recover(t, session, { [topic]: pos }, 'conf-bob');
      wantNothing(r, [topic], rules.sessionQualifies, "user conf-bob with conf-ada's session");
    },
  },
  {
    check: 'history/unheld-topic',
    name: 'recover: a topic the session never held is ignored',
    rule: rules.unheld,
    async run(t) {
      const { session, topic, pos, pub } = await oldSession(t);
      const other = topicName('other');
      const otherPos = await join(pub, other);
      const r = await recover(t, session, { [topic]: pos, [other]: otherPos });
      if (keys(r.reply.data.topics).join() !== topic) throw new RuleError(rules.unheld, `the reply lists ${keys(r.reply.data.topics).join(', ')}, want ${topic} only: ${show(r.text)}`);
      if ((resyncOf(r.before) ?? []).includes(other)) throw new RuleError(rules.unheld, `an rpcws.resync names ${other}, which the session never held`);
      await publish(pub, other, ['not for you']);
      checkEvent(await pub.read('its own event'), other, otherPos.epoch, otherPos.offset + 1, 'not for you');
      await notMember(r.peer, pub, other, topic, pos, rules.unheld);
    },
  },
  {
    check: 'history/recover-not-first',
    name: 'rpcws.recover that is not the first request is BadRequest, and the connection serves on',
    rule: rules.recoverFirst,
    async run(t) {
      const { session, topic, pos } = await oldSession(t);
      const peer = await open(t);
      const other = topicName('first');
      await join(peer, other);
      const r = await peer.call('rpcws.recover', { session, topics: { [topic]: pos } });
      if (r.reply.type !== 'error' || r.reply.code !== 'BadRequest') throw new RuleError(rules.recoverFirst, `the second request rpcws.recover: ${show(r.text)}`);
      if (r.before.length) throw new RuleError(rules.recoverFirst, `frames before the error: ${r.before.map(({ text }) => show(text)).join(' ')}`);
      const left = await peer.call('topic.leave', { topic: other });
      if (left.reply.type !== 'topic.leave.response') throw new Error(`topic.leave after the refused recovery: ${show(left.text)}`);
    },
  },
];

for (const s of historyScenarios) {
  s.needs = historyNeeds;
  s.level = 'history';
}
