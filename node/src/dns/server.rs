//! hickory-server glue: binds UDP and TCP, and answers every request authoritatively from the
//! latest [`ZoneView`] on a watch channel, so a view change shows in the very next answer.

use super::zone::{answer, Answer, ZoneView};
use crate::acme::Served;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use hickory_server::Server;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long a TCP client may stay silent before its connection is closed.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 16;
/// The largest UDP response we send, whatever the client offers: big enough for many edges,
/// small enough not to fragment (DNS flag day 2020). Larger answers are truncated and the
/// client retries over TCP.
const MAX_UDP_PAYLOAD: u16 = 1232;
/// Tries at a common port for UDP and TCP when the configured port is 0.
const PORT_ZERO_TRIES: usize = 10;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// `dns.listen` is not `address:port`.
    #[error(
        "`{addr}` is not an address:port for DNS ({reason}); set `dns.listen`, e.g. 0.0.0.0:53"
    )]
    BadListen {
        /// The configured text.
        addr: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A socket could not be bound.
    #[error("cannot listen for DNS on {addr} ({proto}): {source}; free the port, run as root for port 53, or change `dns.listen`")]
    Bind {
        /// The address.
        addr: String,
        /// `udp` or `tcp`.
        proto: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds UDP and TCP on `listen` ("addr:port"); errors name the address and say what to do
/// (free the port, run as root for 53, change dns.listen). With port 0 both sockets share
/// one free port, so a single address reaches both.
pub async fn bind(listen: &str) -> Result<(UdpSocket, TcpListener), DnsError> {
    let addr: SocketAddr = listen.trim().parse().map_err(|e| DnsError::BadListen {
        addr: listen.to_string(),
        reason: format!("{e}"),
    })?;
    let tries = if addr.port() == 0 { PORT_ZERO_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr: addr.to_string(),
                proto: "udp",
                source,
            })?;
        let bound = udp.local_addr().map_err(|source| DnsError::Bind {
            addr: addr.to_string(),
            proto: "udp",
            source,
        })?;
        match TcpListener::bind(bound).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source) => {
                last = Some(DnsError::Bind {
                    addr: bound.to_string(),
                    proto: "tcp",
                    source,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| DnsError::BadListen {
        addr: listen.to_string(),
        reason: "no attempt made".into(),
    }))
}

/// Serves until `cancel` fires, then shuts the server down.
pub async fn serve(
    udp: UdpSocket,
    tcp: TcpListener,
    zone: watch::Receiver<Arc<ZoneView>>,
    served: Served,
    cancel: CancellationToken,
) {
    let mut server = Server::new(ZoneHandler { zone, served });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
    tokio::select! {
        () = cancel.cancelled() => {
            if let Err(error) = server.shutdown_gracefully().await {
                warn!(%error, "DNS server stopped with an error");
            }
        }
        result = server.block_until_done() => {
            if let Err(error) = result {
                warn!(%error, "DNS server stopped unexpectedly");
            }
        }
    }
}

/// Answers each request from the latest view, with the ACME DNS-01 answers this edge serves
/// at that moment (so an edge acknowledges them only once it answers with them).
struct ZoneHandler {
    zone: watch::Receiver<Arc<ZoneView>>,
    served: Served,
}

#[async_trait::async_trait]
impl RequestHandler for ZoneHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut view = Arc::clone(&self.zone.borrow());
        let txt = self.served.dns01();
        if !txt.is_empty() {
            view = Arc::new(ZoneView {
                txt,
                ..(*view).clone()
            });
        }
        let reply = respond(&view, request);
        let edns = reply.edns.as_ref();
        let response = MessageResponseBuilder::new(&request.queries, edns).build(
            reply.metadata,
            reply.answer.answers.iter(),
            reply.answer.authority.iter(),
            std::iter::empty(),
            reply.answer.additional.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, src = %request.src(), "could not send a DNS response");
                let mut metadata = reply.metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// One response, before encoding.
struct Reply {
    metadata: Metadata,
    edns: Option<Edns>,
    answer: Answer,
}

/// Decides the response to `request`: the zone's answer for a well-formed query, an error
/// code otherwise. Never fails.
fn respond(view: &ZoneView, request: &Request) -> Reply {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    let mut edns = request.edns.as_ref().map(|asked| {
        let mut ours = Edns::new();
        ours.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
        ours.set_version(0);
        ours
    });
    let rcode_only = |rcode| Answer {
        rcode,
        authoritative: false,
        answers: Vec::new(),
        authority: Vec::new(),
        additional: Vec::new(),
    };
    let answer = if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        rcode_only(ResponseCode::BADVERS)
    } else if request.metadata.op_code != OpCode::Query {
        rcode_only(ResponseCode::NotImp)
    } else {
        match request.request_info() {
            Err(_) => rcode_only(ResponseCode::FormErr),
            Ok(info) => {
                let query = info.query.original();
                let transfer = matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR);
                if query.query_class() != DNSClass::IN || transfer {
                    rcode_only(ResponseCode::Refused)
                } else {
                    answer(view, query.name(), query.query_type())
                }
            }
        }
    };
    metadata.response_code = answer.rcode;
    metadata.authoritative = answer.authoritative;
    if let Some(edns) = edns.as_mut() {
        edns.set_rcode_high(answer.rcode.high());
    }
    Reply {
        metadata,
        edns,
        answer,
    }
}

#[cfg(test)]
mod tests;
