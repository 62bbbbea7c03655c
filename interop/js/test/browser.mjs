// Runs the interop suite in a browser page and POSTs the results to /report, where the
// Go test (interop/browser_test.go) reads them. The page's own server provides
// /rpc (the reference server), /transcripts.json and /report.
//
// Query parameters: slow=1 runs the slow checks; auth=URL adds the token check.

import assert from '../suite/assert.mjs';
import { runChecks } from '../suite/runner.mjs';
import { connect } from '../rpcws.js';
import { checkToken } from './auth-check.mjs';

export async function main() {
  const params = new URLSearchParams(location.search);
  const url = `ws://${location.host}/rpc`;
  const list = document.getElementById('results');
  const show = (r) => {
    const li = document.createElement('li');
    li.className = r.status;
    li.textContent = `${r.status.toUpperCase()} ${r.kind} ${r.name}${r.reason ? ` — ${r.reason}` : ''}`;
    list.append(li);
  };

  const transcripts = await (await fetch('/transcripts.json')).json();
  const results = await runChecks({ url, assert, transcripts, slow: params.get('slow') === '1', report: show });

  const auth = params.get('auth');
  if (auth) {
    const r = { kind: 'check', name: 'a token travels in Sec-WebSocket-Protocol', status: 'pass', ms: 0 };
    const start = performance.now();
    try {
      await checkToken({ url: auth, assert, connect });
    } catch (err) {
      Object.assign(r, { status: 'fail', reason: String(err?.message ?? err) });
    }
    r.ms = performance.now() - start;
    results.push(r);
    show(r);
  }

  const env = {
    userAgent: navigator.userAgent,
    secureContext: window.isSecureContext,
    randomUUID: typeof crypto.randomUUID === 'function',
  };
  document.getElementById('status').textContent = 'done';
  await fetch('/report', { method: 'POST', body: JSON.stringify({ env, results, pageErrors: window.pageErrors }) });
}
