//! Real `hearthd` processes on this machine, each with its own data dir and log file, for the
//! demo and benchmarks. Processes are killed when their [`ProcNode`] drops.

use crate::eventually::{eventually, CONVERGE};
use anyhow::{bail, Context, Result};
use hearth_proto::api::{CommandV1, EdgesV1, MemberRowV1, ResponseV1};
use hearth_proto::election::EdgePreference;
use hearth_proto::route::RouteTls;
use hearth_proto::Role;
use hearthctl::client::AdminClient;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Paths of the project's binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `hearthd`.
    pub hearthd: PathBuf,
    /// `hearthctl`.
    pub hearthctl: PathBuf,
    /// `hearth-testnet` (for its probes).
    pub testnet: PathBuf,
}

impl Binaries {
    /// Finds the binaries next to the running executable (cargo puts them together), or in
    /// `$HEARTH_BIN_DIR`.
    pub fn locate() -> Result<Self> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("HEARTH_BIN_DIR")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        let exe = std::env::current_exe()?;
        dirs.extend(exe.ancestors().skip(1).take(2).map(Path::to_path_buf));
        match Self::in_first(&dirs) {
            Some(bins) => Ok(bins),
            None => bail!("hearthd, hearthctl and hearth-testnet not found in {dirs:?}; run `cargo build --workspace --bins` first or set HEARTH_BIN_DIR"),
        }
    }

    /// Optimized binaries, for labs too large for unoptimized ones on a small machine (twenty
    /// debug-built `hearthd` keep most of two cores busy, and their failure detectors then
    /// declare live members down): `$HEARTH_BIN_DIR` if set, the running executable's own
    /// directory if it is a release build, else `release/` of the target directory it runs
    /// from. Release binaries older than the debug ones beside them are refused as stale.
    pub fn locate_release() -> Result<Self> {
        if std::env::var_os("HEARTH_BIN_DIR").is_some() {
            return Self::locate();
        }
        let found = Self::locate().ok();
        if let Some(found) = found.as_ref().filter(|b| b.is_release()) {
            return Ok(found.clone());
        }
        let exe = std::env::current_exe()?;
        let dirs: Vec<PathBuf> = exe
            .ancestors()
            .skip(2)
            .take(2)
            .map(|a| a.join("release"))
            .collect();
        let Some(release) = Self::in_first(&dirs) else {
            bail!("no release build of hearthd, hearthctl and hearth-testnet in {dirs:?}; run `cargo build --release --workspace --bins` first or set HEARTH_BIN_DIR");
        };
        let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        if let Some(debug) = found.filter(|d| modified(&release.hearthd) < modified(&d.hearthd)) {
            bail!(
                "{} is older than {}: run `cargo build --release --workspace --bins` again",
                release.hearthd.display(),
                debug.hearthd.display()
            );
        }
        Ok(release)
    }

    /// Whether these are the binaries of a release build.
    fn is_release(&self) -> bool {
        self.hearthd
            .parent()
            .is_some_and(|d| d.ends_with("release"))
    }

    /// The binaries in the first of `dirs` that holds all three.
    fn in_first(dirs: &[PathBuf]) -> Option<Self> {
        dirs.iter().find_map(|dir| {
            let bins = Self {
                hearthd: dir.join("hearthd"),
                hearthctl: dir.join("hearthctl"),
                testnet: dir.join("hearth-testnet"),
            };
            (bins.hearthd.is_file() && bins.hearthctl.is_file() && bins.testnet.is_file())
                .then_some(bins)
        })
    }
}

/// One `hearthd` with its data dir.
#[derive(Debug)]
pub struct ProcNode {
    /// Its name.
    pub name: String,
    /// Its data dir (key, store, socket, log).
    pub dir: PathBuf,
    bins: Binaries,
    child: Option<Child>,
    netns: Option<String>,
    edge: EdgePreference,
    docker: bool,
    env: Vec<(String, String)>,
}

/// Listen addresses of a node on loopback: random ports, so many fit on one machine.
const LOOPBACK_LISTEN: &str = "/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0";
/// Listen addresses of a node alone in a lab host: the default ports on every interface.
const HOST_LISTEN: &str = "/ip4/0.0.0.0/udp/7700/quic-v1,/ip4/0.0.0.0/tcp/7700";
/// Data-plane, HTTP and HTTPS ingress addresses on loopback, and alone in a lab host.
const LOOPBACK_DATA: (&str, &str, &str) = ("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0");
const HOST_DATA: (&str, &str, &str) = ("0.0.0.0:7701", "0.0.0.0:80", "0.0.0.0:443");

impl ProcNode {
    /// A node on loopback that will live in `dir`.
    pub fn new(bins: &Binaries, dir: PathBuf, name: &str) -> Self {
        Self {
            name: name.to_string(),
            dir,
            bins: bins.clone(),
            child: None,
            netns: None,
            edge: EdgePreference::Never,
            docker: false,
            env: Vec::new(),
        }
    }

