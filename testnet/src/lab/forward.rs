//! Port forwarding on a home router: what a user does to reach a home server directly.

use super::cmd::nft;
use super::topology::{HostKind, Lab};
use anyhow::{bail, Context, Result};
use std::net::SocketAddrV4;

impl Lab {
    /// Forwards TCP `port` on the WAN address of `host`'s home router to the same port on
    /// `host` (DNAT), and lets those connections through the router's firewall. Returns the
    /// address to dial from the internet. Only for `home` and `udp-blocked` hosts: a cgnat home
    /// has no public address of its own to forward.
    pub fn forward_port(&self, host: &str, port: u16) -> Result<SocketAddrV4> {
        let host = self.host(host)?;
        if !matches!(host.kind, HostKind::Home | HostKind::UdpBlocked) {
            bail!(
                "{} is a {:?} host; only home routers forward ports",
                host.name,
                host.kind
            );
        }
        let router = host
            .router_ns
            .as_deref()
            .context("a home host without a router")?;
        let (wan, lan) = (host.wan_addr, host.addr);
        // The router's forward chain drops everything it did not originate; a separate base
        // chain cannot override that drop, so the accept goes into the same chain, first.
        nft(
            router,
            &format!(
                "table ip hl_forward {{\n  chain pre {{\n    type nat hook prerouting priority -100;\n    iifname \"wan\" ip daddr {wan} tcp dport {port} dnat to {lan}:{port}\n  }}\n}}\n\
                 insert rule inet filter forward iifname \"wan\" ip daddr {lan} tcp dport {port} ct status dnat accept\n"
            ),
        )?;
        Ok(SocketAddrV4::new(wan, port))
    }
}
