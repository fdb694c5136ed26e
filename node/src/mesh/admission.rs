//! Invite redemption in the mesh actor: a guest presents a code and becomes a member, or is
//! told why not and closed.

use super::actor::MeshActor;
use super::peer_id::node_id;
use crate::clock::now_ms;
use hearth_proto::invite::{InviteError, InviteSecret};
use hearth_proto::record::Member;
use hearth_proto::wire::{JoinRequest, JoinResponse};
use hearth_proto::{Body, MeshId, Record, Role};
use libp2p::request_response::{self, Message, ResponseChannel};
use libp2p::PeerId;
use std::time::{Duration, Instant};
use tracing::info;

impl MeshActor {
    pub(super) fn handle_join_event(
        &mut self,
        event: request_response::Event<JoinRequest, JoinResponse>,
    ) {
        if let request_response::Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } = event
        {
            self.handle_join(peer, request, channel);
        }
    }

    fn handle_join(
        &mut self,
        peer: PeerId,
        request: JoinRequest,
        channel: ResponseChannel<JoinResponse>,
    ) {
        let JoinRequest::V1 { mesh, secret, name } = request;
        let result = self.admit(peer, mesh, &secret, &name);
        match &result {
            Ok(_) => info!(%peer, %name, "admitted a new member"),
            Err(e) => {
                info!(%peer, reason = %e, "refused a join");
                // Let the answer flush, then the guest grace closes the connection.
                if let Some(state) = self.peers.get_mut(&peer) {
                    state.guest_until = Some(Instant::now() + Duration::from_millis(500));
                }
            }
        }
        self.when_durable(super::durable::Completion::JoinAnswer(
            channel,
            JoinResponse::V1(result),
        ));
    }

    fn admit(
        &mut self,
        peer: PeerId,
        mesh: MeshId,
        secret: &InviteSecret,
        name: &str,
    ) -> Result<Vec<Record>, InviteError> {
        if mesh != self.mesh {
            return Err(InviteError::WrongMesh {
                invite: mesh.short(),
                context: "the node it reached belongs to".into(),
                other: self.mesh.short(),
            });
        }
        let node = node_id(&peer).ok_or(InviteError::Unknown)?;
        if self.membership.revocation(&node).is_some() {
            return Err(InviteError::Revoked);
        }
        if self.membership.role(&self.me) != Some(Role::Admin) {
            return Err(InviteError::Unknown);
        }
        crate::identity::check_name(name).map_err(InviteError::Internal)?;
        let hash = secret.hash();
        let internal = |e: crate::store::StoreError| InviteError::Internal(e.to_string());
        if self.membership.is_member(&node) {
            // A retry after a lost answer: the invite must still be genuine, but no use is taken.
            let state = self
                .store
                .invite(&hash)
                .map_err(internal)?
                .ok_or(InviteError::Unknown)?;
            if now_ms() > state.expires_ms {
                return Err(InviteError::Expired {
                    ago_secs: (now_ms() - state.expires_ms) / 1000,
                });
            }
        } else {
            let state = self
                .store
                .redeem_invite(&hash, now_ms())
                .map_err(internal)??;
            let body = Body::Member(Member {
                node,
                name: name.to_string(),
                role: state.role,
            });
            self.write(body)
                .map_err(|e| InviteError::Internal(e.message))?;
            self.update_gate();
            if let Some(peer_state) = self.peers.get_mut(&peer) {
                peer_state.guest_until = None;
                peer_state.node = Some(node);
            }
        }
        self.store.all_records().map_err(internal)
    }
}
