// What the room received, as the emulator's own observer saw it (beside the room monitor,
// which works in production too): asked every second while the
// session runs, and once after its end for the final figures.

import { api, sessionPath } from '../../api.js';
import { fill, h } from '../../dom.js';
import { seconds } from '../../format.js';
import { server, session } from '../../store.js';
import { facts } from './facts.js';

export function roomPanel(id) {
  if (!server().room_observer) {
    return {
      el: h('p', { id: 'room', class: 'muted', text: 'Tencent Cloud shows nobody what a room receives: the room monitor above measures it; the emulator (serve --emulator) also lets its own ear in.' }),
      leave: () => {},
    };
  }
  const el = h('div', { id: 'room', class: 'room' }, h('p', { class: 'muted', text: 'Asking the room…' }));
  let stopped = false, timer = null, final = false;
  const render = (seen) => {
    const call = seen.room;
    if (!call) {
      fill(el, h('p', { class: 'muted', text: 'No call yet.' }));
      return;
    }
    const members = (call.members || []).map((m) =>
      h('li', { text: m.user_id + ': ' + m.state + (m.sees_media ? ', sees media' : '') }));
    const tasks = (call.media || []).map((t) => facts([
      ['Task', t.task_id],
      ['State', t.phase],
      ['Video frames', t.video_frames, 'room_frames'],
      ['Picture', t.width ? t.width + '×' + t.height + ' at ' + t.fps.toFixed(1) + ' fps' : null, 'room_size'],
      ['Audio', seconds(t.audio_ms), 'room_audio'],
      ['Level', t.audio_level_db === null || t.audio_level_db === undefined ? null : t.audio_level_db + ' dB', 'room_level'],
      ['Dominant tone', t.dominant_hz ? t.dominant_hz + ' Hz' : null, 'room_tone'],
      ['Gaps over 0.5 s', t.gaps_over_500ms],
    ]));
    fill(el,
      facts([['Call', call.state, 'room_call'], ['Room', call.room_id + ' (' + call.room_kind + ')']]),
      h('ul', { class: 'members' }, members),
      tasks.length ? tasks : h('p', { class: 'muted', text: 'Nothing bound into the room yet.' }));
  };
  const look = async () => {
    if (stopped) return;
    const r = await api('GET', sessionPath(id, '/room'));
    if (stopped) return;
    if (!r.ok) {
      fill(el, h('p', { class: 'muted', text: r.status === 404 ? 'This server does not know the session.' : 'The room could not be asked (' + r.status + ').' }));
      return;
    }
    render(r.data);
    // Every second while it runs, and once after its end for the final figures.
    const s = session(id);
    if (s && (!s.report || !final)) {
      final = Boolean(s.report);
      timer = setTimeout(look, 1000);
    }
  };
  look();
  return { el, leave: () => { stopped = true; clearTimeout(timer); } };
}
