// rpcws.js: the rpcws reference client.
//
// Request/response over one WebSocket, as the published lesson "Request-Response over
// WebSocket", which the protocol comes from, teaches it: every request carries an id
// chosen here, the server echoes it back, and the reply settles the Promise that waits
// under that id. Frames without an id are events pushed by the server. The wire format
// is PROTOCOL.md in the rpcws repository:
//
//   request       {"id":ID,"type":T,"data":D}
//   notification  {"type":T,"data":D}
//   reply         {"id":ID,"type":"T.response","data":R}
//   error reply   {"id":ID,"type":"error","code":C,"message":M}
//   event         {"type":E,"data":D}   (an error without id arrives as event "error")
//
// With a server that keeps history ("Sessions and recovery" in PROTOCOL.md) and
// `reconnect`, a client that reconnects gets its topics back and the events it missed,
// by itself: the rpcws.session, rpcws.joined, rpcws.left and rpcws.recover frames
// that do it are the client's business, never the application's.
//
// One file, no dependencies, no build step: the same module runs in browsers and in
// Node 20+ (Node 20 needs --experimental-websocket, or pass options.WebSocket).
//
//   import { connect } from './rpcws.js';
//   const client = await connect('ws://127.0.0.1:8080/rpc');
//   const user = await client.request('user.get', { id: '123' });

/** How long a request waits for its reply unless told otherwise: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/** The reconnection policy's defaults: 500 ms, doubling up to 10 s, attempts without end. */
const DEFAULT_RECONNECT = { initialDelayMs: 500, maxDelayMs: 10_000, maxAttempts: Infinity };

/**
 * Names of the client's own lifecycle events. Server events with these types reach
 * only catch-all ("*") listeners, so that a server can never fake a reconnection.
 */
const LIFECYCLE = new Set(['reconnect', 'disconnect', 'close']);

/**
 * The reserved frames of sessions and recovery (PROTOCOL.md, "Sessions and recovery").
 * The first three are library traffic that never reaches a listener; a resync does.
 */
const SESSION = 'rpcws.session';
const JOINED = 'rpcws.joined';
const LEFT = 'rpcws.left';
const RECOVER = 'rpcws.recover';
const RESYNC = 'rpcws.resync';

/**
 * At most this many requests and notifications, made while the client recovers a
 * session, wait to be sent after it; one more is refused with "Unavailable".
 */
export const MAX_HELD = 1000;

/** The longest delay setTimeout takes (about 24.8 days); longer ones would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The one rule of every numeric option: absent (undefined, null) or 0 means the
 * default; a negative number or Infinity means none: no timeout, no delay, no cap, no
 * limit. Returns `fallback`, the value itself, or null for none. Anything that is not
 * a number is a mistake, reported at once.
 * @param {string} name
 * @param {unknown} value
 * @param {number | null} fallback
 * @returns {number | null}
 */
function numberOption(name, value, fallback) {
  if (value === undefined || value === null || value === 0) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`rpcws: ${name} must be a number (0: the default; negative or Infinity: none), not ${String(value)}`);
  }
  return value < 0 || value === Infinity ? null : value;
}

/**
 * Reads the `reconnect` option into the policy the client follows, or null without
 * reconnection.
 * @param {boolean | ReconnectOptions | undefined} reconnect
 */
function reconnectPolicy(reconnect) {
  if (!reconnect) return null;
  const o = reconnect === true ? {} : reconnect;
  const d = DEFAULT_RECONNECT;
  return {
    // null (none): the first attempt at once, the later ones back off from the default.
    initialDelayMs: numberOption('reconnect.initialDelayMs', o.initialDelayMs, d.initialDelayMs),
    maxDelayMs: numberOption('reconnect.maxDelayMs', o.maxDelayMs, d.maxDelayMs) ?? Infinity,
    maxAttempts: numberOption('reconnect.maxAttempts', o.maxAttempts, d.maxAttempts) ?? Infinity,
  };
}

