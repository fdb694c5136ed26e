//! Golden invite code: the one line people paste, and what the inviter stores about it. A
//! change to either is a deliberate format change: update it in the same commit and say why.

use super::*;
use crate::id::NodeKey;

fn invite() -> Invite {
    Invite {
        mesh: MeshId::from_bytes([3; 32]),
        inviter: NodeKey::from_secret([1; 32]).id(),
        secret: InviteSecret([5; 32]),
        expires_ms: 1_700_000_000_000,
        addrs: vec![
            "/ip4/198.18.0.10/udp/7700/quic-v1".into(),
            "/ip4/198.18.0.10/tcp/7700".into(),
        ],
    }
}

const GOLDEN_CODE: &str = "hearth-aeakgaydambqgaydambqgaydambqgaydambqgaydambqgaydambqgaydrkeohxlubhyzl7ks3mwtzos5olfgocn7dwkbeg7toseadnapn5oakbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbifaucqkbma2ck77pbraiqs62lqgqxtcojyfyytqlrqfyytal3vmryc6nzxgayc64lvnfrs25rrdexws4buf4ytsoboge4c4mbogeyc65ddoaxtonzqgdpjsixe";

#[test]
fn an_invite_encodes_to_its_golden_code_and_back() {
    assert_eq!(invite().encode(), GOLDEN_CODE);
    assert_eq!(Invite::decode(GOLDEN_CODE).unwrap(), invite());
}

/// The inviter's stored state (postcard, in the store's `invites` tree, keyed by the hash).
const GOLDEN_STATE: &str =
    "904a98d35a515331249595be67b860986beb5ca856e8b7b753f75795e2529a2880d095ffbc310102";
const GOLDEN_HASH: &str = "904a98d35a515331249595be67b860986beb5ca856e8b7b753f75795e2529a28";

#[test]
fn the_stored_invite_state_encodes_to_its_golden_bytes_and_back() {
    let state = InviteState {
        secret_hash: invite().secret.hash(),
        expires_ms: 1_700_000_000_000,
        role: Role::Admin,
        uses_left: 2,
    };
    assert_eq!(hex::encode(state.secret_hash), GOLDEN_HASH);
    let bytes = postcard::to_stdvec(&state).unwrap();
    assert_eq!(hex::encode(&bytes), GOLDEN_STATE);
    let back: InviteState = postcard::from_bytes(&hex::decode(GOLDEN_STATE).unwrap()).unwrap();
    assert_eq!(back, state);
}
