//! A userspace stand-in for `netem delay`: this machine's kernel has no `sch_netem`, so lab
//! hosts send their packets through NFQUEUE to this loop, which holds each one for the
//! configured time and then lets it go, in order.

use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// Longest queue the kernel keeps for us; beyond it packets pass undelayed (fail-open).
const QUEUE_MAX_LEN: u32 = 16 * 1024;

/// Holds every packet of NFQUEUE `queue_num` for `delay`, forever. Prints `listening` once
/// bound, so the caller knows rules may point at the queue.
pub fn run(queue_num: u16, delay: Duration) -> Result<()> {
    let mut queue = nfq::Queue::open().context("opening the netfilter queue socket")?;
    queue
        .bind(queue_num)
        .with_context(|| format!("binding NFQUEUE {queue_num}"))?;
    queue.set_queue_max_len(queue_num, QUEUE_MAX_LEN)?;
    queue.set_fail_open(queue_num, true)?;
    queue.set_nonblocking(true);
    println!("listening");
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        loop {
            match queue.recv() {
                Ok(message) => held.push_back((Instant::now() + delay, message)),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("reading the netfilter queue"),
            }
        }
        let now = Instant::now();
        while held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, mut message)) = held.pop_front() {
                message.set_verdict(nfq::Verdict::Accept);
                queue.verdict(message)?;
            }
        }
        std::thread::sleep(Duration::from_micros(250));
    }
}
