// The cluster chat: one room, joined on every replica of the cluster server. The
// client reconnects by itself (reconnect: true) and, the server keeping history,
// recovers its room and the messages it missed: they reach the 'topic.message'
// listener as ordinary events. The page only shows; it joins again and reloads the
// scrollback when the server says that something could not be recovered.

import { connect } from '/rpcws.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const user = params.get('user') || `guest-${Math.random().toString(36).slice(2, 6)}`;
const room = params.get('room') || 'lobby';
const SCROLLBACK = 50; // messages loaded with topic.history
const MAX_SHOWN = 500; // messages kept on the page
const MAX_LOG = 20; // lines kept in the connection log

// What the page has shown of the room: the epoch and offset of the last message.
const shown = { epoch: '', offset: 0 };

function setState(state, text) {
  $('conn').dataset.state = state;
  $('conn-text').textContent = text;
}

function log(text) {
  const li = document.createElement('li');
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  $('log').prepend(li);
  while ($('log').children.length > MAX_LOG) $('log').lastElementChild.remove();
}

// Shows one message of the room, unless it was shown already: a message is
// known by its epoch and offset, so that the scrollback and the live events
// can overlap without showing a message twice.
function show(epoch, offset, msg) {
  if (epoch === shown.epoch && offset <= shown.offset) return;
  const list = $('messages');
  if (shown.epoch && epoch !== shown.epoch) {
    const li = document.createElement('li');
    li.className = 'divider';
    li.textContent = 'the room’s history restarted: earlier messages may be missing';
    list.append(li);
  }
  Object.assign(shown, { epoch, offset });
  const li = document.createElement('li');
  li.className = 'message';
  li.dataset.offset = String(offset);
  const who = document.createElement('b');
  who.textContent = String(msg?.user ?? '?');
  const text = document.createElement('span');
  text.className = 'text';
  text.textContent = String(msg?.text ?? JSON.stringify(msg));
  li.append(who, text);
  if (msg?.user === user) li.classList.add('mine');
  list.append(li);
  while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
  li.scrollIntoView({ block: 'end' });
}

// Live messages that arrive while the scrollback loads wait in held, so that
// the older messages are shown first; loading counts the loads under way.
const held = [];
let loading = 0;

function receive(epoch, offset, msg) {
  if (loading === 0) return show(epoch, offset, msg);
  if (held.length >= MAX_SHOWN) held.shift(); // the page keeps no more anyway
  held.push([epoch, offset, msg]);
}

// Loads the room's recent messages: at the start, and after a gap.
async function scrollback(client) {
  loading++;
  try {
    const h = await client.request('topic.history', { topic: room, limit: SCROLLBACK });
    for (const e of h.events) show(h.epoch, e.offset, e.data?.data);
  } finally {
    if (--loading === 0) for (const m of held.splice(0)) show(...m);
  }
}

async function refreshMembers(client) {
  const { members } = await client.request('topic.presence', { topic: room });
  const names = members.map((m) => m.user || 'anonymous').sort();
  $('member-count').textContent = String(names.length);
  $('members').replaceChildren(
    ...names.map((n) => {
      const li = document.createElement('li');
      li.textContent = n;
      return li;
    }),
  );
}

async function main() {
  $('room-name').textContent = room;
  $('me').textContent = user;
  let client = null;
  // The form never submits itself: before the connection it does nothing.
  $('send').addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = $('text').value.trim();
    if (!text || !client) return;
    $('text').value = '';
    try {
      await client.request('topic.publish', { topic: room, data: { user, text } });
    } catch (err) {
      log(`not sent: ${err.message}`);
      $('text').value = text;
    }
  });
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rpc?user=${encodeURIComponent(user)}`;
  client = await connect(url, { reconnect: { initialDelayMs: 200, maxDelayMs: 3000 } });
  window.chatClient = client; // for a console, and the page's test

  client.on('topic.message', (data, frame) => {
    if (data?.topic === room) receive(frame.epoch ?? '', frame.offset ?? shown.offset + 1, data.data);
  });
  client.on('disconnect', ({ code, reconnecting }) => {
    setState(reconnecting ? 'reconnecting' : 'closed', reconnecting ? 'reconnecting…' : 'closed');
    log(`connection closed (${code})${reconnecting ? ', reconnecting' : ''}`);
  });
  client.on('rpcws.resync', async (data) => {
    // Some messages could not be recovered (or the broker lost some): load the
    // scrollback again; show() leaves out those already shown.
    if (!data?.topics || data.topics.length === 0 || data.topics.includes(room)) {
      log('some messages could not be recovered: reloading the room');
      await scrollback(client).catch((err) => log(`reload failed: ${err.message}`));
    }
  });
  client.on('reconnect', async (info) => {
    const back = info.recovered && info.topics && room in info.topics;
    setState('open', back ? 'connected · recovered' : 'connected');
    log(back ? `reconnected: room recovered${info.topics[room].recovered ? ', every missed message replayed' : ', some messages lost'}` : 'reconnected: joining again');
    try {
      if (!back) {
        await client.request('topic.join', { topic: room });
        await scrollback(client);
      }
      await refreshMembers(client);
    } catch (err) {
      log(`after the reconnection: ${err.message}`);
    }
  });
  client.on('close', () => setState('closed', 'closed'));

  await client.request('topic.join', { topic: room });
  await scrollback(client);
  await refreshMembers(client);
  setState('open', 'connected');
  log('connected');
  setInterval(() => {
    if (client.connected) refreshMembers(client).catch(() => {});
  }, 5000);
}

main().catch((err) => {
  setState('closed', `failed: ${err.message}`);
  log(String(err));
});
