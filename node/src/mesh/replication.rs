//! The libp2p shell around the replication core (`hearth_proto::replication::Replica`): swarm
//! events become the core's events, its actions become requests and answers, and
//! what promises durability waits for the flush (`mesh::durable`). The decisions themselves
//! (what to store, push, ask and answer) are the core's; see docs/replication.md.

use super::actor::MeshActor;
use super::frame_streams::{Inbound, NotSent};
use super::peer_id::{node_id, peer_id};
use crate::clock::now_ms;
use crate::store::{Applied, ApplyError, StoreError};
use hearth_proto::api::{ApiError, ApiErrorKind};
use hearth_proto::membership::Rejection;
use hearth_proto::replication::{Action, Event};
use hearth_proto::wire::{PushFrame, SyncRequest, SyncRequestV1, SyncResponse, SyncResponseV1};
use hearth_proto::{Body, NodeId, Record};
use libp2p::request_response::{self, Message};
use libp2p::PeerId;
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What carrying out one event's actions produced for the shell.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// The answer to the request being handled.
    reply: Option<SyncResponseV1>,
}

impl MeshActor {
    pub(super) fn count_rejection(&mut self, rejection: &Rejection) {
        *self.rejected.entry(rejection.label()).or_default() += 1;
    }

    /// Signs and stores a record written by this node; it is pushed to the others once the
    /// flush at the end of this turn made it durable.
    pub(super) fn write(&mut self, body: Body) -> Result<Record, ApiError> {
        let record = match self.replica.write(now_ms(), &body) {
            Ok((record, Applied::Stored)) => {
                self.mark_unflushed();
                record
            }
            Ok((record, Applied::Stale)) => record,
            Err(ApplyError::Rejected(r)) => {
                return Err(ApiError::new(ApiErrorKind::Forbidden, r.to_string()))
            }
            Err(ApplyError::Store(e)) => {
                return Err(ApiError::new(ApiErrorKind::Internal, e.to_string()))
            }
        };
        self.apply_locally(std::slice::from_ref(&record));
        self.when_durable(super::durable::Completion::Spread(vec![record.clone()]));
        Ok(record)
    }

    /// Hands `event` to the replication core with the members connected now, and carries out
    /// what it asks.
    pub(super) fn replicate(&mut self, event: Event) -> Carried {
        let peers: Vec<NodeId> = self
            .connected_members()
            .iter()
            .filter_map(node_id)
            .collect();
        let actions = self.replica.handle(now_ms(), &peers, event);
        let mut carried = Carried::default();
        for action in actions {
            self.carry_out(action, &mut carried);
        }
        carried
    }

    fn carry_out(&mut self, action: Action<StoreError>, carried: &mut Carried) {
        match action {
            Action::Send { to, request } => self.send_sync(to, request),
            Action::Reply(response) => carried.reply = Some(response),
            Action::Stored { records, from } => {
                self.mark_unflushed();
                debug!(
                    records = ?records.iter().map(|r| (r.kind, r.key.as_str())).collect::<Vec<_>>(),
                    from = %from.short(),
                    "stored records"
                );
                self.apply_locally(&records);
            }
            Action::Refused(rejection) => {
                debug!(%rejection, "refused record");
                self.count_rejection(&rejection);
            }
            Action::Purged(n) => {
                self.mark_unflushed();
                self.reload_routes();
                info!(purged = n, "purged expired tombstones");
            }
            Action::StoreFailed(e) => warn!(error = %e, "store failed while replicating"),
        }
    }

    /// Sends a request of the replication core: a push as a frame on `to`'s push stream
    /// (unanswered), anything else, and a push the stream cannot take, as a request.
    fn send_sync(&mut self, to: NodeId, request: SyncRequestV1) {
        let peer = peer_id(&to);
        let request = match (request, self.push_streams.as_mut()) {
            (SyncRequestV1::Push { records }, Some(streams)) => {
                let frame = PushFrame::V1 { records };
                match streams.send(peer, &frame) {
                    Ok(()) => return,
                    Err(NotSent::Dropped) => {
                        debug!(to = %to.short(), "push dropped: the peer is behind; anti-entropy will bring it");
                        return;
                    }
                    Err(NotSent::OtherWay) => {
                        let PushFrame::V1 { records } = frame;
                        SyncRequestV1::Push { records }
                    }
                }
            }
            (request, _) => request,
        };
        self.swarm
            .behaviour_mut()
            .sync
            .send_request(&peer, SyncRequest::V1(request));
    }

