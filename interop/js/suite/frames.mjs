// Raw WebSocket access for the conformance suite: frames in, frames out, no client in
// between, so that a check can write what the client never would (bad frames, exact
// bytes) and read every frame the server sends, in order.

/**
 * Queues the frames that arrive on ws so that they can be read one at a time. Works on
 * any WebSocket, the client's own included (listeners added here do not disturb it).
 */
export class FrameReader {
  #frames = []; // arrived, not yet read
  #waiters = []; // reads waiting for a frame: {resolve, reject, timer}
  #closed = null; // the close event, once the socket has closed
  #first = true; // no frame has arrived yet
  #session = null; // the rpcws.session frame set aside, if any

  /**
   * @param {WebSocket} ws
   * @param {{keepSession?: boolean}} [options] keepSession: read a first rpcws.session
   *   frame as any other; by default it is set aside (see session), so that the checks
   *   of the default level see a server that keeps history as one that keeps none.
   */
  constructor(ws, { keepSession = false } = {}) {
    ws.addEventListener('message', (e) => {
      const first = this.#first;
      this.#first = false;
      if (first && !keepSession && isSession(e.data)) {
        this.#session = e.data;
        return;
      }
      const w = this.#waiters.shift();
      if (w) {
        clearTimeout(w.timer);
        w.resolve(e.data);
      } else this.#frames.push(e.data);
    });
    ws.addEventListener('close', (e) => {
      this.#closed = e;
      for (const w of this.#waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(closedError(e));
      }
    });
  }

  /** The text of the rpcws.session frame that came first and was set aside, or null. */
  get session() {
    return this.#session;
  }

  /** The close event, or null while the socket is open. */
  get closed() {
    return this.#closed;
  }

  /**
   * Resolves with the next frame (a string for text frames), or rejects if none comes
   * within timeoutMs or the socket closes first.
   * @param {number} [timeoutMs]
   * @returns {Promise<string | ArrayBuffer>}
   */
  next(timeoutMs = 5000) {
    if (this.#frames.length > 0) return Promise.resolve(this.#frames.shift());
    if (this.#closed) return Promise.reject(closedError(this.#closed));
    return new Promise((resolve, reject) => {
      const w = { resolve, reject, timer: undefined };
      w.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Like next, parsed as JSON. */
  async nextJSON(timeoutMs) {
    const frame = await this.next(timeoutMs);
    if (typeof frame !== 'string') throw new Error('got a binary frame, want a text frame');
    return JSON.parse(frame);
  }
}

/** Whether a frame is an rpcws.session event (PROTOCOL.md, "Sessions and recovery"). */
function isSession(data) {
  if (typeof data !== 'string' || !data.includes('rpcws.session')) return false;
  try {
    const f = JSON.parse(data);
    return f?.type === 'rpcws.session' && !('id' in f);
  } catch {
    return false;
  }
}

function closedError(e) {
  return new Error(`the connection closed (code ${e.code}${e.reason ? `, ${e.reason}` : ''})`);
}

/**
 * Opens a plain WebSocket and resolves once it is open.
 * @param {string} url
 * @param {{timeoutMs?: number, keepSession?: boolean}} [options] keepSession: as for
 *   FrameReader.
 * @returns {Promise<RawConn>}
 */
export function openRaw(url, { timeoutMs = 5000, keepSession = false } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const reader = new FrameReader(ws, { keepSession });
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`${url}: not open within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.addEventListener('open', () => {
      clearTimeout(timer);
      resolve(new RawConn(ws, reader));
    });
    const fail = () => {
      clearTimeout(timer);
      reject(new Error(`${url}: cannot connect`));
    };
    ws.addEventListener('error', fail); // some Node versions fire no close after it
    ws.addEventListener('close', fail);
  });
}

/** A raw connection: send text or binary frames, read frames in order. */
export class RawConn {
  constructor(ws, reader) {
    this.ws = ws;
    this.reader = reader;
  }

  /** Sends a text frame: a string as is, anything else as its JSON. */
  send(frame) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends a binary frame holding text encoded as UTF-8. */
  sendBinary(text) {
    this.ws.send(new TextEncoder().encode(text));
  }

  next(timeoutMs) {
    return this.reader.next(timeoutMs);
  }

  nextJSON(timeoutMs) {
    return this.reader.nextJSON(timeoutMs);
  }

  /** Closes the socket and resolves once it has closed, or after timeoutMs. */
  close(timeoutMs = 2000) {
    if (this.ws.readyState === 3) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.ws.addEventListener('close', () => resolve(clearTimeout(timer)), { once: true });
      this.ws.close();
    });
  }
}
