//! Which inputs a requester may use, decided before anything is opened.
//!
//! The user at a shell runs callfeed with their own rights and may name any input. An API
//! client of `callfeed serve` is a stranger: it gets files only under the configured media
//! roots, devices only when the operator allows them, URLs only of public hosts (checked
//! after DNS resolution, so a name that resolves to a private address is refused too), and
//! `test:` sources. Every refusal says the same thing, so a refusal never tells whether a
//! path exists.
//!
//! Whatever the requester, a network input never opens a local file or another protocol
//! behind the user's back: an HLS playlist naming a `file://` segment is stopped by
//! [`guard_sources`] before the segment's source runs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;

use super::input::InputSpec;

/// How long resolving a URL's host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects an API client's URL may go through before it is refused (browsers allow 20;
/// media hosts use one or two).
const MAX_REDIRECTS: usize = 5;
/// How long one hop of a redirect chain may take to answer with its head.
const REDIRECT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The one answer to an input the policy refuses, whatever the reason (a place it may not
/// read says nothing of what is there); and the one that is about the input's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    devices_allowed: bool,
    /// Spoken text with markup.
    markup: bool,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.markup {
            return f.write_str(
                "media: tts: text with SSML markup is not taken from API clients of this server: send plain words",
            );
        }
        write!(
            f,
            "media: this input is not allowed for API clients of this server; use a file under one of its media roots (--media-root), a test: source, tts: words, or an http(s), rtmp(s), srt (caller), rtsp(s) or HLS URL of a public host (a redirect is judged as the URL is){}",
            if self.devices_allowed {
                ", or a device"
            } else {
                ""
            }
        )
    }
}

impl std::error::Error for Refused {}

/// The restrictions an API client's inputs get.
#[derive(Debug, Clone, Default)]
pub struct Restrictions {
    /// Canonical directories files may be read from; none means no files at all.
    pub media_roots: Vec<PathBuf>,
    /// Capture devices and custom source topologies.
    pub allow_devices: bool,
    /// Hosts (lower-case names or address literals) that may be private or loopback.
    pub allowed_url_hosts: Vec<String>,
}

/// Who may use which inputs.
#[derive(Debug, Clone, Default)]
pub enum InputPolicy {
    /// The user at a shell: anything they can open.
    #[default]
    Unrestricted,
    /// An API client.
    Restricted(Restrictions),
}

impl Restrictions {
    /// Media roots canonicalised (links resolved), so a root given through a link still
    /// contains the files under it. A root that does not exist is an error at start.
    pub fn new(
        media_roots: &[PathBuf],
        allow_devices: bool,
        allowed_url_hosts: &[String],
    ) -> Result<Self, std::io::Error> {
        let media_roots = media_roots
            .iter()
            .map(|root| {
                std::fs::canonicalize(root).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("media root {}: {e}", root.display()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            media_roots,
            allow_devices,
            allowed_url_hosts: allowed_url_hosts
                .iter()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
        })
    }

    fn refused(&self) -> Refused {
        Refused {
            devices_allowed: self.allow_devices,
            markup: false,
        }
    }

    /// The file as it will be opened (canonical), if it lies under a media root.
    fn admit_file(&self, path: &Path) -> Result<PathBuf, Refused> {
        let canonical = std::fs::canonicalize(path).map_err(|_| self.refused())?;
        if self
            .media_roots
            .iter()
            .any(|root| canonical.starts_with(root))
        {
            Ok(canonical)
        } else {
            Err(self.refused())
        }
    }

    /// The URL as it will be opened: `raw` itself, or where its redirects lead, every hop
    /// judged by the same rules before anything connects to it.
    async fn admit_url(&self, raw: &str) -> Result<String, Refused> {
        // What plays is the parsed URL's own text (see `InputSpec::parse_syntax`): checked
        // here as the pipeline will read it.
        let url = url::Url::parse(raw).map_err(|_| self.refused())?;
        if url.as_str() != raw {
            return Err(self.refused());
        }
        let addrs = self.judge_url(&url).await?;
        let url = self.follow_redirects(url, addrs).await?;
        Ok(url.into())
    }

    /// Whether `url` may be opened: its scheme and options, and its host (listed, or every
    /// address it resolves to public). The addresses checked, to connect to, unless listed.
    async fn judge_url(&self, url: &url::Url) -> Result<Option<Vec<SocketAddr>>, Refused> {
        match url.scheme() {
            "http" | "https" | "rtmp" | "rtmps" => {}
            // callfeed's own option only; the rest of the URL is the camera's.
            "rtsp" | "rtsps" => {}
            // A listener or rendezvous socket would make the server accept connections, and
            // so would a local address: only caller options, each once.
            "srt" => {
                let mut seen = Vec::new();
                for (key, value) in url.query_pairs() {
                    let allowed = match key.as_ref() {
                        "mode" => value.eq_ignore_ascii_case("caller"),
                        "latency" | "passphrase" | "pbkeylen" | "streamid" => true,
                        _ => false,
                    };
                    if !allowed || seen.contains(&key) {
                        return Err(self.refused());
                    }
                    seen.push(key);
                }
            }
            _ => return Err(self.refused()),
        }
        let (host, port) = match self.host_to_check(url) {
            None => return Err(self.refused()),
            Some(HostCheck::Listed) => return Ok(None),
            Some(HostCheck::Resolve(host, port)) => (host, port),
        };
        let resolved = tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| self.refused())?
        .map_err(|_| self.refused())?
        .collect::<Vec<_>>();
        if !all_public(&resolved) {
            return Err(self.refused());
        }
        Ok(Some(resolved))
    }

