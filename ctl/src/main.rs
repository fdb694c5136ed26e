//! `hearthctl`: inspect and manage the local hearthd over its admin socket.
//!
//! Only parses arguments, makes one call and prints; the protocol lives in
//! [`hearthctl::client`] and the text in [`hearthctl::render`], where they are tested.
//! Exit codes: 0 done, 1 the daemon refused the command, 2 the daemon could not be reached or
//! answered nonsense (clap's own usage errors also exit 2).

use clap::{Args, Parser, Subcommand};
use hearth_proto::api::{CommandV1, ResponseV1};
use hearth_proto::cert::CertAction;
use hearth_proto::route::{parse_host, parse_port, parse_target, RouteSpec, RouteTls};
use hearth_proto::Role;
use hearthctl::client::{default_socket, AdminClient};
use hearthctl::{duration, render};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest invite lifetime accepted; a code is a bearer secret, so it should not live long.
const MAX_INVITE_TTL_SECS: u64 = 30 * 86_400;

#[derive(Debug, Parser)]
#[command(
    name = "hearthctl",
    version,
    about = "Inspect and manage the local Hearth node through its admin socket"
)]
struct Cli {
    /// The node's data dir; its admin socket is `<dir>/hearthd.sock`.
    #[arg(long, global = true, env = "HEARTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The admin socket itself, when it is not in the data dir.
    #[arg(long, global = true, env = "HEARTH_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the daemon's answer as JSON instead of text for people.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// This node, its mesh and its peers.
    Status,
    /// Every member: name, id, role, addresses, connected, last seen.
    Members,
    /// Print an invite code for a new machine (admins only).
    Invite {
        /// How long the code stays valid: 30s, 10m, 1h, 7d or seconds; at most 30d.
        #[arg(long, default_value = "1h", value_parser = invite_ttl)]
        ttl: u64,
        /// How many machines may join with it (1-1000).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
        uses: u32,
        /// Role for the new machine: member or admin.
        #[arg(long, default_value = "member")]
        role: Role,
    },
    /// Remove a member for good (admins only).
    Revoke {
        /// Its name, full id or a unique id prefix.
        node: String,
    },
    /// Make this node dial an address, e.g. a public node waiting in `hearthd join`.
    Dial {
        /// A multiaddr such as /ip4/203.0.113.7/udp/7700/quic-v1.
        addr: String,
    },
    /// Publish a route: edges send HOST (or edge port --tcp PORT) to ADDR:PORT on a member.
    Publish {
        #[command(flatten)]
        route: RouteArg,
        /// Where the hosting member connects, e.g. 127.0.0.1:2368, [::1]:80 or gitea:3000.
        #[arg(
            long,
            value_name = "ADDR:PORT",
            value_parser = parse_target,
            required_unless_present = "container",
            conflicts_with = "container"
        )]
        to: Option<String>,
        /// Instead of --to: a Docker container on this node; the route follows its address
        /// and is withdrawn while it is stopped or unhealthy.
        #[arg(long, value_name = "NAME", requires = "port", conflicts_with = "node")]
        container: Option<String>,
        /// With --container: the port inside the container.
        #[arg(long, value_name = "PORT", value_parser = parse_port, requires = "container")]
        port: Option<u16>,
        /// Hosting member: name, id or unique id prefix; default this node (others: admins only).
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// TCP routes, and HTTP routes with `--tls passthrough` whose target terminates TLS
        /// itself: send a PROXY protocol v2 header first, so the target sees the visitor's
        /// address.
        #[arg(long)]
        proxy_protocol: bool,
        /// HTTP routes: plain HTTP only; no certificate is ordered and `:80` does not
        /// redirect to HTTPS (default: HTTPS at the edges). Same as `--tls off`.
        #[arg(long, conflicts_with_all = ["tcp", "tls"])]
        http_only: bool,
        /// HTTP routes: where TLS ends. `edge` (default): at the edges, with a certificate
        /// they share. `passthrough`: on the hosting member, which obtains and keeps the
        /// certificate; the edges forward the TLS bytes by SNI and never see plaintext.
        /// `off`: plain HTTP only.
        #[arg(long, value_name = "MODE", conflicts_with = "tcp")]
        tls: Option<RouteTls>,
    },
    /// Withdraw a route published with `hearthctl publish`.
    Unpublish {
        #[command(flatten)]
        route: RouteArg,
        /// Hosting member: name, id or unique id prefix; default this node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// Every live route: what it matches, hosting member, target, age.
    Routes,
    /// The elected edges and their addresses, and why every other member is not an edge.
    Edges,
    /// Certificates of the published hosts: state, issuer, expiry, which edges hold them.
    Certs {
        #[command(subcommand)]
        action: Option<CertsCmd>,
    },
}

