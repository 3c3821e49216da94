//! Compact event batches: every event round-trips exactly, wherever the
//! batches are cut; a lost batch costs only the events up to the next sync
//! point, counted; hostile bodies never panic; golden bytes pin the format.

mod common;

use common::{fault_resolution, frame_owner, heap_event, map_event, page_event, page_fault};
use probe_proto::batch::{
    BatchDecoder, BatchEncoder, BatchError, BatchSkip, MAX_BATCH_BYTES, MAX_RECORD_BYTES, Push,
};
use probe_proto::frame::{MAX_FRAME, MAX_PAYLOAD};
use probe_proto::{
    EventBatch, FaultResolution, FrameDecoder, FrameOwner, HeapEvent, KernelMsg, MapEvent,
    PageEvent, PageFault, encode_frame,
};
use proptest::prelude::*;

/// Any batched event, its fields drawn from anywhere.
fn wild_event() -> impl Strategy<Value = KernelMsg<'static>> {
    prop_oneof![
        heap_event().prop_map(KernelMsg::HeapAlloc),
        heap_event().prop_map(KernelMsg::HeapFree),
        page_event().prop_map(KernelMsg::PageAlloc),
        page_event().prop_map(KernelMsg::PageFree),
        map_event().prop_map(KernelMsg::Map),
        map_event().prop_map(KernelMsg::Unmap),
        page_fault().prop_map(KernelMsg::PageFault),
    ]
}

/// A batched event whose fields come from small pools, as a kernel's do,
/// so that the short forms (same caller, same heap, predicted address) are
/// taken as often as the long ones.
fn tame_event() -> impl Strategy<Value = KernelMsg<'static>> {
    let caller = prop_oneof![
        Just(0u64),
        Just(0xffff_ffff_8010_2030),
        Just(0x40_07c1),
        any::<u64>()
    ];
    let addr = prop_oneof![
        (0u64..64).prop_map(|i| 0x2000_0000_0000 + i * 16),
        (0u64..64).prop_map(|i| 0x70_0000 + i * 4096),
        any::<u64>()
    ];
    let small = prop_oneof![Just(0u64), Just(1), Just(64), Just(96), any::<u64>()];
    let heap = (
        (0u32..3, 0u32..2),
        addr.clone(),
        small.clone(),
        prop_oneof![Just(0u32), Just(16), any::<u32>()],
        small.clone(),
        caller.clone(),
    )
        .prop_map(
            |((pid, heap_id), addr, size, align, key, caller)| HeapEvent {
                ts_us: 0,
                pid,
                heap_id,
                addr,
                size,
                align,
                key,
                caller,
            },
        )
        .boxed();
    let page = (
        addr.clone(),
        prop_oneof![Just(1u32), any::<u32>()],
        frame_owner(),
        caller.clone(),
    )
        .prop_map(|(addr, count, owner, caller)| PageEvent {
            ts_us: 0,
            addr,
            count,
            owner,
            caller,
        })
        .boxed();
    let map = (
        prop_oneof![Just(0x60_3000u64), Just(0x1000), any::<u64>()],
        addr.clone(),
        addr.clone(),
        prop_oneof![Just(4096u64), Just(2 << 20), any::<u64>()],
        prop_oneof![Just(0x8000_0000_0000_0007u64), Just(3), any::<u64>()],
        caller.clone(),
    )
        .prop_map(|(space, virt, phys, size, flags, caller)| MapEvent {
            ts_us: 0,
            space,
            virt,
            phys,
            size,
            flags,
            caller,
        })
        .boxed();
    let fault = (
        0u32..3,
        addr.clone(),
        prop_oneof![Just(6u64), any::<u64>()],
        caller,
        fault_resolution(),
        (addr.clone(), addr, prop_oneof![Just(35u32), any::<u32>()]),
    )
        .prop_map(
            |(pid, addr, error_code, rip, resolution, (vs, ve, vf))| PageFault {
                ts_us: 0,
                pid,
                addr,
                error_code,
                rip,
                resolution,
                vma_start: vs,
                vma_end: ve,
                vma_flags: vf,
            },
        );
    prop_oneof![
        heap.clone().prop_map(KernelMsg::HeapAlloc),
        heap.prop_map(KernelMsg::HeapFree),
        page.clone().prop_map(KernelMsg::PageAlloc),
        page.prop_map(KernelMsg::PageFree),
        map.clone().prop_map(KernelMsg::Map),
        map.prop_map(KernelMsg::Unmap),
        fault.prop_map(KernelMsg::PageFault),
    ]
}

