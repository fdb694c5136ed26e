//! The daemon's configuration: one documented struct, defaults in code, TOML file, and
//! `HEARTH_*` environment overrides, applied in that order.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default config file path.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hearth/hearthd.toml";

/// Errors reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said, including line and column.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config value `{field}` is invalid: {message}")]
    Invalid {
        /// Dotted field name.
        field: &'static str,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// Whether this node offers itself as edge ingress (`auto`, `always` or `never`); shared with
/// proto because every node announces it in its NodeInfo. See docs/edges.md.
pub use hearth_proto::election::EdgePreference;

/// `hearthd` configuration. Every field has a default; an empty file is valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name shown to people; defaults to the host name.
    pub name: Option<String>,
    /// Where the key, store and admin socket live. Default: `/var/lib/hearth` for root, the
    /// XDG data dir (`~/.local/share/hearth`) otherwise.
    pub data_dir: Option<PathBuf>,
    /// Edge preference: `auto`, `always` or `never`.
    pub edge: EdgePreference,
    /// Control-plane listen multiaddrs (QUIC, plus TCP as fallback for UDP-blocked networks).
    pub listen: Vec<String>,
    /// Extra addresses to announce, e.g. a cloud VM's public address in front of 1:1 NAT.
    pub advertise: Vec<String>,
    /// Admin socket path; default `<data_dir>/hearthd.sock`.
    pub admin_socket: Option<PathBuf>,
    /// Seconds between anti-entropy rounds with a random connected member.
    pub anti_entropy_secs: u64,
    /// Seconds a non-member connection may stay open to present an invite before it is closed.
    pub guest_grace_secs: u64,
    /// How far ahead of this node's clock a record may be dated, e.g. `"30s"`: a record from
    /// further in the future (a member with a badly set clock) is refused and counted in
    /// `hearthctl status`, so one wrong clock cannot drag every node's clock forward or win
    /// every later conflict.
    #[serde(with = "humantime_serde")]
    pub max_clock_ahead: Duration,
    /// Seconds a withdrawn route's tombstone is kept before it is purged. A node offline for
    /// longer can bring the withdrawn route back, so keep this above any expected downtime.
    pub tombstone_ttl_secs: u64,
    /// Control connections: a member keeps one to every publicly reachable member and to
    /// this many others (its neighbours), not to every member, so a large mesh does not pay
    /// for n² connections and relay circuits. Meshes up to this size plus their public
    /// members are fully connected. See docs/control-plane.md.
    pub neighbours: usize,
    /// The data-plane tunnel endpoint.
    pub tunnel: TunnelConfig,
    /// Edge ingress: HTTP and TCP listeners and their limits (used while this node is an edge).
    pub ingress: IngressConfig,
    /// Publishing local Docker containers.
    pub docker: DockerConfig,
    /// Edge election: heartbeat, lease and how many edges the mesh elects.
    pub edges: EdgesConfig,
    /// Authoritative DNS for the user's zone on the edges (off unless `dns.zone` is set).
    pub dns: DnsConfig,
    /// Automatic certificates for published hosts (off until `acme.accept_terms = true`).
    pub acme: AcmeConfig,
}

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Which ACME challenge the issuer answers (see docs/https.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ChallengePref {
    /// HTTP-01 for host names, DNS-01 for wildcards; another type when the CA offers no
    /// HTTP-01.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// HTTP-01 on the edges' `:80`.
    #[serde(rename = "http-01")]
    Http01,
    /// TLS-ALPN-01 on the edges' HTTPS port.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
    /// DNS-01 on the edges' own DNS (needs `dns.zone` covering the names).
    #[serde(rename = "dns-01")]
    Dns01,
}

impl std::str::FromStr for ChallengePref {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" => Ok(Self::Auto),
            "http-01" => Ok(Self::Http01),
            "tls-alpn-01" => Ok(Self::TlsAlpn01),
            "dns-01" => Ok(Self::Dns01),
            other => Err(format!(
                "`{other}`: use auto, http-01, tls-alpn-01 or dns-01"
            )),
        }
    }
}

