//! Shared test helpers: proptest strategies that reach every variant.
//!
//! Strategies hand out `KernelMsg<'static>` values whose strings are owned
//! (`Cow::Owned`), so a message borrows nothing; a decoded message is
//! compared after [`KernelMsg::into_owned`].
#![allow(dead_code)] // Each test binary uses a different subset.

use std::borrow::Cow;

use probe_proto::{
    EventBatch, EventCounters, Exception, ExitReason, FaultResolution, FrameCheck, FrameErrorEvent,
    FrameErrorKind, FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent, HeapErrorKind,
    HeapEvent, HeapStats, HeapWalkEnd, Heartbeat, Hello, HostMsg, KernelLeak, KernelMsg,
    LEAK_PREVIEW_BYTES, LEAK_STACK_DEPTH, Leak, LeakScanEnd, LeakScanStatus, Log, LogLevel,
    MapEvent, MemKind, MemRegion, MemoryStats, OWNER_RUNS_BATCH, OwnerMapEnd, OwnerRun, OwnerRuns,
    PageEvent, PageFault, Panic, Pong, ProcState, ProcessEvent, ProcessExit, ProcessHeap,
    ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma, Text, Version, VmaKind,
};
use proptest::prelude::*;

/// A strategy for the struct `$ty` that draws each field from its own
/// strategy: `fields!(Pong { nonce: any::<u32>(), ts_us: any::<u64>() })`.
///
/// The field strategies are nested in pairs, `(a, (b, (c, d)))`, and the
/// values taken apart with the same pattern, so a struct may have more
/// fields than proptest's largest tuple strategy (12).
macro_rules! fields {
    ($ty:ident { $($field:ident: $strategy:expr),+ $(,)? }) => {
        fields!(@nest $($strategy),+).prop_map(|fields!(@nest $($field),+)| $ty { $($field),+ })
    };
    (@nest $last:tt) => { $last };
    (@nest $first:tt, $($rest:tt),+) => { ($first, fields!(@nest $($rest),+)) };
}

/// Any string of up to 64 chars: all of Unicode, newlines and NULs included.
///
/// 64 chars of at most 4 UTF-8 bytes each keep the largest message (two
/// strings plus fixed fields) well inside `MAX_PAYLOAD`.
pub fn text() -> impl Strategy<Value = Text<'static>> {
    proptest::collection::vec(any::<char>(), 0..=64)
        .prop_map(|cs| Cow::Owned(cs.into_iter().collect()))
}

pub fn version() -> impl Strategy<Value = Version> {
    fields!(Version {
        major: any::<u16>(),
        minor: any::<u16>(),
    })
}

pub fn mem_kind() -> impl Strategy<Value = MemKind> {
    prop_oneof![
        Just(MemKind::Usable),
        Just(MemKind::Reserved),
        Just(MemKind::AcpiReclaimable),
        Just(MemKind::AcpiNvs),
        Just(MemKind::Unusable),
        any::<u32>().prop_map(MemKind::Other),
    ]
}

pub fn log_level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Error),
        Just(LogLevel::Warn),
        Just(LogLevel::Info),
        Just(LogLevel::Debug),
    ]
}

/// Every [`KernelMsg`] variant with arbitrary field values, each about
/// equally often.
pub fn kernel_msg() -> impl Strategy<Value = KernelMsg<'static>> {
    // Weights are variant counts, so that no variant is starved.
    prop_oneof![
        8 => kernel_msg_1_0(),
        13 => kernel_msg_1_1(),
        10 => kernel_msg_1_2(),
        2 => kernel_msg_1_4(),
        1 => kernel_msg_2_0(),
        2 => kernel_msg_2_1(),
    ]
}

/// The [`KernelMsg`] variants added in protocol 2.1: the owner map.
pub fn kernel_msg_2_1() -> impl Strategy<Value = KernelMsg<'static>> {
    let run = (proptest::option::of(frame_owner()), any::<u64>())
        .prop_map(|(owner, frames)| OwnerRun { owner, frames });
    prop_oneof![
        (
            any::<u64>(),
            proptest::collection::vec(run, 0..=OWNER_RUNS_BATCH)
        )
            .prop_map(|(first_frame, runs)| {
                KernelMsg::OwnerRuns(OwnerRuns {
                    first_frame,
                    runs: Cow::Owned(runs),
                })
            }),
        any::<[u64; 5]>().prop_map(|[ts_us, first_frame, nr_frames, runs, total_frames]| {
            KernelMsg::OwnerMapEnd(OwnerMapEnd {
                ts_us,
                first_frame,
                nr_frames,
                runs,
                total_frames,
            })
        }),
    ]
}

