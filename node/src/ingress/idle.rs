//! Idle timeouts: a wrapper that notes the time of the last byte in either direction, and a
//! watchdog that resolves once a connection has been silent for too long.
//!
//! [`HeadTimer`] is the hyper timer of an HTTP/1.1 visitor connection. hyper's
//! `header_read_timeout` starts its clock whenever the connection waits for a request head,
//! so on a kept-alive connection it also runs while the visitor is merely idle between
//! requests, and closes idle connections after the header timeout instead of the idle
//! timeout. hyper uses the server connection's timer for that clock only, so this timer
//! starts it where it should: at once for the first request (a connection that never sends
//! a head is slowloris), and at the first byte of every later request. Silence between
//! requests is the idle watchdog's business ([`Activity::idle`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// `head_ms` while no byte of the awaited request head has arrived.
const AWAITING: u64 = u64::MAX;

/// When a connection last moved a byte, shared between the I/O and its watchdog.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
    /// When the first byte read after the header timer was last armed arrived (ms since
    /// `start`), or [`AWAITING`].
    head_ms: Arc<AtomicU64>,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::default(),
            head_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    fn touch_read(&self) {
        let ms = self.now_ms();
        self.last_ms.store(ms, Ordering::Relaxed);
        if self.head_ms.load(Ordering::Relaxed) == AWAITING {
            let _ =
                self.head_ms
                    .compare_exchange(AWAITING, ms, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    /// Resolves once nothing has moved for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let silent = self.silent_for();
            if silent >= limit {
                return;
            }
            tokio::time::sleep(limit - silent).await;
        }
    }

    /// From now on, waits for the first byte of a request head.
    fn await_head(&self) {
        self.head_ms.store(AWAITING, Ordering::Relaxed);
    }

    /// When the first byte of the awaited request head arrived, once it has.
    fn head_started(&self) -> Option<Instant> {
        match self.head_ms.load(Ordering::Relaxed) {
            AWAITING => None,
            ms => Some(self.start + Duration::from_millis(ms)),
        }
    }
}

/// The timer of one HTTP/1.1 visitor connection (see the module docs): hyper's header read
/// timeout counts from the connection's start for its first request, and from the first
/// byte of each later one.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    activity: Activity,
    /// Whether the first request's clock has been started.
    armed_once: Arc<AtomicBool>,
}

impl HeadTimer {
    /// The timer of the connection whose reads `activity` watches.
    pub fn new(activity: Activity) -> Self {
        Self {
            activity,
            armed_once: Arc::default(),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep::fixed(Instant::now() + duration))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let limit = deadline.saturating_duration_since(self.now());
        if !self.armed_once.swap(true, Ordering::Relaxed) {
            return Box::pin(HeadSleep::fixed(Instant::now() + limit));
        }
        self.activity.await_head();
        Box::pin(HeadSleep {
            inner: Box::pin(tokio::time::sleep(limit)),
            limit,
            wait_for: Some(self.activity.clone()),
        })
    }

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

/// A sleep of [`HeadTimer`]: until a fixed deadline, or until `limit` after the first byte
/// `wait_for` reads.
struct HeadSleep {
    inner: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    /// The connection whose first byte starts the clock; `None` once it has.
    wait_for: Option<Activity>,
}

impl HeadSleep {
    fn fixed(deadline: Instant) -> Self {
        Self {
            inner: Box::pin(tokio::time::sleep_until(deadline)),
            limit: Duration::ZERO,
            wait_for: None,
        }
    }
}

impl std::future::Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(started) = self.wait_for.as_ref().and_then(Activity::head_started) {
                self.wait_for = None;
                let deadline = started + self.limit;
                self.inner.as_mut().reset(deadline);
            }
            match self.inner.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if self.wait_for.is_none() => return Poll::Ready(()),
                // No byte yet: look again later (hyper also polls this after every read).
                Poll::Ready(()) => {
                    let next = Instant::now() + self.limit.max(Duration::from_millis(100));
                    self.inner.as_mut().reset(next);
                }
            }
        }
    }
}

impl hyper::rt::Sleep for HeadSleep {}

/// I/O that reports its traffic to an [`Activity`].
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T> Watched<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Activity) -> Self {
        Self { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch_read();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Splices `a` and `b` both ways until both sides end or nothing moves for `idle`.
pub async fn splice<A, B>(a: A, b: B, idle: Duration) -> std::io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::default();
    let mut a = Watched::new(a, activity.clone());
    let mut b = b;
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut a, &mut b) => result.map(|_| ()),
        _ = activity.idle(idle) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_goes_idle_and_traffic_postpones_it() {
        let activity = Activity::default();
        let (client, _server) = tokio::io::duplex(64);
        let mut watched = Watched::new(client, activity.clone());
        tokio::time::advance(Duration::from_secs(5)).await;
        tokio::io::AsyncWriteExt::write_all(&mut watched, b"x")
            .await
            .unwrap();
        let idle = activity.idle(Duration::from_secs(10));
        tokio::pin!(idle);
        // Written at 5 s, so idle at 15 s, not 10 s.
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(futures::poll!(idle.as_mut()).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(futures::poll!(idle.as_mut()).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_request_head_is_timed_from_its_first_byte() {
        use hyper::rt::Timer;
        let activity = Activity::default();
        let (mut client, server) = tokio::io::duplex(64);
        let mut watched = Watched::new(server, activity.clone());
        let timer = HeadTimer::new(activity.clone());
        let limit = Duration::from_secs(10);
        // The first request's clock runs from the connection's start.
        let mut first = timer.sleep_until(timer.now() + limit);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(futures::poll!(first.as_mut()).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(futures::poll!(first.as_mut()).is_ready());
        // A later one's waits for its first byte: a minute of silence is the idle timeout's.
        let mut later = timer.sleep_until(timer.now() + limit);
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(futures::poll!(later.as_mut()).is_pending());
        tokio::io::AsyncWriteExt::write_all(&mut client, b"G")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        tokio::io::AsyncReadExt::read_exact(&mut watched, &mut byte)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(futures::poll!(later.as_mut()).is_pending());
        // More bytes do not postpone it (slowloris).
        tokio::io::AsyncWriteExt::write_all(&mut client, b"E")
            .await
            .unwrap();
        tokio::io::AsyncReadExt::read_exact(&mut watched, &mut byte)
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(futures::poll!(later.as_mut()).is_ready());
    }
}
