//! The ingress actor: serves HTTP, TCP routes and DNS while the election makes this node an
//! edge, and closes them when it stops being one.

use super::http::{self, HttpSettings, Plaintext};
use super::https::{self, EdgeTls};
use super::tcp;
use super::terminate::Terminator;
use super::upstream::Upstreams;
use super::{bind_http, bind_listener, IngressError};
use crate::dns::{self, EdgeNs, ZoneView};
use crate::view::{DataPlaneStatus, MeshView, ViewRx};
use hearth_proto::NodeId;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

/// A port that could not be bound (HTTP, DNS or a TCP route) is tried again after this.
const BIND_RETRY: Duration = Duration::from_secs(5);
/// How often the actor re-checks without a view change (retries of failed binds).
const RECHECK: Duration = Duration::from_secs(1);

/// What the ingress needs from the config.
#[derive(Debug, Clone)]
pub struct IngressSettings {
    /// HTTP listener address (`ingress.http_listen`).
    pub http_listen: String,
    /// HTTPS listener address (`ingress.https_listen`).
    pub https_listen: String,
    /// HTTP limits.
    pub http: HttpSettings,
    /// Address TCP route ports are bound on.
    pub tcp_bind: IpAddr,
    /// The authoritative DNS server, when `dns.zone` is set.
    pub dns: Option<DnsSettings>,
}

/// `[dns]` as the ingress uses it.
#[derive(Debug, Clone)]
pub struct DnsSettings {
    /// The zone, lowercase, without a trailing dot.
    pub zone: String,
    /// UDP and TCP address.
    pub listen: String,
    /// TTL of every answer.
    pub ttl: u32,
}

/// What runs while this node is an edge.
#[derive(Debug)]
struct Serving {
    token: CancellationToken,
    zone: Option<watch::Sender<Arc<ZoneView>>>,
}

/// The ingress actor of a node that may become an edge.
#[derive(Debug)]
pub struct IngressActor {
    me: NodeId,
    settings: IngressSettings,
    upstreams: Upstreams,
    tls: EdgeTls,
    terminator: Terminator,
    view: ViewRx,
    status: DataPlaneStatus,
    serving: Option<Serving>,
    retry_at: Option<Instant>,
    ports: BTreeMap<u16, CancellationToken>,
    failed: BTreeMap<u16, Instant>,
}

