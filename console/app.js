// The console's core: signing in, the API, the one event stream for every session, and
// the router. Pages build their DOM with `h` (text, never HTML), so nothing a session's
// fields hold can become markup or script.

import { sessionsView, newSessionView } from '/console/views.js';
import { sessionView } from '/console/session.js';

const TOKEN_KEY = 'callfeed.token';
const SAMPLES_KEPT = 300;

/// How long an ended session stays in the tab (the server's default --keep-ended).
const KEEP_ENDED_MS = 600 * 1000;

export const store = {
  sessions: new Map(), // id -> {id, request, status, report}
  samples: new Map(), // id -> [{t, frames, bytes, repeated}] from `stats` events
  endedAt: new Map(), // id -> when its report came (ms)
  listeners: new Set(),
  hello: { token_required: true, room_observer: false },
};

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/// Replaces an element's children; arrays are flattened and empty parts skipped (the DOM's
/// own replaceChildren would print them as "null").
export function fill(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

let drawing = false;

/// Redraws the view once per frame, however many events came.
export function changed() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    const now = Date.now();
    for (const [id, at] of store.endedAt) {
      if (now - at > KEEP_ENDED_MS) {
        store.endedAt.delete(id);
        store.sessions.delete(id);
      }
    }
    for (const f of store.listeners) f();
    renderCounts();
  });
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

/// One API request; the answer's JSON (or null) with its status.
export async function api(method, path, body) {
  const sent = token();
  if (store.hello.token_required && !sent) return { status: 401, ok: false, data: null };
  const headers = { Accept: 'application/json', ...authHeaders() };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    return { status: 0, ok: false, data: { error: 'the server does not answer: ' + e.message } };
  }
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = null;
  }
  // Refused although a token went with it: the token was changed on the server.
  if (r.status === 401 && sent && sent === token()) signOut('The server no longer accepts this token: sign in again.');
  return { status: r.status, ok: r.ok, data };
}

/// A session's phase as the list shows it: its report's teardown decides "ended".
export function phaseOf(s) {
  if (s.report) return s.report.teardown && s.report.teardown.state === 'pending' ? 'teardown_pending' : 'ended';
  return (s.status && s.status.phase) || 'preparing';
}

export function resultOf(s) {
  return s.report ? s.report.result : null;
}

export function modeOf(s) {
  const st = s.status || {};
  const mode = st.mode || (s.report && s.report.mode !== 'none' ? s.report.mode : null);
  if (!mode) return '—';
  return st.relay || (s.report && s.report.relay) ? mode + ' · relay' : mode;
}

export function seconds(ms) {
  if (ms === undefined || ms === null) return '—';
  return (ms / 1000).toFixed(1) + ' s';
}

// ---- the event stream -------------------------------------------------------------

let events = null;
let retry = null;
const asked = new Set(); // sessions whose request is being read

function setLink(text) {
  document.getElementById('link-state').textContent = text;
}

/// Applies an event to its session; one not seen yet (started by curl, another console or
/// node) is kept from its first event, and its request read once.
function upsert(id, change, askRequest) {
  let s = store.sessions.get(id);
  if (!s) {
    s = { id, request: null, status: null, report: null };
    store.sessions.set(id, s);
  }
  change(s);
  if (s.report && !store.endedAt.has(id)) {
    store.endedAt.set(id, Date.now());
    store.samples.delete(id);
  }
  if (!s.request && askRequest && !asked.has(id)) {
    asked.add(id);
    api('GET', '/v1/sessions/' + encodeURIComponent(id)).then((r) => {
      const known = store.sessions.get(id);
      if (r.ok && r.data && r.data.request && known && !known.request) {
        known.request = r.data.request;
        changed();
      }
    });
  }
  changed();
}

function follow() {
  clearTimeout(retry);
  if (events) events.close();
  events = new EventSource('/v1/events', { withCredentials: true });
  events.addEventListener('open', () => setLink('live'));
  events.addEventListener('sessions', (e) => {
    const all = JSON.parse(e.data).sessions || [];
    store.sessions = new Map(all.map((s) => [s.id, s]));
    store.endedAt = new Map(all.filter((s) => s.report).map((s) => [s.id, Date.now()]));
    changed();
  });
  events.addEventListener('status', (e) => {
    const { id, data } = JSON.parse(e.data);
    upsert(id, (s) => { s.status = data; }, true);
  });
  events.addEventListener('report', (e) => {
    const { id, data } = JSON.parse(e.data);
    upsert(id, (s) => { s.report = data; }, false);
  });
  events.addEventListener('stats', (e) => {
    const { id, data } = JSON.parse(e.data);
    const m = data.media;
    if (m) {
      const list = store.samples.get(id) || [];
      list.push({ t: Date.now() / 1000, frames: m.frames_out, bytes: m.bytes_out, repeated: m.repeated_frames, dropped: m.dropped_frames, restarts: m.restarts, slate: m.slate_frames });
      if (list.length > SAMPLES_KEPT) list.shift();
      store.samples.set(id, list);
    }
    upsert(id, (s) => { s.status = data; }, true);
  });
  events.addEventListener('error', async () => {
    if (events.readyState === EventSource.CLOSED) {
      // Refused (the login lapsed or the server restarted): sign in again, then follow.
      setLink('reconnecting…');
      events = null;
      const status = await login(token());
      if (events !== null || document.getElementById('nav').hidden) return;
      if (status === 204) retry = setTimeout(follow, 1000);
      else if (status === 401) signOut('The server no longer accepts this token: sign in again.');
      else retry = setTimeout(follow, 3000);
    } else {
      setLink('reconnecting…');
    }
  });
}

