//! Waiting on the failure detectors of a lab mesh: members held alive, and the two halves of
//! a partition declaring each other down.

use super::mesh::{LabMesh, LAB_CONVERGE};
use crate::eventually::eventually;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

impl LabMesh {
    /// The members the failure detector of `observer` holds alive, among `names`.
    async fn alive_among(&self, observer: &str, names: &[&str]) -> Result<BTreeSet<String>> {
        let report = self.node(observer)?.edges().await?;
        Ok(report
            .rows
            .into_iter()
            .filter(|r| r.alive && names.contains(&r.name.as_str()))
            .map(|r| r.name)
            .collect())
    }

    /// Waits until the failure detector of `observer` holds every member named in `names`
    /// alive.
    pub async fn holds_alive(&self, observer: &str, names: &[&str]) -> Result<()> {
        eventually(
            &format!("{observer} holds {} members alive", names.len()),
            LAB_CONVERGE,
            || async {
                let alive = self.alive_among(observer, names).await?;
                let down: Vec<&&str> = names.iter().filter(|n| !alive.contains(**n)).collect();
                if !down.is_empty() {
                    bail!("not alive: {down:?}");
                }
                Ok(())
            },
        )
        .await
    }

    /// Waits until, in one round of asking every node, each node of `a` holds every member
    /// of `b` down and each node of `b` every member of `a`: the halves of a partition have
    /// declared each other down. Rounds are 250 ms apart. Returns what the rounds saw, for
    /// the test to print: when each node first held the whole other half down (and which
    /// members it held alive last before that), and every member a node held alive again
    /// after it had held it down.
    pub async fn declared_down_across(&self, a: &[&str], b: &[&str]) -> Result<String> {
        let start = Instant::now();
        let sides = a.iter().map(|n| (*n, b)).chain(b.iter().map(|n| (*n, a)));
        let sides: Vec<(&str, &[&str])> = sides.collect();
        let mut first_down: BTreeMap<&str, Duration> = BTreeMap::new();
        let mut last_alive: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut held_down: BTreeSet<(&str, String)> = BTreeSet::new();
        let mut back = Vec::new();
        loop {
            let mut holdouts = Vec::new();
            for (observer, other) in &sides {
                let alive = self.alive_among(observer, other).await?;
                for name in other.iter().filter(|n| !alive.contains(**n)) {
                    held_down.insert((observer, name.to_string()));
                }
                for name in &alive {
                    if held_down.remove(&(observer, name.clone())) {
                        back.push(format!(
                            "{observer} held {name} alive again at {:.1} s",
                            start.elapsed().as_secs_f64()
                        ));
                    }
                }
                if alive.is_empty() {
                    first_down.entry(observer).or_insert(start.elapsed());
                } else {
                    holdouts.push(format!("{observer} holds {alive:?} alive"));
                    if !first_down.contains_key(observer) {
                        last_alive.insert(observer, alive);
                    }
                }
            }
            if holdouts.is_empty() {
                let firsts: Vec<String> = first_down
                    .iter()
                    .map(|(n, t)| match last_alive.get(n) {
                        Some(alive) => format!("{n} {:.1} s (last {alive:?})", t.as_secs_f64()),
                        None => format!("{n} {:.1} s", t.as_secs_f64()),
                    })
                    .collect();
                return Ok(format!(
                    "all at {:.1} s; first held the other half down: {}; held alive again after being held down: {}",
                    start.elapsed().as_secs_f64(),
                    firsts.join(", "),
                    if back.is_empty() { "none".to_string() } else { back.join(", ") }
                ));
            }
            if start.elapsed() > LAB_CONVERGE {
                bail!(
                    "the halves did not declare each other down within {LAB_CONVERGE:?}: {}; before: {}",
                    holdouts.join(", "),
                    back.join(", ")
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
