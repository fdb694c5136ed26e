//! Network-namespace labs: hosts on a fake internet, behind home NAT, behind carrier-grade NAT,
//! or with UDP blocked, built from `ip netns`, veth pairs, bridges and nftables.
//!
//! Address plan (only 198.18.0.0/15, see ../shared/DESIGN.md): the internet bridge is
//! 198.18.0.0/24 (public hosts from .10, home routers' WAN from .100, carrier NATs from .200);
//! home LAN N is 198.19.N.0/24 (router .1, host .2); the carrier network behind a CGNAT is
//! 198.18.100.0/24. Everything is removed when the [`Lab`] drops, and labs left behind by a
//! killed test process are removed by the next one.

mod clients;
pub(crate) mod cmd;
mod docker_link;
mod edges;
mod exec;
mod faults;
mod forward;
mod guard;
mod https_site;
mod liveness;
mod mesh;
mod pebble;
mod scale;
mod settle;
mod site;
mod topology;

pub use clients::LoadRun;
pub(crate) use cmd::run;
pub use cmd::{available, LabUnavailable};
pub use exec::Server;
pub use guard::labs_can_run;
pub use https_site::HttpsSite;
pub use mesh::{LabMesh, LAB_CONVERGE};
pub use pebble::Pebble;
pub use scale::scale_lab;
pub use site::{EdgeSite, SITE, SITE_ZONE};
pub use topology::{Host, HostKind, Lab, LabBuilder};
