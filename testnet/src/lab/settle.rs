//! Waiting for a lab mesh to finish forming: the point after which an idle mesh must be quiet.

use super::mesh::{LabMesh, LAB_CONVERGE};
use crate::eventually::eventually;
use anyhow::{ensure, Result};
use std::time::{Duration, Instant};

/// How long no node may write to its store before the mesh counts as settled: the watermark
/// follows the store at the next anti-entropy round (10 s), so the last write of formation
/// may come that much after the last record.
pub const SETTLE_QUIET: Duration = Duration::from_secs(12);

impl LabMesh {
    /// Waits until formation is over: every running node holds every member alive and knows
    /// what AutoNAT found about each (relay reservations and hole punching come after the
    /// join and change NodeInfo records), and then no node wrote to its store for
    /// [`SETTLE_QUIET`].
    pub async fn settled(&self) -> Result<()> {
        let running = || self.nodes.iter().filter(|n| n.is_running());
        for node in running() {
            eventually(&format!("{} settled", node.name), LAB_CONVERGE, || async {
                let report = node.edges().await?;
                let unsettled: Vec<&str> = report
                    .rows
                    .iter()
                    .filter(|r| !r.alive || r.reach == hearth_proto::reach::Reach::Unknown)
                    .map(|r| r.name.as_str())
                    .collect();
                ensure!(unsettled.is_empty(), "not settled: {unsettled:?}");
                Ok(())
            })
            .await?;
        }
        let writes = || async {
            let mut all = Vec::new();
            for node in running() {
                all.push(node.status().await?.store_writes);
            }
            anyhow::Ok(all)
        };
        let give_up = Instant::now() + LAB_CONVERGE;
        let mut last = writes().await?;
        let mut quiet_from = Instant::now();
        while quiet_from.elapsed() < SETTLE_QUIET {
            ensure!(
                Instant::now() < give_up,
                "the mesh kept writing to its stores after it formed: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = writes().await?;
            if now != last {
                last = now;
                quiet_from = Instant::now();
            }
        }
        Ok(())
    }
}
