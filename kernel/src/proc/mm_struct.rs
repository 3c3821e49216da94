//! `mm_struct`: a process's address space, its VMA set and the bounds of its
//! code, data, heaps and stack, with demand paging, copy-on-write and stack
//! growth.
//!
//! User pages are never touched through their user addresses by kernel code
//! that validates or copies (see `uaccess`): it resolves the page here, then
//! reads or writes the frame through the direct map. Only process heaps run
//! in place, with their space loaded (see `heaps`).

use alloc::boxed::Box;
use alloc::vec;

use probe_proto::FaultResolution;
use sysabi::Errno;

use crate::elf::ElfFile;
use crate::memory::virt::AddressSpace;
use crate::memory::{direct_map, phys};
use crate::mm::frame::{FRAME_SIZE, Frame, Owner, PhysAddr};
use crate::mm::paging::{PageFlags, VirtAddr};
use crate::mm::vma::{USER_END, VmFlags, Vma, VmaError, VmaKind, VmaSet};

use super::frames;

/// Most VMAs a process may have.
pub const MAX_VMAS: usize = 128;
/// Heaps and sheds are placed in `[HEAP_AREA_START, HEAP_AREA_END)`.
pub const HEAP_AREA_START: u64 = 0x1000_0000_0000;
/// End of the heap and shed area.
pub const HEAP_AREA_END: u64 = 0x2000_0000_0000;
/// `mmap` without `MAP_FIXED` places mappings in `[MMAP_START, MMAP_END)`.
pub const MMAP_START: u64 = 0x2000_0000_0000;
/// End of the `mmap` area.
pub const MMAP_END: u64 = 0x7000_0000_0000;
/// Top of the user stack.
pub const STACK_TOP: u64 = sysabi::USER_STACK_TOP;
/// Stack mapped (on demand) at start.
pub const STACK_INITIAL: u64 = 16 * 1024;
/// How far the stack may grow.
pub const STACK_LIMIT: u64 = 1024 * 1024;

const PAGE: u64 = FRAME_SIZE;

/// What an access wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// A write (else a read).
    pub write: bool,
    /// An instruction fetch.
    pub exec: bool,
}

impl Access {
    /// A read.
    pub const READ: Self = Self {
        write: false,
        exec: false,
    };
    /// A write.
    pub const WRITE: Self = Self {
        write: true,
        exec: false,
    };

    /// The access a page-fault error code describes.
    pub fn from_error_code(code: u64) -> Self {
        Self {
            write: code & (1 << 1) != 0,
            exec: code & (1 << 4) != 0,
        }
    }

    fn allowed_by(self, flags: VmFlags) -> bool {
        if self.exec {
            flags.contains(VmFlags::EXEC)
        } else if self.write {
            flags.contains(VmFlags::WRITE)
        } else {
            flags.contains(VmFlags::READ)
        }
    }
}

/// Why a fault could not be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// No VMA covers the address (and no stack may grow to it).
    NoVma,
    /// The VMA does not allow the access.
    Protection,
    /// No frame for the page.
    OutOfMemory,
}

impl From<FaultError> for Errno {
    fn from(e: FaultError) -> Self {
        match e {
            FaultError::OutOfMemory => Errno::NoMemory,
            FaultError::NoVma | FaultError::Protection => Errno::Fault,
        }
    }
}

/// A process's memory.
pub struct MmStruct {
    pid: u32,
    space: AddressSpace,
    vmas: VmaSet<Box<[Vma]>>,
    /// `[start, end)` of the program's code.
    pub code: (u64, u64),
    /// `[start, end)` of its data and bss.
    pub data: (u64, u64),
    /// Where the stack's top is.
    pub stack_top: u64,
}

fn vma_errno(e: VmaError) -> Errno {
    match e {
        VmaError::Full { .. } => Errno::TooMany,
        VmaError::NoSpace => Errno::NoMemory,
        VmaError::Overlap(_) => Errno::Exists,
        _ => Errno::Invalid,
    }
}

impl MmStruct {
    /// `mm_create`: an empty address space for `pid`.
    pub fn create(pid: u32) -> Result<Self, Errno> {
        let space = AddressSpace::new().map_err(|_| Errno::NoMemory)?;
        Ok(Self {
            pid,
            space,
            vmas: VmaSet::new(vec![Vma::UNUSED; MAX_VMAS].into_boxed_slice()),
            code: (0, 0),
            data: (0, 0),
            stack_top: STACK_TOP,
        })
    }

