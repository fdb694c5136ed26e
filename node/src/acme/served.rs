//! What an edge serves for TLS and ACME, shared between the ACME actor (which writes it from
//! the replicated records) and the listeners (which read it on every handshake or request):
//! the certificates this node can open, self-signed stand-ins, and the challenge answers.
//!
//! Opened keys live only here, in memory; the store keeps them sealed.

use super::material;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tracing::warn;

/// Most self-signed stand-ins kept; they are made only for published hosts, so this is only
/// reached by meshes with very many hosts, and then the oldest go.
const MAX_SELF_SIGNED: usize = 1024;

/// A CA certificate this node can serve.
#[derive(Debug, Clone)]
pub struct ServedCert {
    /// The names it carries.
    pub names: Vec<String>,
    /// Chain and opened key, ready for rustls.
    pub key: Arc<CertifiedKey>,
    /// Its serial, hex.
    pub serial: String,
}

/// The challenge answers of every order in flight, as this node serves them.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    /// HTTP-01: token → key authorization.
    pub http01: HashMap<String, String>,
    /// TLS-ALPN-01: name → challenge certificate.
    pub alpn01: HashMap<String, Arc<CertifiedKey>>,
    /// DNS-01: `_acme-challenge.<name>` (lowercase, no trailing dot) → TXT values.
    pub dns01: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default)]
struct Inner {
    certs: BTreeMap<String, ServedCert>,
    answers: Answers,
    self_signed: HashMap<String, Arc<CertifiedKey>>,
}

/// The shared table; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Served {
    inner: Arc<RwLock<Inner>>,
}

impl Served {
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the CA certificates (by certificate name).
    pub fn set_certs(&self, certs: BTreeMap<String, ServedCert>) {
        self.write().certs = certs;
    }

    /// Replaces the challenge answers.
    pub fn set_answers(&self, answers: Answers) {
        self.write().answers = answers;
    }

    /// The serials of the certificates served now, by certificate name.
    pub fn serials(&self) -> BTreeMap<String, String> {
        self.read()
            .certs
            .iter()
            .map(|(name, c)| (name.clone(), c.serial.clone()))
            .collect()
    }

    /// The CA certificate that serves `host`: its own, else a wildcard covering it.
    pub fn cert_for(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        let inner = self.read();
        if inner.certs.is_empty() {
            return None;
        }
        if let Some(cert) = inner.certs.get(host) {
            return Some(cert.key.clone());
        }
        let covers = |c: &&ServedCert| {
            c.names
                .iter()
                .any(|n| hearth_proto::cert::name_covers(n, host))
        };
        if let Some((_, parent)) = host.split_once('.') {
            if let Some(cert) = inner.certs.get(&format!("*.{parent}")).filter(covers) {
                return Some(cert.key.clone());
            }
        }
        // A name carried besides the primary one (a wildcard certificate's zone apex).
        inner.certs.values().find(covers).map(|c| c.key.clone())
    }

    /// Whether this node serves a CA certificate for `host` (then `:80` redirects to HTTPS).
    pub fn has_cert(&self, host: &str) -> bool {
        self.cert_for(host).is_some()
    }

    /// A self-signed certificate for `host`, made on first use.
    pub fn self_signed(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(found) = self.read().self_signed.get(host) {
            return Some(found.clone());
        }
        let made = match material::self_signed(host) {
            Ok(made) => made,
            Err(e) => {
                warn!(host, error = %e, "cannot make a self-signed certificate");
                return None;
            }
        };
        let mut inner = self.write();
        if inner.self_signed.len() >= MAX_SELF_SIGNED {
            inner.self_signed.clear();
        }
        Some(
            inner
                .self_signed
                .entry(host.to_string())
                .or_insert(made)
                .clone(),
        )
    }

    /// The HTTP-01 answer for `token`.
    pub fn http01(&self, token: &str) -> Option<String> {
        self.read().answers.http01.get(token).cloned()
    }

    /// The TLS-ALPN-01 certificate for `name`.
    pub fn alpn01(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.read().answers.alpn01.get(name).cloned()
    }

    /// The DNS-01 TXT values, by full name.
    pub fn dns01(&self) -> BTreeMap<String, Vec<String>> {
        self.read().answers.dns01.clone()
    }
}

/// Serves the CA certificate of the handshake's name, else a self-signed one. The listener
/// only hands this resolver handshakes for published hosts.
#[derive(Debug)]
pub struct ServeResolver(pub Served);

impl ResolvesServerCert for ServeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        self.0.cert_for(&host).or_else(|| self.0.self_signed(&host))
    }
}

/// Serves TLS-ALPN-01 challenge certificates.
#[derive(Debug)]
pub struct ChallengeResolver(pub Served);

impl ResolvesServerCert for ChallengeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = hello.server_name()?.to_ascii_lowercase();
        self.0.alpn01(&host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_serve_one_label_and_exact_names_win() {
        let served = Served::default();
        let wild = material::self_signed("*.z.test").unwrap();
        let exact = material::self_signed("a.z.test").unwrap();
        served.set_certs(BTreeMap::from([
            (
                "*.z.test".to_string(),
                ServedCert {
                    names: vec!["*.z.test".into(), "z.test".into()],
                    key: wild.clone(),
                    serial: "1".into(),
                },
            ),
            (
                "a.z.test".to_string(),
                ServedCert {
                    names: vec!["a.z.test".into()],
                    key: exact.clone(),
                    serial: "2".into(),
                },
            ),
        ]));
        assert!(Arc::ptr_eq(&served.cert_for("a.z.test").unwrap(), &exact));
        assert!(Arc::ptr_eq(&served.cert_for("b.z.test").unwrap(), &wild));
        assert!(served.cert_for("c.b.z.test").is_none());
        assert!(Arc::ptr_eq(&served.cert_for("z.test").unwrap(), &wild));
        assert!(!served.has_cert("other.test"));
        let first = served.self_signed("other.test").unwrap();
        assert!(Arc::ptr_eq(
            &first,
            &served.self_signed("other.test").unwrap()
        ));
    }
}