/// `[acme]`: certificates from an ACME CA for every published host, shared by the edges.
/// Set the same values on every node that may become an edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AcmeConfig {
    /// The CA's ACME directory URL (`HEARTH_ACME_DIRECTORY`). Default: Let's Encrypt
    /// production.
    pub directory: String,
    /// A contact address the CA may write to about expiring certificates
    /// (`HEARTH_ACME_EMAIL`); optional.
    pub email: Option<String>,
    /// That you accept the CA's terms of service (`HEARTH_ACME_ACCEPT_TERMS=true`). Nothing
    /// is ordered until this is true; HTTPS then answers with self-signed certificates.
    pub accept_terms: bool,
    /// A PEM file of CA certificates trusted, besides the system's, for the ACME server's own
    /// HTTPS, e.g. a test CA such as Pebble's (`HEARTH_ACME_CA_FILE`).
    pub ca_file: Option<PathBuf>,
    /// Which challenge to answer: `auto`, `http-01`, `tls-alpn-01` or `dns-01`
    /// (`HEARTH_ACME_CHALLENGE`).
    pub challenge: ChallengePref,
    /// One wildcard certificate `*.<dns.zone>` (plus the zone itself), through DNS-01 on the
    /// edges' own DNS, for every host directly under the zone (`HEARTH_ACME_WILDCARD`).
    pub wildcard: bool,
    /// How long the issuer waits after every edge serves the challenge answers before it
    /// tells the CA to validate, e.g. `"5s"` (`HEARTH_ACME_PROPAGATION_WAIT`). For DNS
    /// resolvers or load balancers in front of the edges that need time to catch up.
    #[serde(with = "humantime_serde")]
    pub propagation_wait: Duration,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            directory: LETS_ENCRYPT.into(),
            email: None,
            accept_terms: false,
            ca_file: None,
            challenge: ChallengePref::Auto,
            wildcard: false,
            propagation_wait: Duration::ZERO,
        }
    }
}

impl AcmeConfig {
    /// Whether this node may order certificates, and if not, why (for `hearthctl certs`).
    pub fn enabled(&self) -> Result<(), String> {
        if self.accept_terms {
            Ok(())
        } else {
            Err(format!(
                "ACME is off: set `accept_terms = true` under [acme] (or HEARTH_ACME_ACCEPT_TERMS=true) once you accept the terms of service of {}",
                self.directory
            ))
        }
    }
}

/// `[edges]`: this node's part in edge election (see docs/edges.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgesConfig {
    /// Most edges the mesh elects (`HEARTH_EDGES_MAX`, 1-16). Every node announces its value
    /// and the mesh uses the smallest one a live member announces, so every node computes the
    /// same set; set the same value on every node.
    pub max: u8,
    /// Milliseconds between the failure detector's probes (one member probed per period;
    /// in memory, nothing is written).
    pub heartbeat_ms: u64,
    /// Milliseconds a member nobody can reach stays alive in the failure detector: the probe
    /// that finds it silent plus the suspicion during which it may refute. At least twice `heartbeat_ms`, so one late heartbeat
    /// does not drop an edge.
    pub lease_ms: u64,
}

impl Default for EdgesConfig {
    fn default() -> Self {
        Self {
            max: 3,
            heartbeat_ms: 1000,
            lease_ms: 4000,
        }
    }
}

/// `[dns]`: the authoritative DNS server an edge runs for the user's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// The zone the edges answer for, e.g. `hearth.example.com` (`HEARTH_DNS_ZONE`). Unset:
    /// no DNS server. Delegate the zone to the edges as docs/edges.md shows.
    pub zone: Option<String>,
    /// UDP and TCP address the server listens on while this node is an edge
    /// (`HEARTH_DNS_LISTEN`).
    pub listen: String,
    /// TTL of every answer, in seconds: short, so resolvers drop a dead edge quickly.
    pub ttl_secs: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            zone: None,
            listen: "0.0.0.0:53".into(),
            ttl_secs: 10,
        }
    }
}