/// The [`KernelMsg`] variant added in protocol 2.0: an event batch (any
/// bytes: the frame carries them unchanged, whatever they decode to).
pub fn kernel_msg_2_0() -> impl Strategy<Value = KernelMsg<'static>> {
    proptest::collection::vec(any::<u8>(), 0..=probe_proto::batch::MAX_BATCH_BYTES)
        .prop_map(|body| KernelMsg::EventBatch(EventBatch { body: body.into() }))
}

/// The [`KernelMsg`] variants added in protocol 1.4: the kernel leak scan.
pub fn kernel_msg_1_4() -> impl Strategy<Value = KernelMsg<'static>> {
    let status = prop_oneof![
        Just(LeakScanStatus::Done),
        Just(LeakScanStatus::Busy),
        Just(LeakScanStatus::NoMemory),
    ];
    prop_oneof![
        (
            any::<[u64; 4]>(),
            any::<[u64; LEAK_STACK_DEPTH]>(),
            any::<[u8; LEAK_PREVIEW_BYTES]>(),
            any::<bool>()
        )
            .prop_map(|([addr, size, age_ms, _], stack, first_bytes, confirmed)| {
                KernelMsg::KernelLeak(KernelLeak {
                    addr,
                    size,
                    age_ms,
                    stack,
                    first_bytes,
                    confirmed,
                })
            }),
        (status, any::<[u64; 5]>(), any::<[u32; 3]>()).prop_map(
            |(
                status,
                [ts_us, blocks, untraced, scanned_bytes, duration_us],
                [min_age_ms, leaks, confirmed],
            )| {
                KernelMsg::LeakScanEnd(LeakScanEnd {
                    ts_us,
                    status,
                    min_age_ms,
                    blocks,
                    untraced,
                    scanned_bytes,
                    duration_us,
                    leaks,
                    confirmed,
                })
            }
        ),
    ]
}

/// The [`KernelMsg`] variants of protocol 1.0.
pub fn kernel_msg_1_0() -> impl Strategy<Value = KernelMsg<'static>> {
    prop_oneof![
        fields!(Hello {
            version: version(),
            build_id: text(),
            mem_total_bytes: any::<u64>(),
            mem_usable_bytes: any::<u64>(),
            nr_regions: any::<u16>(),
            features: any::<u32>(),
            cmdline: text(),
            uptime_us: any::<u64>(),
            tsc_hz: any::<u64>(),
        })
        .prop_map(KernelMsg::Hello),
        fields!(MemRegion {
            index: any::<u16>(),
            start: any::<u64>(),
            len: any::<u64>(),
            kind: mem_kind(),
        })
        .prop_map(KernelMsg::MemRegion),
        fields!(Log {
            ts_us: any::<u64>(),
            level: log_level(),
            text: text(),
        })
        .prop_map(KernelMsg::Log),
        fields!(Heartbeat {
            ts_us: any::<u64>(),
            rx_frames: any::<u64>(),
            rx_bad: any::<u64>(),
            tx_dropped: any::<u64>(),
        })
        .prop_map(KernelMsg::Heartbeat),
        fields!(Exception {
            ts_us: any::<u64>(),
            vector: any::<u8>(),
            error_code: any::<u64>(),
            cr2: any::<u64>(),
            rip: any::<u64>(),
            rsp: any::<u64>(),
        })
        .prop_map(KernelMsg::Exception),
        fields!(Panic {
            ts_us: any::<u64>(),
            message: text(),
            file: text(),
            line: any::<u32>(),
            column: any::<u32>(),
        })
        .prop_map(KernelMsg::Panic),
        fields!(Pong {
            nonce: any::<u32>(),
            ts_us: any::<u64>(),
        })
        .prop_map(KernelMsg::Pong),
        any::<u64>().prop_map(|count| KernelMsg::Dropped { count }),
    ]
}