    /// The page tables.
    pub fn space(&self) -> &AddressSpace {
        &self.space
    }

    /// The VMAs, in address order.
    pub fn vmas(&self) -> &[Vma] {
        self.vmas.as_slice()
    }

    /// The VMA containing `addr`, or else the nearest one.
    pub fn vma_near(&self, addr: u64) -> Option<Vma> {
        let at = VirtAddr::new(addr & ((1 << 47) - 1));
        self.vmas
            .find(at)
            .or_else(|| self.vmas.nearest(at))
            .copied()
    }

    /// Pages of `[start, end)` backed by a frame.
    pub fn resident_pages(&self, start: u64, end: u64) -> u64 {
        self.space
            .tables()
            .mappings(VirtAddr::new(start)..VirtAddr::new(end))
            .count() as u64
    }

    /// User pages backed by a frame.
    pub fn resident_total(&self) -> u64 {
        self.vmas
            .iter()
            .map(|v| self.resident_pages(v.start().as_u64(), v.end().as_u64()))
            .sum()
    }

    /// Adds a VMA.
    pub fn add_vma(&mut self, vma: Vma) -> Result<Vma, Errno> {
        self.vmas.insert(vma).map_err(vma_errno)
    }

    /// A free range of `len` bytes in `[lo, hi)`, highest first.
    pub fn find_gap(&self, len: u64, lo: u64, hi: u64) -> Result<u64, Errno> {
        self.vmas
            .find_gap(len, None, VirtAddr::new(lo), VirtAddr::new(hi))
            .map(VirtAddr::as_u64)
            .map_err(vma_errno)
    }

    /// Maps a fresh zeroed frame at the page `va` with the page flags of
    /// `flags`.
    fn map_fresh(&mut self, va: u64, flags: VmFlags) -> Result<Frame, FaultError> {
        let frame =
            phys::alloc_frame(Owner::Process(self.pid)).map_err(|_| FaultError::OutOfMemory)?;
        zero_frame(frame);
        if self
            .space
            .map_page(VirtAddr::new(va), frame, flags.page_flags())
            .is_err()
        {
            let _ = phys::free_frame(frame);
            return Err(FaultError::OutOfMemory);
        }
        Ok(frame)
    }

    /// Maps every page of `[start, end)` now, with fresh zeroed frames.
    pub fn populate(&mut self, start: u64, end: u64, flags: VmFlags) -> Result<(), Errno> {
        for va in (start..end).step_by(PAGE as usize) {
            if self.space.translate(VirtAddr::new(va)).is_none() {
                self.map_fresh(va, flags)?;
            }
        }
        Ok(())
    }

    /// Loads an ELF program's segments (copied into fresh frames) and sets
    /// up the stack VMA; returns the entry point.
    pub fn load_program(&mut self, elf: &ElfFile<'_>) -> Result<u64, Errno> {
        for seg in elf.segments() {
            let vma = self.add_vma(seg.vma())?;
            let (start, end) = (vma.start().as_u64(), vma.end().as_u64());
            let data = elf.segment_data(&seg);
            let vaddr = seg.vaddr().as_u64();
            for va in (seg.page_start().as_u64()..seg.page_end().as_u64()).step_by(PAGE as usize) {
                let frame = self.map_fresh(va, seg.vm_flags())?;
                // Bytes of the file image that land in this page.
                let lo = va.max(vaddr);
                let hi = (va + PAGE).min(vaddr + data.len() as u64);
                if lo < hi {
                    let src = &data[(lo - vaddr) as usize..(hi - vaddr) as usize];
                    write_frame(frame, (lo - va) as usize, src);
                }
            }
            match seg.vma_kind() {
                VmaKind::Code => self.code = widen(self.code, start, end),
                _ => self.data = widen(self.data, start, end),
            }
        }
        let stack = Vma::new(
            VirtAddr::new(STACK_TOP - STACK_INITIAL),
            VirtAddr::new(STACK_TOP),
            VmFlags::READ | VmFlags::WRITE | VmFlags::GROWSDOWN,
            VmaKind::Stack,
        )
        .map_err(vma_errno)?;
        self.add_vma(stack)?;
        Ok(elf.entry().as_u64())
    }

