// What the console knows: every session as the server last described it ({id, request,
// status, report}), samples of the running ones' figures for the charts, what the server
// said of itself, and who redraws when any of it changes.

const SAMPLES_KEPT = 300;

// The server forgets an ended session after its --keep-ended, which hello tells; the
// flag's default until it has.
const DEFAULT_KEEP_ENDED_SECS = 600;

let sessions = new Map(); // id -> {id, request, status, report}
let endedAt = new Map(); // id -> when its report came (ms)
const samples = new Map(); // id -> [{t, frames, bytes, repeated, dropped, restarts, slate}]
const subscribers = new Set();
let about = { token_required: true, room_observer: false };

// ---- reading -----------------------------------------------------------------------

export function allSessions() {
  return [...sessions.values()];
}

export function session(id) {
  return sessions.get(id);
}

export function samplesOf(id) {
  return samples.get(id) || [];
}

/// What `GET /v1/console/hello` answered.
export function server() {
  return about;
}

// ---- changing ----------------------------------------------------------------------

export function setServer(answer) {
  about = answer;
}

/// Every session at once, as the event stream opens with them.
export function replaceAll(list) {
  sessions = new Map(list.map((s) => [s.id, s]));
  endedAt = new Map(list.filter((s) => s.report).map((s) => [s.id, Date.now()]));
  changed();
}

/// A session as an answer of the API describes it whole.
export function put(s) {
  sessions.set(s.id, s);
  noteEnd(s);
  changed();
}

/// Changes one session, kept from its first event when it was not known; the session.
export function update(id, change) {
  let s = sessions.get(id);
  if (!s) {
    s = { id, request: null, status: null, report: null };
    sessions.set(id, s);
  }
  change(s);
  noteEnd(s);
  changed();
  return s;
}

export function addSample(id, media) {
  const list = samples.get(id) || [];
  list.push({
    t: Date.now() / 1000, frames: media.frames_out, bytes: media.bytes_out,
    repeated: media.repeated_frames, dropped: media.dropped_frames,
    restarts: media.restarts, slate: media.slate_ms,
  });
  if (list.length > SAMPLES_KEPT) list.shift();
  samples.set(id, list);
}

export function clear() {
  sessions.clear();
  samples.clear();
  endedAt.clear();
}

function noteEnd(s) {
  if (s.report && !endedAt.has(s.id)) {
    endedAt.set(s.id, Date.now());
    samples.delete(s.id);
  }
}

// ---- redrawing ---------------------------------------------------------------------

/// `f` runs after every change; the answer unsubscribes it.
export function subscribe(f) {
  subscribers.add(f);
  return () => subscribers.delete(f);
}

let drawing = false;

/// Redraws once per frame, however many events came.
function changed() {
  if (drawing) return;
  drawing = true;
  requestAnimationFrame(() => {
    drawing = false;
    const now = Date.now();
    for (const [id, at] of endedAt) {
      if (now - at > (about.keep_ended_secs ?? DEFAULT_KEEP_ENDED_SECS) * 1000) {
        endedAt.delete(id);
        sessions.delete(id);
      }
    }
    for (const f of subscribers) f();
  });
}