    /// Where an http(s) (or RTSP) URL's redirects lead, each hop judged as the URL was: the pipeline,
    /// the probe and the cloud are then given a URL that answers itself, and no source of
    /// an API client's follows a redirect (see [`guard_sources`]), so a public host cannot
    /// send the node, or the cloud, to a private one. Each hop connects only to the
    /// addresses just judged (a second DNS answer cannot differ). A host that cannot be
    /// reached is left for the probe to name.
    async fn follow_redirects(
        &self,
        mut url: url::Url,
        mut addrs: Option<Vec<SocketAddr>>,
    ) -> Result<url::Url, Refused> {
        for _ in 0..=MAX_REDIRECTS {
            if url.scheme() == "rtsp" {
                let within = REDIRECT_CHECK_TIMEOUT;
                let Some(location) = super::rtsp::redirect_of(&url, addrs.as_deref(), within).await
                else {
                    return Ok(url);
                };
                let next = url.join(&location).map_err(|_| self.refused())?;
                addrs = self.judge_url(&next).await?;
                url = next;
                continue;
            }
            if !matches!(url.scheme(), "http" | "https") {
                return Ok(url);
            }
            let mut client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(REDIRECT_CHECK_TIMEOUT)
                .no_proxy();
            if let (Some(addrs), Some(host)) = (&addrs, url.host_str()) {
                client = client.resolve_to_addrs(host.trim_matches(['[', ']']), addrs);
            }
            let Ok(client) = client.build() else {
                return Ok(url);
            };
            // Only the head is read: the body (a live stream, say) is dropped unread.
            let Ok(answer) = client.get(url.clone()).send().await else {
                return Ok(url);
            };
            if !answer.status().is_redirection() {
                return Ok(url);
            }
            let next = answer
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| self.refused())?;
            addrs = self.judge_url(&next).await?;
            url = next;
        }
        Err(self.refused())
    }
}

/// What a URL's host needs before it may be opened.
enum HostCheck {
    /// Listed with `--allow-url-host`: nothing more.
    Listed,
    /// Resolved (this name, this port), and every address public.
    Resolve(String, u16),
}

impl Restrictions {
    /// The check a URL's host needs; `None` when it has no host at all.
    fn host_to_check(&self, url: &url::Url) -> Option<HostCheck> {
        let host = match url.host()? {
            url::Host::Domain(d) => d.to_ascii_lowercase(),
            url::Host::Ipv4(ip) => ip.to_string(),
            url::Host::Ipv6(ip) => ip.to_string(),
        };
        if self.allowed_url_hosts.contains(&host) {
            return Some(HostCheck::Listed);
        }
        Some(HostCheck::Resolve(
            host,
            url.port_or_known_default().unwrap_or(1935),
        ))
    }
}

