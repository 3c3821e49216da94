//! Shared test helpers: proptest strategies that reach every variant.
//!
//! Strategies hand out `KernelMsg<'static>` values whose strings are owned
//! (`Cow::Owned`), so a message borrows nothing; a decoded message is
//! compared after [`KernelMsg::into_owned`].
#![allow(dead_code)] // Each test binary uses a different subset.

use std::borrow::Cow;

use probe_proto::{
    EventCounters, Exception, ExitReason, FaultResolution, FrameCheck, FrameErrorEvent,
    FrameErrorKind, FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent, HeapErrorKind,
    HeapEvent, HeapStats, HeapWalkEnd, Heartbeat, Hello, HostMsg, KernelMsg, Leak, Log, LogLevel,
    MapEvent, MemKind, MemRegion, MemoryStats, PageEvent, PageFault, Panic, Pong, ProcState,
    ProcessEvent, ProcessExit, ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma,
    Text, Version, VmaKind,
};
use proptest::prelude::*;

/// Any string of up to 64 chars: all of Unicode, newlines and NULs included.
///
/// 64 chars of at most 4 UTF-8 bytes each keep the largest message (two
/// strings plus fixed fields) well inside `MAX_PAYLOAD`.
pub fn text() -> impl Strategy<Value = Text<'static>> {
    proptest::collection::vec(any::<char>(), 0..=64)
        .prop_map(|cs| Cow::Owned(cs.into_iter().collect()))
}

pub fn version() -> impl Strategy<Value = Version> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| Version { major, minor })
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
    ]
}

/// The [`KernelMsg`] variants of protocol 1.0.
pub fn kernel_msg_1_0() -> impl Strategy<Value = KernelMsg<'static>> {
    prop_oneof![
        (
            version(),
            text(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            text(),
            any::<u64>(),
        )
            .prop_map(
                |(
                    version,
                    build_id,
                    mem_total_bytes,
                    mem_usable_bytes,
                    nr_regions,
                    features,
                    cmdline,
                    uptime_us,
                )| KernelMsg::Hello(Hello {
                    version,
                    build_id,
                    mem_total_bytes,
                    mem_usable_bytes,
                    nr_regions,
                    features,
                    cmdline,
                    uptime_us,
                })
            ),
        (any::<u16>(), any::<u64>(), any::<u64>(), mem_kind()).prop_map(
            |(index, start, len, kind)| KernelMsg::MemRegion(MemRegion {
                index,
                start,
                len,
                kind
            })
        ),
        (any::<u64>(), log_level(), text()).prop_map(|(ts_us, level, text)| KernelMsg::Log(Log {
            ts_us,
            level,
            text
        })),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(ts_us, rx_frames, rx_bad, tx_dropped)| KernelMsg::Heartbeat(Heartbeat {
                ts_us,
                rx_frames,
                rx_bad,
                tx_dropped
            })
        ),
        (
            any::<u64>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(ts_us, vector, error_code, cr2, rip, rsp)| {
                KernelMsg::Exception(Exception {
                    ts_us,
                    vector,
                    error_code,
                    cr2,
                    rip,
                    rsp,
                })
            }),
        (any::<u64>(), text(), text(), any::<u32>(), any::<u32>()).prop_map(
            |(ts_us, message, file, line, column)| KernelMsg::Panic(Panic {
                ts_us,
                message,
                file,
                line,
                column
            })
        ),
        (any::<u32>(), any::<u64>())
            .prop_map(|(nonce, ts_us)| KernelMsg::Pong(Pong { nonce, ts_us })),
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
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        frame_owner(),
        any::<u64>(),
    )
        .prop_map(|(ts_us, addr, count, owner, caller)| PageEvent {
            ts_us,
            addr,
            count,
            owner,
            caller,
        })
}

pub fn map_event() -> impl Strategy<Value = MapEvent> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        prop_oneof![Just(4096u64), Just(2 << 20), Just(1 << 30), any::<u64>()],
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(ts_us, space, virt, phys, size, flags, caller)| MapEvent {
            ts_us,
            space,
            virt,
            phys,
            size,
            flags,
            caller,
        })
}