    /// Resolves a fault (or a kernel access on the process's behalf) at
    /// `addr`: demand paging, copy-on-write, stack growth; or says why not.
    pub fn resolve(&mut self, addr: u64, access: Access) -> Result<FaultResolution, FaultError> {
        if addr >= USER_END {
            return Err(FaultError::NoVma);
        }
        let page = addr & !(PAGE - 1);
        let at = VirtAddr::new(addr);
        let (vma, grew) = match self.vmas.find(at).copied() {
            Some(vma) => (vma, false),
            None => (self.grow_stack(page)?, true),
        };
        if !access.allowed_by(vma.flags()) {
            return Err(FaultError::Protection);
        }
        match self.space.translate(VirtAddr::new(page)) {
            None => {
                self.map_fresh(page, vma.flags())?;
                Ok(if grew {
                    FaultResolution::StackGrowth
                } else {
                    FaultResolution::Demand
                })
            }
            Some((pa, flags)) if access.write && !flags.contains(PageFlags::WRITABLE) => {
                self.break_cow(page, Frame::containing_address(pa), vma.flags())
            }
            // Present and allowed: nothing to do (another path already
            // resolved it, or a stale TLB entry was refreshed by the walk).
            Some(_) => Ok(FaultResolution::Demand),
        }
    }

    /// Grows the stack VMA above `page` down to it, within the limit.
    fn grow_stack(&mut self, page: u64) -> Result<Vma, FaultError> {
        let (_, above) = self.vmas.neighbours(VirtAddr::new(page));
        let stack = above.copied().ok_or(FaultError::NoVma)?;
        if !stack.flags().contains(VmFlags::GROWSDOWN) || stack.end().as_u64() - page > STACK_LIMIT
        {
            return Err(FaultError::NoVma);
        }
        self.vmas
            .grow_down(stack.start(), VirtAddr::new(page))
            .map_err(|_| FaultError::NoVma)
    }

    /// A write to a present read-only page of a writable VMA: the page is
    /// shared copy-on-write. The last user takes it over in place; others
    /// get a private copy.
    fn break_cow(
        &mut self,
        page: u64,
        frame: Frame,
        flags: VmFlags,
    ) -> Result<FaultResolution, FaultError> {
        let va = VirtAddr::new(page);
        let shared = flags.contains(VmFlags::SHARED);
        if shared || frames::users(frame) == 1 {
            self.space
                .update_flags(va, flags.page_flags())
                .map_err(|_| FaultError::OutOfMemory)?;
            if !shared {
                // The last user of a private page takes it over, but it may
                // have been allocated by another process (the parent that
                // has since copied it, exited or unmapped it): the record
                // must name the one address space that maps it now. A
                // no-op when it already does.
                let _ = phys::set_owner(frame, Owner::Process(self.pid));
            }
            return Ok(FaultResolution::CowReuse);
        }
        let copy =
            phys::alloc_frame(Owner::Process(self.pid)).map_err(|_| FaultError::OutOfMemory)?;
        copy_frame(copy, frame);
        let _ = self.space.unmap_page(va);
        if self.space.map_page(va, copy, flags.page_flags()).is_err() {
            // The unmap freed no table, so this cannot fail for want of one;
            // put the shared frame back rather than lose the page.
            let _ = phys::free_frame(copy);
            let _ = self
                .space
                .map_page(va, frame, flags.page_flags() - PageFlags::WRITABLE);
            return Err(FaultError::OutOfMemory);
        }
        frames::release(frame);
        Ok(FaultResolution::CopyOnWrite)
    }

    /// Unmaps `[start, end)` page by page, releasing the frames.
    /// Walks the tables for what is mapped, so a huge, mostly empty range
    /// costs what is in it, not a step per page.
    fn unmap_pages(&mut self, start: u64, end: u64) -> u64 {
        let mapped: alloc::vec::Vec<VirtAddr> = self
            .space
            .tables()
            .mappings(VirtAddr::new(start)..VirtAddr::new(end))
            .map(|m| m.virt)
            .collect();
        let mut freed = 0;
        for va in mapped {
            if let Ok(frame) = self.space.unmap_page(va) {
                freed += u64::from(frames::release(frame));
            }
        }
        freed
    }

