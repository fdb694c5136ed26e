//! Mutual TLS for the data plane, with no CA: each node's certificate is self-signed by rcgen
//! with the node's own ed25519 key, so the certificate's public key is the NodeId. A peer is
//! accepted when its key is the node we dialed (client side) or a current member (server
//! side); the TLS 1.3 handshake signature proves it holds that key.

use crate::view::ViewRx;
use hearth_proto::tunnel::ALPN;
use hearth_proto::{NodeId, NodeKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::sync::Arc;

/// Why TLS material could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused the key or the certificate.
    #[error("cannot make the tunnel certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("cannot configure TLS for the tunnel: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn refused the rustls configuration.
    #[error("cannot configure QUIC for the tunnel: {0}")]
    Quic(String),
    /// The node key could not be written as PKCS#8.
    #[error("cannot encode the node key for the tunnel: {0}")]
    Pkcs8(#[from] ed25519_dalek::pkcs8::Error),
}

/// The SNI every tunnel dial uses; identity comes from the certificate key, not the name.
pub const SERVER_NAME: &str = "hearth";

/// This node's certificate and key, made once and shared by every handshake.
#[derive(Debug, Clone)]
pub struct Credentials {
    cert: CertificateDer<'static>,
    key: Arc<Vec<u8>>,
}

impl Credentials {
    /// Makes the self-signed certificate of `key`.
    pub fn new(key: &NodeKey) -> Result<Self, TlsError> {
        use ed25519_dalek::pkcs8::EncodePrivateKey;
        // PKCS#8 (RFC 8410, with the public key) by ed25519-dalek.
        let pkcs8 = ed25519_dalek::SigningKey::from_bytes(&key.secret_bytes())
            .to_pkcs8_der()?
            .as_bytes()
            .to_vec();
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
        let params = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string()])?;
        let cert = params.self_signed(&key_pair)?;
        Ok(Self {
            cert: cert.der().clone(),
            key: Arc::new(pkcs8),
        })
    }

    fn chain(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (
            vec![self.cert.clone()],
            PrivatePkcs8KeyDer::from(self.key.as_ref().clone()).into(),
        )
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The NodeId a certificate speaks for: its Ed25519 subject public key.
pub fn node_id_of(cert: &CertificateDer<'_>) -> Result<NodeId, rustls::Error> {
    let bad = || rustls::Error::InvalidCertificate(CertificateError::BadEncoding);
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
    let spki = parsed.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_SIG_ED25519 {
        return Err(bad());
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| bad())?;
    NodeId::from_bytes(bytes).map_err(|_| bad())
}

/// Only TLS 1.3 is configured, so a TLS 1.2 signature never needs checking.
fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOffered)
}

/// The TLS 1.3 handshake signature, checked against the certificate's (the node's) key.
fn verify_signature(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn refused() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// Server side: accepts a client certificate only while its key is a current member.
#[derive(Debug)]
struct MemberClients {
    view: ViewRx,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for MemberClients {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let node = node_id_of(end_entity)?;
        if !self.view.borrow().is_member(&node) {
            tracing::debug!(node = %node.short(), "tunnel refused a non-member");
            return Err(refused());
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// Client side: accepts the server only if its key is the node we meant to dial.
#[derive(Debug)]
struct ExpectedServer {
    expect: NodeId,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ExpectedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if node_id_of(end_entity)? != self.expect {
            return Err(refused());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(tls12_refused())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The quinn server configuration: members only.
pub fn server_config(
    credentials: &Credentials,
    view: ViewRx,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TlsError> {
    let provider = provider();
    let (chain, key) = credentials.chain();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(MemberClients { view, provider }))
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// The quinn client configuration for dialing `expect`.
pub fn client_config(
    credentials: &Credentials,
    expect: NodeId,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TlsError> {
    let provider = provider();
    let (chain, key) = credentials.chain();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ExpectedServer { expect, provider }))
        .with_client_auth_cert(chain, key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|e| TlsError::Quic(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_carries_the_node_key() {
        let key = NodeKey::generate();
        let credentials = Credentials::new(&key).unwrap();
        assert_eq!(node_id_of(&credentials.cert).unwrap(), key.id());
    }

    #[test]
    fn the_pkcs8_key_is_the_node_key_and_rustls_loads_it() {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        let key = NodeKey::from_secret([7; 32]);
        let credentials = Credentials::new(&key).unwrap();
        let back = ed25519_dalek::SigningKey::from_pkcs8_der(&credentials.key).unwrap();
        assert_eq!(back.to_bytes(), key.secret_bytes());
        // RFC 8410: version, the Ed25519 OID 1.3.101.112, then the seed as an OCTET STRING.
        let oid = [0x06, 0x03, 0x2b, 0x65, 0x70];
        assert!(credentials.key.windows(oid.len()).any(|w| w == oid));
        let (_, der) = credentials.chain();
        provider().key_provider.load_private_key(der).unwrap();
    }

    #[test]
    fn garbage_certificates_are_refused() {
        assert!(node_id_of(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).is_err());
    }
}
