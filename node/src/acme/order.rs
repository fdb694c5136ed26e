//! One certificate order on its issuer, placed or resumed from its record. The issuer is one
//! of the certificate's holders: the elected edges, or for a passthrough host the members
//! hosting it (see [`MeshView::cert_holders`]).
//!
//! 1. place it (or find the one another holder placed), and write its challenge answers into
//!    the order record, which replicates to every node;
//! 2. wait until every member that must serve them acknowledges (the edges; for a passthrough
//!    name its hosting members, and the edges for DNS-01), then `acme.propagation_wait`, and
//!    tell the CA they are ready;
//! 3. once valid, seal a new key to the holders *in the record* before sending the CSR, so a
//!    holder taking over can still use the certificate;
//! 4. store the certificate (key sealed to the holders) and mark the order done.
//!
//! Every step is written before the next starts, so a new issuer resumes where this one
//! died, and no name gets a second certificate from one order. A failure is written with the
//! CA's problem and the time of the next try; the stored certificate is never touched by one.

use super::client::CaClient;
use super::material::{self, Leaf};
use super::AcmeError;
use crate::clock::now_ms;
use crate::config::ChallengePref;
use crate::view::{MeshView, ViewRx};
use hearth_proto::api::ApiError;
use hearth_proto::cert::{
    self, AcmeAccount, AcmeOrder, Cert, ChallengeAnswer, OrderCause, OrderStage, RECENT_WINDOW_MS,
};
use hearth_proto::renewal::{backoff_ms, decide, Decision};
use hearth_proto::seal::{self, Sealed};
use hearth_proto::{Body, MeshId, NodeId, NodeKey, Record};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewOrder, Order,
    OrderStatus, RetryPolicy,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Mutex};
use tracing::{info, warn};

/// Longest wait for every live edge to acknowledge the challenge answers; after it the CA is
/// told anyway (it may then reach an edge that does not answer, and the order fails).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// While waiting, the order record is rewritten this often, so other edges see it is alive.
const KEEP_ALIVE: Duration = Duration::from_millis(cert::ORDER_LEASE_MS / 3);
/// How long the CA may take to validate, and to issue.
const CA_STEP: Duration = Duration::from_secs(90);

/// The mesh actor's side of record writes.
#[derive(Debug, Clone)]
pub struct Writer(pub mpsc::Sender<crate::mesh::certs::WriteRequest>);

impl Writer {
    /// Signs, stores (durably) and replicates `body`.
    pub async fn write(&self, body: Body) -> Result<Record, AcmeError> {
        let (reply, answer) = oneshot::channel();
        self.0
            .send((body, reply))
            .await
            .map_err(|_| AcmeError::Stopped)?;
        let stored: Result<Record, ApiError> = answer.await.map_err(|_| AcmeError::Stopped)?;
        Ok(stored?)
    }
}

/// The ACME settings a job needs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// The directory URL.
    pub directory: String,
    /// Contact addresses for a new account.
    pub contact: Vec<String>,
    /// The preferred challenge.
    pub challenge: ChallengePref,
    /// Wait after every edge serves the answers.
    pub propagation_wait: Duration,
    /// The zone the edges answer DNS for, which DNS-01 needs.
    pub dns_zone: Option<String>,
}

/// What every job of this node shares.
pub struct JobContext {
    /// This node's key: signs nothing here, but opens sealed secrets.
    pub key: NodeKey,
    /// This node.
    pub me: NodeId,
    /// The mesh (sealing contexts).
    pub mesh: MeshId,
    /// Settings.
    pub settings: JobSettings,
    /// The latest view.
    pub view: ViewRx,
    /// Record writes.
    pub writer: Writer,
    /// The way to the CA.
    pub client: CaClient,
    /// Accounts loaded so far, by directory.
    pub accounts: Mutex<HashMap<String, Account>>,
    /// Directories found to offer no renewal information (ARI).
    pub no_ari: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How a job starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new order, for this reason.
    New(OrderCause),
    /// Carry on the order in this record.
    Resume(Box<AcmeOrder>),
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("me", &self.me)
            .field("directory", &self.settings.directory)
            .finish()
    }
}

impl JobContext {
    fn now_view(&self) -> Arc<MeshView> {
        self.view.borrow().clone()
    }