    /// `mmap` of an anonymous range: a VMA now, frames on first touch.
    pub fn mmap(&mut self, addr: u64, len: u64, flags: VmFlags, fixed: bool) -> Result<u64, Errno> {
        let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::Invalid)?;
        if len == 0 || len > MMAP_END - MMAP_START {
            return Err(Errno::Invalid);
        }
        let start = if fixed {
            if !addr.is_multiple_of(PAGE) {
                return Err(Errno::Invalid);
            }
            let end = addr.checked_add(len).ok_or(Errno::Invalid)?;
            // MAP_FIXED replaces what was there, but never heaps, sheds or
            // the program itself: those are the kernel's to manage.
            if self.vmas.iter().any(|v| {
                v.start().as_u64() < end
                    && addr < v.end().as_u64()
                    && !matches!(v.kind(), VmaKind::Mmap)
            }) {
                return Err(Errno::Exists);
            }
            self.munmap(addr, len)?;
            addr
        } else {
            self.find_gap(len, MMAP_START, MMAP_END)?
        };
        let vma = Vma::new(
            VirtAddr::new(start),
            VirtAddr::new(start + len),
            flags,
            VmaKind::Mmap,
        )
        .map_err(vma_errno)?;
        self.add_vma(vma)?;
        Ok(start)
    }

    /// `munmap`: only `mmap` regions may be unmapped.
    pub fn munmap(&mut self, addr: u64, len: u64) -> Result<(), Errno> {
        let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::Invalid)?;
        let end = addr.checked_add(len).ok_or(Errno::Invalid)?;
        if !addr.is_multiple_of(PAGE) || len == 0 || end > USER_END {
            return Err(Errno::Invalid);
        }
        if self.vmas.iter().any(|v| {
            v.start().as_u64() < end && addr < v.end().as_u64() && v.kind() != VmaKind::Mmap
        }) {
            return Err(Errno::Invalid);
        }
        self.vmas
            .remove_range(VirtAddr::new(addr), VirtAddr::new(end), |_| {})
            .map_err(vma_errno)?;
        // Only pages of the VMAs just removed can be mapped in the range.
        self.unmap_pages(addr, end);
        Ok(())
    }

    /// Unmaps and forgets the VMA that starts at `start` (a heap or shed
    /// being freed); returns the frames freed.
    pub fn remove_vma(&mut self, start: u64, end: u64) -> u64 {
        let freed = self.unmap_pages(start, end);
        let _ = self
            .vmas
            .remove_range(VirtAddr::new(start), VirtAddr::new(end), |_| {});
        freed
    }

    /// The copy-on-write image of this space for a child `child_pid`:
    /// private pages are shared read-only by both until one writes; shared
    /// mappings stay shared; heaps and sheds are copied now (the kernel
    /// writes heap headers in place, which must not meet a read-only page).
    pub fn fork(&mut self, child_pid: u32) -> Result<MmStruct, Errno> {
        let mut child = MmStruct::create(child_pid)?;
        child.code = self.code;
        child.data = self.data;
        child.stack_top = self.stack_top;
        let vmas: alloc::vec::Vec<Vma> = self.vmas.iter().copied().collect();
        let result = vmas.iter().try_for_each(|vma| {
            child.add_vma(*vma)?;
            self.fork_vma(&mut child, vma)
        });
        match result {
            Ok(()) => Ok(child),
            Err(e) => {
                child.destroy();
                Err(e)
            }
        }
    }

    fn fork_vma(&mut self, child: &mut MmStruct, vma: &Vma) -> Result<(), Errno> {
        let copy_now = matches!(vma.kind(), VmaKind::Heap | VmaKind::Shed);
        let shared = vma.flags().contains(VmFlags::SHARED);
        let (start, end) = (vma.start().as_u64(), vma.end().as_u64());
        let leaves: alloc::vec::Vec<_> = self
            .space
            .tables()
            .mappings(VirtAddr::new(start)..VirtAddr::new(end))
            .collect();
        for m in leaves {
            let frame = Frame::containing_address(m.phys);
            let mut flags = m.flags - PageFlags::ACCESSED - PageFlags::DIRTY;
            flags.remove(PageFlags::PRESENT);
            let child_frame = if copy_now {
                let copy =
                    phys::alloc_frame(Owner::Process(child.pid)).map_err(|_| Errno::NoMemory)?;
                copy_frame(copy, frame);
                copy
            } else {
                if !shared && flags.contains(PageFlags::WRITABLE) {
                    flags.remove(PageFlags::WRITABLE);
                    let _ = self.space.update_flags(m.virt, flags);
                }
                frames::share(frame);
                frame
            };
            if child.space.map_page(m.virt, child_frame, flags).is_err() {
                frames::release(child_frame);
                return Err(Errno::NoMemory);
            }
        }
        Ok(())
    }

    /// `mm_destroy`: unmaps everything, returns every frame (shared ones
    /// lose a user) and every page-table page; returns `(frames freed,
    /// table frames freed)`.
    pub fn destroy(self) -> (u64, u64) {
        let mut freed = 0;
        let tables = self.space.destroy(|m| {
            freed += u64::from(frames::release(Frame::containing_address(m.phys)));
        });
        (freed, tables)
    }

    /// Reads user memory `[addr, addr + out.len())` for the kernel, paging
    /// in what the VMAs allow and refusing the rest.
    pub fn copy_from_user(&mut self, addr: u64, out: &mut [u8]) -> Result<(), Errno> {
        self.each_user_chunk(addr, out.len(), Access::READ, |frame, offset, done, n| {
            read_frame(frame, offset, &mut out[done..done + n]);
        })
    }

    /// Writes `data` to user memory at `addr` for the kernel, breaking
    /// copy-on-write as a user write would.
    pub fn copy_to_user(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.each_user_chunk(addr, data.len(), Access::WRITE, |frame, offset, done, n| {
            write_frame(frame, offset, &data[done..done + n]);
        })
    }

    /// Calls `f(frame, offset in frame, bytes done, bytes in this frame)`
    /// for each page of a user range, after checking the whole range first.
    fn each_user_chunk(
        &mut self,
        addr: u64,
        len: usize,
        access: Access,
        mut f: impl FnMut(Frame, usize, usize, usize),
    ) -> Result<(), Errno> {
        let end = addr.checked_add(len as u64).ok_or(Errno::Fault)?;
        if end > USER_END || addr == 0 && len > 0 {
            return Err(Errno::Fault);
        }
        // All of it must be accessible before any byte moves.
        let mut page = addr & !(PAGE - 1);
        while page < end {
            let ok = self
                .vmas
                .find(VirtAddr::new(page.max(addr)))
                .is_some_and(|v| access.allowed_by(v.flags()));
            if !ok {
                return Err(Errno::Fault);
            }
            page += PAGE;
        }
        let mut done = 0usize;
        while done < len {
            let at = addr + done as u64;
            let offset = (at % PAGE) as usize;
            let n = (len - done).min(PAGE as usize - offset);
            let frame = match self.space.translate(VirtAddr::new(at)) {
                Some((pa, flags)) if !access.write || flags.contains(PageFlags::WRITABLE) => {
                    Frame::containing_address(pa)
                }
                _ => {
                    self.resolve(at, access).map_err(Errno::from)?;
                    let (pa, _) = self
                        .space
                        .translate(VirtAddr::new(at))
                        .ok_or(Errno::Fault)?;
                    Frame::containing_address(pa)
                }
            };
            f(frame, offset, done, n);
            done += n;
        }
        Ok(())
    }
}

