// The live demo page of the reference server: the rpcws client in use, with its
// pending requests, their replies arriving out of order, timeouts, pushed events and
// the frames on the wire.

import { connect, DEFAULT_TIMEOUT_MS } from './rpcws.js';

const $ = (id) => document.getElementById(id);
const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rpc`;
$('ws-url').textContent = url;

let client = null;
let sent = 0; // requests sent, to number them
let arrivals = 0; // replies arrived, to show their order
let eventCount = 0;
const pendingRows = new Set(); // rows whose progress bar moves
let lastSent = ''; // the last frame the socket sent
const rowsById = new Map(); // request id -> its row, to spot replies that come too late

// --- connection ---------------------------------------------------------------

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = text;
}

async function start() {
  // With reconnect, connect waits for a server that is down, retrying with backoff, and
  // the client reopens a dropped socket the same way. Without maxAttempts it never gives up.
  try {
    client = await connect(url, { reconnect: { initialDelayMs: 500, maxDelayMs: 5000 } });
  } catch (err) {
    setConn('closed', `cannot connect to ${url}: ${err.message}`);
    return;
  }
  setConn('open', `connected · ${url}`);
  watchWire(client.socket);
  client.on('disconnect', ({ code, reconnecting }) =>
    setConn('closed', `disconnected (${code})${reconnecting ? ', reconnecting…' : ''}`),
  );
  client.on('reconnect', () => {
    setConn('open', `reconnected · ${url}`);
    watchWire(client.socket);
  });
  client.on('close', ({ code }) => setConn('closed', `closed (${code})`));
  client.on('*', (data, frame) => showEvent(frame));
}

// --- the wire -----------------------------------------------------------------

// Shows every frame the socket sends and receives. The client owns the socket; the
// page only listens, and wraps send to see what goes out.
function watchWire(ws) {
  const send = ws.send.bind(ws);
  ws.send = (frame) => {
    lastSent = frame;
    wire('out', typeof frame === 'string' ? frame : `(binary, ${frame.byteLength} bytes)`);
    send(frame);
  };
  ws.addEventListener('message', (e) => wire('in', typeof e.data === 'string' ? e.data : '(binary)'));
}

// A reply whose request had already timed out: the client dropped it.
function lateReply(text) {
  let id;
  try {
    id = JSON.parse(text).id;
  } catch {
    return false;
  }
  const li = rowsById.get(id);
  if (li?.dataset.state !== 'timeout') return false;
  li.querySelector('.reply').textContent += ' · its reply came later and was dropped';
  return true;
}

function wire(dir, text) {
  const li = document.createElement('li');
  li.className = dir;
  if (dir === 'in' && text.includes('"type":"error"')) li.classList.add('err');
  const time = new Date().toLocaleTimeString([], { hour12: false });
  li.innerHTML = `<span class="t"></span><span class="dir">${dir === 'out' ? '→' : '←'}</span><span class="f"></span>`;
  li.querySelector('.t').textContent = time;
  li.querySelector('.f').textContent = text;
  if (dir === 'in' && lateReply(text)) {
    const note = document.createElement('span');
    note.className = 'late';
    note.textContent = 'late: dropped';
    li.querySelector('.dir').after(note);
  }
  $('wire').prepend(li);
  while ($('wire').children.length > 200) $('wire').lastChild.remove();
}

// --- requests -----------------------------------------------------------------

/** 1 → "1st", 2 → "2nd", 11 → "11th", 23 → "23rd". */
function ordinal(n) {
  const s = ['th', 'st', 'nd', 'rd'];
  const v = n % 100;
  return n + (s[(v - 20) % 10] || s[v] || s[0]);
}
const short = (v) => (v === undefined ? '' : JSON.stringify(v));

/** Sends a request and shows it until it settles. */
function send(type, data, timeoutMs) {
  const n = ++sent;
  const li = document.createElement('li');
  li.dataset.state = 'pending';
  li.innerHTML = `
    <span class="n"></span>
    <div class="what"><div class="type"></div><div class="id"></div></div>
    <div class="body"><div class="payload"></div><div class="bar"><span></span></div></div>
    <span class="status">pending</span>`;
  li.querySelector('.n').textContent = `#${n}`;
  li.querySelector('.type').textContent = type;
  li.querySelector('.payload').textContent = short(data);
  li.querySelector('.payload').title = short(data);
  $('requests').append(li);
  $('requests-empty').hidden = true;
  li.scrollIntoView({ block: 'nearest' });

  const row = { li, start: performance.now(), timeoutMs };
  pendingRows.add(row);
  updatePending();
  const p = client.request(type, data, { timeoutMs });
  // request() has written its frame by now: show the start of the id it chose.
  const id = /^\{"id":"([^"]+)"/.exec(typeof lastSent === 'string' ? lastSent : '')?.[1];
  if (id) {
    li.querySelector('.id').textContent = `${id.slice(0, 8)}…`;
    rowsById.set(id, li);
  }

  const settle = (state, status, text) => {
    pendingRows.delete(row);
    updatePending();
    drawBar(row);
    li.dataset.state = state;
    li.querySelector('.status').textContent = status;
    const reply = document.createElement('div');
    reply.className = 'reply';
    reply.textContent = text;
    reply.title = text;
    li.querySelector('.payload').after(reply);
  };
  p.then(
    (reply) => settle('ok', `✓ arrived ${ordinal(++arrivals)}`, `→ ${short(reply)}`),
    (err) => {
      if (err.code === 'Timeout') settle('timeout', 'timed out', err.message);
      else if (err.code === 'Disconnected') settle('disconnected', 'disconnected', err.message);
      else settle('error', err.code ?? 'error', `${err.code}: ${err.message}`);
    },
  );
  return p;
}