/**
 * The delay before attempt `n` (0 for the first) of the policy: a ceiling that doubles
 * with each failed attempt up to maxDelayMs, and a random delay between half and all of
 * it (jitter), so that clients dropped together by a server restart do not all come back
 * in the same instant.
 * @param {NonNullable<ReturnType<typeof reconnectPolicy>>} policy
 * @param {number} n
 */
function backoff(policy, n) {
  let ceiling;
  if (policy.initialDelayMs === null) {
    ceiling = n === 0 ? 0 : DEFAULT_RECONNECT.initialDelayMs * 2 ** (n - 1);
  } else {
    ceiling = policy.initialDelayMs * 2 ** n;
  }
  ceiling = Math.min(policy.maxDelayMs, ceiling, MAX_TIMER_MS);
  return ceiling / 2 + (Math.random() * ceiling) / 2;
}

// WebSocket.OPEN and CLOSED, spelled out so that any WebSocket implementation works.
const OPEN = 1;
const CLOSED = 3;

/**
 * An error with a code: the server's `code` for an error reply, or the client's own
 * verdict, `"Timeout"` or `"Disconnected"`.
 */
export class RpcError extends Error {
  /**
   * @param {string} code UpperCamelCase error code, e.g. "NotFound".
   * @param {string} message Human-readable text.
   * @param {object} [details] Extra properties copied onto the error (closeCode, ...).
   */
  constructor(code, message, details) {
    super(message);
    this.name = 'RpcError';
    /** @type {string} */
    this.code = code;
    Object.assign(this, details);
  }
}

/**
 * Returns a random UUID (version 4). Uses crypto.randomUUID where it exists; it exists
 * only in secure contexts, so a page served over plain http from a LAN address falls
 * back to crypto.getRandomValues, which exists everywhere.
 * @param {{getRandomValues(a: Uint8Array): Uint8Array, randomUUID?(): string}} [c]
 * @returns {string}
 */