/// `[docker]`: where the local Docker engine is, and whether to follow its containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Follow containers: publish those with `hearth.*` labels (`HEARTH_DOCKER=on|off`).
    pub enabled: bool,
    /// The engine's Unix socket (`HEARTH_DOCKER_SOCKET`).
    pub socket: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: "/var/run/docker.sock".into(),
        }
    }
}

/// `[tunnel]`: the quinn endpoint that carries proxied connections between members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TunnelConfig {
    /// UDP socket address of the endpoint (`HEARTH_TUNNEL_LISTEN`). Port 0 picks one.
    pub listen: String,
    /// Seconds without any packet after which a tunnel counts as dead. Keep-alives are sent
    /// at a third of this, so a NAT mapping stays open. A dead member is found sooner by the
    /// failure detector, whose verdict closes its tunnels at once.
    pub idle_timeout_secs: u64,
    /// Most proxied connections one member may have open through one tunnel at once.
    pub max_streams_per_member: u32,
}

impl Default for TunnelConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7701".into(),
            idle_timeout_secs: 30,
            max_streams_per_member: 1024,
        }
    }
}

/// A duration written as whole seconds (a number, as the `*_secs` fields take) or in
/// humantime form (`"300s"`, `"5m"`).
fn seconds_or_humantime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(d)? {
        Written::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Written::Text(text) => humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!("`{text}`: {e}; write e.g. \"300s\" or \"5m\""))
        }),
    }
}

/// `[ingress]`: what an edge listens on and how it protects itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngressConfig {
    /// HTTP listener (`HEARTH_HTTP_LISTEN`). Port 0 picks one.
    pub http_listen: String,
    /// HTTPS listener (`HEARTH_HTTPS_LISTEN`). Port 0 picks one.
    pub https_listen: String,
    /// Address TCP routes bind their ports on (`HEARTH_TCP_BIND`).
    pub tcp_bind: String,
    /// Largest request head (request line and headers) in bytes; larger gets 431.
    pub max_head_bytes: usize,
    /// Milliseconds a client has to send a complete request head; slower (slowloris)
    /// connections are closed. It counts from the connection's start for the first request
    /// and from the first byte of each later one, so it never cuts a kept-alive connection
    /// that is merely idle between requests.
    pub header_read_timeout_ms: u64,
    /// How long a client connection may sit without any traffic in either direction, e.g.
    /// `"300s"` or `"5m"`: a kept-alive HTTP connection waiting for its next request, a quiet
    /// WebSocket, TCP route or passthrough connection. The older `idle_timeout_secs = N`
    /// (whole seconds) is still read.
    #[serde(
        alias = "idle_timeout_secs",
        deserialize_with = "seconds_or_humantime",
        serialize_with = "humantime_serde::serialize"
    )]
    pub idle_timeout: Duration,
    /// Milliseconds to reach the hosting member and its target before answering 502.
    pub connect_timeout_ms: u64,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            http_listen: "0.0.0.0:80".into(),
            https_listen: "0.0.0.0:443".into(),
            tcp_bind: "0.0.0.0".into(),
            max_head_bytes: 32 * 1024,
            header_read_timeout_ms: 10_000,
            idle_timeout: Duration::from_secs(300),
            connect_timeout_ms: 600,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            name: None,
            data_dir: None,
            edge: EdgePreference::Auto,
            listen: vec![
                "/ip4/0.0.0.0/udp/7700/quic-v1".into(),
                "/ip4/0.0.0.0/tcp/7700".into(),
            ],
            advertise: Vec::new(),
            admin_socket: None,
            anti_entropy_secs: 10,
            guest_grace_secs: 5,
            max_clock_ahead: Duration::from_secs(30),
            tombstone_ttl_secs: 30 * 24 * 3600,
            neighbours: 8,
            tunnel: TunnelConfig::default(),
            ingress: IngressConfig::default(),
            docker: DockerConfig::default(),
            edges: EdgesConfig::default(),
            dns: DnsConfig::default(),
            acme: AcmeConfig::default(),
        }
    }
}