/// Sets an event's timestamp.
fn stamp(msg: &mut KernelMsg<'_>, ts: u64) {
    match msg {
        KernelMsg::HeapAlloc(e) | KernelMsg::HeapFree(e) => e.ts_us = ts,
        KernelMsg::PageAlloc(e) | KernelMsg::PageFree(e) => e.ts_us = ts,
        KernelMsg::Map(e) | KernelMsg::Unmap(e) => e.ts_us = ts,
        KernelMsg::PageFault(e) => e.ts_us = ts,
        _ => unreachable!("not a batched event"),
    }
}

/// Events stamped with non-decreasing times from `gaps`.
fn timed(
    events: impl Strategy<Value = Vec<KernelMsg<'static>>>,
) -> impl Strategy<Value = Vec<KernelMsg<'static>>> {
    events.prop_flat_map(|events| {
        let n = events.len();
        (
            Just(events),
            any::<u64>(),
            proptest::collection::vec(
                prop_oneof![0u64..200, 0u64..100_000, any::<u32>().prop_map(u64::from)],
                n,
            ),
        )
            .prop_map(|(mut events, start, gaps)| {
                let mut t = start >> 8;
                for (e, gap) in events.iter_mut().zip(gaps) {
                    t = t.saturating_add(gap);
                    stamp(e, t);
                }
                events
            })
    })
}

/// A batch boundary or sync request before each event.
#[derive(Debug, Clone, Copy)]
enum Cut {
    None,
    Batch,
    Sync,
}

fn cut() -> impl Strategy<Value = Cut> {
    prop_oneof![6 => Just(Cut::None), 2 => Just(Cut::Batch), 1 => Just(Cut::Sync)]
}

