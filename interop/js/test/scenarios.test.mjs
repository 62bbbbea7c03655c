// The interop scenarios (suite/scenarios.mjs) against a live server.
//
//   RPCWS_URL=ws://127.0.0.1:8080/rpc node --experimental-websocket --test test/
//
// RPCWS_SLOW=1 adds the slow ones (the lesson's 15 s exercise). Frames are compared with
// the reference server's exact bytes; RPCWS_STRICT=0 judges only what PROTOCOL.md pins
// (for other servers). Without RPCWS_URL every test here is skipped; the Go tests in
// interop/ set it to an in-process reference server or to a foreign one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scenarios } from '../suite/scenarios.mjs';
import { probe, runScenario } from '../suite/runner.mjs';
import { SkipCheck } from '../suite/rules.mjs';

const url = process.env.RPCWS_URL;
const slow = process.env.RPCWS_SLOW === '1';
const strict = process.env.RPCWS_STRICT !== '0';
// RPCWS_DEVIATIONS names checks (comma-separated) that the target is known to fail: each
// must still fail on its own rule, so that a deviation fixed is noticed and struck off.
const deviations = new Set((process.env.RPCWS_DEVIATIONS ?? '').split(',').filter(Boolean));

let missing; // types the target answers MethodNotFound, probed once
const lacks = async (needs) => {
  missing ??= probe(url, scenarios.flatMap((s) => s.needs));
  const m = await missing;
  return needs.filter((type) => m.has(type));
};

for (const s of scenarios) {
  const skip = !url ? 'RPCWS_URL is not set' : s.slow && !slow ? 'slow: set RPCWS_SLOW=1' : false;
  test(s.name, { skip }, async (t) => {
    const lacking = await lacks(s.needs);
    if (lacking.length > 0) return t.skip(`target lacks ${lacking.join(', ')}`);
    const known = deviations.has(s.check);
    try {
      await runScenario(s, { url, assert, strict });
    } catch (err) {
      if (err instanceof SkipCheck) return t.skip(err.message);
      if (known && err.rule?.name === s.check) return t.skip(`known deviation: ${err.message}`);
      throw err;
    }
    if (known) assert.fail(`${s.check} is listed in RPCWS_DEVIATIONS but passes: strike it off`);
  });
}
