//! Statistics and checks of the memory manager: the periodic
//! `MemoryStats` and the answers to `Snapshot` and `Check`, which `monitor
//! pmm`, `heap` and `check` render.

use probe_proto::{FrameCheck, FrameUsage, HeapCheck, HeapStats, MemoryStats};

use crate::memory::heap::{VirtHeap, with_kernel_heap};
use crate::memory::{events, phys};
use crate::time;

/// The wire form of a heap's statistics.
pub fn heap_stats(heap: &VirtHeap) -> HeapStats {
    let (pid, heap_id) = heap.id();
    let s = heap.stats();
    HeapStats {
        pid,
        heap_id,
        region_bytes: s.region_bytes as u64,
        max_bytes: (heap.heap().max() - heap.heap().start()) as u64,
        used_bytes: s.used_bytes as u64,
        free_bytes: s.free_bytes as u64,
        overhead_bytes: s.overhead_bytes as u64,
        total_blocks: s.total_blocks as u64,
        used_blocks: s.used_blocks as u64,
        free_blocks: s.free_blocks as u64,
        largest_free: s.largest_free as u64,
    }
}

/// Frame counts, kernel-heap statistics and event counters.
pub fn memory_stats() -> MemoryStats {
    let (total_frames, free_frames) = phys::counts();
    let u = phys::usage();
    MemoryStats {
        ts_us: time::uptime_us(),
        total_frames,
        free_frames,
        usage: FrameUsage {
            free: u.free,
            unusable: u.unusable,
            reserved: u.reserved,
            kernel_image: u.kernel_image,
            boot_info: u.boot_info,
            bitmap: u.bitmap,
            kernel_heap: u.kernel_heap,
            kernel_stack: u.kernel_stack,
            page_table: u.page_table,
            process: u.process,
            other: u.other,
        },
        kernel_heap: with_kernel_heap(|h| heap_stats(h)).unwrap_or_default(),
        counters: events::counters(),
    }
}

/// A consistency check of the frame bitmap.
pub fn frame_check() -> FrameCheck {
    let r = phys::check();
    FrameCheck {
        ts_us: time::uptime_us(),
        consistent: r.is_consistent(),
        nr_frames: r.nr_frames,
        free_counted: r.free_counted,
        free_recorded: r.free_recorded,
        total_counted: r.total_counted,
        total_recorded: r.total_recorded,
        used_without_owner: r.used_without_owner,
        free_with_owner: r.free_with_owner,
        invalid_owners: r.invalid_owners,
        summary_mismatches: r.summary_mismatches,
        padding_mismatches: r.padding_mismatches,
    }
}

/// A full check of a heap; a failure is also reported as a `HeapError`
/// event.
pub fn heap_check(heap: &VirtHeap) -> HeapCheck {
    let (pid, heap_id) = heap.id();
    let result = heap.heap().check();
    let (error, addr) = match &result {
        Ok(()) => (None, 0),
        Err(e) => {
            events::heap_error(pid, heap_id, e, 0, 0);
            let (kind, addr) = events::heap_error_kind(e);
            (Some(kind), addr)
        }
    };
    HeapCheck {
        ts_us: time::uptime_us(),
        pid,
        heap_id,
        ok: result.is_ok(),
        error,
        addr,
        stats: heap_stats(heap),
    }
}