    /// Makes the node follow this machine's Docker engine from its next `run` on (off by
    /// default: lab and demo nodes share one engine).
    pub fn follow_docker(&mut self, on: bool) {
        self.docker = on;
    }

    /// Makes the node an edge (`edge = "always"`): it serves HTTP and TCP routes.
    pub fn edge(self) -> Self {
        self.edge_pref(EdgePreference::Always)
    }

    /// Sets the node's edge preference (default `never`: on loopback only an explicit edge
    /// serves).
    pub fn edge_pref(mut self, pref: EdgePreference) -> Self {
        self.edge = pref;
        self
    }

    /// Sets an environment variable (a `HEARTH_*` config override) for its next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    /// A node inside network namespace `ns` (a lab host), on the default ports.
    pub fn in_netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.to_string());
        self
    }

    fn command(&self) -> Command {
        let (mut cmd, listen, (tunnel, http, https)) = match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(&self.bins.hearthd);
                (cmd, HOST_LISTEN, HOST_DATA)
            }
            None => (
                Command::new(&self.bins.hearthd),
                LOOPBACK_LISTEN,
                LOOPBACK_DATA,
            ),
        };
        cmd.arg("--data-dir")
            .arg(&self.dir)
            .env("HEARTH_LISTEN", listen)
            .env("HEARTH_TUNNEL_LISTEN", tunnel)
            .env("HEARTH_HTTP_LISTEN", http)
            .env("HEARTH_HTTPS_LISTEN", https)
            .env("HEARTH_EDGE", self.edge.to_string())
            .env("HEARTH_DOCKER", if self.docker { "on" } else { "off" })
            .env("HEARTH_NAME", &self.name)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        cmd
    }

    /// The last `lines` lines of its log, for failure reports.
    /// Runs of the same message (a visitor retrying into a 502, say) count as one line, so
    /// the tail reaches back to what led up to them.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let collapsed = collapse_repeats(text.lines());
        collapsed[collapsed.len().saturating_sub(lines)..].join("\n")
    }

    /// Whether `hearthd run` was started and not killed.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of `hearthd run`, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The log file of `hearthd run`.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("hearthd.log")
    }

    /// The admin socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(hearth_proto::paths::SOCKET_FILE)
    }

    /// An admin client.
    pub fn client(&self) -> AdminClient {
        AdminClient::new(self.socket())
    }

    /// `hearthd init`.
    pub async fn init(&self) -> Result<()> {
        let out = self
            .command()
            .arg("init")
            .arg("--mesh-name")
            .arg("demo")
            .output()
            .await?;
        check(&self.name, "init", &out)
    }

    /// `hearthd join CODE`.
    pub async fn join(&self, code: &str) -> Result<()> {
        // A join that cannot complete should fail the test in a minute, not in ten.
        let out = self
            .command()
            .args(["join", "--timeout", "60"])
            .arg(code)
            .output()
            .await?;
        check(&self.name, "join", &out)
    }

    /// `hearthd run` in the background, waiting until its admin socket answers.
    pub async fn run(&mut self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        // Appended, so one log tells the whole story of restarts.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let child = self
            .command()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bins.hearthd.display()))?;
        self.child = Some(child);
        let client = self.client();
        eventually(&format!("{} answers", self.name), CONVERGE, || async {
            client.call(CommandV1::Status).await.map(|_| ())?;
            Ok(())
        })
        .await
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The member table.
    pub async fn members(&self) -> Result<Vec<MemberRowV1>> {
        match self.client().call(CommandV1::Members).await? {
            ResponseV1::Members(rows) => Ok(rows),
            other => bail!("{}: {other:?}", self.name),
        }
    }

    /// The edge election as this node sees it.
    pub async fn edges(&self) -> Result<EdgesV1> {
        match self.client().call(CommandV1::Edges).await? {
            ResponseV1::Edges(report) => Ok(report),
            other => bail!("{}: {other:?}", self.name),
        }
    }

    /// Sends one admin command.
    pub async fn call(&self, command: CommandV1) -> Result<ResponseV1> {
        Ok(self.client().call(command).await?)
    }

    /// Its status.
    pub async fn status(&self) -> Result<hearth_proto::api::StatusV1> {
        match self.call(CommandV1::Status).await? {
            ResponseV1::Status(status) => Ok(*status),
            other => bail!("{}: {other:?}", self.name),
        }
    }

    /// Its live routes.
    pub async fn routes(&self) -> Result<Vec<hearth_proto::api::RouteRowV1>> {
        match self.call(CommandV1::Routes).await? {
            ResponseV1::Routes(rows) => Ok(rows),
            other => bail!("{}: {other:?}", self.name),
        }
    }

    /// Publishes an HTTP route on this node (or `on` another, if this node is an admin).
    pub async fn publish(&self, host: &str, target: &str, on: Option<&str>) -> Result<()> {
        self.publish_tls(host, target, on, RouteTls::default())
            .await
    }

    /// Publishes an HTTP route with TLS mode `tls`: terminated at the edges (the default),
    /// plain HTTP only, or passed through to the hosting member (`--tls passthrough`).
    pub async fn publish_tls(
        &self,
        host: &str,
        target: &str,
        on: Option<&str>,
        tls: RouteTls,
    ) -> Result<()> {
        let command = CommandV1::Publish {
            spec: hearth_proto::route::RouteSpec::Http { host: host.into() },
            target: target.into(),
            node: on.map(String::from),
            proxy_protocol: false,
            tls,
        };
        match self.call(command).await? {
            ResponseV1::Published(_) => Ok(()),
            other => bail!("{}: publish {host} (tls {tls}): {other:?}", self.name),
        }
    }

    /// Publishes a raw TCP route: `port` on the edges leads to `target` on this node.
    pub async fn publish_tcp(&self, port: u16, target: &str, proxy_protocol: bool) -> Result<()> {
        let command = CommandV1::Publish {
            spec: hearth_proto::route::RouteSpec::Tcp { port },
            target: target.into(),
            node: None,
            proxy_protocol,
            tls: Default::default(),
        };
        match self.call(command).await? {
            ResponseV1::Published(_) => Ok(()),
            other => bail!("{}: publish tcp/{port}: {other:?}", self.name),
        }
    }

    /// A single-use invite.
    pub async fn invite(&self) -> Result<String> {
        let command = CommandV1::Invite {
            ttl_secs: 3600,
            uses: 1,
            role: Role::Member,
        };
        match self.client().call(command).await? {
            ResponseV1::Invite(created) => Ok(created.code),
            other => bail!("{}: {other:?}", self.name),
        }
    }
}

