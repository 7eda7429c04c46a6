// How the page reads a session as the server describes it ({id, request, status, report}):
// each figure is taken as sent, none worked out from others.

/// A session's phase as the server names it, or null before it has said.
export function phaseOf(s) {
  return (s.status && s.status.phase) || null;
}

export function resultOf(s) {
  return s.report ? s.report.result : null;
}

/// The plan the media took, and whether it goes through a relay.
export function modeOf(s) {
  const st = s.status || {};
  if (!st.mode) return null;
  return st.relay ? st.mode + ' · relay' : st.mode;
}

/// The room and its type, as the request named them.
export function roomOf(s) {
  const q = s.request || {};
  if (!q.room) return null;
  return q.room_type ? q.room + ' (' + q.room_type + ')' : q.room;
}