/// The bodies of the batches `events` make with `cuts` (a batch also ends
/// when full), and the events of each.
fn encode(events: &[KernelMsg<'static>], cuts: &[Cut]) -> Vec<(Vec<u8>, Vec<KernelMsg<'static>>)> {
    let mut enc = Box::new(BatchEncoder::new());
    let mut out = Vec::new();
    let mut pending = Vec::new();
    let mut close = |enc: &mut BatchEncoder, pending: &mut Vec<KernelMsg<'static>>| {
        if let Some(body) = enc.finish() {
            assert!(body.len() <= MAX_BATCH_BYTES);
            out.push((body.to_vec(), std::mem::take(pending)));
        }
    };
    for (e, c) in events
        .iter()
        .zip(cuts.iter().chain(std::iter::repeat(&Cut::None)))
    {
        match c {
            Cut::None => {}
            Cut::Batch => close(&mut enc, &mut pending),
            Cut::Sync => {
                close(&mut enc, &mut pending);
                enc.request_sync();
            }
        }
        let before = enc.record_bytes();
        match enc.push(e) {
            Push::Added => {}
            Push::Full => {
                close(&mut enc, &mut pending);
                assert_eq!(enc.push(e), Push::Added);
            }
            Push::NotBatched => panic!("{e:?} is batched"),
        }
        let added = enc.record_bytes() - if enc.events() == 1 { 0 } else { before };
        assert!(added <= MAX_RECORD_BYTES, "{added} bytes for {e:?}");
        pending.push(e.clone());
    }
    close(&mut enc, &mut pending);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn any_events_round_trip_exactly_wherever_the_batches_are_cut(
        events in timed(proptest::collection::vec(prop_oneof![tame_event(), wild_event()], 1..300)),
        cuts in proptest::collection::vec(cut(), 0..300),
    ) {
        let batches = encode(&events, &cuts);
        let mut dec = BatchDecoder::new();
        let mut got = Vec::new();
        for (body, _) in &batches {
            got.extend(dec.decode(body).expect("an unbroken stream decodes"));
        }
        prop_assert_eq!(got, events);
        prop_assert_eq!(dec.stats().skipped_batches, 0);
    }

    #[test]
    fn a_lost_batch_costs_the_events_up_to_the_next_sync_point_and_they_are_counted(
        events in timed(proptest::collection::vec(tame_event(), 1..300)),
        cuts in proptest::collection::vec(cut(), 0..300),
        lost in any::<proptest::sample::Index>(),
    ) {
        let batches = encode(&events, &cuts);
        let lost = lost.index(batches.len());
        let mut dec = BatchDecoder::new();
        let mut got = Vec::new();
        let mut want = Vec::new();
        let mut skipped = 0u64;
        let mut synced = true;
        for (i, (body, evs)) in batches.iter().enumerate() {
            if i == lost {
                synced = false;
                continue;
            }
            let sync = body[0] & 1 != 0;
            if sync {
                synced = true;
            }
            match dec.decode(body) {
                Ok(e) => {
                    prop_assert!(synced, "batch {i} decoded without a sync point after the loss");
                    got.extend(e);
                    want.extend(evs.iter().cloned());
                }
                Err(BatchSkip::Gap { events, .. } | BatchSkip::NotSynced { events }) => {
                    prop_assert!(!synced, "batch {i} skipped though synced");
                    prop_assert_eq!(events, evs.len() as u64);
                    skipped += events;
                }
                Err(e) => prop_assert!(false, "{:?}", e),
            }
        }
        prop_assert_eq!(got, want);
        prop_assert_eq!(dec.stats().skipped_events, skipped);
    }

    #[test]
    fn a_host_that_joins_late_decodes_from_the_first_sync_point(
        events in timed(proptest::collection::vec(tame_event(), 1..200)),
        cuts in proptest::collection::vec(cut(), 0..200),
        join in any::<proptest::sample::Index>(),
    ) {
        let batches = encode(&events, &cuts);
        let join = join.index(batches.len());
        let mut dec = BatchDecoder::new();
        let first_sync = batches[join..].iter().position(|(b, _)| b[0] & 1 != 0).map(|p| p + join);
        for (i, (body, evs)) in batches.iter().enumerate().skip(join) {
            let r = dec.decode(body);
            if first_sync.is_some_and(|s| i >= s) {
                prop_assert_eq!(r.as_ref(), Ok(evs));
            } else {
                prop_assert_eq!(r, Err(BatchSkip::NotSynced { events: evs.len() as u64 }));
            }
        }
    }

    #[test]
    fn hostile_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..1200)) {
        let mut dec = BatchDecoder::new();
        let mut sync = body.clone();
        if let Some(b) = sync.first_mut() {
            *b = 1;
        }
        let _ = dec.decode(&sync);
        let _ = dec.decode(&body);
    }

    #[test]
    fn damaged_batches_never_panic_and_the_next_sync_point_recovers(
        events in timed(proptest::collection::vec(tame_event(), 1..100)),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let batches = encode(&events, &[]);
        let mut dec = BatchDecoder::new();
        for (body, _) in &batches {
            let mut bad = body.clone();
            for (i, x) in &flips {
                let i = i.index(bad.len());
                bad[i] ^= x;
            }
            let _ = dec.decode(&bad);
        }
        // The same stream sent again from a sync point decodes exactly.
        let again = encode(&events, &[]);
        let mut got = Vec::new();
        for (body, _) in &again {
            got.extend(dec.decode(body).expect("a sync point recovers"));
        }
        prop_assert_eq!(got, events);
    }
}

/// A full batch in its frame stays inside the frame limits.
#[test]
fn a_full_batch_fits_a_frame() {
    let body = vec![0xffu8; MAX_BATCH_BYTES];
    let msg = KernelMsg::EventBatch(EventBatch { body: body.into() });
    assert!(postcard::to_allocvec(&msg).unwrap().len() <= MAX_PAYLOAD);
    let mut out = [0u8; MAX_FRAME];
    let frame = encode_frame(&msg, &mut out).unwrap().to_vec();
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    let got = frame
        .iter()
        .find_map(|&b| dec.push::<KernelMsg>(b).map(|r| r.map(|m| m.into_owned())));
    assert_eq!(got, Some(Ok(msg)));
}

