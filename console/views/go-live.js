// Go live from this browser: pick a camera and a microphone, see and hear what would go out
// (a preview and a level meter), publish it to a new WHIP feed or to a WHIP feed made
// before, and ring someone with it from the new-session form, where the feed is chosen.

import { api } from '../api.js';
import { h, fill } from '../dom.js';
import { goLive, liveFeed, onLiveChange, stopLive } from '../whip.js';

let stream = null; // what the camera and microphone give; kept while the page publishes

async function capture(cameraId, microphoneId) {
  const video = cameraId ? { deviceId: { exact: cameraId } } : true;
  const audio = microphoneId ? { deviceId: { exact: microphoneId } } : true;
  const next = await navigator.mediaDevices.getUserMedia({ video, audio });
  if (stream && !liveFeed()) for (const t of stream.getTracks()) t.stop();
  stream = next;
  return next;
}

async function listDevices(camera, microphone) {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const options = (kind, select) => {
    const current = stream && stream.getTracks().find((t) => t.kind === (kind === 'videoinput' ? 'video' : 'audio'));
    const chosen = current && current.getSettings().deviceId;
    fill(select, devices.filter((d) => d.kind === kind).map((d, i) =>
      h('option', { value: d.deviceId, text: d.label || kind + ' ' + (i + 1), selected: d.deviceId === chosen })));
  };
  options('videoinput', camera);
  options('audioinput', microphone);
}

/// A meter that follows the microphone's level; the answer stops it.
function followLevel(meter) {
  const track = stream && stream.getAudioTracks()[0];
  if (!track || !window.AudioContext) return () => {};
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 1024;
  context.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    meter.value = Math.min(1, Math.sqrt(sum / samples.length) * 4);
  }, 100);
  return () => { clearInterval(timer); context.close(); };
}

async function whipFeeds(target) {
  const r = await api('GET', '/v1/feeds');
  const feeds = ((r.ok && r.data && r.data.feeds) || []).filter((f) => f.kind === 'whip' && f.state !== 'ended');
  fill(target, h('option', { value: '', text: 'a new feed' }),
    feeds.map((f) => h('option', { value: f.id, text: (f.name || f.id) + ' (' + f.state + ')' })));
}

/// The feed to publish to, with its publish settings: a new one, or the one chosen.
async function feedFor(target) {
  const r = target.value
    ? await api('GET', '/v1/feeds/' + encodeURIComponent(target.value))
    : await api('POST', '/v1/feeds', { kind: 'whip', name: 'this browser' });
  if (!r.ok || !r.data || !r.data.publish) {
    return { error: (r.data && r.data.error) || 'the feed could not be made (' + r.status + ')' };
  }
  return { feed: r.data.id, publish: r.data.publish };
}

export function goLiveView() {
  const camera = h('select', { id: 'live-camera', 'aria-label': 'Camera' });
  const microphone = h('select', { id: 'live-microphone', 'aria-label': 'Microphone' });
  const target = h('select', { id: 'live-target', 'aria-label': 'Publish to' });
  const preview = h('video', { id: 'live-preview', autoplay: true, playsinline: true });
  preview.muted = true;
  const meter = h('meter', { id: 'live-level', min: 0, max: 1, value: 0, 'aria-label': 'Microphone level' });
  const status = h('p', { id: 'live-status', role: 'status', 'aria-live': 'polite' });
  const start = h('button', { type: 'button', id: 'go-live', text: 'Go live' });
  const stop = h('button', { type: 'button', id: 'stop-live', text: 'Stop' });
  const ring = h('a', { id: 'ring-with-feed', href: '#/new', text: 'Ring someone with this feed' });
  let stopLevel = () => {};

  const show = () => {
    const feed = liveFeed();
    start.hidden = !!feed;
    stop.hidden = !feed;
    ring.hidden = !feed;
    status.textContent = feed ? 'Live: this browser publishes to feed ' + feed + '.' : status.dataset.error || 'Not live.';
    status.dataset.feed = feed || '';
  };
  const useDevices = async () => {
    try {
      await capture(camera.value, microphone.value);
      preview.srcObject = stream;
      stopLevel();
      stopLevel = followLevel(meter);
      await listDevices(camera, microphone);
    } catch (e) {
      status.dataset.error = 'The camera or microphone cannot be used: ' + e.message;
      show();
    }
  };
  camera.addEventListener('change', useDevices);
  microphone.addEventListener('change', useDevices);
  start.addEventListener('click', async () => {
    start.disabled = true;
    delete status.dataset.error;
    const chosen = await feedFor(target);
    const why = chosen.error || (stream ? await goLive(stream, chosen.feed, chosen.publish) : 'no camera or microphone');
    if (why) status.dataset.error = why;
    start.disabled = false;
    show();
  });
  stop.addEventListener('click', async () => {
    await stopLive();
    whipFeeds(target);
  });
  const unsubscribe = onLiveChange(show);
  useDevices();
  whipFeeds(target);
  show();

  const el = h('section', { class: 'go-live card' },
    h('h1', { text: 'Go live from this browser' }),
    h('div', { class: 'field' }, h('label', { for: 'live-camera', text: 'Camera' }), camera),
    h('div', { class: 'field' }, h('label', { for: 'live-microphone', text: 'Microphone' }), microphone),
    h('div', { class: 'field' }, h('label', { for: 'live-target', text: 'Publish to' }), target),
    preview, meter, status, start, stop, ring);
  return {
    el,
    leave: () => {
      unsubscribe();
      stopLevel();
      // The publish goes on without the page that started it; only an idle camera stops.
      if (!liveFeed() && stream) {
        for (const t of stream.getTracks()) t.stop();
        stream = null;
      }
    },
  };
}
