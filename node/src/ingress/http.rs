//! The edge's HTTP reverse proxy: hyper serves the visitor (HTTP/1.1 on `:80`, HTTP/1.1 or
//! HTTP/2 over TLS, see [`super::https`]), and a hyper HTTP/1.1 client speaks to the target
//! over the upstream (a tunnel stream or a local socket). Keep-alive, streaming bodies,
//! `Expect: 100-continue` and upgrades (WebSocket) come from hyper on both sides.
//!
//! On `:80` the proxy also answers ACME HTTP-01 challenges and sends visitors of a host that
//! has a certificate to HTTPS with a 308.
//!
//! Before anything is routed, a request must name its host exactly once (RFC 9112 §3.2: a
//! second Host line is a 400; an absolute-form target's authority wins over Host and
//! replaces it when forwarding) and use a method a reverse proxy forwards (CONNECT and
//! TRACE get 405). Every request gets a random id, sent to the target and back to the visitor
//! as `x-request-id`; the edge's own pages show it, and the log line with the details of a
//! failure carries it too. The header read timeout runs while a request head arrives, the
//! idle timeout while a kept-alive connection waits for the next one ([`HeadTimer`]).

use super::headers::{
    new_request_id, refused_method, request_target, set_forwarded, strip_hop_by_hop, upgrade_of,
    REQUEST_ID,
};
use super::idle::{Activity, HeadTimer, Watched};
use super::pages;
use super::upstream::{UpstreamError, Upstreams};
use crate::acme::Served;
use crate::view::RecentFailures;
use bytes::Bytes;
use hearth_proto::api::FailedRequestV1;
use hearth_proto::route::{RouteSpec, RouteTls};
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Bodies the proxy answers with: the target's, or a page of its own.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Where ACME HTTP-01 answers are read from.
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";
/// Most HTTP/2 streams one visitor connection may have open at once.
const MAX_H2_STREAMS: u32 = 128;
/// Most idle upstream connections one visitor connection keeps for reuse: an HTTP/2 visitor
/// opens more for a burst of concurrent streams, but keeps only a few (each holds a tunnel
/// stream and a connection to the target, and a member allows 1024 streams per tunnel).
const MAX_IDLE_UPSTREAMS: usize = 4;

/// Limits of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest request head; larger gets 431.
    pub max_head_bytes: usize,
    /// Time a visitor has to send a complete request head (and, over TLS, its handshake),
    /// counted from the connection's start for its first request and from the first byte of
    /// each later one.
    pub header_read_timeout: Duration,
    /// Time a connection may sit without traffic, e.g. kept alive between requests.
    pub idle_timeout: Duration,
    /// Where failed requests are noted for `hearthctl status`.
    pub failures: RecentFailures,
}

/// What the plain-HTTP listener knows of HTTPS: the challenge answers and certificates this
/// edge serves, and the port visitors are redirected to.
#[derive(Debug, Clone)]
pub struct Plaintext {
    /// The edge's TLS material.
    pub served: Served,
    /// The HTTPS port, while the HTTPS listener runs.
    pub https_port: Option<u16>,
}

/// How one visitor connection reached the edge.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// Plain HTTP on `:80`.
    Http(Plaintext),
    /// HTTPS, terminated here; `h2` when ALPN chose HTTP/2.
    Https {
        /// HTTP/2 (several requests at once on one connection).
        h2: bool,
        /// The one host this connection may ask for (a member terminating a passthrough
        /// host); requests for another get 421 Misdirected Request.
        only: Option<String>,
    },
}

/// Accepts plain-HTTP visitors until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    upstreams: Upstreams,
    settings: HttpSettings,
    plaintext: Plaintext,
    cancel: CancellationToken,
) {
    let settings = Arc::new(settings);
    super::accept_until(&listener, "HTTP", &cancel, |tcp, peer| {
        let scheme = Scheme::Http(plaintext.clone());
        tokio::spawn(connection(
            tcp,
            peer,
            scheme,
            upstreams.clone(),
            settings.clone(),
            cancel.clone(),
        ));
    })
    .await;
}

/// One plain-HTTP visitor connection.
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    scheme: Scheme,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let activity = Activity::default();
    let io = Watched::new(tcp, activity.clone());
    serve_visitor(
        io, peer, local, scheme, activity, upstreams, settings, cancel,
    )
    .await;
}

