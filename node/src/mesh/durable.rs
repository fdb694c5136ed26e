//! Waiting for durability in the mesh actor. Records are applied to the store at once (so
//! every read sees them) and flushed by [`crate::store::flusher::Flusher`] at the end of the
//! loop's turn; what must not happen before they are on disk waits here for the flush that
//! covers them: a publish's answer, a push's acknowledgement, and the spreading of this
//! node's own writes (a write whose flush failed is answered with an error and not pushed).

use super::actor::MeshActor;
use crate::store::flusher::Flushed;
use crate::store::StoreError;
use hearth_proto::api::{ApiError, ApiErrorKind, ResponseV1};
use hearth_proto::invite::InviteError;
use hearth_proto::wire::{JoinResponse, SyncResponse};
use hearth_proto::Record;
use libp2p::request_response::ResponseChannel;
use tokio::sync::oneshot;
use tracing::warn;

/// Something to do once the records written so far are durable.
#[derive(Debug)]
pub(super) enum Completion {
    /// Answer an admin command.
    Admin(oneshot::Sender<ResponseV1>, ResponseV1),
    /// Answer another actor's write.
    Write(
        oneshot::Sender<Result<Record, ApiError>>,
        Result<Record, ApiError>,
    ),
    /// Acknowledge a push.
    SyncAck(ResponseChannel<SyncResponse>, SyncResponse),
    /// Answer a joiner: it is a member once its Member record is on disk.
    JoinAnswer(ResponseChannel<JoinResponse>, JoinResponse),
    /// Spread this node's own new records.
    Spread(Vec<Record>),
}

impl MeshActor {
    /// Records were applied in this turn; the flush at its end will cover them.
    pub(super) fn mark_unflushed(&mut self) {
        self.durability.unflushed = true;
    }

    /// Runs `completion` once everything applied so far is durable (at once when nothing is
    /// waiting for a flush).
    pub(super) fn when_durable(&mut self, completion: Completion) {
        if self.durability.unflushed {
            let epoch = self.durability.epoch + 1;
            self.durability.pending.push_back((epoch, completion));
        } else {
            self.complete(completion, None);
        }
    }

    /// The end of a loop turn: one flush for everything applied in it.
    pub(super) fn end_of_turn(&mut self) {
        if self.durability.unflushed {
            self.durability.unflushed = false;
            self.durability.epoch += 1;
            self.flusher.flush(self.durability.epoch);
        }
    }

    /// A group flush finished: what it covered may go ahead.
    pub(super) fn flushed(&mut self, flushed: Flushed) {
        if let Err(e) = &flushed.result {
            warn!(error = %e, "the store could not be flushed: answering the writes waiting for it with an error");
        }
        while self
            .durability
            .pending
            .front()
            .is_some_and(|(epoch, _)| *epoch <= flushed.epoch)
        {
            let Some((_, completion)) = self.durability.pending.pop_front() else {
                break;
            };
            self.complete(completion, flushed.result.as_ref().err());
        }
    }

    /// Shutdown: one last flush, in line, then everything still waiting.
    pub(super) fn flush_before_exit(&mut self) {
        let failed = self.store.flush_now().err();
        if let Some(e) = &failed {
            warn!(error = %e, "the store could not be flushed at shutdown");
        }
        self.durability.unflushed = false;
        while let Some((_, completion)) = self.durability.pending.pop_front() {
            self.complete(completion, failed.as_ref());
        }
    }

    fn complete(&mut self, completion: Completion, failed: Option<&StoreError>) {
        let refusal = || {
            ApiError::new(
                ApiErrorKind::Internal,
                format!(
                    "{}; the change may not survive a restart",
                    failed.map(|e| e.to_string()).unwrap_or_default()
                ),
            )
        };
        match completion {
            Completion::Admin(reply, response) => {
                let response = match failed {
                    Some(_) if matches!(response, ResponseV1::Error(_)) => response,
                    Some(_) => ResponseV1::Error(refusal()),
                    None => response,
                };
                let _ = reply.send(response);
            }
            Completion::Write(reply, result) => {
                let result = match failed {
                    Some(_) => result.and_then(|_| Err(refusal())),
                    None => result,
                };
                let _ = reply.send(result);
            }
            Completion::JoinAnswer(channel, response) => {
                let response = match (failed, response) {
                    (Some(e), JoinResponse::V1(Ok(_))) => {
                        JoinResponse::V1(Err(InviteError::Internal(e.to_string())))
                    }
                    (_, response) => response,
                };
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .join
                    .send_response(channel, response);
            }
            Completion::SyncAck(channel, response) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .sync
                    .send_response(channel, response);
            }
            Completion::Spread(records) => match failed {
                None => {
                    self.replicate(hearth_proto::replication::Event::Durable(records));
                }
                Some(e) => {
                    warn!(error = %e, records = records.len(), "not spreading records that did not reach the disk")
                }
            },
        }
    }
}

/// The actor's flush bookkeeping.
#[derive(Debug, Default)]
pub(super) struct Durability {
    /// Whether records were applied since the last flush request.
    unflushed: bool,
    /// The number of the last flush requested.
    epoch: u64,
    /// What waits, in order, with the epoch that covers it.
    pending: std::collections::VecDeque<(u64, Completion)>,
}
