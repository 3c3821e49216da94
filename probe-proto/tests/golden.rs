//! Golden bytes: these pin the wire format documented in the crate docs.

use probe_proto::{FrameDecoder, HostMsg, encode_frame, frame::MAX_FRAME};

#[test]
fn golden_ping_frame() {
    let mut out = [0u8; MAX_FRAME];
    let frame = encode_frame(&HostMsg::Ping { nonce: 300 }, &mut out).unwrap();
    assert_eq!(frame, &[0x06, 0x01, 0xac, 0x02, 0xfd, 0x83, 0x00]);
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    let mut got = None;
    for &b in frame {
        if let Some(r) = dec.push::<HostMsg>(b) {
            got = Some(r.unwrap());
        }
    }
    assert_eq!(got, Some(HostMsg::Ping { nonce: 300 }));
}
