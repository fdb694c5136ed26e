//! Replication in the mesh actor: writing records, ingesting them from peers, pushing them
//! (directly and over gossipsub) and anti-entropy. See docs/replication.md.

use super::actor::MeshActor;
use super::peer_id::node_id;
use crate::clock::now_ms;
use crate::store::ApplyError;
use hearth_proto::api::{ApiError, ApiErrorKind};
use hearth_proto::membership::Rejection;
use hearth_proto::wire::{
    Gossip, SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1, MAX_RECORDS_PER_MESSAGE,
};
use hearth_proto::{Body, Kind, Record};
use libp2p::gossipsub::{self, MessageAcceptance};
use libp2p::request_response::{self, Message};
use libp2p::PeerId;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

impl MeshActor {
    pub(super) fn count_rejection(&mut self, rejection: &Rejection) {
        *self.rejected.entry(rejection.label()).or_default() += 1;
    }

    /// Signs and stores a record written by this node; it is pushed to the others once the
    /// flush at the end of this turn made it durable.
    pub(super) fn write(&mut self, body: Body) -> Result<Record, ApiError> {
        let hlc = self.next_hlc();
        let record = Record::sign(&self.key, self.mesh, &body, hlc);
        match self.store.apply_unflushed(&record) {
            Ok(crate::store::Applied::Stored) => self.mark_unflushed(),
            Ok(crate::store::Applied::Stale) => {}
            Err(ApplyError::Rejected(r)) => {
                return Err(ApiError::new(ApiErrorKind::Forbidden, r.to_string()))
            }
            Err(ApplyError::Store(e)) => {
                return Err(ApiError::new(ApiErrorKind::Internal, e.to_string()))
            }
        }
        self.apply_locally(std::slice::from_ref(&record));
        self.when_durable(super::durable::Completion::Spread(vec![record.clone()]));
        Ok(record)
    }

