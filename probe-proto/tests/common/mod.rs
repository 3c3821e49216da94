//! Shared test helpers: owned mirrors of the borrowed messages and proptest
//! strategies that reach every variant.
//!
//! The wire types borrow their strings, so a strategy cannot hand one out
//! directly; it produces an [`OwnedKernelMsg`] that lends a `KernelMsg` on
//! demand, and a decoded message is turned back into an owned one so it can
//! outlive the decoder that holds its bytes.
#![allow(dead_code)] // Each test binary uses a different subset.

use probe_proto::{
    EventCounters, Exception, ExitReason, FaultResolution, FrameCheck, FrameErrorEvent,
    FrameErrorKind, FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent, HeapErrorKind,
    HeapEvent, HeapStats, HeapWalkEnd, Heartbeat, Hello, HostMsg, KernelMsg, Leak, Log, LogLevel,
    MapEvent, MemKind, MemRegion, MemoryStats, PageEvent, PageFault, Panic, Pong, ProcState,
    ProcessEvent, ProcessExit, ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma,
    Version, VmaKind,
};
use proptest::prelude::*;

/// An owned [`KernelMsg`]: the same variants, with `String` for `&str`.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedKernelMsg {
    Hello {
        version: Version,
        build_id: String,
        mem_total_bytes: u64,
        mem_usable_bytes: u64,
        nr_regions: u16,
        features: u32,
        cmdline: String,
        uptime_us: u64,
    },
    MemRegion(MemRegion),
    Log {
        ts_us: u64,
        level: LogLevel,
        text: String,
    },
    Heartbeat(Heartbeat),
    Exception(Exception),
    Panic {
        ts_us: u64,
        message: String,
        file: String,
        line: u32,
        column: u32,
    },
    Pong(Pong),
    Dropped {
        count: u64,
    },
    // 1.1: plain-number payloads, held as the wire types themselves.
    MemoryStats(MemoryStats),
    PageAlloc(PageEvent),
    PageFree(PageEvent),
    Map(MapEvent),
    Unmap(MapEvent),
    HeapAlloc(HeapEvent),
    HeapFree(HeapEvent),
    HeapError(HeapErrorEvent),
    FrameError(FrameErrorEvent),
    FrameCheck(FrameCheck),
    HeapCheck(HeapCheck),
    HeapBlock(HeapBlock),
    HeapWalkEnd(HeapWalkEnd),
    // 1.2: the two string-holding payloads have owned mirrors below.
    ProcessSpawn(OwnedProcessEvent),
    ProcessExit(ProcessExit),
    ProcessRename(OwnedProcessEvent),
    ProcessInfo(OwnedProcessInfo),
    ProcessHeap(ProcessHeap),
    ProcessShed(ProcessShed),
    ProcessVma(ProcessVma),
    ProcessListEnd(ProcessListEnd),
    PageFault(PageFault),
    Leak(Leak),
}

/// An owned [`ProcessEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedProcessEvent {
    pub ts_us: u64,
    pub pid: u32,
    pub parent: u32,
    pub name: String,
}

impl OwnedProcessEvent {
    pub fn as_wire(&self) -> ProcessEvent<'_> {
        ProcessEvent {
            ts_us: self.ts_us,
            pid: self.pid,
            parent: self.parent,
            name: &self.name,
        }
    }

    pub fn from_wire(e: &ProcessEvent<'_>) -> Self {
        Self {
            ts_us: e.ts_us,
            pid: e.pid,
            parent: e.parent,
            name: e.name.to_owned(),
        }
    }
}

/// An owned [`ProcessInfo`]: the wire type with its name held apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedProcessInfo {
    /// Every field but the name, which is `""` here.
    pub info: ProcessInfo<'static>,
    pub name: String,
}

impl OwnedProcessInfo {
    pub fn as_wire(&self) -> ProcessInfo<'_> {
        ProcessInfo {
            name: &self.name,
            ..self.info
        }
    }

    pub fn from_wire(i: &ProcessInfo<'_>) -> Self {
        Self {
            info: ProcessInfo { name: "", ..*i },
            name: i.name.to_owned(),
        }
    }
}

