// A WebSocket client on a bare TCP socket, for the checks that must write bytes no
// WebSocket API lets through: a text frame that is not valid UTF-8. It reads every frame
// the server sends as bytes, so that a check can tell whether the server echoed invalid
// bytes back. Node only (node:net); a browser cannot run these checks.

import { connect as tcpConnect } from 'node:net';
import { randomBytes, createHash } from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Opens a WebSocket to url (ws: only) over a bare socket and resolves once the
 * handshake is done.
 * @param {string} url
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<ByteConn>}
 */
export function openBytes(url, { timeoutMs = 5000 } = {}) {
  const u = new URL(url);
  if (u.protocol !== 'ws:') return Promise.reject(new Error(`${url}: raw byte checks speak ws: only`));
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host: u.hostname, port: Number(u.port || 80) });
    const key = randomBytes(16).toString('base64');
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${url}: no handshake within ${timeoutMs} ms`));
    }, timeoutMs);
    let head = Buffer.alloc(0);
    const onData = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.off('data', onData);
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      const ok = / 101 /.test(`${lines[0]} `) && lines.some((l) => l.toLowerCase() === `sec-websocket-accept: ${accept.toLowerCase()}`);
      if (!ok) {
        sock.destroy();
        reject(new Error(`${url}: handshake refused: ${lines[0]}`));
        return;
      }
      resolve(new ByteConn(sock, head.subarray(end + 4)));
    };
    sock.on('data', onData);
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${url}: ${err.message}`));
    });
    sock.once('connect', () => {
      sock.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  });
}

/**
 * A connection that writes frames of any bytes and reads whole messages as bytes:
 * {text: boolean, bytes: Buffer}, or the close {close: code}.
 */
export class ByteConn {
  #sock;
  #buf;
  #parts = []; // fragments of the message being read
  #opcode = 0;
  #messages = [];
  #waiters = [];
  #closed = null;
  #first = true;

  constructor(sock, rest) {
    this.#sock = sock;
    this.#buf = rest;
    sock.on('data', (chunk) => {
      this.#buf = Buffer.concat([this.#buf, chunk]);
      this.#parse();
    });
    sock.on('close', () => this.#end(this.#closed ?? { close: 1006 }));
    sock.on('error', () => {});
    this.#parse();
  }

  /** Writes one text frame holding bytes as they are, masked as a client must. */
  sendText(bytes) {
    const payload = Buffer.from(bytes);
    const mask = randomBytes(4);
    let header;
    if (payload.length < 126) header = Buffer.from([0x81, 0x80 | payload.length]);
    else if (payload.length < 65536) {
      header = Buffer.from([0x81, 0x80 | 126, 0, 0]);
      header.writeUInt16BE(payload.length, 2);
    } else {
      header = Buffer.alloc(10);
      header[0] = 0x81;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(payload.length), 2);
    }
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    this.#sock.write(Buffer.concat([header, mask, payload]));
  }

  /**
   * Resolves with the next message ({text, bytes}) or the close ({close: code}), or
   * rejects when nothing comes within timeoutMs.
   */
  next(timeoutMs = 5000) {
    if (this.#messages.length > 0) return Promise.resolve(this.#messages.shift());
    if (this.#closed) return Promise.resolve(this.#closed);
    return new Promise((resolve, reject) => {
      const w = { resolve, timer: undefined };
      w.timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        reject(new Error(`no frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Closes the socket at once. */
  close() {
    this.#sock.destroy();
    return Promise.resolve();
  }

  #deliver(m) {
    // A first rpcws.session frame (a server that keeps history) is set aside, as
    // suite/frames.mjs does.
    const first = this.#first;
    this.#first = false;
    if (first && m.text && /^\{"type":\s*"rpcws\.session"/.test(m.bytes.toString('utf8'))) return;
    const w = this.#waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(m);
    } else this.#messages.push(m);
  }

  #end(m) {
    this.#closed ??= m;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(this.#closed);
    }
  }

  #parse() {
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      let len = b[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b[1] & 0x80) at += 4; // a server never masks; skip a mask all the same
      if (b.length < at + len) return;
      const fin = (b[0] & 0x80) !== 0;
      const opcode = b[0] & 0x0f;
      const payload = b.subarray(at, at + len);
      this.#buf = b.subarray(at + len);
      if (opcode === 0x8) {
        this.#end({ close: payload.length >= 2 ? payload.readUInt16BE(0) : 1005 });
        this.#sock.end();
        return;
      }
      if (opcode === 0x9) {
        this.#pong(payload);
        continue;
      }
      if (opcode === 0xa) continue;
      if (opcode !== 0) this.#opcode = opcode;
      this.#parts.push(payload);
      if (!fin) continue;
      this.#deliver({ text: this.#opcode === 1, bytes: Buffer.concat(this.#parts) });
      this.#parts = [];
    }
  }

  #pong(payload) {
    const mask = randomBytes(4);
    const p = Buffer.from(payload);
    for (let i = 0; i < p.length; i++) p[i] ^= mask[i & 3];
    this.#sock.write(Buffer.concat([Buffer.from([0x8a, 0x80 | p.length]), mask, p]));
  }
}
