//! The edge's HTTPS listener: reads the ClientHello ([`super::hello`], with a deadline and a
//! size cap), then forwards a passthrough host's bytes untouched to a member hosting it
//! ([`super::passthrough`]), answers an ACME TLS-ALPN-01 check, refuses a name nobody
//! publishes with the TLS alert `unrecognized_name`, or completes the handshake with the
//! host's certificate (the CA's, or a self-signed stand-in until there is one) and serves
//! HTTP/2 or HTTP/1.1 as ALPN chose, through the same proxy as plain HTTP.
//!
//! [`terminate`] is that last step on its own, which a member terminating a passthrough host
//! runs too.

use super::hello::{read_client_hello, Hello};
use super::http::{serve_visitor, HttpSettings, Scheme};
use super::idle::{Activity, Watched};
use super::passthrough;
use super::terminate::Terminator;
use super::upstream::Upstreams;
use crate::acme::{ChallengeResolver, ServeResolver, Served};
use hearth_proto::route::RouteTls;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::StartHandshake;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// ALPN of ACME TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A fatal `unrecognized_name` alert (RFC 6066 §3) in a TLS 1.2 record: what a visitor gets
/// for a name no member publishes, instead of a certificate for a name it did not ask for.
pub const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

/// Why the TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot configure TLS for HTTPS ingress: {0}")]
pub struct TlsConfigError(#[from] rustls::Error);

/// The two rustls configurations an edge serves with: visitors (h2, http/1.1) and ACME
/// validation (acme-tls/1). Built once; certificates are resolved per handshake from
/// [`Served`], so new certificates need no rebuild.
#[derive(Debug, Clone)]
pub struct EdgeTls {
    visitors: Arc<ServerConfig>,
    challenges: Arc<ServerConfig>,
    served: Served,
}

impl EdgeTls {
    /// Configurations over `served`: TLS 1.3 and 1.2, rustls' AEAD-only suites in the
    /// server's order of preference (see [`preference`]).
    pub fn new(served: Served) -> Result<Self, TlsConfigError> {
        let build = |resolver: Arc<dyn rustls::server::ResolvesServerCert>,
                     alpn: Vec<Vec<u8>>|
         -> Result<Arc<ServerConfig>, TlsConfigError> {
            let mut provider = rustls::crypto::ring::default_provider();
            provider
                .cipher_suites
                .sort_by_key(|suite| preference(suite.suite()));
            let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
                .with_no_client_auth()
                .with_cert_resolver(resolver);
            config.ignore_client_order = true;
            config.alpn_protocols = alpn;
            Ok(Arc::new(config))
        };
        Ok(Self {
            visitors: build(
                Arc::new(ServeResolver(served.clone())),
                vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            )?,
            challenges: build(
                Arc::new(ChallengeResolver(served.clone())),
                vec![ACME_TLS_ALPN.to_vec()],
            )?,
            served,
        })
    }
}

/// The server's order of cipher suites: AES-128-GCM first (SHA-256 has hardware help where
/// AES does, SHA-384 often not: measured 6 % of an edge's CPU in SHA-512 blocks when OpenSSL
/// clients got AES-256-GCM), then ChaCha20-Poly1305 (fast without AES hardware), then
/// AES-256-GCM. Every suite offered is an AEAD with forward secrecy.
fn preference(suite: rustls::CipherSuite) -> u8 {
    use rustls::CipherSuite::*;
    match suite {
        TLS13_AES_128_GCM_SHA256
        | TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        TLS13_CHACHA20_POLY1305_SHA256
        | TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => 1,
        _ => 2,
    }
}

impl EdgeTls {
    /// The certificates and answers it serves.
    pub fn served(&self) -> Served {
        self.served.clone()
    }
}

/// Accepts HTTPS visitors until `cancel` fires. `terminator` serves the passthrough hosts
/// this node hosts itself.
pub async fn serve(
    listener: TcpListener,
    upstreams: Upstreams,
    settings: HttpSettings,
    tls: EdgeTls,
    terminator: Terminator,
    cancel: CancellationToken,
) {
    let settings = Arc::new(settings);
    super::accept_until(&listener, "HTTPS", &cancel, |tcp, peer| {
        tokio::spawn(connection(
            tcp,
            peer,
            upstreams.clone(),
            settings.clone(),
            tls.clone(),
            terminator.clone(),
            cancel.clone(),
        ));
    })
    .await;
}

/// What a ClientHello gets.
enum Answer {
    /// A passthrough host: its bytes go to a member hosting it.
    Passthrough(String),
    /// A host the edges terminate, or an ACME validation handshake for a name with a
    /// TLS-ALPN-01 answer: the handshake completes here ([`terminate`] picks which).
    Terminate,
    /// Nothing here for that name.
    Refuse,
}

fn choose(tls: &EdgeTls, upstreams: &Upstreams, name: Option<&str>, acme: bool) -> Answer {
    let Some(name) = name else {
        return Answer::Refuse;
    };
    match upstreams.tls_of(name) {
        // A passthrough host's validations end on its members, like everything else for it.
        Some(RouteTls::Passthrough) => Answer::Passthrough(name.to_string()),
        _ if acme && tls.served.alpn01(name).is_some() => Answer::Terminate,
        Some(RouteTls::Edge) if !acme => Answer::Terminate,
        _ => Answer::Refuse,
    }
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    tls: EdgeTls,
    terminator: Terminator,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let activity = Activity::default();
    let mut io = Watched::new(tcp, activity.clone());
    // One deadline for the whole handshake, ClientHello included (slow handshakes are
    // slowloris too).
    let deadline = tokio::time::Instant::now() + settings.header_read_timeout;
    let hello = match read_client_hello(&mut io, Vec::new(), deadline).await {
        Ok(hello) => hello,
        Err(e) => return debug!(%peer, error = %e, "TLS ClientHello refused"),
    };
    let name = hello.server_name();
    let acme = hello.offers(ACME_TLS_ALPN);
    match choose(&tls, &upstreams, name.as_deref(), acme) {
        Answer::Passthrough(host) => {
            let visitor = passthrough::Visitor {
                client: peer,
                edge: local,
                host,
                deadline,
                activity,
            };
            passthrough::forward(
                io,
                hello,
                visitor,
                &upstreams,
                &terminator,
                &settings,
                &cancel,
            )
            .await
        }
        Answer::Refuse => {
            debug!(%peer, name = ?name, "TLS for a name nobody publishes: unrecognized_name");
            refuse(io).await;
        }
        Answer::Terminate => {
            let ends = Ends {
                client: peer,
                edge: local,
                deadline,
                activity,
                only: None,
            };
            terminate(&tls, hello, io, ends, upstreams, settings, cancel).await
        }
    }
}

/// Sends the fatal `unrecognized_name` alert and closes.
pub async fn refuse<IO: AsyncWrite + Unpin>(mut io: IO) {
    let _ = io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
    let _ = io.shutdown().await;
}

/// Who a terminated connection is between, and its limits.
#[derive(Debug, Clone)]
pub struct Ends {
    /// The visitor, as the edge saw it.
    pub client: SocketAddr,
    /// The edge address it reached.
    pub edge: SocketAddr,
    /// When the handshake must be done.
    pub deadline: tokio::time::Instant,
    /// The watch on the visitor's bytes, for the idle timeout.
    pub activity: Activity,
    /// When set, the only host requests may name (a member terminating one passthrough
    /// host); others get 421.
    pub only: Option<String>,
}

/// Completes the handshake `hello` began with `tls`' certificates (or its TLS-ALPN-01 answer)
/// and serves the visitor's requests through `upstreams`.
pub async fn terminate<IO>(
    tls: &EdgeTls,
    hello: Hello,
    io: IO,
    ends: Ends,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    cancel: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = ends.client;
    let acme = hello.offers(ACME_TLS_ALPN);
    let name = hello.server_name();
    let config = match (acme, name.as_deref()) {
        (true, Some(name)) if tls.served.alpn01(name).is_some() => tls.challenges.clone(),
        (true, _) => {
            debug!(%peer, name = ?name, "TLS-ALPN-01 handshake for a name without an answer");
            return refuse(io).await;
        }
        (false, _) => tls.visitors.clone(),
    };
    let start = StartHandshake::from_parts(hello.accepted, io);
    let stream = match tokio::time::timeout_at(ends.deadline, start.into_stream(config)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return debug!(%peer, "TLS handshake not finished in time"),
    };
    if acme {
        // RFC 8737: the validation is the handshake; nothing is spoken after it.
        let mut stream = stream;
        let _ = stream.shutdown().await;
        return;
    }
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    serve_visitor(
        stream,
        peer,
        ends.edge,
        Scheme::Https {
            h2,
            only: ends.only,
        },
        ends.activity,
        upstreams,
        settings,
        cancel,
    )
    .await;
}
