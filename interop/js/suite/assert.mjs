// The few assertions the scenarios use, for browsers, where node:assert does not exist.
// Same names and meaning as node:assert/strict; Node runs the scenarios with the real one.

export class AssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AssertionError';
  }
}

const show = (v) => {
  try {
    return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

function deepEq(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && deepEq(a[k], b[k]));
}

const assert = {
  ok(value, message) {
    if (!value) throw new AssertionError(message ?? `got ${show(value)}, want a truthy value`);
  },
  equal(actual, expected, message) {
    if (!Object.is(actual, expected)) throw new AssertionError(message ?? `got ${show(actual)}, want ${show(expected)}`);
  },
  notEqual(actual, expected, message) {
    if (Object.is(actual, expected)) throw new AssertionError(message ?? `got ${show(actual)}, want something else`);
  },
  deepEqual(actual, expected, message) {
    if (!deepEq(actual, expected)) throw new AssertionError(message ?? `got ${show(actual)}, want ${show(expected)}`);
  },
  match(string, regexp, message) {
    if (typeof string !== 'string' || !regexp.test(string)) {
      throw new AssertionError(message ?? `got ${show(string)}, want a match for ${regexp}`);
    }
  },
  fail(message) {
    throw new AssertionError(message ?? 'failed');
  },
  /** Awaits p and checks that it rejects with an error having the properties of want. */
  async rejects(p, want = {}, message) {
    let error;
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (err) {
      error = err;
    }
    if (error === undefined) throw new AssertionError(message ?? `got no error, want ${show(want)}`);
    for (const [k, v] of Object.entries(want)) {
      if (!deepEq(error[k], v)) {
        throw new AssertionError(message ?? `got error ${k} ${show(error[k])} (${error}), want ${show(v)}`);
      }
    }
  },
};

export default assert;
