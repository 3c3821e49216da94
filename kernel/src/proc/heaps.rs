//! The per-process memory API: keyed heaps and sheds, made with
//! `allocate_memory`, reported in the `checkMemory` shape, and checked for
//! leaks when they go away.
//!
//! A process heap is the kernel heap's allocator (`mm::heap::Heap`) over a
//! heap VMA of the process, with its headers in place in user memory. Every
//! call into it runs with the process's address space loaded
//! (`AddressSpace::with_active`); its pages are mapped when it is made and
//! copied (not shared) by `fork`, so the kernel never meets a missing or
//! read-only heap page. A program corrupting its own headers is caught by
//! the heap's sealed headers and answered with an error.
//!
//! A shed is a region of code or constants: readable (and executable) by
//! the program, written only through `shed_write`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;

use probe_proto::{KernelMsg, Leak};
use sysabi::{Errno, ProgramMemory};

use crate::memory::events;
use crate::memory::phys::FrameSlice;
use crate::mm::frame::Owner;
use crate::mm::frame::{FRAME_SIZE, Frame};
use crate::mm::heap::{BlockInfo, BlockState, BlockTag, Heap, HeapConfig, HeapError};
use crate::mm::leak::{StackId, Trace, TraceTable};
use crate::mm::paging::VirtAddr;
use crate::mm::vma::{VmFlags, Vma, VmaKind};
use crate::{telemetry, time};

use super::mm_struct::{HEAP_AREA_END, HEAP_AREA_START, MmStruct, write_frame};

/// Most heaps (and, separately, sheds) per process.
pub const MAX_HEAPS: usize = 16;
/// Largest heap.
pub const MAX_HEAP_SIZE: u64 = 64 << 20;
/// Largest shed.
pub const MAX_SHED_SIZE: u64 = 16 << 20;
/// Largest id a caller may choose.
pub const MAX_ID: u32 = 1 << 20;
/// Alignment of process-heap allocations.
pub const HEAP_ALIGN: usize = 16;

/// Blocks of one heap whose birth times are kept; past 7/8 of them a
/// block's age is unknown (32 KiB of frames a heap).
const BIRTH_SLOTS: usize = 2048;

/// When each live block of a heap was allocated, by payload address, in
/// frames of its own: what makes the oldest block of a key, and so a key
/// that keeps growing, visible.
type Births = TraceTable<FrameSlice<Trace>>;

fn new_births() -> Option<Births> {
    FrameSlice::new(BIRTH_SLOTS, Owner::KernelHeap).map(TraceTable::new)
}

fn now_ms() -> u32 {
    (time::uptime_us() / 1000) as u32
}

/// One keyed heap.
pub struct ProcHeap {
    /// Id within the process.
    pub id: u32,
    /// First byte.
    pub start: u64,
    /// Bytes (`heapSize`).
    pub size: u64,
    heap: Heap,
    /// `None` when no frames were left for it.
    births: Option<Births>,
}

/// One shed.
#[derive(Debug, Clone, Copy)]
pub struct Shed {
    /// Id within the process.
    pub id: u32,
    /// First byte.
    pub start: u64,
    /// Bytes asked for (`shedSize`).
    pub size: u64,
}

/// The heaps and sheds of a process.
#[derive(Default)]
pub struct ProcMemory {
    heaps: Vec<ProcHeap>,
    sheds: Vec<Shed>,
}

/// Blocks in use under one key of one heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyUsage {
    /// The heap.
    pub heap_id: u32,
    /// The allocation key.
    pub key: u64,
    /// Blocks in use under the key.
    pub blocks: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// The lowest payload address among them.
    pub first_addr: u64,
    /// Milliseconds since boot when the oldest of them was allocated, if
    /// every one's birth was recorded.
    pub oldest_born_ms: Option<u32>,
}

impl KeyUsage {
    /// The `Leak` message for these blocks of process `pid` now.
    pub fn to_leak(&self, pid: u32) -> Leak {
        let now = time::uptime_us();
        Leak {
            ts_us: now,
            pid,
            heap_id: self.heap_id,
            key: self.key,
            blocks: self.blocks,
            bytes: self.bytes,
            first_addr: self.first_addr,
            oldest_age_ms: self
                .oldest_born_ms
                .map(|born| u64::from(((now / 1000) as u32).wrapping_sub(born))),
        }
    }
}