impl Config {
    /// Loads `path` if given (or the default path if it exists), then applies `HEARTH_*`
    /// environment overrides, then checks the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let default_path = Path::new(DEFAULT_CONFIG_PATH);
        let file = match path {
            Some(p) => Some(p),
            None if default_path.exists() => Some(default_path),
            None => None,
        };
        let mut config = match file {
            Some(p) => Self::from_file(p)?,
            None => Self::default(),
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        config.check()?;
        Ok(config)
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Applies `HEARTH_NAME`, `HEARTH_DATA_DIR`, `HEARTH_EDGE`, `HEARTH_LISTEN` and
    /// `HEARTH_ADVERTISE` (comma-separated lists), `HEARTH_ADMIN_SOCKET`,
    /// `HEARTH_TUNNEL_LISTEN`, `HEARTH_HTTP_LISTEN`, `HEARTH_TCP_BIND`, `HEARTH_DOCKER`,
    /// `HEARTH_DOCKER_SOCKET`, `HEARTH_EDGES_MAX`, `HEARTH_DNS_ZONE`, `HEARTH_DNS_LISTEN`,
    /// `HEARTH_HTTPS_LISTEN` and the `HEARTH_ACME_*` settings of [`AcmeConfig`].
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(v) = get("HEARTH_NAME") {
            self.name = Some(v);
        }
        if let Some(v) = get("HEARTH_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = get("HEARTH_EDGE") {
            self.edge = match v.as_str() {
                "auto" => EdgePreference::Auto,
                "always" => EdgePreference::Always,
                "never" => EdgePreference::Never,
                other => {
                    return Err(ConfigError::Invalid {
                        field: "edge",
                        message: format!("`{other}`: use auto, always or never"),
                    })
                }
            };
        }
        if let Some(v) = get("HEARTH_LISTEN") {
            self.listen = list(v);
        }
        if let Some(v) = get("HEARTH_ADVERTISE") {
            self.advertise = list(v);
        }
        if let Some(v) = get("HEARTH_ADMIN_SOCKET") {
            self.admin_socket = Some(v.into());
        }
        if let Some(v) = get("HEARTH_TUNNEL_LISTEN") {
            self.tunnel.listen = v;
        }
        if let Some(v) = get("HEARTH_HTTP_LISTEN") {
            self.ingress.http_listen = v;
        }
        if let Some(v) = get("HEARTH_TCP_BIND") {
            self.ingress.tcp_bind = v;
        }
        if let Some(v) = get("HEARTH_DOCKER") {
            self.docker.enabled = match v.as_str() {
                "on" => true,
                "off" => false,
                other => {
                    return Err(ConfigError::Invalid {
                        field: "docker.enabled",
                        message: format!("HEARTH_DOCKER=`{other}`: use on or off"),
                    })
                }
            };
        }
        if let Some(v) = get("HEARTH_DOCKER_SOCKET") {
            self.docker.socket = v;
        }
        if let Some(v) = get("HEARTH_EDGES_MAX") {
            self.edges.max = v.parse().map_err(|_| ConfigError::Invalid {
                field: "edges.max",
                message: format!("HEARTH_EDGES_MAX=`{v}`: use a number from 1 to 16"),
            })?;
        }
        if let Some(v) = get("HEARTH_DNS_ZONE") {
            self.dns.zone = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = get("HEARTH_DNS_LISTEN") {
            self.dns.listen = v;
        }
        if let Some(v) = get("HEARTH_HTTPS_LISTEN") {
            self.ingress.https_listen = v;
        }
        self.apply_acme_env(get)
    }

    fn apply_acme_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let flag = |field: &'static str, var: &str, v: String| match v.trim() {
            "true" | "on" | "1" => Ok(true),
            "false" | "off" | "0" => Ok(false),
            other => Err(ConfigError::Invalid {
                field,
                message: format!("{var}=`{other}`: use true or false"),
            }),
        };
        let acme = &mut self.acme;
        if let Some(v) = get("HEARTH_ACME_DIRECTORY") {
            acme.directory = v.trim().to_string();
        }
        if let Some(v) = get("HEARTH_ACME_EMAIL") {
            acme.email = (!v.trim().is_empty()).then(|| v.trim().to_string());
        }
        if let Some(v) = get("HEARTH_ACME_ACCEPT_TERMS") {
            acme.accept_terms = flag("acme.accept_terms", "HEARTH_ACME_ACCEPT_TERMS", v)?;
        }
        if let Some(v) = get("HEARTH_ACME_CA_FILE") {
            acme.ca_file = (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
        }
        if let Some(v) = get("HEARTH_ACME_CHALLENGE") {
            acme.challenge = v.parse().map_err(|message| ConfigError::Invalid {
                field: "acme.challenge",
                message,
            })?;
        }
        if let Some(v) = get("HEARTH_ACME_WILDCARD") {
            acme.wildcard = flag("acme.wildcard", "HEARTH_ACME_WILDCARD", v)?;
        }
        if let Some(v) = get("HEARTH_ACME_PROPAGATION_WAIT") {
            acme.propagation_wait =
                humantime::parse_duration(v.trim()).map_err(|e| ConfigError::Invalid {
                    field: "acme.propagation_wait",
                    message: format!("HEARTH_ACME_PROPAGATION_WAIT=`{v}`: {e}; write e.g. 5s"),
                })?;
        }
        Ok(())
    }

