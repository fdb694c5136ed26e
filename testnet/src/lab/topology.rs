//! Building and tearing down a lab.

use super::cmd::{in_ns, nft, run};
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a host sits on the lab's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// An address on the internet bridge: reachable by everyone.
    Public,
    /// Behind a home router that masquerades and drops every inbound connection it did not
    /// originate (an ISP that blocks incoming SYN).
    Home,
    /// Behind a home router that is itself behind a carrier NAT shared by all cgnat homes of
    /// the lab, so they appear from the internet with one address.
    Cgnat,
    /// Behind a home router that lets only TCP out.
    UdpBlocked,
    /// A visitor on the internet (public, but never runs a node).
    Client,
}

/// One host: a network namespace with one uplink.
#[derive(Debug, Clone)]
pub struct Host {
    /// Name given to the builder.
    pub name: String,
    /// Kind.
    pub kind: HostKind,
    /// Its network namespace.
    pub ns: String,
    /// Its own address.
    pub addr: Ipv4Addr,
    /// The address the internet sees for it: its own for public hosts, else its (carrier)
    /// router's.
    pub wan_addr: Ipv4Addr,
    /// The home router's namespace, for hosts behind one.
    pub router_ns: Option<String>,
}

/// Describes a lab before it exists.
#[derive(Debug, Default)]
pub struct LabBuilder {
    hosts: Vec<(String, HostKind)>,
}

/// A running lab. Dropping it kills every process in its namespaces and deletes them.
#[derive(Debug)]
pub struct Lab {
    /// Unique prefix of every namespace of this lab.
    pub id: String,
    /// The hosts, in builder order.
    pub hosts: Vec<Host>,
    /// The internet: a namespace holding the internet bridge.
    pub(super) core: String,
    /// Delay queue readers by host name; killed when the lab drops.
    pub(super) delayers: Vec<(String, std::process::Child)>,
    namespaces: Vec<String>,
}

static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
const NS_PREFIX: &str = "hl";
const CARRIER_WAN: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 200);

const HOME_RULES: &str = r#"
table ip nat {
  chain post { type nat hook postrouting priority 100; oifname "wan" masquerade; }
}
table inet filter {
  chain forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "lan" UDP_RULE accept
  }
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    iifname { "lan", "lo" } accept
  }
}
"#;

impl LabBuilder {
    /// Adds a host.
    pub fn host(mut self, name: &str, kind: HostKind) -> Self {
        self.hosts.push((name.to_string(), kind));
        self
    }

    /// Creates the namespaces, links, addresses and firewall rules.
    pub fn build(self) -> Result<Lab> {
        reap_stale_labs();
        let id = format!(
            "{NS_PREFIX}{}x{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            core: format!("{id}-net"),
            id,
            hosts: Vec::new(),
            delayers: Vec::new(),
            namespaces: Vec::new(),
        };
        // From here on, a failure drops `lab`, which removes what was made.
        lab.add_ns(&lab.core.clone())?;
        in_ns(&lab.core, &["ip", "link", "add", "br0", "type", "bridge"])?;
        in_ns(&lab.core, &["ip", "link", "set", "br0", "up"])?;
        let mut port = 0usize;
        let carrier = if self.hosts.iter().any(|(_, k)| *k == HostKind::Cgnat) {
            Some(lab.add_carrier(&mut port)?)
        } else {
            None
        };
        let (mut public_n, mut home_n, mut cgnat_n) = (0u8, 0u8, 0u8);
        for (name, kind) in self.hosts {
            if lab.hosts.iter().any(|h| h.name == name) {
                bail!("two lab hosts are named `{name}`");
            }
            let ns = format!("{}-{name}", lab.id);
            lab.add_ns(&ns)?;
            let host = match kind {
                HostKind::Public | HostKind::Client => {
                    public_n += 1;
                    let addr = Ipv4Addr::new(198, 18, 0, 10 + public_n);
                    lab.uplink(&mut port, &ns, "eth0", addr)?;
                    Host {
                        name,
                        kind,
                        ns,
                        addr,
                        wan_addr: addr,
                        router_ns: None,
                    }
                }
                HostKind::Home | HostKind::UdpBlocked | HostKind::Cgnat => {
                    home_n += 1;
                    let router = format!("{ns}-r");
                    lab.add_ns(&router)?;
                    let wan_addr = if kind == HostKind::Cgnat {
                        cgnat_n += 1;
                        let carrier = carrier.as_deref().unwrap_or_default();
                        let wan = Ipv4Addr::new(198, 18, 100, 10 + cgnat_n);
                        let peer = format!("c{cgnat_n}");
                        veth(carrier, &peer, &router, "wan")?;
                        in_ns(
                            carrier,
                            &["ip", "link", "set", &peer, "master", "br1", "up"],
                        )?;
                        address(&router, "wan", wan, 24)?;
                        in_ns(
                            &router,
                            &["ip", "route", "add", "default", "via", "198.18.100.1"],
                        )?;
                        CARRIER_WAN
                    } else {
                        let wan = Ipv4Addr::new(198, 18, 0, 100 + home_n);
                        lab.uplink(&mut port, &router, "wan", wan)?;
                        wan
                    };
                    let lan_router = Ipv4Addr::new(198, 19, home_n, 1);
                    let addr = Ipv4Addr::new(198, 19, home_n, 2);
                    veth(&router, "lan", &ns, "eth0")?;
                    address(&router, "lan", lan_router, 24)?;
                    address(&ns, "eth0", addr, 24)?;
                    in_ns(
                        &ns,
                        &[
                            "ip",
                            "route",
                            "add",
                            "default",
                            "via",
                            &lan_router.to_string(),
                        ],
                    )?;
                    in_ns(&router, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
                    let udp_rule = if kind == HostKind::UdpBlocked {
                        "meta l4proto != udp"
                    } else {
                        ""
                    };
                    nft(&router, &HOME_RULES.replace("UDP_RULE", udp_rule))?;
                    Host {
                        name,
                        kind,
                        ns,
                        addr,
                        wan_addr: if kind == HostKind::Cgnat {
                            CARRIER_WAN
                        } else {
                            wan_addr
                        },
                        router_ns: Some(router),
                    }
                }
            };
            lab.hosts.push(host);
        }
        Ok(lab)
    }
}

impl Lab {
    /// Starts describing a lab.
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&Host> {
        match self.hosts.iter().find(|h| h.name == name) {
            Some(host) => Ok(host),
            None => bail!("no lab host named `{name}`"),
        }
    }

