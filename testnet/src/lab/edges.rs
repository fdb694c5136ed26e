//! Waiting on the edge election across a lab mesh.

use super::mesh::{LabMesh, LAB_CONVERGE};
use crate::eventually::eventually;
use anyhow::{ensure, Result};
use hearth_proto::election::Verdict;
use std::collections::BTreeSet;

impl LabMesh {
    /// The names of the edges node `observer` has elected.
    pub async fn edge_names(&self, observer: &str) -> Result<BTreeSet<String>> {
        let report = self.node(observer)?.edges().await?;
        Ok(report
            .rows
            .into_iter()
            .filter(|r| matches!(r.verdict, Verdict::Edge { .. }))
            .map(|r| r.name)
            .collect())
    }

    /// Waits until every running node has elected exactly `expected`.
    pub async fn edges_everywhere(&self, expected: &[&str]) -> Result<()> {
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            eventually(
                &format!("{} elects {expected:?}", node.name),
                LAB_CONVERGE,
                || async {
                    let seen = self.edge_names(&node.name).await?;
                    ensure!(seen == want, "elects {seen:?}");
                    Ok(())
                },
            )
            .await?;
        }
        Ok(())
    }
}
