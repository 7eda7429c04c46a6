//! Who may hold a connection: at most so many per peer, and a budget of its own for
//! connections that have not yet sent a request head.
//!
//! A connection is *unheaded* from its accept until hyper has read its first whole request
//! head; after that it is a client being served (a keep-alive connection waiting for its next
//! head stays bounded by the header timeout and by its peer's cap). Unheaded connections are
//! the cheap way to hold a server — open, send half a line, wait — and cannot be told from a
//! client that is merely about to send. So instead of refusing newcomers when the budget is
//! spent, one unheaded connection is closed to make room: the oldest of the peer that holds
//! the most of them. A flood — from one address or from many — is then what makes room for
//! itself, and a client from an address of its own, holding one connection that has not sent
//! its head *yet*, is not touched, however many flood connections arrive while it is being
//! read. (Oldest overall would not do: a burst of a budget's worth of newcomers between a
//! probe's accept and the reading of its head would close the probe.) Only a flood from more
//! addresses than the budget, each holding one, brings it back to oldest-first.
//!
//! Peers are counted by IP address; IPv6 addresses by their /64, which is what one host is
//! usually given (counting single addresses would let it open a connection per address).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// The address a peer's connections are counted under: IPv4 as is (an IPv4-mapped IPv6
/// address as the IPv4 one), IPv6 by its /64.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::V6(Ipv6Addr::from(segments))
        }
        v4 => v4,
    }
}

/// The server's book of who holds what.
pub(super) struct Admission {
    max_per_peer: usize,
    max_unheaded: usize,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    /// Open connections by peer key; a peer with none has no entry.
    peers: HashMap<IpAddr, usize>,
    /// Unheaded connections by peer key, in the order they were accepted, each with the
    /// sender that closes it; a peer with none has no entry.
    unheaded: HashMap<IpAddr, BTreeMap<u64, oneshot::Sender<()>>>,
    /// How many `unheaded` holds in all.
    unheaded_count: usize,
    next: u64,
}

impl Book {
    fn forget_unheaded(&mut self, key: IpAddr, seq: u64) {
        if let Some(of_peer) = self.unheaded.get_mut(&key)
            && of_peer.remove(&seq).is_some()
        {
            self.unheaded_count -= 1;
            if of_peer.is_empty() {
                self.unheaded.remove(&key);
            }
        }
    }

    /// Takes the oldest unheaded connection of the peer that holds the most (of those that
    /// hold as many, the one whose oldest is oldest).
    fn take_victim(&mut self) -> Option<oneshot::Sender<()>> {
        let (&key, _) = self.unheaded.iter().max_by(|(_, a), (_, b)| {
            let oldest = |m: &BTreeMap<u64, _>| m.keys().next().copied().unwrap_or(u64::MAX);
            a.len()
                .cmp(&b.len())
                .then_with(|| oldest(b).cmp(&oldest(a)))
        })?;
        let of_peer = self.unheaded.get_mut(&key)?;
        let (_, victim) = of_peer.pop_first()?;
        self.unheaded_count -= 1;
        if of_peer.is_empty() {
            self.unheaded.remove(&key);
        }
        Some(victim)
    }
}

/// Why a connection was refused at accept.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its peer already holds `max_per_peer` connections.
    PeerFull,
}

/// What admitting a connection did besides admitting it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admitted {
    Plainly,
    /// The unheaded budget was spent: an unheaded connection was told to close.
    ClosedAnother,
}

impl Admission {
    pub(super) fn new(max_per_peer: usize, max_unheaded: usize) -> Arc<Self> {
        Arc::new(Self {
            max_per_peer: max_per_peer.max(1),
            max_unheaded: max_unheaded.max(1),
            book: Mutex::new(Book::default()),
        })
    }

    /// Admits a connection from `peer` as unheaded, unless its peer is at its cap.
    pub(super) fn admit(
        self: &Arc<Self>,
        peer: IpAddr,
    ) -> Result<(Place, HeadSeen, Admitted), Refused> {
        let key = peer_key(peer);
        let (tell, closed) = oneshot::channel();
        let mut book = self.book.lock();
        let held = book.peers.entry(key).or_default();
        if *held >= self.max_per_peer {
            return Err(Refused::PeerFull);
        }
        *held += 1;
        let seq = book.next;
        book.next += 1;
        book.unheaded.entry(key).or_default().insert(seq, tell);
        book.unheaded_count += 1;
        let mut admitted = Admitted::Plainly;
        if book.unheaded_count > self.max_unheaded
            && let Some(victim) = book.take_victim()
        {
            // The receiver may be gone already (its connection is ending): nothing to do.
            let _ = victim.send(());
            admitted = Admitted::ClosedAnother;
        }
        drop(book);
        let place = Place {
            admission: self.clone(),
            key,
            seq,
            closed: Some(closed),
        };
        let head = HeadSeen {
            admission: self.clone(),
            key,
            seq,
            seen: Arc::new(AtomicBool::new(false)),
        };
        Ok((place, head, admitted))
    }

