//! The global physical frame allocator.
//!
//! Its bitmap and owner table live in the first usable RAM above the kernel
//! image large enough to hold them, reached through the direct map; they are
//! reserved in the bitmap itself with owner `Bitmap`.

use crate::arch::x86_64::{BOOT_DIRECT_MAP_BYTES, KERNEL_VMA_OFFSET, cpu};
use crate::boot_info::BootInfo;
use crate::memory::{direct_map, events};
use crate::mm::frame::{
    CheckReport, Corruption, FRAME_SIZE, Frame, FrameBitmap, FrameError, FrameRange, MemoryRegion,
    Owner, OwnerSlot, PhysAddr, SlotWidth, Usage,
};
use crate::sync::IrqMutex;

static PMM: IrqMutex<Option<FrameBitmap<'static>>> = IrqMutex::new(None);

/// One bit per frame for the consistency check to mark what it finds
/// mapped, set aside with the bitmap so that checking allocates nothing.
static MARKS: IrqMutex<&'static mut [u64]> = IrqMutex::new(&mut []);

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
    let nr_marks = nr_frames.div_ceil(64) as usize;
    let marks_offset =
        FrameBitmap::storage_bytes_with(nr_frames, SlotWidth::U16).next_multiple_of(8);
    let storage_bytes = (marks_offset + nr_marks as u64 * 8).next_multiple_of(FRAME_SIZE);
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
    // SAFETY:
    // 1. [place, place + storage_bytes) is usable RAM above the kernel image
    //    that nothing uses yet (no allocator exists before this one);
    // 2. it lies inside the boot direct map, so the pointers are mapped,
    //    writable and suitably aligned (frame-aligned start, u64 words first);
    // 3. the three slices do not overlap (the marks start 8-aligned past
    //    the owner table) and are reserved below with owner `Bitmap`, so no
    //    later allocation can alias them for the kernel's life;
    // 4. the words and marks hold zeroes or garbage, both valid `u64`s.
    let (words, owners, marks): (&mut [u64], &mut [OwnerSlot], &mut [u64]) = unsafe {
        (
            direct_map::slice_mut(PhysAddr::new(place), nr_words),
            direct_map::slice_mut(PhysAddr::new(place + nr_words as u64 * 8), nr_owners),
            direct_map::slice_mut(PhysAddr::new(place + marks_offset), nr_marks),
        )
    };
    MARKS.with(|slot| *slot = marks);
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

/// Reports the outcome of a call that handed out frames.
fn report_alloc<T>(
    result: Result<T, FrameError>,
    range: impl FnOnce(&T) -> FrameRange,
    want: u64,
    owner: Owner,
    caller: u64,
) -> Result<T, FrameError> {
    match &result {
        Ok(got) => {
            let r = range(got);
            events::page_alloc(r.start(), r.len(), owner, caller);
        }
        Err(e) => events::frame_error(*e, PhysAddr::new(0), want, caller),
    }
    result
}

/// Reports the outcome of a call that took frames back.
fn report_free<T: Copy>(
    result: Result<T, FrameError>,
    range: FrameRange,
    owner: impl FnOnce(T) -> Owner,
    caller: u64,
) -> Result<T, FrameError> {
    match result {
        Ok(v) => events::page_free(range.start(), range.len(), owner(v), caller),
        Err(e) => {
            events::frame_error(e, range.start_address(), range.len(), caller);
            kwarn!(
                "refused to free frames {:#x}+{} from {caller:#x}: {e:?}",
                range.start_address().as_u64(),
                range.len()
            );
        }
    }
    result
}

/// Allocates one frame for `owner`.
#[inline(never)]
pub fn alloc_frame(owner: Owner) -> Result<Frame, FrameError> {
    alloc_one(owner, cpu::return_address())
}

fn alloc_one(owner: Owner, caller: u64) -> Result<Frame, FrameError> {
    let result = with_pmm(|pmm| pmm.alloc_frame(owner));
    report_alloc(result, |&f| FrameRange::from_count(f, 1), 1, owner, caller)
}

