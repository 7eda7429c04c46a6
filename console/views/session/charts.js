// A live stream's figures over time, drawn by uPlot from the samples the store keeps.

import { h } from '../../dom.js';
import { slateSeconds } from '../../format.js';
import { samplesOf } from '../../store.js';

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
    ['on slate, s', '#8250df', (a, b) => slateSeconds(b.slate)],
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

export function charts(id) {
  const host = h('div', { class: 'charts', 'aria-label': 'Media over time' });
  const note = h('p', { class: 'muted', text: 'Charts show a live stream\'s output; the cloud plays an announcement itself.' });
  let plots = [];
  const draw = () => {
    const data = series(samplesOf(id));
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