/// The worked example of the crate docs, byte by byte.
#[test]
fn golden_batch_bytes() {
    let caller = 0xffff_ffff_8010_2030u64;
    let events = [
        KernelMsg::PageAlloc(PageEvent {
            ts_us: 1_000_000,
            addr: 0x70_0000,
            count: 1,
            owner: FrameOwner::Process(3),
            caller,
        }),
        KernelMsg::Map(MapEvent {
            ts_us: 1_000_040,
            space: 0x60_3000,
            virt: 0x7fff_ffff_e000,
            phys: 0x70_0000,
            size: 4096,
            flags: 0x8000_0000_0000_0007,
            caller,
        }),
        KernelMsg::HeapAlloc(HeapEvent {
            ts_us: 1_000_100,
            pid: 3,
            heap_id: 1,
            addr: 0x2000_0000_0040,
            size: 64,
            align: 16,
            key: 1,
            caller: 0x40_07c1,
        }),
        KernelMsg::HeapAlloc(HeapEvent {
            ts_us: 1_000_230,
            pid: 3,
            heap_id: 1,
            addr: 0x2000_0000_0080,
            size: 64,
            align: 16,
            key: 1,
            caller: 0x40_07c1,
        }),
        KernelMsg::PageFault(PageFault {
            ts_us: 1_000_300,
            pid: 3,
            addr: 0x7fff_ffff_dff8,
            error_code: 6,
            rip: 0x40_0006,
            resolution: FaultResolution::Demand,
            vma_start: 0x7fff_ffff_c000,
            vma_end: 0x8000_0000_0000,
            vma_flags: 35,
        }),
    ];
    let batches = encode(&events, &[]);
    assert_eq!(batches.len(), 1);
    let body = &batches[0].0;
    #[rustfmt::skip]
    let want: &[u8] = &[
        // header: sync, seq 0, 5 events, base time 1_000_000 µs
        0x01, 0x00, 0x05, 0xc0, 0x84, 0x3d,
        // define caller slot 0x0b := 0xffffffff80102030 (zigzag of -0x7fefdfd0)
        0x07, 0x0b, 0x9f, 0xff, 0xfe, 0xfe, 0x0f,
        // PageAlloc, COUNT_ONE: dt 0, frame 0x700 units (zigzag + 1),
        // owner Process(3), caller slot 0x0b
        0x0a, 0x00, 0x81, 0x1c, 0x08, 0x03, 0x0b,
        // define space 0x603000: 0x603 units (zigzag + 1)
        0x17, 0x87, 0x18,
        // Map, SIZE_4K | PHYS_SAME: dt 40, virt 0x7fffffffe (units, zigzag
        // + 1), flags rotated left by one (0xf), caller slot 0x0b
        0x4c, 0x28, 0xfd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x0f, 0x0b,
        // define heap: pid 3, heap 1
        0x0f, 0x03, 0x01,
        // define caller slot 0x1d := 0x4007c1
        0x07, 0x1d, 0x82, 0x9f, 0x80, 0x04,
        // HeapAlloc, nothing predicted: dt 60, addr in units of 16
        // (zigzag + 1), size 64, caller slot 0x1d, align 16, key 1
        0x00, 0x3c, 0x89, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0x40, 0x1d, 0x10, 0x01,
        // HeapAlloc, SIZE_SAME | CALLER_SAME | ALIGN_KEY_PREDICTED: dt 130,
        // addr 4 units on (zigzag 8 + 1)
        0x38, 0x82, 0x01, 0x09,
        // define caller slot 0x11 := the fault's rip 0x400006
        0x07, 0x11, 0x8c, 0x80, 0x80, 0x04,
        // PageFault, nothing predicted: dt 70, pid 3, addr (zigzag), rip
        // slot 0x11, VMA start one page below the fault's page, end 4
        // pages on, flags 35, error code 6, resolution demand
        0x06, 0x46, 0x03, 0xf0, 0xff, 0xfe, 0xff, 0xff, 0xff, 0x3f, 0x11,
        0x02, 0x09, 0x23, 0x06, 0x00,
    ];
    assert_eq!(body.as_slice(), want, "{body:02x?}");
    let mut dec = BatchDecoder::new();
    assert_eq!(dec.decode(body).unwrap(), events);
}

#[test]
fn a_body_cut_short_is_truncated_and_a_count_that_lies_is_malformed() {
    let events = [KernelMsg::PageFree(PageEvent {
        ts_us: 5,
        addr: 0x1000,
        count: 1,
        owner: FrameOwner::KernelHeap,
        caller: 0,
    })];
    let body = encode(&events, &[]).remove(0).0;
    for n in 0..body.len() {
        let mut dec = BatchDecoder::new();
        let r = dec.decode(&body[..n]);
        assert!(
            matches!(
                r,
                Err(BatchSkip::Bad(
                    BatchError::Truncated | BatchError::Malformed
                ))
            ),
            "{n}: {r:?}"
        );
    }
    let mut lying = body.clone();
    lying[2] = 2; // two events said, one there
    assert_eq!(
        BatchDecoder::new().decode(&lying),
        Err(BatchSkip::Bad(BatchError::Malformed))
    );
}
