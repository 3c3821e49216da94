//! Virtual memory: the kernel's own page tables and the address spaces
//! built on them.
//!
//! At boot the stub's tables (2 MiB pages, everything writable and
//! executable) are replaced by tables built here with the `mm::paging`
//! walker: the kernel image in 4 KiB pages with its sections' permissions
//! (text read-only and executable, rodata read-only, data and bss writable,
//! both no-execute), all RAM in the direct map (writable, no-execute), page 0
//! and the boot stack's guard page unmapped, and every kernel-half PML4 entry given its table up front so
//! address spaces made later share all kernel mappings. No kernel page is
//! both writable and executable; [`audit_wx`] proves it on the live tables.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::x86_64::{KERNEL_VMA_OFFSET, PHYS_OFFSET, boot, cpu};
use crate::boot_info::BootInfo;
use crate::memory::{events, phys};
use crate::mm::frame::{Frame, Owner, PhysAddr};
use crate::mm::paging::{
    KERNEL_HALF_START, MapError, Mapping, PAGE_SIZE, PageFlags, PageSize, PageTable, TableFrames,
    UnmapError, VirtAddr,
};
use crate::sync::IrqMutex;
use probe_proto::Region;

pub use super::direct_map::DirectMap;

/// Page-table frames from the frame allocator, owned as `PageTable`.
pub struct PageTableFrames;

impl TableFrames for PageTableFrames {
    fn alloc_table(&mut self) -> Option<Frame> {
        phys::alloc_frame(Owner::PageTable).ok()
    }

    fn free_table(&mut self, frame: Frame) {
        if let Err(why) = phys::free_frame(frame) {
            kerror!("page-table frame {frame:?} could not be freed: {why:?}");
        }
    }
}

/// A tree of page tables reached through the direct map.
pub type Tables = PageTable<DirectMap>;

static KERNEL: IrqMutex<Option<Tables>> = IrqMutex::new(None);

unsafe extern "C" {
    static __kernel_text_start: u8;
    static __kernel_text_end: u8;
    static __kernel_rodata_start: u8;
    static __kernel_rodata_end: u8;
    static __kernel_data_start: u8;
    static __kernel_data_end: u8;
}

/// Kernel text: read-only, executable.
const TEXT: PageFlags = PageFlags::GLOBAL;
/// Read-only data.
const RODATA: PageFlags = PageFlags::GLOBAL.union(PageFlags::NO_EXECUTE);
/// Writable kernel data: data, bss, stacks, heap, direct map.
pub const KERNEL_DATA: PageFlags = PageFlags::WRITABLE
    .union(PageFlags::GLOBAL)
    .union(PageFlags::NO_EXECUTE);

/// What [`init`] built.
#[derive(Debug, Clone, Copy)]
pub struct KernelLayout {
    /// Physical address of the kernel's PML4.
    pub root: u64,
    /// 4 KiB pages of the kernel image.
    pub image_pages: u64,
    /// Bytes of physical memory in the direct map.
    pub direct_map_bytes: u64,
    /// Table frames in the kernel half.
    pub table_frames: u64,
}

