// Type declarations for rpcws.js, the rpcws reference client.

/** How long a request waits for its reply unless told otherwise: 10 s. */
export declare const DEFAULT_TIMEOUT_MS: number;

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

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Subprotocols offered to the server, e.g. to carry a token: browsers cannot set headers. */
  protocols?: string | string[];
  /** Default per-request timeout in milliseconds; 0 or Infinity: none. 10 s if unset. */
  timeoutMs?: number;
  /** Reopen the socket when it drops, with doubling, jittered delays. */
  reconnect?: boolean | ReconnectOptions;
  /** Abandons connecting. */
  signal?: AbortSignal;
  /** WebSocket constructor; globalThis.WebSocket if unset (e.g. the `ws` package's on old Node). */
  WebSocket?: new (url: string, protocols?: string | string[]) => WebSocket;
}

export interface ReconnectOptions {
  /** First delay before reopening, in milliseconds (default 500). */
  initialDelayMs?: number;
  /** Largest delay, in milliseconds (default 10000). */
  maxDelayMs?: number;
  /** Attempts in a row before giving up (default Infinity). */
  maxAttempts?: number;
}

/** Options of {@link Client.request}. */
export interface RequestOptions {
  /** Overrides the client's timeout for this request; 0 or Infinity: none. */
  timeoutMs?: number;
  /** Cancels the request: the Promise rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** A frame pushed by the server: an event, or an error that belongs to no request. */
export interface EventFrame<T = unknown> {
  type: string;
  data?: T;
  /** Set on frames of type "error". */
  code?: string;
  /** Set on frames of type "error". */
  message?: string;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  /** True when the client will try to reopen the socket. */
  reconnecting: boolean;
}

export interface ReconnectInfo {
  /** The attempt that succeeded, counting from 1. */
  attempt: number;
}

/** A connection to an rpcws server. Create it with {@link connect}. */
export declare class Client {
  private constructor();
  /** The current WebSocket; it changes on reconnection. */
  readonly socket: WebSocket;
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
  /** The client's own event: a new socket opened; resubscribe here. */
  on(type: 'reconnect', listener: (info: ReconnectInfo) => void): () => void;
  /** Server events of one type, or "*" for all. Returns a function that removes the listener. */
  on<T = any>(type: string, listener: (data: T, frame: EventFrame<T>) => void): () => void;
  off(type: string, listener: (...args: any[]) => void): void;
  /** Closes for good: pending requests reject with "Disconnected" at once. */
  close(code?: number, reason?: string): Promise<void>;
}

/** Opens a WebSocket and resolves to a Client once it is open. */
export declare function connect(url: string | URL, options?: ConnectOptions): Promise<Client>;

/** A random version 4 UUID: crypto.randomUUID, or crypto.getRandomValues where it is missing. */
export declare function randomId(
  crypto?: Pick<Crypto, 'getRandomValues'> & Partial<Pick<Crypto, 'randomUUID'>>,
): string;