    /// The account certificate `name` is ordered with, from the configured directory: the
    /// edges' shared one, or for a passthrough name the one its hosting members share.
    /// Loaded, opened from the mesh's record, or created and stored (sealed to the holders).
    pub async fn account(&self, name: &str) -> Result<Account, AcmeError> {
        let directory = self.settings.directory.clone();
        let view = self.now_view();
        let scope = account_scope(&view, name);
        let record_key = AcmeAccount::key_of(&directory, &scope);
        let mut accounts = self.accounts.lock().await;
        if let Some(account) = accounts.get(&record_key) {
            return Ok(account.clone());
        }
        let context = cert::account_context(&self.mesh, &directory, &scope);
        if let Some(stored) = view.certs.accounts.get(&record_key) {
            if let Ok(json) = seal::open(&stored.credentials, &self.key, &context) {
                match serde_json::from_slice::<AccountCredentials>(&json) {
                    Ok(credentials) => {
                        let account = self.client.account(credentials).await?;
                        accounts.insert(record_key, account.clone());
                        return Ok(account);
                    }
                    Err(e) => {
                        warn!(error = %e, "the stored ACME account is unreadable; making a new one")
                    }
                }
            }
        }
        let (account, credentials) = self
            .client
            .create_account(&directory, &self.settings.contact)
            .await?;
        let json = serde_json::to_vec(&credentials).map_err(|e| AcmeError::Ca {
            doing: "storing the ACME account",
            problem: cert::AcmeProblem {
                kind: String::new(),
                detail: e.to_string(),
            },
        })?;
        let holders = view.account_holders(&scope);
        let credentials = seal::seal(&json, with_me(holders, self.me), &context)?;
        self.writer
            .write(Body::AcmeAccount(AcmeAccount {
                directory: directory.clone(),
                id: account.id().to_string(),
                credentials,
                contact: self.settings.contact.clone(),
                scope: scope.clone(),
            }))
            .await?;
        info!(%directory, %scope, id = account.id(), "ACME account created");
        accounts.insert(record_key, account.clone());
        Ok(account)
    }
}

/// Who a new secret of certificate `name` is sealed to: its holders (the elected edges, or a
/// passthrough host's members), and this node.
pub fn recipients(view: &MeshView, name: &str, me: NodeId) -> BTreeSet<NodeId> {
    with_me(view.cert_holders(name), me)
}

fn with_me(mut to: BTreeSet<NodeId>, me: NodeId) -> BTreeSet<NodeId> {
    to.insert(me);
    to
}

/// The [`AcmeAccount::scope`] certificate `name` is ordered under.
pub fn account_scope(view: &MeshView, name: &str) -> String {
    if view.is_passthrough_cert(name) {
        name.to_string()
    } else {
        String::new()
    }
}

/// Runs one order for certificate `name` carrying `names`; on failure writes it down with the
/// time of the next try.
pub async fn run(ctx: Arc<JobContext>, name: String, names: Vec<String>, start: Start) {
    let view = ctx.now_view();
    let previous = view.certs.orders.get(&name).map(|(o, _)| o.clone());
    let cause = match &start {
        Start::New(cause) => *cause,
        Start::Resume(order) => order.cause,
    };
    let mut job = Job {
        ctx: ctx.clone(),
        name: name.clone(),
        record: AcmeOrder {
            names,
            directory: ctx.settings.directory.clone(),
            account: String::new(),
            url: String::new(),
            issuer: ctx.me,
            stage: OrderStage::Placed,
            cause,
            challenges: Vec::new(),
            key: None,
            started_ms: now_ms(),
            failures: previous
                .as_ref()
                .filter(|o| o.stage == OrderStage::Failed)
                .map(|o| o.failures)
                .unwrap_or(0),
            problem: None,
            retry_ms: 0,
        },
    };
    match job.attempt(start).await {
        Ok(()) => {}
        Err(AcmeError::Stopped) => info!(%name, "order left to the next issuer"),
        Err(e) => {
            let problem = e.problem();
            warn!(%name, error = %e, "certificate order failed");
            let failures = job.record.failures + 1;
            let failed = AcmeOrder {
                stage: OrderStage::Failed,
                challenges: Vec::new(),
                key: None,
                failures,
                problem: Some(problem),
                retry_ms: now_ms() + backoff_ms(failures),
                issuer: ctx.me,
                ..job.record.clone()
            };
            if let Err(e) = ctx.writer.write(Body::AcmeOrder(failed)).await {
                warn!(%name, error = %e, "cannot record the failed order");
            }
        }
    }
}

