use super::*;
use crate::dns::zone::EdgeNs;
use hickory_server::proto::op::{Message, MessageType, Query};
use hickory_server::proto::rr::{Name, RData};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A bound on every wait, so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(5);

fn edge(name: &str, ip: &str) -> EdgeNs {
    EdgeNs {
        name: name.into(),
        ips: vec![ip.parse().unwrap()],
    }
}

fn view(edges: Vec<EdgeNs>) -> ZoneView {
    ZoneView {
        zone: "hearth.test".into(),
        ttl: 10,
        serial: 1,
        edges,
        hosts: ["blog.hearth.test".to_string()].into(),
        txt: Default::default(),
    }
}

fn two_edges() -> ZoneView {
    view(vec![edge("vps", "127.0.0.11"), edge("vps2", "127.0.0.12")])
}

struct Running {
    addr: SocketAddr,
    zone: watch::Sender<Arc<ZoneView>>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

async fn start(initial: ZoneView) -> Running {
    let (udp, tcp) = bind("127.0.0.1:0").await.unwrap();
    let addr = udp.local_addr().unwrap();
    assert_eq!(
        tcp.local_addr().unwrap(),
        addr,
        "UDP and TCP share the port"
    );
    let (zone, rx) = watch::channel(Arc::new(initial));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(serve(udp, tcp, rx, Default::default(), cancel.clone()));
    Running {
        addr,
        zone,
        cancel,
        task,
    }
}

fn query(name: &str, rtype: RecordType) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message
}

async fn udp_exchange(server: SocketAddr, request: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(request, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("no UDP answer")
        .unwrap();
    Message::from_vec(&buf[..n]).unwrap()
}

async fn udp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let request = query(name, rtype);
    let response = udp_exchange(server, &request.to_vec().unwrap()).await;
    assert_eq!(response.metadata.id, request.metadata.id);
    response
}

async fn tcp(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let request = query(name, rtype).to_vec().unwrap();
    let mut stream = TcpStream::connect(server).await.unwrap();
    let len = u16::try_from(request.len()).unwrap();
    stream.write_all(&len.to_be_bytes()).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let read = async {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    };
    let buf = tokio::time::timeout(WAIT, read)
        .await
        .expect("no TCP answer");
    Message::from_vec(&buf).unwrap()
}

fn addresses(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.to_string(),
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn udp_answers_list_the_edges_authoritatively() {
    let server = start(two_edges()).await;
    let response = udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert!(!response.metadata.recursion_available);
    assert_eq!(addresses(&response), ["127.0.0.11", "127.0.0.12"]);
    assert!(response.answers.iter().all(|r| r.ttl == 10));
    assert_eq!(response.queries.len(), 1, "the question is echoed");
}

#[tokio::test]
async fn tcp_answers_the_same() {
    let server = start(two_edges()).await;
    let response = tcp(server.addr, "edges.hearth.test.", RecordType::A).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    assert_eq!(addresses(&response), ["127.0.0.11", "127.0.0.12"]);
    assert!(response.answers.iter().all(|r| r.ttl == 10));
    let ns = tcp(server.addr, "hearth.test.", RecordType::NS).await;
    assert_eq!(ns.answers.len(), 2);
    assert_eq!(ns.additionals.len(), 2, "glue");
}

#[tokio::test]
async fn unknown_names_are_nxdomain_and_outside_names_refused() {
    let server = start(two_edges()).await;
    let nx = udp(server.addr, "nope.hearth.test.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative);
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authorities.len(), 1);
    assert_eq!(nx.authorities[0].record_type(), RecordType::SOA);

    let nodata = udp(server.addr, "blog.hearth.test.", RecordType::MX).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities.len(), 1);

    let refused = tcp(server.addr, "example.org.", RecordType::A).await;
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(!refused.metadata.authoritative);
}