    /// Validates every field, naming the first bad one.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.name {
            crate::identity::check_name(name).map_err(|message| ConfigError::Invalid {
                field: "name",
                message,
            })?;
        }
        if self.listen.is_empty() {
            return Err(ConfigError::Invalid {
                field: "listen",
                message:
                    "at least one listen address is needed, e.g. \"/ip4/0.0.0.0/udp/7700/quic-v1\""
                        .into(),
            });
        }
        for (field, addrs) in [("listen", &self.listen), ("advertise", &self.advertise)] {
            for addr in addrs {
                addr.parse::<libp2p::Multiaddr>()
                    .map_err(|e| ConfigError::Invalid {
                        field,
                        message: format!("`{addr}` is not a multiaddr ({e}); write e.g. /ip4/0.0.0.0/udp/7700/quic-v1"),
                    })?;
            }
        }
        for (field, addr) in [
            ("tunnel.listen", &self.tunnel.listen),
            ("ingress.http_listen", &self.ingress.http_listen),
            ("ingress.https_listen", &self.ingress.https_listen),
            ("dns.listen", &self.dns.listen),
        ] {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::Invalid {
                    field,
                    message: format!(
                        "`{addr}` is not an address:port ({e}); write e.g. 0.0.0.0:7701"
                    ),
                })?;
        }
        self.ingress
            .tcp_bind
            .parse::<std::net::IpAddr>()
            .map_err(|e| ConfigError::Invalid {
                field: "ingress.tcp_bind",
                message: format!(
                    "`{}` is not an IP address ({e}); write e.g. 0.0.0.0",
                    self.ingress.tcp_bind
                ),
            })?;
        if self.ingress.max_head_bytes < 8192 {
            return Err(ConfigError::Invalid {
                field: "ingress.max_head_bytes",
                message: "must be at least 8192".into(),
            });
        }
        if self.tunnel.idle_timeout_secs < 3
            || self.tunnel.max_streams_per_member == 0
            || self.ingress.header_read_timeout_ms == 0
            || self.ingress.idle_timeout.is_zero()
            || self.ingress.connect_timeout_ms == 0
        {
            return Err(ConfigError::Invalid {
                field: "tunnel/ingress timeouts and limits",
                message:
                    "timeouts and limits must be positive (tunnel.idle_timeout_secs at least 3)"
                        .into(),
            });
        }
        self.check_edges()?;
        if let Some(zone) = &self.dns.zone {
            hearth_proto::route::parse_host(zone).map_err(|e| ConfigError::Invalid {
                field: "dns.zone",
                message: format!("{e}; write a domain such as hearth.example.com"),
            })?;
        }
        if self.dns.ttl_secs == 0 || self.dns.ttl_secs > 86_400 {
            return Err(ConfigError::Invalid {
                field: "dns.ttl_secs",
                message: "must be between 1 and 86400 seconds (short, e.g. 10)".into(),
            });
        }
        self.check_acme()?;
        if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600))
            .contains(&self.max_clock_ahead)
        {
            return Err(ConfigError::Invalid {
                field: "max_clock_ahead",
                message: format!(
                    "{} is out of range: use 1s to 24h",
                    humantime::format_duration(self.max_clock_ahead)
                ),
            });
        }
        if self.neighbours < 2 {
            return Err(ConfigError::Invalid {
                field: "neighbours",
                message: "must be at least 2, so members still reach each other when every public member is down".into(),
            });
        }
        if self.anti_entropy_secs == 0 || self.guest_grace_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "anti_entropy_secs/guest_grace_secs",
                message: "must be at least 1 second".into(),
            });
        }
        Ok(())
    }

    fn check_acme(&self) -> Result<(), ConfigError> {
        let acme = &self.acme;
        let invalid = |field, message: String| Err(ConfigError::Invalid { field, message });
        let directory = acme.directory.trim();
        if !(directory.starts_with("https://") || directory.starts_with("http://"))
            || directory.len() > 200
            || directory.parse::<hyper::Uri>().is_err()
        {
            return invalid(
                "acme.directory",
                format!("`{directory}` is not an ACME directory URL; write e.g. {LETS_ENCRYPT}"),
            );
        }
        if let Some(email) = &acme.email {
            let ok = email
                .split_once('@')
                .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
                && !email.contains(char::is_whitespace);
            if !ok {
                return invalid(
                    "acme.email",
                    format!("`{email}` is not an email address; write e.g. you@example.com or leave it out"),
                );
            }
        }
        if let Some(file) = &acme.ca_file {
            if !file.is_file() {
                return invalid(
                    "acme.ca_file",
                    format!(
                        "{} is not a readable file; give a PEM file of the ACME server's CA",
                        file.display()
                    ),
                );
            }
        }
        let zone = self.dns.zone.as_deref();
        if acme.wildcard && zone.is_none() {
            return invalid(
                "acme.wildcard",
                "a wildcard certificate is obtained through the edges' DNS: set `dns.zone` too"
                    .into(),
            );
        }
        if acme.challenge == ChallengePref::Dns01 && zone.is_none() {
            return invalid(
                "acme.challenge",
                "dns-01 is answered by the edges' own DNS: set `dns.zone` too".into(),
            );
        }
        if acme.propagation_wait > Duration::from_secs(600) {
            return invalid(
                "acme.propagation_wait",
                "at most 10 minutes (the CA gives up on a pending order eventually)".into(),
            );
        }
        Ok(())
    }

    fn check_edges(&self) -> Result<(), ConfigError> {
        let edges = &self.edges;
        if !(1..=hearth_proto::election::MAX_EDGES).contains(&edges.max) {
            return Err(ConfigError::Invalid {
                field: "edges.max",
                message: format!(
                    "{} is out of range: elect 1 to {} edges",
                    edges.max,
                    hearth_proto::election::MAX_EDGES
                ),
            });
        }
        if !(100..=60_000).contains(&edges.heartbeat_ms) {
            return Err(ConfigError::Invalid {
                field: "edges.heartbeat_ms",
                message: format!("{} is out of range: use 100 to 60000", edges.heartbeat_ms),
            });
        }
        let lease = hearth_proto::election::LEASE_RANGE_MS;
        if edges.lease_ms < 2 * edges.heartbeat_ms || !lease.contains(&edges.lease_ms) {
            return Err(ConfigError::Invalid {
                field: "edges.lease_ms",
                message: format!(
                    "{} is out of range: use at least twice edges.heartbeat_ms ({}) and {} to {}",
                    edges.lease_ms,
                    2 * edges.heartbeat_ms,
                    lease.start(),
                    lease.end()
                ),
            });
        }
        Ok(())
    }

    /// The data directory, explicit or default.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// The admin socket path, explicit or `<data_dir>/hearthd.sock`.
    pub fn admin_socket(&self) -> PathBuf {
        self.admin_socket
            .clone()
            .unwrap_or_else(|| self.data_dir().join(hearth_proto::paths::SOCKET_FILE))
    }
}