impl OwnedKernelMsg {
    /// The wire message, borrowing this one's strings.
    pub fn as_msg(&self) -> KernelMsg<'_> {
        match self {
            Self::Hello {
                version,
                build_id,
                mem_total_bytes,
                mem_usable_bytes,
                nr_regions,
                features,
                cmdline,
                uptime_us,
            } => KernelMsg::Hello(Hello {
                version: *version,
                build_id,
                mem_total_bytes: *mem_total_bytes,
                mem_usable_bytes: *mem_usable_bytes,
                nr_regions: *nr_regions,
                features: *features,
                cmdline,
                uptime_us: *uptime_us,
            }),
            Self::MemRegion(r) => KernelMsg::MemRegion(*r),
            Self::Log { ts_us, level, text } => KernelMsg::Log(Log {
                ts_us: *ts_us,
                level: *level,
                text,
            }),
            Self::Heartbeat(h) => KernelMsg::Heartbeat(*h),
            Self::Exception(e) => KernelMsg::Exception(*e),
            Self::Panic {
                ts_us,
                message,
                file,
                line,
                column,
            } => KernelMsg::Panic(Panic {
                ts_us: *ts_us,
                message,
                file,
                line: *line,
                column: *column,
            }),
            Self::Pong(p) => KernelMsg::Pong(*p),
            Self::Dropped { count } => KernelMsg::Dropped { count: *count },
            Self::MemoryStats(m) => KernelMsg::MemoryStats(*m),
            Self::PageAlloc(e) => KernelMsg::PageAlloc(*e),
            Self::PageFree(e) => KernelMsg::PageFree(*e),
            Self::Map(e) => KernelMsg::Map(*e),
            Self::Unmap(e) => KernelMsg::Unmap(*e),
            Self::HeapAlloc(e) => KernelMsg::HeapAlloc(*e),
            Self::HeapFree(e) => KernelMsg::HeapFree(*e),
            Self::HeapError(e) => KernelMsg::HeapError(*e),
            Self::FrameError(e) => KernelMsg::FrameError(*e),
            Self::FrameCheck(c) => KernelMsg::FrameCheck(*c),
            Self::HeapCheck(c) => KernelMsg::HeapCheck(*c),
            Self::HeapBlock(b) => KernelMsg::HeapBlock(*b),
            Self::HeapWalkEnd(e) => KernelMsg::HeapWalkEnd(*e),
            Self::ProcessSpawn(e) => KernelMsg::ProcessSpawn(e.as_wire()),
            Self::ProcessExit(e) => KernelMsg::ProcessExit(*e),
            Self::ProcessRename(e) => KernelMsg::ProcessRename(e.as_wire()),
            Self::ProcessInfo(i) => KernelMsg::ProcessInfo(i.as_wire()),
            Self::ProcessHeap(h) => KernelMsg::ProcessHeap(*h),
            Self::ProcessShed(s) => KernelMsg::ProcessShed(*s),
            Self::ProcessVma(v) => KernelMsg::ProcessVma(*v),
            Self::ProcessListEnd(e) => KernelMsg::ProcessListEnd(*e),
            Self::PageFault(f) => KernelMsg::PageFault(*f),
            Self::Leak(l) => KernelMsg::Leak(*l),
        }
    }

    /// Copies a decoded message out of the decoder's buffer.
    pub fn from_msg(msg: &KernelMsg<'_>) -> Self {
        match msg {
            KernelMsg::Hello(h) => Self::Hello {
                version: h.version,
                build_id: h.build_id.to_owned(),
                mem_total_bytes: h.mem_total_bytes,
                mem_usable_bytes: h.mem_usable_bytes,
                nr_regions: h.nr_regions,
                features: h.features,
                cmdline: h.cmdline.to_owned(),
                uptime_us: h.uptime_us,
            },
            KernelMsg::MemRegion(r) => Self::MemRegion(*r),
            KernelMsg::Log(l) => Self::Log {
                ts_us: l.ts_us,
                level: l.level,
                text: l.text.to_owned(),
            },
            KernelMsg::Heartbeat(h) => Self::Heartbeat(*h),
            KernelMsg::Exception(e) => Self::Exception(*e),
            KernelMsg::Panic(p) => Self::Panic {
                ts_us: p.ts_us,
                message: p.message.to_owned(),
                file: p.file.to_owned(),
                line: p.line,
                column: p.column,
            },
            KernelMsg::Pong(p) => Self::Pong(*p),
            KernelMsg::Dropped { count } => Self::Dropped { count: *count },
            KernelMsg::MemoryStats(m) => Self::MemoryStats(*m),
            KernelMsg::PageAlloc(e) => Self::PageAlloc(*e),
            KernelMsg::PageFree(e) => Self::PageFree(*e),
            KernelMsg::Map(e) => Self::Map(*e),
            KernelMsg::Unmap(e) => Self::Unmap(*e),
            KernelMsg::HeapAlloc(e) => Self::HeapAlloc(*e),
            KernelMsg::HeapFree(e) => Self::HeapFree(*e),
            KernelMsg::HeapError(e) => Self::HeapError(*e),
            KernelMsg::FrameError(e) => Self::FrameError(*e),
            KernelMsg::FrameCheck(c) => Self::FrameCheck(*c),
            KernelMsg::HeapCheck(c) => Self::HeapCheck(*c),
            KernelMsg::HeapBlock(b) => Self::HeapBlock(*b),
            KernelMsg::HeapWalkEnd(e) => Self::HeapWalkEnd(*e),
            KernelMsg::ProcessSpawn(e) => Self::ProcessSpawn(OwnedProcessEvent::from_wire(e)),
            KernelMsg::ProcessExit(e) => Self::ProcessExit(*e),
            KernelMsg::ProcessRename(e) => Self::ProcessRename(OwnedProcessEvent::from_wire(e)),
            KernelMsg::ProcessInfo(i) => Self::ProcessInfo(OwnedProcessInfo::from_wire(i)),
            KernelMsg::ProcessHeap(h) => Self::ProcessHeap(*h),
            KernelMsg::ProcessShed(s) => Self::ProcessShed(*s),
            KernelMsg::ProcessVma(v) => Self::ProcessVma(*v),
            KernelMsg::ProcessListEnd(e) => Self::ProcessListEnd(*e),
            KernelMsg::PageFault(f) => Self::PageFault(*f),
            KernelMsg::Leak(l) => Self::Leak(*l),
        }
    }
}

