//! A memory snapshot and check results as the kernel sends them in answer
//! to `HostMsg::Snapshot` and `HostMsg::Check`: 32768 frames, 30000 free, a
//! 64 KiB kernel heap with 1.5 KiB used in 9 blocks. Shared by mmtop's unit
//! tests (included by path) and its end-to-end tests, so both check the
//! same numbers.
#![allow(dead_code)] // Each user takes a different subset.

use probe_proto::{
    EventCounters, FrameCheck, FrameUsage, HeapBlock, HeapCheck, HeapErrorKind, HeapStats,
    MemoryStats,
};

/// The kernel heap: 64 KiB of a 1 GiB maximum, 1.5 KiB used in 9 blocks,
/// 60 KiB free in 3 (the largest 40 KiB).
pub fn heap_stats() -> HeapStats {
    HeapStats {
        pid: 0,
        heap_id: 0,
        region_bytes: 64 << 10,
        max_bytes: 1 << 30,
        used_bytes: 1536,
        free_bytes: 60 << 10,
        overhead_bytes: 256,
        total_blocks: 12,
        used_blocks: 9,
        free_blocks: 3,
        largest_free: 40 << 10,
    }
}

/// A snapshot taken at 1.5 s: 32768 frames by owner, [`heap_stats`] and
/// the event counters.
pub fn memory_stats() -> MemoryStats {
    MemoryStats {
        ts_us: 1_500_000,
        total_frames: 32_768,
        free_frames: 30_000,
        usage: FrameUsage {
            free: 30_000,
            unusable: 0,
            reserved: 256,
            kernel_image: 512,
            boot_info: 4,
            bitmap: 2,
            kernel_heap: 16,
            kernel_stack: 8,
            page_table: 6,
            process: 1960,
            other: 4,
        },
        kernel_heap: heap_stats(),
        counters: EventCounters {
            page_allocs: 10,
            page_frees: 2,
            maps: 5,
            unmaps: 0,
            heap_allocs: 100,
            heap_frees: 90,
            heap_errors: 1,
            frame_errors: 0,
        },
    }
}

/// `mmtop stats` for [`memory_stats`].
pub const STATS_TABLE: &str = "\
memory at t=1.500000s: 32768 frames (128.0MiB), 30000 free (117.2MiB)

frames by owner       frames       MiB
  free                 30000     117.2
  unusable                 0       0.0
  reserved               256       1.0
  kernel image           512       2.0
  boot info                4       0.0
  bitmap                   2       0.0
  kernel heap             16       0.1
  kernel stack             8       0.0
  page table               6       0.0
  process               1960       7.7
  other                    4       0.0
  total                32768     128.0

kernel heap kernel#0
  region       64.0KiB (max 1.0GiB)
  used          1.5KiB in 9 blocks
  free         60.0KiB in 3 blocks, largest 40.0KiB
  overhead        256B

events since boot
  page allocs           10    page frees             2
  maps                   5    unmaps                 0
  heap allocs          100    heap frees            90
  heap errors            1    frame errors           0
";

/// The frame bitmap's check at 3 s; when not `consistent`, one free frame
/// more is recorded than counted and one used frame has no owner.
pub fn frame_check(consistent: bool) -> FrameCheck {
    FrameCheck {
        ts_us: 3_000_000,
        consistent,
        nr_frames: 32_768,
        free_counted: 30_000,
        free_recorded: if consistent { 30_000 } else { 30_001 },
        total_counted: 32_512,
        total_recorded: 32_512,
        used_without_owner: u64::from(!consistent),
        free_with_owner: 0,
        invalid_owners: 0,
        summary_mismatches: 0,
        padding_mismatches: 0,
    }
}

/// The check of heap 0 of `pid` just after [`frame_check`], its occupancy
/// that of [`heap_stats`]; when not `ok`, a corrupt header at
/// `0xffff_8000_0010_0040`.
pub fn heap_check(pid: u32, ok: bool) -> HeapCheck {
    HeapCheck {
        ts_us: 3_000_100,
        pid,
        heap_id: 0,
        ok,
        error: (!ok).then_some(HeapErrorKind::CorruptHeader),
        addr: if ok { 0 } else { 0xffff_8000_0010_0040 },
        stats: HeapStats {
            pid,
            ..heap_stats()
        },
    }
}

/// A used 64-byte block of the kernel heap at 0x1040, tagged 0xabc, as a
/// heap walk lists it.
pub fn heap_block() -> HeapBlock {
    HeapBlock {
        pid: 0,
        heap_id: 0,
        addr: 0x1040,
        size: 64,
        used: true,
        key: 0xabc,
    }
}