/// The default data dir, by the rule in [`hearth_proto::paths::default_data_dir`].
pub fn default_data_dir() -> PathBuf {
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    hearth_proto::paths::default_data_dir(is_root, xdg.as_deref(), home.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        config.check().unwrap();
    }

    #[test]
    fn unknown_fields_and_bad_addresses_are_named() {
        let err = toml::from_str::<Config>("lisen = []").unwrap_err();
        assert!(err.to_string().contains("lisen"));
        let config = Config {
            listen: vec!["0.0.0.0:7700".into()],
            ..Config::default()
        };
        assert!(config
            .check()
            .unwrap_err()
            .to_string()
            .contains("0.0.0.0:7700"));
    }

    #[test]
    fn the_idle_timeout_takes_a_duration_or_the_old_seconds() {
        let config: Config = toml::from_str("[ingress]\nidle_timeout = \"5m\"").unwrap();
        assert_eq!(config.ingress.idle_timeout, Duration::from_secs(300));
        let old: Config = toml::from_str("[ingress]\nidle_timeout_secs = 42").unwrap();
        assert_eq!(old.ingress.idle_timeout, Duration::from_secs(42));
        let printed = toml::to_string(&old).unwrap();
        assert!(printed.contains("idle_timeout = \"42s\""), "{printed}");
        let err = toml::from_str::<Config>("[ingress]\nidle_timeout = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let mut zero = Config::default();
        zero.ingress.idle_timeout = Duration::ZERO;
        assert!(zero.check().is_err());
    }

    #[test]
    fn acme_settings_are_read_and_checked() {
        let config: Config = toml::from_str(
            "[acme]\naccept_terms = true\nemail = \"me@example.com\"\nchallenge = \"tls-alpn-01\"\npropagation_wait = \"5s\"",
        )
        .unwrap();
        config.check().unwrap();
        assert!(config.acme.enabled().is_ok());
        assert_eq!(config.acme.challenge, ChallengePref::TlsAlpn01);
        assert_eq!(config.acme.propagation_wait, Duration::from_secs(5));
        assert!(Config::default()
            .acme
            .enabled()
            .unwrap_err()
            .contains("accept_terms"));
        let mut bad = Config::default();
        bad.acme.wildcard = true;
        assert!(bad.check().unwrap_err().to_string().contains("dns.zone"));
        let mut bad = Config::default();
        bad.acme.email = Some("nobody".into());
        assert!(bad.check().unwrap_err().to_string().contains("nobody"));
        let mut bad = Config::default();
        bad.acme.directory = "letsencrypt".into();
        assert!(bad
            .check()
            .unwrap_err()
            .to_string()
            .contains("acme.directory"));
        let mut env = Config::default();
        env.apply_env(|k| match k {
            "HEARTH_ACME_ACCEPT_TERMS" => Some("true".into()),
            "HEARTH_ACME_PROPAGATION_WAIT" => Some("2s".into()),
            _ => None,
        })
        .unwrap();
        assert!(env.acme.accept_terms);
        assert_eq!(env.acme.propagation_wait, Duration::from_secs(2));
        assert!(env
            .apply_env(|k| (k == "HEARTH_ACME_ACCEPT_TERMS").then(|| "yes please".into()))
            .is_err());
    }

    #[test]
    fn env_overrides_win() {
        let mut config = Config::default();
        config
            .apply_env(|k| match k {
                "HEARTH_LISTEN" => {
                    Some("/ip4/127.0.0.1/udp/0/quic-v1, /ip4/127.0.0.1/tcp/0".into())
                }
                "HEARTH_EDGE" => Some("never".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(config.listen.len(), 2);
        assert_eq!(config.edge, EdgePreference::Never);
        assert!(config
            .apply_env(|k| (k == "HEARTH_EDGE").then(|| "maybe".into()))
            .is_err());
    }
}
