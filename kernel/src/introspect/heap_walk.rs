//! Heap walks: the blocks of the kernel heap or of a process heap, in
//! address order, a batch at a time, so no lock is held while a reader
//! (the UART, gdb's console) drains them.

use probe_proto::{HeapBlock, KERNEL_PID};

use crate::memory::heap::with_kernel_heap;
use crate::mm::heap::{BlockInfo, BlockState};

/// Blocks copied out of a heap per lock hold.
pub const WALK_BATCH: usize = 32;

/// The wire form of a block: for a used block its requested size and key,
/// for a free one the payload it could give.
pub fn heap_block(pid: u32, heap_id: u32, b: &BlockInfo) -> HeapBlock {
    let used = b.state == BlockState::Used;
    HeapBlock {
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
    }
}

/// One batch of a walk: the blocks after the first `skip` of heap
/// `heap_id` of `pid` (pid 0, heap 0: the kernel heap), as many as `out`
/// holds. The count copied and whether the walk met only intact headers;
/// `None` if there is no such heap (or the process table or heap could not
/// be read).
pub fn blocks(pid: u32, heap_id: u32, skip: usize, out: &mut [HeapBlock]) -> Option<(usize, bool)> {
    if pid == KERNEL_PID {
        if heap_id != 0 {
            return None;
        }
        // No allocation here: the kernel heap's own lock is held.
        return with_kernel_heap(|h| {
            let mut n = 0;
            for (slot, block) in out.iter_mut().zip(h.heap().walk().skip(skip)) {
                let Ok(b) = block else {
                    return (n, false);
                };
                *slot = heap_block(pid, heap_id, &b);
                n += 1;
            }
            (n, true)
        });
    }
    let (infos, intact) = crate::proc::with_table(|t| {
        let p = t.get(pid)?;
        let mm = p.mm.as_ref()?;
        p.memory.walk_blocks(mm, heap_id, skip, out.len())
    })?;
    for (slot, b) in out.iter_mut().zip(&infos) {
        *slot = heap_block(pid, heap_id, b);
    }
    Some((infos.len(), intact))
}
