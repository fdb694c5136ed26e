//! The failure detector's packets as frames on one long-lived stream per peer.
//!
//! As request-response, every packet opened a QUIC stream, negotiated its protocol
//! (multistream-select, both ways) and waited for a receipt: several packets on the wire for
//! one probe, on every connection, every second. On a stream kept open they are one
//! length-prefixed frame each (`SwimPacket::encode`), and nothing answers a frame but the
//! detector itself.
//!
//! One writer task per peer owns its outbound stream; one acceptor task takes inbound streams
//! and gives each a reader task, which hands frames to the mesh actor. Frames are dropped,
//! never queued without bound, when a peer or the actor falls behind: the detector counts a
//! lost packet as a missed probe, which is what it is. A peer that does not speak the stream
//! protocol (an older hearthd) is reported so the actor sends it request-response packets.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hearth_proto::wire::{SwimPacket, MAX_SWIM_PACKET, SWIM_STREAM_PROTOCOL};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, OpenStreamError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// Frames waiting for one peer's stream; beyond this they are dropped.
const PER_PEER_QUEUE: usize = 32;
/// Frames from all readers waiting for the actor.
const INBOUND_QUEUE: usize = 1024;
/// Inbound streams read at once, from all peers (each member needs one).
const MAX_READERS: usize = 512;

/// What the stream tasks tell the mesh actor.
#[derive(Debug)]
pub(super) enum SwimInbound {
    /// A frame arrived from `peer` (not yet checked to be a member's).
    Packet(PeerId, SwimPacket),
    /// `peer` does not speak the stream protocol.
    Unsupported(PeerId),
}

/// The actor's side: sends frames, and the receiver of what arrived.
pub(super) struct SwimStreams {
    control: Control,
    writers: HashMap<PeerId, mpsc::Sender<Bytes>>,
    legacy: HashSet<PeerId>,
    inbound: mpsc::Sender<SwimInbound>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for SwimStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwimStreams")
            .field("writers", &self.writers.len())
            .field("legacy", &self.legacy.len())
            .finish()
    }
}

fn protocol() -> StreamProtocol {
    StreamProtocol::new(SWIM_STREAM_PROTOCOL)
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        // A forwarded packet carries foca's packet, the addressee, the origin and a signature.
        .max_frame_length(MAX_SWIM_PACKET + 256)
        .new_codec()
}

impl SwimStreams {
    /// Starts accepting inbound streams (until `cancel`); frames arrive on the receiver.
    pub(super) fn start(
        mut control: Control,
        cancel: CancellationToken,
    ) -> (Self, mpsc::Receiver<SwimInbound>) {
        let (inbound, received) = mpsc::channel(INBOUND_QUEUE);
        match control.accept(protocol()) {
            Ok(incoming) => {
                tokio::spawn(accept(incoming, inbound.clone(), cancel.clone()));
            }
            // Only one acceptor per protocol exists; this is the one.
            Err(e) => debug!(error = %e, "failure-detector streams not accepted"),
        }
        let streams = SwimStreams {
            control,
            writers: HashMap::new(),
            legacy: HashSet::new(),
            inbound,
            cancel,
        };
        (streams, received)
    }

    /// Queues `packet` for `peer`'s stream (opening one when there is none). `false` when the
    /// peer does not speak the stream protocol: the caller sends it the other way.
    pub(super) fn send(&mut self, peer: PeerId, packet: &SwimPacket) -> bool {
        if self.legacy.contains(&peer) {
            return false;
        }
        let frame = Bytes::from(packet.encode());
        if let Some(writer) = self.writers.get(&peer) {
            match writer.try_send(frame) {
                Ok(()) => return true,
                // The peer is behind: this packet is lost, as on a congested path.
                Err(mpsc::error::TrySendError::Full(_)) => return true,
                Err(mpsc::error::TrySendError::Closed(frame)) => {
                    self.writers.remove(&peer);
                    return self.open(peer, frame);
                }
            }
        }
        self.open(peer, frame)
    }

    fn open(&mut self, peer: PeerId, first: Bytes) -> bool {
        let (tx, rx) = mpsc::channel(PER_PEER_QUEUE);
        let _ = tx.try_send(first);
        self.writers.insert(peer, tx);
        tokio::spawn(write(
            self.control.clone(),
            peer,
            rx,
            self.inbound.clone(),
            self.cancel.clone(),
        ));
        true
    }

    /// `peer` does not speak the stream protocol (or no longer matters): forget its writer.
    pub(super) fn unsupported(&mut self, peer: PeerId) {
        self.writers.remove(&peer);
        self.legacy.insert(peer);
    }

    /// `peer` has no connection left: its writer ends with it, and a peer that restarted on
    /// a newer hearthd may speak the protocol now.
    pub(super) fn disconnected(&mut self, peer: &PeerId) {
        self.writers.remove(peer);
        self.legacy.remove(peer);
    }
}

/// Owns one peer's outbound stream until it fails, the actor drops the sender, or shutdown.
async fn write(
    mut control: Control,
    peer: PeerId,
    mut frames: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<SwimInbound>,
    cancel: CancellationToken,
) {
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        opened = control.open_stream(peer, protocol()) => opened,
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(OpenStreamError::UnsupportedProtocol(_)) => {
            let _ = inbound.send(SwimInbound::Unsupported(peer)).await;
            return;
        }
        Err(e) => {
            debug!(%peer, error = %e, "failure-detector stream not opened");
            return;
        }
    };
    let mut framed = Framed::new(stream.compat(), codec());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = frames.recv() => frame,
        };
        let Some(frame) = frame else { break };
        if let Err(e) = framed.send(frame).await {
            debug!(%peer, error = %e, "failure-detector stream closed");
            break;
        }
    }
    let _ = SinkExt::<Bytes>::close(&mut framed).await;
}

/// Takes inbound streams and reads each in a task of its own, up to [`MAX_READERS`].
async fn accept(
    mut incoming: libp2p_stream::IncomingStreams,
    inbound: mpsc::Sender<SwimInbound>,
    cancel: CancellationToken,
) {
    let readers = Arc::new(Semaphore::new(MAX_READERS));
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = incoming.next() => next,
        };
        let Some((peer, stream)) = next else { return };
        let Ok(permit) = readers.clone().try_acquire_owned() else {
            debug!(%peer, "failure-detector stream refused: too many open");
            continue;
        };
        let inbound = inbound.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            read(peer, stream, inbound, cancel).await;
            drop(permit);
        });
    }
}

/// Hands one inbound stream's frames to the actor until it ends.
async fn read(
    peer: PeerId,
    stream: libp2p::Stream,
    inbound: mpsc::Sender<SwimInbound>,
    cancel: CancellationToken,
) {
    let mut framed = Framed::new(stream.compat(), codec());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => return,
            frame = framed.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                debug!(%peer, error = %e, "failure-detector stream broken");
                return;
            }
            None => return,
        };
        match SwimPacket::decode(&frame) {
            // The actor is behind: this packet is lost.
            Ok(packet) => {
                let _ = inbound.try_send(SwimInbound::Packet(peer, packet));
            }
            Err(e) => debug!(%peer, error = %e, "failure-detector frame refused"),
        }
    }
}
