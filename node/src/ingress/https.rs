//! The edge's HTTPS listener: reads the ClientHello (rustls' acceptor, with a deadline), then
//! answers an ACME TLS-ALPN-01 check, refuses a name nobody publishes with the TLS alert
//! `unrecognized_name`, or completes the handshake with the host's certificate (the CA's, or
//! a self-signed stand-in until there is one) and serves HTTP/2 or HTTP/1.1 as ALPN chose,
//! through the same proxy as plain HTTP.

use super::http::{serve_visitor, HttpSettings, Scheme};
use super::idle::{Activity, Watched};
use super::upstream::Upstreams;
use crate::acme::{ChallengeResolver, ServeResolver, Served};
use hearth_proto::route::RouteTls;
use rustls::server::Acceptor;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// ALPN of ACME TLS-ALPN-01 validation handshakes (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// A fatal `unrecognized_name` alert (RFC 6066 §3) in a TLS 1.2 record: what a visitor gets
/// for a name no member publishes, instead of a certificate for a name it did not ask for.
const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70];

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

/// Accepts HTTPS visitors until `cancel` fires.
pub async fn serve(
    listener: TcpListener,
    upstreams: Upstreams,
    settings: HttpSettings,
    tls: EdgeTls,
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
            cancel.clone(),
        ));
    })
    .await;
}

/// What a ClientHello gets.
enum Answer {
    /// A published host: the visitor configuration.
    Visitor,
    /// An ACME validation handshake for a name with a TLS-ALPN-01 answer.
    Challenge,
    /// Nothing here for that name.
    Refuse,
}

fn choose(tls: &EdgeTls, upstreams: &Upstreams, name: Option<&str>, acme: bool) -> Answer {
    let Some(name) = name else {
        return Answer::Refuse;
    };
    if acme {
        return match tls.served.alpn01(name) {
            Some(_) => Answer::Challenge,
            None => Answer::Refuse,
        };
    }
    match upstreams.tls_of(name) {
        Some(RouteTls::Edge) => Answer::Visitor,
        _ => Answer::Refuse,
    }
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    upstreams: Upstreams,
    settings: Arc<HttpSettings>,
    tls: EdgeTls,
    cancel: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    let Ok(local) = tcp.local_addr() else { return };
    let activity = Activity::default();
    let io = Watched::new(tcp, activity.clone());
    // One deadline for the whole handshake, ClientHello included (slow handshakes are
    // slowloris too).
    let deadline = tokio::time::Instant::now() + settings.header_read_timeout;
    let start =
        match tokio::time::timeout_at(deadline, LazyConfigAcceptor::new(Acceptor::default(), io))
            .await
        {
            Ok(Ok(start)) => start,
            Ok(Err(e)) => return debug!(%peer, error = %e, "TLS ClientHello refused"),
            Err(_) => return debug!(%peer, "no TLS ClientHello in time"),
        };
    let hello = start.client_hello();
    let name = hello.server_name().map(|n| n.to_ascii_lowercase());
    let acme = hello
        .alpn()
        .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN));
    let config = match choose(&tls, &upstreams, name.as_deref(), acme) {
        Answer::Visitor => tls.visitors.clone(),
        Answer::Challenge => tls.challenges.clone(),
        Answer::Refuse => {
            debug!(%peer, name = ?name, "TLS for a name nobody publishes: unrecognized_name");
            let mut io = start.io;
            let _ = io.write_all(&UNRECOGNIZED_NAME_ALERT).await;
            let _ = io.shutdown().await;
            return;
        }
    };
    let stream = match tokio::time::timeout_at(deadline, start.into_stream(config)).await {
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
        local,
        Scheme::Https { h2 },
        activity,
        upstreams,
        settings,
        cancel,
    )
    .await;
}
