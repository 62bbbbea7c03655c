// Type declarations for rpcws.js, the rpcws reference client.
//
// They need no DOM types: a Node project compiled with `--types node` and no DOM lib
// uses them as they are, passing the `ws` package as `WebSocket` if it likes.
//
// Every numeric option follows one rule: absent or 0 means the default; a negative
// value or Infinity means none (no timeout, no delay, no cap, no limit).

/** How long a request waits for its reply unless told otherwise: 10 s. */
export declare const DEFAULT_TIMEOUT_MS: number;

/**
 * At most this many requests and notifications (1000), made while the client recovers
 * a session after a reconnection, wait to be sent; one more is refused with
 * RpcError "Unavailable".
 */
export declare const MAX_HELD: number;

/**
 * An error with a code: the server's `code` for an error reply, or the client's own
 * verdict, "Timeout" or "Disconnected".
 */
export declare class RpcError extends Error {
  constructor(code: string, message: string, details?: object);
  /** UpperCamelCase code, e.g. "NotFound", "InvalidParams", "Timeout", "Disconnected". */
  code: string;
  /** For "Disconnected": the WebSocket close code, when the socket closed. */
  closeCode?: number;
  /** For "Disconnected": the WebSocket close reason, when the socket closed. */
  closeReason?: string;
  /** For "Disconnected": the URL of the socket. */
  url?: string;
}

/**
 * The part of a WebSocket that the client uses. The browser's WebSocket, Node's
 * built-in one and the `ws` package's all have it.
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly url: string;
  /** The subprotocol the server accepted; "" if none. */
  readonly protocol: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void, options?: { once?: boolean }): void;
  removeEventListener(type: string, listener: (event: any) => void): void;
}

/** A WebSocket constructor: globalThis.WebSocket, or the `ws` package's default export. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Subprotocols offered to the server, e.g. to carry a token: browsers cannot set headers. */
  protocols?: string | string[];
  /**
   * Default per-request timeout in milliseconds. 0 or unset: 10 s
   * ({@link DEFAULT_TIMEOUT_MS}); negative or Infinity: none.
   */
  timeoutMs?: number;
  /**
   * Reopen the socket when it drops, with doubling, jittered delays; and retry a first
   * connection that fails under the same policy: {@link connect} then rejects only once
   * the policy gives up. `true` takes the defaults. With a server that keeps history
   * (PROTOCOL.md, "Sessions and recovery"), the client also recovers its topics and the
   * events it missed by itself: see {@link ReconnectInfo}.
   */
  reconnect?: boolean | ReconnectOptions;
  /** Abandons connecting, retries included: the Promise rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** WebSocket constructor; globalThis.WebSocket if unset (e.g. `ws`'s default export). */
  WebSocket?: WebSocketConstructor;
}

export interface ReconnectOptions {
  /**
   * Ceiling of the first delay before reopening, in milliseconds. 0 or unset: 500;
   * negative: none, the first attempt at once (the later ones back off from 500).
   */
  initialDelayMs?: number;
  /** Largest delay, as delays double, in milliseconds. 0 or unset: 10000; negative or Infinity: no cap. */
  maxDelayMs?: number;
  /**
   * Attempts in a row before giving up; then a last "disconnect" (reconnecting: false)
   * and "close" fire. 0 or unset, negative or Infinity: no limit. To never reopen, leave
   * `reconnect` unset.
   */
  maxAttempts?: number;
}

