//! Heaps in virtual memory: the kernel heap (the Rust `GlobalAlloc` and the
//! `kmalloc` family) and further heaps made with [`create_heap`].
//!
//! Each is an `mm::heap::Heap` (TLSF: O(1) best fit from segregated
//! size classes, splitting and coalescing) over a range of the kernel half
//! that starts small and grows page by page from the frame allocator up to
//! its maximum. Every allocation, free and refused call becomes a telemetry
//! event; a bad free is reported and changes nothing.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use crate::arch::x86_64::cpu;
use crate::memory::call_sites::{self, CallSites};
use crate::memory::virt::{self, KERNEL_DATA};
use crate::memory::{events, phys};
use crate::mm::frame::{FRAME_SIZE, Owner, PhysAddr};
use crate::mm::heap::{BlockTag, Heap, HeapConfig, HeapError, HeapStats};
use crate::mm::leak::CallStack;
use crate::mm::paging::{PageFlags, VirtAddr};
use crate::sync::IrqMutex;

pub use probe_proto::KERNEL_PID;

/// Where the kernel heap starts: PML4 slot 384, away from the direct map
/// (slot 256) and the image (slot 511).
pub const KERNEL_HEAP_START: u64 = 0xFFFF_C000_0000_0000;
/// How far the kernel heap may grow (the frame allocator may stop it first).
pub const KERNEL_HEAP_MAX: u64 = 1 << 30;
/// Bytes mapped when the kernel heap is created.
const KERNEL_HEAP_INITIAL: u64 = 64 * 1024;
/// The least a heap grows by at a time, to keep mapping calls rare.
const GROW_CHUNK: u64 = 64 * 1024;

/// Why a heap could not be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateHeapError {
    /// Bounds not page-aligned, out of order, or outside the kernel half.
    BadRange,
    /// Part of the range is already mapped.
    InUse,
    /// No frames for the initial pages.
    OutOfMemory,
    /// The heap rejected the region.
    Heap(HeapError),
}

/// A heap over a kernel-half range that maps its own pages.
pub struct VirtHeap {
    heap: Heap,
    pid: u32,
    heap_id: u32,
    /// Leaf flags of the heap's pages.
    flags: PageFlags,
}

static NEXT_HEAP_ID: AtomicU32 = AtomicU32::new(1);

/// Makes a heap over `[start, end)` that may grow to `max`: pages for
/// `[start, end)` are mapped now, the rest on demand. `supervisor` heaps are
/// kernel-only; others are also reachable from ring 3 when mapped in user
/// space. A `readonly` heap's pages are mapped read-only: only the heap's
/// own calls write them (with write protection lifted for the call), and any
/// other write faults. Red zones follow the kernel's `redzones=` option.
pub fn create_heap(
    start: u64,
    end: u64,
    max: u64,
    supervisor: bool,
    readonly: bool,
) -> Result<VirtHeap, CreateHeapError> {
    let mut flags = PageFlags::GLOBAL | PageFlags::NO_EXECUTE;
    if !supervisor {
        flags |= PageFlags::USER;
    }
    if !readonly {
        flags |= PageFlags::WRITABLE;
    }
    let id = NEXT_HEAP_ID.fetch_add(1, Ordering::Relaxed);
    VirtHeap::new(KERNEL_PID, id, start, end, max, flags, red_zones())
}

/// The `redzones=` option, for heaps made after boot.
static RED_ZONES: AtomicBool = AtomicBool::new(true);

/// Whether heaps made now get red zones (the `redzones=` option).
pub fn red_zones() -> bool {
    RED_ZONES.load(Ordering::Relaxed)
}

