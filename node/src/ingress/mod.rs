//! Edge ingress: the HTTP reverse proxy and the raw TCP route listeners, fed by the
//! [`crate::view::MeshView`] and reaching hosting members through [`crate::tunnel::Tunnels`].
//!
//! [`IngressActor`] runs only on edges. It serves HTTP on one listener bound at start-up, and
//! keeps one listener per TCP route port, opening and closing them as routes come and go.

mod headers;
pub mod http;
pub mod idle;
mod pages;
mod tcp;
pub mod upstream;

pub use http::HttpSettings;
pub use upstream::Upstreams;

use crate::view::{DataPlaneStatus, ViewRx};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

/// Why ingress could not start.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// The HTTP listener could not be bound.
    #[error("cannot listen for HTTP on {addr}: {source}; change `ingress.http_listen`, free the port, or run as root for ports below 1024")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the HTTP listener, so a taken port stops the node at start with a clear message.
pub async fn bind_http(addr: &str) -> Result<TcpListener, IngressError> {
    let bind_error = |source| IngressError::Bind {
        addr: addr.to_string(),
        source,
    };
    let parsed = crate::addrs::socket_addr(addr).map_err(bind_error)?;
    TcpListener::bind(parsed).await.map_err(bind_error)
}

/// A TCP route port that could not be bound, tried again later.
const TCP_BIND_RETRY: Duration = Duration::from_secs(5);

/// The ingress actor of an edge.
#[derive(Debug)]
pub struct IngressActor {
    http: Option<TcpListener>,
    http_settings: HttpSettings,
    tcp_bind: IpAddr,
    upstreams: Upstreams,
    view: ViewRx,
    status: DataPlaneStatus,
    ports: BTreeMap<u16, CancellationToken>,
    failed: BTreeMap<u16, Instant>,
}

impl IngressActor {
    /// An actor serving HTTP on `http` and TCP routes on `tcp_bind`.
    pub fn new(
        http: TcpListener,
        http_settings: HttpSettings,
        tcp_bind: IpAddr,
        upstreams: Upstreams,
        view: ViewRx,
        status: DataPlaneStatus,
    ) -> Self {
        let bound = http.local_addr().ok().map(|a| a.to_string());
        status.update(|s| s.http_listen = bound);
        Self {
            http: Some(http),
            http_settings,
            tcp_bind,
            upstreams,
            view,
            status,
            ports: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("ingress");
        async move {
            if let Some(http) = self.http.take() {
                info!(http = ?http.local_addr().ok(), "ingress started");
                tokio::spawn(
                    http::serve(
                        http,
                        self.upstreams.clone(),
                        self.http_settings.clone(),
                        cancel.clone(),
                    )
                    .in_current_span(),
                );
            }
            let mut retry = tokio::time::interval(TCP_BIND_RETRY);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = self.view.changed() => {
                        if changed.is_err() { break; }
                        self.reconcile(&cancel).await;
                    }
                    _ = retry.tick() => self.reconcile(&cancel).await,
                }
            }
            info!("ingress stopped");
        }
        .instrument(span)
        .await
    }

    /// Opens a listener for every TCP route port and closes those no longer routed.
    async fn reconcile(&mut self, cancel: &CancellationToken) {
        let wanted = self.view.borrow().tcp_ports();
        self.ports.retain(|port, token| {
            let keep = wanted.contains(port);
            if !keep {
                info!(port, "TCP route closed");
                token.cancel();
            }
            keep
        });
        self.failed.retain(|port, _| wanted.contains(port));
        let now = Instant::now();
        for port in wanted {
            if self.ports.contains_key(&port) || self.failed.get(&port).is_some_and(|t| *t > now) {
                continue;
            }
            match TcpListener::bind(SocketAddr::new(self.tcp_bind, port)).await {
                Ok(listener) => {
                    info!(port, "TCP route listening");
                    self.failed.remove(&port);
                    let token = cancel.child_token();
                    tokio::spawn(
                        tcp::serve_port(
                            listener,
                            port,
                            self.upstreams.clone(),
                            self.http_settings.idle_timeout,
                            token.clone(),
                        )
                        .in_current_span(),
                    );
                    self.ports.insert(port, token);
                }
                Err(e) => {
                    warn!(port, error = %e, "cannot listen for a TCP route; retrying");
                    self.failed.insert(port, now + TCP_BIND_RETRY);
                }
            }
        }
        let ports: Vec<u16> = self.ports.keys().copied().collect();
        self.status.update(|s| s.tcp_ports = ports);
    }
}
