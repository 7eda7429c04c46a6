// Every session's events, applied to the store. A session first seen in the middle (started
// by curl, another console or node) is kept from its first event, and its request read once.

import { api, follow, sessionPath, unfollow } from './api.js';
import { addSample, replaceAll, session, update } from './store.js';

const asked = new Set(); // sessions whose request is being read

export function startFeed(link) {
  follow({
    sessions: (d) => replaceAll(d.sessions || []),
    status: ({ id, data }) => running(id, data),
    stats: ({ id, data }) => {
      if (data.media) addSample(id, data.media);
      running(id, data);
    },
    report: ({ id, data }) => update(id, (s) => { s.report = data; }),
  }, link);
}

export function stopFeed() {
  unfollow();
  asked.clear();
}

function running(id, status) {
  const s = update(id, (s) => { s.status = status; });
  if (!s.request && !asked.has(id)) {
    asked.add(id);
    api('GET', sessionPath(id)).then((r) => {
      const known = session(id);
      if (r.ok && r.data && r.data.request && known && !known.request) {
        update(id, (s) => { s.request = r.data.request; });
      }
    });
  }
}
