// The console's wiring: signing in and out, the view the address names, and the start.
// Views get what they need from the helpers (api, store, dom); none of them imports this.

import { hello, login, logout, onRefused, token } from './api.js';
import { startFeed, stopFeed } from './feed.js';
import { clear, setServer } from './store.js';
import { showCounts } from './views/counts.js';
import { feedView } from './views/feed.js';
import { feedsView } from './views/feeds.js';
import { goLiveView } from './views/go-live.js';
import { newSessionView } from './views/new-session.js';
import { sessionView } from './views/session.js';
import { sessionsView } from './views/sessions.js';
import { signInView } from './views/sign-in.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const counts = document.getElementById('counts');
const linkState = document.getElementById('link-state');

let leave = null; // how the open view lets go of what it holds
let stopCounting = null;

function leaveView() {
  if (leave) leave();
  leave = null;
}

/// The id after `#/s/` or `#/f/`.
function sessionIdIn(hash) {
  try {
    return decodeURIComponent(hash.slice(4));
  } catch (_) {
    return null;
  }
}

function route(focus) {
  const hash = location.hash || '#/';
  leaveView();
  let view;
  const id = hash.startsWith('#/s/') ? sessionIdIn(hash) : null;
  const feed = hash.startsWith('#/f/') ? sessionIdIn(hash) : null;
  if (id) view = sessionView(id);
  else if (feed) view = feedView(feed);
  else if (hash === '#/feeds') view = feedsView();
  else if (hash === '#/live') view = goLiveView();
  else if (hash === '#/new') view = newSessionView();
  else view = sessionsView();
  main.replaceChildren(view.el);
  leave = view.leave || null;
  // A keyboard user lands at the top of what they opened, not on a link that is gone.
  if (focus) main.focus();
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function openApp() {
  nav.hidden = false;
  counts.hidden = false;
  stopCounting = showCounts(counts);
  startFeed((state) => { linkState.textContent = state === 'live' ? 'live' : 'reconnecting…'; });
  route();
}

function showSignIn(message) {
  nav.hidden = true;
  counts.hidden = true;
  linkState.textContent = '';
  const view = signInView(message, openApp);
  main.replaceChildren(view.el);
  view.focus();
}

function signOut(message) {
  stopFeed();
  logout();
  leaveView();
  if (stopCounting) stopCounting();
  stopCounting = null;
  clear();
  showSignIn(message);
}

onRefused(() => signOut('The server no longer accepts this token: sign in again.'));

window.addEventListener('hashchange', () => {
  // Only the console's own places (#/...): "#main" is the skip link's target.
  if (!nav.hidden && location.hash.startsWith('#/')) route(true);
});

document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

document.getElementById('sign-out').addEventListener('click', () => signOut('Signed out.'));

async function start() {
  const about = await hello();
  setServer(about);
  if (about.token_required !== false && !token()) {
    showSignIn(null);
    return;
  }
  const status = await login(token());
  if (status === 204) openApp();
  else showSignIn('This token is not accepted: sign in again.');
}

start();
