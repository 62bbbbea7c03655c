// The types in a browser project: DOM lib, no Node types.

import { useEverything } from './usage.js';

await useEverything(WebSocket, crypto);
await useEverything(globalThis.WebSocket, window.crypto);
await useEverything(undefined, crypto);