/// One order in progress.
struct Job {
    ctx: Arc<JobContext>,
    name: String,
    record: AcmeOrder,
}

impl Job {
    async fn save(&self) -> Result<(), AcmeError> {
        self.ctx
            .writer
            .write(Body::AcmeOrder(self.record.clone()))
            .await
            .map(|_| ())
    }

    async fn attempt(&mut self, start: Start) -> Result<(), AcmeError> {
        let account = self.ctx.account(&self.name).await?;
        self.record.account = account.id().to_string();
        let mut order = match start {
            Start::Resume(stored) => match self.resume(&account, &stored).await {
                Some(order) => order,
                None => self.place(&account).await?,
            },
            Start::New(_) => self.place(&account).await?,
        };
        let status = order.state().status;
        if status == OrderStatus::Pending {
            self.validate(&mut order).await?;
        }
        let status = order.state().status;
        match status {
            OrderStatus::Ready | OrderStatus::Processing | OrderStatus::Valid => {}
            OrderStatus::Invalid => return Err(self.invalid(&mut order).await),
            OrderStatus::Pending => return Err(AcmeError::Timeout("validating")),
        }
        let pkcs8 = self.finalize(&mut order, status).await?;
        let pem = order
            .poll_certificate(&policy())
            .await
            .map_err(|e| AcmeError::ca("downloading the certificate", e))?;
        self.store(&account, &pem, &pkcs8).await
    }

    /// The CA's state of a stored order, when this node can carry it on.
    async fn resume(&mut self, account: &Account, stored: &AcmeOrder) -> Option<Order> {
        if stored.account != account.id() || stored.url.is_empty() {
            info!(name = %self.name, "the order's account is not this node's; placing a new order");
            return None;
        }
        match account.order(stored.url.clone()).await {
            Ok(order) => {
                info!(name = %self.name, url = %stored.url, from = %stored.issuer.short(), "resuming the order");
                self.record.url = stored.url.clone();
                self.record.started_ms = stored.started_ms;
                self.record.key = stored.key.clone();
                self.record.challenges = stored.challenges.clone();
                Some(order)
            }
            Err(e) => {
                warn!(name = %self.name, error = %e, "cannot resume the order; placing a new one");
                None
            }
        }
    }

    /// Places a new order, after checking the store once more that one is needed.
    async fn place(&mut self, account: &Account) -> Result<Order, AcmeError> {
        let view = self.ctx.now_view();
        let stored = view.certs.certs.get(&self.name);
        let last = view.certs.orders.get(&self.name).map(|(o, _)| o);
        let request = view.certs.requests.get(&self.name);
        let needed = matches!(
            decide(
                stored,
                last.filter(|o| o.issuer == self.ctx.me || !o.in_flight()),
                request,
                now_ms()
            ),
            Decision::Order(_) | Decision::Resume
        ) || self.record.cause == OrderCause::KeyLost;
        if !needed {
            info!(name = %self.name, "a valid certificate is already stored; no order placed");
            return Err(AcmeError::Stopped);
        }
        let identifiers: Vec<Identifier> = self
            .record
            .names
            .iter()
            .map(|n| Identifier::Dns(n.clone()))
            .collect();
        let mut new = NewOrder::new(&identifiers);
        let replaces = stored
            .filter(|c| c.ari.is_some() && !c.ari_id.is_empty())
            .and_then(|c| ari_identifier(&c.ari_id));
        if let Some(replaces) = replaces {
            new = new.replaces(replaces);
        }
        let order = account
            .new_order(&new)
            .await
            .map_err(|e| AcmeError::ca("placing the order", e))?;
        self.record.url = order.url().to_string();
        self.record.started_ms = now_ms();
        info!(name = %self.name, url = %self.record.url, cause = ?self.record.cause, "order placed");
        Ok(order)
    }