/// `hearthctl certs renew|rotate HOST`.
#[derive(Debug, Subcommand)]
enum CertsCmd {
    /// Order a new certificate for HOST now (counts against the CA's weekly limit).
    Renew {
        /// A published host or a certificate name such as *.example.com.
        host: String,
    },
    /// Order a new certificate with a new key for HOST now, and revoke the old one.
    Rotate {
        /// A published host or a certificate name such as *.example.com.
        host: String,
    },
}

/// What a route matches: a host name or an edge TCP port, exactly one of them.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct RouteArg {
    /// Host name for an HTTP(S) route, e.g. blog.example.com.
    #[arg(value_name = "HOST", value_parser = parse_host)]
    host: Option<String>,
    /// Edge port for a raw TCP route instead of a host name (1-65535).
    #[arg(long, value_name = "PORT", value_parser = parse_port)]
    tcp: Option<u16>,
}

impl RouteArg {
    fn into_spec(self) -> RouteSpec {
        match (self.tcp, self.host) {
            (Some(port), _) => RouteSpec::Tcp { port },
            // clap guarantees exactly one; an empty host would be refused by the daemon.
            (None, host) => RouteSpec::Http {
                host: host.unwrap_or_default(),
            },
        }
    }
}

impl Cmd {
    fn into_command(self) -> CommandV1 {
        match self {
            Cmd::Status => CommandV1::Status,
            Cmd::Members => CommandV1::Members,
            Cmd::Invite { ttl, uses, role } => CommandV1::Invite {
                ttl_secs: ttl,
                uses,
                role,
            },
            Cmd::Revoke { node } => CommandV1::Revoke { node },
            Cmd::Dial { addr } => CommandV1::Dial { addr },
            Cmd::Publish {
                route,
                container: Some(container),
                port,
                http_only,
                tls,
                ..
            } => CommandV1::PublishContainer {
                spec: route.into_spec(),
                container,
                // clap requires --port with --container.
                port: port.unwrap_or_default(),
                tls: tls_mode(http_only, tls),
            },
            Cmd::Publish {
                route,
                to,
                node,
                proxy_protocol,
                http_only,
                tls,
                ..
            } => CommandV1::Publish {
                spec: route.into_spec(),
                target: to.unwrap_or_default(),
                node,
                proxy_protocol,
                tls: tls_mode(http_only, tls),
            },
            Cmd::Unpublish { route, node } => CommandV1::Unpublish {
                spec: route.into_spec(),
                node,
            },
            Cmd::Routes => CommandV1::Routes,
            Cmd::Edges => CommandV1::Edges,
            Cmd::Certs { action: None } => CommandV1::Certs,
            Cmd::Certs {
                action: Some(CertsCmd::Renew { host }),
            } => CommandV1::CertAction {
                host,
                action: CertAction::Renew,
            },
            Cmd::Certs {
                action: Some(CertsCmd::Rotate { host }),
            } => CommandV1::CertAction {
                host,
                action: CertAction::Rotate,
            },
        }
    }
}

fn tls_mode(http_only: bool, tls: Option<RouteTls>) -> RouteTls {
    if http_only {
        RouteTls::Off
    } else {
        tls.unwrap_or_default()
    }
}

