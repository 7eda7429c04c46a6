// Changing a running call from the console: its volume, a pause, another input or spoken
// words now or after what is queued, a clear of the queue, and the queue's items as they
// play. Each change is the API's PATCH or queue request; what the server answers (the
// session's new status) goes into the store.

import { api, sessionPath } from '../../api.js';
import { fill, h } from '../../dom.js';
import { seconds } from '../../format.js';
import { put } from '../../store.js';

/// How often the queue's progress is read while the panel shows a bound session.
const REFRESH_MS = 1000;

export function controlPanel(id) {
  const said = h('p', { class: 'error', role: 'alert', id: 'control-error', hidden: true });
  const volume = h('input', { id: 'control-volume', type: 'range', min: 0, max: 200, step: 5, value: 100, 'aria-label': 'Volume, percent of the input' });
  const volumeShown = h('output', { id: 'control-volume-shown', for: 'control-volume', text: '100 %' });
  const pause = h('button', { id: 'control-pause', type: 'button', text: 'Pause' });
  const kind = h('select', { id: 'control-kind', 'aria-label': 'What to play' },
    h('option', { value: 'input', text: 'an input (file, URL, feed:ID, test:)' }),
    h('option', { value: 'tts', text: 'spoken words' }));
  const what = h('input', { id: 'control-media', type: 'text', placeholder: 'what to play', 'aria-label': 'What to play', size: 40 });
  const mark = h('input', { id: 'control-mark', type: 'text', placeholder: 'mark (optional)', 'aria-label': 'Mark', size: 12 });
  const now = h('button', { id: 'control-play-now', type: 'button', text: 'Play now' });
  const next = h('button', { id: 'control-play-next', type: 'button', text: 'Play next' });
  const clear = h('button', { id: 'control-clear', type: 'button', text: 'Clear queue' });
  const queue = h('ol', { id: 'control-queue', class: 'queue' });
  let paused = false;

  const answered = (r) => {
    if (r.ok && r.data && r.data.id) {
      said.hidden = true;
      put(r.data);
      return;
    }
    said.textContent = (r.data && r.data.error) || 'The server answered ' + r.status + '.';
    said.hidden = false;
  };
  const media = () => (kind.value === 'tts' ? 'tts:' + what.value : what.value);
  volume.addEventListener('input', () => { volumeShown.textContent = volume.value + ' %'; });
  volume.addEventListener('change', async () => {
    answered(await api('PATCH', sessionPath(id), { volume: Number(volume.value) }));
  });
  pause.addEventListener('click', async () => {
    answered(await api('PATCH', sessionPath(id), { paused: !paused }));
  });
  now.addEventListener('click', async () => {
    const item = { media: media() };
    if (mark.value) item.mark = mark.value;
    answered(await api('POST', sessionPath(id, '/queue'), { items: [item], mode: 'replace' }));
  });
  next.addEventListener('click', async () => {
    const item = { media: media() };
    if (mark.value) item.mark = mark.value;
    answered(await api('POST', sessionPath(id, '/queue'), { items: [item], mode: 'append' }));
  });
  clear.addEventListener('click', async () => {
    answered(await api('DELETE', sessionPath(id, '/queue')));
  });

  const el = h('div', { class: 'control', id: 'control', hidden: true },
    h('div', { class: 'bar' }, h('label', { for: 'control-volume', text: 'Volume' }), volume, volumeShown, pause),
    h('div', { class: 'bar' }, kind, what, mark, now, next, clear),
    said,
    queue);

  let timer = null;
  const refresh = async () => {
    const r = await api('GET', sessionPath(id));
    if (r.ok && r.data && r.data.id) put(r.data);
  };

  /// Shows the panel for a bound session, with its volume, pause and queue.
  const show = (s) => {
    const st = (s && s.status) || {};
    const bound = st.phase === 'ingesting' && !(s && s.report);
    el.hidden = !bound;
    if (bound && !timer) timer = setInterval(refresh, REFRESH_MS);
    if (!bound && timer) { clearInterval(timer); timer = null; }
    paused = Boolean(st.paused);
    pause.textContent = paused ? 'Resume' : 'Pause';
    if (document.activeElement !== volume && typeof st.volume === 'number') {
      volume.value = st.volume;
      volumeShown.textContent = st.volume + ' %';
    }
    const items = (s && s.report && s.report.queue) || st.queue || [];
    fill(queue, items.map((i) => h('li', { 'data-mark': i.mark || '', 'data-state': i.state },
      h('span', { class: 'state ' + i.state, text: i.state }), ' ',
      h('code', { text: i.mark || '#' + i.id }), ' ', i.media,
      i.started_ms === undefined || i.started_ms === null ? null : h('span', { class: 'muted', text: ' from ' + seconds(i.started_ms) }),
      i.heard_ms === undefined || i.heard_ms === null ? null : h('span', { class: 'muted', text: ' heard ' + seconds(i.heard_ms) }),
      i.finished_ms === undefined || i.finished_ms === null ? null : h('span', { class: 'muted', text: ' to ' + seconds(i.finished_ms) }))));
  };
  const leave = () => { if (timer) clearInterval(timer); timer = null; };
  return { el, show, leave };
}