/// The [`KernelMsg`] variants added in protocol 1.1.
pub fn kernel_msg_1_1() -> impl Strategy<Value = KernelMsg<'static>> {
    prop_oneof![
        memory_stats().prop_map(KernelMsg::MemoryStats),
        page_event().prop_map(KernelMsg::PageAlloc),
        page_event().prop_map(KernelMsg::PageFree),
        map_event().prop_map(KernelMsg::Map),
        map_event().prop_map(KernelMsg::Unmap),
        heap_event().prop_map(KernelMsg::HeapAlloc),
        heap_event().prop_map(KernelMsg::HeapFree),
        heap_error_event().prop_map(KernelMsg::HeapError),
        frame_error_event().prop_map(KernelMsg::FrameError),
        frame_check().prop_map(KernelMsg::FrameCheck),
        heap_check().prop_map(KernelMsg::HeapCheck),
        heap_block().prop_map(KernelMsg::HeapBlock),
        heap_walk_end().prop_map(KernelMsg::HeapWalkEnd),
    ]
}

pub fn frame_owner() -> impl Strategy<Value = FrameOwner> {
    prop_oneof![
        Just(FrameOwner::Unusable),
        Just(FrameOwner::Reserved),
        Just(FrameOwner::KernelImage),
        Just(FrameOwner::BootInfo),
        Just(FrameOwner::Bitmap),
        Just(FrameOwner::KernelHeap),
        Just(FrameOwner::KernelStack),
        Just(FrameOwner::PageTable),
        any::<u32>().prop_map(FrameOwner::Process),
        any::<u8>().prop_map(FrameOwner::Other),
    ]
}

pub fn page_event() -> impl Strategy<Value = PageEvent> {
    fields!(PageEvent {
        ts_us: any::<u64>(),
        addr: any::<u64>(),
        count: any::<u32>(),
        owner: frame_owner(),
        caller: any::<u64>(),
    })
}

pub fn map_event() -> impl Strategy<Value = MapEvent> {
    fields!(MapEvent {
        ts_us: any::<u64>(),
        space: any::<u64>(),
        virt: any::<u64>(),
        phys: any::<u64>(),
        size: prop_oneof![Just(4096u64), Just(2 << 20), Just(1 << 30), any::<u64>()],
        flags: any::<u64>(),
        caller: any::<u64>(),
    })
}

pub fn heap_event() -> impl Strategy<Value = HeapEvent> {
    fields!(HeapEvent {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        addr: any::<u64>(),
        size: any::<u64>(),
        align: any::<u32>(),
        key: any::<u64>(),
        caller: any::<u64>(),
    })
}

pub fn heap_error_kind() -> impl Strategy<Value = HeapErrorKind> {
    prop_oneof![
        Just(HeapErrorKind::OutOfMemory),
        Just(HeapErrorKind::InvalidLayout),
        Just(HeapErrorKind::InvalidPointer),
        Just(HeapErrorKind::DoubleFree),
        Just(HeapErrorKind::CorruptHeader),
        any::<u32>().prop_map(|offset| HeapErrorKind::RedZoneOverflow { offset }),
        Just(HeapErrorKind::Inconsistent),
    ]
}

pub fn heap_error_event() -> impl Strategy<Value = HeapErrorEvent> {
    fields!(HeapErrorEvent {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        kind: heap_error_kind(),
        addr: any::<u64>(),
        size: any::<u64>(),
        caller: any::<u64>(),
    })
}

pub fn frame_error_kind() -> impl Strategy<Value = FrameErrorKind> {
    prop_oneof![
        Just(FrameErrorKind::DoubleFree),
        Just(FrameErrorKind::Reserved),
        Just(FrameErrorKind::OutOfRange),
        Just(FrameErrorKind::Unaligned),
        Just(FrameErrorKind::OutOfMemory),
        Just(FrameErrorKind::InvalidRequest),
        Just(FrameErrorKind::Other),
    ]
}

pub fn frame_error_event() -> impl Strategy<Value = FrameErrorEvent> {
    fields!(FrameErrorEvent {
        ts_us: any::<u64>(),
        kind: frame_error_kind(),
        addr: any::<u64>(),
        count: any::<u32>(),
        caller: any::<u64>(),
    })
}

pub fn frame_usage() -> impl Strategy<Value = FrameUsage> {
    fields!(FrameUsage {
        free: any::<u64>(),
        unusable: any::<u64>(),
        reserved: any::<u64>(),
        kernel_image: any::<u64>(),
        boot_info: any::<u64>(),
        bitmap: any::<u64>(),
        kernel_heap: any::<u64>(),
        kernel_stack: any::<u64>(),
        page_table: any::<u64>(),
        process: any::<u64>(),
        other: any::<u64>(),
    })
}

