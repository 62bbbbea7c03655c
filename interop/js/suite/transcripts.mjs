// Golden transcripts: parse the testdata/transcripts/*.txt format and replay a
// transcript over a raw WebSocket, comparing every frame the server sends byte for byte.
//
//   // a comment
//   --> {"id":"a1","type":"demo.echo","data":[1,2]}        a text frame to send
//   -->binary hello                                        a binary frame to send
//   <-- {"id":"a1","type":"demo.echo.response","data":[1,2]}  a frame the server must send
//
// Each --> is sent in order; the <-- lines after it are read, in order, before the next
// is sent. A notification has no <-- after it: the next reply must be the next frame.

import { openRaw } from './frames.mjs';

/**
 * @typedef {{op: 'send' | 'sendBinary' | 'expect', frame: string, line: number}} Step
 */

/**
 * Parses a transcript into steps. Throws on a line it does not understand.
 * @param {string} text
 * @returns {Step[]}
 */
export function parseTranscript(text) {
  const steps = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const at = i + 1;
    if (line.trim() === '' || line.startsWith('//')) continue;
    let m;
    if ((m = /^-->binary(?: (.*))?$/s.exec(line))) steps.push({ op: 'sendBinary', frame: m[1] ?? '', line: at });
    else if ((m = /^--> (.*)$/s.exec(line))) steps.push({ op: 'send', frame: m[1], line: at });
    else if ((m = /^<-- (.*)$/s.exec(line))) steps.push({ op: 'expect', frame: m[1], line: at });
    else throw new Error(`line ${at}: want "// ", "--> ", "-->binary " or "<-- ", got ${JSON.stringify(line)}`);
  }
  if (steps.length > 0 && steps[0].op === 'expect') {
    throw new Error(`line ${steps[0].line}: a transcript starts with a frame to send`);
  }
  return steps;
}

/**
 * Replays a transcript against the server at url. Resolves with {status: 'pass'}, or
 * {status: 'skip', reason} when the server answers MethodNotFound where the transcript
 * expects something else: the target lacks a service the transcript needs. Rejects with
 * an Error naming the line of the first difference.
 * @param {string} url
 * @param {Step[]} steps
 * @param {{frameTimeoutMs?: number}} [options]
 */
export async function replayTranscript(url, steps, { frameTimeoutMs = 5000 } = {}) {
  const conn = await openRaw(url);
  try {
    const sent = []; // text frames sent so far
    for (const step of steps) {
      if (step.op === 'send') {
        conn.send(step.frame);
        sent.push(step.frame);
        continue;
      }
      if (step.op === 'sendBinary') {
        conn.sendBinary(step.frame);
        continue;
      }
      let got;
      try {
        got = await conn.next(frameTimeoutMs);
      } catch (err) {
        throw new Error(`line ${step.line}: want ${step.frame}\n  got no frame: ${err.message}`);
      }
      if (got === step.frame) continue;
      const missing = lacks(got, step.frame, sent);
      if (missing) return { status: 'skip', reason: `target lacks ${missing}` };
      const shown = typeof got === 'string' ? got : `binary frame of ${got.byteLength} bytes`;
      throw new Error(`line ${step.line}:\n  want ${step.frame}\n  got  ${shown}`);
    }
    return { status: 'pass' };
  } finally {
    await conn.close();
  }
}

// Returns the type of the request that got answered MethodNotFound where the
// transcript wants something else, and "" when that is not what happened.
function lacks(got, want, sent) {
  const parse = (s) => {
    try {
      const f = JSON.parse(s);
      return f !== null && typeof f === 'object' ? f : {};
    } catch {
      return {};
    }
  };
  const g = parse(got);
  const w = parse(want);
  if (typeof got !== 'string' || g.type !== 'error' || g.code !== 'MethodNotFound') return '';
  if (w.type === 'error' && w.code === 'MethodNotFound') return '';
  const key = JSON.stringify(g.id ?? null);
  const request = sent.map(parse).findLast((f) => JSON.stringify(f.id ?? null) === key);
  return typeof request?.type === 'string' ? request.type : 'a method';
}