#[tokio::test]
async fn a_new_view_drops_a_removed_edge_from_the_next_answer() {
    let server = start(two_edges()).await;
    let before = udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert_eq!(addresses(&before), ["127.0.0.11", "127.0.0.12"]);
    server
        .zone
        .send(Arc::new(view(vec![edge("vps2", "127.0.0.12")])))
        .unwrap();
    let after = udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert_eq!(addresses(&after), ["127.0.0.12"]);
    let gone = tcp(server.addr, "ns-vps.hearth.test.", RecordType::A).await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn odd_requests_get_error_codes_and_the_server_keeps_answering() {
    let server = start(two_edges()).await;

    // Too short for a header: dropped without an answer.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(&[0xde, 0xad], server.addr).await.unwrap();
    // A header promising a question that is not there: FORMERR from hickory's parser.
    let mut truncated = query("blog.hearth.test.", RecordType::A).to_vec().unwrap();
    truncated.truncate(14);
    let formerr = udp_exchange(server.addr, &truncated).await;
    assert_eq!(formerr.metadata.response_code, ResponseCode::FormErr);

    // No question at all, or two: FORMERR from the handler.
    let none = Message::query();
    let response = udp_exchange(server.addr, &none.to_vec().unwrap()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
    let mut two = query("blog.hearth.test.", RecordType::A);
    two.add_query(Query::query(
        Name::from_ascii("edges.hearth.test.").unwrap(),
        RecordType::A,
    ));
    let response = udp_exchange(server.addr, &two.to_vec().unwrap()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::FormErr);

    // Another class, a zone transfer, another opcode: refused or not implemented.
    let mut chaos = query("blog.hearth.test.", RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let response = udp_exchange(server.addr, &chaos.to_vec().unwrap()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    let axfr = tcp(server.addr, "hearth.test.", RecordType::AXFR).await;
    assert_eq!(axfr.metadata.response_code, ResponseCode::Refused);
    let mut notify = query("hearth.test.", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    let response = udp_exchange(server.addr, &notify.to_vec().unwrap()).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NotImp);

    let fine = udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert_eq!(addresses(&fine), ["127.0.0.11", "127.0.0.12"]);
}

#[tokio::test]
async fn edns_requests_get_edns_answers() {
    let server = start(two_edges()).await;
    let mut request = query("blog.hearth.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    request.set_edns(edns);
    let response = udp_exchange(server.addr, &request.to_vec().unwrap()).await;
    assert_eq!(addresses(&response), ["127.0.0.11", "127.0.0.12"]);
    let ours = response.edns.expect("an OPT record in the answer");
    assert_eq!(ours.max_payload(), MAX_UDP_PAYLOAD);

    let mut future = query("blog.hearth.test.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    future.set_edns(edns);
    let response = udp_exchange(server.addr, &future.to_vec().unwrap()).await;
    // 16 reads back as BADSIG: BADVERS and BADSIG share the code.
    assert_eq!(
        u16::from(response.metadata.response_code),
        u16::from(ResponseCode::BADVERS)
    );
    assert!(response.edns.is_some());
}

#[tokio::test]
async fn cancelling_stops_the_server_and_frees_the_port() {
    let server = start(two_edges()).await;
    udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    server.cancel.cancel();
    tokio::time::timeout(WAIT, server.task)
        .await
        .expect("serve did not return after cancel")
        .unwrap();
    let again = bind(&server.addr.to_string()).await;
    assert!(again.is_ok(), "port still taken: {again:?}");
}

#[tokio::test]
async fn bind_errors_name_the_address_and_the_fix() {
    let server = start(two_edges()).await;
    let taken = server.addr.to_string();
    let error = bind(&taken).await.unwrap_err().to_string();
    assert!(error.contains(&taken), "{error}");
    assert!(error.contains("dns.listen"), "{error}");
    assert!(error.contains("root"), "{error}");
    let error = bind("port 53 please").await.unwrap_err().to_string();
    assert!(
        error.contains("port 53 please") && error.contains("dns.listen"),
        "{error}"
    );
}

#[tokio::test]
async fn answers_too_big_for_udp_are_truncated_and_complete_over_tcp() {
    let edges = (1..=60)
        .map(|i| edge(&format!("edge{i}"), &format!("127.0.1.{i}")))
        .collect();
    let server = start(view(edges)).await;
    let short = udp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert!(short.metadata.truncation, "no EDNS: 512 bytes at most");
    assert!(short.answers.len() < 60);
    let full = tcp(server.addr, "blog.hearth.test.", RecordType::A).await;
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), 60);
}