fn invite_ttl(text: &str) -> Result<u64, String> {
    duration::parse_within(text, MAX_INVITE_TTL_SECS)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Text for people, for every answer but an error.
fn render_text(response: &ResponseV1) -> String {
    match response {
        ResponseV1::Status(status) => render::status(status),
        ResponseV1::Members(rows) => render::members(rows, now_ms()),
        ResponseV1::Invite(created) => render::invite(created, now_ms()),
        ResponseV1::Revoked { node, name } => render::revoked(node, name),
        ResponseV1::Dialing { addr } => render::dialing(addr),
        ResponseV1::Published(row) => render::published(row),
        ResponseV1::Following {
            spec,
            container,
            port,
        } => render::following(spec, container, *port),
        ResponseV1::Unpublished { spec, node } => render::unpublished(spec, node),
        ResponseV1::Routes(rows) => render::routes(rows, now_ms()),
        ResponseV1::Edges(report) => render::edges(report),
        ResponseV1::Certs(report) => render::certs(report, now_ms()),
        ResponseV1::CertRequested {
            name,
            action,
            issuer,
        } => render::cert_requested(name, *action, issuer.as_deref()),
        ResponseV1::Error(e) => format!("error: {}\n", e.message),
    }
}

/// Writes to stdout, treating a closed pipe (`hearthctl members | head -1`) as success rather
/// than panicking like `print!` would.
fn emit(text: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(2)
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = AdminClient::new(default_socket(
        cli.data_dir.as_deref(),
        cli.socket.as_deref(),
    ));
    let response = match client.call(cli.command.into_command()).await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let ResponseV1::Error(e) = &response {
        eprintln!("error: {}", e.message);
        return ExitCode::from(1);
    }
    if cli.json {
        return match serde_json::to_string_pretty(&response) {
            Ok(json) => emit(&(json + "\n")),
            Err(e) => {
                eprintln!("error: cannot encode the answer as JSON: {e}");
                ExitCode::from(2)
            }
        };
    }
    emit(&render_text(&response))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("hearthctl").chain(args.iter().copied()))
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn invite_defaults_and_limits() {
        let cli = parse(&["invite"]).unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Invite {
                ttl_secs: 3_600,
                uses: 1,
                role: Role::Member
            }
        );
        let cli = parse(&[
            "--json", "invite", "--ttl", "7d", "--uses", "3", "--role", "admin",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Invite {
                ttl_secs: 604_800,
                uses: 3,
                role: Role::Admin
            }
        );
        for bad in [
            &["invite", "--ttl", "0"][..],
            &["invite", "--ttl", "31d"],
            &["invite", "--ttl", "1w"],
            &["invite", "--uses", "0"],
            &["invite", "--uses", "1001"],
            &["invite", "--role", "owner"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = parse(&["invite", "--ttl", "0"]).unwrap_err().to_string();
        assert!(err.contains("between 1s and 30d"), "{err}");
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["members", "--socket", "/s.sock", "--json"]).unwrap();
        assert_eq!(cli.socket.as_deref(), Some(std::path::Path::new("/s.sock")));
        assert!(cli.json);
        let cli = parse(&["revoke", "laptop"]).unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Revoke {
                node: "laptop".into()
            }
        );
    }

    #[test]
    fn publish_builds_http_and_tcp_routes() {
        let cli = parse(&["publish", "Blog.Example.com", "--to", "127.0.0.1:2368"]).unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Publish {
                spec: RouteSpec::Http {
                    host: "blog.example.com".into()
                },
                target: "127.0.0.1:2368".into(),
                node: None,
                proxy_protocol: false,
                tls: RouteTls::Edge,
            }
        );
        let cli = parse(&[
            "publish",
            "a.example.com",
            "--to",
            "127.0.0.1:80",
            "--http-only",
        ])
        .unwrap();
        assert!(matches!(
            cli.command.into_command(),
            CommandV1::Publish {
                tls: RouteTls::Off,
                ..
            }
        ));
        assert!(parse(&["publish", "--tcp", "22", "--to", "x:22", "--http-only"]).is_err());
        let cli = parse(&[
            "publish",
            "a.example.com",
            "--to",
            "127.0.0.1:80",
            "--tls",
            "passthrough",
        ])
        .unwrap();
        assert!(matches!(
            cli.command.into_command(),
            CommandV1::Publish {
                tls: RouteTls::Passthrough,
                ..
            }
        ));
        let err = parse(&["publish", "a.example.com", "--to", "x:1", "--tls", "blind"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("passthrough"), "{err}");
        let cli = parse(&[
            "publish", "--tcp", "22", "--to", "[::1]:22", "--node", "home",
        ])
        .unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Publish {
                spec: RouteSpec::Tcp { port: 22 },
                target: "[::1]:22".into(),
                node: Some("home".into()),
                proxy_protocol: false,
                tls: RouteTls::Edge,
            }
        );
    }

    #[test]
    fn publish_refuses_bad_values_naming_them() {
        for (args, needle) in [
            (
                &["publish", "bad_host!", "--to", "1.2.3.4:80"][..],
                "`bad_host!` is not a valid host name",
            ),
            (
                &["publish", "--tcp", "0", "--to", "x:1"],
                "`0` is not a valid port",
            ),
            (&["publish", "--tcp", "70000", "--to", "x:1"], "`70000`"),
            (
                &["publish", "a.b", "--to", "1.2.3.4"],
                "`1.2.3.4` is not a valid target",
            ),
            (&["publish", "a.b", "--to", "1.2.3.4:0"], "`1.2.3.4:0`"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(needle), "{args:?}: {err}");
            assert!(err.contains("e.g.") || err.contains("1-65535"), "{err}");
        }
    }

    #[test]
    fn publish_takes_exactly_one_of_host_and_tcp() {
        let both = parse(&["publish", "a.b", "--tcp", "22", "--to", "1.2.3.4:22"]).unwrap_err();
        assert_eq!(
            both.kind(),
            clap::error::ErrorKind::ArgumentConflict,
            "{both}"
        );
        let neither = parse(&["publish", "--to", "1.2.3.4:22"]).unwrap_err();
        assert_eq!(
            neither.kind(),
            clap::error::ErrorKind::MissingRequiredArgument,
            "{neither}"
        );
        assert!(parse(&["publish", "a.b"]).is_err(), "--to is required");
        assert!(parse(&["unpublish"]).is_err());
        assert!(parse(&["unpublish", "a.b", "--tcp", "22"]).is_err());
    }

    #[test]
    fn certs_and_its_actions_parse() {
        assert_eq!(
            parse(&["certs"]).unwrap().command.into_command(),
            CommandV1::Certs
        );
        assert_eq!(
            parse(&["certs", "renew", "blog.example.com"])
                .unwrap()
                .command
                .into_command(),
            CommandV1::CertAction {
                host: "blog.example.com".into(),
                action: CertAction::Renew
            }
        );
        assert_eq!(
            parse(&["certs", "rotate", "*.example.com"])
                .unwrap()
                .command
                .into_command(),
            CommandV1::CertAction {
                host: "*.example.com".into(),
                action: CertAction::Rotate
            }
        );
        assert!(parse(&["certs", "renew"]).is_err());
    }

    #[test]
    fn unpublish_and_routes_parse() {
        let cli = parse(&["unpublish", "A.B", "--node", "vps"]).unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Unpublish {
                spec: RouteSpec::Http { host: "a.b".into() },
                node: Some("vps".into()),
            }
        );
        let cli = parse(&["unpublish", "--tcp", "2222"]).unwrap();
        assert_eq!(
            cli.command.into_command(),
            CommandV1::Unpublish {
                spec: RouteSpec::Tcp { port: 2222 },
                node: None,
            }
        );
        let cli = parse(&["routes", "--json"]).unwrap();
        assert!(cli.json);
        assert_eq!(cli.command.into_command(), CommandV1::Routes);
    }
}
