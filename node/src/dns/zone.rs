//! The zone an edge answers for, and the answer to one question, with no I/O.
//!
//! Names that exist in the zone:
//! - the apex: SOA, NS (one `ns-<label>` per edge), and A/AAAA when the apex itself is a
//!   published host;
//! - `ns-<label>.<zone>`: that edge's addresses (the glue of the NS records);
//! - `edges.<zone>`: every edge's addresses, for users who CNAME an outside name to it;
//! - every published HTTP host inside the zone: every edge's addresses;
//! - the empty non-terminals above published hosts (`b.<zone>` when `a.b.<zone>` is
//!   published): no records, so NODATA rather than NXDOMAIN (RFC 8020);
//! - `_acme-challenge.<name>`: TXT records while an ACME DNS-01 order for `<name>` is in
//!   flight.
//!
//! When names collide, `ns-<label>` wins over a published host of the same name, so glue
//! always points at exactly one edge. ANY is answered with every record at the name (the zone
//! is tiny, so the amplification RFC 8482 guards against is small).

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// What an edge answers for: derived by the caller from the mesh view whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ZoneView {
    /// The zone, lowercase, no trailing dot (e.g. `hearth.example`).
    pub zone: String,
    /// The TTL of every record and of negative answers; short, so clients follow edge changes.
    pub ttl: u32,
    /// The SOA serial; bumped by the caller when the view changes.
    pub serial: u32,
    /// The live elected edges, in order; the first one is named in the SOA.
    pub edges: Vec<EdgeNs>,
    /// Every published HTTP host, lowercase; those outside the zone are ignored.
    pub hosts: BTreeSet<String>,
    /// TXT records by full lowercase name without the trailing dot: the ACME DNS-01 answers
    /// (`_acme-challenge.<name>`); those outside the zone are ignored.
    pub txt: BTreeMap<String, Vec<String>>,
}

/// One edge as a name server: named `ns-<label>.<zone>` and reachable at its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EdgeNs {
    /// The node name; sanitized into a DNS label by [`dns_label`].
    pub name: String,
    /// The addresses clients reach the edge at.
    pub ips: Vec<IpAddr>,
}

/// What to send back for one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub rcode: ResponseCode,
    /// Whether the AA flag is set: true for every name inside the zone.
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the SOA on NODATA and NXDOMAIN.
    pub authority: Vec<Record>,
    /// The additional section: glue for NS answers.
    pub additional: Vec<Record>,
}

impl Answer {
    fn refused() -> Self {
        Self {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
            additional: Vec::new(),
        }
    }
}

/// The longest DNS label.
const MAX_LABEL: usize = 63;
/// Every edge's name server label starts with this.
const NS_PREFIX: &str = "ns-";
/// The name listing every edge.
const EDGES_LABEL: &str = "edges";
/// SOA timers. Nothing transfers this zone (every edge derives it from the mesh), so they
/// only need to be sane.
const SOA_REFRESH: i32 = 3600;
const SOA_RETRY: i32 = 600;
const SOA_EXPIRE: i32 = 7 * 24 * 3600;

/// Turns a node name into a DNS label: lowercase `[a-z0-9-]`, any other character (`_`, `.`)
/// mapped to `-`, runs of `-` collapsed, no leading or trailing `-`, at most 63 characters,
/// `node` when nothing is left. Node names allow `_` and `.`, labels do not.
pub fn dns_label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if c == '-' && (out.is_empty() || out.ends_with('-')) {
            continue;
        }
        out.push(c);
    }
    truncate_label(&mut out, MAX_LABEL);
    if out.is_empty() {
        out.push_str("node");
    }
    out
}

/// Cuts an ASCII label to `max` characters without leaving a trailing `-`.
fn truncate_label(label: &mut String, max: usize) {
    label.truncate(max);
    while label.ends_with('-') {
        label.pop();
    }
}

/// The name server label of each edge, in the view's order: `ns-<label>`, made unique with
/// `-2`, `-3`… when two node names sanitize to the same label.
pub fn ns_labels(edges: &[EdgeNs]) -> Vec<String> {
    let mut taken: Vec<String> = Vec::with_capacity(edges.len());
    for edge in edges {
        let mut base = dns_label(&edge.name);
        truncate_label(&mut base, MAX_LABEL - NS_PREFIX.len());
        let mut label = format!("{NS_PREFIX}{base}");
        let mut n = 2;
        while taken.contains(&label) {
            let suffix = format!("-{n}");
            let mut cut = base.clone();
            truncate_label(&mut cut, MAX_LABEL - NS_PREFIX.len() - suffix.len());
            label = format!("{NS_PREFIX}{cut}{suffix}");
            n += 1;
        }
        taken.push(label);
    }
    taken
}

/// Answers one question (`name`, `rtype`) from `view`. Matching is case-insensitive; answer
/// records carry the name as asked.
pub fn answer(view: &ZoneView, name: &Name, rtype: RecordType) -> Answer {
    let zone = view.zone.trim_end_matches('.').to_ascii_lowercase();
    if zone.is_empty() {
        return Answer::refused();
    }
    let Ok(apex) = Name::from_ascii(format!("{zone}.")) else {
        return Answer::refused();
    };
    if !apex.zone_of(name) {
        return Answer::refused();
    }
    let ctx = Ctx::new(view, &zone, apex);
    let owner = relative_key(&ctx.apex, name);
    let found = owner.and_then(|key| ctx.records_at(&key, name));
    let Some(records) = found else {
        return ctx.negative(ResponseCode::NXDomain);
    };
    let answers: Vec<Record> = records
        .into_iter()
        .filter(|r| rtype == RecordType::ANY || r.record_type() == rtype)
        .collect();
    if answers.is_empty() {
        return ctx.negative(ResponseCode::NoError);
    }
    let additional = ctx.glue(&answers);
    Answer {
        rcode: ResponseCode::NoError,
        authoritative: true,
        answers,
        authority: Vec::new(),
        additional,
    }
}

