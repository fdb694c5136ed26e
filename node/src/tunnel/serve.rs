//! The hosting member's side of a stream: read the edge's header, connect this node's own
//! target for that route, answer, then splice both ways. A passthrough route whose TLS ends
//! on this member goes to the [`Terminator`] instead.

use super::frame::{read_frame, write_frame};
use super::target;
use crate::ingress::Terminator;
use crate::view::{DataPlaneStatus, ViewRx};
use hearth_proto::route::{RouteSpec, RouteTls};
use hearth_proto::tunnel::{StreamHeader, StreamReply, StreamReplyV1};
use hearth_proto::NodeId;
use std::time::Duration;
use tracing::debug;

/// What serving a stream needs; shared by every stream.
#[derive(Debug)]
pub(super) struct ServeContext {
    pub(super) me: NodeId,
    pub(super) view: ViewRx,
    pub(super) connect_timeout: Duration,
    pub(super) status: DataPlaneStatus,
    /// Ends the TLS of passthrough hosts this member serves.
    pub(super) terminator: Terminator,
}

/// How long an opened stream may take to send its header.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn serve_stream(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: NodeId,
    ctx: std::sync::Arc<ServeContext>,
) {
    let header = match tokio::time::timeout(HEADER_TIMEOUT, read_frame(&mut recv)).await {
        Ok(Ok(StreamHeader::V1(header))) => header,
        Ok(Err(e)) => {
            debug!(peer = %peer.short(), error = %e, "bad stream header");
            let _ = send.reset(1u32.into());
            return;
        }
        Err(_) => {
            let _ = send.reset(1u32.into());
            return;
        }
    };
    let route = ctx
        .view
        .borrow()
        .local_route(&ctx.me, &header.spec)
        .cloned();
    let Some(route) = route else {
        let _ = write_frame(&mut send, &StreamReply::V1(StreamReplyV1::NoRoute)).await;
        let _ = send.finish();
        return;
    };
    let end = match (&header.spec, route.tls, route.proxy_protocol) {
        // A passthrough route whose TLS ends here: the terminator reaches the target per
        // request.
        (RouteSpec::Http { host }, RouteTls::Passthrough, false) => End::Terminate(host.clone()),
        _ => {
            let proxy = route.proxy_protocol.then_some((header.client, header.edge));
            match target::connect(&route.target, ctx.connect_timeout, proxy).await {
                Ok(tcp) => End::Target(tcp),
                Err(reason) => {
                    debug!(spec = %header.spec, %reason, "target unreachable");
                    let reply = StreamReply::V1(StreamReplyV1::TargetUnreachable { reason });
                    let _ = write_frame(&mut send, &reply).await;
                    let _ = send.finish();
                    return;
                }
            }
        }
    };
    if write_frame(&mut send, &StreamReply::V1(StreamReplyV1::Connected))
        .await
        .is_err()
    {
        return;
    }
    let _open = ctx.status.stream_opened();
    let mut tunnel = tokio::io::join(recv, send);
    match end {
        End::Terminate(host) => {
            ctx.terminator
                .serve_stream(tunnel, header.client, header.edge, host)
                .await
        }
        End::Target(mut tcp) => {
            if let Err(e) = tokio::io::copy_bidirectional(&mut tunnel, &mut tcp).await {
                debug!(spec = %header.spec, error = %e, "splice ended");
            }
        }
    }
}

/// Where a stream's payload goes once the member answers `Connected`.
enum End {
    /// This member terminates the passthrough host's TLS.
    Terminate(String),
    /// Spliced with this connection to the target.
    Target(tokio::net::TcpStream),
}
