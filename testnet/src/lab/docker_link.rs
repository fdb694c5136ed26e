//! Putting a lab host on a Docker network, as a home server sits on the same LAN as its own
//! containers: a veth from the host's namespace into the network's bridge.

use super::cmd::{in_ns, run};
use super::topology::Lab;
use crate::docker_lab::docker;
use anyhow::{Context, Result};

impl Lab {
    /// Links host `name` to Docker network `network` (a /24 from `DockerLab`); the host gets
    /// the subnet's `.250`, which it returns. Removed with the lab's namespaces.
    pub fn link_docker(&self, name: &str, network: &str) -> Result<String> {
        let host = self.host(name)?;
        let id = docker(&["network", "inspect", "-f", "{{.Id}}", network])?;
        let bridge = format!("br-{}", id.get(..12).context("short network id")?);
        let subnet = docker(&[
            "network",
            "inspect",
            "-f",
            "{{(index .IPAM.Config 0).Subnet}}",
            network,
        ])?;
        let prefix = subnet
            .strip_suffix("0/24")
            .with_context(|| format!("{network} is not a /24: {subnet}"))?;
        let addr = format!("{prefix}250");
        // The root-namespace end is named after the lab, so parallel labs never collide.
        let outer = format!("hd{}", self.id.trim_start_matches("hl"));
        run(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", "dock", "netns", &host.ns,
            ],
        )?;
        run("ip", &["link", "set", &outer, "master", &bridge])?;
        run("ip", &["link", "set", &outer, "up"])?;
        in_ns(
            &host.ns,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "dock"],
        )?;
        in_ns(&host.ns, &["ip", "link", "set", "dock", "up"])?;
        Ok(addr)
    }
}