/// Serves one visitor connection (plain, or already decrypted) until it ends, idles out, or
/// `cancel` fires. `activity` is the watch on the visitor's socket.
#[allow(clippy::too_many_arguments)]
pub async fn serve_visitor<IO>(
    io: IO,
    peer: SocketAddr,
    local: SocketAddr,
    scheme: Scheme,
    activity: Activity,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h2 = matches!(scheme, Scheme::Https { h2: true, .. });
    let visitor = Arc::new(Visitor {
        peer,
        local,
        scheme,
        upstreams,
        idle_timeout: settings.idle_timeout,
        failures: settings.failures.clone(),
        activity: activity.clone(),
        reuse: tokio::sync::Mutex::new(Vec::new()),
    });
    let service = hyper::service::service_fn(move |request| {
        let visitor = visitor.clone();
        async move { Ok::<_, Infallible>(visitor.handle(request).await) }
    });
    let io = TokioIo::new(io);
    let idle = settings.idle_timeout;
    if h2 {
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_header_list_size(u32::try_from(settings.max_head_bytes).unwrap_or(u32::MAX))
            .serve_connection(io, service);
        drive(
            connection,
            |c| c.graceful_shutdown(),
            peer,
            &activity,
            idle,
            &cancel,
        )
        .await;
    } else {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(HeadTimer::new(activity.clone()))
            .header_read_timeout(settings.header_read_timeout)
            .max_header_size(settings.max_head_bytes)
            .serve_connection(io, service)
            .with_upgrades();
        drive(
            connection,
            |c| c.graceful_shutdown(),
            peer,
            &activity,
            idle,
            &cancel,
        )
        .await;
    }
}

/// Runs a served connection until it ends or idles out; on `cancel`, asks it to finish its
/// requests (`graceful`) and gives it 5 s.
async fn drive<C>(
    connection: C,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
    peer: SocketAddr,
    activity: &Activity,
    idle: Duration,
    cancel: &CancellationToken,
) where
    C: std::future::Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                debug!(%peer, error = %e, "visitor connection ended");
            }
        }
        _ = activity.idle(idle) => debug!(%peer, "visitor idle, closed"),
        _ = cancel.cancelled() => {
            graceful(connection.as_mut());
            let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
        }
    }
}

/// One visitor connection and the upstream connections its requests reuse.
#[derive(Debug)]
struct Visitor {
    peer: SocketAddr,
    local: SocketAddr,
    scheme: Scheme,
    upstreams: Upstreams,
    idle_timeout: Duration,
    failures: RecentFailures,
    activity: Activity,
    /// Upstream connections by host. HTTP/1.1 visitors send one request at a time, so one is
    /// enough; HTTP/2 visitors keep a few for their concurrent streams.
    reuse: tokio::sync::Mutex<Vec<(String, SendRequest<Incoming>)>>,
}