/// What a heap's teardown found still allocated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leaks {
    /// Blocks still allocated.
    pub blocks: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

impl core::ops::AddAssign for Leaks {
    fn add_assign(&mut self, other: Self) {
        self.blocks += other.blocks;
        self.bytes += other.bytes;
    }
}

fn heap_errno(e: &HeapError) -> Errno {
    match e {
        HeapError::OutOfMemory => Errno::NoMemory,
        _ => Errno::Invalid,
    }
}

fn page_round(size: u64) -> Result<u64, Errno> {
    size.checked_next_multiple_of(FRAME_SIZE)
        .ok_or(Errno::Invalid)
}

/// Picks `wanted` if free (or the lowest free id when `None`).
fn choose_id(wanted: Option<u32>, taken: impl Fn(u32) -> bool) -> Result<u32, Errno> {
    match wanted {
        Some(id) if id > MAX_ID => Err(Errno::Invalid),
        Some(id) if taken(id) => Err(Errno::Exists),
        Some(id) => Ok(id),
        None => (1..=MAX_ID).find(|&id| !taken(id)).ok_or(Errno::TooMany),
    }
}

impl ProcMemory {
    /// The heaps.
    pub fn heaps(&self) -> &[ProcHeap] {
        &self.heaps
    }

    /// The sheds.
    pub fn sheds(&self) -> &[Shed] {
        &self.sheds
    }

    /// `allocate_memory`: a heap of `heap_size` bytes and/or a shed of
    /// `shed_size` bytes (a size of 0 makes none); ids are chosen when not
    /// given. Everything is checked before anything is made.
    pub fn allocate(
        &mut self,
        mm: &mut MmStruct,
        pid: u32,
        heap_size: u64,
        shed_size: u64,
        heap_id: Option<u32>,
        shed_id: Option<u32>,
    ) -> Result<(Option<u32>, Option<u32>), Errno> {
        if heap_size == 0 && shed_size == 0 {
            return Err(Errno::Invalid);
        }
        if heap_size > MAX_HEAP_SIZE || shed_size > MAX_SHED_SIZE {
            return Err(Errno::NoMemory);
        }
        if heap_size != 0 && (heap_size as usize) < crate::mm::heap::MIN_REGION_BYTES {
            return Err(Errno::Invalid);
        }
        let heap_id = (heap_size != 0)
            .then(|| {
                if self.heaps.len() >= MAX_HEAPS {
                    return Err(Errno::TooMany);
                }
                choose_id(heap_id, |id| self.heaps.iter().any(|h| h.id == id))
            })
            .transpose()?;
        let shed_id = (shed_size != 0)
            .then(|| {
                if self.sheds.len() >= MAX_HEAPS {
                    return Err(Errno::TooMany);
                }
                choose_id(shed_id, |id| self.sheds.iter().any(|s| s.id == id))
            })
            .transpose()?;
        if let Some(id) = heap_id {
            self.heaps.push(make_heap(mm, id, page_round(heap_size)?)?);
        }
        if let Some(id) = shed_id {
            match make_shed(mm, id, shed_size) {
                Ok(shed) => self.sheds.push(shed),
                Err(e) => {
                    if let Some(heap) = heap_id.and_then(|_| self.heaps.pop()) {
                        drop_heap(mm, pid, heap);
                    }
                    return Err(e);
                }
            }
        }
        Ok((heap_id, shed_id))
    }

    fn heap_mut(&mut self, id: u32) -> Result<&mut ProcHeap, Errno> {
        self.heaps
            .iter_mut()
            .find(|h| h.id == id)
            .ok_or(Errno::NoEnt)
    }

