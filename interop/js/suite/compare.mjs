// Compares a frame a server sent with the frame the reference server sends, at one of
// two levels:
//
// - default: what PROTOCOL.md pins. The top-level fields are the same names in the same
//   order; `id` is the same raw text, byte for byte; every other field is the same JSON
//   value (object key order, number and string spelling, white space free); a path
//   marked free may hold any value of the same JSON kind (a non-empty string where the
//   reference's is non-empty), e.g. an error's message, whose wording is the server's.
// - strict: the reference server's exact bytes, for this project's own servers.
//
// A difference is thrown as a RuleError naming the rule it breaks where one can be told
// from the frame alone, else as a plain Error (the check's own rule applies).

import { rules, RuleError, strictRule } from './rules.mjs';

/**
 * Splits the text of a JSON object into its top-level members, each with the raw text
 * of its value. Returns null if text is not a JSON object. Assumes text parses as JSON.
 * @param {string} text
 * @returns {Array<[string, string]> | null}
 */
export function members(text) {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  const skipString = () => {
    i++; // the opening quote
    while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
  };
  const skipValue = () => {
    if (text[i] === '"') return skipString();
    if (text[i] === '{' || text[i] === '[') {
      let depth = 0;
      do {
        if (text[i] === '"') {
          skipString();
          continue;
        }
        if (text[i] === '{' || text[i] === '[') depth++;
        else if (text[i] === '}' || text[i] === ']') depth--;
        i++;
      } while (depth > 0 && i < text.length);
      return;
    }
    while (i < text.length && !',}] \t\n\r'.includes(text[i])) i++;
  };
  ws();
  if (text[i] !== '{') return null;
  i++;
  const out = [];
  ws();
  if (text[i] === '}') return out;
  while (i < text.length) {
    ws();
    const k0 = i;
    skipString();
    const key = JSON.parse(text.slice(k0, i));
    ws();
    i++; // the colon
    ws();
    const v0 = i;
    skipValue();
    out.push([key, text.slice(v0, i)]);
    ws();
    if (text[i] === ',') i++;
    else break;
  }
  return out;
}

const kind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

/** Deep equality of JSON values; object key order does not matter. */
export function sameValue(a, b) {
  if (kind(a) !== kind(b)) return false;
  if (kind(a) === 'array') return a.length === b.length && a.every((x, i) => sameValue(x, b[i]));
  if (kind(a) === 'object') {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && sameValue(a[k], b[k]));
  }
  return a === b;
}

const show = (v) => JSON.stringify(v);

// Compares values at path, allowing any value of the same kind at the free paths.
// Returns a description of the first difference, or "".
function diffValue(got, want, path, free) {
  if (free.has(path)) {
    if (kind(got) !== kind(want)) return `${path} is ${show(got)}, want a ${kind(want)} (its content is free)`;
    if (kind(want) === 'string' && want !== '' && got === '') return `${path} is empty, want a non-empty string (its text is free)`;
    return '';
  }
  const nested = [...free].some((p) => p.startsWith(`${path}.`));
  if (nested && kind(want) === 'object' && kind(got) === 'object') {
    const keys = new Set([...Object.keys(want), ...Object.keys(got)]);
    for (const k of keys) {
      if (!Object.hasOwn(got, k)) return `${path}.${k} is missing`;
      if (!Object.hasOwn(want, k)) return `${path}.${k} is not expected`;
      const d = diffValue(got[k], want[k], `${path}.${k}`, free);
      if (d) return d;
    }
    return '';
  }
  return sameValue(got, want) ? '' : `${path} is ${show(got)}, want ${show(want)} (the same JSON value)`;
}

/** The rule that an error code's row of the Errors table states. */
export function codeRule(code) {
  return (
    {
      ParseError: rules.parseError,
      BadRequest: rules.badRequest,
      MethodNotFound: rules.methodNotFound,
      InvalidParams: rules.invalidParams,
    }[code] ?? rules.codedError
  );
}

/**
 * Checks that got (a frame as received: a string, or an ArrayBuffer for a binary frame)
 * matches want (the reference server's frame, as text). Throws on the first difference.
 * @param {string | ArrayBuffer} got
 * @param {string} want
 * @param {object} [o]
 * @param {boolean} [o.strict] Compare exact bytes too.
 * @param {Iterable<string>} [o.free] Paths (e.g. "message", "data.name") whose content is free.
 * @param {boolean} [o.afterNotification] A notification was sent since the last reply:
 *   an unexpected reply without an id is most likely an answer to it.
 */