impl VirtHeap {
    fn new(
        pid: u32,
        heap_id: u32,
        start: u64,
        end: u64,
        max: u64,
        flags: PageFlags,
        red_zones: bool,
    ) -> Result<Self, CreateHeapError> {
        let aligned = [start, end, max]
            .iter()
            .all(|a| a.is_multiple_of(FRAME_SIZE));
        let in_kernel = VirtAddr::new(start).is_kernel_half() && start < max;
        if !aligned || start >= end || end > max || !in_kernel {
            return Err(CreateHeapError::BadRange);
        }
        if (start..end)
            .step_by(FRAME_SIZE as usize)
            .any(|va| virt::get_physical_address(VirtAddr::new(va)).is_some())
        {
            return Err(CreateHeapError::InUse);
        }
        map_range(start, end, flags).map_err(|()| CreateHeapError::OutOfMemory)?;
        let config = HeapConfig { red_zones };
        let readonly = !flags.contains(PageFlags::WRITABLE);
        let made = write_access(readonly, || {
            // SAFETY: [start, end) was just mapped to fresh frames used by
            // nothing else; [end, max) is unmapped kernel-half space that
            // only this heap maps, as it grows; addresses in the kernel half
            // are valid for the kernel's whole life once mapped.
            unsafe { Heap::new(start as *mut u8, end as usize, max as usize, config) }
        });
        match made {
            Ok(heap) => Ok(Self {
                heap,
                pid,
                heap_id,
                flags,
            }),
            Err(e) => {
                unmap_range(start, end);
                Err(CreateHeapError::Heap(e))
            }
        }
    }

    fn readonly(&self) -> bool {
        !self.flags.contains(PageFlags::WRITABLE)
    }

    /// Allocates `size` bytes aligned to `align` with key `key`, growing the
    /// heap when needed; `caller` goes into the event.
    pub fn alloc(
        &mut self,
        size: usize,
        align: usize,
        key: u64,
        zeroed: bool,
        caller: u64,
    ) -> Result<NonNull<u8>, HeapError> {
        let tag = BlockTag::new(self.pid, key);
        let flags = self.flags;
        let readonly = self.readonly();
        let heap = &mut self.heap;
        let (end, max) = (heap.end(), heap.max());
        let result = write_access(readonly, || {
            let grow = |target: usize| grow_to(end, target, max, flags);
            // SAFETY: `grow` returns an end up to which it mapped fresh
            // frames that only this heap uses, never beyond `max`.
            let p = unsafe { heap.alloc_or_grow(size, align, tag, grow) }?;
            if zeroed {
                // SAFETY: the payload is `size` bytes the heap just handed out.
                unsafe { p.as_ptr().write_bytes(0, size) };
            }
            Ok(p)
        });
        match result {
            Ok(p) => events::heap_alloc(self.pid, self.heap_id, p, size, align, key, caller),
            Err(e) => events::heap_error(self.pid, self.heap_id, &e, size, caller),
        }
        result
    }

    /// Frees the block at `ptr`; a bad pointer is reported and changes
    /// nothing.
    pub fn free(&mut self, ptr: NonNull<u8>, caller: u64) -> Result<(), HeapError> {
        let readonly = self.readonly();
        let heap = &mut self.heap;
        match write_access(readonly, || heap.free_sized(ptr)) {
            Ok(size) => {
                events::heap_free(self.pid, self.heap_id, ptr, size, caller);
                Ok(())
            }
            Err(e) => {
                events::heap_error(self.pid, self.heap_id, &e, 0, caller);
                Err(e)
            }
        }
    }

