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
