// The rules of PROTOCOL.md that the conformance checks hold, each quoted from it: a
// failure names its rule, so that an implementer knows which paragraph to read. The
// quotes are checked against PROTOCOL.md by test/rules.test.mjs (whitespace aside).

/** @typedef {{section: string, text: string, name?: string}} Rule */

/** @type {Record<string, Rule>} */
export const rules = {
  textObject: { section: 'Frames', text: 'One WebSocket **text** frame carries one JSON **object**, UTF-8.' },
  unknownFields: {
    section: 'Frames',
    text: 'Unknown top-level fields are ignored by every reader',
  },
  fieldOrder: {
    section: 'Frames',
    text: 'Writers emit only the fields shown below, in that order, and leave out `id` where the table shows none',
  },
  frameLimit: {
    section: 'Frames',
    text: 'A server never writes a frame larger than the limit it enforces: a reply that would be larger becomes an error reply with code `TooLarge`.',
  },
  utf8: {
    section: 'Frames',
    text: 'Text frames carry valid UTF-8 only. A request whose text is not valid UTF-8 gets `ParseError`; no writer ever echoes invalid bytes.',
  },
  fieldLimits: {
    section: 'Frames',
    text: '`type` and `id` have length limits that the server documents (small: hundreds of bytes for `type`, about a kilobyte for `id`); over them the request gets `BadRequest` and nothing of it is kept.',
  },
  concurrent: {
    section: 'Frames',
    text: 'One connection serves its requests concurrently: a quick request is not held up behind a slow one, and replies overtake each other.',
  },
  successShape: {
    section: 'Messages',
    text: '| server → client | `{"id": ID, "type": T + ".response", "data": R}` | success reply to request `ID` |',
  },
  errorShape: {
    section: 'Messages',
    text: '| server → client | `{"id": ID, "type": "error", "code": C, "message": M}` | error reply to request `ID` |',
  },
  eventShape: {
    section: 'Messages',
    text: '| server → client | `{"type": E, "data": D}` (no `id`) | an unsolicited event (push) |',
  },
  idEcho: {
    section: 'Messages',
    text: 'echoes it back as it arrived, whatever its JSON kind: the same JSON value, written as the raw text it received.',
  },
  typeAsSent: {
    section: 'Messages',
    text: "The reply's type is the request's type **exactly as sent** plus `\".response\"`.",
  },
  dataAbsent: {
    section: 'Messages',
    text: '`data` may be absent or `null` in a request: the method then gets the zero value of its argument type. A success reply always carries `data` (`null` where the result is empty).',
  },
  anyOrder: { section: 'Messages', text: 'Replies may arrive in any order. A client matches them by `id` only.' },
  parseError: {
    section: 'Errors',
    text: '| `ParseError` | the frame is not a JSON object, or is a binary frame (no `id` can be echoed) |',
  },
  badRequest: { section: 'Errors', text: '| `BadRequest` | `type` missing, empty or not a string |' },
  methodNotFound: { section: 'Errors', text: '| `MethodNotFound` | no service or method answers to `T` |' },
  malformedType: {
    section: 'Errors',
    text: 'A type that does not name a method (`user..get`, `.get`, `user.`) is `MethodNotFound`.',
  },
  invalidParams: { section: 'Errors', text: "| `InvalidParams` | `data` does not decode into the method's argument type |" },
  codedError: {
    section: 'Errors',
    text: '| any other UpperCamelCase word | the method returned an error that carries that code |',
  },
  staysOpen: {
    section: 'Errors',
    text: 'A bad frame gets its error reply and the connection **stays open**: the next request on it is served.',
  },
  notification: {
    section: 'Errors',
    text: 'A notification never gets a reply, not even an error (the server logs it).',
  },
  closeCodes: {
    section: 'Errors',
    text: 'Only transport-level faults close a connection, with the matching close code (a frame over the size limit: 1009; server shutdown: 1001).',
  },
  clientTimeout: {
    section: 'Time',
    text: 'A client gives up on a request after its timeout (10 s unless set otherwise)',
  },
  clientDisconnect: {
    section: 'Time',
    text: 'A client whose connection closes fails every pending request at once (`Disconnected`)',
  },
  userSave: {
    section: 'The reference service',
    text: '| `user.save` | `{"id": ..., "name": ...}` | `{"id": ..., "name": ...}` as stored; a later `user.get` returns it |',
  },
  demoEcho: { section: 'The reference service', text: '| `demo.echo` | any JSON | the same JSON value |' },
  demoFail: {
    section: 'The reference service',
    text: '| `demo.fail` | `{"code": C, "message": M}` | an error reply with code `C` and message `M`; a `C` that is not an UpperCamelCase word is `InvalidParams` |',
  },
  demoTicks: {
    section: 'The reference service',
    text: '| `demo.ticks` | `{"count": N, "intervalMs": I}` | `{"count": N}` first, then N events `{"type": "demo.tick", "data": {"n": 1..N}}` on the same connection, the first I ms after the reply and then I ms apart (N up to 1000) |',
  },
};

