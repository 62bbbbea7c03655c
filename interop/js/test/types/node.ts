// The types in a Node-only project: --types node, no DOM lib, the ws package passed as
// the WebSocket constructor.

import { webcrypto } from 'node:crypto';
import WebSocket from 'ws';
import { connect } from '../../rpcws.js';
import { useEverything } from './usage.js';

await useEverything(WebSocket, webcrypto);
await useEverything(undefined, globalThis.crypto);
const client = await connect('ws://127.0.0.1:8080/rpc', { WebSocket });
await client.close();