/// Frees one frame, returning who held it. Freeing a free or reserved frame
/// is refused, reported, and changes nothing.
#[inline(never)]
pub fn free_frame(frame: Frame) -> Result<Owner, FrameError> {
    let caller = cpu::return_address();
    let result = with_pmm(|pmm| pmm.free_frame(frame));
    report_free(result, FrameRange::from_count(frame, 1), |o| o, caller)
}

/// Hands used `frame` over to `owner`, returning who held it: for a frame
/// that outlives its allocator in another holder. Refusals are reported
/// and change nothing (see [`FrameBitmap::set_owner`]).
///
/// A real change goes out as a `PageFree` by the old owner then a
/// `PageAlloc` by the new one, so a host that rebuilds the physical map
/// from events sees the frame change hands (the event counters count both,
/// so they still match the events); giving a frame to the owner it has
/// emits nothing.
#[inline(never)]
pub fn set_owner(frame: Frame, owner: Owner) -> Result<Owner, FrameError> {
    let caller = cpu::return_address();
    let result = with_pmm(|pmm| pmm.set_owner(frame, owner));
    match result {
        Ok(previous) if previous != owner => {
            events::page_free(frame, 1, previous, caller);
            events::page_alloc(frame, 1, owner, caller);
        }
        Ok(_) => {}
        Err(e) => {
            events::frame_error(e, frame.start_address(), 1, caller);
            kwarn!(
                "refused to give frame {:#x} to {owner:?} from {caller:#x}: {e:?}",
                frame.start_address().as_u64()
            );
        }
    }
    result
}

/// Allocates a frame for `owner` and returns its physical address.
#[inline(never)]
pub fn alloc_page(owner: Owner) -> Result<PhysAddr, FrameError> {
    alloc_one(owner, cpu::return_address()).map(Frame::start_address)
}

/// Frees the frame at physical address `addr`, which must be page-aligned.
#[inline(never)]
pub fn free_page(addr: PhysAddr) -> Result<Owner, FrameError> {
    let caller = cpu::return_address();
    let result = with_pmm(|pmm| pmm.free_page(addr));
    let range = FrameRange::from_count(Frame::containing_address(addr), 1);
    report_free(result, range, |o| o, caller)
}

/// Allocates `nr_frames` physically contiguous frames aligned to
/// `align_frames` frames.
#[inline(never)]
pub fn alloc_contiguous(
    nr_frames: u64,
    align_frames: u64,
    owner: Owner,
) -> Result<FrameRange, FrameError> {
    let caller = cpu::return_address();
    let result = with_pmm(|pmm| pmm.alloc_contiguous(nr_frames, align_frames, owner));
    report_alloc(result, |r| *r, nr_frames, owner, caller)
}

/// Frees a run from [`alloc_contiguous`]; all or nothing.
#[inline(never)]
pub fn free_contiguous(range: FrameRange) -> Result<(), FrameError> {
    let caller = cpu::return_address();
    // The owner is read under the same lock hold that frees the run.
    let result = with_pmm(|pmm| {
        let owner = pmm.owner(range.start());
        pmm.free_contiguous(range).map(|()| owner)
    });
    report_free(
        result,
        range,
        |owner: Option<Owner>| owner.unwrap_or(Owner::Other(0)),
        caller,
    )
    .map(|_| ())
}

/// Bytes of RAM the allocator manages.
pub fn get_total_memory() -> u64 {
    with_pmm(|pmm| pmm.total_frames()) * FRAME_SIZE
}

/// Bytes of RAM free.
pub fn get_free_memory() -> u64 {
    with_pmm(|pmm| pmm.free_frames()) * FRAME_SIZE
}

/// `(total RAM frames, free frames)`.
pub fn counts() -> (u64, u64) {
    with_pmm(|pmm| (pmm.total_frames(), pmm.free_frames()))
}

/// Frames per owner class.
pub fn usage() -> Usage {
    with_pmm(|pmm| pmm.usage())
}

/// Damages the allocator on purpose, so tests can see the consistency
/// check catch it (`selftest=corrupt-bitmap`).
pub fn inject_corruption(corruption: Corruption) -> Result<(), FrameError> {
    with_pmm(|pmm| pmm.inject_corruption(corruption))
}

