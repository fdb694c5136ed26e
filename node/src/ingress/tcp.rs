//! Raw TCP routes on an edge: one listener per route port, each connection spliced to a
//! hosting member's target.

use super::idle;
use super::upstream::Upstreams;
use hearth_proto::route::RouteSpec;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Accepts connections on a TCP route's port until `cancel` fires.
pub async fn serve_port(
    listener: TcpListener,
    port: u16,
    upstreams: Upstreams,
    idle_timeout: Duration,
    cancel: CancellationToken,
) {
    let spec = RouteSpec::Tcp { port };
    super::accept_until(&listener, "TCP route", &cancel, |tcp, peer| {
        let upstreams = upstreams.clone();
        let spec = spec.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let Ok(local) = tcp.local_addr() else { return };
            let upstream = match upstreams.connect(&spec, peer, local).await {
                Ok(upstream) => upstream,
                Err(e) => {
                    debug!(%peer, port, error = %e, "TCP route unavailable");
                    return;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => {}
                result = idle::splice(tcp, upstream, idle_timeout) => {
                    if let Err(e) = result {
                        debug!(%peer, port, error = %e, "TCP route connection ended");
                    }
                }
            }
        });
    })
    .await;
}
