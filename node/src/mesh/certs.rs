//! Certificates in the mesh actor: `hearthctl certs`, renewal and rotation requests, and the
//! records the ACME actor writes through it.

use super::actor::MeshActor;
use crate::clock::now_ms;
use crate::view::MeshView;
use hearth_proto::api::{ApiError, ApiErrorKind, CertRowV1, CertsV1, ResponseV1};
use hearth_proto::cert::{self, AcmeOrder, CertAction, CertRequest, CertState, OrderStage};
use hearth_proto::renewal::{decide, due_at, Decision};
use hearth_proto::{Body, NodeId, Record};
use std::collections::{BTreeMap, BTreeSet};
use tokio::sync::oneshot;

/// A record the ACME actor wants written (signed by this node, stored, replicated), with the
/// channel for the stored record or the reason it was not.
pub type WriteRequest = (Body, oneshot::Sender<Result<Record, ApiError>>);

impl MeshActor {
    /// Writes a record for another actor of this node.
    pub(super) fn write_for(&mut self, (body, reply): WriteRequest) {
        let result = self.write(body);
        self.when_durable(super::durable::Completion::Write(reply, result));
    }

    /// `hearthctl certs`.
    pub(super) fn certs_report(&self) -> CertsV1 {
        let view = self.view.borrow().clone();
        let infos = self.member_infos();
        let name_of = |node: &NodeId| self.display_name(node, infos.get(node));
        let now = now_ms();
        let plan = view.cert_plan();
        let mut hosts = view.https_hosts();
        hosts.extend(view.passthrough_hosts());
        let mut names: BTreeSet<String> = plan.keys().cloned().collect();
        names.extend(view.certs.certs.keys().cloned());
        let mut rows: Vec<CertRowV1> = names
            .into_iter()
            .map(|name| {
                let carried = plan
                    .get(&name)
                    .cloned()
                    .or_else(|| view.certs.certs.get(&name).map(|c| c.names.clone()))
                    .unwrap_or_default();
                // A passthrough host has its own certificate, whatever wildcard covers it.
                let passthrough = view.is_passthrough_cert(&name);
                let served: Vec<String> = hosts
                    .iter()
                    .filter(|h| {
                        if passthrough {
                            **h == name
                        } else {
                            !view.is_passthrough_cert(h)
                                && carried.iter().any(|n| cert::name_covers(n, h))
                        }
                    })
                    .cloned()
                    .collect();
                row(&view, &name, carried, served, now, &name_of)
            })
            .collect();
        for (host, why) in view.uncertifiable() {
            let mode = view.tls_of(&host).unwrap_or_default();
            rows.push(CertRowV1 {
                name: host.clone(),
                names: Vec::new(),
                hosts: vec![host],
                state: CertState::Failed,
                detail: format!("{why}; HTTPS answers with a self-signed certificate"),
                issuer: None,
                issuer_name: String::new(),
                not_after_ms: None,
                renew_at_ms: None,
                serial: None,
                holders: Vec::new(),
                directory: String::new(),
                challenges: Vec::new(),
                mode,
            });
        }
        CertsV1 {
            acme: self.settings.acme_status.clone(),
            rows,
        }
    }

    /// `hearthctl certs renew|rotate HOST`: stores the request for the issuing edge.
    pub(super) fn cert_action(
        &mut self,
        host: &str,
        action: CertAction,
    ) -> Result<ResponseV1, ApiError> {
        let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
        let view = self.view.borrow().clone();
        let plan = view.cert_plan();
        let name = if plan.contains_key(&host) {
            Some(host.clone())
        } else {
            plan.iter()
                .find(|(_, names)| names.iter().any(|n| cert::name_covers(n, &host)))
                .map(|(name, _)| name.clone())
        };
        let Some(name) = name else {
            return Err(ApiError::new(
                ApiErrorKind::NotFound,
                format!(
                    "no certificate is needed for `{host}`: publish it first (`hearthctl publish {host} --to ADDR:PORT`); `hearthctl certs` lists the certificates"
                ),
            ));
        };
        let request = CertRequest {
            name: name.clone(),
            action,
            asked_ms: now_ms(),
        };
        let (_, order) = split(&view, &name);
        if let Decision::Refused { reason } = decide(
            view.certs.certs.get(&name),
            order,
            Some(&request),
            request.asked_ms,
        ) {
            return Err(ApiError::new(ApiErrorKind::BadRequest, reason));
        }
        self.write(Body::CertRequest(request))?;
        let infos = self.member_infos();
        let issuer = cert::issuer_of(&name, &view.cert_issuers(&name))
            .map(|node| self.display_name(&node, infos.get(&node)));
        Ok(ResponseV1::CertRequested {
            name,
            action,
            issuer,
        })
    }
}

fn split<'a>(view: &'a MeshView, name: &str) -> (Option<u64>, Option<&'a AcmeOrder>) {
    match view.certs.orders.get(name) {
        Some((order, written)) => (Some(*written), Some(order)),
        None => (None, None),
    }
}

