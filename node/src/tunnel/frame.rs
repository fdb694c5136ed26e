//! Reading and writing the bounded frames of [`hearth_proto::tunnel`] on a stream.

use hearth_proto::tunnel::{decode_frame, encode_frame, frame_len, FrameError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    /// The stream failed or ended early.
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    /// The peer sent something that is not a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads one frame; at most [`hearth_proto::tunnel::MAX_FRAME_BYTES`] are buffered.
pub async fn read_frame<T: DeserializeOwned>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<T, FrameIoError> {
    let mut prefix = [0u8; 2];
    stream.read_exact(&mut prefix).await?;
    let mut body = vec![0u8; frame_len(prefix)?];
    stream.read_exact(&mut body).await?;
    Ok(decode_frame(&body)?)
}

/// Writes one frame.
pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameIoError> {
    stream.write_all(&encode_frame(message)).await?;
    Ok(())
}
