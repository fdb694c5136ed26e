//! `hearthd`, the Hearth node daemon, as a library so tests can run nodes in-process.
//!
//! Where things live: [`config`] (the one config struct), [`identity`] (node key on disk),
//! [`store`] (sled records), [`mesh`] (libp2p control plane: gate, behaviours, actor),
//! [`admin`] (Unix-socket API), [`join`] (invite redemption), [`node`] (init and start-up),
//! [`dns`] (the edges' authoritative DNS server for the user's zone).
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acme;
pub mod addrs;
pub mod admin;
pub mod clock;
pub mod config;
pub mod dns;
pub mod identity;
pub mod ingress;
pub mod join;
pub mod memory;
pub mod mesh;
pub mod node;
pub mod services;
pub mod store;
pub mod tunnel;
pub mod view;

pub use node::{init, start, Initialized, RunningNode};

use hearth_proto::invite::InviteError;

/// Everything that can stop the daemon from starting, joining or founding a mesh. Each
/// message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Key problems.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Store problems.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Admin socket problems.
    #[error(transparent)]
    Admin(#[from] admin::AdminError),
    /// The data-plane endpoint could not start.
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    /// Edge ingress could not start.
    #[error(transparent)]
    Ingress(#[from] ingress::IngressError),
    /// Edge TLS could not be configured.
    #[error(transparent)]
    EdgeTls(#[from] ingress::https::TlsConfigError),
    /// Certificates could not be set up (an unusable `acme.ca_file`).
    #[error(transparent)]
    Acme(#[from] acme::AcmeError),
    /// Transport set-up failed.
    #[error(transparent)]
    Transport(#[from] mesh::behaviour::TransportError),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {reason}; change `listen` in the config or free the port")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The data dir holds a key but no mesh.
    #[error(
        "this node is not part of a mesh yet; run `hearthd init` or `hearthd join CODE` first"
    )]
    NoMesh,
    /// The data dir already holds a mesh.
    #[error("this data dir already belongs to mesh {0}; use another --data-dir to found or join a different one")]
    AlreadyMember(String),
    /// A name that is not allowed.
    #[error("{0}")]
    BadName(String),
    /// The invite was refused.
    #[error("invite refused: {0}")]
    Invite(#[from] InviteError),
    /// The inviter never answered.
    #[error("no answer from the inviter within {secs} s (tried {addrs:?}); check that its hearthd runs and the address is reachable, or run `hearthctl dial` on it")]
    JoinTimeout {
        /// How long we waited.
        secs: u64,
        /// Addresses tried.
        addrs: Vec<String>,
    },
    /// The inviter keeps closing the connection without an answer.
    #[error("the inviter closed the connection without answering: it is no longer an admin of the mesh, or it is overloaded; ask an admin for a new code")]
    InviterRefused,
    /// The inviter's answer does not hold together.
    #[error("the inviter's answer is invalid: {0}")]
    BadGrant(String),
}