// ---- signing in -------------------------------------------------------------------

async function login(t) {
  try {
    const r = await fetch('/v1/console/login', {
      method: 'POST',
      headers: t ? { Authorization: 'Bearer ' + t } : {},
      credentials: 'same-origin',
      cache: 'no-store',
    });
    return r.status;
  } catch (_) {
    return 0;
  }
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(retry);
  if (events) events.close();
  events = null;
  leaveView();
  // Under the cookie's path, so the browser sends the cookie to be signed out.
  fetch('/v1/events/logout', { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  store.sessions.clear();
  store.samples.clear();
  store.endedAt.clear();
  asked.clear();
  showLogin(message);
}

function showLogin(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('counts').hidden = true;
  setLink('');
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert', text: message || '' });
  if (!message) error.hidden = true;
  const input = h('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'current-password',
    required: true, 'aria-describedby': 'login-error token-help',
  });
  const form = h('form', { id: 'login', class: 'card narrow' },
    h('h1', { text: 'Sign in' }),
    h('label', { for: 'token', text: 'API token' }),
    input,
    h('p', { id: 'token-help', class: 'hint',
      text: 'The server\'s CALLFEED_API_TOKEN. It stays in this tab (sessionStorage) and is sent only as a header.' }),
    error,
    h('button', { type: 'submit', text: 'Sign in' }));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    const status = await login(t);
    if (status === 204) {
      sessionStorage.setItem(TOKEN_KEY, t);
      openApp();
      return;
    }
    input.value = '';
    error.hidden = false;
    error.textContent = status === 401
      ? 'This token is not accepted (401). Use the CALLFEED_API_TOKEN the server was started with.'
      : status === 0
        ? 'The server does not answer. Is callfeed serve running?'
        : 'The server answered ' + status + '.';
    input.focus();
  });
  const main = document.getElementById('main');
  main.replaceChildren(form);
  input.focus();
}

// ---- the app ----------------------------------------------------------------------

function renderCounts() {
  const el = document.getElementById('counts');
  const all = [...store.sessions.values()];
  const count = (f) => all.filter(f).length;
  const figures = [
    ['sessions', all.length],
    ['ringing', count((s) => phaseOf(s) === 'ringing')],
    ['ingesting', count((s) => phaseOf(s) === 'ingesting')],
    ['ended', count((s) => phaseOf(s) === 'ended')],
    ['failed', count((s) => resultOf(s) === 'failed')],
  ];
  el.replaceChildren(...figures.map(([name, n]) =>
    h('div', { class: 'count', 'data-count': name },
      h('span', { class: 'n', text: String(n) }), h('span', { class: 'label', text: name }))));
}

let leave = null;

function leaveView() {
  if (leave) leave();
  leave = null;
  store.listeners.clear();
}

function sessionIdIn(hash) {
  try {
    return decodeURIComponent(hash.slice(4));
  } catch (_) {
    return null;
  }
}

function route(focus) {
  const main = document.getElementById('main');
  const hash = location.hash || '#/';
  leaveView();
  let view;
  const id = hash.startsWith('#/s/') ? sessionIdIn(hash) : null;
  if (id) view = sessionView(id);
  else if (hash === '#/new') view = newSessionView();
  else view = sessionsView();
  main.replaceChildren(view.el);
  leave = view.leave || null;
  // A keyboard user lands at the top of what they opened, not on a link that is gone.
  if (focus) main.focus();
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.getAttribute('href') === hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function openApp() {
  document.getElementById('nav').hidden = false;
  document.getElementById('counts').hidden = false;
  renderCounts();
  follow();
  route();
}

export function go(hash) {
  if (location.hash === hash) route(true);
  else location.hash = hash;
}

window.addEventListener('hashchange', () => {
  // Only the console's own places (#/...): "#main" is the skip link's target.
  if (!document.getElementById('nav').hidden && location.hash.startsWith('#/')) route(true);
});

document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  document.getElementById('main').focus();
});

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));

// Whether this server wants a token is asked first: a request bound to be refused would
// only fill the browser's console with errors.
async function start() {
  try {
    const r = await fetch('/v1/console/hello', { cache: 'no-store' });
    store.hello = await r.json();
  } catch (_) {
    store.hello = { token_required: true, room_observer: false };
  }
  if (store.hello.token_required !== false && !token()) {
    showLogin(null);
    return;
  }
  const status = await login(token());
  if (status === 204) openApp();
  else showLogin('This token is not accepted: sign in again.');
}

start();
