// Talking to the server: the token this tab keeps, JSON requests, the console login that
// opens the event stream, and the streams themselves. Nothing here knows the page: what a
// refused token means to it is handed in with onRefused.

const TOKEN_KEY = 'callfeed.token';

let tokenRequired = true;
let refused = () => {};

/// Called when the server refuses a token it accepted before (it was changed there).
export function onRefused(f) {
  refused = f;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function keepToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

function authHeaders() {
  const t = token();
  return t ? { Authorization: 'Bearer ' + t } : {};
}

/// What this server asks of a console: whether it wants a token, whether it has a room
/// observer. Asked before anything else, so a request bound to be refused is never sent
/// (it would only fill the browser's console with errors).
export async function hello() {
  let about;
  try {
    const r = await fetch('/v1/console/hello', { cache: 'no-store' });
    about = await r.json();
  } catch (_) {
    about = { token_required: true, room_observer: false };
  }
  tokenRequired = about.token_required !== false;
  return about;
}

/// One API request; the answer's JSON (or null) with its status.
export async function api(method, path, body) {
  const sent = token();
  if (tokenRequired && !sent) return { status: 401, ok: false, data: null };
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
  if (r.status === 401 && sent && sent === token()) refused();
  return { status: r.status, ok: r.ok, data };
}

export function sessionPath(id, rest = '') {
  return '/v1/sessions/' + encodeURIComponent(id) + rest;
}

/// Trades the token for the cookie that opens the event stream (EventSource sends no
/// headers); the answer's status, 0 when the server does not answer.
export async function login(t) {
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

/// Forgets the token and signs the stream's cookie out.
export function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  // Under the cookie's path, so the browser sends the cookie to be signed out.
  fetch('/v1/events/logout', { method: 'POST', credentials: 'same-origin' }).catch(() => {});
}

// ---- every session's events --------------------------------------------------------

let events = null;
let retry = null;
let following = false;

/// Follows `GET /v1/events`: `on` maps an event's name to what takes its parsed data;
/// `link` hears 'live' and 'reconnecting'.
export function follow(on, link) {
  following = true;
  clearTimeout(retry);
  if (events) events.close();
  events = new EventSource('/v1/events', { withCredentials: true });
  events.addEventListener('open', () => link('live'));
  for (const [name, take] of Object.entries(on)) {
    events.addEventListener(name, (e) => take(JSON.parse(e.data)));
  }
  events.addEventListener('error', async () => {
    link('reconnecting');
    if (events.readyState !== EventSource.CLOSED) return;
    // Refused (the login lapsed or the server restarted): sign in again, then follow.
    events = null;
    const status = await login(token());
    if (events !== null || !following) return;
    if (status === 204) retry = setTimeout(() => follow(on, link), 1000);
    else if (status === 401) refused();
    else retry = setTimeout(() => follow(on, link), 3000);
  });
}

export function unfollow() {
  following = false;
  clearTimeout(retry);
  if (events) events.close();
  events = null;
}

// ---- one session's events ----------------------------------------------------------

/// Reads one session's recorded events through fetch, so the token goes as a header; each
/// is handed to `take(kind, data)`. The answer stops the reading.
export function sessionEvents(id, take) {
  const controller = new AbortController();
  (async () => {
    const r = await fetch(sessionPath(id, '/events'), {
      headers: { ...authHeaders(), Accept: 'text/event-stream' },
      signal: controller.signal,
      cache: 'no-store',
    });
    if (!r.ok || !r.body) return;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (data) {
          try { take(kind, JSON.parse(data)); } catch (_) { /* a keep-alive */ }
        }
      }
    }
  })().catch(() => {});
  return () => controller.abort();
}
