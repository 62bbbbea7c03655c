// The golden transcripts of testdata/transcripts, replayed over a raw WebSocket against
// a live server and compared byte for byte; with RPCWS_STRICT=0, compared on what
// PROTOCOL.md pins (suite/compare.mjs), for servers other than this project's.
//
//   RPCWS_URL=ws://127.0.0.1:8080/rpc node --experimental-websocket --test test/
//
// RPCWS_TRANSCRIPTS names another folder of transcripts. Without RPCWS_URL every test
// here is skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTranscript, replayTranscript } from '../suite/transcripts.mjs';

const url = process.env.RPCWS_URL;
const strict = process.env.RPCWS_STRICT !== '0';
const dir = process.env.RPCWS_TRANSCRIPTS ?? fileURLToPath(new URL('../../../testdata/transcripts/', import.meta.url));

let names = [];
try {
  names = readdirSync(dir).filter((n) => n.endsWith('.txt')).sort();
} catch {
  // No folder: the test below says so.
}

test('transcripts exist', { skip: !url && 'RPCWS_URL is not set' }, () => {
  assert.ok(names.length > 0, `no *.txt transcripts in ${dir}`);
});

for (const name of names) {
  test(`transcript ${name}`, { skip: !url && 'RPCWS_URL is not set' }, async (t) => {
    const steps = parseTranscript(readFileSync(join(dir, name), 'utf8'));
    const r = await replayTranscript(url, steps, { strict });
    if (r.status === 'skip') t.skip(r.reason);
  });
}

test('parseTranscript reads the four kinds of line', () => {
  const steps = parseTranscript(
    [
      '// a comment',
      '',
      '--> {"id":"a1","type":"demo.echo","data":[1,2]}',
      '<-- {"id":"a1","type":"demo.echo.response","data":[1,2]}',
      '-->binary hello',
      '-->binary',
      '--> {"type":"x"}\r',
    ].join('\n'),
  );
  assert.deepEqual(steps, [
    { op: 'send', frame: '{"id":"a1","type":"demo.echo","data":[1,2]}', line: 3 },
    { op: 'expect', frame: '{"id":"a1","type":"demo.echo.response","data":[1,2]}', line: 4 },
    { op: 'sendBinary', frame: 'hello', line: 5 },
    { op: 'sendBinary', frame: '', line: 6 },
    { op: 'send', frame: '{"type":"x"}', line: 7 },
  ]);
  assert.throws(() => parseTranscript('-> oops'), /line 1/);
  assert.throws(() => parseTranscript('--> x\n//~ free message'), /line 2/, 'a marker belongs to a "<--" line');
  assert.throws(() => parseTranscript('--> x\n<-- {"a":1}\n//~ free b'), /nothing at b/);
  assert.throws(() => parseTranscript('//~ rule noSuchRule'), /line 1/);
  assert.throws(() => parseTranscript('<-- {}'), /starts with a frame to send/);
});

test('parseTranscript reads the markers of what is free', () => {
  const steps = parseTranscript(
    ['//~ rule idEcho', '--> {"id":1}', '<-- {"id":1,"type":"error","code":"X","message":"m","data":{"a":{"b":2}}}', '//~ free message', '//~ free data.a.b'].join('\n'),
  );
  assert.equal(steps.rule.name, 'idEcho');
  assert.deepEqual(steps[1].free, ['message', 'data.a.b']);
});
