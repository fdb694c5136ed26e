//! The admin-socket client: one JSON [`Command`] line out, one JSON [`Response`] line back.
//!
//! The daemon's admin API is a Unix socket, so access control is the file's permissions and
//! nothing here handles credentials. Every failure is turned into a [`ClientError`] whose
//! message tells a person what to do, because "connection refused" on a socket path is not
//! something most people can act on.

use hearth_proto::api::{Command, CommandV1, Response, ResponseV1};
use hearth_proto::paths;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// Longest answer accepted. A member table of a large mesh fits many times over; the bound only
/// stops a confused peer on the socket from filling memory.
pub const MAX_RESPONSE_BYTES: u64 = 4 * 1024 * 1024;

/// How long a whole exchange (connect, send, answer) may take by default. The daemon answers
/// from memory, so anything near this means it is stuck.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

pub use hearth_proto::paths::SOCKET_FILE;

/// Why a command did not reach the daemon or got no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers on the socket: the file is missing, or left behind by a daemon that
    /// died (connection refused).
    #[error(
        "hearthd is not running (no admin socket answers at {}); start it with \
         `hearthd run --data-dir {}`, or point hearthctl at it with --data-dir/--socket",
        socket.display(),
        socket.parent().unwrap_or(Path::new(".")).display()
    )]
    NotRunning {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The socket (or its directory) belongs to another user.
    #[error(
        "permission denied on the admin socket {}; run hearthctl as the user that runs \
         hearthd, or root",
        socket.display()
    )]
    PermissionDenied {
        /// The socket tried.
        socket: PathBuf,
    },
    /// The daemon accepted the connection but did not answer in time.
    #[error(
        "hearthd at {} did not answer within {}s; it may be stuck, see its log",
        socket.display(),
        after.as_secs()
    )]
    Timeout {
        /// The socket tried.
        socket: PathBuf,
        /// How long we waited.
        after: Duration,
    },
    /// The answer was not a `Response` this version understands.
    #[error("unexpected answer from hearthd ({0}); are hearthctl and hearthd the same version?")]
    Protocol(String),
    /// Any other I/O failure on the socket.
    #[error("talking to hearthd at {}: {source}", socket.display())]
    Io {
        /// The socket tried.
        socket: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// A client for one daemon's admin socket. Cheap to clone; each [`AdminClient::call`] opens
/// its own connection, matching the daemon's one-command-per-connection protocol.
#[derive(Debug, Clone)]
pub struct AdminClient {
    socket: PathBuf,
    timeout: Duration,
}

impl AdminClient {
    /// A client for the daemon listening at `socket`, with [`DEFAULT_TIMEOUT`].
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The same client with another timeout (tests use short ones).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one command and returns the daemon's answer. A refusal by the daemon is an
    /// `Ok(ResponseV1::Error(_))`; `Err` means the command never got an answer.
    pub async fn call(&self, command: CommandV1) -> Result<ResponseV1, ClientError> {
        tokio::time::timeout(self.timeout, self.exchange(command))
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                after: self.timeout,
            })?
    }

    async fn exchange(&self, command: CommandV1) -> Result<ResponseV1, ClientError> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.connect_error(e))?;
        let (read, mut write) = stream.into_split();

        let mut line = serde_json::to_vec(&Command::V1(command))
            .map_err(|e| ClientError::Protocol(format!("cannot encode the command: {e}")))?;
        line.push(b'\n');
        write.write_all(&line).await.map_err(|e| self.io(e))?;

        let mut answer = Vec::new();
        BufReader::new(read.take(MAX_RESPONSE_BYTES))
            .read_until(b'\n', &mut answer)
            .await
            .map_err(|e| self.io(e))?;
        if answer.is_empty() {
            return Err(ClientError::Protocol(
                "the connection closed without an answer".into(),
            ));
        }
        if answer.last() != Some(&b'\n') && answer.len() as u64 >= MAX_RESPONSE_BYTES {
            return Err(ClientError::Protocol(format!(
                "the answer is longer than {} MiB",
                MAX_RESPONSE_BYTES / (1024 * 1024)
            )));
        }
        let Response::V1(response) = serde_json::from_slice(&answer)
            .map_err(|e| ClientError::Protocol(format!("cannot parse the answer: {e}")))?;
        Ok(response)
    }

    fn connect_error(&self, e: std::io::Error) -> ClientError {
        let socket = self.socket.clone();
        match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                ClientError::NotRunning { socket }
            }
            ErrorKind::PermissionDenied => ClientError::PermissionDenied { socket },
            _ => ClientError::Io { socket, source: e },
        }
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            socket: self.socket.clone(),
            source,
        }
    }
}

