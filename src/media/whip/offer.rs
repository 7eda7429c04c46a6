//! What a WHIP publisher offers, cut down to what callfeed takes before webrtcbin sees it:
//! per audio or video line one codec (H.264 in packetization mode 1 or VP8; Opus) and its
//! retransmission format. webrtcbin 1.22 would answer whatever the offer lists first, VP9
//! included, and its transceivers' codec preferences reject nothing, so the offer is
//! filtered here and an offer with nothing usable is refused with the reason.

use gstreamer_sdp as gst_sdp;

/// The largest offer taken: a browser's is a few kilobytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// What an offer carries once filtered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Offered {
    pub video: Option<VideoCodec>,
    pub audio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoCodec {
    H264,
    Vp8,
}

/// Why an offer was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the offer is not SDP: {0}")]
    Malformed(String),
    #[error("{0}")]
    NoCodec(String),
}

/// Parses `text` and keeps, per audio and video line, the codec callfeed prefers of those
/// offered; what the filtered offer carries. Unless `private_candidates`, the publisher's
/// candidates on loopback, private, link-local or other non-public addresses (and mDNS
/// names) are dropped: the node never sends connectivity checks into a network an offer
/// names. A publisher that reaches the node is found all the same, as a peer-reflexive
/// candidate, from the checks it sends.
pub fn filter(
    text: &str,
    private_candidates: bool,
) -> Result<(gst_sdp::SDPMessage, Offered), OfferError> {
    if text.len() > MAX_OFFER_BYTES {
        return Err(OfferError::Malformed(format!(
            "{} bytes, more than the {MAX_OFFER_BYTES} an offer may have",
            text.len()
        )));
    }
    // GStreamer's parser takes nearly anything; an offer begins as RFC 8866 says.
    if !text.starts_with("v=0") {
        return Err(OfferError::Malformed("it does not begin with v=0".into()));
    }
    let mut sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|_| OfferError::Malformed("it does not parse".into()))?;
    let mut offered = Offered::default();
    let mut any = false;
    for index in 0..sdp.medias_len() {
        let Some(media) = sdp.media_mut(index) else {
            continue;
        };
        let kind = media.media().unwrap_or_default().to_owned();
        if kind != "audio" && kind != "video" {
            continue;
        }
        if kind == "video" && offered.video.is_some() || kind == "audio" && offered.audio {
            return Err(OfferError::NoCodec(format!(
                "more than one {kind} line (m-line {index}): a feed takes one picture and one sound"
            )));
        }
        let formats: Vec<u32> = media.formats().filter_map(|f| f.parse().ok()).collect();
        let best = formats
            .iter()
            .filter_map(|pt| score(media, &kind, *pt).map(|s| (s, *pt)))
            // The highest score; the publisher's own order among equals.
            .fold(None, |best: Option<(u8, u32)>, c| {
                if best.is_none_or(|b| c.0 > b.0) {
                    Some(c)
                } else {
                    best
                }
            });
        let Some((_, kept)) = best else {
            return Err(OfferError::NoCodec(format!(
                "the {kind} line (m-line {index}) offers none of {}",
                if kind == "video" {
                    "H.264 (packetization-mode=1) or VP8"
                } else {
                    "Opus"
                }
            )));
        };
        if kind == "video" {
            offered.video = Some(match encoding(media, kept).as_deref() {
                Some("H264") => VideoCodec::H264,
                _ => VideoCodec::Vp8,
            });
        } else {
            offered.audio = true;
        }
        any = true;
        let rtx = formats.iter().copied().find(|pt| {
            encoding(media, *pt).as_deref() == Some("RTX")
                && fmtp_value(media, *pt, "apt").as_deref() == Some(kept.to_string().as_str())
        });
        keep_only(media, kept, rtx).map_err(OfferError::Malformed)?;
        if !private_candidates {
            for index in (0..media.attributes_len()).rev() {
                let private = media
                    .attribute(index)
                    .is_some_and(|a| a.key() == "candidate" && !public_candidate(a.value()));
                if private {
                    media
                        .remove_attribute(index)
                        .map_err(|e| OfferError::Malformed(e.to_string()))?;
                }
            }
        }
    }
    if !any {
        return Err(OfferError::NoCodec(
            "the offer has no audio or video line".into(),
        ));
    }
    Ok((sdp, offered))
}

/// Whether an `a=candidate` value names a public address (`foundation component transport
/// priority address port typ ...`).
fn public_candidate(value: Option<&str>) -> bool {
    value
        .and_then(|v| v.split_whitespace().nth(4))
        .and_then(|address| address.parse::<std::net::IpAddr>().ok())
        .is_some_and(crate::media::policy::is_public)
}

/// How much callfeed wants payload type `pt` of a `kind` line; `None` for what it does not
/// take. H.264 is passed on as it comes where VP8 must be decoded, so it comes first.
fn score(media: &gst_sdp::SDPMediaRef, kind: &str, pt: u32) -> Option<u8> {
    let encoding = encoding(media, pt)?;
    match (kind, encoding.as_str()) {
        ("video", "H264") => {
            let mode = fmtp_value(media, pt, "packetization-mode");
            (mode.as_deref() == Some("1")).then_some(3)
        }
        ("video", "VP8") => Some(2),
        ("audio", "OPUS") => Some(3),
        _ => None,
    }
}

