//! Hearth test networks.
//!
//! [`local`] runs whole meshes in one process on 127.0.0.1 for fast, unprivileged tests;
//! [`procs`] runs real `hearthd` processes for the demo and benchmarks; [`eventually`] waits for
//! conditions instead of sleeping; [`bench`] measures and writes docs/benchmarks.md;
//! [`dns_query`] asks an edge's DNS server one question.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod backend;
pub mod bench;
pub mod bench_acme;
pub mod bench_dataplane;
pub mod bench_docker;
pub mod bench_failover;
pub mod bench_scale;
pub mod delay;
pub mod demo;
pub mod dns_query;
pub mod docker_lab;
pub mod eventually;
pub mod inject;
pub mod lab;
pub mod local;
pub mod pattern;
pub mod probe;
pub mod raw_backend;
pub mod tcp_echo;
pub mod visitor;

/// Unix milliseconds on this machine, the clock every lab node shares.
pub fn clock_ms() -> u64 {
    hearth_node::clock::now_ms()
}
pub mod proc_stats;
pub mod procs;