    /// Answers every pending authorization, waits for the edges, and tells the CA.
    async fn validate(&mut self, order: &mut Order) -> Result<(), AcmeError> {
        let mut answers = Vec::new();
        let mut ready: Vec<ChallengeType> = Vec::new();
        // A wildcard certificate's other names (the zone apex) need not point at the edges:
        // they are validated through DNS too.
        let wildcard_order = self.record.names.iter().any(|n| n.starts_with("*."));
        {
            let mut authorizations = order.authorizations();
            while let Some(authz) = authorizations.next().await {
                let mut authz =
                    authz.map_err(|e| AcmeError::ca("reading the authorizations", e))?;
                if authz.status != AuthorizationStatus::Pending {
                    ready.push(ChallengeType::Unknown(String::new()));
                    continue;
                }
                let name = authz.identifier().to_string();
                let offered: Vec<ChallengeType> =
                    authz.challenges.iter().map(|c| c.r#type.clone()).collect();
                let kind = pick(
                    self.ctx.settings.challenge,
                    wildcard_order,
                    in_zone(&name, self.ctx.settings.dns_zone.as_deref()),
                    &offered,
                )
                .ok_or_else(|| no_challenge(&name, &offered))?;
                let challenge = authz
                    .challenge(kind.clone())
                    .ok_or_else(|| no_challenge(&name, &offered))?;
                let key_authorization = challenge.key_authorization();
                answers.push(match kind {
                    ChallengeType::Http01 => ChallengeAnswer::Http01 {
                        name,
                        token: challenge.token.clone(),
                        key_authorization: key_authorization.as_str().to_string(),
                    },
                    ChallengeType::TlsAlpn01 => ChallengeAnswer::TlsAlpn01 {
                        name,
                        digest: key_authorization.digest().as_ref().to_vec(),
                    },
                    _ => ChallengeAnswer::Dns01 {
                        name,
                        value: key_authorization.dns_value(),
                    },
                });
                ready.push(kind);
            }
        }
        self.record.challenges = answers;
        self.record.stage = OrderStage::Placed;
        self.save().await?;
        self.wait_for_servers().await?;
        self.record.stage = OrderStage::Validating;
        self.save().await?;
        {
            let mut authorizations = order.authorizations();
            let mut kinds = ready.into_iter();
            while let Some(authz) = authorizations.next().await {
                let mut authz =
                    authz.map_err(|e| AcmeError::ca("reading the authorizations", e))?;
                let kind = kinds
                    .next()
                    .unwrap_or(ChallengeType::Unknown(String::new()));
                if authz.status != AuthorizationStatus::Pending {
                    continue;
                }
                if let Some(mut challenge) = authz.challenge(kind) {
                    challenge
                        .set_ready()
                        .await
                        .map_err(|e| AcmeError::ca("telling the CA the answers are ready", e))?;
                }
            }
        }
        order
            .poll_ready(&policy())
            .await
            .map_err(|e| AcmeError::ca("waiting for validation", e))?;
        Ok(())
    }

    /// Waits until every member that must serve the answers does (the elected edges, or a
    /// passthrough name's hosting members), keeping the record alive, then the configured
    /// propagation wait.
    async fn wait_for_servers(&mut self) -> Result<(), AcmeError> {
        let digest = self.record.challenges_digest();
        let mut view = self.ctx.view.clone();
        let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
        loop {
            let current = view.borrow_and_update().clone();
            if !current.cert_holders(&self.name).contains(&self.ctx.me) {
                return Err(AcmeError::Stopped);
            }
            let acks = current.certs.acks.get(&self.name);
            let missing: Vec<String> = current
                .answer_servers(&self.name, &self.record.challenges)
                .iter()
                .filter(|node| acks.and_then(|a| a.get(*node)) != Some(&digest))
                .map(|node| node.short())
                .collect();
            if missing.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(name = %self.name, ?missing, "members did not confirm the challenge answers; telling the CA anyway");
                break;
            }
            tokio::select! {
                changed = view.changed() => if changed.is_err() { return Err(AcmeError::Stopped) },
                _ = tokio::time::sleep(KEEP_ALIVE) => self.save().await?,
                _ = tokio::time::sleep_until(deadline) => {}
            }
        }
        let wait = self.ctx.settings.propagation_wait;
        if !wait.is_zero() {
            info!(name = %self.name, wait_ms = wait.as_millis() as u64, "the answers are served everywhere; waiting for propagation");
            let until = tokio::time::Instant::now() + wait;
            while tokio::time::Instant::now() < until {
                tokio::time::sleep_until(until.min(tokio::time::Instant::now() + KEEP_ALIVE)).await;
                if tokio::time::Instant::now() < until {
                    self.save().await?;
                }
            }
        }
        Ok(())
    }

