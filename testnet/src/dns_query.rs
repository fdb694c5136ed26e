//! A one-question DNS client over UDP, so lab tests can ask an edge's DNS server what it
//! answers (`hearth-testnet probe dns`) without dig installed in the lab.

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Sends per query: the first and up to two retransmissions, spread over the timeout.
const SENDS: u32 = 3;

/// One response as lab tests check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// The response code as dig prints it: NOERROR, NXDOMAIN, REFUSED…
    pub rcode: String,
    /// Whether the AA flag is set.
    pub authoritative: bool,
    /// The answer section as (type, rdata text), e.g. `("A", "198.18.0.11")`.
    pub records: Vec<(String, String)>,
    /// The TTL of each answer record, in the same order.
    pub ttls: Vec<u32>,
}

impl DnsAnswer {
    /// The probe's output: `rcode=NOERROR aa=true answers=N`, then `A 198.18.0.11 ttl=10`
    /// per answer record.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "rcode={} aa={} answers={}",
            self.rcode,
            self.authoritative,
            self.records.len()
        )];
        for ((rtype, data), ttl) in self.records.iter().zip(&self.ttls) {
            lines.push(format!("{rtype} {data} ttl={ttl}"));
        }
        lines
    }
}

/// Asks `server` over UDP for `name` of type `rtype` (A, AAAA, NS, SOA, or any type name
/// hickory knows), resending twice within `timeout`; fails when nothing answers in time.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: &str,
    timeout: Duration,
) -> Result<DnsAnswer> {
    let rtype = RecordType::from_str(&rtype.to_ascii_uppercase()).map_err(|e| {
        anyhow::anyhow!("`{rtype}` is not a record type ({e}); use A, AAAA, NS or SOA")
    })?;
    let mut qname =
        Name::from_ascii(name).with_context(|| format!("`{name}` is not a DNS name"))?;
    qname.set_fqdn(true);
    let mut request = Message::query();
    request.add_query(Query::query(qname, rtype));
    request.metadata.recursion_desired = false;
    let bytes = request.to_vec().context("encoding the query")?;

    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()?;
    let socket = UdpSocket::bind(local).await?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    for send in 1..=SENDS {
        socket
            .send_to(&bytes, server)
            .await
            .with_context(|| format!("sending to {server}"))?;
        let resend_at = Instant::now() + timeout / SENDS;
        let wait_until = if send == SENDS {
            deadline
        } else {
            resend_at.min(deadline)
        };
        while let Ok(received) =
            tokio::time::timeout_at(wait_until, socket.recv_from(&mut buf)).await
        {
            let (n, from) = received?;
            if from != server {
                continue;
            }
            let Ok(response) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if response.metadata.id == request.metadata.id
                && response.metadata.message_type == MessageType::Response
            {
                return Ok(summarize(&response));
            }
        }
    }
    bail!("no DNS answer from {server} for {name} {rtype} within {timeout:?}")
}

fn summarize(response: &Message) -> DnsAnswer {
    let mut records = Vec::with_capacity(response.answers.len());
    let mut ttls = Vec::with_capacity(response.answers.len());
    for record in &response.answers {
        let mut data = String::new();
        // Some record types have no text form; writing one fails instead of panicking.
        if write!(data, "{}", record.data).is_err() {
            data = "?".into();
        }
        records.push((record.record_type().to_string(), data));
        ttls.push(record.ttl);
    }
    DnsAnswer {
        rcode: rcode_name(response.metadata.response_code),
        authoritative: response.metadata.authoritative,
        records,
        ttls,
    }
}

/// The mnemonic dig prints (hickory's own Display is prose, e.g. "Query Refused").
fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NoError => "NOERROR".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => format!("RCODE{}", u16::from(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_node::dns::{bind, serve, EdgeNs, ZoneView};
    use std::sync::Arc;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    const WAIT: Duration = Duration::from_secs(5);

    async fn server() -> (SocketAddr, CancellationToken) {
        let view = ZoneView {
            zone: "hearth.test".into(),
            ttl: 10,
            serial: 3,
            edges: vec![EdgeNs {
                name: "vps".into(),
                ips: vec!["127.0.0.11".parse().unwrap()],
            }],
            hosts: ["blog.hearth.test".to_string()].into(),
        };
        let (udp, tcp) = bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        let (_keep, rx) = watch::channel(Arc::new(view));
        let cancel = CancellationToken::new();
        tokio::spawn(serve(udp, tcp, rx, cancel.clone()));
        (addr, cancel)
    }

    #[tokio::test]
    async fn asks_the_node_server() {
        let (addr, cancel) = server().await;
        let a = query(addr, "Blog.hearth.test", "a", WAIT).await.unwrap();
        assert_eq!(
            a.lines(),
            ["rcode=NOERROR aa=true answers=1", "A 127.0.0.11 ttl=10"]
        );
        let ns = query(addr, "hearth.test.", "NS", WAIT).await.unwrap();
        assert_eq!(ns.records, [("NS".into(), "ns-vps.hearth.test.".into())]);
        let soa = query(addr, "hearth.test", "SOA", WAIT).await.unwrap();
        assert!(soa.records[0]
            .1
            .starts_with("ns-vps.hearth.test. hostmaster.hearth.test. 3"));
        let nx = query(addr, "nope.hearth.test", "AAAA", WAIT).await.unwrap();
        assert_eq!(nx.lines(), ["rcode=NXDOMAIN aa=true answers=0"]);
        let refused = query(addr, "example.org", "A", WAIT).await.unwrap();
        assert_eq!(
            (refused.rcode.as_str(), refused.authoritative),
            ("REFUSED", false)
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn silence_is_an_error() {
        let quiet = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = quiet.local_addr().unwrap();
        let error = query(addr, "blog.hearth.test", "A", Duration::from_millis(150))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("no DNS answer"), "{error}");
        assert!(query(addr, "x", "BOGUS", WAIT).await.is_err());
    }
}
