// How figures and the server's names read in the page.

export function seconds(ms) {
  if (ms === undefined || ms === null) return '—';
  return (ms / 1000).toFixed(1) + ' s';
}

/// A name as the server sends it (`teardown_pending`), as words.
export function words(name) {
  return String(name).replaceAll('_', ' ');
}

// Every profile's output runs at 30 frames a second, and the server counts a live stream's
// time on the slate in frames only.
const OUTPUT_FPS = 30;

export function slateSeconds(frames) {
  return frames / OUTPUT_FPS;
}
