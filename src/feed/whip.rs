//! WHIP publishers (RFC 9725): a browser or OBS 30+ POSTs its offer with the feed's key as
//! its bearer token and gets the answer and a session resource; DELETE on that resource
//! ends the publish. One publisher per feed at a time, as for RTMP; a wrong key allocates
//! nothing.

use tokio::sync::watch;

use super::publisher::Claim;
use super::registry::Feeds;
use crate::media::whip::{Carry, OfferError, WhipError};

/// What a publisher's offer is answered with.
#[derive(Debug)]
pub struct WhipAnswer {
    pub sdp: String,
    /// The session resource's id (its path is the endpoint's, then `/` and this).
    pub resource: String,
}

/// Why a publisher's offer or DELETE was refused.
#[derive(Debug, thiserror::Error)]
pub enum WhipRefusal {
    #[error("a bearer token that is the feed's key is required")]
    Unauthorized,
    #[error("the feed already has a publisher; one publishes at a time")]
    Taken,
    #[error("too many wrong keys from this address: try again in a minute")]
    TurnedAway,
    #[error("no such WHIP session")]
    NoSession,
    #[error(transparent)]
    Offer(OfferError),
    #[error("{0}")]
    Negotiation(String),
    #[error("{0}")]
    Engine(String),
}

impl From<WhipError> for WhipRefusal {
    fn from(e: WhipError) -> Self {
        match e {
            WhipError::Offer(e) => WhipRefusal::Offer(e),
            e @ WhipError::Negotiation(_) => WhipRefusal::Negotiation(e.to_string()),
            e @ WhipError::Engine(_) => WhipRefusal::Engine(e.to_string()),
        }
    }
}

impl Feeds {
    /// Answers a WHIP publisher's `offer` to feed `id`, authorised by `bearer` (the feed's
    /// key); its media goes to the feed's stream until it stops sending, DELETEs its
    /// session, or the feed drops it.
    pub async fn publish_whip(
        &self,
        id: &str,
        bearer: &str,
        offer: &str,
        address: &str,
    ) -> Result<WhipAnswer, WhipRefusal> {
        let endpoint = self.whip_endpoint().ok_or(WhipRefusal::Unauthorized)?;
        let ip = address.parse::<std::net::IpAddr>().ok();
        if ip.is_some_and(|ip| self.whip_strikes().is_banned(ip)) {
            return Err(WhipRefusal::TurnedAway);
        }
        let mut publisher = self
            .claim_whip(id, bearer, address)
            .map_err(|claim| match claim {
                Claim::WrongKey => {
                    if let Some(ip) = ip {
                        self.whip_strikes().strike(ip);
                    }
                    WhipRefusal::Unauthorized
                }
                Claim::Taken => WhipRefusal::Taken,
            })?;
        let carry = if publisher.feed.passes_through() {
            publisher.feed.pass_connected();
            let feed = publisher.feed.clone();
            Carry::Pass(Box::new(move |kind, ts, body| feed.pass(kind, ts, body)))
        } else {
            let inlet = publisher.feed.inlet.clone().ok_or(WhipRefusal::Taken)?;
            let writer = inlet
                .connect(crate::media::inlet::Container::Matroska)
                .map_err(|e| {
                    publisher.dropped(&e.to_string(), address);
                    WhipRefusal::Taken
                })?;
            Carry::Decode(writer)
        };
        let answered = crate::media::whip::answer(offer, &endpoint.webrtc, carry).await;
        let (sdp, offered, mut peer) = match answered {
            Ok(answered) => answered,
            Err(e) => {
                let refusal = WhipRefusal::from(e);
                publisher.dropped(&refusal.to_string(), address);
                return Err(refusal);
            }
        };
        publisher.describe(|view| {
            view.video_codec = offered.video.map(|v| match v {
                crate::media::whip::VideoCodec::H264 => "H.264".to_owned(),
                crate::media::whip::VideoCodec::Vp8 => "VP8".to_owned(),
            });
            view.audio_codec = offered.audio.then(|| "Opus".to_owned());
            view.encoder = Some("WHIP (WebRTC)".to_owned());
        });
        let resource = super::secret::resource_id();
        let (delete, deleted) = watch::channel(false);
        let sessions = self.whip_sessions();
        sessions
            .lock()
            .insert(resource.clone(), (publisher.feed.id.clone(), delete));
        let (address, kept) = (address.to_owned(), resource.clone());
        let mut joins = publisher.feed.joins();
        tokio::spawn(async move {
            let mut deleted = deleted;
            let why = loop {
                tokio::select! {
                    why = peer.ended() => break Some(why),
                    why = publisher.kicked() => break Some(why.to_owned()),
                    _ = deleted.wait_for(|d| *d) => break None,
                    Ok(()) = joins.changed() => peer.ask_keyframe(),
                }
            };
            // Dropped, the peer ends its session: nothing more reaches the feed.
            drop(peer);
            if let Some(why) = why {
                publisher.dropped(&why, &address);
            }
            sessions.lock().remove(&kept);
            drop(publisher);
        });
        Ok(WhipAnswer { sdp, resource })
    }

    /// Ends the WHIP session `resource` of feed `id` (its publisher's DELETE).
    pub fn end_whip(&self, id: &str, resource: &str, bearer: &str) -> Result<(), WhipRefusal> {
        let (feed, key_fits) = self
            .whip_feed_keyed(id, bearer)
            .ok_or(WhipRefusal::NoSession)?;
        if !key_fits {
            return Err(WhipRefusal::Unauthorized);
        }
        let sessions = self.whip_sessions();
        let sessions = sessions.lock();
        match sessions.get(resource) {
            Some((of, delete)) if *of == feed.id => {
                let _ = delete.send(true);
                Ok(())
            }
            _ => Err(WhipRefusal::NoSession),
        }
    }
}
