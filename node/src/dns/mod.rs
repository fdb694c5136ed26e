//! The authoritative DNS server edges run for the user's zone.
//!
//! Why: clients fail over between edges through the edges' own DNS. Every edge answers for
//! the zone from the same mesh view, and lists only the live elected edges with a short TTL,
//! so when an edge dies its address drops out of every answer within one TTL, without a
//! third-party DNS provider or its API keys.
//!
//! [`zone`] holds the pure answering rules over a [`ZoneView`]; [`server`] is the
//! hickory-server glue that binds UDP and TCP and answers each request from the latest view
//! on a watch channel.

pub mod server;
pub mod zone;

pub use server::{bind, serve, DnsError};
pub use zone::{answer, dns_label, Answer, EdgeNs, ZoneView};
