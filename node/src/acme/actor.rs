//! The ACME actor. On every node it keeps [`Served`] current from the replicated records:
//! opens the certificates sealed to this node and prepares the challenge answers of the
//! orders in flight that this node serves. It acknowledges the answers it must serve (an
//! elected edge: those of the names it terminates and DNS-01; a member hosting a passthrough
//! name: that name's), and for every certificate name it is the issuer of (the rendezvous
//! choice among the name's holders that may order, [`hearth_proto::cert::issuer_of`]) it runs
//! the order the renewal schedule asks for, resumes an order a vanished issuer left, and
//! re-seals keys to new holders.

use super::client::CaClient;
use super::material;
use super::order::{self, JobContext, JobSettings, Start, Writer};
use super::served::{Answers, Served, ServedCert};
use super::AcmeError;
use crate::clock::now_ms;
use crate::config::ChallengePref;
use crate::view::{DataPlaneStatus, MeshView, ViewRx};
use hearth_proto::cert::{self, AcmeOffer, ChallengeAck, ChallengeAnswer, OrderCause, OrderStage};
use hearth_proto::renewal::{decide, Decision};
use hearth_proto::{Body, MeshId, NodeId, NodeKey};
use rustls::sign::CertifiedKey;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

/// How often the actor looks again without a view change (renewals fall due with time).
const TICK: Duration = Duration::from_secs(1);
/// Least time between two jobs for one name, so a failing store cannot make a hot loop.
const MIN_JOB_GAP: Duration = Duration::from_secs(2);
/// A write (acknowledgement, re-seal) not seen in the view after this long is tried again.
const REWRITE_AFTER: Duration = Duration::from_secs(10);
/// Least time between two renewal-information queries for one certificate by this node.
const ARI_RETRY: Duration = Duration::from_secs(3600);

/// `[acme]` as the actor uses it.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// What this node offers when it may order (`accept_terms = true`); `None` otherwise.
    pub offer: Option<AcmeOffer>,
    /// Contact addresses.
    pub contact: Vec<String>,
    /// Extra CA for the ACME server's TLS.
    pub ca_file: Option<PathBuf>,
    /// The preferred challenge.
    pub challenge: ChallengePref,
    /// Wait after every edge serves the answers.
    pub propagation_wait: Duration,
    /// The zone the edges' DNS answers, if any.
    pub dns_zone: Option<String>,
}

