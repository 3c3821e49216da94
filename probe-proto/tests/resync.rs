//! Property tests: a decoder fed damaged or random bytes never panics,
//! accounts for every frame it was handed, and is back in step after the next
//! `0x00`.

mod common;

use std::collections::BTreeMap;

use common::{frame_of, kernel_msg};
use probe_proto::{
    DecodeStats, FrameDecoder, FrameError, HostMsg, KernelMsg, Log, LogLevel, Pong,
    frame::MAX_FRAME,
};
use proptest::{prelude::*, sample::Index};

/// What happened to one frame on its way through the link.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// XOR one byte (the terminator included) with a non-zero mask.
    Flip {
        at: Index,
        mask: u8,
    },
    /// Garbage inside the frame, before its terminator.
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    /// Only a prefix arrives: at least the terminator is lost.
    Truncate {
        keep: Index,
    },
    /// One byte (possibly the terminator) is lost.
    Delete {
        at: Index,
    },
    /// A spurious `0x00` inside the frame, splitting it.
    Zero {
        at: Index,
    },
}

impl Damage {
    fn apply(&self, frame: &mut Vec<u8>) {
        let len = frame.len();
        // Positions 1..len: strictly inside the frame, before the terminator,
        // so the damage really touches it.
        let inside = |at: &Index| 1 + at.index(len - 1);
        match self {
            Damage::None => {}
            Damage::Flip { at, mask } => frame[at.index(len)] ^= mask,
            Damage::Insert { at, bytes } => {
                let i = inside(at);
                frame.splice(i..i, bytes.iter().copied());
            }
            Damage::Truncate { keep } => frame.truncate(keep.index(len)),
            Damage::Delete { at } => {
                frame.remove(at.index(len));
            }
            Damage::Zero { at } => frame.insert(inside(at), 0),
        }
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        // Half the frames arrive intact so that resync has something to prove.
        6 => Just(Damage::None),
        1 => (any::<Index>(), 1u8..=255).prop_map(|(at, mask)| Damage::Flip { at, mask }),
        1 => (any::<Index>(), proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Damage::Insert { at, bytes }),
        1 => any::<Index>().prop_map(|keep| Damage::Truncate { keep }),
        1 => any::<Index>().prop_map(|at| Damage::Delete { at }),
        1 => any::<Index>().prop_map(|at| Damage::Zero { at }),
    ]
}

/// Bytes between frames: usually none, sometimes noise (which may or may not
/// contain a `0x00`).
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 1..48),
        1 => proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 1..8),
    ]
}

/// One frame as it was placed in the stream.
struct Placed {
    msg: KernelMsg<'static>,
    /// Index of the frame's first byte in the stream.
    start: usize,
    /// Encoded length, terminator included, before any damage.
    frame_len: usize,
    intact: bool,
}