/// Whether a name resolved to public addresses only: a resolver may hand out any of them.
fn all_public(resolved: &[std::net::SocketAddr]) -> bool {
    !resolved.is_empty() && resolved.iter().all(|a| is_public(a.ip()))
}

impl InputPolicy {
    /// Whether this requester is an API client, whose hosts are checked.
    pub fn is_restricted(&self) -> bool {
        matches!(self, InputPolicy::Restricted(_))
    }

    /// Whether this requester may have the server connect to `host` (resolved to `addrs`):
    /// anyone at a shell; an API client when the host is public or allowed.
    pub fn allows_host(&self, host: &str, addrs: &[std::net::SocketAddr]) -> bool {
        match self {
            InputPolicy::Unrestricted => true,
            InputPolicy::Restricted(r) => {
                let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
                r.allowed_url_hosts.contains(&host) || all_public(addrs)
            }
        }
    }

    /// The input as it will be opened, or the one refusal. Files come back canonical, so
    /// what plays is what was checked.
    pub async fn admit(&self, spec: InputSpec) -> Result<InputSpec, Refused> {
        let InputPolicy::Restricted(r) = self else {
            return Ok(spec);
        };
        match spec {
            InputSpec::Test { .. } => Ok(spec),
            InputSpec::Devices { .. } | InputSpec::Custom { .. } if r.allow_devices => Ok(spec),
            InputSpec::Devices { .. } | InputSpec::Custom { .. } => Err(r.refused()),
            InputSpec::File(path) => r.admit_file(&path).map(InputSpec::File),
            InputSpec::Playlist(items) => items
                .iter()
                .map(|p| r.admit_file(p))
                .collect::<Result<Vec<_>, _>>()
                .map(InputSpec::Playlist),
            InputSpec::Url(url) => r.admit_url(&url).await.map(InputSpec::Url),
            // Whether it exists is the registry's to say; it plays nothing of a client's.
            InputSpec::Feed(_) => Ok(spec),
            // Words are words; markup drives the engine, and is the shell user's alone.
            InputSpec::Speech(ref words) if words.markup => Err(Refused {
                markup: true,
                ..r.refused()
            }),
            InputSpec::Speech(_) => Ok(spec),
            InputSpec::Pushed(_) => Err(r.refused()),
        }
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local (cloud
/// metadata services live there), shared (CGNAT), multicast, reserved or documentation.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local, 2001:db8::/32 documentation
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)
                // 64:ff9b::/96 NAT64 and ::/96 IPv4-compatible reach IPv4 addresses; so do
                // 6to4 (2002::/16) and Teredo (2001::/32); fec0::/10 is site-local
                || (first == 0x0064 && v6.segments()[1] == 0xff9b)
                || first == 0x2002
                || (first == 0x2001 && v6.segments()[1] == 0)
                || (first & 0xffc0) == 0xfec0
                || v6.segments()[..6].iter().all(|s| *s == 0))
                && v6 != Ipv6Addr::LOCALHOST
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        || a >= 240)
}

/// What the sources a pipeline makes by itself (an HLS segment, a playlist entry, a
/// redirect) may open, beyond the input the policy admitted.
#[derive(Debug, Clone)]
pub struct SourceGuard {
    /// URI schemes a source may have.
    protocols: Vec<String>,
    /// For an API client: files under the media roots only, hosts public (or listed), and
    /// no redirect is followed (it would go where no check looked).
    restricted: Option<Restrictions>,
}

impl InputPolicy {
    /// The guard an input's pipelines get, if they need one: a network input never opens a
    /// local file or another protocol; an API client's inputs open nothing its policy
    /// would refuse.
    pub fn source_guard(&self, spec: &InputSpec) -> Option<SourceGuard> {
        let restricted = match self {
            InputPolicy::Unrestricted => None,
            InputPolicy::Restricted(r) => Some(r.clone()),
        };
        match spec {
            InputSpec::Url(url) => Some(SourceGuard {
                protocols: network_protocols(url),
                restricted,
            }),
            InputSpec::File(_) | InputSpec::Playlist(_) => restricted.map(|r| SourceGuard {
                protocols: vec!["file".to_owned()],
                restricted: Some(r),
            }),
            _ => None,
        }
    }
}