/// The encoding name `a=rtpmap` gives payload type `pt`, upper case.
fn encoding(media: &gst_sdp::SDPMediaRef, pt: u32) -> Option<String> {
    let prefix = format!("{pt} ");
    media
        .attributes()
        .filter(|a| a.key() == "rtpmap")
        .filter_map(|a| a.value())
        .find_map(|v| v.strip_prefix(prefix.as_str()).map(str::to_owned))
        .and_then(|v| v.split('/').next().map(str::to_ascii_uppercase))
}

/// A parameter of payload type `pt`'s `a=fmtp` line.
fn fmtp_value(media: &gst_sdp::SDPMediaRef, pt: u32, name: &str) -> Option<String> {
    let prefix = format!("{pt} ");
    let line = media
        .attributes()
        .filter(|a| a.key() == "fmtp")
        .filter_map(|a| a.value())
        .find_map(|v| v.strip_prefix(prefix.as_str()).map(str::to_owned))?;
    line.split(';').find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        (key.eq_ignore_ascii_case(name)).then(|| value.trim().to_owned())
    })
}

/// Removes every payload type but `kept` (and its retransmission format) from a line, with
/// their `rtpmap`, `fmtp` and `rtcp-fb` attributes.
fn keep_only(media: &mut gst_sdp::SDPMediaRef, kept: u32, rtx: Option<u32>) -> Result<(), String> {
    let keep = |pt: Option<u32>| pt == Some(kept) || (pt.is_some() && pt == rtx);
    for index in (0..media.formats_len()).rev() {
        let pt = media.format(index).and_then(|f| f.parse().ok());
        if !keep(pt) {
            media.remove_format(index).map_err(|e| e.to_string())?;
        }
    }
    for index in (0..media.attributes_len()).rev() {
        let drop = media.attribute(index).is_some_and(|a| {
            matches!(a.key(), "rtpmap" | "fmtp" | "rtcp-fb")
                && !keep(
                    a.value()
                        .and_then(|v| v.split([' ', '/']).next())
                        .and_then(|s| s.parse().ok()),
                )
        });
        if drop {
            media.remove_attribute(index).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROMIUM_LIKE: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0 1\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\n\
a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\n\
a=candidate:1 1 udp 2122260223 192.168.1.20 50000 typ host\r\n\
a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host\r\n\
a=candidate:3 1 udp 2122260223 4f3c1a2b-0000-4000-8000-000000000000.local 50002 typ host\r\n\
a=candidate:4 1 udp 1686052607 93.184.216.34 50003 typ srflx raddr 192.168.1.20 rport 50000\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
a=rtpmap:98 H264/90000\r\na=fmtp:98 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
a=rtcp-fb:98 nack pli\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n\
a=rtpmap:100 VP9/90000\r\n";

    #[test]
    fn h264_with_its_rtx_is_kept_over_vp8_and_the_rest_removed() {
        crate::media::init().unwrap();
        let (sdp, offered) = filter(CHROMIUM_LIKE, false).unwrap();
        assert_eq!(
            offered,
            Offered {
                video: Some(VideoCodec::H264),
                audio: true
            }
        );
        let text = sdp.as_text().unwrap();
        assert!(
            text.contains("m=video 9 UDP/TLS/RTP/SAVPF 98 99\r\n"),
            "{text}"
        );
        assert!(
            text.contains("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"),
            "{text}"
        );
        assert!(!text.contains("VP8") && !text.contains("VP9") && !text.contains("PCMU"));
        assert!(text.contains("a=fmtp:99 apt=98") && text.contains("a=rtcp-fb:98 nack pli"));
    }

    #[test]
    fn only_public_candidates_are_kept_unless_private_ones_are_allowed() {
        crate::media::init().unwrap();
        let (sdp, _) = filter(CHROMIUM_LIKE, false).unwrap();
        let text = sdp.as_text().unwrap();
        assert!(text.contains("93.184.216.34 50003 typ srflx"), "{text}");
        for private in ["192.168.1.20 50000", "127.0.0.1 50001", ".local 50002"] {
            assert!(!text.contains(private), "{private}: {text}");
        }
        let (sdp, _) = filter(CHROMIUM_LIKE, true).unwrap();
        let text = sdp.as_text().unwrap();
        assert!(text.contains("127.0.0.1 50001") && text.contains("192.168.1.20 50000"));
    }

    #[test]
    fn vp8_is_taken_when_h264_is_not_offered_in_mode_1() {
        crate::media::init().unwrap();
        let offer = CHROMIUM_LIKE.replace("packetization-mode=1", "packetization-mode=0");
        let (_, offered) = filter(&offer, false).unwrap();
        assert_eq!(offered.video, Some(VideoCodec::Vp8));
    }

    #[test]
    fn nothing_usable_is_refused_naming_the_line() {
        crate::media::init().unwrap();
        let vp9_only = CHROMIUM_LIKE
            .replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 AV1/90000")
            .replace("a=rtpmap:98 H264/90000", "a=rtpmap:98 H265/90000");
        let e = filter(&vp9_only, false).unwrap_err();
        assert!(
            matches!(&e, OfferError::NoCodec(m) if m.contains("video line") && m.contains("VP8")),
            "{e}"
        );
        assert!(matches!(
            filter("not sdp at all", false),
            Err(OfferError::Malformed(_))
        ));
        let huge = format!("{CHROMIUM_LIKE}{}", "a=x\r\n".repeat(MAX_OFFER_BYTES));
        assert!(matches!(
            filter(&huge, false),
            Err(OfferError::Malformed(_))
        ));
    }
}
