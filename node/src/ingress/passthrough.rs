//! The edge's part in a passthrough host: after the ClientHello named it, the bytes read so
//! far and everything after go untouched to a member hosting it (a tunnel stream, whose
//! header carries the visitor's address), and back. The edge never holds the host's key, so
//! it sees the SNI, sizes and timing, never the plaintext. When this node hosts the host
//! itself, it is the terminating member ([`super::terminate`]).

use super::hello::Hello;
use super::http::HttpSettings;
use super::https::Ends;
use super::idle::{self, Activity};
use super::terminate::Terminator;
use super::upstream::Upstreams;
use hearth_proto::route::RouteSpec;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A fatal `internal_error` alert (TLS 1.2 record): no member hosting the name answered. The
/// edge cannot say more without the key a page would need.
const INTERNAL_ERROR_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x50];

/// A passthrough visitor, as the edge saw it.
#[derive(Debug)]
pub struct Visitor {
    /// Its address.
    pub client: SocketAddr,
    /// The edge address it reached.
    pub edge: SocketAddr,
    /// The host its ClientHello named.
    pub host: String,
    /// When its handshake must be done.
    pub deadline: tokio::time::Instant,
    /// The watch on its bytes.
    pub activity: Activity,
}

/// Forwards one passthrough connection until either side ends, it idles out, or `cancel`.
pub async fn forward<IO>(
    mut io: IO,
    hello: Hello,
    visitor: Visitor,
    upstreams: &Upstreams,
    terminator: &Terminator,
    settings: &HttpSettings,
    cancel: &CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let spec = RouteSpec::Http {
        host: visitor.host.clone(),
    };
    let upstream = match upstreams
        .connect_passthrough(&spec, visitor.client, visitor.edge)
        .await
    {
        Ok(Some(upstream)) => upstream,
        Ok(None) => {
            let ends = Ends {
                client: visitor.client,
                edge: visitor.edge,
                deadline: visitor.deadline,
                activity: visitor.activity,
                only: Some(visitor.host),
            };
            return terminator.serve_hello(hello, io, ends).await;
        }
        Err(e) => {
            debug!(client = %visitor.client, host = %visitor.host, error = %e, "no member for the passthrough host");
            let _ = io.write_all(&INTERNAL_ERROR_ALERT).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    let mut upstream = upstream;
    if upstream.write_all(&hello.raw).await.is_err() {
        return;
    }
    tokio::select! {
        _ = cancel.cancelled() => {}
        result = idle::splice(io, upstream, settings.idle_timeout) => {
            if let Err(e) = result {
                debug!(client = %visitor.client, host = %visitor.host, error = %e, "passthrough connection ended");
            }
        }
    }
}