/// Builds a stream from `(garbage before, message, damage)` segments.
fn build_stream(segments: &[(Vec<u8>, KernelMsg<'static>, Damage)]) -> (Vec<u8>, Vec<Placed>) {
    let mut stream = Vec::new();
    let mut placed = Vec::new();
    for (noise, msg, damage) in segments {
        stream.extend_from_slice(noise);
        let mut frame = frame_of(&msg);
        let frame_len = frame.len();
        damage.apply(&mut frame);
        placed.push(Placed {
            msg: msg.clone(),
            start: stream.len(),
            frame_len,
            intact: matches!(damage, Damage::None),
        });
        stream.extend_from_slice(&frame);
    }
    (stream, placed)
}

/// Everything a decoder produced from a stream.
#[derive(Debug, Default)]
struct Outcome {
    /// Decoded messages keyed by the stream index of their terminator.
    received: BTreeMap<usize, KernelMsg<'static>>,
    errors: BTreeMap<&'static str, u64>,
    results: u64,
    stats: DecodeStats,
}

fn error_name(e: FrameError) -> &'static str {
    match e {
        FrameError::TooLong => "too_long",
        FrameError::Cobs => "cobs",
        FrameError::Crc => "crc",
        FrameError::Message => "message",
    }
}

fn decode_kernel<const N: usize>(stream: &[u8]) -> Outcome {
    let mut dec = FrameDecoder::<N>::new();
    let mut out = Outcome::default();
    for (i, &b) in stream.iter().enumerate() {
        match dec.push::<KernelMsg>(b) {
            Some(Ok(m)) => {
                out.results += 1;
                out.received.insert(i, m.into_owned());
            }
            Some(Err(e)) => {
                out.results += 1;
                *out.errors.entry(error_name(e)).or_default() += 1;
            }
            None => {}
        }
    }
    out.stats = dec.stats();
    out
}

fn decode_host<const N: usize>(stream: &[u8]) -> Outcome {
    let mut dec = FrameDecoder::<N>::new();
    let mut out = Outcome::default();
    for &b in stream {
        match dec.push::<HostMsg>(b) {
            Some(Ok(_)) => out.results += 1,
            Some(Err(e)) => {
                out.results += 1;
                *out.errors.entry(error_name(e)).or_default() += 1;
            }
            None => {}
        }
    }
    out.stats = dec.stats();
    out
}

/// Counts, independently of the decoder, the frames a stream holds: non-empty
/// runs of non-zero bytes closed by a `0x00`, and those longer than `cap`.
fn terminated_runs(stream: &[u8], cap: usize) -> (u64, u64) {
    let (mut runs, mut long, mut run) = (0, 0, 0usize);
    for &b in stream {
        if b != 0 {
            run += 1;
        } else if run > 0 {
            runs += 1;
            long += u64::from(run > cap);
            run = 0;
        }
    }
    (runs, long)
}

/// Checks that every frame handed to the decoder was reported exactly once
/// and lands in the counter that matches the error it returned.
fn assert_accounts_for_every_frame(
    out: &Outcome,
    stream: &[u8],
    cap: usize,
) -> Result<(), TestCaseError> {
    let (runs, long) = terminated_runs(stream, cap);
    let err = |k| out.errors.get(k).copied().unwrap_or(0);
    let s = out.stats;
    prop_assert_eq!(out.results, runs, "one result per terminated frame");
    prop_assert_eq!(s.frames + s.bad(), runs, "counters cover every frame");
    prop_assert_eq!(s.frames, out.results - out.errors.values().sum::<u64>());
    prop_assert_eq!(s.too_long, long, "frames over capacity are too_long");
    prop_assert_eq!(s.too_long, err("too_long"));
    prop_assert_eq!(s.cobs_errors, err("cobs"));
    prop_assert_eq!(s.crc_errors, err("crc"));
    prop_assert_eq!(s.message_errors, err("message"));
    Ok(())
}

/// The resync promise: an untouched frame that starts the stream or follows a
/// `0x00`, and fits the decoder, is received at its own terminator.
fn assert_intact_frames_after_terminator_received(
    out: &Outcome,
    stream: &[u8],
    placed: &[Placed],
    cap: usize,
) -> Result<(), TestCaseError> {
    for p in placed {
        let after_terminator = p.start == 0 || stream[p.start - 1] == 0;
        if p.intact && after_terminator && p.frame_len - 1 <= cap {
            let end = p.start + p.frame_len - 1;
            prop_assert_eq!(
                out.received.get(&end),
                Some(&p.msg),
                "intact frame at {}..={} not received",
                p.start,
                end
            );
        }
    }
    Ok(())
}

/// A decoder small enough that real messages and merged frames overflow it.
const SMALL: usize = 64;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn corrupted_stream_counts_every_frame_and_delivers_every_intact_frame_after_a_terminator(
        segments in proptest::collection::vec((garbage(), kernel_msg(), damage()), 1..20),
        tail in garbage(),
    ) {
        let (mut stream, placed) = build_stream(&segments);
        stream.extend_from_slice(&tail);

        let out = decode_kernel::<MAX_FRAME>(&stream);
        assert_accounts_for_every_frame(&out, &stream, MAX_FRAME)?;
        assert_intact_frames_after_terminator_received(&out, &stream, &placed, MAX_FRAME)?;

        let out = decode_kernel::<SMALL>(&stream);
        assert_accounts_for_every_frame(&out, &stream, SMALL)?;
        assert_intact_frames_after_terminator_received(&out, &stream, &placed, SMALL)?;
    }

    #[test]
    fn pure_garbage_never_panics_and_yields_one_result_per_terminated_run(
        stream in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..4096),
            // Dense in 0x00: many short frames.
            proptest::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..512),
        ],
    ) {
        let out = decode_kernel::<MAX_FRAME>(&stream);
        assert_accounts_for_every_frame(&out, &stream, MAX_FRAME)?;
        let out = decode_kernel::<16>(&stream);
        assert_accounts_for_every_frame(&out, &stream, 16)?;
        let out = decode_host::<MAX_FRAME>(&stream);
        assert_accounts_for_every_frame(&out, &stream, MAX_FRAME)?;
        let out = decode_host::<1>(&stream);
        assert_accounts_for_every_frame(&out, &stream, 1)?;
    }

    #[test]
    fn garbage_without_a_terminator_yields_nothing_and_counts_nothing(
        stream in proptest::collection::vec(1u8..=255, 0..4096),
    ) {
        let out = decode_kernel::<MAX_FRAME>(&stream);
        prop_assert_eq!(out.results, 0);
        prop_assert_eq!(out.stats, DecodeStats::default());
    }

    #[test]
    fn any_garbage_then_a_terminator_leaves_the_decoder_ready_for_the_next_frame(
        noise in proptest::collection::vec(any::<u8>(), 0..4096),
        msg in kernel_msg(),
    ) {
        let mut stream = noise;
        stream.push(0);
        let start = stream.len();
        stream.extend(frame_of(&msg));
        let out = decode_kernel::<MAX_FRAME>(&stream);
        prop_assert_eq!(out.received.get(&(stream.len() - 1)), Some(&msg));
        prop_assert!(out.received.range(start..stream.len() - 1).next().is_none());
    }

    #[test]
    fn frame_longer_than_capacity_is_counted_too_long_and_the_next_frame_decodes(
        msg in kernel_msg(),
    ) {
        let big = frame_of(&msg);
        let next = KernelMsg::Pong(Pong { nonce: 7, ts_us: 1 });
        let mut stream = big.clone();
        stream.extend(frame_of(&next));

        let out = decode_kernel::<SMALL>(&stream);
        if big.len() - 1 > SMALL {
            prop_assert_eq!(out.stats.too_long, 1);
            prop_assert_eq!(out.errors.get("too_long"), Some(&1));
            prop_assert!(!out.received.contains_key(&(big.len() - 1)));
        } else {
            prop_assert_eq!(out.stats.too_long, 0);
            prop_assert_eq!(out.received.get(&(big.len() - 1)), Some(&msg));
        }
        prop_assert_eq!(out.received.get(&(stream.len() - 1)), Some(&next));
    }
}

