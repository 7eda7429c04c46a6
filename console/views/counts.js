// The counts at the top: sessions by phase and the failed ones.

import { h } from '../dom.js';
import { phaseOf, resultOf } from '../record.js';
import { allSessions, subscribe } from '../store.js';

/// Keeps `el` counting; the answer stops it.
export function showCounts(el) {
  const render = () => {
    const all = allSessions();
    const count = (f) => all.filter(f).length;
    const figures = [
      ['sessions', all.length],
      ['ringing', count((s) => phaseOf(s) === 'ringing')],
      ['ingesting', count((s) => phaseOf(s) === 'ingesting')],
      ['ended', count((s) => phaseOf(s) === 'ended')],
      ['failed', count((s) => resultOf(s) === 'failed')],
    ];
    el.replaceChildren(...figures.map(([name, n]) =>
      h('div', { class: 'count', 'data-count': name },
        h('span', { class: 'n', text: String(n) }), h('span', { class: 'label', text: name }))));
  };
  render();
  return subscribe(render);
}
