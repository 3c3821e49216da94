//! The global physical frame allocator.
//!
//! Its bitmap and owner table live in the first usable RAM above the kernel
//! image large enough to hold them, reached through the direct map; they are
//! reserved in the bitmap itself with owner `Bitmap`.

use crate::arch::x86_64::{BOOT_DIRECT_MAP_BYTES, KERNEL_VMA_OFFSET, phys_to_virt};
use crate::boot_info::BootInfo;
use crate::mm::frame::{
    CheckReport, FRAME_SIZE, Frame, FrameBitmap, FrameError, FrameRange, MemoryRegion, Owner,
    OwnerSlot, PhysAddr, SlotWidth, Usage,
};
use crate::sync::IrqMutex;

static PMM: IrqMutex<Option<FrameBitmap<'static>>> = IrqMutex::new(None);

unsafe extern "C" {
    /// First byte of the loaded image (physical; from the linker script).
    static __kernel_phys_start: u8;
    /// One past the last byte of the image (higher-half virtual).
    static __kernel_end: u8;
}

/// Physical range of the loaded kernel image, boot stub to end of `.bss`.
pub fn kernel_image() -> FrameRange {
    let start = &raw const __kernel_phys_start as u64;
    let end = &raw const __kernel_end as u64 - KERNEL_VMA_OFFSET;
    FrameRange::covering(PhysAddr::new(start), end - start)
}

fn regions(boot: &BootInfo) -> impl Iterator<Item = MemoryRegion> + Clone + '_ {
    boot.regions().iter().map(|r| {
        if r.is_usable() {
            MemoryRegion::usable(PhysAddr::new(r.start), r.len)
        } else {
            MemoryRegion::unusable(PhysAddr::new(r.start), r.len)
        }
    })
}

/// Builds the allocator from the boot memory map.
pub fn init(boot: &BootInfo) -> Result<(), &'static str> {
    let nr_frames = FrameBitmap::span(regions(boot));
    // 16-bit owner slots: half the table of 32-bit ones, and fewer cache misses.
    let storage_bytes =
        FrameBitmap::storage_bytes_with(nr_frames, SlotWidth::U16).next_multiple_of(FRAME_SIZE);
    let image = kernel_image();
    let image_end = image.end().start_address().as_u64();
    let place = boot
        .regions()
        .iter()
        .filter(|r| r.is_usable())
        .filter_map(|r| {
            let start = r.start.max(image_end).next_multiple_of(FRAME_SIZE);
            (start + storage_bytes <= r.end()).then_some(start)
        })
        .find(|&start| start + storage_bytes <= BOOT_DIRECT_MAP_BYTES)
        .ok_or("no usable RAM region can hold the frame bitmap")?;

    let nr_words = FrameBitmap::words_needed(nr_frames);
    let nr_owners = FrameBitmap::owner_slots_needed(nr_frames);
    let words_ptr = phys_to_virt(place) as *mut u64;
    let owners_ptr = phys_to_virt(place + nr_words as u64 * 8) as *mut OwnerSlot;
    // SAFETY:
    // 1. [place, place + storage_bytes) is usable RAM above the kernel image
    //    that nothing uses yet (no allocator exists before this one);
    // 2. it lies inside the boot direct map, so the pointers are mapped,
    //    writable and suitably aligned (frame-aligned start, u64 words first);
    // 3. the two slices do not overlap and are reserved below with owner
    //    `Bitmap`, so no later allocation can alias them for the kernel's life.
    let (words, owners) = unsafe {
        (
            core::slice::from_raw_parts_mut(words_ptr, nr_words),
            core::slice::from_raw_parts_mut(owners_ptr, nr_owners),
        )
    };
    let low_mib = FrameRange::covering(PhysAddr::new(0), 1 << 20);
    let bitmap = FrameRange::covering(PhysAddr::new(place), storage_bytes);
    let start_info = FrameRange::covering(PhysAddr::new(boot.start_info_phys), 1);
    let reserved = [
        (low_mib, Owner::Reserved),
        (start_info, Owner::BootInfo),
        (image, Owner::KernelImage),
        (bitmap, Owner::Bitmap),
    ];
    let pmm = FrameBitmap::new(nr_frames, words, owners, regions(boot), reserved)
        .map_err(|_| "the frame bitmap rejected the boot memory map")?;
    PMM.with(|slot| *slot = Some(pmm));
    Ok(())
}

fn with_pmm<R>(f: impl FnOnce(&mut FrameBitmap<'static>) -> R) -> R {
    PMM.with(|slot| {
        f(slot
            .as_mut()
            .expect("frame allocator used before memory::phys::init"))
    })
}

/// Allocates one frame for `owner`.
pub fn alloc_frame(owner: Owner) -> Result<Frame, FrameError> {
    with_pmm(|pmm| pmm.alloc_frame(owner))
}

/// Frees one frame, returning who held it.
pub fn free_frame(frame: Frame) -> Result<Owner, FrameError> {
    with_pmm(|pmm| pmm.free_frame(frame))
}

/// Frees the frame at physical address `addr`.
pub fn free_page(addr: PhysAddr) -> Result<Owner, FrameError> {
    with_pmm(|pmm| pmm.free_page(addr))
}

/// `(total RAM frames, free frames)`.
pub fn counts() -> (u64, u64) {
    with_pmm(|pmm| (pmm.total_frames(), pmm.free_frames()))
}

/// Frames per owner class.
pub fn usage() -> Usage {
    with_pmm(|pmm| pmm.usage())
}

/// Compares the bitmap, its summaries, counters and owners.
pub fn check() -> CheckReport {
    with_pmm(|pmm| pmm.check())
}
