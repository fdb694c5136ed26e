//! `hearth-testnet`: the demo and the benchmarks.

use anyhow::Result;
use clap::{Parser, Subcommand};
use hearth_testnet::probe;
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
    /// Time for a five-node namespace-lab mesh to form (root).
    LabFormation {
        /// Labs to build.
        #[arg(long, default_value_t = 5)]
        runs: usize,
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
            which: Bench::LabFormation { runs },
            out,
        } => hearth_testnet::bench::lab_formation(runs, &out).await,
    }
}
