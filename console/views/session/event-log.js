// The session's own events, as the server recorded them, one line each.

import { sessionEvents } from '../../api.js';
import { h } from '../../dom.js';
import { seconds } from '../../format.js';

export function eventLog(id) {
  const list = h('ol', { id: 'event-log', class: 'log' });
  const stop = sessionEvents(id, (kind, data) => {
    let text = kind;
    if (kind === 'status') text = 'phase ' + data.phase + ' at ' + seconds(data.elapsed_ms);
    if (kind === 'report') text = 'report: ' + data.result + (data.reason ? ' (' + data.stage + ': ' + data.reason + ')' : '');
    list.append(h('li', { 'data-kind': kind, text }));
  });
  return { el: list, leave: stop };
}