/// A running order job.
#[derive(Debug)]
struct Running {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The actor; see the module docs.
#[derive(Debug)]
pub struct AcmeActor {
    me: NodeId,
    mesh: MeshId,
    key: NodeKey,
    view: ViewRx,
    served: Served,
    status: DataPlaneStatus,
    writer: Writer,
    jobs: Option<Arc<JobContext>>,
    running: HashMap<String, Running>,
    started: HashMap<String, Instant>,
    /// When this node last asked the CA for each certificate's renewal window.
    ari_asked: HashMap<String, Instant>,
    /// Opened certificates, by name, with the serial they were opened for.
    opened: BTreeMap<String, ServedCert>,
    /// Serials that could not be opened (logged once).
    unopenable: BTreeSet<String>,
    /// TLS-ALPN-01 certificates made, by name and digest.
    alpn: HashMap<(String, Vec<u8>), Arc<CertifiedKey>>,
    /// The answers served now, to notice changes.
    answers: Vec<ChallengeAnswer>,
    /// Acknowledgements written (or being written), by name, and when.
    acked: HashMap<String, ([u8; 32], Instant)>,
    /// Re-seals written, by secret, with the recipients they added, and when.
    resealed: HashMap<String, (BTreeSet<NodeId>, Instant)>,
}

impl AcmeActor {
    /// The actor of node `key`, writing records through `writes`.
    pub fn new(
        key: &NodeKey,
        mesh: MeshId,
        settings: AcmeSettings,
        view: ViewRx,
        served: Served,
        status: DataPlaneStatus,
        writes: tokio::sync::mpsc::Sender<crate::mesh::certs::WriteRequest>,
    ) -> Result<Self, AcmeError> {
        let writer = Writer(writes);
        let jobs = match &settings.offer {
            Some(offer) => Some(Arc::new(JobContext {
                key: NodeKey::from_secret(key.secret_bytes()),
                me: key.id(),
                mesh,
                settings: JobSettings {
                    directory: offer.directory.clone(),
                    contact: settings.contact.clone(),
                    challenge: settings.challenge,
                    propagation_wait: settings.propagation_wait,
                    dns_zone: settings.dns_zone.clone(),
                },
                view: view.clone(),
                writer: writer.clone(),
                client: CaClient::new(settings.ca_file.as_deref())?,
                accounts: Default::default(),
                no_ari: Default::default(),
            })),
            None => None,
        };
        Ok(Self {
            me: key.id(),
            mesh,
            key: NodeKey::from_secret(key.secret_bytes()),
            view,
            served,
            status,
            writer,
            jobs,
            running: HashMap::new(),
            started: HashMap::new(),
            ari_asked: HashMap::new(),
            opened: BTreeMap::new(),
            unopenable: BTreeSet::new(),
            alpn: HashMap::new(),
            answers: Vec::new(),
            acked: HashMap::new(),
            resealed: HashMap::new(),
        })
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let span = tracing::info_span!("acme", node = %self.me.short());
        async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    changed = self.view.changed() => {
                        if changed.is_err() { break; }
                        self.tick();
                    }
                    _ = tick.tick() => self.tick(),
                }
            }
            for (_, job) in self.running.drain() {
                job.cancel.cancel();
                let _ = job.task.await;
            }
        }
        .instrument(span)
        .await
    }

    fn tick(&mut self) {
        let view = self.view.borrow_and_update().clone();
        self.refresh_served(&view);
        self.acknowledge(&view);
        self.running.retain(|_, job| !job.task.is_finished());
        if self.jobs.is_some() {
            self.issue(&view);
        }
        self.reseal(&view);
    }

    /// Opens the certificates sealed to this node and prepares the challenge answers.
    fn refresh_served(&mut self, view: &MeshView) {
        let mut changed = false;
        let mut next = BTreeMap::new();
        for (name, stored) in &view.certs.certs {
            if let Some(current) = self.opened.get(name).filter(|c| c.serial == stored.serial) {
                next.insert(name.clone(), current.clone());
                continue;
            }
            if !stored.key.is_for(&self.me) {
                continue;
            }
            let context = cert::key_context(&self.mesh, name, &stored.serial);
            let opened = hearth_proto::seal::open(&stored.key, &self.key, &context)
                .map_err(AcmeError::from)
                .and_then(|pkcs8| Ok(material::certified_key(&stored.chain, &pkcs8)?));
            match opened {
                Ok(key) => {
                    info!(%name, serial = %stored.serial, "serving the certificate");
                    next.insert(
                        name.clone(),
                        ServedCert {
                            names: stored.names.clone(),
                            key,
                            serial: stored.serial.clone(),
                        },
                    );
                    changed = true;
                }
                Err(e) => {
                    if self.unopenable.insert(stored.serial.clone()) {
                        warn!(%name, serial = %stored.serial, error = %e, "cannot use the stored certificate");
                    }
                }
            }
        }
        if changed || next.len() != self.opened.len() {
            self.served.set_certs(next.clone());
        }
        self.opened = next;

        let answers: Vec<ChallengeAnswer> = view
            .certs
            .orders
            .iter()
            .filter(|(_, (o, _))| matches!(o.stage, OrderStage::Placed | OrderStage::Validating))
            .flat_map(|(name, (o, _))| {
                o.challenges
                    .iter()
                    .filter(|a| view.serves_answer(&self.me, name, a))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        if answers != self.answers {
            let prepared = self.prepare(&answers);
            self.served.set_answers(prepared);
            self.answers = answers;
        }
    }

    /// The served form of the answers.
    fn prepare(&mut self, answers: &[ChallengeAnswer]) -> Answers {
        let mut out = Answers::default();
        for answer in answers {
            match answer {
                ChallengeAnswer::Http01 {
                    token,
                    key_authorization,
                    ..
                } => {
                    out.http01.insert(token.clone(), key_authorization.clone());
                }
                ChallengeAnswer::TlsAlpn01 { name, digest } => {
                    let cached = self.alpn.get(&(name.clone(), digest.clone())).cloned();
                    let made =
                        cached.or_else(|| match material::tls_alpn_certificate(name, digest) {
                            Ok(key) => {
                                self.alpn
                                    .insert((name.clone(), digest.clone()), key.clone());
                                Some(key)
                            }
                            Err(e) => {
                                warn!(%name, error = %e, "cannot make the TLS-ALPN-01 certificate");
                                None
                            }
                        });
                    if let Some(key) = made {
                        out.alpn01.insert(name.clone(), key);
                    }
                }
                ChallengeAnswer::Dns01 { name, value } => {
                    let base = name.trim_start_matches("*.");
                    out.dns01
                        .entry(format!("_acme-challenge.{base}"))
                        .or_default()
                        .push(value.clone());
                }
            }
        }
        // Keep only the certificates of answers still served.
        let live: BTreeSet<(String, Vec<u8>)> = answers
            .iter()
            .filter_map(|a| match a {
                ChallengeAnswer::TlsAlpn01 { name, digest } => Some((name.clone(), digest.clone())),
                _ => None,
            })
            .collect();
        self.alpn.retain(|k, _| live.contains(k));
        out
    }

    /// Writes an acknowledgement for every order in flight whose answers this node must
    /// serve and now serves where they are asked: on its own listeners (an edge), or on its
    /// tunnel endpoint, which the edges forward a passthrough name's validations to.
    fn acknowledge(&mut self, view: &MeshView) {
        let plane = self.status.snapshot();
        for (name, (order, _)) in &view.certs.orders {
            if !matches!(order.stage, OrderStage::Placed | OrderStage::Validating)
                || order.challenges.is_empty()
                || !view
                    .answer_servers(name, &order.challenges)
                    .contains(&self.me)
            {
                continue;
            }
            let forwarded = view.is_passthrough_cert(name);
            let listening = order.challenges.iter().all(|c| match c {
                ChallengeAnswer::Dns01 { .. } => {
                    !view.is_edge(&self.me) || plane.dns_listen.is_some()
                }
                _ if forwarded => {
                    !view.passthrough_members(name).contains(&self.me)
                        || plane.tunnel_listen.is_some()
                }
                ChallengeAnswer::Http01 { .. } => plane.http_listen.is_some(),
                ChallengeAnswer::TlsAlpn01 { .. } => plane.https_listen.is_some(),
            });
            if !listening {
                continue;
            }
            let digest = order.challenges_digest();
            let stored = view.certs.acks.get(name).and_then(|a| a.get(&self.me));
            let pending = self
                .acked
                .get(name)
                .is_some_and(|(d, at)| *d == digest && at.elapsed() < REWRITE_AFTER);
            if stored == Some(&digest) || pending {
                continue;
            }
            self.acked.insert(name.clone(), (digest, Instant::now()));
            let writer = self.writer.clone();
            let body = Body::ChallengeAck(ChallengeAck {
                name: name.clone(),
                digest,
            });
            let name = name.clone();
            tokio::spawn(
                async move {
                    match writer.write(body).await {
                        Ok(_) => debug!(%name, "challenge answers acknowledged"),
                        Err(e) => {
                            warn!(%name, error = %e, "cannot acknowledge the challenge answers")
                        }
                    }
                }
                .in_current_span(),
            );
        }
    }

    /// Starts the jobs the schedule asks for, for the names this node issues.
    fn issue(&mut self, view: &MeshView) {
        let Some(jobs) = self.jobs.clone() else {
            return;
        };
        let plan = view.cert_plan();
        let now = now_ms();
        let mine: BTreeSet<String> = plan
            .keys()
            .filter(|name| cert::issuer_of(name, &view.cert_issuers(name)) == Some(self.me))
            .cloned()
            .collect();
        self.stop_jobs(|name| !mine.contains(name));
        for name in mine {
            if self.running.contains_key(&name)
                || self
                    .started
                    .get(&name)
                    .is_some_and(|t| t.elapsed() < MIN_JOB_GAP)
            {
                continue;
            }
            let job = match self.next_step(view, &name, now) {
                Some(start) => {
                    let names = plan.get(&name).cloned().unwrap_or_default();
                    futures::future::Either::Left(order::run(
                        jobs.clone(),
                        name.clone(),
                        names,
                        start,
                    ))
                }
                None if self.ari_due(view, &jobs, &name, now) => {
                    self.ari_asked.insert(name.clone(), Instant::now());
                    futures::future::Either::Right(order::refresh_ari(jobs.clone(), name.clone()))
                }
                None => continue,
            };
            let cancel = CancellationToken::new();
            let token = cancel.clone();
            let task = tokio::spawn(
                async move {
                    tokio::select! {
                        _ = token.cancelled() => {}
                        () = job => {}
                    }
                }
                .instrument(tracing::info_span!("order", %name)),
            );
            self.started.insert(name.clone(), Instant::now());
            self.running.insert(name, Running { cancel, task });
        }
    }

    /// Whether to ask the CA for `name`'s renewal window now.
    fn ari_due(&self, view: &MeshView, jobs: &JobContext, name: &str, now: u64) -> bool {
        let Some(stored) = view.certs.certs.get(name) else {
            return false;
        };
        let unsupported = jobs
            .no_ari
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&stored.directory);
        !unsupported
            && !stored.ari_id.is_empty()
            && hearth_proto::renewal::ari_due(stored, now)
            && self
                .ari_asked
                .get(name)
                .is_none_or(|t| t.elapsed() >= ARI_RETRY)
    }

    /// What this issuer should start for `name` now, if anything.
    fn next_step(&self, view: &MeshView, name: &str, now: u64) -> Option<Start> {
        let stored = view.certs.certs.get(name);
        let (last, written) = match view.certs.orders.get(name) {
            Some((order, written)) => (Some(order), *written),
            None => (None, 0),
        };
        let request = view.certs.requests.get(name);
        let holders = view.cert_holders(name);
        match decide(stored, last, request, now) {
            Decision::Resume => {
                let order = last?;
                cert::may_take_over(order, written, &self.me, &holders, now)
                    .then(|| Start::Resume(Box::new(order.clone())))
            }
            Decision::Order(cause) => Some(Start::New(cause)),
            Decision::Wait { .. } | Decision::Refused { .. } => stored
                .is_some_and(|c| cert::key_lost(c, &holders, now))
                .then_some(Start::New(OrderCause::KeyLost)),
        }
    }

    fn stop_jobs(&mut self, stop: impl Fn(&str) -> bool) {
        self.running.retain(|name, job| {
            let keep = !stop(name);
            if !keep {
                info!(%name, "no longer the issuer of this name; stopping its order");
                job.cancel.cancel();
            }
            keep
        });
    }

    /// Re-seals keys and account credentials to holders (elected edges, or a passthrough
    /// name's hosting members) that cannot open them yet, and drops revoked nodes. One holder
    /// does it: the lowest id among the current holders that can open the secret.
    fn reseal(&mut self, view: &MeshView) {
        let mut writes = Vec::new();
        for (name, stored) in &view.certs.certs {
            let context = cert::key_context(&self.mesh, name, &stored.serial);
            if let Some(key) = self.resealed_box(
                view,
                &view.cert_holders(name),
                &format!("cert/{name}/{}", stored.serial),
                &stored.key,
                &context,
            ) {
                let mut updated = stored.clone();
                updated.key = key;
                writes.push(Body::Cert(updated));
            }
        }
        for (key, account) in &view.certs.accounts {
            let context = cert::account_context(&self.mesh, &account.directory, &account.scope);
            if let Some(credentials) = self.resealed_box(
                view,
                &view.account_holders(&account.scope),
                &format!("account/{key}"),
                &account.credentials,
                &context,
            ) {
                let mut updated = account.clone();
                updated.credentials = credentials;
                writes.push(Body::AcmeAccount(updated));
            }
        }
        for body in writes {
            let writer = self.writer.clone();
            tokio::spawn(
                async move {
                    if let Err(e) = writer.write(body).await {
                        warn!(error = %e, "cannot re-seal a key to the new holders");
                    }
                }
                .in_current_span(),
            );
        }
    }

    /// The re-sealed boxes of one secret, when this node is the one to write them.
    fn resealed_box(
        &mut self,
        view: &MeshView,
        holders: &BTreeSet<NodeId>,
        id: &str,
        sealed: &hearth_proto::seal::Sealed,
        context: &[u8],
    ) -> Option<hearth_proto::seal::Sealed> {
        let recipients: BTreeSet<NodeId> = sealed.recipients().collect();
        let (writer, wanted) = cert::reseal_plan(&recipients, &view.members, holders)?;
        let pending = self
            .resealed
            .get(id)
            .is_some_and(|(to, at)| *to == wanted && at.elapsed() < REWRITE_AFTER);
        if writer != self.me || pending {
            return None;
        }
        match order::reseal(sealed, &self.key, context, wanted.iter().copied()) {
            Ok(resealed) => {
                info!(secret = %id, to = wanted.len(), "re-sealing to the current holders");
                self.resealed
                    .insert(id.to_string(), (wanted, Instant::now()));
                Some(resealed)
            }
            Err(e) => {
                warn!(secret = %id, error = %e, "cannot re-seal");
                None
            }
        }
    }
}