    fn headed(&self, key: IpAddr, seq: u64) {
        // Dropping the sender is not a close: `Place::evicted` tells the two apart.
        self.book.lock().forget_unheaded(key, seq);
    }
}

/// One admitted connection's place; given back when dropped.
pub(super) struct Place {
    admission: Arc<Admission>,
    key: IpAddr,
    seq: u64,
    closed: Option<oneshot::Receiver<()>>,
}

impl Place {
    /// Resolves if this connection is closed to make room for a newer one; never otherwise
    /// (in particular not once its head was seen).
    pub(super) async fn evicted(&mut self) {
        let told = match self.closed.take() {
            Some(closed) => closed.await.is_ok(),
            None => false,
        };
        if !told {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut book = self.admission.book.lock();
        book.forget_unheaded(self.key, self.seq);
        if let Some(held) = book.peers.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                book.peers.remove(&self.key);
            }
        }
    }
}

/// Told when a connection's first request head has been read.
#[derive(Clone)]
pub(super) struct HeadSeen {
    admission: Arc<Admission>,
    key: IpAddr,
    seq: u64,
    seen: Arc<AtomicBool>,
}

impl HeadSeen {
    pub(super) fn seen(&self) {
        // Only the first request takes the lock.
        if !self.seen.swap(true, Ordering::Relaxed) {
            self.admission.headed(self.key, self.seq);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn peers_are_counted_by_ipv4_address_and_ipv6_slash_64() {
        assert_eq!(peer_key(ip("127.0.0.3")), ip("127.0.0.3"));
        assert_eq!(peer_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(peer_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            peer_key(ip("2001:db8:1:2:aaaa::1")),
            peer_key(ip("2001:db8:1:2:bbbb::2"))
        );
    }

    #[test]
    fn a_peer_over_its_cap_is_refused_until_one_of_its_places_is_given_back() {
        let admission = Admission::new(2, 100);
        let first = admission.admit(ip("127.0.0.3")).unwrap();
        let _second = admission.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(
            admission.admit(ip("127.0.0.3")).err(),
            Some(Refused::PeerFull)
        );
        // Others are not counted against it.
        let _other = admission.admit(ip("127.0.0.1")).unwrap();
        drop(first);
        assert!(admission.admit(ip("127.0.0.3")).is_ok());
    }

    #[tokio::test]
    async fn past_the_unheaded_budget_the_peer_holding_most_loses_its_oldest() {
        let soon = Duration::from_millis(100);
        let admission = Admission::new(100, 3);
        let (mut probe, _, _) = admission.admit(ip("127.0.0.1")).unwrap();
        let (mut served, head, _) = admission.admit(ip("127.0.0.3")).unwrap();
        head.seen();
        let (mut flood_oldest, _, _) = admission.admit(ip("127.0.0.3")).unwrap();
        let (mut flood_next, _, how) = admission.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(how, Admitted::Plainly, "the served one is not counted");
        // The budget is spent: 127.0.0.3 holds two unheaded, 127.0.0.1 one (older).
        let (_flood_newest, _, how) = admission.admit(ip("127.0.0.3")).unwrap();
        assert_eq!(how, Admitted::ClosedAnother);
        assert!(
            tokio::time::timeout(soon, flood_oldest.evicted())
                .await
                .is_ok()
        );
        assert!(tokio::time::timeout(soon, probe.evicted()).await.is_err());
        assert!(tokio::time::timeout(soon, served.evicted()).await.is_err());
        assert!(
            tokio::time::timeout(soon, flood_next.evicted())
                .await
                .is_err()
        );
        // Among peers holding as many, the oldest goes.
        let admission = Admission::new(100, 2);
        let (mut first, _, _) = admission.admit(ip("127.0.0.4")).unwrap();
        let (mut second, _, _) = admission.admit(ip("127.0.0.5")).unwrap();
        let (_third, _, how) = admission.admit(ip("127.0.0.6")).unwrap();
        assert_eq!(how, Admitted::ClosedAnother);
        assert!(tokio::time::timeout(soon, first.evicted()).await.is_ok());
        assert!(tokio::time::timeout(soon, second.evicted()).await.is_err());
    }
}
