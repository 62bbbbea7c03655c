// rpcws.js: the rpcws reference client.
//
// Request/response over one WebSocket, as in the lesson "request-response over
// WebSocket": every request carries an id chosen here, the server echoes it back, and
// the reply settles the Promise that waits under that id. Frames without an id are
// events pushed by the server. The wire format is PROTOCOL.md in the rpcws repository:
//
//   request       {"id":ID,"type":T,"data":D}
//   notification  {"type":T,"data":D}
//   reply         {"id":ID,"type":"T.response","data":R}
//   error reply   {"id":ID,"type":"error","code":C,"message":M}
//   event         {"type":E,"data":D}   (an error without id arrives as event "error")
//
// One file, no dependencies, no build step: the same module runs in browsers and in
// Node 20+ (Node 20 needs --experimental-websocket, or pass options.WebSocket).
//
//   import { connect } from './rpcws.js';
//   const client = await connect('ws://127.0.0.1:8080/rpc');
//   const user = await client.request('user.get', { id: '123' });

/** How long a request waits for its reply unless told otherwise: 10 s. */
export const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Names of the client's own lifecycle events. Server events with these types reach
 * only catch-all ("*") listeners, so that a server can never fake a reconnection.
 */
const LIFECYCLE = new Set(['reconnect', 'disconnect']);

const OPEN = 1; // WebSocket.OPEN, spelled out so that any WebSocket implementation works

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
 * @param {Pick<Crypto, 'getRandomValues'> & Partial<Pick<Crypto, 'randomUUID'>>} [c]
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
 * down, origin refused, no subprotocol accepted, ...).
 *
 * Browsers cannot set headers on a WebSocket: to send a token, pass it as a subprotocol
 * (`protocols: ['rpcws', token]`) and let the server read `Sec-WebSocket-Protocol`. A
 * server must then accept one of them, or the browser fails the connection.
 *
 * @param {string | URL} url e.g. "ws://127.0.0.1:8080/rpc".
 * @param {ConnectOptions} [options]
 * @returns {Promise<Client>}
 *
 * @typedef {object} ConnectOptions
 * @property {string | string[]} [protocols] Subprotocols offered to the server.
 * @property {number} [timeoutMs] Default per-request timeout; 0 or Infinity: none. 10 s if unset.
 * @property {boolean | ReconnectOptions} [reconnect] Reopen the socket when it drops.
 * @property {AbortSignal} [signal] Abandons connecting.
 * @property {typeof WebSocket} [WebSocket] WebSocket constructor; globalThis.WebSocket if unset.
 *
 * @typedef {object} ReconnectOptions
 * @property {number} [initialDelayMs] First delay before reopening (default 500).
 * @property {number} [maxDelayMs] Largest delay; delays double up to it (default 10000).
 * @property {number} [maxAttempts] Attempts in a row before giving up (default Infinity).
 */
export async function connect(url, options = {}) {
  const WS = options.WebSocket ?? globalThis.WebSocket;
  if (typeof WS !== 'function') {
    throw new TypeError(
      'rpcws: no WebSocket here; on Node 20 run node --experimental-websocket, or pass options.WebSocket',
    );
  }
  const ws = await openSocket(WS, String(url), options.protocols, options.signal);
  return new Client(ws, { ...options, WebSocket: WS, url: String(url) });
}

/**
 * A connection to an rpcws server. Create it with {@link connect}.
 */
export class Client {
  /** @type {WebSocket} */ #ws;
  /** @type {Map<string, {type: string, resolve: Function, reject: Function, timer: any, signal?: AbortSignal, onAbort?: () => void}>} */
  #pending = new Map(); // id -> the request waiting for its reply
  /** @type {Map<string, Set<Function>>} */
  #listeners = new Map(); // event type, or "*" -> listeners
  #options;
  #closed = false; // close() was called: no more reconnection
  #attempt = 0; // reconnection attempts since the socket last opened
  #reconnectTimer = undefined;

