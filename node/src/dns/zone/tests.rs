use super::*;

const TTL: u32 = 10;

fn edge(name: &str, ips: &[&str]) -> EdgeNs {
    EdgeNs {
        name: name.into(),
        ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
    }
}

/// Two edges, given out of label order: `vps` (IPv4 and IPv6) and `Home_NAS.lan` (IPv4 only).
fn view() -> ZoneView {
    ZoneView {
        zone: "hearth.test".into(),
        ttl: TTL,
        serial: 7,
        edges: vec![
            edge("vps", &["127.0.0.11", "::ffff:127.0.0.11"]),
            edge("Home_NAS.lan", &["127.0.0.12"]),
        ],
        hosts: [
            "blog.hearth.test",
            "a.b.hearth.test",
            "blog.other.test",
            "xhearth.test",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        txt: Default::default(),
    }
}

fn ask(view: &ZoneView, name: &str, rtype: RecordType) -> Answer {
    answer(view, &Name::from_ascii(name).unwrap(), rtype)
}

/// The answer section as `TYPE rdata` strings.
fn rdata(answer: &Answer) -> Vec<String> {
    answer
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect()
}

fn soa_of(record: &Record) -> &SOA {
    match &record.data {
        RData::SOA(soa) => soa,
        other => panic!("not an SOA: {other:?}"),
    }
}

fn assert_nodata(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::NoError);
    assert!(answer.authoritative);
    assert!(answer.answers.is_empty(), "{answer:?}");
    assert_eq!(answer.authority.len(), 1);
    assert_eq!(answer.authority[0].record_type(), RecordType::SOA);
    assert_eq!(answer.authority[0].name.to_string(), "hearth.test.");
}

fn assert_nxdomain(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::NXDomain);
    assert!(answer.authoritative);
    assert!(answer.answers.is_empty());
    assert_eq!(answer.authority.len(), 1);
    assert_eq!(answer.authority[0].record_type(), RecordType::SOA);
    assert_eq!(answer.authority[0].name.to_string(), "hearth.test.");
}

fn assert_refused(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::Refused);
    assert!(!answer.authoritative);
    assert!(answer.answers.is_empty() && answer.authority.is_empty());
}

#[test]
fn soa_at_the_apex_names_the_first_edge() {
    let a = ask(&view(), "hearth.test.", RecordType::SOA);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(a.answers.len(), 1);
    let soa = soa_of(&a.answers[0]);
    assert_eq!(soa.mname.to_string(), "ns-vps.hearth.test.");
    assert_eq!(soa.rname.to_string(), "hostmaster.hearth.test.");
    assert_eq!(soa.serial, 7);
    assert_eq!(soa.minimum, TTL);
    assert!(soa.refresh > 0 && soa.retry > 0 && soa.expire > soa.refresh);
}

#[test]
fn soa_without_edges_names_ns_of_the_zone() {
    let mut v = view();
    v.edges.clear();
    let a = ask(&v, "hearth.test.", RecordType::SOA);
    assert_eq!(soa_of(&a.answers[0]).mname.to_string(), "ns.hearth.test.");
    let ns = ask(&v, "hearth.test.", RecordType::NS);
    assert_nodata(&ns);
}

#[test]
fn ns_at_the_apex_lists_every_edge_sorted_with_glue() {
    let a = ask(&view(), "hearth.test.", RecordType::NS);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(
        rdata(&a),
        ["NS ns-home-nas-lan.hearth.test.", "NS ns-vps.hearth.test."]
    );
    let glue: Vec<String> = a.additional.iter().map(|r| r.to_string()).collect();
    assert_eq!(
        glue,
        [
            "ns-home-nas-lan.hearth.test. 10 IN A 127.0.0.12",
            "ns-vps.hearth.test. 10 IN A 127.0.0.11",
            "ns-vps.hearth.test. 10 IN AAAA ::ffff:127.0.0.11",
        ]
    );
}

#[test]
fn ns_names_resolve_to_their_own_edge_only() {
    let v = view();
    assert_eq!(
        rdata(&ask(&v, "ns-vps.hearth.test.", RecordType::A)),
        ["A 127.0.0.11"]
    );
    assert_eq!(
        rdata(&ask(&v, "ns-vps.hearth.test.", RecordType::AAAA)),
        ["AAAA ::ffff:127.0.0.11"]
    );
    assert_eq!(
        rdata(&ask(&v, "ns-home-nas-lan.hearth.test.", RecordType::A)),
        ["A 127.0.0.12"]
    );
    assert_nodata(&ask(&v, "ns-home-nas-lan.hearth.test.", RecordType::AAAA));
}

#[test]
fn edges_name_lists_every_edge() {
    let v = view();
    let a = ask(&v, "edges.hearth.test.", RecordType::A);
    assert!(a.authoritative);
    assert_eq!(rdata(&a), ["A 127.0.0.11", "A 127.0.0.12"]);
    assert_eq!(
        rdata(&ask(&v, "edges.hearth.test.", RecordType::AAAA)),
        ["AAAA ::ffff:127.0.0.11"]
    );
}

