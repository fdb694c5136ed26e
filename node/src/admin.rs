//! The admin API server: a Unix socket, owner-only, one JSON command per connection.

use crate::mesh::actor::AdminRequest;
use hearth_proto::api::{ApiError, ApiErrorKind, Command, Response, ResponseV1};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, Instrument};

/// Longest command line accepted.
const MAX_COMMAND_BYTES: u64 = 64 * 1024;

/// Failures binding the admin socket.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A live daemon already answers on the socket.
    #[error("another hearthd is already running with admin socket {0}; stop it or use another --data-dir")]
    InUse(PathBuf),
    /// Filesystem failure.
    #[error("cannot create admin socket {path}: {source}")]
    Io {
        /// Socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Binds the socket with owner-only permissions, replacing a stale one from a crash.
pub async fn bind(path: &Path) -> Result<UnixListener, AdminError> {
    let io = |source| AdminError::Io {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(AdminError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves admin connections until cancelled, then removes the socket file.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    actor: mpsc::Sender<AdminRequest>,
    cancel: CancellationToken,
) {
    let span = tracing::info_span!("admin", socket = %path.display());
    async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        tokio::spawn(handle(stream, actor.clone()));
                    }
                    Err(e) => debug!(error = %e, "accept failed"),
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    }
    .instrument(span)
    .await
}

async fn handle(stream: UnixStream, actor: mpsc::Sender<AdminRequest>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_COMMAND_BYTES));
    let response = match reader.read_line(&mut line).await {
        Err(e) => error(
            ApiErrorKind::BadRequest,
            format!("cannot read command: {e}"),
        ),
        Ok(_) => match serde_json::from_str::<Command>(&line) {
            Err(e) => error(
                ApiErrorKind::BadRequest,
                format!("cannot parse command ({e}); is hearthctl the same version as hearthd?"),
            ),
            Ok(Command::V1(command)) => {
                let (reply, answer) = oneshot::channel();
                if actor.send((command, reply)).await.is_err() {
                    error(ApiErrorKind::Internal, "the node is shutting down")
                } else {
                    answer.await.unwrap_or_else(|_| {
                        error(ApiErrorKind::Internal, "the node is shutting down")
                    })
                }
            }
        },
    };
    let mut bytes = serde_json::to_vec(&Response::V1(response)).unwrap_or_default();
    bytes.push(b'\n');
    let _ = write.write_all(&bytes).await;
    let _ = write.shutdown().await;
}

fn error(kind: ApiErrorKind, message: impl Into<String>) -> ResponseV1 {
    ResponseV1::Error(ApiError::new(kind, message))
}