  /** Not for direct use: call {@link connect}. */
  constructor(ws, options) {
    this.#options = options;
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
   * @param {string} type e.g. "user.get".
   * @param {any} [data] Any JSON value; undefined is sent as null.
   * @param {{timeoutMs?: number, signal?: AbortSignal}} [options]
   * @returns {Promise<any>}
   */
  request(type, data, { timeoutMs = this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS, signal } = {}) {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      if (!this.connected) return reject(disconnected(type, this.#ws));
      const id = randomId();
      const frame = JSON.stringify({ id, type, data: data === undefined ? null : data });
      const entry = { type, resolve, reject, timer: undefined, signal, onAbort: undefined };
      if (timeoutMs > 0 && timeoutMs < Infinity) {
        entry.timer = setTimeout(() => {
          this.#take(id);
          reject(new RpcError('Timeout', `timeout: ${type}`));
        }, timeoutMs);
      }
      if (signal) {
        entry.onAbort = () => {
          this.#take(id);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#pending.set(id, entry);
      try {
        this.#ws.send(frame);
      } catch (err) {
        this.#take(id);
        reject(err);
      }
    });
  }

  /**
   * Sends a notification: the server runs `type` and sends nothing back, not even an
   * error. Throws an RpcError "Disconnected" if the socket is not open.
   * @param {string} type
   * @param {any} [data] Any JSON value; undefined is sent as null.
   */
  notify(type, data) {
    if (!this.connected) throw disconnected(type, this.#ws);
    this.#ws.send(JSON.stringify({ type, data: data === undefined ? null : data }));
  }

  /**
   * Listens for events. `type` is a server event type (e.g. "demo.tick"; "error" for an
   * error frame that belongs to no request), "*" for every server event, or one of the
   * client's own events:
   *   "disconnect" ({code, reason, reconnecting}) after the socket closed and pending
   *                requests were rejected;
   *   "reconnect"  ({attempt}) after a new socket opened: resubscribe here.
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
   * and no reconnection follows. Resolves when the socket has closed.
   * @param {number} [code] WebSocket close code, 1000 by default.
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  close(code = 1000, reason = '') {
    this.#closed = true;
    clearTimeout(this.#reconnectTimer);
    const ws = this.#ws;
    const closed = new Promise((resolve) => {
      if (ws.readyState === 3 /* CLOSED */) resolve();
      else ws.addEventListener('close', () => resolve(), { once: true });
    });
    this.#failPending(ws, { code, reason });
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
    if (!LIFECYCLE.has(msg.type)) this.#emit(msg.type, msg.data, msg);
    this.#emit('*', msg.data, msg);
  }

  #onClose(ws, e) {
    if (ws !== this.#ws) return; // an old socket, already dealt with
    const reconnecting = !this.#closed && !!this.#options.reconnect;
    this.#failPending(ws, e);
    this.#emit('disconnect', { code: e.code, reason: e.reason, reconnecting });
    if (reconnecting) this.#scheduleReconnect();
  }

  // Reopens the socket after a delay that doubles with each failed attempt, with jitter
  // (a random delay between half and all of it) so that clients dropped together by a
  // server restart do not all come back in the same instant.
  #scheduleReconnect() {
    const { initialDelayMs = 500, maxDelayMs = 10_000, maxAttempts = Infinity } =
      this.#options.reconnect === true ? {} : this.#options.reconnect;
    if (this.#closed || this.#attempt >= maxAttempts) return;
    const ceiling = Math.min(maxDelayMs, initialDelayMs * 2 ** this.#attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.#attempt++;
    this.#reconnectTimer = setTimeout(async () => {
      const { WebSocket: WS, url, protocols } = this.#options;
      let ws;
      try {
        ws = await openSocket(WS, url, protocols);
      } catch {
        return this.#scheduleReconnect();
      }
      if (this.#closed) return ws.close(1000);
      const attempt = this.#attempt;
      this.#attempt = 0;
      this.#attach(ws);
      this.#emit('reconnect', { attempt });
    }, delay);
  }

  #failPending(ws, { code, reason }) {
    for (const [id, entry] of this.#pending) {
      this.#take(id);
      entry.reject(disconnected(entry.type, ws, code, reason));
    }
  }

  // Removes a pending request and disarms its timer and abort listener.
  #take(id) {
    const entry = this.#pending.get(id);
    if (!entry) return undefined;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    entry.signal?.removeEventListener('abort', entry.onAbort);
    return entry;
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
