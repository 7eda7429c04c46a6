// The player: the live stream through Media Source Extensions (mpegts.js), or the
// announcement file the cloud plays, as long as the session runs.

import { h } from '../../dom.js';

function sameOrigin(url) {
  try {
    return new URL(url, location.href).origin === location.origin;
  } catch (_) {
    return false;
  }
}

export function player() {
  const video = h('video', { id: 'player', controls: true, playsinline: true });
  // The property, not the attribute: only the parser's attribute mutes an element.
  video.muted = true;
  const note = h('p', { class: 'muted', text: 'The stream plays here once the session has one.' });
  let engine = null, source = null;
  const stop = () => {
    if (engine) {
      engine.destroy();
      engine = null;
    }
    // A file's URL is withdrawn with the session: reading on would only fail.
    if (video.getAttribute('src')) {
      video.pause();
      video.removeAttribute('src');
      video.load();
    }
  };
  const show = (s) => {
    const url = s.status && s.status.stream_url;
    if (s.report) {
      if (source) note.textContent = 'The session ended; its stream with it.';
      stop();
      return;
    }
    if (!url || url === source) return;
    stop();
    source = url;
    if (!sameOrigin(url)) {
      note.textContent = 'The cloud pulls this stream from another host; the page plays only this server\'s streams.';
      return;
    }
    const path = new URL(url, location.href).pathname;
    if (path.endsWith('.flv') && window.mpegts && window.mpegts.isSupported()) {
      window.mpegts.LoggingControl.enableAll = false;
      engine = window.mpegts.createPlayer({ type: 'flv', isLive: true, url }, { enableWorker: false, lazyLoad: false });
      engine.attachMediaElement(video);
      engine.load();
      const started = engine.play();
      if (started && started.catch) started.catch(() => {});
      note.textContent = 'Live: what the cloud pulls, played here.';
    } else {
      video.src = url;
      video.play().catch(() => {});
      note.textContent = 'The announcement file the cloud plays.';
    }
  };
  return { el: h('div', { class: 'player' }, video, note), show, stop };
}
