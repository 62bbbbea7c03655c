// A WebSocket stand-in for the client's unit tests: it records what the client sends
// and lets a test play the server, frame by frame, without a network.

export class FakeSocket extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  /** Every socket made since the last reset, oldest first. */
  static made = [];

  static reset() {
    FakeSocket.made = [];
  }

  /** The socket made last. */
  static get last() {
    return FakeSocket.made.at(-1);
  }

  constructor(url, protocols) {
    super();
    this.url = url;
    this.protocols = protocols;
    this.readyState = FakeSocket.CONNECTING;
    /** @type {string[]} */
    this.sent = [];
    FakeSocket.made.push(this);
  }

  send(text) {
    if (this.readyState !== FakeSocket.OPEN) throw new Error('FakeSocket: send while not open');
    this.sent.push(text);
  }

  close(code = 1000, reason = '') {
    if (this.readyState >= FakeSocket.CLOSING) return;
    this.readyState = FakeSocket.CLOSING;
    queueMicrotask(() => this.serverClose(code, reason));
  }

  // What the test, playing the server, does:

  /** Completes the handshake. */
  accept() {
    this.readyState = FakeSocket.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  /** Delivers one text frame: an object is sent as its JSON. */
  receive(frame) {
    const data = typeof frame === 'string' ? frame : JSON.stringify(frame);
    this.dispatchEvent(new MessageEvent('message', { data }));
  }

  /** Closes the connection from the server's side (or fails the handshake). */
  serverClose(code = 1006, reason = '') {
    if (this.readyState === FakeSocket.CLOSED) return;
    this.readyState = FakeSocket.CLOSED;
    const e = new Event('close');
    Object.assign(e, { code, reason, wasClean: code !== 1006 });
    this.dispatchEvent(e);
  }

  /** The frames sent so far, parsed. */
  get requests() {
    return this.sent.map((s) => JSON.parse(s));
  }
}
