// This browser publishing its camera and microphone to a WHIP feed (RFC 9725) with a plain
// RTCPeerConnection. What it publishes outlives the view that started it: the operator goes
// on to ring someone with the feed while the page keeps sending. The feed's key travels in
// the Authorization header, never in a URL.

let live = null; // {pc, feed, resource, bearer}
const listeners = new Set();

function tell() {
  for (const f of listeners) f(liveFeed());
}

/// The feed this browser publishes to now, or null.
export function liveFeed() {
  return live ? live.feed : null;
}

/// Calls `f` with the live feed (or null) each time that changes; returns the unsubscribe.
export function onLiveChange(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

/// H.264 first when the browser has it: callfeed takes it as it comes, VP8 must be decoded.
function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpSender || !RTCRtpSender.getCapabilities) return;
  const codecs = (RTCRtpSender.getCapabilities('video') || {}).codecs || [];
  const h264 = codecs.filter((c) => c.mimeType === 'video/H264' && /packetization-mode=1/.test(c.sdpFmtpLine || ''));
  if (!h264.length) return;
  const rest = codecs.filter((c) => !h264.includes(c));
  transceiver.setCodecPreferences([...h264, ...rest]);
}

/// Waits until ICE has gathered its candidates (the answer carries the server's; ours go in
/// the offer), at most `ms`.
function gathered(pc, ms) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', done);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, ms);
  });
}

/// Publishes `stream` to the feed whose publish settings are `publish` ({url, bearer});
/// resolves with null, or with why not.
export async function goLive(stream, feed, publish) {
  await stopLive();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
  for (const track of stream.getTracks()) {
    const t = pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    if (track.kind === 'video') preferH264(t);
  }
  try {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc, 3000);
    const r = await fetch(publish.url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + publish.bearer },
      body: pc.localDescription.sdp,
      cache: 'no-store',
    });
    const text = await r.text();
    if (r.status !== 201) {
      pc.close();
      let why = text;
      try { why = JSON.parse(text).error || text; } catch (_) { /* the text as it is */ }
      return 'the feed refused the publish (' + r.status + '): ' + why;
    }
    const location = r.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
    live = { pc, feed, bearer: publish.bearer, resource: location ? new URL(location, publish.url).href : null };
    pc.addEventListener('connectionstatechange', () => {
      if (live && live.pc === pc && (pc.connectionState === 'failed' || pc.connectionState === 'closed')) {
        live = null;
        tell();
      }
    });
    tell();
    return null;
  } catch (e) {
    pc.close();
    return 'publishing failed: ' + e.message;
  }
}

/// Ends the publish: its session deleted on the server, the connection closed.
export async function stopLive() {
  const was = live;
  live = null;
  if (!was) return;
  was.pc.close();
  tell();
  if (was.resource) {
    try {
      await fetch(was.resource, { method: 'DELETE', headers: { Authorization: 'Bearer ' + was.bearer } });
    } catch (_) { /* the server ends a silent publisher by itself */ }
  }
}