pub fn heap_stats() -> impl Strategy<Value = HeapStats> {
    fields!(HeapStats {
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        region_bytes: any::<u64>(),
        max_bytes: any::<u64>(),
        used_bytes: any::<u64>(),
        free_bytes: any::<u64>(),
        overhead_bytes: any::<u64>(),
        total_blocks: any::<u64>(),
        used_blocks: any::<u64>(),
        free_blocks: any::<u64>(),
        largest_free: any::<u64>(),
    })
}

pub fn event_counters() -> impl Strategy<Value = EventCounters> {
    fields!(EventCounters {
        page_allocs: any::<u64>(),
        page_frees: any::<u64>(),
        maps: any::<u64>(),
        unmaps: any::<u64>(),
        heap_allocs: any::<u64>(),
        heap_frees: any::<u64>(),
        heap_errors: any::<u64>(),
        frame_errors: any::<u64>(),
    })
}

pub fn memory_stats() -> impl Strategy<Value = MemoryStats> {
    fields!(MemoryStats {
        ts_us: any::<u64>(),
        total_frames: any::<u64>(),
        free_frames: any::<u64>(),
        usage: frame_usage(),
        kernel_heap: heap_stats(),
        counters: event_counters(),
    })
}

pub fn frame_check() -> impl Strategy<Value = FrameCheck> {
    fields!(FrameCheck {
        ts_us: any::<u64>(),
        consistent: any::<bool>(),
        nr_frames: any::<u64>(),
        free_counted: any::<u64>(),
        free_recorded: any::<u64>(),
        total_counted: any::<u64>(),
        total_recorded: any::<u64>(),
        used_without_owner: any::<u64>(),
        free_with_owner: any::<u64>(),
        invalid_owners: any::<u64>(),
        summary_mismatches: any::<u64>(),
        padding_mismatches: any::<u64>(),
    })
}

pub fn heap_check() -> impl Strategy<Value = HeapCheck> {
    fields!(HeapCheck {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        ok: any::<bool>(),
        error: proptest::option::of(heap_error_kind()),
        addr: any::<u64>(),
        stats: heap_stats(),
    })
}

pub fn heap_block() -> impl Strategy<Value = HeapBlock> {
    fields!(HeapBlock {
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        addr: any::<u64>(),
        size: any::<u64>(),
        used: any::<bool>(),
        key: any::<u64>(),
    })
}

pub fn heap_walk_end() -> impl Strategy<Value = HeapWalkEnd> {
    fields!(HeapWalkEnd {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        blocks: any::<u64>(),
        complete: any::<bool>(),
    })
}

/// Every [`HostMsg`] variant with arbitrary field values.
pub fn host_msg() -> impl Strategy<Value = HostMsg> {
    prop_oneof![
        Just(HostMsg::Resync),
        any::<u32>().prop_map(|nonce| HostMsg::Ping { nonce }),
        Just(HostMsg::Snapshot),
        Just(HostMsg::Check),
        (any::<u32>(), any::<u32>()).prop_map(|(pid, heap_id)| HostMsg::HeapWalk { pid, heap_id }),
        prop_oneof![Just(-1i64), any::<i64>()].prop_map(|pid| HostMsg::Processes { pid }),
        any::<u32>().prop_map(|min_age_ms| HostMsg::LeakScan { min_age_ms }),
        (any::<u64>(), any::<u64>()).prop_map(|(first_frame, nr_frames)| HostMsg::OwnerMap {
            first_frame,
            nr_frames
        }),
    ]
}

/// The [`KernelMsg`] variants added in protocol 1.2.
pub fn kernel_msg_1_2() -> impl Strategy<Value = KernelMsg<'static>> {
    prop_oneof![
        process_event().prop_map(KernelMsg::ProcessSpawn),
        process_exit().prop_map(KernelMsg::ProcessExit),
        process_event().prop_map(KernelMsg::ProcessRename),
        process_info().prop_map(KernelMsg::ProcessInfo),
        process_heap().prop_map(KernelMsg::ProcessHeap),
        process_shed().prop_map(KernelMsg::ProcessShed),
        process_vma().prop_map(KernelMsg::ProcessVma),
        process_list_end().prop_map(KernelMsg::ProcessListEnd),
        page_fault().prop_map(KernelMsg::PageFault),
        leak().prop_map(KernelMsg::Leak),
    ]
}

pub fn process_event() -> impl Strategy<Value = ProcessEvent<'static>> {
    fields!(ProcessEvent {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        parent: any::<u32>(),
        name: text(),
    })
}

