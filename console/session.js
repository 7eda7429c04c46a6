// One session: its timeline, ids, media charts, player, what the room received, the event
// log, and Stop.

import { api, changed, fill, h, modeOf, phaseOf, resultOf, seconds, store } from '/console/app.js';

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

function facts(list) {
  return h('dl', { class: 'facts' }, list.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v, attr]) => [h('dt', { text: k }), h('dd', { text: String(v), 'data-fact': attr || k })]));
}

function summary(s) {
  const st = s.status || {};
  const r = s.report || {};
  const q = s.request || {};
  const live = st.media || (r.media && r.media.kind !== 'announcement' ? r.media : null);
  return facts([
    ['Phase', phaseOf(s).replace('_', ' '), 'phase'],
    ['Result', resultOf(s), 'result'],
    ['Failed at', r.result === 'failed' ? r.stage + ': ' + r.reason : null, 'reason'],
    ['Callees', (q.to || []).join(', ')],
    ['Room', q.room ? q.room + ' (' + (q.room_type || 'string') + ')' : null],
    ['Robot', q.robot],
    ['Media', q.media],
    ['Mode', modeOf(s), 'mode'],
    ['Why', r.mode_reason],
    ['CallId', st.call_id || r.call_id, 'call_id'],
    ['TaskId', st.task_id || r.task_id, 'task_id'],
    ['Cloud task', st.task, 'task'],
    ['Elapsed', seconds(st.elapsed_ms)],
    ['Task restarts', r.task_restarts],
    ['Input restarts', live ? live.restarts : null, 'restarts'],
    ['Repeated frames', live ? live.repeated_frames : null, 'repeated'],
    ['Dropped frames', live ? live.dropped_frames : null, 'dropped'],
    ['On slate', live ? seconds((live.slate_frames / 30) * 1000) : null, 'slate'],
    ['Relay', st.relay ? st.relay.state + ', ' + st.relay.reconnects + ' reconnects' : null],
    ['Teardown', r.teardown ? r.teardown.state + (r.teardown.reason ? ': ' + r.teardown.reason : '') : null],
  ]);
}

// ---- charts -----------------------------------------------------------------------

/// The charts: each a title and its series, computed from two consecutive samples.
const CHARTS = [
  ['Frames per second', [['fps', '#1f6feb', (a, b, dt) => (b.frames - a.frames) / dt]]],
  ['Bitrate', [['kbit/s', '#2da44e', (a, b, dt) => ((b.bytes - a.bytes) * 8) / dt / 1000]]],
  ['Repeated and dropped frames', [
    ['repeated/s', '#bf8700', (a, b, dt) => (b.repeated - a.repeated) / dt],
    ['dropped/s', '#cf222e', (a, b, dt) => (b.dropped - a.dropped) / dt],
  ]],
  ['Input restarts and slate', [
    ['restarts', '#cf222e', (a, b) => b.restarts],
    ['on slate, s', '#8250df', (a, b) => b.slate / 30],
  ]],
];

/// Each chart's data: the times, then one column per series.
function series(samples) {
  const data = CHARTS.map(([, lines]) => [[], ...lines.map(() => [])]);
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const dt = b.t - a.t;
    if (dt <= 0) continue;
    CHARTS.forEach(([, lines], c) => {
      data[c][0].push(b.t);
      lines.forEach(([, , value], l) => data[c][l + 1].push(value(a, b, dt)));
    });
  }
  return data;
}

function chart(host, title, lines) {
  const width = Math.max(260, Math.min(560, host.clientWidth || 320));
  return new window.uPlot({
    title, width, height: 160,
    scales: { x: { time: true } },
    axes: [{}, { size: 50 }],
    series: [{}, ...lines.map(([label, stroke]) => ({ label, stroke, width: 2, points: { show: false } }))],
  }, [[], ...lines.map(() => [])], host);
}

function charts(id) {
  const host = h('div', { class: 'charts', 'aria-label': 'Media over time' });
  const note = h('p', { class: 'muted', text: 'Charts show a live stream\'s output; the cloud plays an announcement itself.' });
  let plots = [];
  const draw = () => {
    const data = series(store.samples.get(id) || []);
    if (data[0][0].length === 0 || !window.uPlot) return;
    note.hidden = true;
    if (plots.length === 0) {
      plots = CHARTS.map(([title, lines]) => {
        const box = h('div', { class: 'chart' });
        host.append(box);
        return chart(box, title, lines);
      });
    }
    plots.forEach((plot, c) => plot.setData(data[c]));
  };
  // uPlot keeps every plot in a global set until destroyed.
  const destroy = () => {
    for (const plot of plots) plot.destroy();
    plots = [];
  };
  return { el: h('div', {}, note, host), draw, destroy };
}

// ---- the player -------------------------------------------------------------------

function sameOrigin(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch (_) {
    return false;
  }
}