impl SourceGuard {
    /// The guard of a network URI an input plays, for a user at a shell.
    pub fn for_uri(uri: &str) -> Option<Self> {
        (!uri.starts_with("file:")).then(|| SourceGuard {
            protocols: network_protocols(uri),
            restricted: None,
        })
    }

    /// Whether the sources it guards are an API client's.
    pub fn is_restricted(&self) -> bool {
        self.restricted.is_some()
    }

    /// Whether a source element may open `uri`; called as the element is added, before it
    /// runs (a name is resolved here, on the pipeline's thread).
    pub(super) fn permits(&self, uri: &str) -> bool {
        let Ok(url) = url::Url::parse(uri) else {
            return false;
        };
        if !self.protocols.iter().any(|p| p == url.scheme()) {
            return false;
        }
        let Some(r) = &self.restricted else {
            return true;
        };
        if url.scheme() == "file" {
            return url
                .to_file_path()
                .ok()
                .is_some_and(|p| r.admit_file(&p).is_ok());
        }
        // rtspsrc's RTP sockets: local ports the camera sends to, which open no connection.
        if url.scheme() == "udp" {
            return true;
        }
        match r.host_to_check(&url) {
            None => false,
            Some(HostCheck::Listed) => true,
            Some(HostCheck::Resolve(host, port)) => {
                use std::net::ToSocketAddrs;
                (host.as_str(), port)
                    .to_socket_addrs()
                    .is_ok_and(|addrs| all_public(&addrs.collect::<Vec<_>>()))
            }
        }
    }
}

/// The protocols a network input's pipeline may open: its own scheme, and http(s) for the
/// parts an adaptive stream fetches.
fn network_protocols(uri: &str) -> Vec<String> {
    let mut allowed = vec!["http".to_owned(), "https".to_owned()];
    if let Some((scheme, _)) = uri.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        // A camera is opened by its TCP variant when asked (see `rtsp`), and its RTP comes
        // to UDP sockets of rtspsrc's own.
        if scheme.starts_with("rtsp") {
            allowed.extend(["rtsp", "rtspt", "rtsps", "rtspst", "udp"].map(str::to_owned));
        } else if !allowed.contains(&scheme) {
            allowed.push(scheme);
        }
    }
    allowed
}

/// Stops any source element in `bin`, there already or created later anywhere inside it
/// (an HLS segment, a redirect), that `guard` does not permit: its output is dropped before
/// a byte leaves it, it is kept from starting, and an error ends the pipeline. An API
/// client's sources follow no redirect: the URL was followed and judged when admitted.
pub fn guard_sources(bin: &gst::Bin, guard: SourceGuard) {
    let mut present = Vec::new();
    let mut elements = bin.iterate_recurse();
    while let Ok(Some(element)) = elements.next() {
        present.push(element);
    }
    for element in present {
        judge(bin, &element, &guard);
    }
    bin.connect_deep_element_added(move |top, _, element| judge(top, element, &guard));
}

fn judge(top: &gst::Bin, element: &gst::Element, guard: &SourceGuard) {
    let Some(handler) = element.dynamic_cast_ref::<gst::URIHandler>() else {
        return;
    };
    if handler.uri_type() != gst::URIType::Src {
        return;
    }
    if guard.restricted.is_some() && element.has_property("automatic-redirect") {
        element.set_property("automatic-redirect", false);
    }
    let permitted = match handler.uri() {
        Some(uri) => guard.permits(&uri),
        // Not set yet: judge by what the element can open at all.
        None => handler
            .protocols()
            .iter()
            .all(|p| guard.protocols.contains(&p.to_ascii_lowercase())),
    };
    // rtspsrc's RTP sockets receive where the camera sends: nothing to hold.
    let receives_only = handler.protocols().iter().all(|p| p == "udp");
    if permitted {
        if guard.restricted.is_some() && !receives_only {
            judge_each_use(element, guard);
        }
        return;
    }
    refuse(top, element, true);
}

