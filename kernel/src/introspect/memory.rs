//! Snapshots and checks of the memory manager, as telemetry messages: the
//! periodic `MemoryStats`, and the answers to the host's `Snapshot`,
//! `Check` and `HeapWalk` requests.

use probe_proto::{
    FrameCheck, FrameUsage, HeapBlock, HeapCheck, HeapStats, HeapWalkEnd, KernelMsg, MemoryStats,
};

use crate::memory::heap::{KERNEL_PID, VirtHeap, with_kernel_heap};
use crate::memory::{events, phys};
use crate::mm::heap::BlockState;
use crate::{telemetry, time};

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

/// Blocks copied out of the heap per lock hold while walking.
const WALK_BATCH: usize = 32;

/// Sends every block of the kernel heap, then `HeapWalkEnd`. The heap lock
/// is held for one batch of blocks at a time, not while the UART drains.
fn send_kernel_heap_walk() {
    let mut sent = 0u64;
    let mut complete = true;
    loop {
        let mut batch = [None::<HeapBlock>; WALK_BATCH];
        let taken = with_kernel_heap(|h| {
            let (pid, heap_id) = h.id();
            let blocks = h.heap().walk().skip(sent as usize).take(WALK_BATCH);
            let mut n = 0;
            for (slot, block) in batch.iter_mut().zip(blocks) {
                let Ok(b) = block else {
                    complete = false;
                    break;
                };
                let used = b.state == BlockState::Used;
                *slot = Some(HeapBlock {
                    pid,
                    heap_id,
                    addr: b.payload as u64,
                    size: if used {
                        b.requested as u64
                    } else {
                        (b.addr + b.size - b.payload) as u64
                    },
                    used,
                    key: b.tag.key,
                });
                n += 1;
            }
            n
        })
        .unwrap_or(0);
        for block in batch.iter().flatten() {
            telemetry::send_waiting(&KernelMsg::HeapBlock(*block));
        }
        sent += taken as u64;
        if taken < WALK_BATCH {
            break;
        }
    }
    telemetry::send_waiting(&KernelMsg::HeapWalkEnd(HeapWalkEnd {
        ts_us: time::uptime_us(),
        pid: KERNEL_PID,
        heap_id: 0,
        blocks: sent,
        complete,
    }));
}

/// Sends every block of heap `heap_id` of process `pid`, then
/// `HeapWalkEnd` (with no blocks and `complete` false if there is no such
/// heap). The process table is held for one batch at a time.
fn send_process_heap_walk(pid: u32, heap_id: u32) {
    let mut sent = 0u64;
    let mut complete = true;
    loop {
        let batch = crate::proc::with_table(|t| {
            let p = t.get(pid)?;
            let mm = p.mm.as_ref()?;
            p.memory
                .walk_blocks(mm, pid, heap_id, sent as usize, WALK_BATCH)
        });
        let Some((blocks, intact)) = batch else {
            complete = false;
            break;
        };
        for block in &blocks {
            telemetry::send_waiting(&KernelMsg::HeapBlock(*block));
        }
        sent += blocks.len() as u64;
        complete &= intact;
        if blocks.len() < WALK_BATCH || !intact {
            break;
        }
    }
    telemetry::send_waiting(&KernelMsg::HeapWalkEnd(HeapWalkEnd {
        ts_us: time::uptime_us(),
        pid,
        heap_id,
        blocks: sent,
        complete,
    }));
}

/// Answers the host's pending requests; called from thread context (the
/// idle loop), never with a telemetry or memory lock held.
pub fn serve_requests() {
    let req = telemetry::take_requests();
    if req.snapshot {
        telemetry::send_waiting(&KernelMsg::MemoryStats(memory_stats()));
    }
    if req.check {
        telemetry::send_waiting(&KernelMsg::FrameCheck(frame_check()));
        if let Some(check) = with_kernel_heap(|h| heap_check(h)) {
            telemetry::send_waiting(&KernelMsg::HeapCheck(check));
        }
    }
    if let Some(pid) = req.processes {
        crate::proc::report::send_listing(pid);
    }
    if let Some((pid, heap_id)) = req.heap_walk {
        if (pid, heap_id) == (KERNEL_PID, 0) {
            send_kernel_heap_walk();
        } else {
            send_process_heap_walk(pid, heap_id);
        }
    }
}
