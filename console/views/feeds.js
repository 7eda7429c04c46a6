// Feeds: the list (state, sessions, kbit/s), read again every two seconds while open, and
// the new-feed form. A feed's own page is `feed.js`.

import { api } from '../api.js';
import { h, fill } from '../dom.js';
import { words } from '../format.js';

const KINDS = [
  ['rtmp', 'RTMP: an encoder (OBS, ffmpeg) pushes to this node'],
  ['srt', 'SRT: an encoder calls this node, encrypted'],
  ['whip', 'WHIP: a browser or OBS 30+ publishes over WebRTC'],
  ['rtsp', 'RTSP: this node pulls an IP camera'],
  ['pull', 'Pull: this node plays a URL or test:'],
];

function newFeedForm(onCreated) {
  const kind = h('select', { id: 'feed-kind', name: 'kind' }, KINDS.map(([v, t]) => h('option', { value: v, text: t })));
  const name = h('input', { id: 'feed-name', name: 'name', type: 'text', autocomplete: 'off' });
  const url = h('input', { id: 'feed-url', name: 'url', type: 'text', autocomplete: 'off', placeholder: 'rtsp://user:password@camera/stream1' });
  const urlField = h('div', { class: 'field' }, h('label', { for: 'feed-url', text: 'URL' }), url);
  const error = h('p', { class: 'error', role: 'alert' });
  error.hidden = true;
  const showUrl = () => { urlField.hidden = ['rtmp', 'srt', 'whip'].includes(kind.value); };
  kind.addEventListener('change', showUrl);
  showUrl();
  const submit = async (e) => {
    e.preventDefault();
    const body = { kind: kind.value };
    if (name.value.trim()) body.name = name.value.trim();
    if (!urlField.hidden && url.value.trim()) body.url = url.value.trim();
    const r = await api('POST', '/v1/feeds', body);
    if (r.ok) {
      location.hash = '#/f/' + encodeURIComponent(r.data.id);
      onCreated();
      return;
    }
    error.textContent = (r.data && r.data.error) || 'The feed could not be made (' + r.status + ').';
    error.hidden = false;
  };
  return h('form', { class: 'new-feed', onsubmit: submit },
    h('h2', { text: 'New feed' }),
    h('div', { class: 'field' }, h('label', { for: 'feed-kind', text: 'Kind' }), kind),
    h('div', { class: 'field' }, h('label', { for: 'feed-name', text: 'Name' }), name),
    urlField,
    error,
    h('button', { type: 'submit', text: 'Create feed' }));
}

function row(f) {
  return h('tr', { 'data-feed': f.id },
    h('td', {}, h('a', { href: '#/f/' + encodeURIComponent(f.id), text: f.name || f.id })),
    h('td', { text: f.kind }),
    h('td', {}, h('span', { class: 'phase ' + f.state, text: words(f.state) })),
    h('td', { text: String((f.sessions || []).length) }),
    h('td', { text: String((f.figures && f.figures.kbps) || 0) }));
}

export function feedsView() {
  const body = h('tbody');
  const empty = h('p', { class: 'muted', text: 'No feeds yet: make one below.' });
  const table = h('table', { class: 'feeds' },
    h('caption', { text: 'Feeds' }),
    h('thead', {}, h('tr', {}, ['Feed', 'Kind', 'State', 'Sessions', 'kbit/s'].map((t) => h('th', { scope: 'col', text: t })))),
    body);
  const refresh = async () => {
    const r = await api('GET', '/v1/feeds');
    const feeds = (r.ok && r.data && r.data.feeds) || [];
    fill(body, feeds.map(row));
    empty.hidden = feeds.length > 0;
    table.hidden = feeds.length === 0;
  };
  refresh();
  const timer = setInterval(refresh, 2000);
  const el = h('section', { class: 'feeds-view' }, h('h1', { text: 'Feeds' }), empty, table, newFeedForm(refresh));
  return { el, leave: () => clearInterval(timer) };
}
