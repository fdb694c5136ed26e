//! Connection gating: decides, right after the handshake proved a peer's key, whether the
//! connection may live.
//!
//! Members are admitted. Revoked nodes never are. Anyone else is admitted only by admins, and
//! only as a *guest* (a bounded number at a time), so a joining node can present its code and
//! hear exactly why it is refused; the mesh actor lets guests speak nothing but the join
//! protocol and closes them after a short grace period.

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashSet;
use std::task::{Context, Poll};

/// Who may connect.
#[derive(Debug, Default, Clone)]
pub struct GatePolicy {
    /// Current members (and, while joining, the inviter).
    pub members: HashSet<PeerId>,
    /// Revoked nodes: refused whatever else holds.
    pub revoked: HashSet<PeerId>,
    /// Whether non-members may connect as guests (this node is an admin with guest room).
    pub admit_guests: bool,
}

/// The gate's verdict for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// A member: full access.
    Member,
    /// A non-member allowed to present an invite.
    Guest,
    /// Refused.
    Denied,
}

impl GatePolicy {
    /// Decides for `peer`.
    pub fn admission(&self, peer: &PeerId) -> Admission {
        if self.revoked.contains(peer) {
            Admission::Denied
        } else if self.members.contains(peer) {
            Admission::Member
        } else if self.admit_guests {
            Admission::Guest
        } else {
            Admission::Denied
        }
    }
}

/// Why a connection was refused, reported in the swarm's connection errors.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is not a member of this mesh")]
pub struct NotAMember(pub PeerId);

/// The gating behaviour; holds the policy the mesh actor keeps current.
#[derive(Debug, Default)]
pub struct Gate {
    /// The policy in force.
    pub policy: GatePolicy,
}

impl Gate {
    fn check(&self, peer: PeerId) -> Result<THandler<Self>, ConnectionDenied> {
        match self.policy.admission(&peer) {
            Admission::Denied => Err(ConnectionDenied::new(NotAMember(peer))),
            _ => Ok(dummy::ConnectionHandler),
        }
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.check(peer)
    }

    fn on_swarm_event(&mut self, _event: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        _cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_beats_member_and_guests_need_an_invite() {
        let member = PeerId::random();
        let stranger = PeerId::random();
        let mut policy = GatePolicy::default();
        policy.members.insert(member);
        assert_eq!(policy.admission(&member), Admission::Member);
        assert_eq!(policy.admission(&stranger), Admission::Denied);
        policy.admit_guests = true;
        assert_eq!(policy.admission(&stranger), Admission::Guest);
        policy.revoked.insert(member);
        assert_eq!(policy.admission(&member), Admission::Denied);
    }
}