    /// Resizes the block at `ptr`; reported as a free and an allocation.
    pub fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
        caller: u64,
    ) -> Result<NonNull<u8>, HeapError> {
        let old = self.heap.block_of(ptr);
        let flags = self.flags;
        let readonly = self.readonly();
        let heap = &mut self.heap;
        let (end, max) = (heap.end(), heap.max());
        let grow = |target: usize| grow_to(end, target, max, flags);
        // SAFETY: `grow` returns an end up to which it mapped fresh frames
        // that only this heap uses, never beyond `max`.
        let result = write_access(readonly, || unsafe {
            heap.realloc_or_grow(ptr, new_size, align, grow)
        });
        match (result, old) {
            (Ok(new), Ok(old)) => {
                let key = old.tag.key;
                events::heap_free(self.pid, self.heap_id, ptr, old.requested, caller);
                events::heap_alloc(self.pid, self.heap_id, new, new_size, align, key, caller);
            }
            (Err(e), _) | (Ok(_), Err(e)) => {
                events::heap_error(self.pid, self.heap_id, &e, new_size, caller);
            }
        }
        result
    }

    /// The heap itself, for walks, checks and lookups.
    pub fn heap(&self) -> &Heap {
        &self.heap
    }

    /// `(pid, heap id)` as telemetry names the heap.
    pub fn id(&self) -> (u32, u32) {
        (self.pid, self.heap_id)
    }

    /// Block and byte counts.
    pub fn stats(&self) -> HeapStats {
        self.heap.stats()
    }
}

impl Drop for VirtHeap {
    /// Unmaps the heap's pages and returns their frames. Blocks still
    /// allocated are gone with it; their count is logged.
    fn drop(&mut self) {
        let used = self.heap.stats().used_blocks;
        if used > 0 {
            kwarn!(
                "heap {}/{} destroyed with {used} blocks still allocated",
                self.pid,
                self.heap_id
            );
        }
        unmap_range(self.heap.start() as u64, self.heap.end() as u64);
    }
}

/// Lifts write protection around `f` for read-only heaps.
fn write_access<R>(readonly: bool, f: impl FnOnce() -> R) -> R {
    if readonly {
        cpu::with_write_protect_off(f)
    } else {
        f()
    }
}

/// Maps fresh `KernelHeap` frames over `[start, end)`; on failure unmaps and
/// frees what it mapped.
fn map_range(start: u64, end: u64, flags: PageFlags) -> Result<(), ()> {
    for va in (start..end).step_by(FRAME_SIZE as usize) {
        let mapped = phys::alloc_frame(Owner::KernelHeap).ok().and_then(|frame| {
            virt::map_page(VirtAddr::new(va), frame, flags)
                .map_err(|_| {
                    let _ = phys::free_frame(frame);
                })
                .ok()
        });
        if mapped.is_none() {
            unmap_range(start, va);
            return Err(());
        }
    }
    Ok(())
}

/// Unmaps `[start, end)` and frees its frames.
fn unmap_range(start: u64, end: u64) {
    for va in (start..end).step_by(FRAME_SIZE as usize) {
        if let Ok(frame) = virt::unmap_page(VirtAddr::new(va)) {
            let _ = phys::free_frame(frame);
        }
    }
}

/// Maps pages from `end` so the heap reaches at least `target`, by at least
/// [`GROW_CHUNK`] and at most to `max`; returns the new end.
fn grow_to(end: usize, target: usize, max: usize, flags: PageFlags) -> Option<usize> {
    let end = end as u64;
    let want = (target as u64)
        .max(end + GROW_CHUNK)
        .next_multiple_of(FRAME_SIZE)
        .min(max as u64);
    if want < target as u64 {
        return None;
    }
    map_range(end, want, flags).ok()?;
    Some(want as usize)
}

/// The kernel heap and the call sites of its live blocks, under one lock
/// so a block and its record come and go together.
pub struct KernelHeap {
    heap: VirtHeap,
    /// `None` when `callsites=0` or the tables found no frames.
    sites: Option<CallSites>,
}

impl KernelHeap {
    /// The heap.
    pub fn heap(&self) -> &VirtHeap {
        &self.heap
    }

    /// The call-site records, if kept.
    pub fn sites(&self) -> Option<&CallSites> {
        self.sites.as_ref()
    }

    /// The call-site records, to mark what a scan reported.
    pub fn sites_mut(&mut self) -> Option<&mut CallSites> {
        self.sites.as_mut()
    }

