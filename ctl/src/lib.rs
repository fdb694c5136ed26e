//! `hearthctl` as a library.
//!
//! The binary is a thin shell over these modules so that the pieces people and scripts depend
//! on can be tested without a daemon: [`client`] speaks the admin-socket protocol (the test
//! harnesses drive daemons through it too), [`render`] turns answers into text for people, and
//! [`duration`] reads and writes the durations people type and read.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod duration;
pub mod render;
