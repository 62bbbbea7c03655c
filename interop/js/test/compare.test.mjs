// Unit tests of suite/compare.mjs, the judge of a frame against the reference server's,
// and of the rules it names: no network.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { compareFrame, members, sameValue } from '../suite/compare.mjs';
import { rules } from '../suite/rules.mjs';
import { scenarios } from '../suite/scenarios.mjs';
import { parseTranscript } from '../suite/transcripts.mjs';

/** Asserts that compareFrame throws naming rule (a name of suite/rules.mjs). */
function breaks(got, want, rule, options) {
  assert.throws(() => compareFrame(got, want, options), (err) => {
    assert.equal(err.rule?.name, rule, `${err.message}: rule ${err.rule?.name}, want ${rule}`);
    return true;
  });
}

test('members gives the raw text of each top-level value', () => {
  assert.deepEqual(members('{ "id" : {"k": [1, "}"]} , "type":"x","n":-1.5e3,"t":true}'), [
    ['id', '{"k": [1, "}"]}'],
    ['type', '"x"'],
    ['n', '-1.5e3'],
    ['t', 'true'],
  ]);
  assert.deepEqual(members('{}'), []);
  assert.equal(members('[1]'), null);
});

test('sameValue: key order free, kinds not', () => {
  assert.ok(sameValue({ a: 1, b: [1, { c: null }] }, { b: [1, { c: null }], a: 1 }));
  assert.ok(!sameValue([1, 2], [2, 1]));
  assert.ok(!sameValue(0, false));
  assert.ok(!sameValue({}, []));
});

test('the default level accepts what PROTOCOL.md leaves free', () => {
  const want = '{"id":"a\\u0041","type":"demo.echo.response","data":{"b":1,"a":"<&>"}}';
  compareFrame('{"id": "a\\u0041", "type": "demo.echo.response", "data": {"a": "\\u003c&>", "b": 1.0}}', want);
  compareFrame('{"id":7,"type":"error","code":"NotFound","message":"their words"}', '{"id":7,"type":"error","code":"NotFound","message":"ours"}', {
    free: ['message'],
  });
  compareFrame('{"id":1,"type":"user.get.response","data":{"id":"123","name":"Alan"}}', '{"id":1,"type":"user.get.response","data":{"id":"123","name":"Ada"}}', {
    free: ['data.name'],
  });
});

test('the default level names the rule each fault breaks', () => {
  const ok = '{"id":"x","type":"demo.echo.response","data":1}';
  breaks(new ArrayBuffer(2), ok, 'textObject');
  breaks('[1]', ok, 'textObject');
  breaks('{"id":"x","data":1,"type":"demo.echo.response"}', ok, 'fieldOrder');
  breaks('{"id":"x","type":"demo.echo.response","data":1,"extra":2}', ok, 'fieldOrder');
  breaks('{"id":"x","type":"demo.echo.response"}', ok, 'dataAbsent');
  breaks('{"id":"x","type":"demo.Echo.response","data":1}', ok, 'typeAsSent');
  breaks('{"id":"7","type":"demo.echo.response","data":1}', '{"id":7,"type":"demo.echo.response","data":1}', 'idEcho');
  breaks('{"id":-1500.0,"type":"demo.echo.response","data":1}', '{"id":-1.5e3,"type":"demo.echo.response","data":1}', 'idEcho');
  breaks('{"id":null,"type":"user.save.response","data":1}', ok, 'notification', { afterNotification: true });
  breaks('{"type":"error","code":"ParseError","message":"m"}', '{"type":"error","code":"ParseError","message":"m"}'.replace('{', '{"id":1,'), 'idEcho');
  breaks('{"id":1,"type":"error","code":"ParseError","message":"m"}', '{"type":"error","code":"ParseError","message":"m"}', 'parseError');
  breaks('{"id":"x","type":"error","message":"m"}', '{"id":"x","type":"error","code":"BadRequest","message":"m"}', 'errorShape');
  breaks('{"id":"x","type":"error","code":"ServerError","message":"m"}', '{"id":"x","type":"error","code":"BadRequest","message":"m"}', 'badRequest');
  breaks('{"id":"x","type":"error","code":"NotFound","message":""}', '{"id":"x","type":"error","code":"NotFound","message":"m"}', 'errorShape', {
    free: ['message'],
  });
  // A pinned message, or data that is not the same value: the check's own rule.
  assert.throws(() => compareFrame('{"id":"x","type":"error","code":"Teapot","message":"other"}', '{"id":"x","type":"error","code":"Teapot","message":"m"}'), (err) => err.rule === undefined);
  assert.throws(() => compareFrame('{"id":"x","type":"demo.echo.response","data":2}', ok), (err) => err.rule === undefined);
});

test('the strict level wants the exact bytes', () => {
  const want = '{"id":"x","type":"demo.echo.response","data":1}';
  compareFrame(want, want, { strict: true });
  breaks('{"id": "x", "type": "demo.echo.response", "data": 1}', want, 'strict', { strict: true });
  // A fault of the default level is named as such at the strict level too.
  breaks('{"id":"x","data":1,"type":"demo.echo.response"}', want, 'fieldOrder', { strict: true });
});

test('every rule is quoted from PROTOCOL.md', () => {
  const protocol = readFileSync(new URL('../../../PROTOCOL.md', import.meta.url), 'utf8').replace(/\s+/g, ' ');
  for (const [name, rule] of Object.entries(rules)) {
    assert.ok(protocol.includes(rule.text.replace(/\s+/g, ' ')), `rule ${name} is not quoted from PROTOCOL.md: ${rule.text}`);
    assert.ok(protocol.includes(`## ${rule.section} `), `rule ${name}: PROTOCOL.md has no section ${rule.section}`);
  }
});

test('every check has a unique short name and a rule', () => {
  const names = new Set();
  for (const s of scenarios) {
    assert.match(s.check, /^[a-z0-9-]+$/, s.name);
    assert.ok(!names.has(s.check), `${s.check} twice`);
    names.add(s.check);
    assert.ok(Object.values(rules).includes(s.rule), `${s.check}: its rule is not one of suite/rules.mjs`);
  }
  const dir = new URL('../../../testdata/transcripts/', import.meta.url);
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.txt'))) {
    const steps = parseTranscript(readFileSync(new URL(name, dir), 'utf8'));
    assert.ok(steps.rule, `${name} has no "//~ rule" line`);
  }
});
