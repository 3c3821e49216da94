//! Property tests: every message of both directions survives encode + decode.

mod common;

use common::{frame_of, host_msg, kernel_msg, kernel_msg_1_1, kernel_msg_1_2};
use probe_proto::{
    EventCounters, ExitReason, FaultResolution, FrameCheck, FrameDecoder, FrameError,
    FrameErrorEvent, FrameErrorKind, FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent,
    HeapErrorKind, HeapEvent, HeapStats, HeapWalkEnd, HostMsg, KernelMsg, Leak, Log, LogLevel,
    MapEvent, MemoryStats, PageEvent, PageFault, ProcState, ProcessEvent, ProcessExit, ProcessHeap,
    ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma, VmaKind, encode_frame,
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

/// The kernel messages a fresh decoder makes of `frame`, owned.
fn decode_kernel_msgs(frame: &[u8]) -> Vec<Result<KernelMsg<'static>, FrameError>> {
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    frame
        .iter()
        .filter_map(|&b| {
            dec.push::<KernelMsg>(b)
                .map(|r| r.map(KernelMsg::into_owned))
        })
        .collect()
}

/// The variant index (the first payload byte) of each of `msgs`.
fn variant_indices(msgs: &[KernelMsg<'_>]) -> Vec<u8> {
    msgs.iter()
        .map(|m| postcard::to_allocvec(m).unwrap()[0])
        .collect()
}

/// Asserts that each of `msgs` has a payload within `MAX_PAYLOAD` and a
/// frame within `MAX_FRAME` that decodes back to it.
fn assert_each_fits_and_round_trips(msgs: Vec<KernelMsg<'static>>) {
    let mut out = [0u8; MAX_FRAME];
    for msg in msgs {
        let payload = postcard::to_allocvec(&msg).unwrap();
        assert!(
            payload.len() <= MAX_PAYLOAD,
            "{msg:?}: payload of {} bytes",
            payload.len()
        );
        let frame = encode_frame(&msg, &mut out).unwrap_or_else(|e| panic!("{msg:?}: {e:?}"));
        assert_single_terminator(frame);
        assert_eq!(decode_kernel_msgs(frame), vec![Ok(msg)]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_kernel_msg_round_trips_through_one_frame(msg in kernel_msg()) {
        let frame = frame_of(&msg);
        assert_single_terminator(&frame);

        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let (last, body) = frame.split_last().unwrap();
        for &b in body {
            prop_assert!(dec.push::<KernelMsg>(b).is_none(), "a message before the terminator");
        }
        let got = match dec.push::<KernelMsg>(*last) {
            Some(Ok(m)) => m.into_owned(),
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
    fn every_1_1_kernel_msg_round_trips_and_is_no_larger_than_its_largest_form(
        msg in kernel_msg_1_1(),
    ) {
        let wire = &msg;
        let payload = postcard::to_allocvec(wire).unwrap();
        let largest = largest_1_1_kernel_msgs()
            .into_iter()
            .map(|m| postcard::to_allocvec(&m).unwrap())
            .find(|p| p[0] == payload[0])
            .expect("a largest form for every 1.1 variant");
        prop_assert!(payload.len() <= largest.len(), "{wire:?} outgrows its largest form");

        let frame = frame_of(wire);
        assert_single_terminator(&frame);
        prop_assert_eq!(decode_kernel_msgs(&frame), vec![Ok(msg)]);
    }

    #[test]
    fn every_1_2_kernel_msg_round_trips_and_its_fixed_fields_are_no_larger_than_its_largest_form(
        msg in kernel_msg_1_2(),
    ) {
        // Names here are arbitrary (up to 64 chars, 256 bytes); the largest
        // forms carry the kernel's longest name. Everything else must fit in
        // what the largest form gives it.
        let wire = &msg;
        let payload = postcard::to_allocvec(wire).unwrap();
        let largest = largest_1_2_kernel_msgs()
            .into_iter()
            .find(|m| postcard::to_allocvec(m).unwrap()[0] == payload[0])
            .expect("a largest form for every 1.2 variant");
        let largest_payload = postcard::to_allocvec(&largest).unwrap();
        prop_assert!(
            payload.len() - string_bytes(wire) <= largest_payload.len() - string_bytes(&largest),
            "{wire:?} outgrows its largest form"
        );

        let frame = frame_of(wire);
        assert_single_terminator(&frame);
        prop_assert_eq!(decode_kernel_msgs(&frame), vec![Ok(msg)]);
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
            stream.extend(frame_of(m));
        }
        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let mut got = Vec::new();
        for &b in &stream {
            match dec.push::<KernelMsg>(b) {
                Some(Ok(m)) => got.push(m.into_owned()),
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
        text: text.as_str().into(),
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
            text: text.as_str().into(),
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

/// Every field at its widest: varints of `u64::MAX` / `u32::MAX` take the
/// most bytes, and each enum takes its variant with the largest payload.
fn largest_heap_stats() -> HeapStats {
    HeapStats {
        pid: u32::MAX,
        heap_id: u32::MAX,
        region_bytes: u64::MAX,
        max_bytes: u64::MAX,
        used_bytes: u64::MAX,
        free_bytes: u64::MAX,
        overhead_bytes: u64::MAX,
        total_blocks: u64::MAX,
        used_blocks: u64::MAX,
        free_blocks: u64::MAX,
        largest_free: u64::MAX,
    }
}

/// The largest form of each kernel message added in 1.1, in variant order.
fn largest_1_1_kernel_msgs() -> Vec<KernelMsg<'static>> {
    const M: u64 = u64::MAX;
    let page = PageEvent {
        ts_us: M,
        addr: M,
        count: u32::MAX,
        owner: FrameOwner::Process(u32::MAX),
        caller: M,
    };
    let map = MapEvent {
        ts_us: M,
        space: M,
        virt: M,
        phys: M,
        size: M,
        flags: M,
        caller: M,
    };
    let heap = HeapEvent {
        ts_us: M,
        pid: u32::MAX,
        heap_id: u32::MAX,
        addr: M,
        size: M,
        align: u32::MAX,
        key: M,
        caller: M,
    };
    let red_zone = HeapErrorKind::RedZoneOverflow { offset: u32::MAX };
    vec![
        KernelMsg::MemoryStats(MemoryStats {
            ts_us: M,
            total_frames: M,
            free_frames: M,
            usage: FrameUsage {
                free: M,
                unusable: M,
                reserved: M,
                kernel_image: M,
                boot_info: M,
                bitmap: M,
                kernel_heap: M,
                kernel_stack: M,
                page_table: M,
                process: M,
                other: M,
            },
            kernel_heap: largest_heap_stats(),
            counters: EventCounters {
                page_allocs: M,
                page_frees: M,
                maps: M,
                unmaps: M,
                heap_allocs: M,
                heap_frees: M,
                heap_errors: M,
                frame_errors: M,
            },
        }),
        KernelMsg::PageAlloc(page),
        KernelMsg::PageFree(page),
        KernelMsg::Map(map),
        KernelMsg::Unmap(map),
        KernelMsg::HeapAlloc(heap),
        KernelMsg::HeapFree(heap),
        KernelMsg::HeapError(HeapErrorEvent {
            ts_us: M,
            pid: u32::MAX,
            heap_id: u32::MAX,
            kind: red_zone,
            addr: M,
            size: M,
            caller: M,
        }),
        KernelMsg::FrameError(FrameErrorEvent {
            ts_us: M,
            // Fieldless: every kind is one byte; the last has the largest index.
            kind: FrameErrorKind::Other,
            addr: M,
            count: u32::MAX,
            caller: M,
        }),
        KernelMsg::FrameCheck(FrameCheck {
            ts_us: M,
            consistent: true,
            nr_frames: M,
            free_counted: M,
            free_recorded: M,
            total_counted: M,
            total_recorded: M,
            used_without_owner: M,
            free_with_owner: M,
            invalid_owners: M,
            summary_mismatches: M,
            padding_mismatches: M,
        }),
        KernelMsg::HeapCheck(HeapCheck {
            ts_us: M,
            pid: u32::MAX,
            heap_id: u32::MAX,
            ok: true,
            error: Some(red_zone),
            addr: M,
            stats: largest_heap_stats(),
        }),
        KernelMsg::HeapBlock(HeapBlock {
            pid: u32::MAX,
            heap_id: u32::MAX,
            addr: M,
            size: M,
            used: true,
            key: M,
        }),
        KernelMsg::HeapWalkEnd(HeapWalkEnd {
            ts_us: M,
            pid: u32::MAX,
            heap_id: u32::MAX,
            blocks: M,
            complete: true,
        }),
    ]
}

#[test]
fn largest_1_1_kernel_msgs_cover_variants_8_to_20_in_order() {
    let indices = variant_indices(&largest_1_1_kernel_msgs());
    assert_eq!(indices, (8..=20).collect::<Vec<u8>>());
}

#[test]
fn largest_1_1_kernel_msgs_fit_max_payload_and_max_frame() {
    assert_each_fits_and_round_trips(largest_1_1_kernel_msgs());
}

#[test]
fn largest_1_1_host_msgs_fit_max_payload_and_max_frame() {
    let mut out = [0u8; MAX_FRAME];
    for msg in [
        HostMsg::Snapshot,
        HostMsg::Check,
        HostMsg::HeapWalk {
            pid: u32::MAX,
            heap_id: u32::MAX,
        },
    ] {
        let payload = postcard::to_allocvec(&msg).unwrap();
        assert!(payload.len() <= MAX_PAYLOAD, "{msg:?}");
        let frame = encode_frame(&msg, &mut out).unwrap();
        assert_single_terminator(frame);
    }
}

/// The kernel's longest program name (`sysabi::MAX_NAME_LEN`, 32 bytes).
const LONGEST_NAME: &str = "memtest-with-a-32-byte-long-name";

/// Bytes a 1.2 message spends on its name: the varint length and the UTF-8.
fn string_bytes(msg: &KernelMsg<'_>) -> usize {
    let name = match msg {
        KernelMsg::ProcessSpawn(e) | KernelMsg::ProcessRename(e) => &e.name,
        KernelMsg::ProcessInfo(i) => &i.name,
        _ => return 0,
    };
    postcard::to_allocvec(name).unwrap().len()
}

fn largest_process_event() -> ProcessEvent<'static> {
    ProcessEvent {
        ts_us: u64::MAX,
        pid: u32::MAX,
        parent: u32::MAX,
        name: LONGEST_NAME.into(),
    }
}

/// The largest form of each kernel message added in 1.2, in variant order.
fn largest_1_2_kernel_msgs() -> Vec<KernelMsg<'static>> {
    const M: u64 = u64::MAX;
    const W: u32 = u32::MAX;
    vec![
        KernelMsg::ProcessSpawn(largest_process_event()),
        KernelMsg::ProcessExit(ProcessExit {
            ts_us: M,
            pid: W,
            // Zigzag makes i64::MIN the widest varint; Killed's u8 is one byte.
            reason: ExitReason::Exited(i64::MIN),
            leaked_blocks: M,
            leaked_bytes: M,
            frames_freed: M,
        }),
        KernelMsg::ProcessRename(largest_process_event()),
        KernelMsg::ProcessInfo(ProcessInfo {
            ts_us: M,
            pid: W,
            parent: W,
            name: LONGEST_NAME.into(),
            // Fieldless: every state is one byte.
            state: ProcState::Kernel,
            nr_heaps: W,
            nr_sheds: W,
            nr_vmas: W,
            total_heap_size: M,
            total_heap_used: M,
            total_heap_free: M,
            total_shed_size: M,
            resident_frames: M,
            page_table_frames: M,
        }),
        KernelMsg::ProcessHeap(ProcessHeap {
            pid: W,
            heap_id: W,
            start: M,
            heap_size: M,
            heap_used: M,
            heap_free: M,
            used_blocks: M,
            largest_free: M,
        }),
        KernelMsg::ProcessShed(ProcessShed {
            pid: W,
            shed_id: W,
            start: M,
            shed_size: M,
        }),
        KernelMsg::ProcessVma(ProcessVma {
            pid: W,
            start: M,
            end: M,
            flags: W,
            // Fieldless: every kind is one byte; the last has the largest index.
            kind: VmaKind::Shed,
            resident_pages: M,
        }),
        KernelMsg::ProcessListEnd(ProcessListEnd {
            ts_us: M,
            total_programs: W,
            complete: true,
        }),
        KernelMsg::PageFault(PageFault {
            ts_us: M,
            pid: W,
            addr: M,
            error_code: M,
            rip: M,
            resolution: FaultResolution::Killed,
            vma_start: M,
            vma_end: M,
            vma_flags: W,
        }),
        KernelMsg::Leak(Leak {
            ts_us: M,
            pid: W,
            heap_id: W,
            key: M,
            blocks: M,
            bytes: M,
            first_addr: M,
            oldest_age_ms: Some(M),
        }),
    ]
}

#[test]
fn longest_name_is_the_kernels_limit() {
    assert_eq!(LONGEST_NAME.len(), 32);
}

#[test]
fn largest_1_2_kernel_msgs_cover_variants_21_to_30_in_order() {
    let indices = variant_indices(&largest_1_2_kernel_msgs());
    assert_eq!(indices, (21..=30).collect::<Vec<u8>>());
}

#[test]
fn largest_1_2_kernel_msgs_fit_max_payload_and_max_frame() {
    assert_each_fits_and_round_trips(largest_1_2_kernel_msgs());
}

/// The name is the only unbounded field of a 1.2 message: even at its
/// largest, a `ProcessInfo` leaves room for far longer names than the
/// kernel allows, so a future longer limit does not silently overflow.
#[test]
fn largest_1_2_kernel_msgs_leave_room_for_a_name_of_512_bytes() {
    let name = "n".repeat(512);
    let mut out = [0u8; MAX_FRAME];
    for msg in largest_1_2_kernel_msgs() {
        let msg = match msg {
            KernelMsg::ProcessSpawn(e) => KernelMsg::ProcessSpawn(ProcessEvent {
                name: name.as_str().into(),
                ..e
            }),
            KernelMsg::ProcessRename(e) => KernelMsg::ProcessRename(ProcessEvent {
                name: name.as_str().into(),
                ..e
            }),
            KernelMsg::ProcessInfo(i) => KernelMsg::ProcessInfo(ProcessInfo {
                name: name.as_str().into(),
                ..i
            }),
            _ => continue,
        };
        let frame = encode_frame(&msg, &mut out).unwrap_or_else(|e| panic!("{msg:?}: {e:?}"));
        assert_single_terminator(frame);
    }
}

#[test]
fn largest_1_2_host_msgs_fit_max_payload_and_max_frame() {
    let mut out = [0u8; MAX_FRAME];
    for pid in [-1, i64::MIN, i64::MAX] {
        let msg = HostMsg::Processes { pid };
        let payload = postcard::to_allocvec(&msg).unwrap();
        assert!(payload.len() <= MAX_PAYLOAD, "{msg:?}");
        let frame = encode_frame(&msg, &mut out).unwrap();
        assert_single_terminator(frame);
        let mut dec = FrameDecoder::<MAX_FRAME>::new();
        let got: Vec<_> = frame
            .iter()
            .filter_map(|&b| dec.push::<HostMsg>(b))
            .collect();
        assert_eq!(got, vec![Ok(msg)]);
    }
}
