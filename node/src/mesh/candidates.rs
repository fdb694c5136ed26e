//! Address candidates this node puts forward itself, for AutoNAT to test.
//!
//! AutoNAT v2 tests the addresses peers report observing (identify). Which transport peers
//! happen to use decides what they observe: a public node reached only over TCP would never
//! have its QUIC address tested, yet QUIC is what an edge needs. So the node also puts its own
//! QUIC listen addresses on internet IPs (and configured `advertise` addresses) forward.
//!
//! AutoNAT tests each candidate once. A test whose connection closes before the answer (the
//! peer restarted) is never finished, so a candidate still without a verdict after
//! [`RETEST_AFTER`] is put forward once more as `<address>/p2p/<own id>`: a new candidate
//! for AutoNAT, the same address for the dialer.

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::VecDeque;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// How long a candidate may stay without a verdict before it is put forward again.
pub const RETEST_AFTER: Duration = Duration::from_secs(20);

/// Whether a listen address is worth a test: direct QUIC on an internet IP (a LAN or
/// loopback address is never reachable from the internet, whoever dials it back).
pub fn worth_testing(addr: &Multiaddr) -> bool {
    let text = addr.to_string();
    hearth_proto::addr::is_direct_quic(&text)
        && hearth_proto::addr::ip_of(&text)
            .is_some_and(|ip| hearth_proto::addr::is_internet_ip(&ip))
}

/// Emits queued candidates to the swarm, which hands them to AutoNAT and DCUtR.
#[derive(Debug)]
pub struct Candidates {
    me: PeerId,
    queue: VecDeque<Multiaddr>,
    proposed: Vec<Proposed>,
}

/// A candidate put forward, and whether it was put forward a second time.
#[derive(Debug)]
struct Proposed {
    addr: Multiaddr,
    at: Instant,
    retried: bool,
}

impl Candidates {
    /// Candidates of node `me`.
    pub fn new(me: PeerId) -> Self {
        Self {
            me,
            queue: VecDeque::new(),
            proposed: Vec::new(),
        }
    }

    /// Puts `addr` forward as an external address candidate (once).
    pub fn propose(&mut self, addr: Multiaddr) {
        if self.proposed.iter().any(|p| p.addr == addr) {
            return;
        }
        self.queue.push_back(addr.clone());
        self.proposed.push(Proposed {
            addr,
            at: Instant::now(),
            retried: false,
        });
    }

    /// Puts forward again, as `<address>/p2p/<own id>`, each candidate that has had no
    /// verdict for [`RETEST_AFTER`].
    pub fn retest_stale(&mut self, has_verdict: impl Fn(&Multiaddr) -> bool) {
        let now = Instant::now();
        for proposed in &mut self.proposed {
            if proposed.retried
                || now.duration_since(proposed.at) < RETEST_AFTER
                || has_verdict(&proposed.addr)
            {
                continue;
            }
            proposed.retried = true;
            self.queue
                .push_back(proposed.addr.clone().with(Protocol::P2p(self.me)));
        }
    }
}

impl NetworkBehaviour for Candidates {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = std::convert::Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, _event: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        match self.queue.pop_front() {
            Some(addr) => Poll::Ready(ToSwarm::NewExternalAddrCandidate(addr)),
            None => Poll::Pending,
        }
    }
}