    fn add_ns(&mut self, ns: &str) -> Result<()> {
        run("ip", &["netns", "add", ns])?;
        self.namespaces.push(ns.to_string());
        in_ns(ns, &["ip", "link", "set", "lo", "up"])?;
        Ok(())
    }

    /// Connects `ns` to the internet bridge with `addr`.
    fn uplink(&self, port: &mut usize, ns: &str, ifname: &str, addr: Ipv4Addr) -> Result<()> {
        *port += 1;
        let bridge_port = format!("p{port}");
        veth(&self.core, &bridge_port, ns, ifname)?;
        in_ns(
            &self.core,
            &["ip", "link", "set", &bridge_port, "master", "br0", "up"],
        )?;
        address(ns, ifname, addr, 24)
    }

    /// The carrier NAT shared by all cgnat homes; returns its namespace.
    fn add_carrier(&mut self, port: &mut usize) -> Result<String> {
        let carrier = format!("{}-cgn", self.id);
        self.add_ns(&carrier)?;
        self.uplink(port, &carrier, "wan", CARRIER_WAN)?;
        in_ns(&carrier, &["ip", "link", "add", "br1", "type", "bridge"])?;
        in_ns(&carrier, &["ip", "link", "set", "br1", "up"])?;
        address(&carrier, "br1", Ipv4Addr::new(198, 18, 100, 1), 24)?;
        in_ns(&carrier, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        nft(
            &carrier,
            &HOME_RULES
                .replace("\"lan\"", "\"br1\"")
                .replace("UDP_RULE", ""),
        )?;
        Ok(carrier)
    }
}

fn veth(ns_a: &str, if_a: &str, ns_b: &str, if_b: &str) -> Result<()> {
    run(
        "ip",
        &[
            "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b, "netns", ns_b,
        ],
    )?;
    in_ns(ns_a, &["ip", "link", "set", if_a, "up"])?;
    in_ns(ns_b, &["ip", "link", "set", if_b, "up"])?;
    Ok(())
}

fn address(ns: &str, ifname: &str, addr: Ipv4Addr, prefix: u8) -> Result<()> {
    in_ns(
        ns,
        &[
            "ip",
            "addr",
            "add",
            &format!("{addr}/{prefix}"),
            "dev",
            ifname,
        ],
    )?;
    Ok(())
}

/// Kills every process in `ns` and deletes it.
fn remove_ns(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids.split_whitespace() {
            let _ = run("kill", &["-9", pid]);
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// Removes namespaces of labs whose test process no longer exists (killed by Ctrl-C or -9).
fn reap_stale_labs() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('x') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_ns(name);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.delayers {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            remove_ns(ns);
        }
    }
}