pub fn exit_reason() -> impl Strategy<Value = ExitReason> {
    prop_oneof![
        any::<i64>().prop_map(ExitReason::Exited),
        any::<u8>().prop_map(|vector| ExitReason::Killed { vector }),
    ]
}

pub fn process_exit() -> impl Strategy<Value = ProcessExit> {
    fields!(ProcessExit {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        reason: exit_reason(),
        leaked_blocks: any::<u64>(),
        leaked_bytes: any::<u64>(),
        frames_freed: any::<u64>(),
    })
}

pub fn proc_state() -> impl Strategy<Value = ProcState> {
    prop_oneof![
        Just(ProcState::Runnable),
        Just(ProcState::Sleeping),
        Just(ProcState::Zombie),
        Just(ProcState::Kernel),
    ]
}

pub fn process_info() -> impl Strategy<Value = ProcessInfo<'static>> {
    fields!(ProcessInfo {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        parent: any::<u32>(),
        name: text(),
        state: proc_state(),
        nr_heaps: any::<u32>(),
        nr_sheds: any::<u32>(),
        nr_vmas: any::<u32>(),
        total_heap_size: any::<u64>(),
        total_heap_used: any::<u64>(),
        total_heap_free: any::<u64>(),
        total_shed_size: any::<u64>(),
        resident_frames: any::<u64>(),
        page_table_frames: any::<u64>(),
    })
}

pub fn process_heap() -> impl Strategy<Value = ProcessHeap> {
    fields!(ProcessHeap {
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        start: any::<u64>(),
        heap_size: any::<u64>(),
        heap_used: any::<u64>(),
        heap_free: any::<u64>(),
        used_blocks: any::<u64>(),
        largest_free: any::<u64>(),
    })
}

pub fn process_shed() -> impl Strategy<Value = ProcessShed> {
    fields!(ProcessShed {
        pid: any::<u32>(),
        shed_id: any::<u32>(),
        start: any::<u64>(),
        shed_size: any::<u64>(),
    })
}

pub fn vma_kind() -> impl Strategy<Value = VmaKind> {
    prop_oneof![
        Just(VmaKind::Code),
        Just(VmaKind::Data),
        Just(VmaKind::Heap),
        Just(VmaKind::Stack),
        Just(VmaKind::Mmap),
        Just(VmaKind::Shed),
    ]
}

pub fn process_vma() -> impl Strategy<Value = ProcessVma> {
    fields!(ProcessVma {
        pid: any::<u32>(),
        start: any::<u64>(),
        end: any::<u64>(),
        flags: any::<u32>(),
        kind: vma_kind(),
        resident_pages: any::<u64>(),
    })
}

pub fn process_list_end() -> impl Strategy<Value = ProcessListEnd> {
    fields!(ProcessListEnd {
        ts_us: any::<u64>(),
        total_programs: any::<u32>(),
        complete: any::<bool>(),
    })
}

pub fn fault_resolution() -> impl Strategy<Value = FaultResolution> {
    prop_oneof![
        Just(FaultResolution::Demand),
        Just(FaultResolution::CopyOnWrite),
        Just(FaultResolution::CowReuse),
        Just(FaultResolution::StackGrowth),
        Just(FaultResolution::Killed),
    ]
}

pub fn page_fault() -> impl Strategy<Value = PageFault> {
    fields!(PageFault {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        addr: any::<u64>(),
        error_code: any::<u64>(),
        rip: any::<u64>(),
        resolution: fault_resolution(),
        vma_start: any::<u64>(),
        vma_end: any::<u64>(),
        vma_flags: any::<u32>(),
    })
}

pub fn leak() -> impl Strategy<Value = Leak> {
    fields!(Leak {
        ts_us: any::<u64>(),
        pid: any::<u32>(),
        heap_id: any::<u32>(),
        key: any::<u64>(),
        blocks: any::<u64>(),
        bytes: any::<u64>(),
        first_addr: any::<u64>(),
        oldest_age_ms: any::<Option<u64>>(),
    })
}

/// Encodes one message as a frame, terminator included.
pub fn frame_of<M: serde::Serialize>(msg: &M) -> Vec<u8> {
    let mut out = [0u8; probe_proto::frame::MAX_FRAME];
    probe_proto::encode_frame(msg, &mut out)
        .expect("test messages fit in a frame")
        .to_vec()
}
