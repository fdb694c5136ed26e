//! Labs of many nodes, for the scale bench and the large lab tests.

use super::topology::{HostKind, Lab};
use anyhow::{ensure, Result};

/// A lab of `nodes` hosts: the first `public` on the internet (`pub0`, `pub1`, …), the rest
/// behind home NAT (`home<i>`, even `i`) and carrier-grade NAT (`cgnat<i>`, odd `i`) in
/// turn. Returns the lab and the host names in order.
pub fn scale_lab(nodes: usize, public: usize) -> Result<(Lab, Vec<String>)> {
    ensure!(
        (1..=nodes).contains(&public),
        "a lab of {nodes} nodes cannot have {public} public ones"
    );
    let mut builder = Lab::builder();
    let mut names = Vec::new();
    for i in 0..nodes {
        let (name, kind) = if i < public {
            (format!("pub{i}"), HostKind::Public)
        } else if i % 2 == 0 {
            (format!("home{i}"), HostKind::Home)
        } else {
            (format!("cgnat{i}"), HostKind::Cgnat)
        };
        builder = builder.host(&name, kind);
        names.push(name);
    }
    Ok((builder.build()?, names))
}