fn check(name: &str, what: &str, out: &std::process::Output) -> Result<()> {
    if out.status.success() {
        return Ok(());
    }
    bail!(
        "{name}: hearthd {what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A mesh of processes founded by node 0 and joined by invites.
#[derive(Debug)]
pub struct ProcMesh {
    /// The nodes.
    pub nodes: Vec<ProcNode>,
    /// Where their data dirs are.
    pub root: PathBuf,
    bins: Binaries,
}

impl ProcMesh {
    /// Starts `n` nodes under `root`.
    pub async fn start(bins: &Binaries, root: &Path, n: usize) -> Result<Self> {
        let mut mesh = Self {
            nodes: Vec::new(),
            root: root.to_path_buf(),
            bins: bins.clone(),
        };
        let mut founder = ProcNode::new(bins, root.join("node0"), "node0");
        founder.init().await?;
        founder.run().await?;
        mesh.nodes.push(founder);
        for _ in 1..n {
            let node = mesh.prepare_node();
            let code = mesh.nodes[0].invite().await?;
            node.join(&code).await?;
            mesh.push_running(node).await?;
        }
        Ok(mesh)
    }

    /// A node that has not joined yet, named after its future index.
    pub fn prepare_node(&self) -> ProcNode {
        let name = format!("node{}", self.nodes.len());
        ProcNode::new(&self.bins, self.root.join(&name), &name)
    }

    /// Runs a joined node and adds it to the mesh.
    pub async fn push_running(&mut self, mut node: ProcNode) -> Result<()> {
        node.run().await?;
        self.nodes.push(node);
        Ok(())
    }

    /// Kills every node.
    pub async fn stop(&mut self) {
        for node in &mut self.nodes {
            node.kill().await;
        }
    }
}
pub use crate::proc_stats::ProcCounters;

/// Log lines with runs of the same message (timestamp and fields aside) folded into their
/// last line and a count.
fn collapse_repeats<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<(String, String, usize)> = Vec::new();
    for line in lines {
        let key = message_of(line);
        match out.last_mut() {
            Some((last_key, last, count)) if *last_key == key => {
                *last = line.to_string();
                *count += 1;
            }
            _ => out.push((key, line.to_string(), 1)),
        }
    }
    out.into_iter()
        .map(|(_, line, count)| match count {
            1 => line,
            n => format!("{line}\n    ({} more like it before)", n - 1),
        })
        .collect()
}

/// A log line without its timestamp, colours and `key=value` fields.
fn message_of(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .skip(1)
        .filter(|word| !word.contains('{'))
        .take_while(|word| !word.contains('='))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod log_tail_tests {
    use super::*;

    #[test]
    fn runs_of_one_message_fold_into_one_line() {
        let log = "\
2026-12-02T00:54:47Z  WARN http: answered 502 request_id=1 peer=a
2026-12-02T00:54:48Z  WARN http: answered 502 request_id=2 peer=b
2026-12-02T00:54:49Z  INFO mesh{node=ab}: edges: edge set changed edges=[]
2026-12-02T00:54:49Z  INFO mesh{node=ab}: edges: announcing changed=[reach]
2026-12-02T00:54:50Z  WARN http: answered 502 request_id=3 peer=c";
        let folded = collapse_repeats(log.lines());
        assert_eq!(folded.len(), 4);
        assert!(folded[0].contains("request_id=2") && folded[0].contains("1 more like it"));
        assert!(folded[1].contains("edge set changed"));
        assert!(folded[2].contains("announcing"));
        assert!(folded[3].ends_with("peer=c"));
    }
}