    /// The CA's reason for an invalid order, from the failed challenge.
    async fn invalid(&self, order: &mut Order) -> AcmeError {
        if let Some(problem) = &order.state().error {
            return AcmeError::Invalid {
                name: self.name.clone(),
                problem: super::problem_of(problem),
            };
        }
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = authz.refresh().await else {
                continue;
            };
            let name = state.identifier().to_string();
            if let Some(problem) = state.challenges.iter().find_map(|c| c.error.as_ref()) {
                return AcmeError::Invalid {
                    name,
                    problem: super::problem_of(problem),
                };
            }
        }
        AcmeError::Invalid {
            name: self.name.clone(),
            problem: cert::AcmeProblem {
                kind: String::new(),
                detail: "the CA marked the order invalid without saying why".into(),
            },
        }
    }

    /// Chooses the key (the record's, when this node can open it), seals it into the record,
    /// and sends the CSR unless the CA already has one.
    async fn finalize(
        &mut self,
        order: &mut Order,
        status: OrderStatus,
    ) -> Result<Vec<u8>, AcmeError> {
        let context = cert::order_key_context(&self.ctx.mesh, &self.name, &self.record.url);
        let kept = self
            .record
            .key
            .as_ref()
            .and_then(|sealed| seal::open(sealed, &self.ctx.key, &context).ok());
        if status != OrderStatus::Ready {
            // The CSR was sent by whoever placed the order: only its key fits.
            return kept.ok_or_else(|| AcmeError::Ca {
                doing: "resuming the order",
                problem: cert::AcmeProblem {
                    kind: String::new(),
                    detail: "the CA is issuing with a key that is not sealed to this edge; a new order follows".into(),
                },
            });
        }
        let made = match kept {
            Some(pkcs8) => material::csr_for_key(&pkcs8, &self.record.names)?,
            None => material::new_key_and_csr(&self.record.names)?,
        };
        let view = self.ctx.now_view();
        self.record.key = Some(seal::seal(
            &made.pkcs8,
            recipients(&view, &self.name, self.ctx.me),
            &context,
        )?);
        self.record.stage = OrderStage::Finalizing;
        self.save().await?;
        order
            .finalize_csr(&made.csr)
            .await
            .map_err(|e| AcmeError::ca("sending the CSR", e))?;
        Ok(made.pkcs8)
    }

    /// Stores the certificate with its key sealed to the edges, marks the order done, and for
    /// a rotation revokes the one it replaces.
    async fn store(&mut self, account: &Account, pem: &str, pkcs8: &[u8]) -> Result<(), AcmeError> {
        let chain = material::chain_from_pem(pem)?;
        material::certified_key(&chain, pkcs8)?;
        let leaf: Leaf = material::leaf(&chain[0])?;
        let view = self.ctx.now_view();
        let previous = view.certs.certs.get(&self.name).cloned();
        let now = now_ms();
        let mut recent: Vec<u64> = previous
            .as_ref()
            .map(|c| c.recent.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|t| now.saturating_sub(*t) < RECENT_WINDOW_MS)
            .collect();
        recent.push(now);
        let key = seal::seal(
            pkcs8,
            recipients(&view, &self.name, self.ctx.me),
            &cert::key_context(&self.ctx.mesh, &self.name, &leaf.serial),
        )?;
        let stored = Cert {
            names: self.record.names.clone(),
            chain,
            key,
            not_before_ms: leaf.not_before_ms,
            not_after_ms: leaf.not_after_ms,
            serial: leaf.serial.clone(),
            issuer: self.ctx.me,
            directory: self.record.directory.clone(),
            issued_ms: now,
            recent,
            ari: None,
            ari_id: leaf.ari_id.clone(),
        };
        self.ctx.writer.write(Body::Cert(stored)).await?;
        info!(name = %self.name, serial = %leaf.serial, not_after_ms = leaf.not_after_ms, "certificate stored");
        // The answers stay in the record as a note of how the names were validated; edges
        // serve answers only of orders still being validated.
        self.record.stage = OrderStage::Done;
        self.record.key = None;
        self.record.failures = 0;
        self.record.problem = None;
        self.save().await?;
        // A rotation replaces its predecessor; so does a passthrough name's certificate whose
        // predecessor was sealed to nodes that no longer hold it (the edges, when the host
        // was terminated there before): their copy of the old key must stop being valid.
        let holders = view.cert_holders(&self.name);
        let exposed = |c: &Cert| {
            view.is_passthrough_cert(&self.name)
                && c.key.recipients().any(|n| !holders.contains(&n))
        };
        if let Some(old) = previous.filter(|c| c.serial != leaf.serial) {
            if self.record.cause == OrderCause::Rotation || exposed(&old) {
                revoke(account, &self.name, &old).await;
            }
        }
        Ok(())
    }
}