fn widen(range: (u64, u64), start: u64, end: u64) -> (u64, u64) {
    if range == (0, 0) {
        (start, end)
    } else {
        (range.0.min(start), range.1.max(end))
    }
}

/// The physical address of byte `offset` of `frame`.
fn at(frame: Frame, offset: usize) -> PhysAddr {
    PhysAddr::new(frame.start_address().as_u64() + offset as u64)
}

/// Zeroes a user frame.
fn zero_frame(frame: Frame) {
    // SAFETY: `frame` is a user frame (allocated for a process, mapped only
    // in user page tables), so no Rust reference points into it.
    unsafe { direct_map::zero(frame.start_address(), PAGE as usize) }
}

/// Copies a whole user frame.
fn copy_frame(dst: Frame, src: Frame) {
    // SAFETY: as in `zero_frame`, for two distinct user frames.
    unsafe { direct_map::copy(dst.start_address(), src.start_address(), PAGE as usize) }
}

/// Writes `data` into a user frame at `offset` (within the frame).
pub(super) fn write_frame(frame: Frame, offset: usize, data: &[u8]) {
    assert!(offset + data.len() <= PAGE as usize);
    // SAFETY: as in `zero_frame`; the range stays inside the frame.
    unsafe { direct_map::write(at(frame, offset), data) }
}

/// Reads from a user frame at `offset` (within the frame).
fn read_frame(frame: Frame, offset: usize, out: &mut [u8]) {
    assert!(offset + out.len() <= PAGE as usize);
    // SAFETY: as in `zero_frame`; the range stays inside the frame.
    unsafe { direct_map::read(at(frame, offset), out) }
}
