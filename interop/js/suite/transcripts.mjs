// Golden transcripts: parse the testdata/transcripts/*.txt format and replay a
// transcript over a raw WebSocket, comparing every frame the server sends with the
// reference server's (suite/compare.mjs: what PROTOCOL.md pins, or with strict the
// exact bytes).
//
//   // a comment
//   //~ rule idEcho                                       the rule the transcript holds
//   --> {"id":"a1","type":"demo.echo","data":[1,2]}        a text frame to send
//   -->binary hello                                        a binary frame to send
//   <-- {"id":"a1","type":"error","code":"X","message":"m"}  a frame the server must send
//   //~ free message                                       in the frame above, the content
//                                                          at these paths is free
//
// Each --> is sent in order; the <-- lines after it are read, in order, before the next
// is sent. A notification has no <-- after it: the next reply must be the next frame.
// A "<--" line holds the reference server's exact bytes; "//~" lines are comments to a
// reader that does not know them, so a byte-exact replay ignores them.

import { openRaw } from './frames.mjs';
import { compareFrame } from './compare.mjs';
import { rules } from './rules.mjs';

/**
 * @typedef {{op: 'send' | 'sendBinary' | 'expect', frame: string, line: number, free?: string[]}} Step
 */

/**
 * Parses a transcript into steps. Throws on a line it does not understand.
 * @param {string} text
 * @returns {Step[] & {rule?: import('./rules.mjs').Rule}} the steps; .rule is the rule of a "//~ rule" line
 */
export function parseTranscript(text) {
  const steps = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const at = i + 1;
    let m;
    if ((m = /^\/\/~ ?(.*)$/s.exec(line))) {
      const [word, ...args] = m[1].trim().split(/\s+/);
      if (word === 'rule' && args.length === 1 && Object.hasOwn(rules, args[0]) && !steps.rule) {
        steps.rule = rules[args[0]];
      } else if (word === 'free' && args.length > 0 && steps.at(-1)?.op === 'expect') {
        const last = steps.at(-1);
        const frame = JSON.parse(last.frame);
        for (const path of args) {
          if (valueAt(frame, path) === undefined) throw new Error(`line ${at}: the frame above has nothing at ${path}`);
        }
        last.free = [...(last.free ?? []), ...args];
      } else {
        throw new Error(`line ${at}: want "//~ rule NAME" (one, a name of suite/rules.mjs) or "//~ free PATH..." after a "<--" line, got ${JSON.stringify(line)}`);
      }
      continue;
    }
    if (line.trim() === '' || line.startsWith('//')) continue;
    if ((m = /^-->binary(?: (.*))?$/s.exec(line))) steps.push({ op: 'sendBinary', frame: m[1] ?? '', line: at });
    else if ((m = /^--> (.*)$/s.exec(line))) steps.push({ op: 'send', frame: m[1], line: at });
    else if ((m = /^<-- (.*)$/s.exec(line))) steps.push({ op: 'expect', frame: m[1], line: at });
    else throw new Error(`line ${at}: want "// ", "//~ ", "--> ", "-->binary " or "<-- ", got ${JSON.stringify(line)}`);
  }
  if (steps.length > 0 && steps[0].op === 'expect') {
    throw new Error(`line ${steps[0].line}: a transcript starts with a frame to send`);
  }
  return steps;
}

/** The value at a dotted path of a parsed frame, or undefined. */
function valueAt(value, path) {
  return path.split('.').reduce((v, k) => (v !== null && typeof v === 'object' && Object.hasOwn(v, k) ? v[k] : undefined), value);
}

/**
 * Replays a transcript against the server at url. Resolves with {status: 'pass'}, or
 * {status: 'skip', reason} when the server answers MethodNotFound where the transcript
 * expects something else: the target lacks a service the transcript needs. Rejects with
 * an Error (a RuleError where the broken rule is known) naming the line of the first
 * difference.
 * @param {string} url
 * @param {Step[]} steps
 * @param {{frameTimeoutMs?: number, strict?: boolean}} [options] strict: compare exact
 *   bytes (the default for this function, which the byte-exact tests use).
 */
export async function replayTranscript(url, steps, { frameTimeoutMs = 5000, strict = true } = {}) {
  const conn = await openRaw(url);
  try {
    const sent = []; // text frames sent so far
    let afterNotification = false;
    for (const step of steps) {
      if (step.op === 'send') {
        conn.send(step.frame);
        sent.push(step.frame);
        if (isNotification(step.frame)) afterNotification = true;
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
        const closed = conn.reader.closed;
        const e = new Error(`line ${step.line}: want ${step.frame}\n  got no frame: ${err.message}`);
        if (closed) e.rule = rules.staysOpen;
        throw e;
      }
      if (got === step.frame) {
        afterNotification = false;
        continue;
      }
      const missing = lacks(got, step.frame, sent);
      if (missing) return { status: 'skip', reason: `target lacks ${missing}` };
      try {
        compareFrame(got, step.frame, { strict, free: step.free, afterNotification });
      } catch (err) {
        err.message = `line ${step.line}: ${err.message}`;
        throw err;
      }
      afterNotification = false;
    }
    return { status: 'pass' };
  } finally {
    await conn.close();
  }
}

function parse(s) {
  try {
    const f = JSON.parse(s);
    return f !== null && typeof f === 'object' ? f : {};
  } catch {
    return {};
  }
}

// A JSON object without id, or with "id": null: the server answers nothing.
function isNotification(frame) {
  let f;
  try {
    f = JSON.parse(frame);
  } catch {
    return false;
  }
  return f !== null && typeof f === 'object' && !Array.isArray(f) && (f.id === undefined || f.id === null);
}

// Returns the type of the request that got answered MethodNotFound where the
// transcript wants something else, and "" when that is not what happened.
function lacks(got, want, sent) {
  const g = parse(got);
  const w = parse(want);
  if (typeof got !== 'string' || g.type !== 'error' || g.code !== 'MethodNotFound') return '';
  if (w.type === 'error' && w.code === 'MethodNotFound') return '';
  if (JSON.stringify(g.id ?? null) !== JSON.stringify(w.id ?? null)) return '';
  const key = JSON.stringify(g.id ?? null);
  const request = sent.map(parse).findLast((f) => JSON.stringify(f.id ?? null) === key);
  return typeof request?.type === 'string' ? request.type : 'a method';
}