/// Asks the CA for certificate `name`'s renewal window (ARI, RFC 9773) and stores it in the
/// Cert record, which moves its renewal into the window. A CA without ARI is remembered and
/// not asked again; any other failure is logged and the actor asks again later.
pub async fn refresh_ari(ctx: Arc<JobContext>, name: String) {
    let view = ctx.now_view();
    let Some(stored) = view.certs.certs.get(&name).cloned() else {
        return;
    };
    let Some(id) = ari_identifier(&stored.ari_id) else {
        return;
    };
    let account = match ctx.account(&name).await {
        Ok(account) => account,
        Err(e) => return warn!(%name, error = %e, "cannot ask for renewal information"),
    };
    match account.renewal_info(&id).await {
        Ok((info, retry_after)) => {
            let ms = |t: time::OffsetDateTime| {
                u64::try_from(t.unix_timestamp())
                    .unwrap_or(0)
                    .saturating_mul(1000)
            };
            let now = now_ms();
            let window = cert::AriWindow {
                start_ms: ms(info.suggested_window.start),
                end_ms: ms(info.suggested_window.end),
                fetched_ms: now,
                next_fetch_ms: hearth_proto::renewal::next_ari_fetch(now, retry_after.as_secs()),
            };
            info!(%name, start_ms = window.start_ms, end_ms = window.end_ms, "renewal window from the CA");
            let updated = Cert {
                ari: Some(window),
                ..stored
            };
            if let Err(e) = ctx.writer.write(Body::Cert(updated)).await {
                warn!(%name, error = %e, "cannot store the renewal window");
            }
        }
        Err(instant_acme::Error::Unsupported(_)) => {
            info!(directory = %stored.directory, "the CA offers no renewal information; renewing at two thirds of each certificate's life");
            ctx.no_ari
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(stored.directory.clone());
        }
        Err(e) => warn!(%name, error = %e, "cannot ask for renewal information"),
    }
}

/// Revokes a replaced certificate after a rotation; a failure is logged, not fatal (the new
/// one is already served).
async fn revoke(account: &Account, name: &str, old: &Cert) {
    let Some(leaf) = old.chain.first() else {
        return;
    };
    let der = rustls::pki_types::CertificateDer::from(leaf.clone());
    let request = instant_acme::RevocationRequest {
        certificate: &der,
        reason: Some(instant_acme::RevocationReason::Superseded),
    };
    match account.revoke(&request).await {
        Ok(()) => info!(name, serial = %old.serial, "the rotated certificate is revoked"),
        Err(e) => {
            warn!(name, serial = %old.serial, error = %e, "cannot revoke the rotated certificate")
        }
    }
}

/// How long to poll the CA for one step.
fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .backoff(1.5)
        .timeout(CA_STEP)
}

/// An ARI certificate identifier from its stored text form.
fn ari_identifier(id: &str) -> Option<instant_acme::CertificateIdentifier<'static>> {
    let (aki, serial) = id.split_once('.')?;
    Some(instant_acme::CertificateIdentifier {
        authority_key_identifier: aki.to_string().into(),
        serial: serial.to_string().into(),
    })
}