/// One row of `hearthctl certs`.
fn row(
    view: &MeshView,
    name: &str,
    names: Vec<String>,
    hosts: Vec<String>,
    now: u64,
    name_of: &dyn Fn(&NodeId) -> String,
) -> CertRowV1 {
    let stored = view.certs.certs.get(name);
    let (_, order) = split(view, name);
    let state = cert::state(stored, order, now);
    let issuing = view.cert_issuers(name);
    let issuer = match (order, stored) {
        (Some(o), _) if o.in_flight() => Some(o.issuer),
        (_, Some(c)) if state != CertState::Failed => Some(c.issuer),
        (Some(o), _) => Some(o.issuer),
        _ => cert::issuer_of(name, &issuing),
    };
    // Every current member that can open the key: where it lives (a former edge keeps its
    // box until `hearthctl certs rotate`).
    let holders = stored
        .map(|c| {
            cert::holders(&c.key, &view.members)
                .iter()
                .map(name_of)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let detail = detail(view, name, state.clone(), order, &issuing, name_of, now);
    CertRowV1 {
        name: name.to_string(),
        names,
        hosts,
        state,
        detail,
        issuer_name: issuer.as_ref().map(name_of).unwrap_or_default(),
        issuer,
        not_after_ms: stored.map(|c| c.not_after_ms),
        renew_at_ms: stored.map(due_at),
        serial: stored.map(|c| c.serial.clone()),
        holders,
        directory: stored
            .map(|c| c.directory.clone())
            .or_else(|| order.map(|o| o.directory.clone()))
            .unwrap_or_default(),
        challenges: order
            .map(|o| o.challenges.iter().map(challenge_label).collect())
            .unwrap_or_default(),
        mode: if view.is_passthrough_cert(name) {
            hearth_proto::route::RouteTls::Passthrough
        } else {
            hearth_proto::route::RouteTls::Edge
        },
    }
}

/// `http-01 app.example.com`, for `hearthctl certs`.
fn challenge_label(answer: &hearth_proto::cert::ChallengeAnswer) -> String {
    use hearth_proto::cert::ChallengeAnswer::*;
    let kind = match answer {
        Http01 { .. } => "http-01",
        TlsAlpn01 { .. } => "tls-alpn-01",
        Dns01 { .. } => "dns-01",
    };
    format!("{kind} {}", answer.name())
}

/// What a person needs to know about a name's state.
fn detail(
    view: &MeshView,
    name: &str,
    state: CertState,
    order: Option<&AcmeOrder>,
    issuing: &[NodeId],
    name_of: &dyn Fn(&NodeId) -> String,
    now: u64,
) -> String {
    let self_signed = "HTTPS answers with a self-signed certificate meanwhile";
    let stage = |o: &AcmeOrder| -> String {
        match o.stage {
            OrderStage::Placed => {
                let servers = view.answer_servers(name, &o.challenges);
                let acked = acked_by(view, name, o, &servers);
                let who = if view.is_passthrough_cert(name) {
                    "members"
                } else {
                    "edges"
                };
                format!(
                    "order placed by {}; {} of {} {who} serve the challenge answers",
                    name_of(&o.issuer),
                    acked,
                    servers.len()
                )
            }
            OrderStage::Validating => format!("the CA is validating ({})", name_of(&o.issuer)),
            OrderStage::Finalizing => format!("the CA is issuing ({})", name_of(&o.issuer)),
            OrderStage::Done | OrderStage::Failed => String::new(),
        }
    };
    match state {
        CertState::Pending => match order.filter(|o| o.in_flight()) {
            Some(o) => format!("{}; {self_signed}", stage(o)),
            None if issuing.is_empty() && view.is_passthrough_cert(name) => format!(
                "no member hosting this passthrough host may order certificates (set [acme] accept_terms = true on it); {self_signed}"
            ),
            None if issuing.is_empty() => format!(
                "no elected edge may order certificates (set [acme] accept_terms = true on the edges); {self_signed}"
            ),
            None => format!(
                "waiting for {} to order it; {self_signed}",
                cert::issuer_of(name, issuing)
                    .map(|n| name_of(&n))
                    .unwrap_or_default()
            ),
        },
        CertState::Renewing => order.map(stage).unwrap_or_default(),
        CertState::Failed => match order.and_then(|o| o.problem.as_ref().map(|p| (o, p))) {
            Some((o, problem)) => {
                let retry = if o.retry_ms > now {
                    format!("; next try in {} s", (o.retry_ms - now).div_ceil(1000))
                } else {
                    "; retrying now".into()
                };
                format!("{problem}{retry}")
            }
            None => "the last order failed".into(),
        },
        CertState::Expired => "expired, and no new certificate could be had yet".into(),
        CertState::Valid => match view.certs.requests.get(name) {
            Some(request) => match decide(view.certs.certs.get(name), order, Some(request), now)
            {
                Decision::Refused { reason } => reason,
                _ => String::new(),
            },
            None => String::new(),
        },
    }
}

/// How many of `servers` acknowledged serving `order`'s challenge answers.
fn acked_by(view: &MeshView, name: &str, order: &AcmeOrder, servers: &BTreeSet<NodeId>) -> usize {
    let digest = order.challenges_digest();
    let acks: Option<&BTreeMap<NodeId, [u8; 32]>> = view.certs.acks.get(name);
    servers
        .iter()
        .filter(|e| acks.and_then(|a| a.get(e)) == Some(&digest))
        .count()
}
