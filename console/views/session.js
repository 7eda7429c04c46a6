// One session: its timeline, ids and figures, media charts, player, what the room
// received, the event log, Stop, and while it is bound the controls that change it.

import { api, sessionPath } from '../api.js';
import { fill, h } from '../dom.js';
import { seconds, slateSeconds, words } from '../format.js';
import { modeOf, phaseOf, resultOf, roomOf } from '../record.js';
import { put, session, subscribe } from '../store.js';
import { charts } from './session/charts.js';
import { controlPanel } from './session/control.js';
import { eventLog } from './session/event-log.js';
import { facts } from './session/facts.js';
import { monitorPanel } from './session/monitor.js';
import { player } from './session/player.js';
import { roomPanel } from './session/room.js';

const STEPS = [
  ['prepared_ms', 'prepared'],
  ['call_started_ms', 'rang'],
  ['answered_ms', 'answered'],
  ['ingest_started_ms', 'bound'],
  ['ended_ms', 'ended'],
];

function timeline(s) {
  const t = (s.report && s.report.timings) || (s.status && s.status.timings) || {};
  let previous = 0;
  return h('ol', { class: 'timeline' }, STEPS.map(([key, label]) => {
    const at = t[key];
    const item = h('li', { class: at === undefined || at === null ? 'pending' : 'done', 'data-step': label },
      h('span', { class: 'step', text: label }),
      h('span', { class: 'at', text: at === undefined || at === null ? '—' : seconds(at) }),
      at === undefined || at === null ? null : h('span', { class: 'muted', text: '+' + seconds(at - previous) }));
    if (at !== undefined && at !== null) previous = at;
    return item;
  }));
}

function summary(s) {
  const st = s.status || {};
  const r = s.report || {};
  const q = s.request || {};
  const live = st.media || (r.media && r.media.kind !== 'announcement' ? r.media : null);
  return facts([
    ['Phase', phaseOf(s) && words(phaseOf(s)), 'phase'],
    ['Result', resultOf(s), 'result'],
    ['Failed at', r.result === 'failed' ? r.stage + ': ' + r.reason : null, 'reason'],
    ['Callees', (q.to || []).join(', ')],
    ['Room', roomOf(s)],
    ['Robot', q.robot],
    ['Media', q.media],
    ['Mode', modeOf(s) || '—', 'mode'],
    ['Why', r.mode_reason],
    ['CallId', st.call_id || r.call_id, 'call_id'],
    ['TaskId', st.task_id || r.task_id, 'task_id'],
    ['Cloud task', st.task, 'task'],
    ['Elapsed', seconds(st.elapsed_ms)],
    ['Task restarts', r.task_restarts],
    ['Input restarts', live ? live.restarts : null, 'restarts'],
    ['Repeated frames', live ? live.repeated_frames : null, 'repeated'],
    ['Dropped frames', live ? live.dropped_frames : null, 'dropped'],
    ['On slate', live ? seconds(slateSeconds(live.slate_ms) * 1000) : null, 'slate'],
    ['Relay', st.relay ? st.relay.state + ', ' + st.relay.reconnects + ' reconnects' : null],
    ['Teardown', r.teardown ? r.teardown.state + (r.teardown.reason ? ': ' + r.teardown.reason : '') : null],
  ]);
}

export function sessionView(id) {
  const title = h('h1', {}, 'Session ', h('code', { text: id }));
  const phaseBadge = h('span', { id: 'session-phase', class: 'phase' });
  const resultBadge = h('span', { id: 'session-result', class: 'result', hidden: true });
  const unknown = h('p', { class: 'muted', text: 'Not known to this server (yet).', hidden: true });
  const body = h('div', { class: 'session-summary' });
  const steps = h('div');
  const graphs = charts(id);
  const play = player();
  const room = roomPanel(id);
  const monitor = monitorPanel(id);
  const log = eventLog(id);
  const control = controlPanel(id);
  const stopError = h('p', { class: 'error', role: 'alert' });
  stopError.hidden = true;
  const stop = h('button', { id: 'stop', type: 'button', class: 'danger', text: 'Stop', hidden: true });
  // Built once and updated in place: a redraw never takes the focus off Stop.
  const head = h('div', { class: 'bar', id: 'session-title' }, title, phaseBadge, resultBadge, stop, unknown);
  stop.addEventListener('click', async () => {
    stop.disabled = true;
    const r = await api('DELETE', sessionPath(id));
    if (!r.ok) {
      stopError.textContent = (r.data && r.data.error) || 'The server answered ' + r.status + '.';
      stopError.hidden = false;
      stop.disabled = false;
    }
  });
  const render = () => {
    const s = session(id);
    unknown.hidden = Boolean(s);
    if (!s) return;
    const phase = phaseOf(s);
    phaseBadge.className = phase ? 'phase ' + phase : 'phase';
    phaseBadge.textContent = phase ? words(phase) : '—';
    const result = resultOf(s);
    resultBadge.hidden = !result;
    if (result) {
      resultBadge.className = 'result ' + result;
      resultBadge.textContent = words(result);
    }
    stop.hidden = Boolean(s.report);
    fill(body, summary(s));
    fill(steps, timeline(s));
    graphs.draw();
    play.show(s);
    control.show(s);
  };
  const el = h('section', { class: 'session', 'aria-labelledby': 'session-title' },
    head, stopError, control.el,
    h('div', { class: 'columns' },
      h('div', {}, h('h2', { text: 'Timeline' }), steps, h('h2', { text: 'Session' }), body),
      h('div', {}, h('h2', { text: 'Player' }), play.el, h('h2', { text: 'What the room received' }), monitor.el, room.el)),
    h('h2', { text: 'Media' }), graphs.el,
    h('h2', { text: 'Events' }), log.el);
  const unsubscribe = subscribe(render);
  if (!session(id)) {
    api('GET', sessionPath(id)).then((r) => {
      if (r.ok && r.data && r.data.id) put(r.data);
    });
  }
  render();
  return { el, leave: () => { unsubscribe(); play.stop(); room.leave(); monitor.leave(); log.leave(); graphs.destroy(); control.leave(); } };
}