    /// `allocate(size, key)` in heap `id`; returns the payload's address.
    pub fn heap_alloc(
        &mut self,
        mm: &MmStruct,
        pid: u32,
        id: u32,
        size: u64,
        key: u64,
        caller: u64,
    ) -> Result<u64, Errno> {
        let heap = self.heap_mut(id)?;
        if size == 0 || size > heap.size {
            return Err(Errno::Invalid);
        }
        let result = mm.space().with_active(|| {
            heap.heap
                .alloc(size as usize, HEAP_ALIGN, BlockTag::new(pid, key))
        });
        match result {
            Ok(p) => {
                let addr = p.as_ptr() as u64;
                if let Some(births) = &mut heap.births {
                    // A full table only costs this block its age.
                    let _ = births.insert(Trace::new(addr, now_ms(), StackId::NONE));
                }
                events::heap_alloc(pid, id, p, size as usize, HEAP_ALIGN, key, caller);
                Ok(addr)
            }
            Err(e) => {
                events::heap_error(pid, id, &e, size as usize, caller);
                Err(heap_errno(&e))
            }
        }
    }

    /// `free` of a block of heap `id`; a bad pointer is reported and
    /// refused.
    pub fn heap_free(
        &mut self,
        mm: &MmStruct,
        pid: u32,
        id: u32,
        addr: u64,
        caller: u64,
    ) -> Result<(), Errno> {
        let heap = self.heap_mut(id)?;
        if !(heap.start..heap.start + heap.size).contains(&addr) {
            events::heap_error(
                pid,
                id,
                &HeapError::InvalidPointer {
                    addr: addr as usize,
                },
                0,
                caller,
            );
            return Err(Errno::Invalid);
        }
        // The heap checks the pointer against its block headers before use.
        let ptr = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(addr as usize))
            .ok_or(Errno::Invalid)?;
        match mm.space().with_active(|| heap.heap.free_sized(ptr)) {
            Ok(size) => {
                if let Some(births) = &mut heap.births {
                    births.remove(addr);
                }
                events::heap_free(pid, id, ptr, size, caller);
                Ok(())
            }
            Err(e) => {
                events::heap_error(pid, id, &e, 0, caller);
                Err(heap_errno(&e))
            }
        }
    }

    /// Checks that `[addr, addr + len)` lies in one allocated block of heap
    /// `id`.
    pub fn check_block(
        &mut self,
        mm: &MmStruct,
        id: u32,
        addr: u64,
        len: u64,
    ) -> Result<(), Errno> {
        let heap = self.heap_mut(id)?;
        if !(heap.start..heap.start + heap.size).contains(&addr) {
            return Err(Errno::Invalid);
        }
        let end = addr.checked_add(len).ok_or(Errno::Invalid)?;
        let block = mm.space().with_active(|| heap.heap.find(addr as usize));
        match block {
            Some(b)
                if b.state == BlockState::Used
                    && addr >= b.payload as u64
                    && end <= (b.payload + b.requested) as u64 =>
            {
                Ok(())
            }
            _ => Err(Errno::Invalid),
        }
    }

    /// The shed `id`'s `[start, start + size)`.
    pub fn shed(&self, id: u32) -> Result<Shed, Errno> {
        self.sheds
            .iter()
            .find(|s| s.id == id)
            .copied()
            .ok_or(Errno::NoEnt)
    }

    /// Up to `max` blocks of heap `id` after the first `skip`, in address
    /// order, read in `mm`'s space; `None` if there is no such heap, and the
    /// flag is false if a damaged header ended the walk early.
    pub fn walk_blocks(
        &self,
        mm: &MmStruct,
        id: u32,
        skip: usize,
        max: usize,
    ) -> Option<(Vec<BlockInfo>, bool)> {
        let heap = self.heaps.iter().find(|h| h.id == id)?;
        let mut intact = true;
        let blocks = mm.space().with_active(|| {
            let mut out = Vec::new();
            for block in heap.heap.walk().skip(skip).take(max) {
                let Ok(b) = block else {
                    intact = false;
                    break;
                };
                out.push(b);
            }
            out
        });
        Some((blocks, intact))
    }

    /// `free_memory`: drops every heap and shed, reporting leaks.
    pub fn free_all(&mut self, mm: &mut MmStruct, pid: u32) -> Leaks {
        let mut leaks = Leaks::default();
        for heap in core::mem::take(&mut self.heaps) {
            leaks += drop_heap(mm, pid, heap);
        }
        for shed in core::mem::take(&mut self.sheds) {
            mm.remove_vma(
                shed.start,
                shed.start + page_round(shed.size).unwrap_or(shed.size),
            );
        }
        leaks
    }

    /// Reports leaks of every heap without dropping them (at exit, before
    /// the whole address space goes).
    pub fn report_leaks(&self, mm: &MmStruct, pid: u32) -> Leaks {
        let mut leaks = Leaks::default();
        for heap in &self.heaps {
            leaks += report_heap_leaks(mm, pid, heap);
        }
        leaks
    }

    /// The bookkeeping for a forked copy of `mm` (heaps were copied byte
    /// for byte at the same addresses).
    pub fn duplicate(&self) -> Self {
        let heaps = self
            .heaps
            .iter()
            .map(|h| ProcHeap {
                id: h.id,
                start: h.start,
                size: h.size,
                // SAFETY: `fork` copied every heap page into the child at
                // the same address before this runs, and the child's heap
                // is used only with the child's space loaded.
                heap: unsafe { h.heap.duplicate() },
                // The child's blocks were born when the parent's were.
                births: h.births.as_ref().and_then(|b| {
                    let slots = FrameSlice::new(BIRTH_SLOTS, Owner::KernelHeap)?;
                    Some(TraceTable::copy_of(slots, b))
                }),
            })
            .collect();
        Self {
            heaps,
            sheds: self.sheds.clone(),
        }
    }

    /// Totals in the `checkMemory` shape.
    pub fn summary(&self, pid: u32) -> ProgramMemory {
        let mut row = ProgramMemory {
            pid,
            nr_heaps: self.heaps.len() as u32,
            nr_sheds: self.sheds.len() as u32,
            ..ProgramMemory::default()
        };
        for h in &self.heaps {
            let used = h.used_bytes();
            row.total_heap_size += h.size;
            row.total_heap_used += used;
            row.total_heap_free += h.size - used;
        }
        row.total_shed_size = self.sheds.iter().map(|s| s.size).sum();
        row
    }
}

