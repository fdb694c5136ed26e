//! What a multiaddr says about reachability, read from its text form.
//!
//! Proto has no libp2p dependency, and election only needs three facts about an announced
//! address: its IP, whether it is QUIC (the data plane is QUIC, so an edge must take UDP), and
//! whether it goes through a relay. The text form (`/ip4/198.18.0.11/udp/7700/quic-v1`) is
//! stable and enough for that.

use std::net::IpAddr;

/// The IP of the first `/ip4` or `/ip6` component.
pub fn ip_of(multiaddr: &str) -> Option<IpAddr> {
    let mut parts = multiaddr.split('/');
    while let Some(part) = parts.next() {
        if matches!(part, "ip4" | "ip6") {
            return parts.next()?.parse().ok();
        }
    }
    None
}

/// Whether the address is QUIC over UDP, not relayed.
pub fn is_direct_quic(multiaddr: &str) -> bool {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    parts.contains(&"udp") && parts.contains(&"quic-v1") && !is_relayed(multiaddr)
}

/// Whether the first hop is QUIC: the peer itself, or the relay a circuit goes through, is
/// reached over UDP. Dialers try these first; a connection over TCP costs a packet for every
/// yamux frame, and everything relayed through it inherits that.
pub fn is_quic(multiaddr: &str) -> bool {
    let first_hop = multiaddr.split("/p2p-circuit").next().unwrap_or(multiaddr);
    first_hop.split('/').any(|p| p == "quic-v1")
}

/// Whether the address goes through a relay (`/p2p-circuit`).
pub fn is_relayed(multiaddr: &str) -> bool {
    multiaddr.split('/').any(|p| p == "p2p-circuit")
}

/// Whether a visitor on the internet could reach `ip`: not loopback, unspecified, link-local,
/// private (RFC 1918, ULA) or shared carrier space (RFC 6598, CGNAT).
///
/// The benchmarking range 198.18.0.0/15 counts as the internet: the namespace labs use it as
/// theirs, and it is not routed inside homes either.
pub fn is_internet_ip(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v4.is_loopback()
                || v4.is_unspecified()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || shared)
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            let unique_local = first & 0xfe00 == 0xfc00;
            let link_local = first & 0xffc0 == 0xfe80;
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || unique_local
                || link_local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ip_transport_and_relaying() {
        let quic = "/ip4/198.18.0.11/udp/7700/quic-v1";
        assert_eq!(ip_of(quic), Some("198.18.0.11".parse().unwrap()));
        assert!(is_direct_quic(quic));
        assert!(!is_direct_quic("/ip4/198.18.0.11/tcp/7700"));
        let circuit = "/ip4/198.18.0.11/udp/7700/quic-v1/p2p/12D3KooW/p2p-circuit";
        assert!(is_relayed(circuit) && !is_direct_quic(circuit));
        assert!(is_quic(quic) && is_quic(circuit));
        assert!(!is_quic(
            "/ip4/198.18.0.11/tcp/7700/p2p/12D3KooW/p2p-circuit/p2p/12D3KooX"
        ));
        assert!(!is_quic("/ip4/198.18.0.11/tcp/7700"));
        assert_eq!(ip_of("/ip6/::1/tcp/1"), Some("::1".parse().unwrap()));
        assert_eq!(ip_of("/dns4/example.com/tcp/1"), None);
        assert_eq!(ip_of("garbage"), None);
    }

    #[test]
    fn only_internet_addresses_count() {
        for public in ["198.18.0.11", "203.0.113.7", "2001:db8::1"] {
            assert!(is_internet_ip(&public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "0.0.0.0",
            "192.168.1.2",
            "172.16.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(!is_internet_ip(&private.parse().unwrap()), "{private}");
        }
    }
}
