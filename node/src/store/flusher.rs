//! Group commit: one thread flushes the store for the mesh actor, so an fsync never stalls the
//! swarm loop, and every record written or received in one turn of the loop (and in the turns
//! that pass while a flush runs) shares one flush.
//!
//! The actor numbers its flush requests (epochs); what must wait until a record is durable (a
//! publish's answer, a push's acknowledgement, the spreading of the node's own writes) waits
//! for the epoch that covers it.

use super::{Store, StoreError};
use std::sync::mpsc;
use std::thread::JoinHandle;
use tracing::warn;

/// The outcome of one group flush: everything requested up to `epoch` is durable, or the
/// flush failed and none of it is known to be.
#[derive(Debug)]
pub struct Flushed {
    /// The highest epoch this flush covered.
    pub epoch: u64,
    /// Whether it reached the disk.
    pub result: Result<(), StoreError>,
}

enum Job {
    Flush(u64),
    Watermark,
}

/// The flushing thread; stopped (after its last flush) when dropped.
#[derive(Debug)]
pub struct Flusher {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Flusher {
    /// Starts the thread; each completed flush is reported on `done`.
    pub fn start(
        store: Store,
        done: tokio::sync::mpsc::UnboundedSender<Flushed>,
    ) -> Result<Self, StoreError> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let path = store.path.clone();
        let thread = std::thread::Builder::new()
            .name("hearth-store-flush".into())
            .spawn(move || run(store, queue, done))
            .map_err(|e| StoreError::Io {
                path,
                reason: format!("cannot start the thread that flushes it: {e}"),
            })?;
        Ok(Flusher {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Asks for a flush covering everything written so far, numbered `epoch`.
    pub fn flush(&self, epoch: u64) {
        self.send(Job::Flush(epoch));
    }

    /// Asks for the watermark to be brought up to date (a file write, also off the loop).
    pub fn save_watermark(&self) {
        self.send(Job::Watermark);
    }

    fn send(&self, job: Job) {
        if let Some(jobs) = &self.jobs {
            if jobs.send(job).is_err() {
                warn!("the store flush thread is gone");
            }
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(
    store: Store,
    queue: mpsc::Receiver<Job>,
    done: tokio::sync::mpsc::UnboundedSender<Flushed>,
) {
    while let Ok(first) = queue.recv() {
        let mut epoch = None;
        let mut watermark = false;
        let mut take = |job: Job| match job {
            Job::Flush(e) => epoch = Some(epoch.map_or(e, |held: u64| held.max(e))),
            Job::Watermark => watermark = true,
        };
        take(first);
        // Everything that queued up while the last flush ran goes into this one.
        while let Ok(job) = queue.try_recv() {
            take(job);
        }
        if let Some(epoch) = epoch {
            let result = store.flush_now();
            if done.send(Flushed { epoch, result }).is_err() {
                return;
            }
        }
        if watermark {
            if let Err(e) = store.save_watermark() {
                warn!(error = %e, "cannot save the store watermark");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_that_queued_up_share_one_flush() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (jobs, queue) = mpsc::channel();
        for epoch in [3, 1, 2] {
            jobs.send(Job::Flush(epoch)).unwrap();
        }
        jobs.send(Job::Watermark).unwrap();
        drop(jobs);
        let (done, mut flushed) = tokio::sync::mpsc::unbounded_channel();
        let before = store.writes();
        run(store.clone(), queue, done);
        let report = flushed.try_recv().unwrap();
        assert_eq!(report.epoch, 3, "the highest epoch queued");
        assert!(report.result.is_ok());
        assert!(flushed.try_recv().is_err(), "one flush for all three");
        // The flush, and the watermark (new: nothing was saved in this directory before).
        assert_eq!(store.writes() - before, 2);
    }

    #[tokio::test]
    async fn every_request_is_answered_through_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (done, mut flushed) = tokio::sync::mpsc::unbounded_channel();
        let flusher = Flusher::start(store, done).unwrap();
        for epoch in 1..=20 {
            flusher.flush(epoch);
        }
        let mut last = 0;
        while last < 20 {
            let report = flushed.recv().await.unwrap();
            assert!(report.result.is_ok());
            assert!(report.epoch > last, "epochs only grow");
            last = report.epoch;
        }
    }
}
