//! Hearth's shared vocabulary.
//!
//! Everything two Hearth processes must agree on lives here and nowhere else: node and mesh
//! ids, signed records and the rules that accept or reject them, the last-writer-wins merge,
//! the membership view, edge election, invite codes, certificates and their renewal schedule,
//! sealing secrets to nodes, the control-plane wire messages and the admin API.
//!
//! The crate does no I/O. Functions that depend on time take `now` as an argument so that every
//! rule can be tested deterministically.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod addr;
pub mod api;
pub mod base32;
pub mod cert;
pub mod election;
pub mod hlc;
pub mod id;
pub mod invite;
pub mod membership;
pub mod merge;
pub mod paths;
pub mod reach;
pub mod record;
pub mod renewal;
pub mod replication;
pub mod route;
pub mod seal;
pub mod tunnel;
pub mod wire;

pub use hlc::Hlc;
pub use id::{MeshId, NodeId, NodeKey};
pub use record::{Body, Kind, Record, RecordError, RecordId, RecordVersion, Role};