/// Judges the URI a source opens every time it starts again: an adaptive demuxer reuses
/// one source for every segment of the same scheme, setting a new URI each time (no
/// element is added then, and no property notifies). A source pushes `stream-start` before
/// it asks for anything, so a forbidden URI is held there: the source's thread waits on the
/// pad until the pipeline is stopped, and no request leaves.
fn judge_each_use(element: &gst::Element, guard: &SourceGuard) {
    for pad in element.src_pads() {
        let (weak, guard) = (element.downgrade(), guard.clone());
        pad.add_probe(
            gst::PadProbeType::BLOCK | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                let starts = matches!(
                    &info.data,
                    Some(gst::PadProbeData::Event(e)) if e.type_() == gst::EventType::StreamStart
                );
                let Some(element) = weak.upgrade().filter(|_| starts) else {
                    return gst::PadProbeReturn::Pass;
                };
                let uri = element
                    .dynamic_cast_ref::<gst::URIHandler>()
                    .and_then(|h| h.uri());
                if uri.is_some_and(|uri| guard.permits(&uri)) {
                    return gst::PadProbeReturn::Pass;
                }
                let mut top = element.clone();
                while let Some(parent) =
                    top.parent().and_then(|p| p.downcast::<gst::Element>().ok())
                {
                    top = parent;
                }
                if let Some(top) = top.downcast_ref::<gst::Bin>() {
                    // Running already: held on this pad, not locked (a locked element would
                    // not be stopped with its pipeline).
                    refuse(top, &element, false);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
}

/// Keeps `element` from producing anything and ends the pipeline with an error; `lock`
/// keeps one that has not started from starting.
fn refuse(top: &gst::Bin, element: &gst::Element, lock: bool) {
    for pad in element.src_pads() {
        pad.add_probe(gst::PadProbeType::DATA_DOWNSTREAM, |_, _| {
            gst::PadProbeReturn::Drop
        });
    }
    if lock {
        element.set_locked_state(true);
    }
    // Posted on the top bin: a demuxer would take its source's own error for a failed
    // download and retry it.
    let _ = top.post_message(
        gst::message::Error::builder(
            gst::ResourceError::NotAuthorized,
            "the input may not open this source (another protocol, a local file, or a private host)",
        )
        .src(element)
        .build(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "224.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn restricted_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("media");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(root.join("a.mp3"), b"x").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("link.mp3")).unwrap();
        let policy = InputPolicy::Restricted(
            Restrictions::new(std::slice::from_ref(&root), false, &["localhost".into()]).unwrap(),
        );
        let admit = |s: &str| {
            let spec = InputSpec::parse_syntax(s).unwrap();
            let policy = policy.clone();
            async move { policy.admit(spec).await }
        };
        assert!(
            admit(&root.join("a.mp3").display().to_string())
                .await
                .is_ok()
        );
        assert!(admit("test:").await.is_ok());
        assert!(admit("http://localhost:8080/x.flv").await.is_ok());
        assert!(
            admit("http://bob:pw@localhost:1/x.flv?token=t")
                .await
                .is_ok(),
            "credentials in a listed host's URL"
        );
        let refusals = [
            dir.path().join("secret").display().to_string(),
            root.join("link.mp3").display().to_string(),
            root.join("../secret").display().to_string(),
            root.join("missing.mp3").display().to_string(),
            "alsa:default".into(),
            "custom:cam:x".into(),
            "http://127.0.0.1/x.flv".into(),
            "http://169.254.169.254/latest/meta-data".into(),
            "http://[::1]/x.flv".into(),
            "srt://example.com:9000?mode=listener".into(),
            "srt://example.com:9000?mode=caller&mode=listener".into(),
            "srt://example.com:9000?localaddress=0.0.0.0".into(),
            "srt://0.0.0.0:9000".into(),
        ];
        let first = admit(&refusals[0]).await.unwrap_err().to_string();
        for r in &refusals {
            let err = admit(r).await.unwrap_err().to_string();
            assert_eq!(err, first, "{r}: every refusal says the same");
        }
        assert!(
            !first.contains("secret") && !first.contains("exist"),
            "{first}"
        );
    }
}
