//! The Docker actor: follows the local engine's containers through bollard (a listing at
//! start and on every container event, plus a slow timer), and tells the mesh actor which
//! container routes this node should publish right now. A node without Docker runs normally;
//! `hearthctl status` shows why Docker is unavailable, and the actor keeps retrying.

use super::labels::{self, ContainerRoute};
use super::{Report, ResolvedRoute};
use bollard::models::{ContainerSummary, HealthStatusEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};
use bollard::Docker;
use futures::StreamExt;
use hearth_proto::api::DockerV1;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How often the engine is listed even without events, and retried when unreachable.
const RESYNC: Duration = Duration::from_secs(10);
/// Seconds bollard waits for an answer.
const API_TIMEOUT_SECS: u64 = 10;

/// The Docker actor.
#[derive(Debug)]
pub struct DockerActor {
    socket: String,
    intents: watch::Receiver<Vec<ContainerRoute>>,
    routes: mpsc::Sender<Vec<ResolvedRoute>>,
    report: Report<DockerV1>,
}

impl DockerActor {
    /// An actor for the engine at `socket`.
    pub fn new(
        socket: String,
        intents: watch::Receiver<Vec<ContainerRoute>>,
        routes: mpsc::Sender<Vec<ResolvedRoute>>,
        report: Report<DockerV1>,
    ) -> Self {
        Self {
            socket,
            intents,
            routes,
            report,
        }
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("docker");
        async move {
            loop {
                match self.connect().await {
                    Ok(docker) => {
                        self.follow(&docker, &cancel).await;
                        if cancel.is_cancelled() {
                            return;
                        }
                    }
                    Err(reason) => self.unavailable(reason),
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(RESYNC) => {}
                }
            }
        }
        .instrument(span)
        .await
    }

    fn unavailable(&self, reason: String) {
        debug!(%reason, "docker unavailable");
        self.report.update(|r| {
            r.available = false;
            r.detail = reason;
        });
    }

    async fn connect(&self) -> Result<Docker, String> {
        let docker =
            Docker::connect_with_unix(&self.socket, API_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
                .map_err(|e| format!("cannot use {}: {e}", self.socket))?;
        let version = docker
            .version()
            .await
            .map_err(|e| format!("no answer on {}: {e}", self.socket))?;
        let detail = format!(
            "engine {} on {}",
            version.version.unwrap_or_default(),
            self.socket
        );
        info!(%detail, "docker connected");
        self.report.update(|r| {
            r.available = true;
            r.detail = detail;
        });
        Ok(docker)
    }

    /// Reconciles on every container event until the engine goes away or `cancel` fires.
    async fn follow(&mut self, docker: &Docker, cancel: &CancellationToken) {
        let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
        let options = EventsOptionsBuilder::default().filters(&filters).build();
        let mut events = docker.events(Some(options));
        if let Err(reason) = self.reconcile(docker).await {
            return self.unavailable(reason);
        }
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                event = events.next() => match event {
                    Some(Ok(event)) => debug!(action = ?event.action, "container event"),
                    Some(Err(e)) => return self.unavailable(format!("event stream failed: {e}")),
                    None => return self.unavailable("event stream ended".into()),
                },
                changed = self.intents.changed() => if changed.is_err() { return },
                _ = resync.tick() => {}
            }
            if let Err(reason) = self.reconcile(docker).await {
                return self.unavailable(reason);
            }
        }
    }

    /// Lists running containers and sends the routes they (and the intents) ask for.
    async fn reconcile(&self, docker: &Docker) -> Result<(), String> {
        let options = ListContainersOptionsBuilder::default().all(false).build();
        let containers = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| format!("cannot list containers: {e}"))?;
        let intents = self.intents.borrow().clone();
        let mut wanted: Vec<ResolvedRoute> = Vec::new();
        for summary in &containers {
            let Some(id) = summary.id.clone() else {
                continue;
            };
            let name = container_name(summary).unwrap_or_else(|| id.clone());
            let labels = summary.labels.clone().unwrap_or_default();
            let (mut asked, problems) = labels::from_labels(&name, &labels);
            for problem in problems {
                warn!(%problem, "ignoring a hearth label");
            }
            asked.extend(
                intents
                    .iter()
                    .filter(|i| i.container == name || id.starts_with(&i.container))
                    .cloned(),
            );
            if asked.is_empty() || !self.healthy(docker, &id).await {
                continue;
            }
            for route in asked {
                match target_of(summary, route.port) {
                    Some(target) => wanted.push(ResolvedRoute { route, target }),
                    None => warn!(container = %name, "no address to reach the container on"),
                }
            }
        }
        // One route per spec on this node: the first container (by name) wins.
        wanted.sort_by(|a, b| {
            (&a.route.spec, &a.route.container).cmp(&(&b.route.spec, &b.route.container))
        });
        wanted.dedup_by(|a, b| a.route.spec == b.route.spec);
        let count = wanted.len();
        self.report.update(|r| r.routes = count);
        let _ = self.routes.send(wanted).await;
        Ok(())
    }

    /// Containers with a health check are routed only while healthy.
    async fn healthy(&self, docker: &Docker, id: &str) -> bool {
        let inspect = match docker.inspect_container(id, None).await {
            Ok(inspect) => inspect,
            Err(e) => {
                debug!(%id, error = %e, "cannot inspect container");
                return false;
            }
        };
        let status = inspect.state.and_then(|s| s.health).and_then(|h| h.status);
        match status {
            None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => true,
            Some(status) => status == HealthStatusEnum::HEALTHY,
        }
    }
}

fn container_name(summary: &ContainerSummary) -> Option<String> {
    let names = summary.names.as_ref()?;
    names.first().map(|n| n.trim_start_matches('/').to_string())
}

/// Where this node reaches `port` of the container: its address on a network (first by
/// network name), else the host port Docker publishes it on.
fn target_of(summary: &ContainerSummary, port: u16) -> Option<String> {
    let mut networks: Vec<(String, String)> = summary
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|networks| {
            networks
                .iter()
                .filter_map(|(name, endpoint)| {
                    let ip = endpoint.ip_address.clone()?;
                    (!ip.is_empty()).then(|| (name.clone(), ip))
                })
                .collect()
        })
        .unwrap_or_default();
    networks.sort();
    if let Some((_, ip)) = networks.first() {
        return Some(format!("{ip}:{port}"));
    }
    summary
        .ports
        .as_ref()?
        .iter()
        .find(|p| p.private_port == port && p.public_port.is_some())
        .and_then(|p| p.public_port)
        .map(|public| format!("127.0.0.1:{public}"))
}
