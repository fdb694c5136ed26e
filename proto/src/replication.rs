//! Replication without I/O: which records a node stores, what it pushes to whom, and how
//! anti-entropy repairs what pushes missed.
//!
//! [`Replica`] is a state machine over a [`RecordMap`]: it takes an [`Event`] and the time and
//! returns [`Action`]s. The node's libp2p actor (`node/src/mesh/replication.rs`) is a thin
//! shell that turns swarm events into events and actions into messages, and decides when an
//! action that promises durability may go out. The simulated network in this module's tests
//! drives 50 replicas through loss, reordering, partitions and restarts. See
//! docs/replication.md.

mod memory;
mod records;
mod replica;

pub use memory::{MemoryStore, NoError};
pub use records::{
    apply, apply_batch, max_hlc, purge_tombstones, store_digest, versions, Applied, ApplyError,
    RecordMap,
};
pub use replica::{Action, Event, Replica, ReplicaConfig};

#[cfg(test)]
mod sim;
