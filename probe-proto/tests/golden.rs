//! Golden bytes: these pin the wire format documented in the crate docs.

use probe_proto::{
    FrameDecoder, HeapBlock, HostMsg, KernelMsg, PROTOCOL_VERSION, Version, encode_frame,
    frame::MAX_FRAME,
};

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

#[test]
fn protocol_version_is_1_1() {
    assert_eq!(PROTOCOL_VERSION, Version { major: 1, minor: 1 });
}

/// The 1.1 commands are appended after `Ping`: their variant indices are
/// part of the wire format.
#[test]
fn golden_1_1_host_msg_bytes() {
    let enc = |m: &HostMsg| postcard::to_allocvec(m).unwrap();
    assert_eq!(enc(&HostMsg::Snapshot), [0x02]);
    assert_eq!(enc(&HostMsg::Check), [0x03]);
    assert_eq!(
        enc(&HostMsg::HeapWalk {
            pid: 300,
            heap_id: 1
        }),
        [0x04, 0xac, 0x02, 0x01]
    );
}

/// A 1.1 kernel message, byte by byte: variant 19, then the fields in order.
#[test]
fn golden_heap_block_bytes() {
    let msg = KernelMsg::HeapBlock(HeapBlock {
        pid: 0,
        heap_id: 1,
        addr: 0x1000,
        size: 48,
        used: true,
        key: 300,
    });
    assert_eq!(
        postcard::to_allocvec(&msg).unwrap(),
        [0x13, 0x00, 0x01, 0x80, 0x20, 0x30, 0x01, 0xac, 0x02]
    );
}
