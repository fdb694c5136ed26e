//! Certificate material, made with rcgen and read with x509-parser: keys and CSRs for orders,
//! the TLS-ALPN-01 challenge certificate, self-signed fallbacks, and what a chain says about
//! itself.

use rustls::crypto::ring::sign::any_supported_type;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, Der, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Why material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum MaterialError {
    /// rcgen refused.
    #[error("cannot make certificate material: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the key or chain.
    #[error("the certificate and key do not go together: {0}")]
    Rustls(#[from] rustls::Error),
    /// The CA's answer or a stored chain does not parse.
    #[error("the certificate chain is unreadable: {0}")]
    Chain(String),
    /// A challenge digest of the wrong size (a damaged order record).
    #[error("a TLS-ALPN-01 digest must be 32 bytes, not {0}")]
    Digest(usize),
}

/// A fresh certificate key (ECDSA P-256) and the CSR for `names`.
#[derive(Debug)]
pub struct KeyAndCsr {
    /// PKCS#8 DER of the key.
    pub pkcs8: Vec<u8>,
    /// DER of the CSR.
    pub csr: Vec<u8>,
}

/// Makes a new key and its CSR.
pub fn new_key_and_csr(names: &[String]) -> Result<KeyAndCsr, MaterialError> {
    let key = rcgen::KeyPair::generate()?;
    csr_with(key, names)
}

/// A CSR for `names` with an existing PKCS#8 key.
pub fn csr_for_key(pkcs8: &[u8], names: &[String]) -> Result<KeyAndCsr, MaterialError> {
    let key = rcgen::KeyPair::try_from(pkcs8)?;
    csr_with(key, names)
}

fn csr_with(key: rcgen::KeyPair, names: &[String]) -> Result<KeyAndCsr, MaterialError> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        pkcs8: key.serialize_der(),
        csr: csr.der().to_vec(),
    })
}

/// What rustls serves: `chain` (DER, leaf first) with its PKCS#8 key, checked to match.
pub fn certified_key(chain: &[Vec<u8>], pkcs8: &[u8]) -> Result<Arc<CertifiedKey>, MaterialError> {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.to_vec()));
    let signer = any_supported_type(&key)?;
    let certs = chain
        .iter()
        .map(|der| CertificateDer::from(der.clone()))
        .collect();
    let certified = CertifiedKey::new(certs, signer);
    certified.keys_match()?;
    Ok(Arc::new(certified))
}

/// A self-signed certificate for `host`, served until a CA's certificate is there.
pub fn self_signed(host: &str) -> Result<Arc<CertifiedKey>, MaterialError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    params.distinguished_name.push(
        rcgen::DnType::OrganizationName,
        "Hearth self-signed (no CA certificate yet)",
    );
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(30);
    let cert = params.self_signed(&key)?;
    certified_key(&[cert.der().to_vec()], &key.serialize_der())
}

/// The TLS-ALPN-01 certificate for `name` carrying `digest` (RFC 8737 §3).
pub fn tls_alpn_certificate(name: &str, digest: &[u8]) -> Result<Arc<CertifiedKey>, MaterialError> {
    if digest.len() != 32 {
        return Err(MaterialError::Digest(digest.len()));
    }
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()])?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key)?;
    // Made here from its own key, so no match check (which would also refuse the critical
    // acmeIdentifier extension webpki does not know).
    let signer = any_supported_type(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        key.serialize_der(),
    )))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

/// The certificates of a PEM chain as the CA sent it, leaf first.
pub fn chain_from_pem(pem: &str) -> Result<Vec<Vec<u8>>, MaterialError> {
    let chain: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<_, _>>()
        .map_err(|e| MaterialError::Chain(e.to_string()))?;
    if chain.is_empty() {
        return Err(MaterialError::Chain(
            "no certificate in the CA's answer".into(),
        ));
    }
    Ok(chain)
}

/// What a leaf certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    /// Validity start, Unix ms.
    pub not_before_ms: u64,
    /// Validity end, Unix ms.
    pub not_after_ms: u64,
    /// Serial number, hex.
    pub serial: String,
    /// The ARI identifier (`base64url(AKI).base64url(serial)`), empty without an AKI.
    pub ari_id: String,
    /// Its DNS names.
    pub names: Vec<String>,
}

/// Reads a leaf certificate.
pub fn leaf(der: &[u8]) -> Result<Leaf, MaterialError> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| MaterialError::Chain(e.to_string()))?;
    let ms = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0) * 1000;
    let mut names = Vec::new();
    let mut aki = None;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let GeneralName::DNSName(dns) = name {
                        names.push(dns.to_ascii_lowercase());
                    }
                }
            }
            ParsedExtension::AuthorityKeyIdentifier(found) => {
                aki = found.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            _ => {}
        }
    }
    let raw_serial = cert.tbs_certificate.raw_serial();
    let ari_id = aki
        .map(|aki| {
            instant_acme::CertificateIdentifier::new(
                Der::from_slice(&aki),
                Der::from_slice(raw_serial),
            )
            .to_string()
        })
        .unwrap_or_default();
    Ok(Leaf {
        not_before_ms: ms(cert.validity().not_before),
        not_after_ms: ms(cert.validity().not_after),
        serial: hex::encode(raw_serial),
        ari_id,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_reads_back() {
        let key = self_signed("app.example.com").unwrap();
        let leaf = leaf(key.cert[0].as_ref()).unwrap();
        assert_eq!(leaf.names, vec!["app.example.com".to_string()]);
        assert!(leaf.not_after_ms > leaf.not_before_ms);
        assert!(!leaf.serial.is_empty());
    }

    #[test]
    fn a_key_and_csr_make_a_matching_pair_and_a_foreign_key_does_not() {
        let names = vec!["a.example.com".to_string()];
        let made = new_key_and_csr(&names).unwrap();
        assert!(!made.csr.is_empty());
        let again = csr_for_key(&made.pkcs8, &names).unwrap();
        assert_eq!(again.pkcs8, made.pkcs8);
        // A certificate of another key does not go with this one.
        let other = self_signed("a.example.com").unwrap();
        let chain = vec![other.cert[0].to_vec()];
        assert!(certified_key(&chain, &made.pkcs8).is_err());
    }

    #[test]
    fn the_alpn_certificate_needs_a_32_byte_digest() {
        assert!(tls_alpn_certificate("a.example.com", &[7; 32]).is_ok());
        assert!(matches!(
            tls_alpn_certificate("a.example.com", &[7; 3]),
            Err(MaterialError::Digest(3))
        ));
    }

    #[test]
    fn pem_chains_parse_and_garbage_does_not() {
        let key = self_signed("a.example.com").unwrap();
        let pem = pem_of(key.cert[0].as_ref());
        let chain = chain_from_pem(&format!("{pem}{pem}")).unwrap();
        assert_eq!(chain.len(), 2);
        assert!(chain_from_pem("not a certificate").is_err());
        assert!(leaf(b"garbage").is_err());
    }

    fn pem_of(der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }
}
