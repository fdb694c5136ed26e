//! Golden bytes of the wire messages encoded by postcard here: the failure detector's and
//! record pushes' stream frames (the request-response messages are CBOR, pinned beside
//! libp2p's codec in `hearth-node`).

use super::*;
use crate::record::golden::{golden_record, GOLDEN_RECORD};

#[test]
fn a_push_frame_encodes_to_its_golden_bytes_and_back() {
    let push = PushFrame::V1 {
        records: vec![golden_record()],
    };
    // `V1` (variant 0), one record, the pinned envelope.
    let golden = format!("0001{GOLDEN_RECORD}");
    assert_eq!(hex::encode(push.encode()), golden);
    assert_eq!(
        PushFrame::decode(&hex::decode(&golden).unwrap()).unwrap(),
        push
    );
    assert!(
        PushFrame::decode(&[0x01, 0x00]).is_err(),
        "an unknown version"
    );
}

#[test]
fn a_failure_detector_frame_encodes_to_its_golden_bytes_and_back() {
    // `V1` (variant 0), three bytes.
    swim_round_trips(
        &SwimPacket::V1 {
            bytes: vec![1, 2, 3],
        },
        "0003010203",
    );
    let key = crate::id::NodeKey::from_secret([7; 32]);
    let mesh = crate::id::MeshId::from_bytes([9; 32]);
    let to = crate::id::NodeKey::from_secret([8; 32]).id();
    let forwarded = SwimPacket::forwarded(&key, &mesh, to, vec![4, 5]);
    let bytes = forwarded.encode();
    // `Forwarded` (variant 1), then the addressee's 32 bytes.
    assert_eq!(hex::encode(&bytes[..1]), "01");
    assert_eq!(SwimPacket::decode(&bytes).unwrap(), forwarded);
    // `Relay` (variant 2), the addressee's 32 bytes, two bytes.
    swim_round_trips(
        &SwimPacket::Relay {
            to: crate::id::NodeId::from_proven_bytes([8; 32]),
            bytes: vec![4, 5],
        },
        &format!("02{}020405", "08".repeat(32)),
    );
    // `Relayed` (variant 3), the origin's 32 bytes, two bytes.
    swim_round_trips(
        &SwimPacket::Relayed {
            origin: crate::id::NodeId::from_proven_bytes([6; 32]),
            bytes: vec![4, 5],
        },
        &format!("03{}020405", "06".repeat(32)),
    );
    // `Pass` (variant 4) and `Passed` (variant 5): two bytes each, nothing else.
    swim_round_trips(&SwimPacket::Pass { bytes: vec![4, 5] }, "04020405");
    swim_round_trips(&SwimPacket::Passed { bytes: vec![4, 5] }, "05020405");
    assert!(SwimPacket::decode(&[0x07, 0x00]).is_err());
}

/// `packet` encodes to `golden` (hex) and decodes back from it.
fn swim_round_trips(packet: &SwimPacket, golden: &str) {
    assert_eq!(hex::encode(packet.encode()), golden);
    assert_eq!(
        &SwimPacket::decode(&hex::decode(golden).unwrap()).unwrap(),
        packet
    );
}