/// The default data dir, by the rule in [`hearth_proto::paths::default_data_dir`].
pub fn default_data_dir() -> PathBuf {
    // Owner of /proc/self is our effective uid: a root check without libc or unsafe code.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let xdg = std::env::var_os("XDG_DATA_HOME").map(PathBuf::from);
    let home = std::env::var_os("HOME").map(PathBuf::from);
    paths::default_data_dir(is_root, xdg.as_deref(), home.as_deref())
}

/// The admin socket to use: an explicit `socket` wins, else `<data_dir>/hearthd.sock`, else the
/// socket in [`default_data_dir`].
pub fn default_socket(data_dir: Option<&Path>, socket: Option<&Path>) -> PathBuf {
    match (socket, data_dir) {
        (Some(socket), _) => socket.to_path_buf(),
        (None, Some(dir)) => dir.join(SOCKET_FILE),
        (None, None) => default_data_dir().join(SOCKET_FILE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::api::{ApiError, ApiErrorKind};
    use tokio::net::UnixListener;

    /// A one-shot fake daemon: reads one line, checks it, writes `answer` verbatim.
    fn fake_daemon(path: &Path, expect: &'static str, answer: Vec<u8>) {
        let listener = UnixListener::bind(path).unwrap();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            BufReader::new(read).read_line(&mut line).await.unwrap();
            assert_eq!(line, format!("{expect}\n"));
            write.write_all(&answer).await.unwrap();
        });
    }

    #[tokio::test]
    async fn sends_one_line_and_reads_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        fake_daemon(
            &path,
            r#"{"V1":{"dial":{"addr":"/ip4/1.2.3.4/tcp/1"}}}"#,
            b"{\"V1\":{\"dialing\":{\"addr\":\"/ip4/1.2.3.4/tcp/1\"}}}\n".to_vec(),
        );
        let answer = AdminClient::new(&path)
            .call(CommandV1::Dial {
                addr: "/ip4/1.2.3.4/tcp/1".into(),
            })
            .await
            .unwrap();
        assert_eq!(
            answer,
            ResponseV1::Dialing {
                addr: "/ip4/1.2.3.4/tcp/1".into()
            }
        );
    }

    #[tokio::test]
    async fn daemon_refusals_are_answers_not_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        let refusal = ResponseV1::Error(ApiError::new(ApiErrorKind::Forbidden, "not an admin"));
        let mut line = serde_json::to_vec(&Response::V1(refusal.clone())).unwrap();
        line.push(b'\n');
        fake_daemon(&path, r#"{"V1":"members"}"#, line);
        let answer = AdminClient::new(&path)
            .call(CommandV1::Members)
            .await
            .unwrap();
        assert_eq!(answer, refusal);
    }

    #[tokio::test]
    async fn a_missing_daemon_is_reported_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        let err = AdminClient::new(&path)
            .call(CommandV1::Status)
            .await
            .unwrap_err();
        assert!(matches!(&err, ClientError::NotRunning { socket } if *socket == path));
        let message = err.to_string();
        assert!(message.contains("hearthd is not running"), "{message}");
        assert!(
            message.contains(&format!("hearthd run --data-dir {}", dir.path().display())),
            "{message}"
        );
        assert!(message.contains("--socket"), "{message}");
    }

    #[tokio::test]
    async fn a_stale_socket_counts_as_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let err = AdminClient::new(&path)
            .call(CommandV1::Status)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        fake_daemon(&path, r#"{"V1":"status"}"#, b"{\"V9\":1}\n".to_vec());
        let err = AdminClient::new(&path)
            .call(CommandV1::Status)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");
        assert!(err.to_string().contains("same version"));
    }

    #[tokio::test]
    async fn silence_is_a_protocol_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        fake_daemon(&path, r#"{"V1":"status"}"#, Vec::new());
        let err = AdminClient::new(&path)
            .call(CommandV1::Status)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");
    }

    #[tokio::test]
    async fn a_stuck_daemon_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SOCKET_FILE);
        // Accepts (the kernel backlog does) but never answers.
        let _listener = UnixListener::bind(&path).unwrap();
        let err = AdminClient::new(&path)
            .with_timeout(Duration::from_millis(100))
            .call(CommandV1::Status)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    }

    #[test]
    fn explicit_socket_wins_then_data_dir() {
        let p = default_socket(Some(Path::new("/d")), Some(Path::new("/s.sock")));
        assert_eq!(p, Path::new("/s.sock"));
        assert_eq!(
            default_socket(Some(Path::new("/d")), None),
            Path::new("/d/hearthd.sock")
        );
        assert_eq!(
            default_socket(None, None),
            default_data_dir().join("hearthd.sock")
        );
    }
}