impl ProcHeap {
    /// Payload bytes in use (from the heap's counters; no memory read).
    pub fn used_bytes(&self) -> u64 {
        self.heap.used_bytes() as u64
    }

    /// Blocks in use per key, by key, read in `mm`'s space: what would be
    /// reported as leaks if the heap went away now. The flag is false if a
    /// damaged header cut the walk short.
    pub fn used_by_key(&self, mm: &MmStruct) -> (Vec<KeyUsage>, bool) {
        let mut by_key: BTreeMap<u64, KeyUsage> = BTreeMap::new();
        let mut intact = true;
        mm.space().with_active(|| {
            for block in self.heap.walk() {
                let Ok(block) = block else {
                    intact = false;
                    break;
                };
                if block.state != BlockState::Used {
                    continue;
                }
                let e = by_key.entry(block.tag.key).or_insert(KeyUsage {
                    heap_id: self.id,
                    key: block.tag.key,
                    blocks: 0,
                    bytes: 0,
                    first_addr: u64::MAX,
                    oldest_born_ms: Some(u32::MAX),
                });
                e.blocks += 1;
                e.bytes += block.requested as u64;
                e.first_addr = e.first_addr.min(block.payload as u64);
                let born = self
                    .births
                    .as_ref()
                    .and_then(|b| b.get(block.payload as u64));
                // One block of unknown age makes the key's oldest unknown.
                e.oldest_born_ms = match (e.oldest_born_ms, born) {
                    (Some(oldest), Some(t)) => Some(oldest.min(t.born_ms)),
                    _ => None,
                };
            }
        });
        (by_key.into_values().collect(), intact)
    }

    /// Whether `addr` lies in the heap.
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.start + self.size).contains(&addr)
    }

    /// The block containing `addr`, found by walking the heap in `mm`'s
    /// space; `None` if no intact block holds it.
    pub fn block_at(&self, mm: &MmStruct, addr: u64) -> Option<BlockInfo> {
        let addr = usize::try_from(addr).ok()?;
        mm.space().with_active(|| self.heap.find(addr))
    }

    /// Blocks in use and the largest free payload, read in `mm`'s space.
    pub fn detail(&self, mm: &MmStruct) -> (u64, u64) {
        let s = mm.space().with_active(|| self.heap.stats());
        (s.used_blocks as u64, s.largest_free as u64)
    }

    /// Checks the heap's every invariant in `mm`'s space.
    pub fn check(&self, mm: &MmStruct) -> Result<(), HeapError> {
        mm.space().with_active(|| self.heap.check())
    }
}