impl IngressActor {
    /// An actor for node `me`; it binds nothing until the node is elected. `terminator`
    /// serves the passthrough hosts this node hosts itself.
    pub fn new(
        me: NodeId,
        settings: IngressSettings,
        upstreams: Upstreams,
        tls: EdgeTls,
        terminator: Terminator,
        view: ViewRx,
        status: DataPlaneStatus,
    ) -> Self {
        Self {
            me,
            settings,
            upstreams,
            tls,
            terminator,
            view,
            status,
            serving: None,
            retry_at: None,
            ports: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("ingress", node = %self.me.short());
        async move {
            let mut recheck = tokio::time::interval(RECHECK);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = self.view.changed() => {
                        if changed.is_err() { break; }
                        self.reconcile(&cancel).await;
                    }
                    _ = recheck.tick() => self.reconcile(&cancel).await,
                }
            }
            self.stop();
            info!("ingress stopped");
        }
        .instrument(span)
        .await
    }

    /// Starts or stops serving to match the election, and keeps the DNS zone and the TCP
    /// route ports current while serving.
    async fn reconcile(&mut self, cancel: &CancellationToken) {
        let view = self.view.borrow().clone();
        let edge = view.is_edge(&self.me);
        if edge && self.serving.is_none() && self.retry_at.is_none_or(|t| t <= Instant::now()) {
            if let Err(e) = self.start(&view, cancel).await {
                warn!(error = %e, "elected as an edge but cannot serve; retrying");
                self.status
                    .update(|s| s.ingress_error = Some(e.to_string()));
                self.retry_at = Some(Instant::now() + BIND_RETRY);
            }
        }
        if !edge && self.serving.is_some() {
            self.stop();
        }
        let wanted = match &self.serving {
            Some(serving) => {
                if let (Some(zone), Some(dns)) = (&serving.zone, &self.settings.dns) {
                    let next = zone_view(&view, dns, 0);
                    zone.send_if_modified(|current| {
                        if (ZoneView {
                            serial: 0,
                            ..(**current).clone()
                        }) == next
                        {
                            return false;
                        }
                        *current = Arc::new(ZoneView {
                            serial: next_serial(current.serial),
                            ..next
                        });
                        true
                    });
                }
                view.tcp_ports()
            }
            None => BTreeSet::new(),
        };
        self.reconcile_ports(wanted, cancel).await;
    }

    /// Binds HTTP, HTTPS (and DNS) and starts serving; binds all before serving any, so a
    /// failure leaves nothing half started.
    async fn start(
        &mut self,
        view: &MeshView,
        cancel: &CancellationToken,
    ) -> Result<(), IngressError> {
        let http = bind_http(&self.settings.http_listen).await?;
        let https_listener =
            bind_listener("HTTPS", "ingress.https_listen", &self.settings.https_listen).await?;
        let dns_sockets = match &self.settings.dns {
            Some(dns) => Some(dns::bind(&dns.listen).await?),
            None => None,
        };
        let token = cancel.child_token();
        let http_addr = http.local_addr().ok().map(|a| a.to_string());
        let https_addr = https_listener.local_addr().ok();
        let plaintext = Plaintext {
            served: self.tls.served(),
            https_port: https_addr.map(|a| a.port()),
        };
        tokio::spawn(
            http::serve(
                http,
                self.upstreams.clone(),
                self.settings.http.clone(),
                plaintext,
                token.clone(),
            )
            .in_current_span(),
        );
        tokio::spawn(
            https::serve(
                https_listener,
                self.upstreams.clone(),
                self.settings.http.clone(),
                self.tls.clone(),
                self.terminator.clone(),
                token.clone(),
            )
            .in_current_span(),
        );
        let mut dns_addr = None;
        let zone = match (dns_sockets, &self.settings.dns) {
            (Some((udp, tcp)), Some(dns)) => {
                dns_addr = udp.local_addr().ok().map(|a| a.to_string());
                let first = zone_view(view, dns, next_serial(0));
                let (tx, rx) = watch::channel(Arc::new(first));
                tokio::spawn(
                    dns::serve(udp, tcp, rx, self.tls.served(), token.clone()).in_current_span(),
                );
                Some(tx)
            }
            _ => None,
        };
        info!(http = ?http_addr, https = ?https_addr, dns = ?dns_addr, "elected: serving as an edge");
        self.status.update(|s| {
            s.http_listen = http_addr;
            s.https_listen = https_addr.map(|a| a.to_string());
            s.dns_listen = dns_addr;
            s.ingress_error = None;
        });
        self.retry_at = None;
        self.serving = Some(Serving { token, zone });
        Ok(())
    }

    /// Stops serving HTTP and DNS (route ports are closed by the next reconcile).
    fn stop(&mut self) {
        if let Some(serving) = self.serving.take() {
            info!("no longer an edge: closing ingress");
            serving.token.cancel();
            self.status.update(|s| {
                s.http_listen = None;
                s.https_listen = None;
                s.dns_listen = None;
            });
        }
    }

    /// Opens a listener for every wanted TCP route port and closes the others.
    async fn reconcile_ports(&mut self, wanted: BTreeSet<u16>, cancel: &CancellationToken) {
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
            match TcpListener::bind(SocketAddr::new(self.settings.tcp_bind, port)).await {
                Ok(listener) => {
                    info!(port, "TCP route listening");
                    self.failed.remove(&port);
                    let token = cancel.child_token();
                    tokio::spawn(
                        tcp::serve_port(
                            listener,
                            port,
                            self.upstreams.clone(),
                            self.settings.http.idle_timeout,
                            token.clone(),
                        )
                        .in_current_span(),
                    );
                    self.ports.insert(port, token);
                }
                Err(e) => {
                    warn!(port, error = %e, "cannot listen for a TCP route; retrying");
                    self.failed.insert(port, now + BIND_RETRY);
                }
            }
        }
        let ports: Vec<u16> = self.ports.keys().copied().collect();
        self.status.update(|s| s.tcp_ports = ports);
    }
}

/// The zone as DNS answers it: the live edges (most senior first) and the published hosts.
fn zone_view(view: &MeshView, dns: &DnsSettings, serial: u32) -> ZoneView {
    ZoneView {
        zone: dns.zone.clone(),
        ttl: dns.ttl,
        serial,
        edges: view
            .edges_by_rank()
            .into_iter()
            .map(|(_, edge)| EdgeNs {
                name: edge.name.clone(),
                ips: edge.ips.clone(),
            })
            .collect(),
        hosts: view.http_hosts(),
        txt: Default::default(),
    }
}

/// A zone serial that grows with every change: the current Unix time in seconds, or one
/// more than the last serial if that is not later.
fn next_serial(previous: u32) -> u32 {
    let now = u32::try_from(crate::clock::now_ms() / 1000).unwrap_or(u32::MAX);
    now.max(previous.saturating_add(1))
}