/** Options of {@link Client.request}. */
export interface RequestOptions {
  /** Overrides the client's timeout for this request. 0 or unset: the client's; negative or Infinity: none. */
  timeoutMs?: number;
  /** Cancels the request: the Promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** A frame pushed by the server: an event, or an error that belongs to no request. */
export interface EventFrame<T = unknown> {
  type: string;
  data?: T;
  /** An event published to a topic, from a server that keeps history: the topic. */
  topic?: string;
  /** With topic: the topic's epoch. */
  epoch?: string;
  /** With topic: the event's offset in the epoch (1, 2, 3, …). */
  offset?: number;
  /** Set on frames of type "error". */
  code?: string;
  /** Set on frames of type "error". */
  message?: string;
}

export interface DisconnectInfo {
  /** The close code; after failed reconnection attempts, the last attempt's (1006 mostly). */
  code: number;
  reason: string;
  /** True when the client will try to reopen the socket; false in the last one, before "close". */
  reconnecting: boolean;
}

export interface CloseInfo {
  /** The close code: the one passed to close(), the drop's, or the last attempt's. */
  code: number;
  reason: string;
  /** Reconnection attempts that failed in a row before the end; 0 without any. */
  attempts: number;
}

/**
 * "reconnect": a new socket is open and takes requests. With a server that keeps
 * history, when the old socket was in topics, the client first sent `rpcws.recover`
 * and held the requests made meanwhile; this event then follows the replayed events
 * (delivered to their listeners as ordinary events, in order) and the one
 * "rpcws.resync" naming the topics that were not recovered, and carries the server's
 * answer in `recovered` and `topics`. Without a recovery those two are absent.
 */
export interface ReconnectInfo {
  /** The attempt that succeeded, counting from 1. */
  attempt: number;
  /**
   * Present only when the client tried to recover: true when the server restored the
   * session; false when it did not, or answered with an error or not in time (every
   * topic then got a "rpcws.resync").
   */
  recovered?: boolean;
  /** Present only when the client tried to recover: the topics the connection is in again. */
  topics?: Record<string, TopicRecovery>;
}

/** Where a topic stands after a recovery, and whether every event missed was replayed. */
export interface TopicRecovery {
  epoch: string;
  /** The offset of the topic's last event, after the replay. */
  offset: number;
  /** True when every event missed was replayed; false when a "rpcws.resync" named it. */
  recovered: boolean;
}

/** A connection to an rpcws server. Create it with {@link connect}. */
export declare class Client {
  private constructor();
  /** The current WebSocket, made by the constructor in use; it changes on reconnection. */
  readonly socket: WebSocketLike;
  /** True while the socket is open and requests can be sent. */
  readonly connected: boolean;
  /** How many requests are waiting for their reply. */
  readonly pendingCount: number;
  /** Sends a request and resolves with the reply's data. Rejects with an RpcError. */
  request<R = any>(type: string, data?: unknown, options?: RequestOptions): Promise<R>;
  /** Sends a notification: nothing comes back. Throws RpcError "Disconnected" if not open. */
  notify(type: string, data?: unknown): void;
  /** The client's own event: the socket closed; pending requests were rejected. */
  on(type: 'disconnect', listener: (info: DisconnectInfo) => void): () => void;
  /**
   * The client's own event: a new socket opened (after the recovery, if any). A server
   * that keeps history gave the topics back when `info.recovered`; otherwise join again.
   */
  on(type: 'reconnect', listener: (info: ReconnectInfo) => void): () => void;
  /**
   * The client's own event, once, at the very end: after close(), after a drop without
   * `reconnect`, or when reconnection gave up. It follows the last "disconnect"
   * (reconnecting: false); nothing happens after it.
   */
  on(type: 'close', listener: (info: CloseInfo) => void): () => void;
  /** Server events of one type, or "*" for all. Returns a function that removes the listener. */
  on<T = any>(type: string, listener: (data: T, frame: EventFrame<T>) => void): () => void;
  off(type: string, listener: (...args: any[]) => void): void;
  /** Closes for good: pending requests reject with "Disconnected" at once. */
  close(code?: number, reason?: string): Promise<void>;
}

/**
 * Opens a WebSocket and resolves to a Client once it is open. Rejects with RpcError
 * "Disconnected" if it cannot; with `reconnect`, only once the policy gives up.
 */
export declare function connect(url: string | URL, options?: ConnectOptions): Promise<Client>;

/** What {@link randomId} draws from: globalThis.crypto, in browsers and Node alike. */
export interface RandomSource {
  getRandomValues<T extends Uint8Array>(array: T): T;
  randomUUID?(): string;
}

/** A random version 4 UUID: crypto.randomUUID, or crypto.getRandomValues where it is missing. */
export declare function randomId(crypto?: RandomSource): string;