/// Whether `name` (maybe `*.`) lies in the edges' DNS zone.
fn in_zone(name: &str, zone: Option<&str>) -> bool {
    let name = name.trim_start_matches("*.");
    zone.is_some_and(|zone| name == zone || name.ends_with(&format!(".{zone}")))
}

/// The challenge to answer: the preferred one if offered, else the others in turn; DNS-01
/// only inside the edges' zone, and always for the names of a wildcard certificate.
pub fn pick(
    pref: ChallengePref,
    wildcard: bool,
    in_zone: bool,
    offered: &[ChallengeType],
) -> Option<ChallengeType> {
    use ChallengeType::*;
    let order: &[ChallengeType] = match (wildcard, pref) {
        (true, _) => &[Dns01],
        (false, ChallengePref::TlsAlpn01) => &[TlsAlpn01, Http01, Dns01],
        (false, ChallengePref::Dns01) => &[Dns01, Http01, TlsAlpn01],
        (false, ChallengePref::Http01 | ChallengePref::Auto) => &[Http01, TlsAlpn01, Dns01],
    };
    order
        .iter()
        .filter(|kind| **kind != Dns01 || in_zone)
        .find(|kind| offered.contains(kind))
        .cloned()
}

fn no_challenge(name: &str, offered: &[ChallengeType]) -> AcmeError {
    let offered = offered
        .iter()
        .map(|c| format!("{c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    AcmeError::NoChallenge {
        name: name.to_string(),
        offered,
        hint: if name.starts_with("*.") {
            "a wildcard needs DNS-01: set [dns] zone to cover it and delegate the zone to the edges"
        } else {
            "serve :80 or :443 on the edges, or set [dns] zone for DNS-01"
        },
    }
}

/// The certificates this node can open now, by name, for the served table.
pub fn openable(
    view: &MeshView,
    key: &NodeKey,
    mesh: &MeshId,
) -> Vec<(String, Cert, Result<Vec<u8>, hearth_proto::seal::SealError>)> {
    let me = key.id();
    view.certs
        .certs
        .iter()
        .filter(|(_, c)| c.key.is_for(&me))
        .map(|(name, c)| {
            let opened = seal::open(&c.key, key, &cert::key_context(mesh, name, &c.serial));
            (name.clone(), c.clone(), opened)
        })
        .collect()
}

/// A copy of `sealed` opened by this node and sealed again to `to`.
pub fn reseal(
    sealed: &Sealed,
    key: &NodeKey,
    context: &[u8],
    to: impl IntoIterator<Item = NodeId>,
) -> Result<Sealed, hearth_proto::seal::SealError> {
    let secret = seal::open(sealed, key, context)?;
    seal::seal(&secret, to, context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ChallengeType::*;

    #[test]
    fn challenges_are_picked_by_preference_and_what_the_ca_offers() {
        let all = [Http01, TlsAlpn01, Dns01];
        assert_eq!(pick(ChallengePref::Auto, false, true, &all), Some(Http01));
        assert_eq!(
            pick(ChallengePref::TlsAlpn01, false, false, &all),
            Some(TlsAlpn01)
        );
        assert_eq!(pick(ChallengePref::Dns01, false, true, &all), Some(Dns01));
        // DNS-01 only where the edges answer DNS.
        assert_eq!(pick(ChallengePref::Dns01, false, false, &all), Some(Http01));
        assert_eq!(pick(ChallengePref::Auto, true, true, &all), Some(Dns01));
        assert_eq!(pick(ChallengePref::Auto, true, false, &all), None);
        assert_eq!(
            pick(ChallengePref::Http01, false, false, &[TlsAlpn01]),
            Some(TlsAlpn01)
        );
        assert_eq!(pick(ChallengePref::Auto, false, false, &[Dns01]), None);
        assert!(in_zone("*.hearth.test", Some("hearth.test")));
        assert!(in_zone("a.b.hearth.test", Some("hearth.test")));
        assert!(!in_zone("xhearth.test", Some("hearth.test")));
        assert!(!in_zone("a.hearth.test", None));
    }

    #[test]
    fn ari_identifiers_read_back() {
        let id = ari_identifier("YWtp.c2VyaWFs").unwrap();
        assert_eq!(id.to_string(), "YWtp.c2VyaWFs");
        assert!(ari_identifier("nodot").is_none());
    }
}