/// Builds the kernel's page tables and switches to them.
pub fn init(boot: &BootInfo) -> Result<KernelLayout, MapError> {
    let mut frames = PageTableFrames;
    let mut kernel = PageTable::create(DirectMap, &mut frames)?;

    // The direct map covers RAM up to the end of the highest usable
    // region, in 2 MiB pages.
    let top = boot
        .regions()
        .iter()
        .filter(|r| r.is_usable())
        .map(|r| r.end())
        .max()
        .unwrap_or(0);
    let huge = PageSize::Size2MiB.bytes();
    let direct_map_bytes = top.next_multiple_of(huge);
    for pa in (0..direct_map_bytes).step_by(huge as usize) {
        kernel
            .map_huge(
                VirtAddr::new(PHYS_OFFSET + pa),
                PhysAddr::new(pa),
                PageSize::Size2MiB,
                KERNEL_DATA,
                &mut frames,
            )?
            .ignore(); // not loaded yet
    }

    let sections = [
        (
            &raw const __kernel_text_start,
            &raw const __kernel_text_end,
            TEXT,
        ),
        (
            &raw const __kernel_rodata_start,
            &raw const __kernel_rodata_end,
            RODATA,
        ),
        (
            &raw const __kernel_data_start,
            &raw const __kernel_data_end,
            KERNEL_DATA,
        ),
    ];
    let mut image_pages = 0;
    let guard_page = boot::stack_guard_page();
    let guard = guard_page..guard_page + boot::STACK_GUARD_SIZE as u64;
    for (start, end, flags) in sections {
        for va in (start as u64..end as u64).step_by(PAGE_SIZE as usize) {
            if guard.contains(&va) {
                continue; // left unmapped: a stack overflow faults here
            }
            let frame = Frame::containing_address(PhysAddr::new(va - KERNEL_VMA_OFFSET));
            kernel
                .map_page(VirtAddr::new(va), frame, flags, &mut frames)?
                .ignore();
            image_pages += 1;
        }
    }
    kernel.preallocate_kernel_half(&mut frames)?;
    let table_frames = kernel.count_tables().kernel_half;
    let root = kernel.root().start_address().as_u64();

    // SAFETY: the new tables map the kernel image at the addresses it was
    // linked for, the boot stack (in .bss) and all RAM at PHYS_OFFSET, as
    // the boot tables did; only the boot stub's identity map (unused since
    // entry) and the RWX permissions are gone.
    unsafe { cpu::load_page_table(root) };
    cpu::enable_global_pages();
    KERNEL.with(|slot| *slot = Some(kernel));
    KERNEL_ROOT.store(root, Ordering::Relaxed);
    DIRECT_MAP_BYTES.store(direct_map_bytes, Ordering::Relaxed);
    Ok(KernelLayout {
        root,
        image_pages,
        direct_map_bytes,
        table_frames,
    })
}

fn with_kernel<R>(f: impl FnOnce(&mut Tables) -> R) -> R {
    KERNEL.with(|slot| f(slot.as_mut().expect("kernel page tables used before init")))
}

/// Physical address of the kernel's PML4, kept apart from the tables'
/// lock: it never changes after [`init`], and the scheduler and the
/// debugger need it where that lock may be held.
static KERNEL_ROOT: AtomicU64 = AtomicU64::new(0);

/// The kernel's PML4.
pub fn kernel_root() -> Frame {
    let root = KERNEL_ROOT.load(Ordering::Relaxed);
    assert!(root != 0, "kernel page tables used before init");
    Frame::containing_address(PhysAddr::new(root))
}

/// Maps the kernel page at `virt` to `frame` and reports it.
///
/// `virt` must be in the kernel half; user mappings belong to an
/// [`AddressSpace`].
pub fn map_page(virt: VirtAddr, frame: Frame, flags: PageFlags) -> Result<(), MapError> {
    if !virt.is_kernel_half() {
        return Err(MapError::NonCanonical);
    }
    let caller = cpu::return_address();
    with_kernel(|k| {
        let root = k.root();
        k.map_page(virt, frame, flags, &mut PageTableFrames)?
            .flush(|p| cpu::invalidate_page(p.start_address().as_u64()));
        events::map(root, virt, frame.start_address(), flags, caller);
        Ok(())
    })
}

/// Unmaps the kernel page at `virt`, reports it, and returns the frame it
/// mapped (still allocated: the caller frees it).
pub fn unmap_page(virt: VirtAddr) -> Result<Frame, UnmapError> {
    if !virt.is_kernel_half() {
        return Err(UnmapError::NotMapped);
    }
    let caller = cpu::return_address();
    with_kernel(|k| {
        let root = k.root();
        let (mapping, flush) = k.unmap(virt)?;
        flush.flush(|p| cpu::invalidate_page(p.start_address().as_u64()));
        events::unmap(root, &mapping, caller);
        Ok(Frame::containing_address(mapping.phys))
    })
}

/// The physical address the kernel tables map `virt` to.
pub fn get_physical_address(virt: VirtAddr) -> Option<PhysAddr> {
    with_kernel(|k| k.translate(virt).map(|(pa, _)| pa))
}

