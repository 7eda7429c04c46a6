// Every session's events, applied to the store. What an event leaves out is asked of the
// server: the request of a session first seen in the middle (started by curl, another
// console or node), and, once a session has ended, its status. The `report` event carries
// the report alone, and which phase a report leads to (ended, or teardown_pending while
// the cloud has not confirmed the stop) is the server's to say, not the page's.

import { api, follow, sessionPath, unfollow } from './api.js';
import { addSample, replaceAll, session, update } from './store.js';

const askedRequest = new Set();
const newestRead = new Map(); // id -> the number of its newest read
let reads = 0;

export function startFeed(link) {
  follow({
    sessions: (d) => replaceAll(d.sessions || []),
    status: ({ id, data }) => running(id, data),
    stats: ({ id, data }) => {
      if (data.media && !ended(id)) addSample(id, data.media);
      running(id, data);
    },
    report: ({ id, data }) => {
      update(id, (s) => { s.report = data; });
      read(id);
    },
  }, link);
}

export function stopFeed() {
  unfollow();
  askedRequest.clear();
  newestRead.clear();
}

function ended(id) {
  const s = session(id);
  return Boolean(s && s.report);
}

function running(id, status) {
  // The report is a session's last event: figures sampled before it came must not bring
  // back a running phase.
  if (ended(id)) return;
  const s = update(id, (s) => { s.status = status; });
  if (!s.request && !askedRequest.has(id)) {
    askedRequest.add(id);
    read(id);
  }
}

/// Reads a session whole and takes its request if the page lacks it, and its status if it
/// has ended. Only the newest read counts: a second report (a teardown confirmed late)
/// changes the phase again.
function read(id) {
  const n = ++reads;
  newestRead.set(id, n);
  api('GET', sessionPath(id)).then((r) => {
    if (newestRead.get(id) !== n) return;
    newestRead.delete(id);
    if (!r.ok || !r.data || !session(id)) return;
    update(id, (s) => {
      if (!s.request && r.data.request) s.request = r.data.request;
      if (s.report && r.data.report && r.data.status) s.status = r.data.status;
    });
  });
}
