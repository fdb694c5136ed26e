//! Golden bytes of the gossipsub message, the one wire message encoded by postcard here (the
//! request-response messages are CBOR, pinned beside libp2p's codec in `hearth-node`).

use super::*;
use crate::record::golden::{golden_record, GOLDEN_RECORD};

#[test]
fn a_gossip_message_encodes_to_its_golden_bytes_and_back() {
    let gossip = Gossip::V1 {
        records: vec![golden_record()],
    };
    // `V1` (variant 0), one record, the pinned envelope.
    let golden = format!("0001{GOLDEN_RECORD}");
    assert_eq!(hex::encode(gossip.encode()), golden);
    assert_eq!(
        Gossip::decode(&hex::decode(&golden).unwrap()).unwrap(),
        gossip
    );
}