const sessions = 'Sessions and recovery (when the server keeps history)';

/**
 * The rules of the history level (PROTOCOL.md, "Sessions and recovery"): for servers
 * that keep history, checked by suite/history.mjs.
 * @type {Record<string, Rule>}
 */
export const historyRules = {
  noHistory: {
    section: sessions,
    text: 'A server that keeps no history sends none of the frames below, and the protocol is exactly as above.',
  },
  session: {
    section: sessions,
    text: 'The first frame a server with history writes on a new connection is `{"type": "rpcws.session", "data": {"id": S, "window": W}}`: `S` is an opaque string of at most 128 characters that no one can guess (at least 128 random bits), `W` the recovery window in milliseconds.',
  },
  offsets: {
    section: sessions,
    text: "Within a topic's **epoch** (an opaque string of at most 64 characters), each event published to the topic has an **offset**: 1, 2, 3, … with no gap, counted across every replica.",
  },
  eventPosition: {
    section: sessions,
    text: 'An event published to a topic reaches its members as `{"type": E, "data": D, "topic": T, "epoch": P, "offset": N}`, fields in that order',
  },
  joined: {
    section: sessions,
    text: 'the server writes `{"type": "rpcws.joined", "data": {"topic": T, "epoch": P, "offset": N}}` to that connection, where `N` is the offset of the last event published to `T` (0 if none): before any event of `T` reaches it, and before the reply of the request that joined it.',
  },
  left: { section: sessions, text: 'Leaving writes `{"type": "rpcws.left", "data": {"topic": T}}`.' },
  recoverFirst: {
    section: sessions,
    text: "A `rpcws.recover` that is not the connection's first request is `BadRequest`.",
  },
  sessionQualifies: {
    section: sessions,
    text: 'finds session `S`: known, not expired, of the same identity as this connection (both with none counts as the same), and not recovered before (a session is recovered at most once).',
  },
  unheld: {
    section: sessions,
    text: 'makes this connection a member of exactly the session\'s topics (a topic the client lists that the session does not hold is ignored;',
  },
  replay: {
    section: sessions,
    text: "For each such topic whose listed epoch is the topic's current epoch and whose events after the listed offset are all still in history, it writes those events, in offset order, as ordinary topic events: that topic is **recovered**.",
  },
  quiet: {
    section: sessions,
    text: "A client whose offset is the topic's current offset is recovered with no events, however long the topic has been quiet.",
  },
  resync: {
    section: sessions,
    text: 'writes one `{"type": "rpcws.resync", "data": {"topics": [...]}}` naming every topic that was not recovered',
  },
  recoverReply: {
    section: sessions,
    text: 'replies `{"id": X, "type": "rpcws.recover.response", "data": {"recovered": R, "topics": {T: {"epoch": P, "offset": N, "recovered": B}, ...}}}`',
  },
  liveAfter: {
    section: sessions,
    text: 'their live events follow the replayed ones with no event missed and none twice',
  },
};

// Each rule knows its own name, for --json and --list.
for (const [name, rule] of [...Object.entries(rules), ...Object.entries(historyRules)]) rule.name = name;

/**
 * Not a rule of PROTOCOL.md: what --strict adds, the bytes the reference server sends.
 * @type {Rule}
 */
export const strictRule = {
  name: 'strict',
  section: 'strict level (not a rule of PROTOCOL.md)',
  text: "the reference server's exact bytes, as testdata/transcripts holds them",
};

/**
 * Thrown by a check that cannot run where it is (a browser cannot write invalid
 * UTF-8; a server that keeps no history has no sessions to check): the check is
 * reported as skipped, with the message as its reason.
 */
export class SkipCheck extends Error {
  constructor(message) {
    super(message);
    this.name = 'SkipCheck';
  }
}

/** A rule as one line: `Section: "text"`. */
export function ruleLine(rule) {
  return rule ? `${rule.section}: "${rule.text}"` : '';
}

/**
 * An Error that says which rule the server broke. A check that fails with one reports
 * that rule rather than its own.
 */
export class RuleError extends Error {
  /**
   * @param {Rule} rule
   * @param {string} message
   */
  constructor(rule, message) {
    super(message);
    this.name = 'RuleError';
    this.rule = rule;
  }
}