function updatePending() {
  $('pending-count').textContent = `${client?.pendingCount ?? 0} pending`;
}

function drawBar(row) {
  const elapsed = performance.now() - row.start;
  // The client's rule: 0 is the default timeout, a negative one none (no bar).
  const limit = row.timeoutMs === 0 ? DEFAULT_TIMEOUT_MS : row.timeoutMs;
  const frac = limit > 0 && limit < Infinity ? Math.min(1, elapsed / limit) : 0;
  row.li.querySelector('.bar span').style.width = `${(frac * 100).toFixed(1)}%`;
}

function animate() {
  for (const row of pendingRows) drawBar(row);
  requestAnimationFrame(animate);
}
requestAnimationFrame(animate);

// --- events -------------------------------------------------------------------

function showEvent(frame) {
  eventCount++;
  $('event-count').textContent = String(eventCount);
  $('events-empty').hidden = true;
  const li = document.createElement('li');
  if (frame.type === 'error') li.className = 'error';
  li.innerHTML = '<span class="etype"></span><span class="edata"></span><span class="etime"></span>';
  li.querySelector('.etype').textContent = frame.type;
  li.querySelector('.edata').textContent = frame.type === 'error' ? frame.code : short(frame.data);
  li.querySelector('.etime').textContent = new Date().toLocaleTimeString([], { hour12: false });
  $('events').prepend(li);
  while ($('events').children.length > 300) $('events').lastChild.remove();
}

// --- controls -----------------------------------------------------------------

function formValues() {
  const type = $('type').value.trim();
  const text = $('data').value.trim();
  const data = text === '' ? null : JSON.parse(text);
  return { type, data, timeoutMs: Number($('timeout').value) };
}

function formError(err) {
  $('form-error').hidden = !err;
  $('form-error').textContent = err ? String(err.message ?? err) : '';
}

const examples = {
  'user.get': '{"id": "123"}',
  'user.save': '{"id": "42", "name": "Grace Hopper"}',
  'demo.echo': '{"hello": ["world", 1, true]}',
  'demo.sleep': '{"ms": 2000}',
  'demo.fail': '{"code": "PaymentRequired", "message": "insert coin"}',
  'demo.ticks': '{"count": 10, "intervalMs": 300}',
};
$('type').addEventListener('change', () => {
  if (examples[$('type').value]) $('data').value = examples[$('type').value];
});

$('send').addEventListener('submit', (e) => {
  e.preventDefault();
  try {
    const { type, data, timeoutMs } = formValues();
    formError(null);
    send(type, data, timeoutMs).catch(() => {});
  } catch (err) {
    formError(err);
  }
});

$('notify').addEventListener('click', () => {
  try {
    const { type, data } = formValues();
    formError(null);
    client.notify(type, data);
  } catch (err) {
    formError(err);
  }
});

$('lesson').addEventListener('click', () => {
  const real = $('real-timings').checked;
  const hold = real ? 15_000 : 4000;
  const timeoutMs = real ? 10_000 : 3000;
  for (const ms of [700, 100, hold, 500, 300]) send('demo.sleep', { ms }, timeoutMs).catch(() => {});
});

$('ticks').addEventListener('click', () => {
  send('demo.ticks', { count: 20, intervalMs: 250 }, 10_000).catch(() => {});
});

$('fail').addEventListener('click', () => {
  send('user.get', { id: 'nobody' }, 10_000).catch(() => {});
});

$('garbage').addEventListener('click', () => {
  client.socket.send('this is not JSON'); // the server answers with an error event
});

$('clear').addEventListener('click', () => {
  for (const id of ['requests', 'events', 'wire']) $(id).replaceChildren();
  pendingRows.clear();
  rowsById.clear();
  arrivals = 0;
  eventCount = 0;
  $('event-count').textContent = '0';
  $('requests-empty').hidden = false;
  $('events-empty').hidden = false;
  updatePending();
});

start();
