//! Founding a mesh and starting a node: the glue between config, identity, store, mesh actor
//! and admin server.

use crate::acme::{AcmeActor, AcmeSettings, Served};
use crate::admin;
use crate::clock::now_ms;
use crate::config::Config;
use crate::config::EdgePreference;
use crate::identity;
use crate::ingress::{
    DnsSettings, EdgeTls, HttpSettings, IngressActor, IngressSettings, Terminator, Upstreams,
};
use crate::mesh::actor::{DataPlaneLinks, MeshActor, MeshSettings};
use crate::mesh::behaviour::{build_swarm, listen_all, SwarmRole};
use crate::mesh::peer_id::keypair;
use crate::services::{DockerActor, Report};
use crate::store::Store;
use crate::tunnel::{self, TunnelActor, TunnelSettings, Tunnels};
use crate::view::{DataPlaneStatus, MeshView};
use crate::NodeError;
use hearth_proto::record::{Genesis, Member};
use hearth_proto::{Body, Hlc, MeshId, NodeId, Record, Role};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A freshly founded mesh.
#[derive(Debug, Clone)]
pub struct Initialized {
    /// The founder.
    pub node: NodeId,
    /// The new mesh.
    pub mesh: MeshId,
    /// The data dir used.
    pub data_dir: PathBuf,
}

/// `hearthd init`: creates the key (if needed) and a new mesh with this node as founder.
pub fn init(config: &Config, name: &str, mesh_name: &str) -> Result<Initialized, NodeError> {
    identity::check_name(name).map_err(NodeError::BadName)?;
    identity::check_name(mesh_name).map_err(NodeError::BadName)?;
    let data_dir = config.data_dir();
    let key = identity::load_or_create(&data_dir)?;
    let store = Store::open(&data_dir)?;
    if let Some(mesh) = store.mesh()? {
        return Err(NodeError::AlreadyMember(mesh.short()));
    }
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
    let mesh = MeshId::derive(&key.id(), &nonce);
    let now = now_ms();
    let genesis = Body::Genesis(Genesis {
        name: mesh_name.to_string(),
        founder: key.id(),
        nonce,
        created_ms: now,
    });
    let founder = Body::Member(Member {
        node: key.id(),
        name: name.to_string(),
        role: Role::Admin,
    });
    store.set_mesh(mesh)?;
    let genesis_hlc = Hlc::at(now);
    let (_, rejected) = store.apply_batch(vec![
        Record::sign(&key, mesh, &genesis, genesis_hlc),
        Record::sign(&key, mesh, &founder, genesis_hlc.tick(now)),
    ])?;
    if let Some(rejection) = rejected.first() {
        return Err(NodeError::BadGrant(rejection.to_string()));
    }
    store.set_local_name(name)?;
    store.save_watermark()?;
    Ok(Initialized {
        node: key.id(),
        mesh,
        data_dir,
    })
}

