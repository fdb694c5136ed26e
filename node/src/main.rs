//! `hearthd`: parses the command line, builds the node, runs it, drains on a signal.

use anyhow::Result;
use clap::{Parser, Subcommand};
use hearth_node::config::Config;
use hearth_node::identity::default_name;
use std::path::PathBuf;
use std::time::Duration;

/// The Hearth node daemon.
#[derive(Debug, Parser)]
#[command(
    name = "hearthd",
    version,
    about = "Hearth node daemon: one per machine of your personal cloud"
)]
struct Cli {
    /// Config file (TOML). Default: /etc/hearth/hearthd.toml if it exists.
    #[arg(long, global = true, env = "HEARTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (key, store, admin socket).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Found a new mesh with this node as its first admin.
    Init {
        /// This node's name (default: host name).
        #[arg(long)]
        name: Option<String>,
        /// The mesh's name.
        #[arg(long, default_value = "hearth")]
        mesh_name: String,
    },
    /// Join a mesh with an invite code from `hearthctl invite`.
    Join {
        /// The invite code.
        code: String,
        /// This node's name (default: host name).
        #[arg(long)]
        name: Option<String>,
        /// How long to wait for the inviter, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
    /// Run the node.
    Run,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCmd,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// Check the config and print the effective values.
    Check,
}

fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = Some(dir.clone());
    }
    Ok(config)
}

/// Log levels unless `HEARTH_LOG` says otherwise. AutoNAT servers time out dialing back the
/// addresses of members behind NAT, and QUIC cannot send to their LAN addresses: both are
/// normal here, so only errors of theirs are shown; hickory logs every DNS query at info.
const DEFAULT_LOG: &str =
    "info,libp2p=warn,libp2p_autonat=error,quinn_udp=error,hickory_server=warn";

fn main() {
    // Before any thread starts: the allocator's arenas are per thread.
    let refused = hearth_node::memory::tune_allocator();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    runtime.block_on(serve(refused));
}

async fn serve(allocator_refused: Vec<&'static str>) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HEARTH_LOG")
                .unwrap_or_else(|_| DEFAULT_LOG.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if !allocator_refused.is_empty() {
        tracing::debug!(settings = ?allocator_refused, "the C library refused allocator settings");
    }
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("error: {}", report(&e));
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    let config = load_config(&cli)?;
    match &cli.command {
        Cmd::Init { name, mesh_name } => {
            let name = name
                .clone()
                .or(config.name.clone())
                .unwrap_or_else(default_name);
            let done = hearth_node::init(&config, &name, mesh_name)?;
            println!(
                "founded mesh {} ({}) with this node {} ({}) as admin\ndata dir: {}\nnext: hearthd run{}",
                mesh_name,
                done.mesh.short(),
                name,
                done.node.short(),
                done.data_dir.display(),
                data_dir_flag(&cli)
            );
        }
        Cmd::Join {
            code,
            name,
            timeout,
        } => {
            let name = name
                .clone()
                .or(config.name.clone())
                .unwrap_or_else(default_name);
            let hint = |listening: &[String]| {
                eprintln!(
                    "the inviter is not reachable at the code's addresses (it may be behind NAT).\n\
                     still waiting; on the inviting node run one of:"
                );
                for addr in listening {
                    eprintln!("  hearthctl dial {addr}");
                }
            };
            let joined =
                hearth_node::join::join(&config, &name, code, Duration::from_secs(*timeout), &hint)
                    .await?;
            println!(
                "joined mesh {} as {} ({}, {}); {} members\nnext: hearthd run{}",
                joined.mesh.short(),
                name,
                joined.node.short(),
                joined.role,
                joined.members,
                data_dir_flag(&cli)
            );
        }
        Cmd::Run => {
            let node = hearth_node::start(&config).await?;
            eprintln!(
                "hearthd {} running; admin socket {}",
                node.node.short(),
                node.socket.display()
            );
            wait_for_signal().await;
            node.shutdown().await;
        }
        Cmd::Config {
            command: ConfigCmd::Check,
        } => {
            println!("config ok\n{}", toml::to_string_pretty(&config)?);
        }
    }
    Ok(())
}

fn data_dir_flag(cli: &Cli) -> String {
    cli.data_dir
        .as_ref()
        .map(|d| format!(" --data-dir {}", d.display()))
        .unwrap_or_default()
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// The error and its causes on one line, each said once: many of the project's errors already
/// carry their source's text in their own message (`invite refused: {0}`), which anyhow's
/// `{:#}` would print a second time.
fn report(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::report;
    use hearth_node::NodeError;
    use hearth_proto::invite::InviteError;

    #[test]
    fn an_error_that_quotes_its_cause_is_printed_once() {
        let e = anyhow::Error::from(NodeError::from(InviteError::NotAnInvite));
        let text = report(&e);
        assert_eq!(text, NodeError::from(InviteError::NotAnInvite).to_string());
        assert_eq!(
            text.matches("not a Hearth invite code").count(),
            1,
            "{text}"
        );
    }

    #[test]
    fn context_and_a_cause_it_does_not_quote_are_both_printed() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::from(io).context("cannot read /etc/hearth/hearthd.toml");
        assert_eq!(
            report(&e),
            "cannot read /etc/hearth/hearthd.toml: disk on fire"
        );
    }
}