pub fn heap_event() -> impl Strategy<Value = HeapEvent> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(ts_us, pid, heap_id, addr, size, align, key, caller)| HeapEvent {
                ts_us,
                pid,
                heap_id,
                addr,
                size,
                align,
                key,
                caller,
            },
        )
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
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        heap_error_kind(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(
            |(ts_us, pid, heap_id, kind, addr, size, caller)| HeapErrorEvent {
                ts_us,
                pid,
                heap_id,
                kind,
                addr,
                size,
                caller,
            },
        )
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
    (
        any::<u64>(),
        frame_error_kind(),
        any::<u64>(),
        any::<u32>(),
        any::<u64>(),
    )
        .prop_map(|(ts_us, kind, addr, count, caller)| FrameErrorEvent {
            ts_us,
            kind,
            addr,
            count,
            caller,
        })
}

pub fn frame_usage() -> impl Strategy<Value = FrameUsage> {
    any::<[u64; 11]>().prop_map(
        |[
            free,
            unusable,
            reserved,
            kernel_image,
            boot_info,
            bitmap,
            kernel_heap,
            kernel_stack,
            page_table,
            process,
            other,
        ]| FrameUsage {
            free,
            unusable,
            reserved,
            kernel_image,
            boot_info,
            bitmap,
            kernel_heap,
            kernel_stack,
            page_table,
            process,
            other,
        },
    )
}

pub fn heap_stats() -> impl Strategy<Value = HeapStats> {
    (any::<u32>(), any::<u32>(), any::<[u64; 9]>()).prop_map(
        |(
            pid,
            heap_id,
            [
                region_bytes,
                max_bytes,
                used_bytes,
                free_bytes,
                overhead_bytes,
                total_blocks,
                used_blocks,
                free_blocks,
                largest_free,
            ],
        )| HeapStats {
            pid,
            heap_id,
            region_bytes,
            max_bytes,
            used_bytes,
            free_bytes,
            overhead_bytes,
            total_blocks,
            used_blocks,
            free_blocks,
            largest_free,
        },
    )
}

pub fn event_counters() -> impl Strategy<Value = EventCounters> {
    any::<[u64; 8]>().prop_map(
        |[
            page_allocs,
            page_frees,
            maps,
            unmaps,
            heap_allocs,
            heap_frees,
            heap_errors,
            frame_errors,
        ]| EventCounters {
            page_allocs,
            page_frees,
            maps,
            unmaps,
            heap_allocs,
            heap_frees,
            heap_errors,
            frame_errors,
        },
    )
}

pub fn memory_stats() -> impl Strategy<Value = MemoryStats> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        frame_usage(),
        heap_stats(),
        event_counters(),
    )
        .prop_map(
            |(ts_us, total_frames, free_frames, usage, kernel_heap, counters)| MemoryStats {
                ts_us,
                total_frames,
                free_frames,
                usage,
                kernel_heap,
                counters,
            },
        )
}

pub fn frame_check() -> impl Strategy<Value = FrameCheck> {
    (any::<u64>(), any::<bool>(), any::<[u64; 10]>()).prop_map(
        |(
            ts_us,
            consistent,
            [
                nr_frames,
                free_counted,
                free_recorded,
                total_counted,
                total_recorded,
                used_without_owner,
                free_with_owner,
                invalid_owners,
                summary_mismatches,
                padding_mismatches,
            ],
        )| FrameCheck {
            ts_us,
            consistent,
            nr_frames,
            free_counted,
            free_recorded,
            total_counted,
            total_recorded,
            used_without_owner,
            free_with_owner,
            invalid_owners,
            summary_mismatches,
            padding_mismatches,
        },
    )
}

pub fn heap_check() -> impl Strategy<Value = HeapCheck> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        proptest::option::of(heap_error_kind()),
        any::<u64>(),
        heap_stats(),
    )
        .prop_map(|(ts_us, pid, heap_id, ok, error, addr, stats)| HeapCheck {
            ts_us,
            pid,
            heap_id,
            ok,
            error,
            addr,
            stats,
        })
}

pub fn heap_block() -> impl Strategy<Value = HeapBlock> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(pid, heap_id, addr, size, used, key)| HeapBlock {
            pid,
            heap_id,
            addr,
            size,
            used,
            key,
        })
}

pub fn heap_walk_end() -> impl Strategy<Value = HeapWalkEnd> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(ts_us, pid, heap_id, blocks, complete)| HeapWalkEnd {
            ts_us,
            pid,
            heap_id,
            blocks,
            complete,
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
    (any::<u64>(), any::<u32>(), any::<u32>(), text()).prop_map(|(ts_us, pid, parent, name)| {
        ProcessEvent {
            ts_us,
            pid,
            parent,
            name,
        }
    })
}

