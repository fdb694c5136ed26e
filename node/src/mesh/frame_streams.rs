//! Messages as length-prefixed frames on one long-lived stream per peer and protocol: the
//! failure detector's packets ([`SwimPacket`]) and record pushes ([`PushFrame`]).
//!
//! As request-response, every message opened a QUIC stream, negotiated its protocol
//! (multistream-select, both ways), armed a timeout and waited for an answer: several packets
//! on the wire and several thread wake-ups for one small message. On a stream kept open a
//! message is one frame, and nothing answers it at this layer.
//!
//! One writer task per peer owns its outbound stream; one acceptor task takes inbound streams
//! and gives each a reader task, which hands decoded frames to the mesh actor. Frames are
//! dropped, never queued without bound, when a peer or the actor falls behind; each kind says
//! what makes up for a lost frame (the failure detector counts it as a missed probe,
//! anti-entropy repairs a lost push). A peer that does not speak a protocol (an older
//! hearthd) is reported, so the actor reaches it the older way.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hearth_proto::wire::{PushFrame, SwimPacket, MAX_SWIM_PACKET};
use libp2p::{PeerId, StreamProtocol};
use libp2p_stream::{Control, OpenStreamError};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// A message carried as frames on its own protocol's streams.
pub(super) trait FrameKind: Sized + Send + 'static {
    /// The stream protocol.
    const PROTOCOL: &'static str;
    /// What the message is, for logs.
    const WHAT: &'static str;
    /// Largest frame accepted; a larger message goes the older way.
    const MAX_FRAME: usize;
    /// Bytes of the length prefix (2 allow frames up to 64 KiB).
    const LENGTH_FIELD: usize;
    /// Frames waiting for one peer's stream; beyond this they are dropped.
    const PER_PEER_QUEUE: usize;
    /// The frame's bytes.
    fn encode(&self) -> Vec<u8>;
    /// Parses a frame; never panics on garbage.
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error>;
}

impl FrameKind for SwimPacket {
    const PROTOCOL: &'static str = hearth_proto::wire::SWIM_STREAM_PROTOCOL;
    const WHAT: &'static str = "failure-detector";
    // A forwarded packet carries foca's packet, the addressee, the origin and a signature.
    const MAX_FRAME: usize = MAX_SWIM_PACKET + 256;
    const LENGTH_FIELD: usize = 2;
    const PER_PEER_QUEUE: usize = 32;
    fn encode(&self) -> Vec<u8> {
        SwimPacket::encode(self)
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        SwimPacket::decode(bytes)
    }
}

impl FrameKind for PushFrame {
    const PROTOCOL: &'static str = hearth_proto::wire::PUSH_STREAM_PROTOCOL;
    const WHAT: &'static str = "record push";
    const MAX_FRAME: usize = hearth_proto::wire::MAX_PUSH_FRAME;
    const LENGTH_FIELD: usize = 4;
    // A burst of publishes, or a hub passing a burst on: anti-entropy repairs beyond this.
    const PER_PEER_QUEUE: usize = 256;
    fn encode(&self) -> Vec<u8> {
        PushFrame::encode(self)
    }
    fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        PushFrame::decode(bytes)
    }
}

/// Frames from all readers of one kind waiting for the actor.
const INBOUND_QUEUE: usize = 1024;
/// Inbound streams of one kind read at once, from all peers (each member needs one).
const MAX_READERS: usize = 512;

/// What the stream tasks tell the mesh actor.
#[derive(Debug)]
pub(super) enum Inbound<F> {
    /// A frame arrived from `peer` (not yet checked to be a member's).
    Frame(PeerId, F),
    /// `peer` does not speak the protocol.
    Unsupported(PeerId),
}

/// Why a message was not queued on a stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NotSent {
    /// The peer does not speak the protocol, or the message is too large for a frame: the
    /// caller sends it the other way.
    OtherWay,
    /// The peer's queue is full: the message is lost, as on a congested path.
    Dropped,
}

/// The actor's side of one kind: sends frames, and the receiver of what arrived.
pub(super) struct FrameStreams<F> {
    control: Control,
    writers: HashMap<PeerId, mpsc::Sender<Bytes>>,
    legacy: HashSet<PeerId>,
    inbound: mpsc::Sender<Inbound<F>>,
    cancel: CancellationToken,
}

impl<F> std::fmt::Debug for FrameStreams<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameStreams")
            .field("writers", &self.writers.len())
            .field("legacy", &self.legacy.len())
            .finish()
    }
}

fn protocol<F: FrameKind>() -> StreamProtocol {
    StreamProtocol::new(F::PROTOCOL)
}

