//! Property tests: every message of both directions survives encode + decode.

mod common;

use common::{OwnedKernelMsg, frame_of, host_msg, kernel_msg};
use probe_proto::{
    FrameDecoder, FrameError, HostMsg, KernelMsg, Log, LogLevel, encode_frame,
    frame::{MAX_FRAME, MAX_PAYLOAD},
};
use proptest::prelude::*;

/// Asserts the framing invariant every frame must keep: the only `0x00` is
/// the last byte, since a reader resynchronises on it.
fn assert_single_terminator(frame: &[u8]) {
    assert_eq!(frame.last(), Some(&0), "frame must end with 0x00");
    assert!(
        !frame[..frame.len() - 1].contains(&0),
        "frame body must hold no 0x00: {frame:02x?}"
    );
    assert!(frame.len() <= MAX_FRAME, "frame exceeds MAX_FRAME");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_kernel_msg_round_trips_through_one_frame(msg in kernel_msg()) {
        let frame = frame_of(&msg.as_msg());
        assert_single_terminator(&frame);

        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let (last, body) = frame.split_last().unwrap();
        for &b in body {
            prop_assert!(dec.push::<KernelMsg>(b).is_none(), "a message before the terminator");
        }
        let got = match dec.push::<KernelMsg>(*last) {
            Some(Ok(m)) => OwnedKernelMsg::from_msg(&m),
            other => return Err(TestCaseError::fail(format!("terminator gave {other:?}"))),
        };
        prop_assert_eq!(got, msg);
        let stats = dec.stats();
        prop_assert_eq!(stats.frames, 1);
        prop_assert_eq!(stats.bad(), 0);
    }

    #[test]
    fn every_host_msg_round_trips_through_one_frame(msg in host_msg()) {
        let frame = frame_of(&msg);
        assert_single_terminator(&frame);

        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let mut got = Vec::new();
        for &b in &frame {
            if let Some(r) = dec.push::<HostMsg>(b) {
                got.push(r);
            }
        }
        prop_assert_eq!(got, vec![Ok(msg)]);
        prop_assert_eq!(dec.stats().frames, 1);
    }

    #[test]
    fn back_to_back_frames_decode_in_order_with_no_bad_frames(
        msgs in proptest::collection::vec(kernel_msg(), 0..24),
        idle_fill in proptest::collection::vec(0usize..3, 24),
    ) {
        // Optional runs of extra 0x00 between frames are idle fill and must
        // neither yield a message nor count as a bad frame.
        let mut stream = Vec::new();
        for (m, fill) in msgs.iter().zip(&idle_fill) {
            stream.extend(std::iter::repeat_n(0u8, *fill));
            stream.extend(frame_of(&m.as_msg()));
        }
        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let mut got = Vec::new();
        for &b in &stream {
            match dec.push::<KernelMsg>(b) {
                Some(Ok(m)) => got.push(OwnedKernelMsg::from_msg(&m)),
                Some(Err(e)) => return Err(TestCaseError::fail(format!("bad frame {e:?}"))),
                None => {}
            }
        }
        prop_assert_eq!(&got, &msgs);
        prop_assert_eq!(dec.stats().frames, msgs.len() as u64);
        prop_assert_eq!(dec.stats().bad(), 0);
    }
}

#[test]
fn message_larger_than_max_payload_is_refused_by_the_encoder() {
    let text = "x".repeat(MAX_PAYLOAD + 1);
    let msg = KernelMsg::Log(Log {
        ts_us: 0,
        level: LogLevel::Info,
        text: &text,
    });
    let mut out = [0u8; MAX_FRAME];
    assert_eq!(encode_frame(&msg, &mut out), Err(FrameError::TooLong));
}

#[test]
fn largest_payload_fits_in_max_frame() {
    // Find the longest Log text whose payload still fits, and check that its
    // frame fits MAX_FRAME: the constant must cover the worst case.
    let mut out = [0u8; MAX_FRAME];
    let mut longest = None;
    for n in (MAX_PAYLOAD - 32)..=MAX_PAYLOAD {
        let text = "y".repeat(n);
        let msg = KernelMsg::Log(Log {
            ts_us: u64::MAX,
            level: LogLevel::Debug,
            text: &text,
        });
        if let Ok(frame) = encode_frame(&msg, &mut out) {
            longest = Some(frame.len());
        }
    }
    let len = longest.expect("some payload near MAX_PAYLOAD encodes");
    assert!(len <= MAX_FRAME);
}

#[test]
fn encoding_into_a_too_small_buffer_is_refused_not_truncated() {
    let frame = frame_of(&HostMsg::Ping { nonce: u32::MAX });
    // One byte short: the terminator does not fit.
    let mut out = vec![0u8; frame.len() - 1];
    assert_eq!(
        encode_frame(&HostMsg::Ping { nonce: u32::MAX }, &mut out),
        Err(FrameError::TooLong)
    );
}
