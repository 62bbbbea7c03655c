// Uses every export and option of rpcws.d.ts, to be compiled with tsc --strict by
// dom.ts (browser types) and node.ts (Node types and the ws package, no DOM). It is
// never run: only its types are checked.

import {
  connect,
  randomId,
  Client,
  RpcError,
  DEFAULT_TIMEOUT_MS,
  MAX_HELD,
  type CloseInfo,
  type ConnectOptions,
  type DisconnectInfo,
  type EventFrame,
  type RandomSource,
  type ReconnectInfo,
  type ReconnectOptions,
  type RequestOptions,
  type TopicRecovery,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../../rpcws.js';

interface User {
  id: string;
  name: string;
}

export async function useEverything(WebSocket: WebSocketConstructor | undefined, crypto: RandomSource): Promise<void> {
  const reconnect: ReconnectOptions = { initialDelayMs: 0, maxDelayMs: -1, maxAttempts: Infinity };
  const ac = new AbortController();
  const options: ConnectOptions = {
    protocols: ['rpcws', 'token.abc'],
    timeoutMs: DEFAULT_TIMEOUT_MS,
    reconnect,
    signal: ac.signal,
    WebSocket,
  };
  const client: Client = await connect('ws://127.0.0.1:8080/rpc', options);
  await connect(new URL('ws://127.0.0.1:8080/rpc'), { protocols: 'rpcws', reconnect: true, timeoutMs: -1 });

  const socket: WebSocketLike = client.socket;
  const state: number = socket.readyState;
  const protocol: string = socket.protocol;
  const connected: boolean = client.connected;
  const pending: number = client.pendingCount;
  void [state, protocol, connected, pending];

  const requestOptions: RequestOptions = { timeoutMs: 0, signal: AbortSignal.timeout(1000) };
  const user = await client.request<User>('user.get', { id: '123' }, requestOptions);
  const name: string = user.name;
  void name;
  await client.request('demo.echo');
  try {
    await client.request('demo.fail', { code: 'NotFound' }, { timeoutMs: Infinity });
  } catch (err) {
    if (err instanceof RpcError) {
      const code: string = err.code;
      const closeCode: number | undefined = err.closeCode;
      const closeReason: string | undefined = err.closeReason;
      const url: string | undefined = err.url;
      void [code, closeCode, closeReason, url];
    }
  }
  client.notify('user.save', { id: '7', name: 'Ana' });
  client.notify('demo.echo');

  const offTick = client.on<{ n: number }>('demo.tick', (data, frame: EventFrame<{ n: number }>) => {
    const n: number = data.n;
    const type: string = frame.type;
    void [n, type];
  });
  offTick();
  client.on('error', (_data, frame) => {
    const code: string | undefined = frame.code;
    const message: string | undefined = frame.message;
    void [code, message];
  });
  client.on('*', (data: unknown, frame) => void [data, frame.type]);
  client.on('disconnect', (info: DisconnectInfo) => {
    const reconnecting: boolean = info.reconnecting;
    const code: number = info.code;
    const reason: string = info.reason;
    void [reconnecting, code, reason];
  });
  client.on('reconnect', (info: ReconnectInfo) => {
    const attempt: number = info.attempt;
    const recovered: boolean | undefined = info.recovered;
    for (const [topic, t] of Object.entries(info.topics ?? {})) {
      const r: TopicRecovery = t;
      const fields: [string, string, number, boolean] = [topic, r.epoch, r.offset, r.recovered];
      void fields;
    }
    void [attempt, recovered, MAX_HELD];
  });
  client.on('topic.message', (_data, frame) => {
    const where: [string | undefined, string | undefined, number | undefined] = [frame.topic, frame.epoch, frame.offset];
    void where;
  });
  client.on('close', (info: CloseInfo) => {
    const attempts: number = info.attempts;
    const code: number = info.code;
    void [attempts, code, info.reason];
  });
  const listener = (): void => {};
  client.on('demo.tick', listener);
  client.off('demo.tick', listener);

  const id: string = randomId();
  const fallback: string = randomId({ getRandomValues: (a) => a });
  const fromCrypto: string = randomId(crypto);
  void [id, fallback, fromCrypto, new RpcError('Timeout', 'timeout: x', { closeCode: 1000 })];

  await client.close();
  await client.close(4000, 'bye');
}