/// A node running in this process.
#[derive(Debug)]
pub struct RunningNode {
    /// Its id.
    pub node: NodeId,
    /// Its admin socket.
    pub socket: PathBuf,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Stops the node and waits until its store is closed and its socket removed.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// A token that stops the node when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// The ingress part of the config, checked.
fn ingress_settings(config: &Config) -> Result<IngressSettings, NodeError> {
    let tcp_bind = config.ingress.tcp_bind.parse().map_err(|_| {
        NodeError::Config(crate::config::ConfigError::Invalid {
            field: "ingress.tcp_bind",
            message: format!("`{}` is not an IP address", config.ingress.tcp_bind),
        })
    })?;
    Ok(IngressSettings {
        http_listen: config.ingress.http_listen.clone(),
        https_listen: config.ingress.https_listen.clone(),
        http: HttpSettings {
            max_head_bytes: config.ingress.max_head_bytes,
            header_read_timeout: Duration::from_millis(config.ingress.header_read_timeout_ms),
            idle_timeout: config.ingress.idle_timeout,
            failures: Default::default(),
        },
        tcp_bind,
        dns: dns_zone(config).map(|zone| DnsSettings {
            zone,
            listen: config.dns.listen.clone(),
            ttl: config.dns.ttl_secs,
        }),
    })
}

/// The DNS zone as the edges answer it: lowercase, no trailing dot.
fn dns_zone(config: &Config) -> Option<String> {
    config
        .dns
        .zone
        .as_ref()
        .map(|zone| zone.trim().trim_end_matches('.').to_ascii_lowercase())
}

/// `[acme]` as the ACME actor and the mesh actor use it.
fn acme_settings(config: &Config) -> (AcmeSettings, String) {
    let acme = &config.acme;
    let zone = dns_zone(config);
    let (offer, status) = match acme.enabled() {
        Ok(()) => (
            Some(hearth_proto::cert::AcmeOffer {
                directory: acme.directory.trim().to_string(),
                wildcard_zone: if acme.wildcard { zone.clone() } else { None },
            }),
            format!(
                "this node orders certificates from {} while it is an edge, and for the passthrough hosts it serves",
                acme.directory.trim()
            ),
        ),
        Err(why) => (None, why),
    };
    let settings = AcmeSettings {
        offer,
        contact: acme.email.iter().cloned().collect(),
        ca_file: acme.ca_file.clone(),
        challenge: acme.challenge,
        propagation_wait: acme.propagation_wait,
        dns_zone: zone,
    };
    (settings, status)
}

/// `hearthd run`: opens everything, starts the mesh actor and admin server, and returns once
/// the node is listening.
pub async fn start(config: &Config) -> Result<RunningNode, NodeError> {
    let data_dir = config.data_dir();
    let key = identity::load(&data_dir)?;
    let store = Store::open(&data_dir)?;
    if store.mesh()?.is_none() {
        return Err(NodeError::NoMesh);
    }
    let name = match &config.name {
        Some(name) => name.clone(),
        None => store.local_name()?.unwrap_or_else(identity::default_name),
    };
    let socket_path = config.admin_socket();
    let listener = admin::bind(&socket_path).await?;

    let started_ms = crate::clock::now_ms();
    let mut swarm = build_swarm(keypair(&key), SwarmRole::Node, started_ms)?;
    listen_all(&mut swarm, &config.listen)?;
    let tunnel_socket = tunnel::bind(&config.tunnel.listen)?;
    let tunnel_port = tunnel_socket.local_addr().map(|a| a.port()).unwrap_or(0);
    let (acme, acme_status) = acme_settings(config);
    let settings = MeshSettings {
        started_ms,
        name,
        advertise: config
            .advertise
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        anti_entropy: Duration::from_secs(config.anti_entropy_secs),
        guest_grace: Duration::from_secs(config.guest_grace_secs),
        tombstone_ttl: Duration::from_secs(config.tombstone_ttl_secs),
        listeners: config.listen.len(),
        edge_pref: config.edge,
        heartbeat: Duration::from_millis(config.edges.heartbeat_ms),
        neighbours: config.neighbours,
        max_clock_ahead: config.max_clock_ahead,
        lease: Duration::from_millis(config.edges.lease_ms),
        edges_max: config.edges.max,
        tunnel_port,
        acme: acme.offer.clone(),
        acme_status,
    };
    let node = key.id();
    let (view_tx, view_rx) = watch::channel(Arc::new(MeshView::default()));
    let status = DataPlaneStatus::default();
    let (intents_tx, intents_rx) = watch::channel(Vec::new());
    let (container_routes_tx, container_routes_rx) = mpsc::channel(4);
    let docker_report = Report::default();
    let links = DataPlaneLinks {
        view: view_tx,
        status: status.clone(),
        container_intents: intents_tx,
        docker: docker_report.clone(),
    };
    let tunnels = Tunnels::default();
    let tunnel_settings = TunnelSettings {
        idle_timeout: Duration::from_secs(config.tunnel.idle_timeout_secs),
        max_streams: config.tunnel.max_streams_per_member,
        connect_timeout: Duration::from_millis(config.ingress.connect_timeout_ms),
    };
    let cancel = CancellationToken::new();
    let served = Served::default();
    let edge_tls = EdgeTls::new(served.clone())?;
    let mut ingress_settings = ingress_settings(config)?;
    ingress_settings.http.failures = status.failures();
    let terminator = Terminator::new(
        key.id(),
        view_rx.clone(),
        edge_tls.clone(),
        ingress_settings.http.clone(),
        Duration::from_millis(config.ingress.connect_timeout_ms),
        cancel.clone(),
    );
    let tunnel = TunnelActor::new(
        &key,
        tunnel_socket,
        view_rx.clone(),
        tunnels.clone(),
        status.clone(),
        &tunnel_settings,
        terminator.clone(),
    )?;
    let upstreams = Upstreams::new(
        key.id(),
        view_rx.clone(),
        tunnels.clone(),
        Duration::from_millis(config.ingress.connect_timeout_ms),
    );
    let (writes_tx, writes_rx) = mpsc::channel(64);
    let ingress = if config.edge == EdgePreference::Never {
        None
    } else {
        Some(IngressActor::new(
            key.id(),
            ingress_settings,
            upstreams,
            edge_tls,
            terminator,
            view_rx.clone(),
            status.clone(),
        ))
    };
    let mesh = store.mesh()?.ok_or(NodeError::NoMesh)?;
    let acme_actor = AcmeActor::new(
        &key,
        mesh,
        acme,
        view_rx.clone(),
        served,
        status.clone(),
        writes_tx,
    )?;
    let actor = MeshActor::new(key, store, swarm, settings, links)?;
    let (commands_tx, commands_rx) = mpsc::channel(64);
    let mut tasks = vec![
        tokio::spawn(actor.run(commands_rx, container_routes_rx, writes_rx, cancel.clone())),
        tokio::spawn(tunnel.run(cancel.clone())),
        tokio::spawn(acme_actor.run(cancel.clone())),
    ];
    if let Some(ingress) = ingress {
        tasks.push(tokio::spawn(ingress.run(cancel.clone())));
    }
    if config.docker.enabled {
        let docker = DockerActor::new(
            config.docker.socket.clone(),
            intents_rx,
            container_routes_tx,
            docker_report,
        );
        tasks.push(tokio::spawn(docker.run(cancel.clone())));
    } else {
        docker_report.update(|r| r.detail = "disabled in the config ([docker] enabled)".into());
    }
    tasks.push(tokio::spawn(admin::serve(
        listener,
        socket_path.clone(),
        commands_tx,
        cancel.clone(),
    )));
    Ok(RunningNode {
        node,
        socket: socket_path,
        cancel,
        tasks,
    })
}
