//! Certificates for published hosts, obtained by ACME and shared by the elected edges. See
//! docs/https.md.
//!
//! - [`served`]: what this edge serves now (opened certificates, self-signed stand-ins,
//!   challenge answers), read by the HTTPS listener, `:80` and the DNS server.
//! - [`actor`]: [`AcmeActor`] keeps that table current from the replicated records,
//!   acknowledges the challenge answers it serves, and on the issuing edge of a name runs its
//!   orders and renewals and re-seals keys to new edges.
//! - [`order`]: one order, placed or resumed, from the challenges to the stored certificate.
//! - [`client`]: the HTTPS client to the CA and the shared account.
//! - [`material`]: keys, CSRs and certificates (rcgen, x509-parser).

pub mod actor;
pub mod client;
pub mod material;
pub mod order;
pub mod served;

pub use actor::{AcmeActor, AcmeSettings};
pub use served::{ChallengeResolver, ServeResolver, Served};

use hearth_proto::api::ApiError;
use hearth_proto::cert::AcmeProblem;
use hearth_proto::seal::SealError;
use std::path::PathBuf;

/// Why an ACME step failed. [`AcmeError::problem`] is what `hearthctl certs` shows.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// `acme.ca_file` cannot be used.
    #[error("acme.ca_file {path}: {reason}; give a PEM file of the ACME server's CA")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the client configuration.
    #[error("cannot configure TLS towards the CA: {0}")]
    Tls(rustls::Error),
    /// The CA refused, or could not be reached.
    #[error("{doing}: {problem}")]
    Ca {
        /// The step.
        doing: &'static str,
        /// What the CA (or the way to it) said.
        problem: AcmeProblem,
    },
    /// The CA found a challenge answer wrong.
    #[error("the CA could not validate {name}: {problem}")]
    Invalid {
        /// The name.
        name: String,
        /// The CA's problem.
        problem: AcmeProblem,
    },
    /// The CA offers no challenge this mesh can answer for a name.
    #[error(
        "the CA offers no challenge the edges can answer for {name} (offered: {offered}); {hint}"
    )]
    NoChallenge {
        /// The name.
        name: String,
        /// What the CA offered.
        offered: String,
        /// What to change.
        hint: &'static str,
    },
    /// Keys or certificates could not be made or read.
    #[error(transparent)]
    Material(#[from] material::MaterialError),
    /// A sealed secret could not be sealed or opened.
    #[error("sealed secret: {0}")]
    Seal(#[from] SealError),
    /// The store refused a record.
    #[error("cannot store the certificate state: {0}")]
    Store(#[from] ApiError),
    /// A step took longer than the CA should ever need.
    #[error("the CA did not finish {0} in time")]
    Timeout(&'static str),
    /// This node stopped being the issuer (or the node is stopping).
    #[error("stopped: this node no longer issues this name")]
    Stopped,
}

impl AcmeError {
    /// An instant-acme error during `doing`, with the CA's problem type when it sent one.
    pub fn ca(doing: &'static str, error: instant_acme::Error) -> Self {
        let problem = match &error {
            instant_acme::Error::Api(problem) => problem_of(problem),
            instant_acme::Error::Timeout(_) => return AcmeError::Timeout(doing),
            other => AcmeProblem {
                kind: String::new(),
                detail: chain(other),
            },
        };
        AcmeError::Ca { doing, problem }
    }

    /// The same error, saying which URL it was about.
    pub fn at(self, url: &str) -> Self {
        match self {
            AcmeError::Ca { doing, problem } => AcmeError::Ca {
                doing,
                problem: AcmeProblem {
                    detail: format!("{url}: {}", problem.detail),
                    ..problem
                },
            },
            other => other,
        }
    }

    /// What `hearthctl certs` shows for it.
    pub fn problem(&self) -> AcmeProblem {
        match self {
            AcmeError::Ca { doing, problem } => AcmeProblem {
                kind: problem.kind.clone(),
                detail: format!("{doing}: {}", problem.detail),
            },
            AcmeError::Invalid { name, problem } => AcmeProblem {
                kind: problem.kind.clone(),
                detail: format!("validating {name}: {}", problem.detail),
            },
            other => AcmeProblem {
                kind: String::new(),
                detail: other.to_string(),
            },
        }
    }
}

/// An error and its sources, `: `-separated (hyper's own message is only "client error").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let next = inner.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = inner.source();
    }
    text
}

/// An RFC 7807 problem as stored, its subproblems folded into the detail.
pub fn problem_of(problem: &instant_acme::Problem) -> AcmeProblem {
    let mut detail = problem
        .detail
        .clone()
        .unwrap_or_else(|| "no detail given".into());
    for sub in &problem.subproblems {
        detail.push_str(&format!("; {sub}"));
    }
    AcmeProblem {
        kind: problem.r#type.clone().unwrap_or_default(),
        detail,
    }
}
