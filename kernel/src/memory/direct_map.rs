//! The direct map: all RAM mapped at `PHYS_OFFSET`, writable and
//! no-execute. This is the one place where a physical address becomes a
//! pointer or a Rust reference; everything else names memory by
//! [`PhysAddr`] or [`Frame`] and comes here to touch it.
//!
//! The copies are `unsafe fn`s: only the caller knows that nothing else
//! holds a reference to the bytes (a user frame, a table frame it owns, a
//! stopped kernel), and each call site says why in its `// SAFETY:`.

use crate::arch::x86_64::phys_to_virt;
use crate::mm::frame::{FRAME_SIZE, Frame, PhysAddr};
use crate::mm::paging::PhysMem;

/// Physical memory seen through the direct map, for the page-table walker.
pub struct DirectMap;

impl PhysMem for DirectMap {
    fn read_u64(&self, pa: PhysAddr) -> u64 {
        // SAFETY: the walker reads 8-byte aligned words of page-table frames
        // (see `PhysMem`), and all RAM is mapped at PHYS_OFFSET.
        unsafe { (phys_to_virt(pa.as_u64()) as *const u64).read_volatile() }
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) {
        // SAFETY: as in `read_u64`; the walker writes only table frames it
        // owns, which no Rust reference aliases.
        unsafe { (phys_to_virt(pa.as_u64()) as *mut u64).write_volatile(value) }
    }

    fn zero_frame(&mut self, frame: Frame) {
        // SAFETY: `frame` is a table frame just handed to the walker, which
        // nothing else references.
        unsafe { zero(frame.start_address(), FRAME_SIZE as usize) }
    }
}

/// The direct-map address of physical `pa` (an address, not an access).
pub fn virt_of(pa: PhysAddr) -> u64 {
    phys_to_virt(pa.as_u64())
}

/// Zeroes `len` bytes of RAM at `pa`.
///
/// # Safety
/// `pa..pa + len` is RAM (so it lies in the direct map) that no Rust
/// reference points into and nothing else writes meanwhile.
pub unsafe fn zero(pa: PhysAddr, len: usize) {
    // SAFETY: the caller's guarantee; the direct map covers all RAM.
    unsafe { (virt_of(pa) as *mut u8).write_bytes(0, len) }
}

/// Copies `len` bytes of RAM from `src` to `dst`.
///
/// # Safety
/// As for [`zero`], for both ranges, which do not overlap.
pub unsafe fn copy(dst: PhysAddr, src: PhysAddr, len: usize) {
    // SAFETY: the caller's guarantee.
    unsafe {
        core::ptr::copy_nonoverlapping(virt_of(src) as *const u8, virt_of(dst) as *mut u8, len)
    }
}

/// Writes `data` to RAM at `pa`.
///
/// # Safety
/// As for [`zero`], for `pa..pa + data.len()`.
pub unsafe fn write(pa: PhysAddr, data: &[u8]) {
    // SAFETY: the caller's guarantee; `data` is ours and not in that range.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), virt_of(pa) as *mut u8, data.len()) }
}

/// Reads RAM at `pa` into `out`.
///
/// # Safety
/// `pa..pa + out.len()` is RAM that nothing writes meanwhile.
pub unsafe fn read(pa: PhysAddr, out: &mut [u8]) {
    // SAFETY: the caller's guarantee; `out` is ours and not in that range.
    unsafe { core::ptr::copy_nonoverlapping(virt_of(pa) as *const u8, out.as_mut_ptr(), out.len()) }
}

/// `len` values of `T` at `pa`, as a slice that lives as long as the kernel.
///
/// # Safety
/// `pa` is aligned for `T`; `pa..pa + len * size_of::<T>()` is RAM that is
/// set aside for this slice alone for the kernel's life and holds valid
/// `T`s (zeroed integers, say).
pub unsafe fn slice_mut<T>(pa: PhysAddr, len: usize) -> &'static mut [T] {
    // SAFETY: the caller's guarantee; the direct map covers all RAM and is
    // never unmapped.
    unsafe { core::slice::from_raw_parts_mut(virt_of(pa) as *mut T, len) }
}
