//! The hosting member's end of a passthrough host. The visitor's TLS arrives untouched
//! through an edge (a tunnel stream, or the edge's own socket when the edge hosts the host)
//! and ends here, with the certificate this member obtained and holds; the decrypted requests
//! go to this member's own target through the same proxy as at the edges, with the visitor's
//! address (from the stream header) in X-Forwarded-For and Forwarded.
//!
//! ACME validations for the name end here too: TLS-ALPN-01 handshakes come like any other,
//! and HTTP-01 requests the edges forward from `:80` arrive as plain HTTP (a stream whose first
//! byte is not a TLS handshake record); only challenge answers are served that way.

use super::hello::{read_client_hello, Hello, Prefixed};
use super::http::{challenge_answer, HttpSettings};
use super::https::{refuse, terminate, EdgeTls, Ends};
use super::idle::{Activity, Watched};
use super::pages;
use super::upstream::Upstreams;
use crate::view::ViewRx;
use hearth_proto::NodeId;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The first byte of a TLS handshake record (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;

/// Terminates passthrough hosts on this member; cheap to clone.
#[derive(Debug, Clone)]
pub struct Terminator {
    tls: EdgeTls,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    cancel: CancellationToken,
}

impl Terminator {
    /// The terminator of node `me`, serving `tls`' certificates and answers, reaching only
    /// this node's targets.
    pub fn new(
        me: NodeId,
        view: ViewRx,
        tls: EdgeTls,
        settings: HttpSettings,
        connect_timeout: Duration,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            tls,
            upstreams: Upstreams::local_only(me, view, connect_timeout),
            settings: Arc::new(settings),
            cancel,
        }
    }

    /// Serves a stream an edge opened for passthrough `host`, from `client` via `edge`.
    pub async fn serve_stream<IO>(&self, io: IO, client: SocketAddr, edge: SocketAddr, host: String)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let activity = Activity::default();
        let mut io = Watched::new(io, activity.clone());
        let deadline = tokio::time::Instant::now() + self.settings.header_read_timeout;
        let mut first = vec![0u8; 4096];
        let n = match tokio::time::timeout_at(deadline, io.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        first.truncate(n);
        if first[0] != TLS_HANDSHAKE {
            return self.serve_challenge(Prefixed::new(first, io)).await;
        }
        let hello = match read_client_hello(&mut io, first, deadline).await {
            Ok(hello) => hello,
            Err(e) => return debug!(%client, %host, error = %e, "passthrough ClientHello refused"),
        };
        if hello.server_name().as_deref() != Some(host.as_str()) {
            debug!(%client, %host, name = ?hello.server_name(), "passthrough stream for another name");
            return refuse(io).await;
        }
        let ends = Ends {
            client,
            edge,
            deadline,
            activity,
            only: Some(host),
        };
        self.serve_hello(hello, io, ends).await;
    }

    /// Completes a handshake whose ClientHello was read (by the edge, when this node is it).
    pub async fn serve_hello<IO>(&self, hello: Hello, io: IO, ends: Ends)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        terminate(
            &self.tls,
            hello,
            io,
            ends,
            self.upstreams.clone(),
            self.settings.clone(),
            self.cancel.clone(),
        )
        .await;
    }

    /// Answers one forwarded HTTP-01 request (and nothing else) from this node's answers.
    async fn serve_challenge<IO>(&self, io: IO)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let served = self.tls.served();
        let service = hyper::service::service_fn(move |request| {
            let answer = challenge_answer(&served, &request)
                .unwrap_or_else(|| pages::not_found(&super::headers::new_request_id()));
            async move { Ok::<_, Infallible>(answer) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.settings.header_read_timeout)
            .max_header_size(self.settings.max_head_bytes)
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), service);
        let limit = self.settings.header_read_timeout + self.settings.idle_timeout;
        if let Ok(Err(e)) = tokio::time::timeout(limit, connection).await {
            debug!(error = %e, "forwarded ACME request failed");
        }
    }
}
