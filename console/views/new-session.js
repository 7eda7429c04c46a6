// The new-session form: the API's fields, sent as typed; a refusal is shown next to the
// field the server names, with what it allows.

import { api } from '../api.js';
import { h } from '../dom.js';
import { put } from '../store.js';
import { liveFeed } from '../whip.js';

const FIELDS = [
  { name: 'to', label: 'Callees', value: 'jack', help: 'User ids, separated by commas.' },
  { name: 'room', label: 'Room', value: '', help: 'A string room id, or digits for a numeric room.' },
  { name: 'room_type', label: 'Room type', options: ['string', 'numeric'] },
  { name: 'robot', label: 'Robot', value: 'robot', help: 'The account that calls, and the ingest user.' },
  { name: 'media', label: 'Media', value: 'test:', help: 'test: (a moving ball and a tone), a file under --media-root, an http(s)/rtmp/rtsp URL, or a feed below.' },
  { name: 'media_type', label: 'Call type', options: ['video', 'audio'] },
  { name: 'profile', label: 'Profile', options: ['', 'audio', '360p', '540p', '720p', '1080p'], help: 'Empty: the call type\'s default.' },
  { name: 'ingest_at', label: 'Bind the stream', options: ['answer', 'ring'] },
  { name: 'max_duration_secs', label: 'Longest, seconds', value: '300', number: true, help: 'Ends the session after this long; empty for no limit.' },
  { name: 'ring_timeout_secs', label: 'Ring for, seconds', value: '30', number: true },
  { name: 'live', label: 'Encode live (loop a file as a live stream)', type: 'checkbox' },
  { name: 'loop_forever', label: 'Play until the call ends', type: 'checkbox' },
  { name: 'monitor', label: 'Room monitor', options: ['', 'robot', 'mix'], help: 'The cloud publishes the room back and the session completes only if it carried the media: robot (what the callee receives of it) or mix (the callee\'s voice too). Needs serve --rtmp-listen.' },
  { name: 'record', label: 'Record what the monitor receives', type: 'checkbox', help: 'Needs serve --record-dir.' },
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
    // Text with a numeric keypad: a number input would hand over "" for "12s" and the
    // server's default would silently apply.
    input = h('input', { id, name: f.name, type: 'text', value: f.value, 'aria-describedby': described,
      inputmode: f.number ? 'numeric' : undefined, autocomplete: 'off' });
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
  if (value('monitor')) body.monitor = value('monitor') === 'mix' ? 'mix' : true;
  if (form.elements.record.checked) body.record = true;
  // The range is the API's to judge (its 422 names the field); only a whole number can go.
  for (const f of FIELDS.filter((f) => f.number)) {
    if (value(f.name) !== '') body[f.name] = Number(value(f.name));
  }
  return body;
}

/// The fields that are not whole numbers, which no request can carry.
function notNumbers(form) {
  return FIELDS.filter((f) => f.number && !/^\d*$/.test(form.elements[f.name].value.trim())).map((f) => f.name);
}

function showFieldError(form, name, message) {
  const field = form.querySelector('[data-error-for="' + CSS.escape(name) + '"]');
  if (!field) return false;
  field.textContent = message;
  field.hidden = false;
  const input = form.elements[name];
  input.setAttribute('aria-invalid', 'true');
  input.focus();
  return true;
}

/// A picker of the running feeds under the media field: choosing one puts `feed:ID` in it;
/// the feed this browser publishes to is chosen already.
async function offerFeeds(form) {
  const r = await api('GET', '/v1/feeds');
  const feeds = ((r.ok && r.data && r.data.feeds) || []).filter((f) => f.state !== 'ended');
  if (!feeds.length) return;
  const picker = h('select', { id: 'f-feed', 'aria-label': 'Carry a feed' },
    h('option', { value: '', text: 'or carry a feed…' }),
    feeds.map((f) => h('option', { value: 'feed:' + f.id, text: (f.name || f.id) + ' (' + f.kind + ', ' + f.state + ')' })));
  picker.addEventListener('change', () => {
    if (picker.value) form.elements.media.value = picker.value;
  });
  form.elements.media.closest('.field').append(picker);
  // What this browser publishes is what the operator came to ring someone with.
  const live = liveFeed();
  if (live && feeds.some((f) => f.id === live)) {
    picker.value = 'feed:' + live;
    form.elements.media.value = picker.value;
  }
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
  offerFeeds(form);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll('.field-error')) { el.hidden = true; el.textContent = ''; }
    for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
    general.hidden = true;
    const bad = notNumbers(form);
    if (bad.length) {
      showFieldError(form, bad[0], 'A whole number of seconds.');
      return;
    }
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    const r = await api('POST', '/v1/sessions', requestFrom(form));
    button.disabled = false;
    if (r.ok && r.data && r.data.id) {
      put(r.data);
      location.hash = '#/s/' + encodeURIComponent(r.data.id);
      return;
    }
    const message = (r.data && r.data.error) || 'The server answered ' + r.status + '.';
    const allowed = r.data && r.data.allowed ? ' Allowed: ' + r.data.allowed + '.' : '';
    if (!(r.data && r.data.field && showFieldError(form, r.data.field, message + allowed))) {
      general.textContent = message;
      general.hidden = false;
    }
  });
  return { el: form };
}
