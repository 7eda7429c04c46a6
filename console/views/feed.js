// One feed: its state, publisher and figures, what to paste into OBS (the key hidden until
// asked for, each part with a copy button), a preview of its stream, the sessions on it,
// a new key, and the end.

import { api } from '../api.js';
import { h, fill } from '../dom.js';
import { words } from '../format.js';

function copyButton(label, value) {
  return h('button', {
    type: 'button', class: 'copy', 'aria-label': 'Copy ' + label,
    onclick: (e) => {
      const done = () => { e.target.textContent = 'Copied'; };
      if (navigator.clipboard) navigator.clipboard.writeText(value).then(done, () => {});
    },
    text: 'Copy',
  });
}

/// A setting: its name, its value (hidden behind a button when secret), a copy button.
function setting(label, value, secret) {
  const shown = h('code', { class: 'setting', text: secret ? '••••••••' : value });
  const reveal = secret
    ? h('button', { type: 'button', class: 'reveal', onclick: (e) => { shown.textContent = value; e.target.remove(); }, text: 'Show' })
    : null;
  return h('div', { class: 'setting-row' }, h('span', { class: 'label', text: label }), shown, reveal, copyButton(label, value));
}

function publishSettings(p) {
  if (!p) return null;
  if (p.stream_key !== undefined) {
    return h('div', { class: 'publish' },
      h('h2', { text: 'In OBS: Settings › Stream › Service: Custom…' }),
      setting('Server', p.server, false),
      setting('Stream Key', p.stream_key, true),
      setting('ffmpeg URL', p.url, true));
  }
  if (p.bearer !== undefined) {
    return h('div', { class: 'publish' },
      h('h2', { text: 'In OBS 30+: Settings › Stream › Service: WHIP' }),
      setting('Server', p.url, false),
      setting('Bearer Token', p.bearer, true));
  }
  return h('div', { class: 'publish' },
    h('h2', { text: 'In OBS: Settings › Stream › Service: Custom… (Stream Key empty)' }),
    setting('Server', p.url, true),
    setting('streamid', p.streamid, false),
    setting('passphrase', p.passphrase, true));
}

function facts(f) {
  const p = f.publisher;
  const figures = f.figures || {};
  const items = [
    ['Kind', f.kind],
    ['State', words(f.state)],
    ['Profile', f.profile],
    ['Encoding', f.mode_reason],
    ['Publisher', p ? p.address + (p.width ? ' — ' + p.width + '×' + p.height : '') + (p.encoder ? ' (' + p.encoder + ')' : '') : '—'],
    ['Arriving', (figures.kbps || 0) + ' kbit/s, ' + (figures.frames_in || 0) + ' frames in'],
    ['Reconnects', String(figures.reconnects || 0)],
  ];
  if (f.input) items.push(['Input', f.input]);
  if (f.last_refusal) items.push(['Last refused', f.last_refusal.reason + ' (' + f.last_refusal.address + ')']);
  if (f.ended_reason) items.push(['Ended', f.ended_reason]);
  return h('dl', { class: 'facts' },
    items.map(([k, v]) => [h('dt', { text: k }), h('dd', { 'data-fact': k.toLowerCase().replaceAll(' ', '_'), text: v })]));
}

function sessionsOn(f) {
  const ids = f.sessions || [];
  if (!ids.length) return h('p', { class: 'muted', text: 'No session carries this feed.' });
  return h('ul', { class: 'feed-sessions' }, ids.map((id) => h('li', {}, h('a', { href: '#/s/' + encodeURIComponent(id), text: id }))));
}

function preview(id) {
  const video = h('video', { id: 'feed-player', controls: true, playsinline: true });
  video.muted = true;
  let engine = null;
  const start = async () => {
    const r = await api('POST', '/v1/feeds/' + encodeURIComponent(id) + '/preview');
    if (!r.ok || !window.mpegts || !window.mpegts.isSupported()) return;
    window.mpegts.LoggingControl.enableAll = false;
    engine = window.mpegts.createPlayer({ type: 'flv', isLive: true, url: r.data.url }, { enableWorker: false, lazyLoad: false });
    engine.attachMediaElement(video);
    engine.load();
    const played = engine.play();
    if (played && played.catch) played.catch(() => {});
  };
  start();
  return { el: h('div', { class: 'player' }, video), stop: () => { if (engine) engine.destroy(); engine = null; } };
}

export function feedView(id) {
  const path = '/v1/feeds/' + encodeURIComponent(id);
  const title = h('h1', { text: 'Feed ' + id });
  const status = h('div', { class: 'feed-status' });
  const publish = h('div');
  const sessions = h('div');
  const message = h('p', { role: 'status' });
  const player = preview(id);
  let shownPublish = null;
  const show = (f) => {
    title.textContent = (f.name || 'Feed') + ' — ' + f.id;
    fill(status, facts(f));
    fill(sessions, h('h2', { text: 'Sessions on it' }), sessionsOn(f));
    // Redrawn only when the settings change, so a shown key stays shown.
    const key = JSON.stringify(f.publish || null);
    if (key !== shownPublish) {
      shownPublish = key;
      fill(publish, publishSettings(f.publish));
    }
  };
  const refresh = async () => {
    const r = await api('GET', path);
    if (r.ok) show(r.data);
    else if (r.status === 404) message.textContent = 'This feed no longer exists.';
  };
  const rotate = async () => {
    if (!confirm('Give this feed a new key? The encoder using the old one is dropped.')) return;
    const r = await api('POST', path + '/key');
    if (r.ok) { show(r.data); message.textContent = 'A new key: the old one no longer works.'; }
  };
  const remove = async () => {
    if (!confirm('End this feed? Its publisher is dropped and its calls end.')) return;
    const r = await api('DELETE', path);
    if (r.ok) location.hash = '#/feeds';
  };
  refresh();
  const timer = setInterval(refresh, 2000);
  const el = h('section', { class: 'feed-view' },
    h('p', {}, h('a', { href: '#/feeds', text: '‹ Feeds' })),
    title, message, status, player.el, publish, sessions,
    h('div', { class: 'actions' },
      h('button', { type: 'button', onclick: rotate, text: 'New key' }),
      h('button', { type: 'button', class: 'danger', onclick: remove, text: 'End feed' })));
  return { el, leave: () => { clearInterval(timer); player.stop(); } };
}
