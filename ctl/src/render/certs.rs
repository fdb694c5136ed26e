//! `hearthctl certs`: one row per certificate name with where TLS ends (the edges, or the
//! hosting members of a passthrough host), its state, expiry, issuer, the nodes holding its
//! key and the hosts it serves, then what needs saying about each.

use super::{clean, list_or, table};
use crate::duration::compact;
use hearth_proto::api::CertsV1;
use hearth_proto::cert::{CertAction, CertState};

/// The state as one word.
pub fn state_word(state: &CertState) -> &'static str {
    match state {
        CertState::Pending => "pending",
        CertState::Valid => "valid",
        CertState::Renewing => "renewing",
        CertState::Failed => "failed",
        CertState::Expired => "expired",
    }
}

/// A summary line about this node, the table (certificate name, the names it carries, TLS
/// mode, state, expiry, issuer, nodes holding its key, hosts it serves), then a detail line
/// per row that has one.
pub fn certs(report: &CertsV1, now_ms: u64) -> String {
    let mut out = format!("acme: {}\n", clean(&report.acme));
    if report.rows.is_empty() {
        out.push_str("no certificates needed: no host is published for HTTPS (`hearthctl publish HOST --to ADDR:PORT`)\n");
        return out;
    }
    let rows = report
        .rows
        .iter()
        .map(|r| {
            let expires = match r.not_after_ms {
                None => "-".to_string(),
                Some(t) if t <= now_ms => "expired".to_string(),
                Some(t) => format!("in {}", compact((t - now_ms) / 1000)),
            };
            vec![
                clean(&r.name),
                list_or(&r.names, ",", "-"),
                r.mode.to_string(),
                state_word(&r.state).to_string(),
                expires,
                if r.issuer_name.is_empty() {
                    "-".to_string()
                } else {
                    clean(&r.issuer_name)
                },
                list_or(&r.holders, ",", "-"),
                list_or(&r.hosts, ",", "-"),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NAME", "NAMES", "TLS", "STATE", "EXPIRES", "ISSUER", "HELD BY", "HOSTS",
        ],
        rows,
    ));
    for r in report.rows.iter().filter(|r| !r.detail.is_empty()) {
        out.push_str(&format!("{}: {}\n", clean(&r.name), clean(&r.detail)));
    }
    out
}

/// `hearthctl certs renew|rotate`.
pub fn cert_requested(name: &str, action: CertAction, issuer: Option<&str>) -> String {
    let what = match action {
        CertAction::Renew => "a new certificate",
        CertAction::Rotate => "a new key and certificate (the old one is revoked once replaced)",
    };
    match issuer {
        Some(issuer) => format!(
            "asked for {what} for {}; {} orders it now, see `hearthctl certs`\n",
            clean(name),
            clean(issuer)
        ),
        None => format!(
            "asked for {what} for {}; no elected edge may order certificates yet ([acme] accept_terms = true on the edges)\n",
            clean(name)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hearth_proto::api::CertRowV1;

    fn row(name: &str, state: CertState, not_after: Option<u64>, detail: &str) -> CertRowV1 {
        CertRowV1 {
            name: name.into(),
            names: vec![name.into()],
            hosts: vec![name.into()],
            state,
            detail: detail.into(),
            issuer: None,
            issuer_name: "vps".into(),
            not_after_ms: not_after,
            renew_at_ms: None,
            serial: None,
            holders: vec!["vps".into(), "vps2".into()],
            directory: "https://ca/dir".into(),
            challenges: vec![],
            mode: hearth_proto::route::RouteTls::Edge,
        }
    }

    #[test]
    fn rows_show_state_expiry_and_details() {
        let now = 1_000_000_000;
        let report = CertsV1 {
            acme: "this node orders certificates from https://ca/dir while it is an edge".into(),
            rows: vec![
                row(
                    "blog.example.com",
                    CertState::Valid,
                    Some(now + 90 * 86_400_000),
                    "",
                ),
                row(
                    "new.example.com",
                    CertState::Failed,
                    None,
                    "rejectedIdentifier: no\x1b[31m",
                ),
                CertRowV1 {
                    mode: hearth_proto::route::RouteTls::Passthrough,
                    holders: vec!["home".into()],
                    ..row("blind.example.com", CertState::Valid, Some(now + 1), "")
                },
            ],
        };
        let text = certs(&report, now);
        assert!(text.starts_with("acme: this node orders"), "{text}");
        let valid = text
            .lines()
            .find(|l| l.starts_with("blog.example.com"))
            .unwrap();
        assert!(
            valid.contains("valid") && valid.contains("in 90d") && valid.contains("vps,vps2"),
            "{valid}"
        );
        let blind = text
            .lines()
            .find(|l| l.starts_with("blind.example.com"))
            .unwrap();
        assert!(
            blind.contains("passthrough") && blind.contains(" home "),
            "{blind}"
        );
        assert!(
            text.contains("new.example.com: rejectedIdentifier: no?[31m"),
            "{text}"
        );
        let empty = certs(
            &CertsV1 {
                acme: "off".into(),
                rows: vec![],
            },
            now,
        );
        assert!(empty.contains("no certificates needed"), "{empty}");
    }

    #[test]
    fn requests_say_who_acts() {
        assert!(
            cert_requested("a.example.com", CertAction::Renew, Some("vps"))
                .contains("vps orders it now")
        );
        assert!(cert_requested("a.example.com", CertAction::Rotate, None).contains("accept_terms"));
    }
}
