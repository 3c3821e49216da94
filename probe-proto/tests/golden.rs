//! Golden bytes: these pin the wire format documented in the crate docs.

use probe_proto::{
    CheckEnd, EventBatch, FrameDecoder, FrameOwner, HeapBlock, HostMsg, KernelLeak, KernelMsg,
    LeakScanEnd, LeakScanStatus, OWNER_RUNS_BATCH, OwnerMapEnd, OwnerRun, OwnerRuns,
    PROTOCOL_VERSION, ProcessHeap, ProcessListEnd, PtRange, Region, Version, VmaKind, encode_frame,
    frame::MAX_FRAME,
};

/// The payload bytes of `msg`: its variant index, then its fields.
fn enc(msg: &impl serde::Serialize) -> Vec<u8> {
    postcard::to_allocvec(msg).unwrap()
}

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
fn protocol_version_is_2_1() {
    assert_eq!(PROTOCOL_VERSION, Version { major: 2, minor: 1 });
}

/// 2.0's event batch: variant 41, then the body as a length-prefixed byte
/// string, unchanged.
#[test]
fn golden_event_batch_bytes() {
    let msg = KernelMsg::EventBatch(EventBatch {
        body: vec![0x01, 0x00, 0x00, 0x05].into(),
    });
    assert_eq!(enc(&msg), [0x29, 0x04, 0x01, 0x00, 0x00, 0x05]);
}

/// The 1.1 commands are appended after `Ping`: their variant indices are
/// part of the wire format.
#[test]
fn golden_1_1_host_msg_bytes() {
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
        enc(&msg),
        [0x13, 0x00, 0x01, 0x80, 0x20, 0x30, 0x01, 0xac, 0x02]
    );
}

/// The 1.2 command: variant 5, then the pid zigzag-encoded, so "all"
/// (`-1`) is the single byte `01`.
#[test]
fn golden_1_2_host_msg_bytes() {
    assert_eq!(enc(&HostMsg::Processes { pid: -1 }), [0x05, 0x01]);
    assert_eq!(enc(&HostMsg::Processes { pid: 0 }), [0x05, 0x00]);
    assert_eq!(enc(&HostMsg::Processes { pid: 300 }), [0x05, 0xd8, 0x04]);
}

/// 1.2 kernel messages, byte by byte: variants 25 and 28.
#[test]
fn golden_1_2_kernel_msg_bytes() {
    let heap = KernelMsg::ProcessHeap(ProcessHeap {
        pid: 3,
        heap_id: 7,
        start: 0x1000,
        heap_size: 65_536,
        heap_used: 600,
        heap_free: 64_936,
        used_blocks: 3,
        largest_free: 300,
    });
    assert_eq!(
        enc(&heap),
        [
            0x19, 0x03, 0x07, 0x80, 0x20, 0x80, 0x80, 0x04, 0xd8, 0x04, 0xa8, 0xfb, 0x03, 0x03,
            0xac, 0x02
        ]
    );
    let end = KernelMsg::ProcessListEnd(ProcessListEnd {
        ts_us: 1,
        total_programs: 2,
        complete: true,
    });
    assert_eq!(enc(&end), [0x1c, 0x01, 0x02, 0x01]);
}

/// The 1.3 command: variant 6, then the pid.
#[test]
fn golden_1_3_host_msg_bytes() {
    assert_eq!(enc(&HostMsg::PtDump { pid: 0 }), [0x06, 0x00]);
    assert_eq!(enc(&HostMsg::PtDump { pid: 300 }), [0x06, 0xac, 0x02]);
    assert_eq!(enc(&HostMsg::SetLogLevel { level: 3 }), [0x07, 0x03]);
    assert_eq!(enc(&HostMsg::SetEvents { classes: 31 }), [0x08, 0x1f]);
    assert_eq!(enc(&HostMsg::Leaks { pid: -1 }), [0x09, 0x01]);
}

/// 1.3 kernel messages, byte by byte: a page-table range (variant 31) with
/// its region a VMA kind (variant 8, then `Heap`, kind 2), and a check's end
/// (variant 35).
#[test]
fn golden_1_3_kernel_msg_bytes() {
    let range = KernelMsg::PtRange(PtRange {
        space: 3,
        start: 0x40_0000,
        end: 0x40_2000,
        phys: 0x1000,
        page_size: 4096,
        flags: 0b110,
        pages: 2,
        dirty_pages: 1,
        region: Region::Vma(VmaKind::Heap),
    });
    assert_eq!(
        enc(&range),
        [
            0x1f, 0x03, 0x80, 0x80, 0x80, 0x02, 0x80, 0xc0, 0x80, 0x02, 0x80, 0x20, 0x80, 0x20,
            0x06, 0x02, 0x01, 0x08, 0x02
        ]
    );
    let end = KernelMsg::CheckEnd(CheckEnd {
        ts_us: 1,
        consistent: true,
        frames: 2,
        spaces: 3,
        mappings: 4,
        findings: 0,
        duration_us: 5,
    });
    assert_eq!(enc(&end), [0x23, 0x01, 0x01, 0x02, 0x03, 0x04, 0x00, 0x05]);
}