/// The flags of the kernel mapping of `virt`, if mapped.
pub fn flags_of(virt: VirtAddr) -> Option<PageFlags> {
    with_kernel(|k| k.translate(virt).map(|(_, flags)| flags))
}

/// A count of kernel-half leaves by permission.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WxAudit {
    /// Leaves (of any size) in the kernel half.
    pub leaves: u64,
    /// Leaves both writable and executable: must be 0.
    pub writable_executable: u64,
    /// Executable leaves (kernel text).
    pub executable: u64,
}

/// Walks every kernel-half mapping of the live tables and counts those that
/// are writable and executable at once.
pub fn audit_wx() -> WxAudit {
    with_kernel(|k| {
        let mut audit = WxAudit::default();
        for m in k.mappings(VirtAddr::new(KERNEL_HALF_START)..) {
            audit.leaves += 1;
            let exec = !m.flags.contains(PageFlags::NO_EXECUTE);
            audit.executable += u64::from(exec);
            audit.writable_executable += u64::from(exec && m.flags.contains(PageFlags::WRITABLE));
        }
        audit
    })
}

/// A process's address space: its own user half, the kernel's half shared.
pub struct AddressSpace {
    tables: Tables,
}

impl AddressSpace {
    /// A new, empty user half over the kernel's mappings.
    pub fn new() -> Result<Self, MapError> {
        let kernel = kernel_root();
        let tables = PageTable::new_address_space(DirectMap, &mut PageTableFrames, kernel)?;
        Ok(Self { tables })
    }

    /// Physical address of the PML4.
    pub fn root(&self) -> Frame {
        self.tables.root()
    }

    /// The page tables, for walks and dumps.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Maps a user page. The TLB is flushed for the page in case the space
    /// is live.
    pub fn map_page(
        &mut self,
        virt: VirtAddr,
        frame: Frame,
        flags: PageFlags,
    ) -> Result<(), MapError> {
        if !virt.is_user_half() {
            return Err(MapError::NonCanonical);
        }
        let caller = cpu::return_address();
        self.tables
            .map_page(virt, frame, flags, &mut PageTableFrames)?
            .flush(|p| self.invalidate(p.start_address().as_u64()));
        events::map(self.root(), virt, frame.start_address(), flags, caller);
        Ok(())
    }

    /// Unmaps a user page and returns its frame (the caller frees it).
    pub fn unmap_page(&mut self, virt: VirtAddr) -> Result<Frame, UnmapError> {
        if !virt.is_user_half() {
            return Err(UnmapError::NotMapped);
        }
        let caller = cpu::return_address();
        let (mapping, flush) = self.tables.unmap(virt)?;
        flush.flush(|p| self.invalidate(p.start_address().as_u64()));
        events::unmap(self.root(), &mapping, caller);
        Ok(Frame::containing_address(mapping.phys))
    }

    /// Where `virt` is mapped in this space.
    pub fn get_physical_address(&self, virt: VirtAddr) -> Option<PhysAddr> {
        self.tables.translate(virt).map(|(pa, _)| pa)
    }

    /// Where `virt` is mapped in this space, and the leaf's flags.
    pub fn translate(&self, virt: VirtAddr) -> Option<(PhysAddr, PageFlags)> {
        self.tables.translate(virt)
    }

    /// Changes the flags of the user page at `virt` (e.g. write access on
    /// and off for copy-on-write).
    pub fn update_flags(&mut self, virt: VirtAddr, flags: PageFlags) -> Result<(), UnmapError> {
        if !virt.is_user_half() {
            return Err(UnmapError::NotMapped);
        }
        self.tables
            .update_flags(virt, flags)?
            .flush(|p| self.invalidate(p.start_address().as_u64()));
        Ok(())
    }

