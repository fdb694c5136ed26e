//! `hearth-testnet`: the demo and the benchmarks.

use anyhow::Result;
use clap::{Parser, Subcommand};
use hearth_testnet::{dns_query, probe};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "hearth-testnet", about = "Hearth demo meshes and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a mesh to look at; Ctrl-C stops it and cleans up.
    Demo {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
    },
    /// Socket checks that lab tests run inside a host (not for people).
    #[command(hide = true)]
    Probe {
        #[command(subcommand)]
        what: Probe,
    },
    /// Run a benchmark and write its section of docs/benchmarks.md.
    Bench {
        #[command(subcommand)]
        which: Bench,
        /// The file to write.
        #[arg(long, default_value = "docs/benchmarks.md", global = true)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Time from `hearthd join` to the new member being listed on every node.
    Join {
        /// Nodes in the mesh before the first join.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Joins to time.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Time from publish until every node stores the route (root).
    Publish {
        /// Lab sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,20")]
        nodes: Vec<usize>,
        /// Publishes per size.
        #[arg(long, default_value_t = 50)]
        count: usize,
    },
    /// Formation, publish-to-all latency and idle traffic, CPU, disk writes, memory and
    /// connections per node, in labs of several sizes (root).
    Scale {
        /// Lab sizes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "5,20,50")]
        nodes: Vec<usize>,
    },
    /// Time for a five-node namespace-lab mesh to form (root).
    LabFormation {
        /// Labs to build.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Requests/s, latency, download speed and memory: Hearth against direct, Caddy +
    /// WireGuard and rathole, in one namespace lab (root; installs what it needs).
    Dataplane,
    /// Time from `docker start` of a labelled container to the first 200 through an edge
    /// (root, a Docker engine, and the static hearth-testsrv built).
    Docker {
        /// Starts to time.
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// Time from publishing a host to the first HTTPS 200 with a certificate from a real ACME
    /// CA (Pebble) through each edge (root, Debian's pebble installed).
    Acme {
        /// Hosts to publish and time.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Failover gap when an edge is killed under load, time for the mesh and its DNS to drop
    /// it, and time to elect a newly joined public node (root).
    Failover {
        /// Edge kills to time.
        #[arg(long, default_value_t = 10)]
        kills: usize,
        /// Public nodes to join and time until elected.
        #[arg(long, default_value_t = 5)]
        joins: usize,
    },
}

#[derive(Debug, Subcommand)]
enum Probe {
    /// Accept COUNT TCP connections, print each peer IP.
    TcpServe {
        addr: SocketAddr,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
    /// Connect over TCP; exit 1 if it fails.
    TcpConnect {
        addr: SocketAddr,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Echo UDP datagrams.
    UdpEcho { addr: SocketAddr },
    /// Delay every packet of an NFQUEUE (the lab's stand-in for netem delay).
    Delay {
        #[arg(long)]
        queue: u16,
        #[arg(long)]
        ms: u64,
    },
    /// Push a route signed by a member for another node (it must be refused).
    Inject(hearth_testnet::inject::Forgery),
    /// Send a UDP datagram and wait for the echo; exit 1 if none.
    UdpAsk {
        addr: SocketAddr,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// One DNS question over UDP: print `rcode=… aa=… answers=N`, then one line per answer
    /// record; exit 1 only if nothing answers.
    Dns {
        server: SocketAddr,
        name: String,
        #[arg(long = "type", default_value = "A")]
        rtype: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// HTTP/1.1 backend: /, /headers, POST /sha256, /bytes?n=N, /ws (WebSocket echo).
    HttpBackend {
        addr: SocketAddr,
        #[arg(long)]
        name: String,
        /// Exit after this many seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime_secs: u64,
    },
    /// TCP echo; with --proxy-v2, read a PROXY v2 header first and print its source.
    TcpEcho {
        addr: SocketAddr,
        #[arg(long)]
        proxy_v2: bool,
        /// Exit after this many seconds.
        #[arg(long, default_value_t = 3600)]
        lifetime_secs: u64,
    },
    /// One HTTP request with a Host header; print status, size, sha256 and body.
    Http(hearth_testnet::visitor::http::HttpArgs),
    /// WebSocket echo of COUNT messages through URL.
    WsEcho {
        url: String,
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// Send a request head slowly; report when the server closes the connection.
    Slowloris {
        addr: SocketAddr,
        #[arg(long)]
        host: String,
        /// One more byte every this many ms.
        #[arg(long, default_value_t = 500)]
        every_ms: u64,
        /// Fail if still open after this many ms.
        #[arg(long, default_value_t = 30_000)]
        max_ms: u64,
    },
    /// Send the start of a TLS record header and then nothing; report when the server closes
    /// the connection.
    SlowHello {
        addr: SocketAddr,
        /// Fail if still open after this many ms.
        #[arg(long, default_value_t = 30_000)]
        max_ms: u64,
    },
    /// Send BYTES through a TCP echo and check that they come back unchanged.
    TcpRoundtrip {
        addr: SocketAddr,
        #[arg(long)]
        bytes: u64,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// A GET that must be answered 502; report how long that took.
    #[command(name = "time-502")]
    Time502 {
        url: String,
        #[arg(long)]
        host: String,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// One HTTPS request with a chosen name to a chosen address; print protocol, certificate,
    /// status, headers and body.
    Https(hearth_testnet::visitor::https::HttpsArgs),
    /// WebSocket echo of COUNT messages over TLS.
    WssEcho {
        #[arg(long)]
        connect: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "/ws")]
        path: String,
        #[arg(long)]
        ca: Option<PathBuf>,
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[arg(long, default_value_t = 60_000)]
        timeout_ms: u64,
    },
    /// HTTPS GETs over fresh connections to several edges in turn until a stop file appears.
    HttpsLoop(hearth_testnet::visitor::https::LoopArgs),
    /// Steady GET load across several edges, retrying on the next edge; print one line
    /// `ok=N failed=N retried=N max_gap_ms=N … per_edge=IP:PORT:N,…`.
    FailoverLoad(hearth_testnet::visitor::failover::FailoverArgs),
    /// A non-member dials an edge's tunnel and tries to open a stream; exit 1 if it can.
    QuinnIntrude {
        addr: SocketAddr,
        #[arg(long)]
        edge_id: hearth_proto::NodeId,
        /// The route the stream asks for.
        #[arg(long, default_value = "hello.hearth.test")]
        host: String,
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
}

/// The data-plane probes: services behind an edge and the visitors that use them.
async fn visit(probe: Probe) -> Result<()> {
    use hearth_testnet::{backend, tcp_echo, visitor};
    let ms = Duration::from_millis;
    match probe {
        Probe::HttpBackend {
            addr,
            name,
            lifetime_secs,
        } => backend::serve(addr, name, Duration::from_secs(lifetime_secs)).await,
        Probe::TcpEcho {
            addr,
            proxy_v2,
            lifetime_secs,
        } => tcp_echo::serve(addr, proxy_v2, Duration::from_secs(lifetime_secs)).await,
        Probe::Http(args) => visitor::http::run(&args).await,
        Probe::WsEcho {
            url,
            host,
            count,
            timeout_ms,
        } => visitor::ws::echo(&url, &host, count, ms(timeout_ms)).await,
        Probe::Slowloris {
            addr,
            host,
            every_ms,
            max_ms,
        } => visitor::raw::slowloris(addr, &host, ms(every_ms), ms(max_ms)).await,
        Probe::SlowHello { addr, max_ms } => visitor::raw::slow_hello(addr, ms(max_ms)).await,
        Probe::TcpRoundtrip {
            addr,
            bytes,
            timeout_ms,
        } => visitor::raw::tcp_roundtrip(addr, bytes, ms(timeout_ms)).await,
        Probe::Time502 {
            url,
            host,
            timeout_ms,
        } => visitor::http::time_502(&url, &host, ms(timeout_ms)).await,
        Probe::QuinnIntrude {
            addr,
            edge_id,
            host,
            timeout_ms,
        } => visitor::intrude::intrude(addr, edge_id, &host, ms(timeout_ms)).await,
        Probe::FailoverLoad(args) => visitor::failover::probe(&args).await,
        Probe::Https(args) => visitor::https::run(&args).await,
        Probe::WssEcho {
            connect,
            name,
            path,
            ca,
            count,
            timeout_ms,
        } => {
            let target = visitor::https::TlsTarget {
                connect,
                name,
                roots: ca.as_deref().map(visitor::https::roots_from).transpose()?,
            };
            visitor::https::wss_echo(&target, &path, count, ms(timeout_ms)).await
        }
        Probe::HttpsLoop(args) => visitor::https::https_loop(&args).await,
        other => anyhow::bail!("{other:?} is not a data-plane probe"),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("HEARTH_LOG"))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Probe { what } => match what {
            Probe::TcpServe { addr, count } => probe::tcp_serve(addr, count).await,
            Probe::TcpConnect { addr, timeout_ms } => {
                probe::tcp_connect(addr, Duration::from_millis(timeout_ms)).await
            }
            Probe::UdpEcho { addr } => probe::udp_echo(addr).await,
            Probe::Inject(forgery) => {
                let (stored, rejected) = hearth_testnet::inject::inject(&forgery).await?;
                println!("stored={stored} rejected={rejected}");
                Ok(())
            }
            Probe::Delay { queue, ms } => {
                tokio::task::spawn_blocking(move || {
                    hearth_testnet::delay::run(queue, Duration::from_millis(ms))
                })
                .await?
            }
            Probe::UdpAsk { addr, timeout_ms } => {
                probe::udp_ask(addr, Duration::from_millis(timeout_ms)).await
            }
            Probe::Dns {
                server,
                name,
                rtype,
                timeout_ms,
            } => {
                let timeout = Duration::from_millis(timeout_ms);
                let answer = dns_query::query(server, &name, &rtype, timeout).await?;
                for line in answer.lines() {
                    println!("{line}");
                }
                Ok(())
            }
            other => visit(other).await,
        },
        Cmd::Demo { nodes } => hearth_testnet::demo::run(nodes).await,
        Cmd::Bench {
            which: Bench::Join { nodes, runs },
            out,
        } => hearth_testnet::bench::join_latency(nodes, runs, &out).await,
        Cmd::Bench {
            which: Bench::Publish { nodes, count },
            out,
        } => hearth_testnet::bench::publish_latency(&nodes, count, &out).await,
        Cmd::Bench {
            which: Bench::Scale { nodes },
            out,
        } => hearth_testnet::bench_scale::scale(&nodes, &out).await,
        Cmd::Bench {
            which: Bench::LabFormation { runs },
            out,
        } => hearth_testnet::bench::lab_formation(runs, &out).await,
        Cmd::Bench {
            which: Bench::Dataplane,
            out,
        } => hearth_testnet::bench_dataplane::run(&out).await,
        Cmd::Bench {
            which: Bench::Docker { runs },
            out,
        } => hearth_testnet::bench_docker::docker_start(runs, &out).await,
        Cmd::Bench {
            which: Bench::Acme { runs },
            out,
        } => hearth_testnet::bench_acme::run(runs, &out).await,
        Cmd::Bench {
            which: Bench::Failover { kills, joins },
            out,
        } => hearth_testnet::bench_failover::run(kills, joins, &out).await,
    }
}