fn codec<F: FrameKind>() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(F::LENGTH_FIELD)
        .max_frame_length(F::MAX_FRAME)
        .new_codec()
}

impl<F: FrameKind> FrameStreams<F> {
    /// Starts accepting inbound streams (until `cancel`); frames arrive on the receiver.
    pub(super) fn start(
        mut control: Control,
        cancel: CancellationToken,
    ) -> (Self, mpsc::Receiver<Inbound<F>>) {
        let (inbound, received) = mpsc::channel(INBOUND_QUEUE);
        match control.accept(protocol::<F>()) {
            Ok(incoming) => {
                tokio::spawn(accept::<F>(incoming, inbound.clone(), cancel.clone()));
            }
            // Only one acceptor per protocol exists; this is the one.
            Err(e) => debug!(error = %e, "{} streams not accepted", F::WHAT),
        }
        let streams = FrameStreams {
            control,
            writers: HashMap::new(),
            legacy: HashSet::new(),
            inbound,
            cancel,
        };
        (streams, received)
    }

    /// Queues `message` for `peer`'s stream (opening one when there is none).
    pub(super) fn send(&mut self, peer: PeerId, message: &F) -> Result<(), NotSent> {
        if self.legacy.contains(&peer) {
            return Err(NotSent::OtherWay);
        }
        let frame = message.encode();
        if frame.len() > F::MAX_FRAME {
            return Err(NotSent::OtherWay);
        }
        let frame = Bytes::from(frame);
        if let Some(writer) = self.writers.get(&peer) {
            match writer.try_send(frame) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::TrySendError::Full(_)) => return Err(NotSent::Dropped),
                Err(mpsc::error::TrySendError::Closed(frame)) => {
                    self.writers.remove(&peer);
                    self.open(peer, frame);
                    return Ok(());
                }
            }
        }
        self.open(peer, frame);
        Ok(())
    }

    fn open(&mut self, peer: PeerId, first: Bytes) {
        let (tx, rx) = mpsc::channel(F::PER_PEER_QUEUE);
        let _ = tx.try_send(first);
        self.writers.insert(peer, tx);
        tokio::spawn(write::<F>(
            self.control.clone(),
            peer,
            rx,
            self.inbound.clone(),
            self.cancel.clone(),
        ));
    }

    /// `peer` does not speak the protocol: forget its writer.
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
async fn write<F: FrameKind>(
    mut control: Control,
    peer: PeerId,
    mut frames: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Inbound<F>>,
    cancel: CancellationToken,
) {
    let stream = tokio::select! {
        _ = cancel.cancelled() => return,
        opened = control.open_stream(peer, protocol::<F>()) => opened,
    };
    let stream = match stream {
        Ok(stream) => stream,
        Err(OpenStreamError::UnsupportedProtocol(_)) => {
            let _ = inbound.send(Inbound::Unsupported(peer)).await;
            return;
        }
        Err(e) => {
            debug!(%peer, error = %e, "{} stream not opened", F::WHAT);
            return;
        }
    };
    let mut framed = Framed::new(stream.compat(), codec::<F>());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => break,
            frame = frames.recv() => frame,
        };
        let Some(frame) = frame else { break };
        if let Err(e) = framed.send(frame).await {
            debug!(%peer, error = %e, "{} stream closed", F::WHAT);
            break;
        }
    }
    let _ = SinkExt::<Bytes>::close(&mut framed).await;
}

/// Takes inbound streams and reads each in a task of its own, up to [`MAX_READERS`].
async fn accept<F: FrameKind>(
    mut incoming: libp2p_stream::IncomingStreams,
    inbound: mpsc::Sender<Inbound<F>>,
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
            debug!(%peer, "{} stream refused: too many open", F::WHAT);
            continue;
        };
        let inbound = inbound.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            read::<F>(peer, stream, inbound, cancel).await;
            drop(permit);
        });
    }
}

/// Hands one inbound stream's frames to the actor until it ends.
async fn read<F: FrameKind>(
    peer: PeerId,
    stream: libp2p::Stream,
    inbound: mpsc::Sender<Inbound<F>>,
    cancel: CancellationToken,
) {
    let mut framed = Framed::new(stream.compat(), codec::<F>());
    loop {
        let frame = tokio::select! {
            _ = cancel.cancelled() => return,
            frame = framed.next() => frame,
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                debug!(%peer, error = %e, "{} stream broken", F::WHAT);
                return;
            }
            None => return,
        };
        match F::decode(&frame) {
            // The actor is behind: this frame is lost.
            Ok(message) => {
                let _ = inbound.try_send(Inbound::Frame(peer, message));
            }
            Err(e) => debug!(%peer, error = %e, "{} frame refused", F::WHAT),
        }
    }
}
