//! The control plane: a libp2p swarm that admits only members and replicates records.

pub mod actor;
mod admission;
// The `NetworkBehaviour` derive generates an event enum without docs or Debug.
#[allow(missing_docs, missing_debug_implementations)]
pub mod behaviour;
pub mod certs;
mod commands;
mod containers;
mod dialback;
mod durable;
mod edges;
mod frame_streams;
pub mod gate;
mod instances;
mod liveness;
pub mod peer_id;
mod relays;
mod replication;
mod routes;
pub mod swim;
mod topology;
mod view;
