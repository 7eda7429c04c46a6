// The sessions list and the new-session form.

import { api, changed, go, h, modeOf, phaseOf, resultOf, seconds, store } from '/console/app.js';

const PHASES = ['preparing', 'ringing', 'answered', 'ingesting', 'ending', 'ended', 'teardown_pending'];
const RESULTS = ['completed', 'stopped', 'failed', 'rejected', 'not_answered', 'hung_up'];

const filters = { phase: '', result: '' };

function select(id, label, options, value, onchange) {
  return h('div', { class: 'field inline' },
    h('label', { for: id, text: label }),
    h('select', { id, onchange: (e) => onchange(e.target.value) },
      h('option', { value: '', text: 'any', selected: value === '' }),
      options.map((o) => h('option', { value: o, text: o.replace('_', ' '), selected: value === o }))));
}

function reasonOf(s) {
  const r = s.report;
  if (!r) return '';
  if (r.result === 'failed') return (r.stage ? r.stage + ': ' : '') + (r.reason || '');
  return r.note || '';
}

function room(s) {
  const q = s.request || {};
  return q.room ? q.room + ' (' + (q.room_type || 'string') + ')' : '—';
}

function row(s) {
  const phase = phaseOf(s);
  const result = resultOf(s);
  const elapsed = s.status ? seconds(s.status.elapsed_ms) : '—';
  const link = h('a', { href: '#/s/' + encodeURIComponent(s.id), text: s.id.slice(0, 8) });
  return h('tr', { 'data-session': s.id, 'data-phase': phase },
    h('td', { 'data-label': 'Session' }, link),
    h('td', { 'data-label': 'Callees', text: ((s.request && s.request.to) || []).join(', ') }),
    h('td', { 'data-label': 'Room', text: room(s) }),
    h('td', { 'data-label': 'Phase' }, h('span', { class: 'phase ' + phase, text: phase.replace('_', ' ') }),
      h('span', { class: 'muted', text: ' ' + elapsed })),
    h('td', { 'data-label': 'Media', text: modeOf(s) }),
    h('td', { 'data-label': 'Result' },
      result ? h('span', { class: 'result ' + result, text: result.replace('_', ' ') }) : '—',
      reasonOf(s) ? h('div', { class: 'reason', text: reasonOf(s) }) : null));
}

export function sessionsView() {
  const body = h('tbody');
  const empty = h('p', { class: 'muted empty' });
  const table = h('table', { class: 'sessions' },
    h('caption', { class: 'sr-only', text: 'Sessions' }),
    h('thead', {}, h('tr', {}, ['Session', 'Callees', 'Room', 'Phase', 'Media', 'Result'].map((t) => h('th', { scope: 'col', text: t })))),
    body);
  const render = () => {
    const all = [...store.sessions.values()]
      .filter((s) => !filters.phase || phaseOf(s) === filters.phase)
      .filter((s) => !filters.result || resultOf(s) === filters.result)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .sort((a, b) => (phaseOf(a) === 'ended') - (phaseOf(b) === 'ended'));
    body.replaceChildren(...all.map(row));
    table.hidden = all.length === 0;
    empty.hidden = all.length > 0;
    empty.textContent = store.sessions.size === 0
      ? 'No sessions yet. Start one with "New session".'
      : 'No session matches these filters.';
  };
  const el = h('section', { 'aria-labelledby': 'sessions-title' },
    h('div', { class: 'bar' },
      h('h1', { id: 'sessions-title', text: 'Sessions' }),
      h('div', { class: 'filters' },
        select('filter-phase', 'Phase', PHASES, filters.phase, (v) => { filters.phase = v; render(); }),
        select('filter-result', 'Result', RESULTS, filters.result, (v) => { filters.result = v; render(); })),
      h('a', { class: 'button', href: '#/new', text: 'New session' })),
    h('div', { class: 'table-wrap' }, table), empty);
  store.listeners.add(render);
  render();
  return { el };
}

// ---- new session ------------------------------------------------------------------

