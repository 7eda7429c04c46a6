//! `serve`'s WebRTC flags: where WHIP publishers' media comes in (addresses, a UDP port
//! range, the public address of a node behind 1:1 NAT) and the ICE servers they and the node
//! use. TURN credentials come from the environment, never from the command line (which any
//! user of the machine can read) and never into a log.

use std::net::IpAddr;

use clap::Args;
use secrecy::SecretString;

use crate::cloud::InvalidArgument;
use crate::media::whip::WebRtcSettings;

#[derive(Args, Debug)]
pub(super) struct WebRtcArgs {
    /// An address WHIP publishers' media reaches (repeat for several). Default: the
    /// --listen address, unless it is 0.0.0.0 (then every address but loopback, or
    /// loopback on a node that has no other).
    #[arg(long = "webrtc-bind", value_name = "IP")]
    bind: Vec<IpAddr>,
    /// The UDP ports WebRTC takes, e.g. 40000-40099 (open them in the firewall); one per
    /// publisher. Default: any free port.
    #[arg(long, value_name = "LOW-HIGH", value_parser = port_range)]
    webrtc_ports: Option<(u16, u16)>,
    /// The public address of a node behind 1:1 NAT, put into its ICE candidates.
    #[arg(long, value_name = "IP")]
    webrtc_public_ip: Option<IpAddr>,
    /// Also check publishers' candidates on private and loopback addresses (by default only
    /// public ones are: the node never sends into a network an offer names; a publisher
    /// that reaches the node is found from its own checks all the same).
    #[arg(long)]
    webrtc_private_candidates: bool,
    /// An ICE server, told to publishers and used by the node: stun:HOST:PORT or
    /// turn:HOST:PORT / turns:HOST:PORT (repeat for several). A TURN server's credentials
    /// come from CALLFEED_TURN_USERNAME and CALLFEED_TURN_PASSWORD.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
}

impl WebRtcArgs {
    /// The node's WebRTC settings; `listen` is the API's address.
    pub(super) fn settings(&self, listen: IpAddr) -> anyhow::Result<WebRtcSettings> {
        let bind = match (self.bind.is_empty(), listen.is_unspecified()) {
            (false, _) => self.bind.clone(),
            (true, true) => Vec::new(),
            (true, false) => vec![listen],
        };
        let mut settings = WebRtcSettings {
            bind,
            ports: self.webrtc_ports,
            public_ip: self.webrtc_public_ip,
            private_candidates: self.webrtc_private_candidates,
            ..Default::default()
        };
        for server in &self.ice_servers {
            let (scheme, place) = server.split_once(':').unwrap_or(("", server));
            let place = place.trim_start_matches("//");
            let host_port = !place.is_empty() && !place.contains(['@', '/', '?', ' ']);
            match scheme {
                "stun" if host_port => settings.stun = Some(format!("stun://{place}")),
                "turn" | "turns" if host_port => {
                    let (user, password) = turn_credentials()?;
                    settings.turn.push(SecretString::from(format!(
                        "{scheme}://{user}:{password}@{place}"
                    )));
                }
                _ => {
                    return Err(InvalidArgument::new(
                        "--ice-server",
                        crate::redact::redact_url(server),
                        "stun:HOST:PORT, turn:HOST:PORT or turns:HOST:PORT (TURN credentials in CALLFEED_TURN_USERNAME and CALLFEED_TURN_PASSWORD)",
                    )
                    .into());
                }
            }
        }
        Ok(settings)
    }
}

/// The TURN servers' username and password, escaped for the URL GStreamer takes.
fn turn_credentials() -> anyhow::Result<(String, String)> {
    let read = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(|v| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())
    };
    match (
        read("CALLFEED_TURN_USERNAME"),
        read("CALLFEED_TURN_PASSWORD"),
    ) {
        (Some(user), Some(password)) => Ok((user, password)),
        _ => anyhow::bail!(InvalidArgument::new(
            "--ice-server",
            "turn:…",
            "a TURN server needs CALLFEED_TURN_USERNAME and CALLFEED_TURN_PASSWORD in the environment",
        )),
    }
}

/// `LOW-HIGH`: WebRTC's UDP ports.
fn port_range(value: &str) -> Result<(u16, u16), String> {
    let wrong = || format!("`{value}`: a range of UDP ports, e.g. 40000-40099");
    let (low, high) = value.split_once('-').ok_or_else(wrong)?;
    let (low, high): (u16, u16) = (
        low.trim().parse().map_err(|_| wrong())?,
        high.trim().parse().map_err(|_| wrong())?,
    );
    if low == 0 || low > high {
        return Err(wrong());
    }
    Ok((low, high))
}