/// Compares the bitmap, its summaries, counters and owners.
pub fn check() -> CheckReport {
    with_pmm(|pmm| pmm.check())
}

/// Runs `f` on the allocator and the check's marks (one bit per frame), with
/// the allocator's lock held.
pub fn with_frames<R>(f: impl FnOnce(&FrameBitmap<'static>, &mut [u64]) -> R) -> R {
    MARKS.with(|marks| with_pmm(|pmm| f(pmm, marks)))
}

/// Runs `f` on the allocator with its lock held, to read it (the owner
/// map reads many frames under one hold).
pub fn read<R>(f: impl FnOnce(&FrameBitmap<'static>) -> R) -> R {
    with_pmm(|pmm| f(pmm))
}

/// Who holds `frame`: `None` when it is free (or its slot is corrupt).
pub fn owner(frame: Frame) -> Option<Owner> {
    with_pmm(|pmm| pmm.owner(frame))
}

/// Types whose all-zero bytes are a valid value: plain integers and
/// structs of them, which is what frame-backed tables hold.
///
/// # Safety
/// Implement only for types where every field accepts all-zero bytes
/// (no references, no `NonNull`, no enums without a zero variant).
pub unsafe trait Zeroable: Sized {}

// SAFETY: integers accept any bytes.
unsafe impl Zeroable for u16 {}
// SAFETY: as above.
unsafe impl Zeroable for u32 {}
// SAFETY: arrays of integers accept any bytes.
unsafe impl<const N: usize> Zeroable for [u64; N] {}
// SAFETY: integers and a `bool` (zero is `false`).
unsafe impl Zeroable for crate::mm::leak::Trace {}
// SAFETY: integers and a `bool` (zero is `false`).
unsafe impl Zeroable for crate::mm::leak::Candidate {}

/// A zeroed slice of `T` in frames of its own, reached through the direct
/// map, for tables that must not live in the kernel heap; the frames go
/// back when it is dropped, unless [`Self::leak`]ed.
pub struct FrameSlice<T: Zeroable + 'static> {
    frames: FrameRange,
    slice: &'static mut [T],
}

impl<T: Zeroable + 'static> FrameSlice<T> {
    /// `len` zeroed values in fresh contiguous frames charged to `owner`;
    /// `None` without frames.
    pub fn new(len: usize, owner: Owner) -> Option<Self> {
        let bytes = (len * size_of::<T>()).max(1);
        let nr = (bytes as u64).div_ceil(FRAME_SIZE);
        let frames = alloc_contiguous(nr, 1, owner).ok()?;
        let pa = frames.start_address();
        // SAFETY: the frames were just allocated for this slice alone and
        // are freed only by `drop`, which ends the slice too; they are
        // page-aligned (enough for any `T`), and zeroed bytes are valid
        // `T`s (`Zeroable`).
        let slice = unsafe {
            direct_map::zero(pa, (nr * FRAME_SIZE) as usize);
            direct_map::slice_mut(pa, len)
        };
        Some(Self { frames, slice })
    }

    /// The slice, kept for the kernel's life: its frames are never freed.
    pub fn leak(self) -> &'static mut [T] {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so its frames stay allocated
        // and the slice is never used through `this` again.
        unsafe { core::ptr::read(&this.slice) }
    }
}

impl<T: Zeroable + 'static> core::ops::Deref for FrameSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.slice
    }
}

impl<T: Zeroable + 'static> core::ops::DerefMut for FrameSlice<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        self.slice
    }
}

impl<T: Zeroable + 'static> AsRef<[T]> for FrameSlice<T> {
    fn as_ref(&self) -> &[T] {
        self.slice
    }
}

impl<T: Zeroable + 'static> AsMut<[T]> for FrameSlice<T> {
    fn as_mut(&mut self) -> &mut [T] {
        self.slice
    }
}

impl<T: Zeroable + 'static> Drop for FrameSlice<T> {
    fn drop(&mut self) {
        let _ = free_contiguous(self.frames);
    }
}