/// The part of `name` below `apex` as a lowercase dotted key (`""` for the apex), or `None`
/// when a label holds characters no name in this zone can have.
fn relative_key(apex: &Name, name: &Name) -> Option<String> {
    let below = name.iter().count().checked_sub(apex.iter().count())?;
    let mut labels = Vec::with_capacity(below);
    for label in name.iter().take(below) {
        let ok = label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
        if !ok {
            return None;
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
    }
    Some(labels.join("."))
}

/// One view prepared for answering.
struct Ctx<'a> {
    view: &'a ZoneView,
    zone: &'a str,
    apex: Name,
    /// `(label, edge)` in the view's order.
    ns: Vec<(String, &'a EdgeNs)>,
}

impl<'a> Ctx<'a> {
    fn new(view: &'a ZoneView, zone: &'a str, apex: Name) -> Self {
        let ns = ns_labels(&view.edges)
            .into_iter()
            .zip(view.edges.iter())
            .collect();
        Self {
            view,
            zone,
            apex,
            ns,
        }
    }

    /// `label.<zone>.`, or `None` when that is too long to be a name.
    fn name(&self, label: &str) -> Option<Name> {
        Name::from_ascii(format!("{label}.{}.", self.zone)).ok()
    }

    fn record(&self, owner: &Name, data: RData) -> Record {
        Record::from_rdata(owner.clone(), self.view.ttl, data)
    }

    /// Every record at the name `key` (relative to the apex), owned by `owner`; `None` when
    /// the name does not exist, an empty list for an empty non-terminal.
    fn records_at(&self, key: &str, owner: &Name) -> Option<Vec<Record>> {
        let full = if key.is_empty() {
            self.zone.to_string()
        } else {
            format!("{key}.{}", self.zone)
        };
        if let Some(values) = self.view.txt.get(&full) {
            return Some(
                values
                    .iter()
                    .map(|v| self.record(owner, RData::TXT(TXT::new(vec![v.clone()]))))
                    .collect(),
            );
        }
        if key.is_empty() {
            let mut records = vec![self.soa(owner)];
            records.extend(self.ns_records(owner));
            if self.view.hosts.contains(self.zone) {
                records.extend(self.addresses(owner, &self.all_edge_ips()));
            }
            return Some(records);
        }
        if let Some((_, edge)) = self.ns.iter().find(|(label, _)| label == key) {
            return Some(self.addresses(owner, &edge.ips));
        }
        if key == EDGES_LABEL {
            return Some(self.addresses(owner, &self.all_edge_ips()));
        }
        let mut exists = false;
        for host in &self.view.hosts {
            let Some(rel) = self.below_zone(host) else {
                continue;
            };
            if rel == key {
                return Some(self.addresses(owner, &self.all_edge_ips()));
            }
            exists |= rel
                .strip_suffix(key)
                .is_some_and(|head| head.ends_with('.'));
        }
        exists.then(Vec::new)
    }

    /// `host` relative to the zone, when it is strictly inside it.
    fn below_zone<'h>(&self, host: &'h str) -> Option<&'h str> {
        host.strip_suffix(self.zone)?.strip_suffix('.')
    }

    fn all_edge_ips(&self) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = Vec::new();
        for ip in self.view.edges.iter().flat_map(|e| e.ips.iter()) {
            if !ips.contains(ip) {
                ips.push(*ip);
            }
        }
        ips
    }

    fn addresses(&self, owner: &Name, ips: &[IpAddr]) -> Vec<Record> {
        ips.iter()
            .map(|ip| match *ip {
                IpAddr::V4(v4) => self.record(owner, RData::A(A(v4))),
                IpAddr::V6(v6) => self.record(owner, RData::AAAA(AAAA(v6))),
            })
            .collect()
    }

    fn soa(&self, owner: &Name) -> Record {
        let mname = match self.ns.first() {
            Some((label, _)) => self.name(label),
            None => self.name("ns"),
        }
        .unwrap_or_else(|| self.apex.clone());
        let rname = self.name("hostmaster").unwrap_or_else(|| self.apex.clone());
        let soa = SOA::new(
            mname,
            rname,
            self.view.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.view.ttl,
        );
        self.record(owner, RData::SOA(soa))
    }

    /// The NS records, sorted by name server name.
    fn ns_records(&self, owner: &Name) -> Vec<Record> {
        let mut labels: Vec<&str> = self.ns.iter().map(|(l, _)| l.as_str()).collect();
        labels.sort_unstable();
        labels
            .into_iter()
            .filter_map(|label| self.name(label))
            .map(|ns| self.record(owner, RData::NS(NS(ns))))
            .collect()
    }

    /// A/AAAA of each name server named in `answers`.
    fn glue(&self, answers: &[Record]) -> Vec<Record> {
        let mut out = Vec::new();
        for record in answers {
            let RData::NS(NS(target)) = &record.data else {
                continue;
            };
            let edge = self
                .ns
                .iter()
                .find(|(label, _)| self.name(label).as_ref() == Some(target));
            if let Some((_, edge)) = edge {
                out.extend(self.addresses(target, &edge.ips));
            }
        }
        out
    }

    /// NODATA (`NoError`) or NXDOMAIN, with the SOA in authority for negative caching.
    fn negative(&self, rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authority: vec![self.soa(&self.apex)],
            additional: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
