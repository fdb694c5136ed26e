//! Which of a node's addresses it tells others about.

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;
use std::collections::BTreeSet;

fn is_loopback(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_loopback(),
        Protocol::Ip6(ip) => ip.is_loopback(),
        _ => false,
    })
}

fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}

/// Advertised addresses first, then listen addresses; loopback ones only when there is
/// nothing else (a loopback test mesh), since another machine dialing 127.0.0.1 reaches itself.
pub fn publishable(advertise: &[Multiaddr], listening: &BTreeSet<Multiaddr>) -> Vec<String> {
    let mut out: Vec<String> = advertise.iter().map(|a| a.to_string()).collect();
    let concrete: Vec<&Multiaddr> = listening.iter().filter(|a| !is_unspecified(a)).collect();
    let external: Vec<&&Multiaddr> = concrete.iter().filter(|a| !is_loopback(a)).collect();
    if external.is_empty() {
        out.extend(concrete.iter().map(|a| a.to_string()));
    } else {
        out.extend(external.iter().map(|a| a.to_string()));
    }
    out.dedup();
    out
}

/// Parses a configured `address:port`, as an I/O error so bind failures read the same.
pub fn socket_addr(text: &str) -> std::io::Result<std::net::SocketAddr> {
    text.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{text}` is not an address:port ({e})"),
        )
    })
}

/// The data-plane endpoint's addresses: each IP of the announced direct control-plane
/// addresses (a relayed address names the relay's IP, not this node's), with the tunnel's
/// port.
pub fn tunnel_addrs(announced: &[String], port: u16) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for addr in announced
        .iter()
        .filter(|a| !hearth_proto::addr::is_relayed(a))
        .filter_map(|a| a.parse::<Multiaddr>().ok())
    {
        let ip: Option<std::net::IpAddr> = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(ip.into()),
            Protocol::Ip6(ip) => Some(ip.into()),
            _ => None,
        });
        if let Some(ip) = ip {
            let socket = std::net::SocketAddr::new(ip, port).to_string();
            if !out.contains(&socket) {
                out.push(socket);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<Multiaddr> {
        addrs.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn tunnel_addrs_take_each_ip_once_with_the_tunnel_port() {
        let announced = vec![
            "/ip4/198.18.0.10/udp/7700/quic-v1".to_string(),
            "/ip4/198.18.0.10/tcp/7700".to_string(),
            "/ip6/::1/tcp/7700".to_string(),
            "/ip4/198.18.0.99/udp/7700/quic-v1/p2p/12D3KooWA/p2p-circuit".to_string(),
        ];
        assert_eq!(
            tunnel_addrs(&announced, 7701),
            vec!["198.18.0.10:7701", "[::1]:7701"]
        );
    }

    #[test]
    fn loopback_only_when_nothing_else() {
        let only_loop = set(&["/ip4/127.0.0.1/udp/1/quic-v1"]);
        assert_eq!(
            publishable(&[], &only_loop),
            vec!["/ip4/127.0.0.1/udp/1/quic-v1"]
        );
        let mixed = set(&[
            "/ip4/127.0.0.1/udp/1/quic-v1",
            "/ip4/198.18.0.5/udp/1/quic-v1",
        ]);
        assert_eq!(
            publishable(&[], &mixed),
            vec!["/ip4/198.18.0.5/udp/1/quic-v1"]
        );
        let advertised: Multiaddr = "/ip4/198.18.0.9/tcp/7700".parse().unwrap();
        assert_eq!(
            publishable(&[advertised], &mixed)[0],
            "/ip4/198.18.0.9/tcp/7700"
        );
    }
}
