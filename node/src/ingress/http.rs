//! The edge's HTTP/1.1 reverse proxy: hyper serves the visitor, and a hyper client speaks to
//! the target over the upstream (a tunnel stream or a local socket). Keep-alive, streaming
//! bodies, `Expect: 100-continue` and upgrades (WebSocket) come from hyper on both sides.

use super::headers::{request_host, set_forwarded, strip_hop_by_hop, upgrade_of};
use super::idle::{Activity, Watched};
use super::pages;
use super::upstream::{UpstreamError, Upstreams};
use bytes::Bytes;
use hearth_proto::route::RouteSpec;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Bodies the proxy answers with: the target's, or a page of its own.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Limits of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request head; larger gets 431.
    pub max_head_bytes: usize,
    /// Time a visitor has to send a complete request head.
    pub header_read_timeout: Duration,
    /// Time a connection may sit without traffic.
    pub idle_timeout: Duration,
}

/// Accepts visitors until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    upstreams: Upstreams,
    settings: HttpSettings,
    cancel: CancellationToken,
) {
    let settings = Arc::new(settings);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    tokio::spawn(connection(tcp, peer, upstreams.clone(), settings.clone(), cancel.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One visitor connection and the upstream its requests reuse.
#[derive(Debug)]
struct Visitor {
    peer: SocketAddr,
    local: SocketAddr,
    upstreams: Upstreams,
    idle_timeout: Duration,
    activity: Activity,
    reuse: tokio::sync::Mutex<Option<(String, SendRequest<Incoming>)>>,
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let activity = Activity::default();
    let visitor = Arc::new(Visitor {
        peer,
        local,
        upstreams,
        idle_timeout: settings.idle_timeout,
        activity: activity.clone(),
        reuse: tokio::sync::Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |request| {
        let visitor = visitor.clone();
        async move { Ok::<_, Infallible>(visitor.handle(request).await) }
    });
    let io = TokioIo::new(Watched::new(tcp, activity.clone()));
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_header_size(settings.max_head_bytes)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, error = %e, "visitor connection ended");
            }
        }
        _ = activity.idle(settings.idle_timeout) => debug!(%peer, "visitor idle, closed"),
        _ = cancel.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

impl Visitor {
    async fn handle(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        let Some(host) = request_host(&request) else {
            return pages::no_host();
        };
        let spec = RouteSpec::Http { host: host.clone() };
        if !self.upstreams.has_route(&spec) {
            return pages::unknown_host(&host);
        }
        let upgrade = upgrade_of(request.headers());
        let visitor_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        if request.uri().scheme().is_some() {
            let origin = request
                .uri()
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            if let Ok(uri) = origin.parse::<Uri>() {
                *request.uri_mut() = uri;
            }
        }
        if !request.headers().contains_key(hyper::header::HOST) {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&host) {
                request.headers_mut().insert(hyper::header::HOST, value);
            }
        }
        strip_hop_by_hop(request.headers_mut(), upgrade);
        set_forwarded(request.headers_mut(), self.peer, &host, "http");

        let mut reuse = self.reuse.lock().await;
        let mut sender = match reuse.take() {
            Some((reused_host, sender)) if reused_host == host && !sender.is_closed() => sender,
            _ => match self.open(&spec, &host).await {
                Ok(sender) => sender,
                Err(page) => return page,
            },
        };
        if sender.ready().await.is_err() {
            sender = match self.open(&spec, &host).await {
                Ok(sender) => sender,
                Err(page) => return page,
            };
        }
        let mut response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => return pages::unreachable(&host, &format!("the connection broke ({e})")),
        };
        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(visitor_upgrade) = visitor_upgrade {
                let target_upgrade = hyper::upgrade::on(&mut response);
                tokio::spawn(splice_upgrade(
                    visitor_upgrade,
                    target_upgrade,
                    self.activity.clone(),
                    self.idle_timeout,
                ));
            }
        } else {
            strip_hop_by_hop(response.headers_mut(), None);
            *reuse = Some((host, sender));
        }
        response.map(|body| body.boxed())
    }

    /// A new HTTP connection to a target of `spec`, or the page to answer instead.
    async fn open(
        &self,
        spec: &RouteSpec,
        host: &str,
    ) -> Result<SendRequest<Incoming>, Response<ProxyBody>> {
        let upstream = self
            .upstreams
            .connect(spec, self.peer, self.local)
            .await
            .map_err(|e| match e {
                UpstreamError::NoRoute => pages::unknown_host(host),
                UpstreamError::Unreachable(reason) => pages::unreachable(host, &reason),
            })?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(upstream))
            .await
            .map_err(|e| pages::unreachable(host, &e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// Splices an upgraded visitor connection with the upgraded target connection.
async fn splice_upgrade(
    visitor: hyper::upgrade::OnUpgrade,
    target: hyper::upgrade::OnUpgrade,
    activity: Activity,
    idle_timeout: Duration,
) {
    let (Ok(visitor), Ok(target)) = tokio::join!(visitor, target) else {
        return;
    };
    let mut visitor = TokioIo::new(visitor);
    let mut target = TokioIo::new(target);
    // The visitor's socket is still watched underneath the upgrade.
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut visitor, &mut target) => {
            if let Err(e) = result {
                debug!(error = %e, "upgraded connection ended");
            }
        }
        _ = activity.idle(idle_timeout) => debug!("upgraded connection idle, closed"),
    }
}
