// The room monitor: what the cloud published of the room back to this node, measured as the
// emulator's observer measures a room (so in production too), its alerts, and the recording.
// Read from the session's status every second while it runs, then from its report.

import { api, sessionPath } from '../../api.js';
import { fill, h } from '../../dom.js';
import { seconds } from '../../format.js';
import { put, session, subscribe } from '../../store.js';
import { facts } from './facts.js';

function figures(m) {
  return facts([
    ['Monitor', m.state + ' (' + m.source + ')', 'monitor_state'],
    ['Audio', seconds(m.audio_ms), 'monitor_audio'],
    ['Level', m.audio_level_db === null || m.audio_level_db === undefined ? null : m.audio_level_db.toFixed(1) + ' dB', 'monitor_level'],
    ['Dominant tone', m.dominant_hz ? Math.round(m.dominant_hz) + ' Hz' : null, 'monitor_tone'],
    ['Now', m.tone_now_hz ? Math.round(m.tone_now_hz) + ' Hz' : (m.state === 'receiving' ? 'silence' : null), 'monitor_now'],
    ['Video frames', m.video_frames || null, 'monitor_frames'],
    ['Picture', m.width ? m.width + '×' + m.height + ' at ' + m.fps.toFixed(1) + ' fps' : null, 'monitor_size'],
    ['Gaps over 0.5 s', m.gaps_over_500ms],
    ['Publish task', m.task_id],
    ['Why not', m.error, 'monitor_error'],
  ]);
}

function recording(id, r) {
  if (!r) return null;
  const files = (r.files || []).map((name, i) =>
    h('li', {}, h('a', { href: sessionPath(id, '/recording') + (i ? '?part=' + i : ''), text: name, download: name })));
  return h('div', { class: 'recording' },
    h('h3', { text: 'Recording' }),
    files.length ? h('ul', {}, files) : h('p', { class: 'muted', text: 'Being written: the file appears once it is finished.' }),
    r.stopped ? h('p', { class: 'error', text: 'Stopped: ' + r.stopped }) : null);
}

export function monitorPanel(id) {
  const el = h('div', { id: 'monitor', class: 'monitor' });
  let stopped = false, timer = null;
  const render = () => {
    const s = session(id);
    const m = s && ((s.report && s.report.monitor) || (s.status && s.status.monitor));
    const asked = s && s.request && (s.request.monitor || s.request.record);
    if (!m) {
      fill(el, h('p', { class: 'muted', text: asked ? 'The monitor starts once the stream is bound.' : 'No room monitor: ask for one (monitor: true or "mix") to measure what the callee received, in production too.' }));
      return;
    }
    const alerts = (m.alerts || []).map((a) =>
      h('li', { class: 'alert', 'data-alert': a.kind, text: a.kind.replace('_', ' ') + ' at ' + seconds(a.at_ms) + ': ' + a.detail }));
    fill(el, figures(m), alerts.length ? h('ul', { class: 'alerts', role: 'status' }, alerts) : null, recording(id, m.recording));
  };
  // The status carries the monitor's figures; one look a second while the session runs.
  const look = async () => {
    if (stopped) return;
    const s = session(id);
    if (s && s.report) return;
    const r = await api('GET', sessionPath(id));
    if (stopped) return;
    if (r.ok && r.data && r.data.id) put(r.data);
    timer = setTimeout(look, 1000);
  };
  const unsubscribe = subscribe(render);
  render();
  look();
  return { el, leave: () => { stopped = true; clearTimeout(timer); unsubscribe(); } };
}