impl Visitor {
    /// Answers one request: the target's response, or a page of the edge's own; either way
    /// with the request's id in `x-request-id` (a target's own value is left as it is).
    async fn handle(&self, request: Request<Incoming>) -> Response<ProxyBody> {
        let id = new_request_id();
        let mut response = self.route(request, &id).await;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().entry(REQUEST_ID).or_insert(value);
        }
        response
    }

    async fn route(&self, mut request: Request<Incoming>, id: &str) -> Response<ProxyBody> {
        let peer = self.peer;
        if refused_method(request.method()) {
            info!(request_id = id, %peer, method = %request.method(), "refused a request: 405 method not allowed");
            return pages::method_not_allowed(id);
        }
        let (host, authority) = match request_target(&request) {
            Ok(target) => target,
            Err(bad) => {
                info!(request_id = id, %peer, reason = bad.explain(), "refused a request: 400");
                return pages::bad_request(bad.explain(), id);
            }
        };
        if let Scheme::Https {
            only: Some(only), ..
        } = &self.scheme
        {
            if host != *only {
                return pages::misdirected(&host, id);
            }
        }
        if let Scheme::Http(plaintext) = &self.scheme {
            if let Some(answer) = acme_answer(plaintext, &request) {
                return answer;
            }
        }
        let spec = RouteSpec::Http { host: host.clone() };
        let Some(tls) = self.upstreams.tls_of(&host) else {
            return pages::unknown_host(&host, id);
        };
        if let Scheme::Http(plaintext) = &self.scheme {
            if let Some(redirect) = https_redirect(plaintext, &request, &host, tls, id) {
                return redirect;
            }
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
        // RFC 9112 §3.2.2: the target's authority replaces whatever Host the visitor sent.
        if let Some(authority) = authority {
            request.headers_mut().insert(hyper::header::HOST, authority);
        }
        // The edge's id replaces one the visitor sent, like the forwarding headers below.
        if let Ok(value) = HeaderValue::from_str(id) {
            request.headers_mut().insert(REQUEST_ID, value);
        }
        // The target always hears HTTP/1.1, whatever the visitor spoke.
        *request.version_mut() = Version::HTTP_11;
        strip_hop_by_hop(request.headers_mut(), upgrade);
        let proto = match self.scheme {
            Scheme::Http(_) => "http",
            Scheme::Https { .. } => "https",
        };
        set_forwarded(request.headers_mut(), self.peer, &host, proto);

        let failed = |reason: &str| {
            warn!(request_id = id, %peer, %host, reason, "answered 502: the service did not answer");
            self.failures.record(FailedRequestV1 {
                request_id: id.to_string(),
                at_ms: crate::clock::now_ms(),
                status: StatusCode::BAD_GATEWAY.as_u16(),
                host: host.clone(),
                reason: reason.to_string(),
            });
            pages::unreachable(id)
        };
        let mut sender = match self.sender(&spec, &host).await {
            Ok(sender) => sender,
            Err(UpstreamError::NoRoute) => return pages::unknown_host(&host, id),
            Err(UpstreamError::Unreachable(reason)) => return failed(&reason),
        };
        let mut response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => return failed(&format!("the connection broke ({e})")),
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
            let mut reuse = self.reuse.lock().await;
            if reuse.len() < MAX_IDLE_UPSTREAMS {
                reuse.push((host, sender));
            }
        }
        response.map(|body| body.boxed())
    }

    /// An upstream connection for `host` that can take a request now: a kept one, or a new
    /// one. An HTTP/1.1 visitor's kept connection is waited on (its previous response may
    /// still be finishing); an HTTP/2 visitor opens another instead, so its streams run side
    /// by side.
    async fn sender(
        &self,
        spec: &RouteSpec,
        host: &str,
    ) -> Result<SendRequest<Incoming>, UpstreamError> {
        let concurrent = matches!(self.scheme, Scheme::Https { h2: true, .. });
        let kept = {
            let mut reuse = self.reuse.lock().await;
            reuse.retain(|(_, s)| !s.is_closed());
            let position = reuse
                .iter()
                .position(|(h, s)| h == host && (!concurrent || s.is_ready()));
            position.map(|i| reuse.swap_remove(i).1)
        };
        if let Some(mut sender) = kept {
            if sender.ready().await.is_ok() {
                return Ok(sender);
            }
        }
        self.open(spec).await
    }

    /// A new HTTP connection to a target of `spec`.
    async fn open(&self, spec: &RouteSpec) -> Result<SendRequest<Incoming>, UpstreamError> {
        let upstream = self.upstreams.connect(spec, self.peer, self.local).await?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(upstream))
            .await
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// The answer to an ACME HTTP-01 request this edge serves, if `request` is one.
fn acme_answer<B>(plaintext: &Plaintext, request: &Request<B>) -> Option<Response<ProxyBody>> {
    challenge_answer(&plaintext.served, request)
}

/// The answer to an ACME HTTP-01 request from `served`, if `request` is one it has.
pub fn challenge_answer<B>(served: &Served, request: &Request<B>) -> Option<Response<ProxyBody>> {
    let token = request.uri().path().strip_prefix(CHALLENGE_PATH)?;
    let answer = served.http01(token)?;
    Some(pages::plain_text(answer))
}

/// A 308 to HTTPS, for a host this edge has a CA certificate for and for every passthrough
/// host (never served in plain HTTP, so the edges see no plaintext of it), unless the route is
/// plain HTTP only or the request is an ACME challenge (a passthrough host's is forwarded to
/// its member; others are answered by the target, if not by us).
fn https_redirect<B>(
    plaintext: &Plaintext,
    request: &Request<B>,
    host: &str,
    tls: RouteTls,
    id: &str,
) -> Option<Response<ProxyBody>> {
    let port = plaintext.https_port?;
    let wanted = match tls {
        RouteTls::Passthrough => true,
        RouteTls::Edge => plaintext.served.has_cert(host),
        RouteTls::Off => false,
    };
    if !wanted || request.uri().path().starts_with(CHALLENGE_PATH) {
        return None;
    }
    let path = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let authority = if port == 443 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    Some(pages::redirect(&format!("https://{authority}{path}"), id))
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