pub fn exit_reason() -> impl Strategy<Value = ExitReason> {
    prop_oneof![
        any::<i64>().prop_map(ExitReason::Exited),
        any::<u8>().prop_map(|vector| ExitReason::Killed { vector }),
    ]
}

pub fn process_exit() -> impl Strategy<Value = ProcessExit> {
    (any::<u64>(), any::<u32>(), exit_reason(), any::<[u64; 3]>()).prop_map(
        |(ts_us, pid, reason, [leaked_blocks, leaked_bytes, frames_freed])| ProcessExit {
            ts_us,
            pid,
            reason,
            leaked_blocks,
            leaked_bytes,
            frames_freed,
        },
    )
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
    (
        any::<u64>(),
        any::<[u32; 2]>(),
        text(),
        proc_state(),
        any::<[u32; 3]>(),
        any::<[u64; 6]>(),
    )
        .prop_map(
            |(
                ts_us,
                [pid, parent],
                name,
                state,
                [nr_heaps, nr_sheds, nr_vmas],
                [
                    total_heap_size,
                    total_heap_used,
                    total_heap_free,
                    total_shed_size,
                    resident_frames,
                    page_table_frames,
                ],
            )| ProcessInfo {
                ts_us,
                pid,
                parent,
                name,
                state,
                nr_heaps,
                nr_sheds,
                nr_vmas,
                total_heap_size,
                total_heap_used,
                total_heap_free,
                total_shed_size,
                resident_frames,
                page_table_frames,
            },
        )
}

pub fn process_heap() -> impl Strategy<Value = ProcessHeap> {
    (any::<[u32; 2]>(), any::<[u64; 6]>()).prop_map(
        |(
            [pid, heap_id],
            [
                start,
                heap_size,
                heap_used,
                heap_free,
                used_blocks,
                largest_free,
            ],
        )| ProcessHeap {
            pid,
            heap_id,
            start,
            heap_size,
            heap_used,
            heap_free,
            used_blocks,
            largest_free,
        },
    )
}

pub fn process_shed() -> impl Strategy<Value = ProcessShed> {
    (any::<[u32; 2]>(), any::<[u64; 2]>()).prop_map(|([pid, shed_id], [start, shed_size])| {
        ProcessShed {
            pid,
            shed_id,
            start,
            shed_size,
        }
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
    (
        any::<u32>(),
        any::<[u64; 2]>(),
        any::<u32>(),
        vma_kind(),
        any::<u64>(),
    )
        .prop_map(
            |(pid, [start, end], flags, kind, resident_pages)| ProcessVma {
                pid,
                start,
                end,
                flags,
                kind,
                resident_pages,
            },
        )
}

pub fn process_list_end() -> impl Strategy<Value = ProcessListEnd> {
    (any::<u64>(), any::<u32>(), any::<bool>()).prop_map(|(ts_us, total_programs, complete)| {
        ProcessListEnd {
            ts_us,
            total_programs,
            complete,
        }
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
    (
        any::<u64>(),
        any::<u32>(),
        any::<[u64; 3]>(),
        fault_resolution(),
        any::<[u64; 2]>(),
        any::<u32>(),
    )
        .prop_map(
            |(ts_us, pid, [addr, error_code, rip], resolution, [vma_start, vma_end], vma_flags)| {
                PageFault {
                    ts_us,
                    pid,
                    addr,
                    error_code,
                    rip,
                    resolution,
                    vma_start,
                    vma_end,
                    vma_flags,
                }
            },
        )
}

pub fn leak() -> impl Strategy<Value = Leak> {
    (any::<u64>(), any::<[u32; 2]>(), any::<[u64; 4]>()).prop_map(
        |(ts_us, [pid, heap_id], [key, blocks, bytes, first_addr])| Leak {
            ts_us,
            pid,
            heap_id,
            key,
            blocks,
            bytes,
            first_addr,
        },
    )
}

/// Encodes one message as a frame, terminator included.
pub fn frame_of<M: serde::Serialize>(msg: &M) -> Vec<u8> {
    let mut out = [0u8; probe_proto::frame::MAX_FRAME];
    probe_proto::encode_frame(msg, &mut out)
        .expect("test messages fit in a frame")
        .to_vec()
}
