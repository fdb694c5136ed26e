//! The way to the CA: an HTTPS client that trusts the system's roots plus an optional extra CA
//! file (a test CA such as Pebble's), and the ACME account every edge shares.

use super::AcmeError;
use bytes::Bytes;
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, BytesResponse, HttpClient, NewAccount,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// Longest one request to the CA may take, connecting included: a CA that hangs must not
/// hold an order forever (the order fails, and is tried again after its backoff).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a TCP connect to the CA may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP client instant-acme talks through; cheap to clone.
#[derive(Clone)]
pub struct CaClient(Client<Https, BodyWrapper<Bytes>>);

impl HttpClient for CaClient {
    fn request(
        &self,
        req: Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let pending = HttpClient::request(&self.0, req);
        Box::pin(async move {
            match tokio::time::timeout(REQUEST_TIMEOUT, pending).await {
                Ok(result) => result,
                Err(_) => Err(instant_acme::Error::Other(
                    format!(
                        "no answer from the CA within {} s",
                        REQUEST_TIMEOUT.as_secs()
                    )
                    .into(),
                )),
            }
        })
    }
}

impl std::fmt::Debug for CaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaClient")
    }
}

impl CaClient {
    /// A client trusting the system's roots and the certificates in `extra_ca`.
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, AcmeError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = extra_ca {
            let bad = |reason: String| AcmeError::CaFile {
                path: path.to_path_buf(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("it holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(AcmeError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        Ok(Self(Client::builder(TokioExecutor::new()).build(connector)))
    }

    /// The account of these credentials.
    pub async fn account(&self, credentials: AccountCredentials) -> Result<Account, AcmeError> {
        Account::builder_with_http(Box::new(self.clone()))
            .from_credentials(credentials)
            .await
            .map_err(|e| AcmeError::ca("loading the ACME account", e))
    }

    /// Registers a new account at `directory`, agreeing to its terms.
    pub async fn create_account(
        &self,
        directory: &str,
        contact: &[String],
    ) -> Result<(Account, AccountCredentials), AcmeError> {
        let contact: Vec<String> = contact.iter().map(|c| format!("mailto:{c}")).collect();
        let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
        Account::builder_with_http(Box::new(self.clone()))
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                directory.to_string(),
                None,
            )
            .await
            .map_err(|e| AcmeError::ca("creating an ACME account", e).at(directory))
    }
}
