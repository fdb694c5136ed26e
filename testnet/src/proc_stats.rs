//! What a running `hearthd` costs, read from /proc: CPU, disk writes, traffic, memory.

use crate::procs::ProcNode;
use anyhow::{Context, Result};

/// A process's counters at one moment, from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcCounters {
    /// CPU time, user plus system, in clock ticks.
    pub cpu_ticks: u64,
    /// Bytes the process caused to be written to disk.
    pub disk_bytes: u64,
    /// Bytes sent and received on every interface of its network namespace but loopback.
    pub net_bytes: u64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// The anonymous part of it (heap, stacks), bytes; the rest is mostly the binary's code.
    pub rss_anon_bytes: u64,
}

impl ProcNode {
    /// Its counters now, for measuring what it does while idle.
    pub fn counters(&self) -> Result<ProcCounters> {
        let pid = self.pid().context("not running")?;
        let read = |file: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .with_context(|| format!("reading /proc/{pid}/{file}"))
        };
        let (_, cpu_ticks) = name_and_cpu_ticks(&read("stat")?);
        let value_of = |text: &str, key: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let disk_bytes = value_of(&read("io")?, "write_bytes:");
        let status = read("status")?;
        let rss_bytes = value_of(&status, "VmRSS:") * 1024;
        let rss_anon_bytes = value_of(&status, "RssAnon:") * 1024;
        let mut net_bytes = 0;
        for line in read("net/dev")?.lines().skip(2) {
            let Some((iface, rest)) = line.split_once(':') else {
                continue;
            };
            if iface.trim() == "lo" {
                continue;
            }
            let cols: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            net_bytes += cols.first().copied().unwrap_or(0) + cols.get(8).copied().unwrap_or(0);
        }
        Ok(ProcCounters {
            cpu_ticks,
            disk_bytes,
            net_bytes,
            rss_bytes,
            rss_anon_bytes,
        })
    }

    /// CPU time so far of each of its threads, summed by thread name (tokio's workers share
    /// one), in clock ticks: where an idle node's CPU goes.
    pub fn thread_ticks(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let pid = self.pid().context("not running")?;
        let mut by_name = std::collections::BTreeMap::new();
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
            let Ok(stat) = std::fs::read_to_string(task?.path().join("stat")) else {
                continue; // the thread ended meanwhile
            };
            let (name, ticks) = name_and_cpu_ticks(&stat);
            *by_name.entry(name.to_string()).or_insert(0) += ticks;
        }
        Ok(by_name)
    }
}

/// The command name and the CPU time (user plus system, clock ticks) of a process's or a
/// thread's `stat` line.
fn name_and_cpu_ticks(stat: &str) -> (&str, u64) {
    // The name is in parentheses and may hold spaces and parentheses itself.
    let (head, after) = stat.rsplit_once(')').unwrap_or((stat, ""));
    let name = head.split_once('(').map_or("", |(_, name)| name);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat: indexes 11 and 12 after the name.
    (name, field(11) + field(12))
}