    /// Applies records from `from`, returning (stored, rejected) counts. A record dated beyond
    /// the clock bound is refused before anything else; the local clock observes only
    /// records that verified and were stored.
    pub(super) fn ingest(&mut self, records: Vec<Record>, from: Option<PeerId>) -> (u32, u32) {
        let now = now_ms();
        let bound = self.settings.max_clock_ahead.as_millis() as u64;
        let (records, ahead): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| r.hlc.ahead_of(now, bound).is_none());
        let ahead: Vec<Rejection> = ahead
            .iter()
            .map(|r| Rejection::ClockAhead {
                author: r.author,
                by_ms: r.hlc.millis.saturating_sub(now),
            })
            .collect();
        match self.store.apply_batch_unflushed(records) {
            Ok((stored, mut rejected)) => {
                if !stored.is_empty() {
                    self.mark_unflushed();
                    debug!(
                        records = ?stored.iter().map(|r| (r.kind, r.key.as_str())).collect::<Vec<_>>(),
                        from = ?from,
                        "stored records"
                    );
                }
                rejected.extend(ahead);
                for rejection in &rejected {
                    debug!(%rejection, "refused record");
                    self.count_rejection(rejection);
                }
                for record in &stored {
                    self.clock = self.clock.observe(record.hlc);
                }
                let counts = (stored.len() as u32, rejected.len() as u32);
                self.after_stored(&stored, from);
                counts
            }
            Err(e) => {
                warn!(error = %e, "store failed while applying records");
                (0, 0)
            }
        }
    }

    /// Refreshes what newly stored records change here, and pushes them to every connected
    /// member but their source.
    pub(super) fn after_stored(&mut self, stored: &[Record], from: Option<PeerId>) {
        self.apply_locally(stored);
        self.spread(stored, from);
    }

    /// What newly stored records change on this node: membership, the election, the view.
    pub(super) fn apply_locally(&mut self, stored: &[Record]) {
        if stored.is_empty() {
            return;
        }
        if stored
            .iter()
            .any(|r| matches!(r.kind, Kind::Member | Kind::Revocation))
        {
            self.refresh_membership();
        }
        if stored
            .iter()
            .any(|r| matches!(r.kind, Kind::Member | Kind::Revocation | Kind::NodeInfo))
        {
            self.refresh_election();
        }
        // A member that restarted is dialed now rather than when its backoff ends.
        for record in stored.iter().filter(|r| r.kind == Kind::NodeInfo) {
            if let Ok(Body::NodeInfo(info)) = record.decode_body() {
                self.heard_start(record.author, info.started_ms);
            }
        }
        // Every kind but the genesis shows in the data plane's view.
        if stored.iter().any(|r| r.kind != Kind::Genesis) {
            self.publish_view();
        }
    }

    /// Pushes newly stored records on: this node's own (`from` is `None`) to every connected
    /// member and on gossipsub, received ones from their author to the other members.
    pub(super) fn spread(&mut self, stored: &[Record], from: Option<PeerId>) {
        if stored.is_empty() {
            return;
        }
        // Two paths, because a personal mesh is often a star (NAT'd homes around one VPS)
        // and gossipsub alone was measured to miss a leaf now and then (its subscription
        // state lags behind short-lived and duplicate connections):
        // - this node's own writes go out on gossipsub *and* straight to every connected member;
        // - a record received from its author is pushed straight on to this node's other
        //   members, so a hub reaches every leaf in one step.
        // Gossipsub still carries records further; duplicates cost one stale check, and
        // anti-entropy repairs anything both paths miss.
        // NodeInfo records are written only when they change (liveness is the failure
        // detector's), so they travel like any other record.
        let first_hop: Vec<Record> = match from {
            None => stored.to_vec(),
            Some(source) => stored
                .iter()
                .filter(|r| node_id(&source) == Some(r.author))
                .cloned()
                .collect(),
        };
        if !first_hop.is_empty() {
            for peer in self.connected_members() {
                if Some(peer) == from {
                    continue;
                }
                for chunk in first_hop.chunks(MAX_RECORDS_PER_MESSAGE) {
                    let request = SyncRequest::V1(SyncRequestV1::Push {
                        records: chunk.to_vec(),
                    });
                    self.swarm.behaviour_mut().sync.send_request(&peer, request);
                }
            }
        }
        if from.is_some() {
            return;
        }
        for chunk in stored.chunks(MAX_RECORDS_PER_MESSAGE) {
            let message = Gossip::V1 {
                records: chunk.to_vec(),
            };
            let topic = self.topic.clone();
            if let Err(e) = self
                .swarm
                .behaviour_mut()
                .gossip
                .publish(topic, message.encode())
            {
                debug!(error = %e, "gossip publish");
            }
        }
    }

    pub(super) fn handle_gossip_event(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source: peer,
            message_id,
            message,
        } = event
        else {
            return;
        };
        let acceptance = if !self.is_member_peer(&peer) {
            MessageAcceptance::Reject
        } else {
            match Gossip::decode(&message.data) {
                Err(e) => {
                    debug!(%peer, error = %e, "undecodable gossip");
                    *self.rejected.entry("malformed").or_default() += 1;
                    MessageAcceptance::Reject
                }
                Ok(Gossip::V1 { records }) => match self.ingest(records, Some(peer)) {
                    (_, 0) => MessageAcceptance::Accept,
                    _ => MessageAcceptance::Reject,
                },
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(&message_id, &peer, acceptance);
    }

    /// Sends `peer` every version this node holds (a new connection, or digests differ).
    pub(super) fn send_summary(&mut self, peer: PeerId) {
        self.send_summary_of(peer, true);
    }

    fn send_summary_of(&mut self, peer: PeerId, with_versions: bool) {
        let Ok(versions) = self.store.versions() else {
            return;
        };
        let digest = hearth_proto::merge::digest(&versions);
        let versions = if with_versions { versions } else { Vec::new() };
        let request = SyncRequest::V1(SyncRequestV1::Summary { digest, versions });
        self.swarm.behaviour_mut().sync.send_request(&peer, request);
    }

    pub(super) fn anti_entropy_round(&mut self) {
        let ttl_ms = self.settings.tombstone_ttl.as_millis() as u64;
        match self.store.purge_tombstones(now_ms(), ttl_ms) {
            Ok(0) => {}
            Ok(n) => info!(purged = n, "purged expired tombstones"),
            Err(e) => warn!(error = %e, "cannot purge tombstones"),
        }
        self.flusher.save_watermark();
        let peers = self.connected_members();
        if peers.is_empty() {
            return;
        }
        let pick = (rand::random::<u32>() as usize) % peers.len();
        // The digest alone first: an idle mesh is in sync, and 32 bytes say so.
        self.send_summary_of(peers[pick], false);
    }

    /// Computes what a peer with `versions` lacks, and what it has that we lack.
    pub(super) fn delta_for(&self, versions: Vec<hearth_proto::RecordVersion>) -> SyncResponseV1 {
        let theirs: HashMap<_, _> = versions.into_iter().map(|v| (v.id.clone(), v)).collect();
        let Ok(ours) = self.store.all_records() else {
            return SyncResponseV1::Delta {
                records: Vec::new(),
                want: Vec::new(),
            };
        };
        let mut records = Vec::new();
        let mut ours_ids = BTreeSet::new();
        for record in ours {
            let id = record.id();
            let newer = match theirs.get(&id) {
                None => true,
                Some(v) => (record.hlc, record.author) > (v.hlc, v.author),
            };
            ours_ids.insert(id);
            if newer && records.len() < MAX_RECORDS_PER_MESSAGE {
                records.push(record);
            }
        }
        let want = theirs
            .into_iter()
            .filter(|(id, v)| match self.store.get(id) {
                Ok(Some(mine)) => (v.hlc, v.author) > (mine.hlc, mine.author),
                Ok(None) => true,
                Err(_) => false,
            })
            .map(|(id, _)| id)
            .take(MAX_RECORDS_PER_MESSAGE)
            .collect();
        SyncResponseV1::Delta { records, want }
    }

    pub(super) fn handle_sync_event(
        &mut self,
        event: request_response::Event<SyncRequest, SyncResponse>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    Message::Request {
                        request, channel, ..
                    },
            } => {
                let response = if !self.is_member_peer(&peer) {
                    if let Some(state) = self.peers.get_mut(&peer) {
                        state.guest_until = Some(Instant::now() + Duration::from_millis(500));
                    }
                    SyncResponseV1::NotAMember
                } else {
                    let SyncRequest::V1(request) = request;
                    match request {
                        SyncRequestV1::Push { records } => {
                            let (stored, rejected) = self.ingest(records, Some(peer));
                            SyncResponseV1::Ack { stored, rejected }
                        }
                        SyncRequestV1::Summary { digest, versions } => {
                            if self.store.digest().ok() == Some(digest) {
                                SyncResponseV1::InSync
                            } else if versions.is_empty() {
                                SyncResponseV1::Differs
                            } else {
                                self.delta_for(versions)
                            }
                        }
                        SyncRequestV1::DialBack { port } => {
                            // Answered once the dial succeeds or fails.
                            self.serve_dial_back(peer, connection_id, port, channel);
                            return;
                        }
                    }
                };
                // An acknowledgement promises durability: it waits for the turn's flush.
                self.when_durable(super::durable::Completion::SyncAck(
                    channel,
                    SyncResponse::V1(response),
                ));
            }
            request_response::Event::Message {
                peer,
                message:
                    Message::Response {
                        response,
                        request_id,
                    },
                ..
            } => {
                let SyncResponse::V1(response) = response;
                if let SyncResponseV1::DialedBack { addr, result } = response {
                    self.dial_back_answered(request_id, Some((addr, result)));
                    return;
                }
                if matches!(response, SyncResponseV1::Differs) && self.is_member_peer(&peer) {
                    self.send_summary(peer);
                    return;
                }
                if let SyncResponseV1::Delta { records, want } = response {
                    if !self.is_member_peer(&peer) {
                        return;
                    }
                    self.ingest(records, Some(peer));
                    let wanted: Vec<Record> = want
                        .iter()
                        .filter_map(|id| self.store.get(id).ok().flatten())
                        .collect();
                    if !wanted.is_empty() {
                        let request = SyncRequest::V1(SyncRequestV1::Push { records: wanted });
                        self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    }
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                let was_dial_back = self.dial_back_answered(request_id, None);
                if !was_dial_back {
                    debug!(%peer, %error, "sync request failed");
                }
            }
            _ => {}
        }
    }
}
