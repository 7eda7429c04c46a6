// A definition list of the facts that have a value; `attr` names one for tests and styles
// (data-fact), the label otherwise.

import { h } from '../../dom.js';

export function facts(list) {
  return h('dl', { class: 'facts' }, list.filter(([, v]) => v !== undefined && v !== null && v !== '')
    .map(([k, v, attr]) => [h('dt', { text: k }), h('dd', { text: String(v), 'data-fact': attr || k })]));
}
