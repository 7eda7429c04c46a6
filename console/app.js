// The console's core: signing in, the API, the one event stream for every session, and
// the router. Pages build their DOM with `h` (text, never HTML), so nothing a session's
// fields hold can become markup or script.

import { sessionsView, newSessionView } from '/console/views.js';
import { sessionView } from '/console/session.js';

const TOKEN_KEY = 'callfeed.token';
const SAMPLES_KEPT = 300;

export const store = {
  sessions: new Map(), // id -> {id, request, status, report}
  samples: new Map(), // id -> [{t, status}] from `stats` events
  listeners: new Set(),
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

export function changed() {
  for (const f of store.listeners) f();
  renderCounts();
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
  if (r.status === 401) signOut('The server no longer accepts this token: sign in again.');
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

function setLink(text) {
  document.getElementById('link-state').textContent = text;
}

function upsert(id, change) {
  const s = store.sessions.get(id);
  if (s) {
    change(s);
    return true;
  }
  // Started elsewhere (another console, curl, another node): its request is read once.
  api('GET', '/v1/sessions/' + encodeURIComponent(id)).then((r) => {
    if (r.ok && r.data && r.data.id) {
      store.sessions.set(id, r.data);
      changed();
    }
  });
  return false;
}

function follow() {
  if (events) events.close();
  events = new EventSource('/v1/events', { withCredentials: true });
  events.addEventListener('open', () => setLink('live'));
  events.addEventListener('sessions', (e) => {
    const all = JSON.parse(e.data).sessions || [];
    store.sessions = new Map(all.map((s) => [s.id, s]));
    changed();
  });
  events.addEventListener('status', (e) => {
    const { id, data } = JSON.parse(e.data);
    if (upsert(id, (s) => { s.status = data; })) changed();
  });
  events.addEventListener('report', (e) => {
    const { id, data } = JSON.parse(e.data);
    if (upsert(id, (s) => { s.report = data; })) changed();
  });
  events.addEventListener('stats', (e) => {
    const { id, data } = JSON.parse(e.data);
    const list = store.samples.get(id) || [];
    list.push({ t: Date.now() / 1000, status: data });
    if (list.length > SAMPLES_KEPT) list.shift();
    store.samples.set(id, list);
    if (upsert(id, (s) => { s.status = data; })) changed();
  });
  events.addEventListener('error', async () => {
    if (events.readyState === EventSource.CLOSED) {
      // Refused (the login lapsed or the server restarted): sign in again, then follow.
      setLink('reconnecting…');
      events = null;
      const status = await login(token());
      if (status === 204) setTimeout(follow, 1000);
      else if (status === 401) signOut('The server no longer accepts this token: sign in again.');
      else setTimeout(follow, 3000);
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
  if (events) events.close();
  events = null;
  fetch('/v1/console/logout', { method: 'POST', credentials: 'same-origin' }).catch(() => {});
  store.sessions.clear();
  store.samples.clear();
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

function route() {
  if (leave) leave();
  leave = null;
  store.listeners.clear();
  const main = document.getElementById('main');
  const hash = location.hash || '#/';
  let view;
  if (hash.startsWith('#/s/')) view = sessionView(decodeURIComponent(hash.slice(4)));
  else if (hash === '#/new') view = newSessionView();
  else view = sessionsView();
  main.replaceChildren(view.el);
  leave = view.leave || null;
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
  if (location.hash === hash) route();
  else location.hash = hash;
}

window.addEventListener('hashchange', () => {
  if (!document.getElementById('nav').hidden) route();
});

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));

// Whether this server wants a token is asked first: a request bound to be refused would
// only fill the browser's console with errors.
async function start() {
  let required = true;
  try {
    const r = await fetch('/v1/console/hello', { cache: 'no-store' });
    required = (await r.json()).token_required !== false;
  } catch (_) {
    required = true;
  }
  if (required && !token()) {
    showLogin(null);
    return;
  }
  const status = await login(token());
  if (status === 204) openApp();
  else showLogin('This token is not accepted: sign in again.');
}

start();