#[test]
fn published_hosts_list_every_edge() {
    let v = view();
    let a = ask(&v, "blog.hearth.test.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(rdata(&a), ["A 127.0.0.11", "A 127.0.0.12"]);
    assert_eq!(a.answers[0].name.to_string(), "blog.hearth.test.");
    assert_eq!(
        rdata(&ask(&v, "a.b.hearth.test.", RecordType::AAAA)),
        ["AAAA ::ffff:127.0.0.11"]
    );
}

#[test]
fn the_apex_has_addresses_only_when_published() {
    let mut v = view();
    assert_nodata(&ask(&v, "hearth.test.", RecordType::A));
    v.hosts.insert("hearth.test".into());
    assert_eq!(
        rdata(&ask(&v, "hearth.test.", RecordType::A)),
        ["A 127.0.0.11", "A 127.0.0.12"]
    );
}

#[test]
fn edges_sharing_an_address_list_it_once() {
    let mut v = view();
    v.edges.push(edge("twin", &["127.0.0.12"]));
    assert_eq!(
        rdata(&ask(&v, "blog.hearth.test.", RecordType::A)),
        ["A 127.0.0.11", "A 127.0.0.12"]
    );
}

#[test]
fn hosts_outside_the_zone_are_ignored() {
    let v = view();
    assert_refused(&ask(&v, "blog.other.test.", RecordType::A));
    assert_refused(&ask(&v, "xhearth.test.", RecordType::A));
}

#[test]
fn a_name_without_the_asked_type_is_nodata() {
    let v = view();
    assert_nodata(&ask(&v, "blog.hearth.test.", RecordType::MX));
    assert_nodata(&ask(&v, "blog.hearth.test.", RecordType::SOA));
    assert_nodata(&ask(&v, "blog.hearth.test.", RecordType::NS));
    assert_nodata(&ask(&v, "edges.hearth.test.", RecordType::TXT));
    assert_nodata(&ask(&v, "hearth.test.", RecordType::CAA));
}

#[test]
fn a_host_with_only_ipv4_edges_has_no_aaaa() {
    let mut v = view();
    v.edges.truncate(0);
    v.edges.push(edge("home", &["127.0.0.12"]));
    assert_nodata(&ask(&v, "blog.hearth.test.", RecordType::AAAA));
}

#[test]
fn an_empty_non_terminal_is_nodata() {
    assert_nodata(&ask(&view(), "b.hearth.test.", RecordType::A));
}

#[test]
fn an_unknown_name_is_nxdomain_with_the_soa() {
    let v = view();
    assert_nxdomain(&ask(&v, "nope.hearth.test.", RecordType::A));
    assert_nxdomain(&ask(&v, "x.blog.hearth.test.", RecordType::A));
    assert_nxdomain(&ask(&v, "ns-gone.hearth.test.", RecordType::A));
    assert_nxdomain(&ask(&v, "ns.hearth.test.", RecordType::A));
    let soa = soa_of(&ask(&v, "nope.hearth.test.", RecordType::A).authority[0]).clone();
    assert_eq!(soa.serial, 7);
    assert_eq!(soa.minimum, TTL);
}

#[test]
fn a_name_outside_the_zone_is_refused() {
    let v = view();
    assert_refused(&ask(&v, "example.org.", RecordType::A));
    assert_refused(&ask(&v, "test.", RecordType::SOA));
    assert_refused(&ask(&v, ".", RecordType::NS));
    assert_refused(&ask(&ZoneView::default(), "hearth.test.", RecordType::SOA));
}

#[test]
fn matching_ignores_case_and_answers_with_the_name_as_asked() {
    let v = view();
    let a = ask(&v, "BLOG.Hearth.TEST.", RecordType::A);
    assert_eq!(rdata(&a), ["A 127.0.0.11", "A 127.0.0.12"]);
    assert_eq!(a.answers[0].name.to_ascii(), "BLOG.Hearth.TEST.");
    assert_eq!(
        rdata(&ask(&v, "NS-VPS.hearth.test.", RecordType::A)),
        ["A 127.0.0.11"]
    );
    assert_eq!(
        ask(&v, "HEARTH.TEST.", RecordType::NS).answers.len(),
        2,
        "apex in upper case"
    );
    let mut upper = v.clone();
    upper.zone = "Hearth.Test.".into();
    assert_eq!(
        ask(&upper, "blog.hearth.test.", RecordType::A)
            .answers
            .len(),
        2
    );
}

#[test]
fn any_answers_every_record_at_the_name() {
    let v = view();
    let apex = ask(&v, "hearth.test.", RecordType::ANY);
    let types: Vec<RecordType> = apex.answers.iter().map(|r| r.record_type()).collect();
    assert_eq!(types, [RecordType::SOA, RecordType::NS, RecordType::NS]);
    assert_eq!(apex.additional.len(), 3, "glue for the NS records");
    assert_eq!(
        rdata(&ask(&v, "blog.hearth.test.", RecordType::ANY)),
        ["A 127.0.0.11", "AAAA ::ffff:127.0.0.11", "A 127.0.0.12"]
    );
    assert_nodata(&ask(&v, "b.hearth.test.", RecordType::ANY));
    assert_nxdomain(&ask(&v, "nope.hearth.test.", RecordType::ANY));
}

#[test]
fn every_record_carries_the_view_ttl() {
    let v = view();
    let questions = [
        ("hearth.test.", RecordType::ANY),
        ("ns-vps.hearth.test.", RecordType::A),
        ("edges.hearth.test.", RecordType::AAAA),
        ("blog.hearth.test.", RecordType::A),
        ("blog.hearth.test.", RecordType::MX),
        ("nope.hearth.test.", RecordType::A),
    ];
    for (name, rtype) in questions {
        let a = ask(&v, name, rtype);
        let all = a.answers.iter().chain(&a.authority).chain(&a.additional);
        for record in all {
            assert_eq!(record.ttl, TTL, "{name} {rtype}: {record}");
        }
    }
}

#[test]
fn an_ns_name_wins_over_a_host_of_the_same_name() {
    let mut v = view();
    v.hosts.insert("ns-vps.hearth.test".into());
    assert_eq!(
        rdata(&ask(&v, "ns-vps.hearth.test.", RecordType::A)),
        ["A 127.0.0.11"]
    );
}

#[test]
fn odd_label_bytes_do_not_match_anything() {
    let v = view();
    // One label `blog.hearth` under `test.`: outside the zone, whatever the text looks like.
    let one_label = Name::from_labels(vec![&b"blog.hearth"[..], &b"test"[..]]).unwrap();
    assert_refused(&answer(&v, &one_label, RecordType::A));
    let dotted = Name::from_labels(vec![&b"a.b"[..], &b"hearth"[..], &b"test"[..]]).unwrap();
    assert_nxdomain(&answer(&v, &dotted, RecordType::A));
    let binary = Name::from_labels(vec![&[0xff, 0x00][..], &b"hearth"[..], &b"test"[..]]).unwrap();
    assert_nxdomain(&answer(&v, &binary, RecordType::A));
}

#[test]
fn names_too_long_for_the_zone_are_left_out_without_failing() {
    let label = "a".repeat(62);
    let zone = format!("{label}.{label}.{label}.{label}");
    let v = ZoneView {
        zone: zone.clone(),
        ..view()
    };
    let soa = ask(&v, &format!("{zone}."), RecordType::SOA);
    assert_eq!(soa.answers.len(), 1);
    assert_eq!(soa_of(&soa.answers[0]).mname.to_ascii(), format!("{zone}."));
    assert_nodata_for(&ask(&v, &format!("{zone}."), RecordType::NS));
}

fn assert_nodata_for(answer: &Answer) {
    assert_eq!(answer.rcode, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
}

#[test]
fn node_names_become_dns_labels() {
    assert_eq!(dns_label("vps"), "vps");
    assert_eq!(dns_label("Home_NAS.lan"), "home-nas-lan");
    assert_eq!(dns_label("__a..b__"), "a-b");
    assert_eq!(dns_label("-x-"), "x");
    assert_eq!(dns_label("caf\u{e9}"), "caf");
    assert_eq!(dns_label("___"), "node");
    assert_eq!(dns_label(""), "node");
    let long = dns_label(&"ab".repeat(50));
    assert_eq!(long.len(), 63);
    assert_eq!(dns_label(&format!("{}_b", "a".repeat(62))), "a".repeat(62));
}

#[test]
fn ns_labels_are_unique_and_fit_a_label() {
    let edges = [
        edge("a_b", &[]),
        edge("a.b", &[]),
        edge("A-B", &[]),
        edge(&"x".repeat(63), &[]),
        edge(&"x".repeat(70), &[]),
    ];
    let labels = ns_labels(&edges);
    assert_eq!(labels[..3], ["ns-a-b", "ns-a-b-2", "ns-a-b-3"]);
    assert_eq!(labels[3], format!("ns-{}", "x".repeat(60)));
    assert_eq!(labels[4], format!("ns-{}-2", "x".repeat(58)));
    assert!(labels.iter().all(|l| l.len() <= 63));
}

#[test]
fn acme_challenges_are_answered_with_txt_records() {
    let mut v = view();
    v.txt.insert(
        "_acme-challenge.blog.hearth.test".into(),
        vec!["value-1".into()],
    );
    v.txt.insert(
        "_acme-challenge.hearth.test".into(),
        vec!["wild".into(), "apex".into()],
    );
    let txt = ask(&v, "_acme-challenge.blog.hearth.test.", RecordType::TXT);
    assert_eq!(txt.rcode, ResponseCode::NoError);
    assert_eq!(rdata(&txt), vec!["TXT value-1".to_string()]);
    let both = ask(&v, "_ACME-challenge.hearth.test.", RecordType::TXT);
    assert_eq!(both.answers.len(), 2);
    // No A record there, and nothing once the order is over.
    assert_nodata_for(&ask(&v, "_acme-challenge.blog.hearth.test.", RecordType::A));
    let done = ask(
        &view(),
        "_acme-challenge.blog.hearth.test.",
        RecordType::TXT,
    );
    assert_eq!(done.rcode, ResponseCode::NXDomain);
}