/// The 1.4 leak scan, byte by byte: the command (variant 10, then the age)
/// and its end (variant 40; the status `Done` is variant 0).
#[test]
fn golden_1_4_leak_scan_bytes() {
    assert_eq!(
        enc(&HostMsg::LeakScan { min_age_ms: 1000 }),
        [0x0a, 0xe8, 0x07]
    );
    let end = KernelMsg::LeakScanEnd(LeakScanEnd {
        ts_us: 1,
        status: LeakScanStatus::Done,
        min_age_ms: 2,
        blocks: 3,
        untraced: 0,
        scanned_bytes: 4,
        duration_us: 5,
        leaks: 6,
        confirmed: 7,
    });
    assert_eq!(
        enc(&end),
        [0x28, 0x01, 0x00, 0x02, 0x03, 0x00, 0x04, 0x05, 0x06, 0x07]
    );
    // A leak: variant 39, three varints, 8 stack varints, 16 raw bytes,
    // the flag.
    let mut leak = KernelLeak {
        addr: 1,
        size: 2,
        age_ms: 3,
        confirmed: true,
        ..KernelLeak::default()
    };
    leak.stack[0] = 4;
    leak.first_bytes[0] = 0xab;
    let bytes = enc(&KernelMsg::KernelLeak(leak));
    assert_eq!(bytes.len(), 1 + 3 + 8 + 16 + 1);
    assert_eq!(&bytes[..6], [0x27, 0x01, 0x02, 0x03, 0x04, 0x00]);
    assert_eq!(bytes[12], 0xab);
    assert_eq!(bytes[28], 0x01);
}

/// The 2.1 owner map, byte by byte: the command (variant 11, two varints),
/// a batch of runs (variant 42: first frame, run count, then each run's
/// optional owner and length) and the end (variant 43).
#[test]
fn golden_2_1_owner_map_bytes() {
    assert_eq!(
        enc(&HostMsg::OwnerMap {
            first_frame: 0,
            nr_frames: 300
        }),
        [0x0b, 0x00, 0xac, 0x02]
    );
    let runs = [
        // 256 frames reserved: Some (01), Reserved (variant 1), 256.
        OwnerRun {
            owner: Some(FrameOwner::Reserved),
            frames: 256,
        },
        // 5 frames of pid 7: Some, Process (variant 8), pid 7, 5.
        OwnerRun {
            owner: Some(FrameOwner::Process(7)),
            frames: 5,
        },
        // 1000 free frames: None (00), 1000.
        OwnerRun {
            owner: None,
            frames: 1000,
        },
    ];
    let msg = KernelMsg::OwnerRuns(OwnerRuns {
        first_frame: 0x100,
        runs: (&runs[..]).into(),
    });
    assert_eq!(
        enc(&msg),
        [
            0x2a, 0x80, 0x02, 0x03, // variant 42, first frame 256, 3 runs
            0x01, 0x01, 0x80, 0x02, // reserved x256
            0x01, 0x08, 0x07, 0x05, // pid7 x5
            0x00, 0xe8, 0x07, // free x1000
        ]
    );
    let end = KernelMsg::OwnerMapEnd(OwnerMapEnd {
        ts_us: 1,
        first_frame: 2,
        nr_frames: 3,
        runs: 4,
        total_frames: 5,
    });
    assert_eq!(enc(&end), [0x2b, 0x01, 0x02, 0x03, 0x04, 0x05]);
}

/// A batch of the widest runs there can be still fits one frame, and a
/// decoded batch owns its runs.
#[test]
fn largest_owner_runs_fit_a_frame_and_round_trip() {
    let widest = OwnerRun {
        owner: Some(FrameOwner::Process(u32::MAX)),
        frames: u64::MAX,
    };
    let runs = vec![widest; OWNER_RUNS_BATCH];
    let msg = KernelMsg::OwnerRuns(OwnerRuns {
        first_frame: u64::MAX,
        runs: (&runs[..]).into(),
    });
    let mut out = [0u8; MAX_FRAME];
    let frame = encode_frame(&msg, &mut out).expect("fits a frame");
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    let mut got = None;
    for &b in frame {
        if let Some(r) = dec.push::<KernelMsg>(b) {
            got = Some(r.unwrap().into_owned());
        }
    }
    assert_eq!(got, Some(msg.into_owned()));
}
