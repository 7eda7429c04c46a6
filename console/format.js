// How figures and the server's names read in the page.

export function seconds(ms) {
  if (ms === undefined || ms === null) return '—';
  return (ms / 1000).toFixed(1) + ' s';
}

/// A name as the server sends it (`teardown_pending`), as words.
export function words(name) {
  return String(name).replaceAll('_', ' ');
}

export function slateSeconds(ms) {
  return ms / 1000;
}