/// Any string of up to 64 chars: all of Unicode, newlines and NULs included.
///
/// 64 chars of at most 4 UTF-8 bytes each keep the largest message (two
/// strings plus fixed fields) well inside `MAX_PAYLOAD`.
pub fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=64).prop_map(|cs| cs.into_iter().collect())
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
pub fn kernel_msg() -> impl Strategy<Value = OwnedKernelMsg> {
    // Weights are variant counts, so that no variant is starved.
    prop_oneof![
        8 => kernel_msg_1_0(),
        13 => kernel_msg_1_1(),
        10 => kernel_msg_1_2(),
    ]
}

/// The [`KernelMsg`] variants of protocol 1.0.
pub fn kernel_msg_1_0() -> impl Strategy<Value = OwnedKernelMsg> {
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
                )| OwnedKernelMsg::Hello {
                    version,
                    build_id,
                    mem_total_bytes,
                    mem_usable_bytes,
                    nr_regions,
                    features,
                    cmdline,
                    uptime_us,
                }
            ),
        (any::<u16>(), any::<u64>(), any::<u64>(), mem_kind()).prop_map(
            |(index, start, len, kind)| OwnedKernelMsg::MemRegion(MemRegion {
                index,
                start,
                len,
                kind
            })
        ),
        (any::<u64>(), log_level(), text()).prop_map(|(ts_us, level, text)| OwnedKernelMsg::Log {
            ts_us,
            level,
            text
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(ts_us, rx_frames, rx_bad, tx_dropped)| OwnedKernelMsg::Heartbeat(Heartbeat {
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
                OwnedKernelMsg::Exception(Exception {
                    ts_us,
                    vector,
                    error_code,
                    cr2,
                    rip,
                    rsp,
                })
            }),
        (any::<u64>(), text(), text(), any::<u32>(), any::<u32>()).prop_map(
            |(ts_us, message, file, line, column)| OwnedKernelMsg::Panic {
                ts_us,
                message,
                file,
                line,
                column
            }
        ),
        (any::<u32>(), any::<u64>())
            .prop_map(|(nonce, ts_us)| OwnedKernelMsg::Pong(Pong { nonce, ts_us })),
        any::<u64>().prop_map(|count| OwnedKernelMsg::Dropped { count }),
    ]
}

/// The [`KernelMsg`] variants added in protocol 1.1.
pub fn kernel_msg_1_1() -> impl Strategy<Value = OwnedKernelMsg> {
    prop_oneof![
        memory_stats().prop_map(OwnedKernelMsg::MemoryStats),
        page_event().prop_map(OwnedKernelMsg::PageAlloc),
        page_event().prop_map(OwnedKernelMsg::PageFree),
        map_event().prop_map(OwnedKernelMsg::Map),
        map_event().prop_map(OwnedKernelMsg::Unmap),
        heap_event().prop_map(OwnedKernelMsg::HeapAlloc),
        heap_event().prop_map(OwnedKernelMsg::HeapFree),
        heap_error_event().prop_map(OwnedKernelMsg::HeapError),
        frame_error_event().prop_map(OwnedKernelMsg::FrameError),
        frame_check().prop_map(OwnedKernelMsg::FrameCheck),
        heap_check().prop_map(OwnedKernelMsg::HeapCheck),
        heap_block().prop_map(OwnedKernelMsg::HeapBlock),
        heap_walk_end().prop_map(OwnedKernelMsg::HeapWalkEnd),
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
pub fn kernel_msg_1_2() -> impl Strategy<Value = OwnedKernelMsg> {
    prop_oneof![
        process_event().prop_map(OwnedKernelMsg::ProcessSpawn),
        process_exit().prop_map(OwnedKernelMsg::ProcessExit),
        process_event().prop_map(OwnedKernelMsg::ProcessRename),
        process_info().prop_map(OwnedKernelMsg::ProcessInfo),
        process_heap().prop_map(OwnedKernelMsg::ProcessHeap),
        process_shed().prop_map(OwnedKernelMsg::ProcessShed),
        process_vma().prop_map(OwnedKernelMsg::ProcessVma),
        process_list_end().prop_map(OwnedKernelMsg::ProcessListEnd),
        page_fault().prop_map(OwnedKernelMsg::PageFault),
        leak().prop_map(OwnedKernelMsg::Leak),
    ]
}

pub fn process_event() -> impl Strategy<Value = OwnedProcessEvent> {
    (any::<u64>(), any::<u32>(), any::<u32>(), text()).prop_map(|(ts_us, pid, parent, name)| {
        OwnedProcessEvent {
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

pub fn process_info() -> impl Strategy<Value = OwnedProcessInfo> {
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
            )| OwnedProcessInfo {
                info: ProcessInfo {
                    ts_us,
                    pid,
                    parent,
                    name: "",
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
                name,
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
