//! `hearthctl edges`: the elected edges with the addresses visitors use, then every other
//! member with the reason it is not an edge.

use super::{clean, list_or, table};
use hearth_proto::api::EdgesV1;
use hearth_proto::election::Verdict;

/// A summary line, then NAME, ID, EDGE, PREF, ADDRESSES, LIVE, WHY NOT.
pub fn edges(report: &EdgesV1) -> String {
    let elected = report
        .rows
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Edge { .. }))
        .count();
    let mut out = format!(
        "{elected} edge{} elected (at most {}; the smallest edges.max a live member announces)\n",
        if elected == 1 { "" } else { "s" },
        report.max
    );
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let (edge, why) = match &r.verdict {
                Verdict::Edge { rank } => (format!("yes #{}", rank + 1), String::new()),
                Verdict::NotEdge(why) => ("no".to_string(), clean(&why.to_string())),
            };
            let addrs = if matches!(r.verdict, Verdict::Edge { .. }) {
                list_or(&r.ips, ",", "-")
            } else {
                "-".to_string()
            };
            let live = if r.alive { "yes" } else { "no" }.to_string();
            let name = if r.is_self {
                format!("{} (self)", clean(&r.name))
            } else {
                clean(&r.name)
            };
            vec![
                name,
                r.node.short(),
                edge,
                r.edge_pref.to_string(),
                addrs,
                live,
                why,
            ]
        })
        .collect();
    out.push_str(&table(
        &["NAME", "ID", "EDGE", "PREF", "ADDRESSES", "LIVE", "WHY NOT"],
        rows,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::api::EdgeRowV1;
    use hearth_proto::election::{EdgePreference, NotElected};
    use hearth_proto::reach::Reach;
    use hearth_proto::NodeKey;

    fn row(name: &str, verdict: Verdict, ips: &[&str]) -> EdgeRowV1 {
        EdgeRowV1 {
            node: NodeKey::generate().id(),
            name: name.into(),
            verdict,
            edge_pref: EdgePreference::Auto,
            reach: Reach::Unknown,
            ips: ips.iter().map(|s| s.to_string()).collect(),
            alive: true,
            is_self: false,
        }
    }

    #[test]
    fn edges_come_with_addresses_and_the_others_with_reasons() {
        let report = EdgesV1 {
            max: 3,
            rows: vec![
                row("vps", Verdict::Edge { rank: 0 }, &["198.18.0.11"]),
                EdgeRowV1 {
                    alive: false,
                    ..row("vps2", Verdict::Edge { rank: 1 }, &["198.18.0.12"])
                },
                row(
                    "home",
                    Verdict::NotEdge(NotElected::NotPublic {
                        reach: Reach::Private {
                            reason: "AutoNAT could not dial back\u{1b}[31m".into(),
                        },
                    }),
                    &["198.19.1.2"],
                ),
            ],
        };
        let text = edges(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("2 edges elected (at most 3"), "{text}");
        assert!(lines[1].starts_with("NAME"), "{text}");
        assert!(lines[2].contains("yes #1") && lines[2].contains("198.18.0.11"));
        assert!(lines[3].contains("yes #2") && lines[3].contains("198.18.0.12"));
        // A non-edge shows no addresses, and its reason cannot smuggle escapes.
        assert!(!lines[4].contains("198.19.1.2"), "{text}");
        assert!(lines[4].contains("not public: AutoNAT could not dial back?[31m"));
        // vps2 is shown not alive: the only "no" in its row is the LIVE column.
        assert!(lines[1].contains("LIVE"), "{text}");
        assert!(lines[2].trim_end().ends_with(" yes"), "{text}");
        assert!(lines[3].trim_end().ends_with(" no"), "{text}");
    }
}