    /// What a push stream delivered: records from a member, or a peer that does not speak
    /// the protocol (it gets pushes as requests from now on).
    pub(super) fn push_stream_event(&mut self, inbound: Inbound<PushFrame>) {
        match inbound {
            Inbound::Frame(peer, PushFrame::V1 { records }) => {
                let Some(from) = node_id(&peer).filter(|_| self.is_member_peer(&peer)) else {
                    return;
                };
                // Nothing answers a frame; what is stored is flushed at the end of the turn.
                self.replicate(Event::Records { from, records });
            }
            Inbound::Unsupported(peer) => {
                debug!(%peer, "no push streams: requests for this peer");
                if let Some(streams) = self.push_streams.as_mut() {
                    streams.unsupported(peer);
                }
            }
        }
    }

    /// What newly stored records change on this node: membership, the election, the view.
    pub(super) fn apply_locally(&mut self, stored: &[Record]) {
        if stored.is_empty() {
            return;
        }
        self.infos_stored(stored);
        self.routes_stored(stored);
        if stored.iter().any(|r| {
            matches!(
                r.kind,
                hearth_proto::Kind::Member | hearth_proto::Kind::Revocation
            )
        }) {
            self.refresh_membership();
        }
        if stored.iter().any(|r| {
            matches!(
                r.kind,
                hearth_proto::Kind::Member
                    | hearth_proto::Kind::Revocation
                    | hearth_proto::Kind::NodeInfo
            )
        }) {
            self.refresh_election();
        }
        // A member that restarted is dialed now rather than when its backoff ends.
        for record in stored
            .iter()
            .filter(|r| r.kind == hearth_proto::Kind::NodeInfo)
        {
            if let Ok(Body::NodeInfo(info)) = record.decode_body() {
                self.heard_start(record.author, info.started_ms);
            }
        }
        // Every kind but the genesis shows in the data plane's view.
        if stored.iter().any(|r| r.kind != hearth_proto::Kind::Genesis) {
            self.publish_view();
        }
    }

    /// A member connected: the core sends it every version this node holds.
    pub(super) fn member_connected(&mut self, peer: PeerId) {
        if let Some(node) = node_id(&peer) {
            self.replicate(Event::Connected(node));
        }
    }

    pub(super) fn anti_entropy_round(&mut self) {
        self.replicate(Event::Tick);
        // After the round's purge, so the watermark never counts purged tombstones.
        self.flusher.save_watermark();
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
                let from = node_id(&peer).filter(|_| self.is_member_peer(&peer));
                let SyncRequest::V1(request) = request;
                let response = match (from, request) {
                    (None, _) => {
                        if let Some(state) = self.peers.get_mut(&peer) {
                            state.guest_until = Some(Instant::now() + Duration::from_millis(500));
                        }
                        Some(SyncResponseV1::NotAMember)
                    }
                    (Some(_), SyncRequestV1::DialBack { port }) => {
                        // Answered once the dial succeeds or fails.
                        self.serve_dial_back(peer, connection_id, port, channel);
                        return;
                    }
                    (Some(from), SyncRequestV1::Push { records }) => {
                        self.replicate(Event::Records { from, records }).reply
                    }
                    (Some(from), SyncRequestV1::Summary { digest, versions }) => {
                        self.replicate(Event::Summary {
                            from,
                            digest,
                            versions,
                        })
                        .reply
                    }
                };
                // No answer when the store failed: the peer sees the request fail.
                let Some(response) = response else {
                    return;
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
                if let Some(from) = node_id(&peer).filter(|_| self.is_member_peer(&peer)) {
                    self.replicate(Event::Answer { from, response });
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