/// A Log frame of exactly `len` bytes without its terminator.
fn log_frame_of_len(len: usize) -> (KernelMsg<'static>, Vec<u8>) {
    (0..len)
        .map(|n| {
            KernelMsg::Log(Log {
                ts_us: 0,
                level: LogLevel::Info,
                text: "a".repeat(n).into(),
            })
        })
        .map(|m| {
            let f = frame_of(&m);
            (m, f)
        })
        .find(|(_, f)| f.len() - 1 == len)
        .expect("a text length gives this frame length")
}

#[test]
fn frame_exactly_at_capacity_decodes_and_one_byte_more_is_too_long() {
    const CAP: usize = 40;
    let (fits, fits_frame) = log_frame_of_len(CAP);
    let (_, over_frame) = log_frame_of_len(CAP + 1);

    let out = decode_kernel::<CAP>(&fits_frame);
    assert_eq!(out.received.values().collect::<Vec<_>>(), vec![&fits]);
    assert_eq!(out.stats.too_long, 0);

    let mut stream = over_frame;
    stream.extend(&fits_frame);
    let out = decode_kernel::<CAP>(&stream);
    assert_eq!(out.stats.too_long, 1);
    assert_eq!(out.received.values().collect::<Vec<_>>(), vec![&fits]);
}

#[test]
fn frame_with_an_unknown_variant_is_a_message_error_and_the_next_frame_decodes() {
    // A newer peer's variant: postcard writes the variant index as a varint,
    // and KernelMsg has 31 variants (0..=30) since 1.2. A bare index with no
    // fields would also fail for a known variant, so the unknown one carries
    // a plausible payload: it must be refused for its index alone.
    let unknown = frame_of(&(31u32, 0u64, 0u32));
    let log = Log {
        ts_us: 5,
        level: LogLevel::Warn,
        text: "after".into(),
    };
    let mut stream = unknown;
    stream.extend(frame_of(&KernelMsg::Log(log.clone())));

    let out = decode_kernel::<MAX_FRAME>(&stream);
    assert_eq!(out.stats.message_errors, 1);
    assert_eq!(out.stats.frames, 1);
    assert_eq!(
        out.received.values().collect::<Vec<_>>(),
        vec![&KernelMsg::Log(log)]
    );
}

#[test]
fn flipped_byte_is_a_crc_error_not_a_wrong_message() {
    let msg = KernelMsg::Pong(Pong {
        nonce: 0x1234_5678,
        ts_us: 99,
    });
    let frame = frame_of(&msg);
    // Every single-bit flip of a non-code byte must be caught, never decoded
    // as a different message: CRC-16 detects all single-bit errors.
    for i in 1..frame.len() - 1 {
        for bit in 0..8 {
            let mut bad = frame.clone();
            bad[i] ^= 1 << bit;
            if bad[i] == 0 {
                continue; // A split frame, covered by the property tests.
            }
            let out = decode_kernel::<MAX_FRAME>(&bad);
            assert!(
                out.received.is_empty(),
                "flip of bit {bit} at {i} decoded as {:?}",
                out.received
            );
            assert_eq!(out.stats.bad(), 1);
        }
    }
}
