//! `whatis ADDR`: what an address is in one address space: the leaf that
//! maps it, the frame and its owner, the kernel-heap block it falls in,
//! and in a program, its VMA and the heap block with its key.
//!
//! The tables are read without their lock (the debugger asks while the
//! kernel is stopped); the frame owner, the kernel heap and the process
//! table are read under theirs, which the caller must know to be free.

use crate::memory::heap::with_kernel_heap;
use crate::memory::{phys, virt};
use crate::mm::frame::{Frame, Owner, PhysAddr};
use crate::mm::heap::BlockInfo;
use crate::mm::paging::{Mapping, USER_HALF_END};
use crate::mm::vma::Vma;
use crate::proc::{KERNEL_PID, Name};

/// Where an address lies in a heap.
#[derive(Debug, Clone, Copy)]
pub enum HeapPlace {
    /// Outside the heap's region.
    Outside,
    /// Inside the region, in this block.
    Block(BlockInfo),
    /// Inside the region, in no intact block.
    NoBlock,
}

/// The part of the answer about a program's own memory.
#[derive(Clone)]
pub struct InProcess {
    /// The process.
    pub pid: u32,
    /// Its program name.
    pub name: Name,
    /// The VMA holding the address, with its resident pages.
    pub vma: Option<(Vma, u64)>,
    /// Each of its heaps whose region holds the address, by heap id.
    pub heaps: alloc::vec::Vec<(u32, HeapPlace)>,
}

/// Everything `whatis` finds about an address.
#[derive(Clone)]
pub struct WhatIs {
    /// The address asked about.
    pub addr: u64,
    /// The leaf mapping it; `None` if it is not mapped.
    pub mapping: Option<Mapping>,
    /// The physical address behind it and its frame's owner (`None`: free).
    pub phys: Option<(PhysAddr, Option<Owner>)>,
    /// Where it lies in the kernel heap; `None` if the heap is not set up.
    pub kernel_heap: Option<HeapPlace>,
    /// For a user address of a program: its VMA and heap block. `None` for
    /// the kernel, a kernel-half address, or a process that is gone.
    pub process: Option<InProcess>,
}

/// What `addr` is in the address space rooted at `root` (the tables of
/// process `pid`, when it is a program).
pub fn whatis(root: u64, pid: Option<u32>, addr: u64) -> WhatIs {
    let mapping = virt::mapping_in(root, addr);
    let phys = mapping.map(|m| {
        let pa = PhysAddr::new(m.phys.as_u64() + (addr - m.virt.as_u64()));
        (pa, phys::owner(Frame::containing_address(pa)))
    });
    let kernel_heap = with_kernel_heap(|heap| {
        let heap = heap.heap();
        if !(heap.start() as u64..heap.end() as u64).contains(&addr) {
            return HeapPlace::Outside;
        }
        usize::try_from(addr)
            .ok()
            .and_then(|a| heap.find(a))
            .map_or(HeapPlace::NoBlock, HeapPlace::Block)
    });
    let process = pid
        .filter(|&p| p != KERNEL_PID && addr < USER_HALF_END)
        .and_then(|pid| in_process(pid, addr));
    WhatIs {
        addr,
        mapping,
        phys,
        kernel_heap,
        process,
    }
}

/// The VMA and heap blocks of `pid` that hold `addr`; `None` if the process
/// or its address space is gone, or the table is held by the stopped code.
fn in_process(pid: u32, addr: u64) -> Option<InProcess> {
    crate::proc::try_with_table(|t| {
        let p = t.get(pid)?;
        let mm = p.mm.as_ref()?;
        let vma = mm
            .vmas()
            .iter()
            .find(|v| (v.start().as_u64()..v.end().as_u64()).contains(&addr))
            .map(|v| (*v, mm.resident_pages(v.start().as_u64(), v.end().as_u64())));
        let heaps = p
            .memory
            .heaps()
            .iter()
            .filter(|h| h.contains(addr))
            .map(|h| {
                let place = h
                    .block_at(mm, addr)
                    .map_or(HeapPlace::NoBlock, HeapPlace::Block);
                (h.id, place)
            })
            .collect();
        Some(InProcess {
            pid,
            name: p.name,
            vma,
            heaps,
        })
    })
    .flatten()
}
