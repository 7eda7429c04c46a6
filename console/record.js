// How the page reads a session ({id, request, status, report}).

/// A session's phase as the list shows it: its report's teardown decides "ended".
export function phaseOf(s) {
  if (s.report) return s.report.teardown && s.report.teardown.state === 'pending' ? 'teardown_pending' : 'ended';
  return (s.status && s.status.phase) || 'preparing';
}

export function resultOf(s) {
  return s.report ? s.report.result : null;
}

/// The plan the media took, and whether it goes through a relay.
export function modeOf(s) {
  const st = s.status || {};
  const mode = st.mode || (s.report && s.report.mode !== 'none' ? s.report.mode : null);
  if (!mode) return null;
  return st.relay || (s.report && s.report.relay) ? mode + ' · relay' : mode;
}

/// The room and its type, as the request named them.
export function roomOf(s) {
  const q = s.request || {};
  return q.room ? q.room + ' (' + (q.room_type || 'string') + ')' : null;
}
