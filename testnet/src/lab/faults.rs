//! Faults: partitions between groups of hosts, packet loss and delay on one host's uplink.
//!
//! This kernel is built without `sch_netem` (CONFIG_NET_SCH_NETEM is not set), so
//! `tc qdisc ... netem` fails. Loss is done with nftables `numgen`; delay by sending the host's
//! outgoing packets through NFQUEUE to `hearth-testnet probe delay` ([`crate::delay`]).

use super::cmd::{nft, run};
use super::topology::{HostKind, Lab};
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use std::path::Path;

const PARTITION_TABLE: &str = "hl_partition";
const LOSS_TABLE: &str = "hl_loss";
const DELAY_QUEUE: &str = "7";

impl Lab {
    fn wan_addrs(&self, names: &[&str]) -> Result<Vec<Ipv4Addr>> {
        names
            .iter()
            .map(|n| self.host(n).map(|h| h.wan_addr))
            .collect()
    }

    /// Cuts all traffic between hosts in `a` and hosts in `b`, at the internet bridge.
    pub fn partition(&self, a: &[&str], b: &[&str]) -> Result<()> {
        let (side_a, side_b) = (self.wan_addrs(a)?, self.wan_addrs(b)?);
        if side_a.iter().any(|x| side_b.contains(x)) {
            bail!("hosts on both sides share an internet address (two cgnat homes); they cannot be partitioned at the bridge");
        }
        let set = |addrs: &[Ipv4Addr]| {
            addrs
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (sa, sb) = (set(&side_a), set(&side_b));
        self.heal()?;
        nft(
            &self.core,
            &format!(
                "table bridge {PARTITION_TABLE} {{\n  chain forward {{\n    type filter hook forward priority 0;\n    ip saddr {{ {sa} }} ip daddr {{ {sb} }} drop\n    ip saddr {{ {sb} }} ip daddr {{ {sa} }} drop\n  }}\n}}\n"
            ),
        )
    }

    /// Removes any partition.
    pub fn heal(&self) -> Result<()> {
        let _ = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.core,
                "nft",
                "delete",
                "table",
                "bridge",
                PARTITION_TABLE,
            ],
        );
        Ok(())
    }

    /// Drops `percent` of the packets in and out of host `name` (0 removes the loss).
    pub fn set_loss(&self, name: &str, percent: u8) -> Result<()> {
        let host = self.host(name)?;
        let _ = run(
            "ip",
            &[
                "netns", "exec", &host.ns, "nft", "delete", "table", "inet", LOSS_TABLE,
            ],
        );
        if percent == 0 {
            return Ok(());
        }
        if percent > 100 {
            bail!("loss must be 0..=100 percent");
        }
        // nftables refuses `< 100` on a mod-100 value; total loss is a plain drop.
        let matcher = if percent == 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {percent}")
        };
        nft(
            &host.ns,
            &format!(
                "table inet {LOSS_TABLE} {{\n  chain in {{ type filter hook input priority -10; iifname != \"lo\" {matcher} drop; }}\n  chain out {{ type filter hook output priority -10; oifname != \"lo\" {matcher} drop; }}\n}}\n"
            ),
        )
    }

    /// Delays every packet host `name` sends by `ms` milliseconds (0 removes the delay), using
    /// `program` (the `hearth-testnet` binary) as the delaying queue reader.
    pub fn set_delay(&mut self, program: &Path, name: &str, ms: u64) -> Result<()> {
        let ns = self.host(name)?.ns.clone();
        let rule = [
            "OUTPUT",
            "!",
            "-o",
            "lo",
            "-j",
            "NFQUEUE",
            "--queue-num",
            DELAY_QUEUE,
            "--queue-bypass",
        ];
        if let Some(at) = self.delayers.iter().position(|(host, _)| host == name) {
            let (_, mut child) = self.delayers.remove(at);
            let mut delete = vec!["netns", "exec", &ns, "iptables", "-D"];
            delete.extend_from_slice(&rule);
            run("ip", &delete)?;
            let _ = child.kill();
            let _ = child.wait();
        }
        if ms == 0 {
            return Ok(());
        }
        let mut child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(program)
            .args([
                "probe",
                "delay",
                "--queue",
                DELAY_QUEUE,
                "--ms",
                &ms.to_string(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        }
        if line.trim() != "listening" {
            let _ = child.kill();
            bail!("the delay queue on {name} did not start");
        }
        self.delayers.push((name.to_string(), child));
        let mut append = vec!["netns", "exec", &ns, "iptables", "-A"];
        append.extend_from_slice(&rule);
        run("ip", &append)?;
        Ok(())
    }

    /// Hosts that run nodes (everything but clients).
    pub fn node_hosts(&self) -> impl Iterator<Item = &super::Host> {
        self.hosts.iter().filter(|h| h.kind != HostKind::Client)
    }
}