    fn alloc(
        &mut self,
        size: usize,
        align: usize,
        zeroed: bool,
        caller: u64,
        stack: &CallStack,
    ) -> Option<NonNull<u8>> {
        let p = self.heap.alloc(size, align, caller, zeroed, caller).ok()?;
        if let Some(sites) = &mut self.sites {
            sites.record(p.addr().get() as u64, stack);
        }
        Some(p)
    }

    fn free(&mut self, ptr: NonNull<u8>, caller: u64) -> Result<(), HeapError> {
        self.heap.free(ptr, caller)?;
        if let Some(sites) = &mut self.sites {
            sites.forget(ptr.addr().get() as u64);
        }
        Ok(())
    }

    fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
        caller: u64,
        stack: &CallStack,
    ) -> Result<NonNull<u8>, HeapError> {
        let new = self.heap.realloc(ptr, new_size, align, caller)?;
        if let Some(sites) = &mut self.sites {
            // A resize is a new allocation for the scan: its age and call
            // site are the resize's.
            sites.forget(ptr.addr().get() as u64);
            sites.record(new.addr().get() as u64, stack);
        }
        Ok(new)
    }
}

static KERNEL_HEAP: IrqMutex<Option<KernelHeap>> = IrqMutex::new(None);

/// Creates the kernel heap, with call-site records when `call_sites`;
/// allocations before this fail.
pub fn init(red_zones: bool, call_sites: bool) -> Result<(), CreateHeapError> {
    RED_ZONES.store(red_zones, Ordering::Relaxed);
    call_sites::set_enabled(call_sites);
    let heap = VirtHeap::new(
        KERNEL_PID,
        0,
        KERNEL_HEAP_START,
        KERNEL_HEAP_START + KERNEL_HEAP_INITIAL,
        KERNEL_HEAP_START + KERNEL_HEAP_MAX,
        KERNEL_DATA,
        red_zones,
    )?;
    let sites = if call_sites {
        let sites = CallSites::new();
        if sites.is_none() {
            call_sites::set_enabled(false);
            kwarn!(
                "no frames for the kernel heap's call-site records: leak scans name no call site"
            );
        }
        sites
    } else {
        None
    };
    KERNEL_HEAP.with(|slot| *slot = Some(KernelHeap { heap, sites }));
    Ok(())
}

/// Runs `f` on the kernel heap, or returns `None` before [`init`].
pub fn with_kernel_heap<R>(f: impl FnOnce(&mut VirtHeap) -> R) -> Option<R> {
    KERNEL_HEAP.with(|slot| slot.as_mut().map(|k| f(&mut k.heap)))
}

/// Runs `f` on the kernel heap with its call-site records, or returns
/// `None` before [`init`].
pub fn with_kernel<R>(f: impl FnOnce(&mut KernelHeap) -> R) -> Option<R> {
    KERNEL_HEAP.with(|slot| slot.as_mut().map(f))
}

/// Runs `f` on the kernel heap with its call-site records unless someone
/// holds its lock (the debugger may have stopped the kernel inside it):
/// `None` then, or before [`init`].
pub fn try_with_kernel<R>(f: impl FnOnce(&mut KernelHeap) -> R) -> Option<R> {
    KERNEL_HEAP.try_with(|slot| slot.as_mut().map(f)).flatten()
}

#[inline(always)]
fn kernel_alloc(size: usize, align: usize, zeroed: bool, caller: u64) -> Option<NonNull<u8>> {
    let stack = call_sites::capture();
    with_kernel(|k| k.alloc(size, align, zeroed, caller, &stack)).flatten()
}

/// Default alignment of the `kmalloc` family.
pub const KMALLOC_ALIGN: usize = 16;

/// Allocates `size` bytes from the kernel heap (16-byte aligned).
#[inline(never)]
pub fn kmalloc(size: usize) -> Option<NonNull<u8>> {
    kernel_alloc(size, KMALLOC_ALIGN, false, cpu::return_address())
}