export function randomId(c = globalThis.crypto) {
  if (typeof c.randomUUID === 'function') return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // variant 10xx
  const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * Opens a WebSocket to `url` and resolves to a {@link Client} once it is open. Rejects
 * with an RpcError of code "Disconnected" if the socket closes before it opens (server
 * down, origin refused, no subprotocol accepted, ...). With `reconnect`, a first
 * connection that fails is retried under the same policy as a dropped one, and the
 * Promise rejects (with the last attempt's error) only once the policy gives up:
 * `connect(url, {reconnect: true})` waits for a server that is down to come up.
 *
 * Browsers cannot set headers on a WebSocket: to send a token, pass it as a subprotocol
 * (`protocols: ['rpcws', token]`) and let the server read `Sec-WebSocket-Protocol`. A
 * server must then accept one of them, or the browser fails the connection.
 *
 * Every numeric option follows one rule: absent or 0 means the default, a negative
 * value or Infinity means none.
 *
 * @param {string | URL} url e.g. "ws://127.0.0.1:8080/rpc".
 * @param {ConnectOptions} [options]
 * @returns {Promise<Client>}
 *
 * @typedef {object} ConnectOptions
 * @property {string | string[]} [protocols] Subprotocols offered to the server.
 * @property {number} [timeoutMs] Default per-request timeout: 0 or unset, 10 s; negative or Infinity, none.
 * @property {boolean | ReconnectOptions} [reconnect] Reopen the socket when it drops, and retry the first connection.
 * @property {AbortSignal} [signal] Abandons connecting, retries included.
 * @property {new (url: string, protocols?: string | string[]) => WebSocket} [WebSocket] WebSocket constructor (the `ws` package's will do); globalThis.WebSocket if unset.
 *
 * @typedef {object} ReconnectOptions
 * @property {number} [initialDelayMs] First delay: 0 or unset, 500 ms; negative, none (the first attempt at once).
 * @property {number} [maxDelayMs] Largest delay, as delays double: 0 or unset, 10 s; negative or Infinity, no cap.
 * @property {number} [maxAttempts] Attempts in a row before giving up: 0 or unset, or negative or Infinity, no limit.
 */
export async function connect(url, options = {}) {
  const WS = options.WebSocket ?? globalThis.WebSocket;
  if (typeof WS !== 'function') {
    throw new TypeError(
      'rpcws: no WebSocket here; on Node 20 run node --experimental-websocket, or pass options.WebSocket',
    );
  }
  const config = {
    url: String(url),
    protocols: options.protocols,
    WebSocket: WS,
    timeoutMs: numberOption('timeoutMs', options.timeoutMs, DEFAULT_TIMEOUT_MS),
    policy: reconnectPolicy(options.reconnect),
  };
  const { signal } = options;
  for (let n = 0; ; n++) {
    try {
      const ws = await openSocket(WS, config.url, config.protocols, signal);
      return new Client(ws, config);
    } catch (err) {
      // Only a connection that failed is retried: not an abort, not a bad URL.
      if (!config.policy || n >= config.policy.maxAttempts || !(err instanceof RpcError) || signal?.aborted) throw err;
      await sleep(backoff(config.policy, n), signal);
    }
  }
}

/** Resolves after ms milliseconds; rejects with signal.reason if it aborts first. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A connection to an rpcws server. Create it with {@link connect}.
 */
export class Client {
  /** @type {WebSocket} */ #ws;
  /** @type {Map<string, {type: string, resolve: Function, reject: Function, deadline: number, signal?: AbortSignal, onAbort?: () => void}>} */
  #pending = new Map(); // id -> the request waiting for its reply
  // One timer for every pending request, set for the deadline (Date.now() ms) that
  // falls first: a request costs no timer of its own. It may stay set after the
  // request it was set for ends; it then finds nothing due, and is set again for the
  // next deadline, if any.
  #timer = undefined;
  #timerAt = Infinity; // when #timer fires; Infinity when it is not set
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map(); // event type, or "*" -> listeners
  #config; // url, protocols, WebSocket, timeoutMs (null: none), policy (null: no reconnection)
  #closed = false; // close() was called, or reconnection gave up: no more reconnection
  #ended = false; // "close" was emitted: nothing more happens
  #attempt = 0; // reconnection attempts since the socket last opened
  #failed = 0; // of which failed
  #reconnectTimer = undefined;
  /** @type {AbortController | undefined} */
  #opening = undefined; // aborts the reconnection attempt in flight
  // The session of the server that keeps history: its rpcws.session id (a secret: it
  // restores the connection's topics, so it is never logged or shown) and the socket
  // that announced it. null with a server that keeps none.
  /** @type {{id: string, ws: WebSocket} | null} */
  #session = null;
  /** @type {Map<string, {epoch: string, offset: number}>} */
  #positions = new Map(); // topic -> position of the last event received (or of rpcws.joined)
  // While rpcws.recover waits for its reply: its id, the positions it listed, the
  // attempt that opened the socket, and the timer that gives up on it. null otherwise.
  /** @type {{id: string, topics: object, attempt: number, timer: any} | null} */
  #recovering = null;
  /** @type {{id: string | undefined, frame: string}[]} */
  #held = []; // frames made while recovering, sent in order once it is done (at most MAX_HELD)

  /** Not for direct use: call {@link connect}. */
  constructor(ws, config) {
    this.#config = config;
    this.#attach(ws);
  }

  /**
   * The current WebSocket. It changes on reconnection. Meant for inspection (readyState,
   * protocol) and for tests that must write raw frames; the client owns its handlers.
   * @returns {WebSocket}
   */
  get socket() {
    return this.#ws;
  }

  /** True while the socket is open and requests can be sent. */
  get connected() {
    return this.#ws.readyState === OPEN;
  }

  /** How many requests are waiting for their reply. */
  get pendingCount() {
    return this.#pending.size;
  }

  /**
   * Sends a request and resolves with the reply's `data`. Rejects with an RpcError:
   * the server's code and message for an error reply; "Timeout" (message
   * `timeout: <type>`) when no reply came in time; "Disconnected" when the socket closes
   * first, or is not open. An aborted signal rejects with `signal.reason`. A reply that
   * arrives after its request gave up is dropped.
   *
   * The client never sends a request twice: after a timeout or a disconnection the
   * server may or may not have run it, and only the caller can tell whether to retry.
   *
   * While the client recovers a session after a reconnection, the request is held and
   * sent once the server has replied to the recovery (its timeout runs meanwhile); past
   * {@link MAX_HELD} held frames it rejects with "Unavailable".
   *
   * `options.timeoutMs` overrides the client's timeout: 0 or unset, the client's;
   * negative or Infinity, none.
   *
   * @param {string} type e.g. "user.get".
   * @param {any} [data] Any JSON value; undefined is sent as null.
   * @param {{timeoutMs?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<any>}
   */
  request(type, data, options = {}) {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      const timeoutMs = numberOption('timeoutMs', options.timeoutMs, this.#config.timeoutMs);
      if (signal?.aborted) return reject(signal.reason);
      if (!this.connected) return reject(disconnected(type, this.#ws));
      const id = randomId();
      const frame = JSON.stringify({ id, type, data: data === undefined ? null : data });
      const deadline = timeoutMs === null ? Infinity : Date.now() + timeoutMs;
      const entry = { type, resolve, reject, deadline, signal, onAbort: undefined };
      if (deadline < this.#timerAt) this.#setTimer(deadline);
      if (signal) {
        entry.onAbort = () => {
          this.#take(id);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#pending.set(id, entry);
      try {
        this.#write(frame, id);
      } catch (err) {
        this.#take(id);
        reject(err);
      }
    });
  }

  /**
   * Sends a notification: the server runs `type` and sends nothing back, not even an
   * error. Throws an RpcError "Disconnected" if the socket is not open. While the
   * client recovers a session it is held, as requests are, and dropped if the socket
   * closes before it could be sent.
   * @param {string} type
   * @param {any} [data] Any JSON value; undefined is sent as null.
   */
  notify(type, data) {
    if (!this.connected) throw disconnected(type, this.#ws);
    this.#write(JSON.stringify({ type, data: data === undefined ? null : data }), undefined);
  }

  /**
   * Listens for events. `type` is a server event type (e.g. "demo.tick"; "error" for an
   * error frame that belongs to no request), "*" for every server event, or one of the
   * client's own events:
   *   "disconnect" ({code, reason, reconnecting}) after the socket closed and pending
   *                requests were rejected; with reconnecting true the client tries to
   *                reopen it, and when those attempts run out a last "disconnect"
   *                ({code, reason} of the last attempt) says reconnecting: false;
   *   "reconnect"  ({attempt}) after a new socket opened: resubscribe here. When the
   *                server keeps history and the old socket had topics, the client
   *                first recovers them (requests made meanwhile are held), and
   *                "reconnect" follows the replayed events and any "rpcws.resync",
   *                with the server's answer: ({attempt, recovered, topics}), where
   *                recovered tells whether the session was restored and topics are
   *                the topics the connection is in again ({epoch, offset, recovered});
   *   "close"      ({code, reason, attempts}) once, at the very end: after the last
   *                "disconnect" (reconnecting: false), whether close() was called, the
   *                socket dropped without reconnect, or reconnection gave up after
   *                `attempts` failed attempts. Nothing happens after it.
   * Server events call `listener(data, frame)`; "error" frames have no data, read
   * frame.code and frame.message.
   * @param {string} type
   * @param {(data: any, frame: any) => void} listener
   * @returns {() => void} A function that removes the listener.
   */
  on(type, listener) {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, (set = new Set()));
    set.add(listener);
    return () => this.off(type, listener);
  }

  /**
   * Removes a listener added with {@link Client#on}.
   * @param {string} type
   * @param {Function} listener
   */
  off(type, listener) {
    this.#listeners.get(type)?.delete(listener);
  }

  /**
   * Closes the connection for good: pending requests reject with "Disconnected" at once,
   * and no reconnection follows; "disconnect" (reconnecting: false) and "close" fire,
   * unless they already have. Resolves when the socket has closed.
   * @param {number} [code] WebSocket close code, 1000 by default.
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  close(code = 1000, reason = '') {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    this.#opening?.abort();
    const ws = this.#ws;
    this.#stopRecovery();
    this.#failPending(ws, { code, reason });
    if (ws.readyState === CLOSED) {
      // Between reconnection attempts, or already ended: the socket is long gone.
      if (!this.#ended) {
        this.#emit('disconnect', { code, reason, reconnecting: false });
        this.#end(code, reason);
      }
      return Promise.resolve();
    }
    // #onClose, registered first, emits the events before this resolves.
    const closed = new Promise((resolve) => ws.addEventListener('close', () => resolve(), { once: true }));
    ws.close(code, reason);
    return closed;
  }

  #attach(ws) {
    this.#ws = ws;
    ws.addEventListener('message', (e) => this.#onMessage(e));
    ws.addEventListener('close', (e) => this.#onClose(ws, e));
  }

  #onMessage(e) {
    if (typeof e.data !== 'string') return; // binary frames are not part of the protocol
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return; // not JSON: nothing can be matched or dispatched
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return;
    if (msg.id != null) {
      if (msg.id === this.#recovering?.id) return this.#recovered(msg);
      const entry = this.#take(msg.id);
      if (!entry) return; // late (timed out, aborted) or not ours: drop it
      if (msg.type === 'error') {
        entry.reject(new RpcError(String(msg.code ?? 'ServerError'), String(msg.message ?? '')));
      } else {
        entry.resolve(msg.data);
      }
      return;
    }
    if (typeof msg.type !== 'string') return;
    if (this.#library(msg)) return;
    this.#track(msg);
    this.#dispatch(msg);
  }

  // Gives a server event to its listeners and the catch-all.
  #dispatch(msg) {
    if (!LIFECYCLE.has(msg.type)) this.#emit(msg.type, msg.data, msg);
    this.#emit('*', msg.data, msg);
  }

  // Takes in the frames of sessions that are the client's own business: the session,
  // and the topics joined and left with their positions. Returns true for those, which
  // no listener sees.
  #library(msg) {
    const d = msg.data;
    switch (msg.type) {
      case SESSION:
        if (typeof d?.id === 'string' && d.id.length > 0 && d.id.length <= 128) this.#session = { id: d.id, ws: this.#ws };
        return true;
      case JOINED:
        if (typeof d?.topic === 'string' && isPosition(d)) this.#positions.set(d.topic, { epoch: d.epoch, offset: d.offset });
        return true;
      case LEFT:
        if (typeof d?.topic === 'string') this.#positions.delete(d.topic);
        return true;
      default:
        return false;
    }
  }

  // Moves a topic's position to the event's, for an event of a topic the connection is in.
  #track(msg) {
    if (typeof msg.topic === 'string' && this.#positions.has(msg.topic) && isPosition(msg)) {
      this.#positions.set(msg.topic, { epoch: msg.epoch, offset: msg.offset });
    }
  }

  // Sends a frame now or, while a recovery waits for its reply, holds it: the recovery
  // must be the socket's first frame. id is the request's (undefined for a
  // notification), so that one that gave up while held is never sent.
  #write(frame, id) {
    if (this.#recovering === null) return this.#ws.send(frame);
    if (this.#held.length >= MAX_HELD) {
      throw new RpcError('Unavailable', `rpcws: ${MAX_HELD} requests and notifications already wait for the session's recovery`);
    }
    this.#held.push({ id, frame });
  }

  // Sends rpcws.recover as the first frame of a new socket, if the old one had a
  // session and topics. Returns whether it did; if not, the old positions are gone.
  #recover(attempt) {
    const session = this.#session;
    if (session === null || this.#positions.size === 0) {
      this.#positions.clear();
      if (session?.ws !== this.#ws) this.#session = null;
      return false;
    }
    const id = randomId();
    const topics = Object.fromEntries(this.#positions);
    try {
      this.#ws.send(JSON.stringify({ id, type: RECOVER, data: { session: session.id, topics } }));
    } catch {
      return false; // the socket is closing already: its close event reconnects
    }
    const ms = this.#config.timeoutMs;
    const timer = ms === null ? undefined : setTimeout(() => this.#recovered(null), Math.min(ms, MAX_TIMER_MS));
    timer?.unref?.();
    this.#recovering = { id, topics, attempt, timer };
    return true;
  }

  // Ends the recovery with its reply (null: none came in time), sends the frames held
  // meanwhile, and emits "reconnect". A reply that is not a success restored nothing
  // that the server told of: every topic listed gets a resync.
  #recovered(msg) {
    const { topics, attempt } = this.#recovering;
    const held = this.#held;
    this.#stopRecovery();
    if (this.#session?.ws !== this.#ws) this.#session = null; // used up: no new one came
    const d = msg?.type === 'error' ? null : msg?.data;
    const info = { attempt, recovered: false, topics: {} };
    if (d !== null && typeof d === 'object' && typeof d.topics === 'object' && d.topics !== null) {
      info.recovered = d.recovered === true;
      info.topics = d.topics;
      this.#positions = restoredPositions(this.#positions, d.topics);
    } else {
      this.#positions.clear();
      this.#dispatch({ type: RESYNC, data: { topics: Object.keys(topics) } });
    }
    for (const { id, frame } of held) {
      if (id !== undefined && !this.#pending.has(id)) continue; // timed out or aborted while held
      try {
        this.#ws.send(frame);
      } catch (err) {
        if (id !== undefined) this.#take(id)?.reject(err);
      }
    }
    this.#emit('reconnect', info);
  }

  // Forgets the recovery in progress, if any, and the frames it held; their requests
  // stay pending, for the caller to settle.
  #stopRecovery() {
    clearTimeout(this.#recovering?.timer);
    this.#recovering = null;
    this.#held = [];
  }

  #onClose(ws, e) {
    if (ws !== this.#ws) return; // an old socket, already dealt with
    const reconnecting = !this.#closed && this.#config.policy !== null;
    this.#stopRecovery();
    this.#failPending(ws, e);
    this.#emit('disconnect', { code: e.code, reason: e.reason, reconnecting });
    if (reconnecting) this.#scheduleReconnect();
    else this.#end(e.code, e.reason);
  }

  // Reopens the socket after the policy's backoff; when its attempts run out, says so
  // with a last "disconnect" and "close".
  #scheduleReconnect(code, reason) {
    if (this.#closed) return;
    const { policy, WebSocket: WS, url, protocols } = this.#config;
    if (this.#attempt >= policy.maxAttempts) {
      this.#closed = true;
      this.#emit('disconnect', { code, reason, reconnecting: false });
      this.#end(code, reason);
      return;
    }
    const delay = backoff(policy, this.#attempt);
    this.#attempt++;
    this.#reconnectTimer = setTimeout(async () => {
      const opening = (this.#opening = new AbortController());
      let ws;
      try {
        ws = await openSocket(WS, url, protocols, opening.signal);
      } catch (err) {
        this.#failed++;
        return this.#scheduleReconnect(err?.closeCode ?? 1006, '');
      } finally {
        if (this.#opening === opening) this.#opening = undefined;
      }
      if (this.#closed) return ws.close(1000);
      const attempt = this.#attempt;
      this.#attempt = 0;
      this.#failed = 0;
      this.#attach(ws);
      if (!this.#recover(attempt)) this.#emit('reconnect', { attempt });
    }, delay);
  }

  // The end: "close", once.
  #end(code, reason) {
    if (this.#ended) return;
    this.#ended = true;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Infinity;
    this.#emit('close', { code, reason, attempts: this.#failed });
  }

  #failPending(ws, { code, reason }) {
    for (const [id, entry] of this.#pending) {
      this.#take(id);
      entry.reject(disconnected(entry.type, ws, code, reason));
    }
  }

  // Removes a pending request and its abort listener.
  #take(id) {
    const entry = this.#pending.get(id);
    if (!entry) return undefined;
    this.#pending.delete(id);
    entry.signal?.removeEventListener('abort', entry.onAbort);
    return entry;
  }

  // Sets the timer for at, in place of the one set now. A deadline beyond what
  // setTimeout takes is reached in steps.
  #setTimer(at) {
    clearTimeout(this.#timer);
    this.#timerAt = at;
    const delay = Math.max(at - Date.now(), 0);
    const reached = delay > MAX_TIMER_MS ? -Infinity : at;
    this.#timer = setTimeout(() => this.#expire(reached), Math.min(delay, MAX_TIMER_MS));
    // In Node, a timer set for a request that may have ended must not keep the process
    // alive: the socket does, while it is open.
    this.#timer.unref?.();
  }

  // Fails the requests whose deadline has come, and sets the timer for the next one.
  // reached is the deadline the timer was set for: it has come, whatever Date.now()
  // says (a timer may fire a little before the clock shows its delay passed).
  #expire(reached) {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Math.max(Date.now(), reached);
    let next = Infinity;
    for (const [id, entry] of this.#pending) {
      if (entry.deadline <= now) {
        this.#take(id);
        entry.reject(new RpcError('Timeout', `timeout: ${entry.type}`));
      } else if (entry.deadline < next) {
        next = entry.deadline;
      }
    }
    if (next < Infinity) this.#setTimer(next);
  }

  #emit(type, data, frame) {
    for (const listener of [...(this.#listeners.get(type) ?? [])]) {
      try {
        listener(data, frame);
      } catch (err) {
        // Like EventTarget: report the error, but let the other listeners run.
        queueMicrotask(() => {
          throw err;
        });
      }
    }
  }
}

/** Whether o carries a topic's position: an epoch string and an offset (a whole number). */
function isPosition(o) {
  return typeof o?.epoch === 'string' && Number.isSafeInteger(o.offset) && o.offset >= 0;
}

/**
 * The positions after a recovery: the topics the server says the connection is in,
 * where it says they stand, unless an event that overtook its reply stands later.
 * @param {Map<string, {epoch: string, offset: number}>} seen
 * @param {object} restored the reply's topics: {T: {epoch, offset, recovered}}
 */
function restoredPositions(seen, restored) {
  const next = new Map();
  for (const [topic, p] of Object.entries(restored)) {
    if (!isPosition(p)) continue;
    const s = seen.get(topic);
    next.set(topic, s && s.epoch === p.epoch && s.offset > p.offset ? s : { epoch: p.epoch, offset: p.offset });
  }
  return next;
}

function disconnected(type, ws, code, reason) {
  return new RpcError('Disconnected', `disconnected: ${type}`, {
    closeCode: code,
    closeReason: reason,
    url: ws?.url,
  });
}

// Resolves with the socket once it is open; rejects if it fails first. A failed
// handshake fires "error" then "close" in browsers, but only "error" in some Node
// versions, so either one ends the attempt.
function openSocket(WS, url, protocols, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const ws = protocols === undefined ? new WS(url) : new WS(url, protocols);
    const done = () => {
      ws.removeEventListener('open', onOpen);
      ws.removeEventListener('error', onFail);
      ws.removeEventListener('close', onFail);
      signal?.removeEventListener('abort', onAbort);
    };
    const onOpen = () => {
      done();
      resolve(ws);
    };
    const onFail = (e) => {
      done();
      if (signal?.aborted) return reject(signal.reason);
      const closeCode = e.type === 'close' ? e.code : 1006;
      reject(new RpcError('Disconnected', `rpcws: cannot connect to ${url}`, { closeCode, url }));
    };
    const onAbort = () => ws.close(1000);
    ws.addEventListener('open', onOpen);
    ws.addEventListener('error', onFail);
    ws.addEventListener('close', onFail);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