const FIELDS = [
  { name: 'to', label: 'Callees', value: 'jack', help: 'User ids, separated by commas.' },
  { name: 'room', label: 'Room', value: '', help: 'A string room id, or digits for a numeric room.' },
  { name: 'room_type', label: 'Room type', options: ['string', 'numeric'] },
  { name: 'robot', label: 'Robot', value: 'robot', help: 'The account that calls, and the ingest user.' },
  { name: 'media', label: 'Media', value: 'test:', help: 'test: (a moving ball and a tone), a file under --media-root, an http(s)/rtmp URL.' },
  { name: 'media_type', label: 'Call type', options: ['video', 'audio'] },
  { name: 'profile', label: 'Profile', options: ['', 'audio', '360p', '540p', '720p', '1080p'], help: 'Empty: the call type\'s default.' },
  { name: 'ingest_at', label: 'Bind the stream', options: ['answer', 'ring'] },
  { name: 'max_duration_secs', label: 'Longest, seconds', value: '300', type: 'number', help: 'Ends the session after this long; empty for no limit.' },
  { name: 'ring_timeout_secs', label: 'Ring for, seconds', value: '30', type: 'number' },
  { name: 'live', label: 'Encode live (loop a file as a live stream)', type: 'checkbox' },
  { name: 'loop_forever', label: 'Play until the call ends', type: 'checkbox' },
];

function control(f) {
  const id = 'f-' + f.name;
  const described = id + '-error' + (f.help ? ' ' + id + '-help' : '');
  let input;
  if (f.options) {
    input = h('select', { id, name: f.name, 'aria-describedby': described },
      f.options.map((o) => h('option', { value: o, text: o || 'default' })));
  } else if (f.type === 'checkbox') {
    input = h('input', { id, name: f.name, type: 'checkbox', 'aria-describedby': described });
  } else {
    input = h('input', { id, name: f.name, type: f.type || 'text', value: f.value, 'aria-describedby': described,
      inputmode: f.type === 'number' ? 'numeric' : undefined, autocomplete: 'off' });
  }
  const error = h('p', { id: id + '-error', class: 'error field-error', 'data-error-for': f.name });
  error.hidden = true;
  return h('div', { class: 'field' + (f.type === 'checkbox' ? ' check' : '') },
    f.type === 'checkbox' ? [input, h('label', { for: id, text: f.label })] : [h('label', { for: id, text: f.label }), input],
    f.help ? h('p', { id: id + '-help', class: 'hint', text: f.help }) : null,
    error);
}

function requestFrom(form) {
  const value = (n) => form.elements[n].value.trim();
  const body = {
    to: value('to').split(',').map((s) => s.trim()).filter(Boolean),
    room: value('room'),
    room_type: value('room_type'),
    robot: value('robot'),
    media: value('media'),
    media_type: value('media_type'),
    ingest_at: value('ingest_at'),
    live: form.elements.live.checked,
    loop_forever: form.elements.loop_forever.checked,
  };
  if (value('profile')) body.profile = value('profile');
  // A number the API must judge, not the browser: what is not a number goes as it is.
  const number = (n) => (value(n) === '' ? undefined : (/^\d+$/.test(value(n)) ? Number(value(n)) : value(n)));
  if (number('max_duration_secs') !== undefined) body.max_duration_secs = number('max_duration_secs');
  if (number('ring_timeout_secs') !== undefined) body.ring_timeout_secs = number('ring_timeout_secs');
  return body;
}

export function newSessionView() {
  const general = h('p', { id: 'form-error', class: 'error', role: 'alert' });
  general.hidden = true;
  const form = h('form', { id: 'new-session', class: 'card', novalidate: true },
    h('h1', { text: 'New session' }),
    h('div', { class: 'grid' }, FIELDS.map(control)),
    general,
    h('button', { type: 'submit', text: 'Start session' }));
  form.elements.room.value = 'console-' + Math.random().toString(36).slice(2, 8);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    general.hidden = true;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    const r = await api('POST', '/v1/sessions', requestFrom(form));
    button.disabled = false;
    if (r.ok && r.data && r.data.id) {
      store.sessions.set(r.data.id, r.data);
      changed();
      go('#/s/' + encodeURIComponent(r.data.id));
      return;
    }
    const message = (r.data && r.data.error) || 'The server answered ' + r.status + '.';
    const field = r.data && r.data.field && form.querySelector('[data-error-for="' + CSS.escape(r.data.field) + '"]');
    if (field) {
      field.textContent = message + (r.data.allowed ? ' Allowed: ' + r.data.allowed + '.' : '');
      field.hidden = false;
      const input = form.elements[r.data.field];
      input.setAttribute('aria-invalid', 'true');
      input.focus();
    } else {
      general.textContent = message;
      general.hidden = false;
    }
  });
  return { el: form };
}