fn make_heap(mm: &mut MmStruct, id: u32, size: u64) -> Result<ProcHeap, Errno> {
    let start = mm.find_gap(size, HEAP_AREA_START, HEAP_AREA_END)?;
    let flags = VmFlags::READ | VmFlags::WRITE;
    let vma = Vma::new(
        VirtAddr::new(start),
        VirtAddr::new(start + size),
        flags,
        VmaKind::Heap,
    )
    .map_err(|_| Errno::Invalid)?
    .with_id(id);
    mm.add_vma(vma)?;
    if let Err(e) = mm.populate(start, start + size, flags) {
        mm.remove_vma(start, start + size);
        return Err(e);
    }
    let base = core::ptr::with_exposed_provenance_mut::<u8>(start as usize);
    let end = (start + size) as usize;
    let config = HeapConfig {
        red_zones: crate::memory::heap::red_zones(),
    };
    // SAFETY: [start, start + size) was just mapped, writable, to fresh
    // frames of this process and is used by this heap alone (the program may
    // scribble on it, which the sealed headers catch); every call into the
    // heap runs with this space loaded, and the region never grows.
    let made = mm
        .space()
        .with_active(|| unsafe { Heap::new(base, end, end, config) });
    match made {
        Ok(heap) => Ok(ProcHeap {
            id,
            start,
            size,
            heap,
            births: new_births(),
        }),
        Err(_) => {
            mm.remove_vma(start, start + size);
            Err(Errno::Invalid)
        }
    }
}

fn make_shed(mm: &mut MmStruct, id: u32, size: u64) -> Result<Shed, Errno> {
    let pages = page_round(size)?;
    let start = mm.find_gap(pages, HEAP_AREA_START, HEAP_AREA_END)?;
    let flags = VmFlags::READ | VmFlags::EXEC;
    let vma = Vma::new(
        VirtAddr::new(start),
        VirtAddr::new(start + pages),
        flags,
        VmaKind::Shed,
    )
    .map_err(|_| Errno::Invalid)?
    .with_id(id);
    mm.add_vma(vma)?;
    if let Err(e) = mm.populate(start, start + pages, flags) {
        mm.remove_vma(start, start + pages);
        return Err(e);
    }
    Ok(Shed { id, start, size })
}

/// Writes `data` at `offset` into a shed (which the program cannot write).
pub fn shed_write(mm: &MmStruct, shed: Shed, offset: u64, data: &[u8]) -> Result<(), Errno> {
    let end = offset
        .checked_add(data.len() as u64)
        .ok_or(Errno::Invalid)?;
    if end > shed.size {
        return Err(Errno::Invalid);
    }
    let mut done = 0usize;
    while done < data.len() {
        let at = shed.start + offset + done as u64;
        let in_page = (at % FRAME_SIZE) as usize;
        let n = (data.len() - done).min(FRAME_SIZE as usize - in_page);
        let (pa, _) = mm
            .space()
            .translate(VirtAddr::new(at))
            .ok_or(Errno::Fault)?;
        write_frame(
            Frame::containing_address(pa),
            in_page,
            &data[done..done + n],
        );
        done += n;
    }
    Ok(())
}

fn drop_heap(mm: &mut MmStruct, pid: u32, heap: ProcHeap) -> Leaks {
    let leaks = report_heap_leaks(mm, pid, &heap);
    mm.remove_vma(heap.start, heap.start + heap.size);
    leaks
}

/// Sends one `Leak` per key still allocated in `heap`.
fn report_heap_leaks(mm: &MmStruct, pid: u32, heap: &ProcHeap) -> Leaks {
    let (usage, _) = heap.used_by_key(mm);
    let mut leaks = Leaks::default();
    for u in usage {
        leaks += Leaks {
            blocks: u.blocks,
            bytes: u.bytes,
        };
        kwarn!(
            "pid {pid} heap {}: leaked {} blocks ({} bytes) with key {}",
            heap.id,
            u.blocks,
            u.bytes,
            u.key
        );
        telemetry::send(&KernelMsg::Leak(u.to_leak(pid)));
    }
    leaks
}
