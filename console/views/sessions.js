// The sessions list: a row per session, updated in place, with filters by phase and result.

import { h } from '../dom.js';
import { seconds, words } from '../format.js';
import { modeOf, phaseOf, resultOf, roomOf } from '../record.js';
import { allSessions, subscribe } from '../store.js';

const PHASES = ['preparing', 'ringing', 'answered', 'ingesting', 'ending', 'ended', 'teardown_pending'];
const RESULTS = ['completed', 'stopped', 'failed', 'rejected', 'not_answered', 'hung_up'];

// Kept across visits: coming back to the list finds the same filters.
const filters = { phase: '', result: '' };

function select(id, label, options, value, onchange) {
  return h('div', { class: 'field inline' },
    h('label', { for: id, text: label }),
    h('select', { id, onchange: (e) => onchange(e.target.value) },
      h('option', { value: '', text: 'any', selected: value === '' }),
      options.map((o) => h('option', { value: o, text: words(o), selected: value === o }))));
}

function reasonOf(s) {
  const r = s.report;
  if (!r) return '';
  if (r.result === 'failed') return (r.stage ? r.stage + ': ' : '') + (r.reason || '');
  return r.note || '';
}

const LABELS = ['Session', 'Callees', 'Room', 'Phase', 'Media', 'Result'];

/// The cells after the first (the link, which never changes), as elements.
function cells(s) {
  const phase = phaseOf(s);
  const result = resultOf(s);
  const elapsed = s.status ? seconds(s.status.elapsed_ms) : '—';
  return [
    ((s.request && s.request.to) || []).join(', ') || '—',
    roomOf(s) || '—',
    [phase ? h('span', { class: 'phase ' + phase, text: words(phase) }) : '—', h('span', { class: 'muted', text: ' ' + elapsed })],
    modeOf(s) || '—',
    [result ? h('span', { class: 'result ' + result, text: words(result) }) : '—',
      reasonOf(s) ? h('div', { class: 'reason', text: reasonOf(s) }) : null],
  ];
}

/// A session's row, updated in place: the link a keyboard user is on stays where it is.
function updateRow(tr, s) {
  tr.setAttribute('data-phase', phaseOf(s) || '');
  const now = cells(s);
  now.forEach((content, i) => {
    const td = tr.children[i + 1];
    const parts = [content].flat().filter((c) => c !== null);
    const signature = parts.map((c) => (c instanceof Node ? c.outerHTML : String(c))).join('');
    if (td.dataset.signature !== signature) {
      td.dataset.signature = signature;
      td.replaceChildren(...parts);
    }
  });
}

function newRow(s) {
  const link = h('a', { href: '#/s/' + encodeURIComponent(s.id), text: s.id.slice(0, 8) });
  const tr = h('tr', { 'data-session': s.id },
    LABELS.map((label, i) => h('td', { 'data-label': label }, i === 0 ? link : null)));
  updateRow(tr, s);
  return tr;
}

export function sessionsView() {
  const body = h('tbody');
  const empty = h('p', { class: 'muted empty' });
  const table = h('table', { class: 'sessions' },
    h('caption', { class: 'sr-only', text: 'Sessions' }),
    h('thead', {}, h('tr', {}, LABELS.map((t) => h('th', { scope: 'col', text: t })))),
    body);
  const rows = new Map();
  const render = () => {
    const known = allSessions();
    const all = known
      .filter((s) => !filters.phase || phaseOf(s) === filters.phase)
      .filter((s) => !filters.result || resultOf(s) === filters.result)
      .sort((a, b) => (a.id < b.id ? -1 : 1))
      .sort((a, b) => (phaseOf(a) === 'ended') - (phaseOf(b) === 'ended'));
    const wanted = all.map((s) => {
      let tr = rows.get(s.id);
      if (tr) updateRow(tr, s);
      else rows.set(s.id, (tr = newRow(s)));
      return tr;
    });
    for (const [id, tr] of rows) if (!wanted.includes(tr)) { tr.remove(); rows.delete(id); }
    // Moved only when the order changed: moving a row would take the focus off its link.
    const order = [...body.children];
    if (order.length !== wanted.length || order.some((tr, i) => tr !== wanted[i])) body.replaceChildren(...wanted);
    table.hidden = all.length === 0;
    empty.hidden = all.length > 0;
    empty.textContent = known.length === 0
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
  const leave = subscribe(render);
  render();
  return { el, leave };
}