    /// Runs `f` with this space loaded in CR3, then restores the one that
    /// was: for kernel code that works on a process's user memory (its heap
    /// headers) from another context. The kernel half is the same in every
    /// space, so kernel code and data stay where they are.
    pub fn with_active<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.is_active() {
            return f();
        }
        cpu::without_interrupts(|| {
            let previous = cpu::current_page_table();
            self.switch_to();
            let result = f();
            // SAFETY: `previous` was loaded a moment ago: a live space, with
            // the kernel half every space has.
            unsafe { cpu::load_page_table(previous) };
            result
        })
    }

    /// Whether this space is the one loaded in CR3.
    pub fn is_active(&self) -> bool {
        cpu::current_page_table() == self.root().start_address().as_u64()
    }

    /// Loads this space into CR3.
    pub fn switch_to(&self) {
        // SAFETY: the kernel half of every address space is a copy of the
        // kernel's PML4 entries, all preallocated at boot, so the kernel is
        // mapped identically after the switch.
        unsafe { cpu::load_page_table(self.root().start_address().as_u64()) }
    }

    fn invalidate(&self, virt: u64) {
        if self.is_active() {
            cpu::invalidate_page(virt);
        }
    }

    /// Frees every user page-table frame and the root, calling `on_leaf`
    /// with each mapped user page so the owner can release its frame;
    /// returns the table frames freed. Switches to the kernel's tables
    /// first if this space is live.
    pub fn destroy(self, mut on_leaf: impl FnMut(Mapping)) -> u64 {
        let caller = cpu::return_address();
        if self.is_active() {
            // SAFETY: the kernel's tables map the kernel as every space does.
            unsafe { cpu::load_page_table(kernel_root().start_address().as_u64()) }
        }
        let root = self.root();
        self.tables.destroy_with(&mut PageTableFrames, |m| {
            events::unmap(root, &m, caller);
            on_leaf(m);
        })
    }
}

/// The leaf that maps `virt` in the address space whose top-level table is
/// at physical `root`, read without any lock: for the debugger, which
/// reads while the kernel is stopped, and for reports that tolerate a
/// mapping changing under them.
pub fn mapping_in(root: u64, virt: u64) -> Option<Mapping> {
    let root = Frame::containing_address(PhysAddr::new(root));
    PageTable::new(DirectMap, root).mapping_at(VirtAddr::new(virt))
}

/// Bytes of RAM the direct map covers, set by [`init`].
static DIRECT_MAP_BYTES: AtomicU64 = AtomicU64::new(0);

/// The kernel image's sections as `[start, end)` virtual ranges: text,
/// read-only data, then data and bss.
pub fn image_sections() -> [(u64, u64); 3] {
    // Linker symbols: only their addresses mean anything.
    [
        (
            &raw const __kernel_text_start as u64,
            &raw const __kernel_text_end as u64,
        ),
        (
            &raw const __kernel_rodata_start as u64,
            &raw const __kernel_rodata_end as u64,
        ),
        (
            &raw const __kernel_data_start as u64,
            &raw const __kernel_data_end as u64,
        ),
    ]
}

/// What the kernel keeps at `virt` in its half: a section of the image,
/// the direct map, the kernel heap or a kernel stack; `Unknown` elsewhere.
pub fn region_of(virt: u64) -> Region {
    let [text, rodata, data] = image_sections();
    let inside = |(start, end): (u64, u64)| (start..end).contains(&virt);
    let direct_map = (
        PHYS_OFFSET,
        PHYS_OFFSET + DIRECT_MAP_BYTES.load(Ordering::Relaxed),
    );
    let heap = (
        super::heap::KERNEL_HEAP_START,
        super::heap::KERNEL_HEAP_START + super::heap::KERNEL_HEAP_MAX,
    );
    if inside(text) {
        Region::Text
    } else if inside(rodata) {
        Region::Rodata
    } else if inside(data) {
        Region::Data
    } else if inside(direct_map) {
        Region::DirectMap
    } else if inside(heap) {
        Region::KernelHeap
    } else if inside(super::kstack::area()) {
        Region::KernelStack
    } else {
        Region::Unknown
    }
}

/// Runs `f` on the kernel's page tables, under their lock.
pub fn with_kernel_tables<R>(f: impl FnOnce(&Tables) -> R) -> R {
    with_kernel(|k| f(k))
}