/// Allocates `size` bytes aligned to `align` (a power of two).
#[inline(never)]
pub fn kmalloc_aligned(size: usize, align: usize) -> Option<NonNull<u8>> {
    kernel_alloc(size, align, false, cpu::return_address())
}

/// Allocates `size` bytes (at most a page) that do not cross a page
/// boundary, so they are physically contiguous, and returns them with their
/// physical address. Larger physically contiguous buffers come from the
/// frame allocator (`phys::alloc_contiguous`) through the direct map.
#[inline(never)]
pub fn kmalloc_physical(size: usize) -> Option<(NonNull<u8>, PhysAddr)> {
    if size == 0 || size > FRAME_SIZE as usize {
        return None;
    }
    // A block aligned to its size rounded up to a power of two never
    // straddles a page.
    let align = size.next_power_of_two().max(KMALLOC_ALIGN);
    let p = kernel_alloc(size, align, false, cpu::return_address())?;
    let pa = virt::get_physical_address(VirtAddr::new(p.as_ptr() as u64))?;
    Some((p, pa))
}

/// Allocates a zeroed array of `count` elements of `size` bytes; `None` if
/// the product overflows.
#[inline(never)]
pub fn kcalloc(count: usize, size: usize) -> Option<NonNull<u8>> {
    let bytes = count.checked_mul(size)?;
    kernel_alloc(bytes, KMALLOC_ALIGN, true, cpu::return_address())
}

/// Resizes a `kmalloc` block, moving it if needed; on failure the old block
/// is untouched.
#[inline(never)]
pub fn krealloc(ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, HeapError> {
    let caller = cpu::return_address();
    let stack = call_sites::capture();
    with_kernel(|k| k.realloc(ptr, new_size, KMALLOC_ALIGN, caller, &stack))
        .unwrap_or(Err(HeapError::OutOfMemory))
}

/// Frees a `kmalloc` block. An invalid pointer or a double free is
/// reported (event and log) and returned; the heap is left intact.
#[inline(never)]
pub fn kfree(ptr: NonNull<u8>) -> Result<(), HeapError> {
    let caller = cpu::return_address();
    let result = with_kernel(|k| k.free(ptr, caller)).unwrap_or(Err(HeapError::InvalidPointer {
        addr: ptr.addr().get(),
    }));
    if let Err(e) = result {
        kerror!("kfree({:p}) from {caller:#x}: {e}", ptr);
    }
    result
}

/// Bytes free in the kernel heap's free blocks.
pub fn get_free_memory() -> usize {
    with_kernel_heap(|h| h.heap().free_bytes()).unwrap_or(0)
}

/// Bytes handed out by the kernel heap.
pub fn get_used_memory() -> usize {
    with_kernel_heap(|h| h.heap().used_bytes()).unwrap_or(0)
}

/// Block counts of the kernel heap (total, free, largest free and more).
pub fn get_heap_stats() -> HeapStats {
    with_kernel_heap(|h| h.stats()).unwrap_or_default()
}

/// The Rust allocator of the kernel: the kernel heap.
struct KernelAllocator;

// SAFETY: blocks come from the kernel heap, which hands out each byte to one
// live allocation at a time, aligned as asked, and takes back only blocks it
// handed out (anything else is refused and reported).
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let caller = cpu::caller_return_address();
        kernel_alloc(layout.size(), layout.align(), false, caller)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let caller = cpu::caller_return_address();
        kernel_alloc(layout.size(), layout.align(), true, caller)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let caller = cpu::caller_return_address();
        if let Some(p) = NonNull::new(ptr) {
            // A refused free is reported by the heap; nothing else to do.
            let _ = with_kernel(|k| k.free(p, caller));
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let caller = cpu::caller_return_address();
        let Some(p) = NonNull::new(ptr) else {
            return ptr::null_mut();
        };
        let stack = call_sites::capture();
        with_kernel(|k| k.realloc(p, new_size, layout.align(), caller, &stack).ok())
            .flatten()
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
}

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator;