export function compareFrame(got, want, { strict = false, free = [], afterNotification = false } = {}) {
  const gotShown = typeof got === 'string' ? got : `a binary frame of ${got.byteLength} bytes`;
  const detail = (what) => `${what}\n  want ${want}\n  got  ${gotShown}`;
  if (typeof got !== 'string') throw new RuleError(rules.textObject, detail('got a binary frame, want a text frame'));
  let g;
  try {
    g = JSON.parse(got);
  } catch {
    throw new RuleError(rules.textObject, detail('got a frame that is not JSON'));
  }
  if (kind(g) !== 'object') throw new RuleError(rules.textObject, detail(`got a JSON ${kind(g)}, want an object`));
  const w = JSON.parse(want);
  const gm = members(got);
  const wm = members(want);
  const gKeys = gm.map(([k]) => k);
  const wKeys = wm.map(([k]) => k);
  const freeSet = new Set(free);

  // A reply where a frame without id was expected, or the other way round.
  const wantsId = w.id !== undefined && w.id !== null;
  const hasId = g.id !== undefined && g.id !== null;
  const isReply = typeof g.type === 'string' && (g.type.endsWith('.response') || g.type === 'error');
  if (wantsId && !hasId && isReply && afterNotification) {
    throw new RuleError(rules.notification, detail('got a reply without id: an answer to a notification?'));
  }
  if (wantsId && !hasId) throw new RuleError(rules.idEcho, detail('the reply has no id'));
  if (!wantsId && hasId) {
    const rule = w.type === 'error' ? rules.parseError : rules.eventShape;
    throw new RuleError(rule, detail(w.type === 'error' ? 'an error that belongs to no request has no id' : 'an event has no id'));
  }

  // An error where a success was expected, or the other way round: the check says why.
  if ((g.type === 'error') !== (w.type === 'error')) {
    const what = g.type === 'error' ? `got error ${show(g.code)} (${show(g.message)})` : `got ${show(g.type)}`;
    throw new Error(detail(`${what}, want ${w.type === 'error' ? `error ${show(w.code)}` : show(w.type)}`));
  }

  // The fields: the protocol's, in its order.
  const missing = wKeys.filter((k) => !gKeys.includes(k));
  const extra = gKeys.filter((k) => !wKeys.includes(k));
  if (missing.length > 0) {
    const rule = w.type === 'error' ? rules.errorShape : missing.includes('data') && wantsId ? rules.dataAbsent : wantsId ? rules.successShape : rules.eventShape;
    throw new RuleError(rule, detail(`missing field${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`));
  }
  if (extra.length > 0) throw new RuleError(rules.fieldOrder, detail(`extra field${extra.length > 1 ? 's' : ''} ${extra.join(', ')}`));
  if (gKeys.length !== wKeys.length || gKeys.some((k, i) => k !== wKeys[i])) {
    throw new RuleError(rules.fieldOrder, detail(`fields in the order ${gKeys.join(', ')}, want ${wKeys.join(', ')}`));
  }

  // The id: the raw text that arrived.
  const rawId = (ms) => ms.find(([k]) => k === 'id')?.[1];
  if (wantsId && rawId(gm) !== rawId(wm)) {
    const decoded = sameValue(g.id, w.id) ? ' (the same value, re-encoded)' : '';
    throw new RuleError(rules.idEcho, detail(`id is ${rawId(gm)}, want the raw text ${rawId(wm)}${decoded}`));
  }

  // The type: exactly as sent, plus ".response".
  if (g.type !== w.type) {
    const rule = wantsId && typeof w.type === 'string' && w.type.endsWith('.response') ? rules.typeAsSent : rules.eventShape;
    throw new RuleError(rule, detail(`type is ${show(g.type)}, want ${show(w.type)}`));
  }
  if (w.type === 'error') {
    if (typeof g.code !== 'string' || g.code !== w.code) {
      throw new RuleError(codeRule(w.code), detail(`code is ${show(g.code)}, want ${show(w.code)}`));
    }
    if (typeof g.message !== 'string') throw new RuleError(rules.errorShape, detail(`message is ${show(g.message)}, want a string`));
    if (freeSet.has('message') && w.message !== '' && g.message === '') {
      throw new RuleError(rules.errorShape, detail('message is empty, want a non-empty string (its text is free)'));
    }
  }
  for (const [k] of wm) {
    if (k === 'id' || k === 'type' || k === 'code') continue;
    const d = diffValue(g[k], w[k], k, freeSet);
    if (d) throw new Error(detail(d));
  }

  if (strict && got !== want) {
    throw new RuleError(strictRule, detail("the same frame as PROTOCOL.md sees it, but not the reference server's exact bytes"));
  }
}