function player() {
  const video = h('video', { id: 'player', controls: true, playsinline: true });
  // The property, not the attribute: only the parser's attribute mutes an element.
  video.muted = true;
  const note = h('p', { class: 'muted', text: 'The stream plays here once the session has one.' });
  let engine = null, source = null;
  const stop = () => {
    if (engine) {
      engine.destroy();
      engine = null;
    }
    // A file's URL is withdrawn with the session: reading on would only fail.
    if (video.getAttribute('src')) {
      video.pause();
      video.removeAttribute('src');
      video.load();
    }
  };
  const show = (s) => {
    const url = s.status && s.status.stream_url;
    if (s.report) {
      if (source) note.textContent = 'The session ended; its stream with it.';
      stop();
      return;
    }
    if (!url || url === source) return;
    stop();
    source = url;
    if (!sameOrigin(url)) {
      note.textContent = 'The cloud pulls this stream from another host; the page plays only this server\'s streams.';
      return;
    }
    const path = new URL(url, location.href).pathname;
    if (path.endsWith('.flv') && window.mpegts && window.mpegts.isSupported()) {
      window.mpegts.LoggingControl.enableAll = false;
      engine = window.mpegts.createPlayer({ type: 'flv', isLive: true, url }, { enableWorker: false, lazyLoad: false });
      engine.attachMediaElement(video);
      engine.load();
      const started = engine.play();
      if (started && started.catch) started.catch(() => {});
      note.textContent = 'Live: what the cloud pulls, played here.';
    } else {
      video.src = url;
      video.play().catch(() => {});
      note.textContent = 'The announcement file the cloud plays.';
    }
  };
  return { el: h('div', { class: 'player' }, video, note), show, stop };
}

// ---- the room observer ------------------------------------------------------------

function roomPanel(id) {
  if (!store.hello.room_observer) {
    return {
      el: h('p', { id: 'room', class: 'muted', text: 'Tencent Cloud shows nobody what a room receives; the emulator (serve --emulator) does.' }),
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
    const r = await api('GET', '/v1/sessions/' + encodeURIComponent(id) + '/room');
    if (stopped) return;
    if (!r.ok) {
      fill(el, h('p', { class: 'muted', text: r.status === 404 ? 'This server does not know the session.' : 'The room could not be asked (' + r.status + ').' }));
      return;
    }
    render(r.data);
    // Every second while it runs, and once after its end for the final figures.
    const s = store.sessions.get(id);
    if (s && (!s.report || !final)) {
      final = Boolean(s.report);
      timer = setTimeout(look, 1000);
    }
  };
  look();
  return { el, leave: () => { stopped = true; clearTimeout(timer); } };
}

// ---- the event log (this session's own stream, read through fetch with the token) ----

function eventLog(id) {
  const list = h('ol', { id: 'event-log', class: 'log' });
  const controller = new AbortController();
  const add = (kind, data) => {
    let text = kind;
    if (kind === 'status') text = 'phase ' + data.phase + ' at ' + seconds(data.elapsed_ms);
    if (kind === 'report') text = 'report: ' + data.result + (data.reason ? ' (' + data.stage + ': ' + data.reason + ')' : '');
    list.append(h('li', { 'data-kind': kind, text }));
  };
  (async () => {
    const token = sessionStorage.getItem('callfeed.token');
    const r = await fetch('/v1/sessions/' + encodeURIComponent(id) + '/events', {
      headers: token ? { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' } : { Accept: 'text/event-stream' },
      signal: controller.signal,
      cache: 'no-store',
    });
    if (!r.ok || !r.body) return;
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = 'message', data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (data) {
          try { add(kind, JSON.parse(data)); } catch (_) { /* a keep-alive */ }
        }
      }
    }
  })().catch(() => {});
  return { el: list, leave: () => controller.abort() };
}

// ---- the view ---------------------------------------------------------------------

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
  const log = eventLog(id);
  const stopError = h('p', { class: 'error', role: 'alert' });
  stopError.hidden = true;
  const stop = h('button', { id: 'stop', type: 'button', class: 'danger', text: 'Stop', hidden: true });
  // Built once and updated in place: a redraw never takes the focus off Stop.
  const head = h('div', { class: 'bar', id: 'session-title' }, title, phaseBadge, resultBadge, stop, unknown);
  stop.addEventListener('click', async () => {
    stop.disabled = true;
    const r = await api('DELETE', '/v1/sessions/' + encodeURIComponent(id));
    if (!r.ok) {
      stopError.textContent = (r.data && r.data.error) || 'The server answered ' + r.status + '.';
      stopError.hidden = false;
      stop.disabled = false;
    }
  });
  const render = () => {
    const s = store.sessions.get(id);
    unknown.hidden = Boolean(s);
    if (!s) return;
    phaseBadge.className = 'phase ' + phaseOf(s);
    phaseBadge.textContent = phaseOf(s).replace('_', ' ');
    resultBadge.hidden = !resultOf(s);
    if (resultOf(s)) {
      resultBadge.className = 'result ' + resultOf(s);
      resultBadge.textContent = resultOf(s).replace('_', ' ');
    }
    stop.hidden = Boolean(s.report);
    fill(body, summary(s));
    fill(steps, timeline(s));
    graphs.draw();
    play.show(s);
  };
  const el = h('section', { class: 'session', 'aria-labelledby': 'session-title' },
    head, stopError,
    h('div', { class: 'columns' },
      h('div', {}, h('h2', { text: 'Timeline' }), steps, h('h2', { text: 'Session' }), body),
      h('div', {}, h('h2', { text: 'Player' }), play.el, h('h2', { text: 'What the room received' }), room.el)),
    h('h2', { text: 'Media' }), graphs.el,
    h('h2', { text: 'Events' }), log.el);
  store.listeners.add(render);
  if (!store.sessions.has(id)) {
    api('GET', '/v1/sessions/' + encodeURIComponent(id)).then((r) => {
      if (r.ok && r.data && r.data.id) {
        store.sessions.set(id, r.data);
        changed();
      }
    });
  }
  render();
  return { el, leave: () => { play.stop(); room.leave(); log.leave(); graphs.destroy(); } };
}
