//! The walker: map, unmap, translate and tear down one 4-level tree.

use super::addr::{ENTRY_COUNT, KERNEL_PML4_START, Level, Page, PageSize, VirtAddr};
use super::flags::{PageFlags, PageTableEntry};
use super::mem::{Flush, PhysMem, TableFrames};
use super::walk::{Leaves, Mappings};
use super::{MapError, UnmapError};
use crate::mm::frame::{FRAME_SIZE, Frame, MAX_FRAMES, PhysAddr};
use core::fmt;
use core::ops::RangeBounds;

/// Flags of every entry that points at a table. Permissions are decided at
/// the leaf, so intermediate entries grant everything but USER (which
/// [`PageTable::map_page`] adds on the path to a user leaf) and never set
/// NO_EXECUTE (which would forbid execution of the whole subtree).
const TABLE_FLAGS: PageFlags = PageFlags::PRESENT.union(PageFlags::WRITABLE);

/// One present leaf: what a virtual range is mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// First virtual address of the page (canonical, aligned to `size`).
    pub virt: VirtAddr,
    /// First physical address of the page (aligned to `size`).
    pub phys: PhysAddr,
    /// 4 KiB, 2 MiB or 1 GiB.
    pub size: PageSize,
    /// The leaf entry's flags, PRESENT (and HUGE for huge pages) included.
    pub flags: PageFlags,
}

/// How many table frames (besides the root) a tree holds, per half.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableCount {
    /// Tables under PML4 entries `0..256`: private to this address space.
    pub user_half: u64,
    /// Tables under PML4 entries `256..512`: normally the kernel's, shared
    /// by every address space.
    pub kernel_half: u64,
}

impl TableCount {
    /// Every table frame reachable from the root, the root included.
    #[must_use]
    pub const fn total(&self) -> u64 {
        1 + self.user_half + self.kernel_half
    }

    /// The frames [`PageTable::destroy`] gives back: the root and the user
    /// half.
    #[must_use]
    pub const fn owned(&self) -> u64 {
        1 + self.user_half
    }
}

/// The entries a walk went through, root first; the last is where it
/// stopped.
#[derive(Clone, Copy)]
struct Path {
    slots: [PhysAddr; 4],
    len: usize,
}

impl Path {
    const fn new() -> Self {
        Self {
            slots: [PhysAddr::new(0); 4],
            len: 0,
        }
    }

    const fn push(&mut self, slot: PhysAddr) {
        self.slots[self.len] = slot;
        self.len += 1;
    }

    /// The entries above the last one: the tables the walk descended through.
    fn parents(&self) -> &[PhysAddr] {
        &self.slots[..self.len.saturating_sub(1)]
    }
}

/// Where a read-only walk ended.
enum Walk {
    /// A present leaf of `size`; the path's last slot holds `entry`.
    Leaf {
        path: Path,
        entry: PageTableEntry,
        size: PageSize,
    },
    /// No present entry on the way.
    Missing,
}

/// A 4-level page-table tree rooted at a PML4 frame, reached through `M`.
///
/// `PageTable` does not own the frames: it is a view that edits them. The
/// kernel builds one over its direct map whenever it needs to edit an
/// address space; tests build one over emulated RAM. Nothing here loads CR3
/// or flushes the TLB: edits hand back a [`Flush`].
pub struct PageTable<M> {
    mem: M,
    root: Frame,
}

impl<M> fmt::Debug for PageTable<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTable")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl<M: PhysMem> PageTable<M> {
    /// The existing tree rooted at `root` (for example the boot tables).
    pub const fn new(mem: M, root: Frame) -> Self {
        Self { mem, root }
    }

    /// An empty tree: a fresh, zeroed root.
    ///
    /// # Errors
    /// [`MapError::FrameAllocationFailed`] if `tables` has no frame.
    pub fn create<A: TableFrames + ?Sized>(mut mem: M, tables: &mut A) -> Result<Self, MapError> {
        let root = tables
            .alloc_table()
            .ok_or(MapError::FrameAllocationFailed)?;
        mem.zero_frame(root);
        Ok(Self { mem, root })
    }

    /// A new address space: an empty user half and the kernel half of
    /// `kernel_root` (PML4 entries `256..512` copied), so every process sees
    /// the same kernel mappings through the same lower-level tables.
    ///
    /// Only tables that exist in the kernel root at this moment are shared;
    /// [`preallocate_kernel_half`](Self::preallocate_kernel_half) on the
    /// kernel root at boot makes that all of them, for good.
    ///
    /// # Errors
    /// [`MapError::FrameAllocationFailed`] if `tables` has no frame.
    pub fn new_address_space<A: TableFrames + ?Sized>(
        mem: M,
        tables: &mut A,
        kernel_root: Frame,
    ) -> Result<Self, MapError> {
        let mut space = Self::create(mem, tables)?;
        for index in KERNEL_PML4_START..ENTRY_COUNT {
            let entry = space.mem.read_u64(slot(kernel_root, index));
            space.mem.write_u64(slot(space.root, index), entry);
        }
        Ok(space)
    }

    /// The root (PML4) frame: what CR3 is loaded with.
    #[must_use]
    pub const fn root(&self) -> Frame {
        self.root
    }

    /// The memory access the walker uses.
    #[must_use]
    pub const fn mem(&self) -> &M {
        &self.mem
    }

    /// The walker's memory access, for edits this API does not offer.
    pub const fn mem_mut(&mut self) -> &mut M {
        &mut self.mem
    }

    /// Gives the memory access back, forgetting the root.
    pub fn into_inner(self) -> M {
        self.mem
    }

    /// Maps the 4 KiB page at `virt` to `frame`, creating missing tables.
    ///
    /// The leaf gets `flags` plus PRESENT; HUGE is structural and ignored.
    /// New intermediate entries are PRESENT | WRITABLE, with USER when the
    /// leaf is USER; existing ones on the path gain USER for a user leaf
    /// (the CPU checks USER at every level).
    ///
    /// # Errors
    /// - [`MapError::NonCanonical`], [`MapError::Unaligned`] for a bad `virt`;
    /// - [`MapError::FrameOutOfRange`] for a frame past 52 address bits;
    /// - [`MapError::HugePageInTheWay`] if a huge page covers `virt`;
    /// - [`MapError::PageAlreadyMapped`] if `virt` is mapped;
    /// - [`MapError::FrameAllocationFailed`] if a table could not be made.
    ///
    /// Only the last can happen after a table was created; such tables stay
    /// (empty and linked in), to be used by the next mapping or freed by
    /// [`destroy`](Self::destroy). Every other error changes nothing.
    pub fn map_page<A: TableFrames + ?Sized>(
        &mut self,
        virt: VirtAddr,
        frame: Frame,
        flags: PageFlags,
        tables: &mut A,
    ) -> Result<Flush, MapError> {
        if frame.number() >= MAX_FRAMES {
            return Err(MapError::FrameOutOfRange);
        }
        self.map_leaf(
            virt,
            frame.start_address(),
            PageSize::Size4KiB,
            flags,
            tables,
        )
    }

    /// Maps a 2 MiB or 1 GiB huge page at `virt` to `phys`; both must be
    /// aligned to `size`. Otherwise as [`map_page`](Self::map_page); a 4 KiB
    /// `size` is the same as `map_page`.
    ///
    /// # Errors
    /// As `map_page`, plus [`MapError::TableInTheWay`] if a table for smaller
    /// pages already occupies the slot.
    pub fn map_huge<A: TableFrames + ?Sized>(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        size: PageSize,
        flags: PageFlags,
        tables: &mut A,
    ) -> Result<Flush, MapError> {
        if !phys.is_aligned(size.bytes()) {
            return Err(MapError::Unaligned);
        }
        if phys.as_u64() >= MAX_FRAMES * FRAME_SIZE {
            return Err(MapError::FrameOutOfRange);
        }
        self.map_leaf(virt, phys, size, flags, tables)
    }

    fn map_leaf<A: TableFrames + ?Sized>(
        &mut self,
        virt: VirtAddr,
        phys: PhysAddr,
        size: PageSize,
        flags: PageFlags,
        tables: &mut A,
    ) -> Result<Flush, MapError> {
        let page = checked_start(virt, size).map_err(|e| match e {
            UnmapError::NonCanonical => MapError::NonCanonical,
            _ => MapError::Unaligned,
        })?;
        let user = flags.contains(PageFlags::USER);
        let (path, entry) = self.descend(virt, size.level(), Some((tables, user)))?;
        let leaf_slot = path.slots[path.len - 1];
        if entry.is_present() {
            return Err(if size == PageSize::Size4KiB || entry.is_huge() {
                MapError::PageAlreadyMapped(Frame::containing_address(entry.addr_for(size)))
            } else {
                MapError::TableInTheWay
            });
        }
        if user {
            self.add_user(path.parents());
        }
        let leaf = PageTableEntry::new(phys, leaf_flags(flags, size));
        self.mem.write_u64(leaf_slot, leaf.raw());
        Ok(Flush::new(page))
    }

    /// Walks from the root towards `target`, returning the path (whose last
    /// slot is the entry at `target`) and that entry. With `make`, missing
    /// tables above `target` are created (with USER if the flag says so);
    /// without, a missing one ends the walk early and its (non-present)
    /// entry is returned.
    fn descend<A: TableFrames + ?Sized>(
        &mut self,
        virt: VirtAddr,
        target: Level,
        mut make: Option<(&mut A, bool)>,
    ) -> Result<(Path, PageTableEntry), MapError> {
        let mut path = Path::new();
        let mut table = self.root;
        for level in Level::ALL {
            let at = slot(table, virt.table_index(level));
            path.push(at);
            let mut entry = PageTableEntry::from_raw(self.mem.read_u64(at));
            if level == target {
                return Ok((path, entry));
            }
            if entry.is_present() && entry.is_huge() && level != Level::Pml4 {
                return Err(MapError::HugePageInTheWay);
            }
            if !entry.is_present() {
                let Some((tables, user)) = make.as_mut() else {
                    return Ok((path, entry));
                };
                let new = tables
                    .alloc_table()
                    .ok_or(MapError::FrameAllocationFailed)?;
                self.mem.zero_frame(new);
                let mut flags = TABLE_FLAGS;
                flags.set(PageFlags::USER, *user);
                entry = PageTableEntry::new(new.start_address(), flags);
                self.mem.write_u64(at, entry.raw());
            }
            table = entry.frame();
        }
        // `target` is one of `Level::ALL`, so the loop returned.
        unreachable!()
    }

    /// Sets USER on each entry at `slots` that lacks it.
    fn add_user(&mut self, slots: &[PhysAddr]) {
        for &at in slots {
            let entry = PageTableEntry::from_raw(self.mem.read_u64(at));
            if !entry.flags().contains(PageFlags::USER) {
                let flags = entry.flags() | PageFlags::USER;
                self.mem.write_u64(at, entry.with_flags(flags).raw());
            }
        }
    }

    /// The present leaf that maps `virt`, if any (`virt` is canonical).
    fn walk(&self, virt: VirtAddr) -> Walk {
        let mut path = Path::new();
        let mut table = self.root;
        for level in Level::ALL {
            let at = slot(table, virt.table_index(level));
            path.push(at);
            let entry = PageTableEntry::from_raw(self.mem.read_u64(at));
            if !entry.is_present() {
                return Walk::Missing;
            }
            let leaf = match level {
                Level::Pml4 => None,
                Level::Pt => Some(PageSize::Size4KiB),
                Level::Pdpt | Level::Pd if entry.is_huge() => level.leaf_size(),
                Level::Pdpt | Level::Pd => None,
            };
            if let Some(size) = leaf {
                return Walk::Leaf { path, entry, size };
            }
            table = entry.frame();
        }
        Walk::Missing
    }

    /// Removes the 4 KiB mapping at `virt` and returns the frame it mapped.
    /// Tables that become empty stay, so unmapping never allocates or frees
    /// and the next mapping nearby reuses them; [`destroy`](Self::destroy)
    /// frees them.
    ///
    /// # Errors
    /// [`UnmapError::NonCanonical`], [`UnmapError::Unaligned`],
    /// [`UnmapError::NotMapped`], or [`UnmapError::HugePage`] if a huge page
    /// maps `virt` (remove it with [`unmap`](Self::unmap)).
    pub fn unmap_page(&mut self, virt: VirtAddr) -> Result<(Frame, Flush), UnmapError> {
        checked_start(virt, PageSize::Size4KiB)?;
        match self.walk(virt) {
            Walk::Leaf {
                size: PageSize::Size4KiB,
                ..
            } => {
                let (mapping, flush) = self.unmap(virt)?;
                Ok((Frame::containing_address(mapping.phys), flush))
            }
            Walk::Leaf { size, .. } => Err(UnmapError::HugePage(size)),
            Walk::Missing => Err(UnmapError::NotMapped),
        }
    }

    /// Removes the leaf of any size that starts at `virt`.
    ///
    /// # Errors
    /// [`UnmapError::NonCanonical`]; [`UnmapError::NotMapped`];
    /// [`UnmapError::Unaligned`] if `virt` is not where that leaf starts.
    pub fn unmap(&mut self, virt: VirtAddr) -> Result<(Mapping, Flush), UnmapError> {
        let (path, entry, size) = self.leaf_at(virt)?;
        let page = checked_start(virt, size)?;
        self.mem
            .write_u64(path.slots[path.len - 1], PageTableEntry::UNUSED.raw());
        let mapping = Mapping {
            virt,
            phys: entry.addr_for(size),
            size,
            flags: entry.flags(),
        };
        Ok((mapping, Flush::new(page)))
    }

    /// Replaces the flags of the leaf that starts at `virt` (of any size),
    /// keeping its frame. PRESENT is always kept and HUGE stays as it is: to
    /// remove a mapping use [`unmap`](Self::unmap). A USER leaf gets USER on
    /// its path, as in [`map_page`](Self::map_page).
    ///
    /// # Errors
    /// As [`unmap`](Self::unmap).
    pub fn update_flags(&mut self, virt: VirtAddr, flags: PageFlags) -> Result<Flush, UnmapError> {
        let (path, entry, size) = self.leaf_at(virt)?;
        let page = checked_start(virt, size)?;
        if flags.contains(PageFlags::USER) {
            self.add_user(path.parents());
        }
        let new = entry.with_flags(leaf_flags(flags, size));
        self.mem.write_u64(path.slots[path.len - 1], new.raw());
        Ok(Flush::new(page))
    }

    /// The leaf starting exactly at `virt`.
    fn leaf_at(&self, virt: VirtAddr) -> Result<(Path, PageTableEntry, PageSize), UnmapError> {
        checked_start(virt, PageSize::Size4KiB)?;
        match self.walk(virt) {
            Walk::Leaf { path, entry, size } => {
                checked_start(virt, size)?;
                Ok((path, entry, size))
            }
            Walk::Missing => Err(UnmapError::NotMapped),
        }
    }

    /// The physical address `virt` translates to, and the leaf's flags;
    /// `None` if it is not mapped or not canonical. Walks through 2 MiB and
    /// 1 GiB pages.
    #[must_use]
    pub fn translate(&self, virt: VirtAddr) -> Option<(PhysAddr, PageFlags)> {
        let mapping = self.mapping_at(virt)?;
        let offset = virt.as_u64() - mapping.virt.as_u64();
        Some((PhysAddr::new(mapping.phys.as_u64() + offset), mapping.flags))
    }

    /// The whole leaf that maps `virt`, if any.
    #[must_use]
    pub fn mapping_at(&self, virt: VirtAddr) -> Option<Mapping> {
        if !virt.is_canonical() {
            return None;
        }
        match self.walk(virt) {
            Walk::Leaf { entry, size, .. } => Some(Mapping {
                virt: virt.align_down(size.bytes()),
                phys: entry.addr_for(size),
                size,
                flags: entry.flags(),
            }),
            Walk::Missing => None,
        }
    }

    /// The 4 KiB-level entry for the page holding `virt` (any address in
    /// the page), present or not, for callers that manage entries
    /// themselves (demand paging, copy-on-write).
    ///
    /// Without `make`, `Ok(None)` means a table on the way is missing (so
    /// nothing is mapped there). With `make`, missing tables are created as
    /// PRESENT | WRITABLE; writing a USER entry through the handle adds USER
    /// on the path.
    ///
    /// # Errors
    /// [`MapError::NonCanonical`]; [`MapError::HugePageInTheWay`] if a huge
    /// page maps `virt`; [`MapError::FrameAllocationFailed`] with `make`.
    pub fn get_page<A: TableFrames + ?Sized>(
        &mut self,
        virt: VirtAddr,
        make: bool,
        tables: &mut A,
    ) -> Result<Option<PageEntry<'_, M>>, MapError> {
        let page = Page::containing(virt).ok_or(MapError::NonCanonical)?;
        let make = make.then_some((tables, false));
        let (path, _) = self.descend(virt, Level::Pt, make)?;
        if path.len != Level::ALL.len() {
            return Ok(None);
        }
        Ok(Some(PageEntry {
            mem: &mut self.mem,
            path,
            page,
        }))
    }

    /// Every present leaf overlapping `range`, in address order, each as it
    /// is (adjacent pages are not merged). Bounds in the canonical hole
    /// count as the hole's edge.
    pub fn mappings<R: RangeBounds<VirtAddr>>(&self, range: R) -> Mappings<'_, M> {
        Mappings::new(&self.mem, self.root, range)
    }

    /// [`mappings`](Self::mappings) with each leaf's effective permissions:
    /// writable and user only if every level allows them, no-execute if any
    /// level sets it, as the MMU applies them.
    pub fn leaves<R: RangeBounds<VirtAddr>>(&self, range: R) -> Leaves<'_, M> {
        Leaves(Mappings::new(&self.mem, self.root, range))
    }

    /// The raw top-level entry `index` (0 to 511).
    #[must_use]
    pub fn root_entry(&self, index: usize) -> PageTableEntry {
        let at = self.root.start_address().as_u64() + (index % ENTRY_COUNT) as u64 * 8;
        PageTableEntry::from_raw(self.mem.read_u64(PhysAddr::new(at)))
    }

    /// How many tables the tree holds, per half.
    #[must_use]
    pub fn count_tables(&self) -> TableCount {
        let mut count = TableCount::default();
        for index in 0..ENTRY_COUNT {
            let n = self.count_below(self.root, Level::Pml4, index);
            if index < KERNEL_PML4_START {
                count.user_half += n;
            } else {
                count.kernel_half += n;
            }
        }
        count
    }

    /// Calls `visit` with every table frame under the top-level entries
    /// `indices` (`0..256`: the user half, private to this space), the root
    /// itself first.
    pub fn for_each_table(&self, indices: core::ops::Range<usize>, mut visit: impl FnMut(Frame)) {
        visit(self.root);
        for index in indices {
            self.visit_below(self.root, Level::Pml4, index, &mut visit);
        }
    }

    fn visit_below(&self, table: Frame, level: Level, index: usize, visit: &mut impl FnMut(Frame)) {
        let entry = PageTableEntry::from_raw(self.mem.read_u64(slot(table, index)));
        let Some(next) = self.child_table(entry, level) else {
            return;
        };
        visit(next);
        let level = level.next().unwrap_or(Level::Pt);
        for i in 0..ENTRY_COUNT {
            self.visit_below(next, level, i, visit);
        }
    }

    /// Tables under entry `index` of `table` at `level`.
    fn count_below(&self, table: Frame, level: Level, index: usize) -> u64 {
        let entry = PageTableEntry::from_raw(self.mem.read_u64(slot(table, index)));
        let Some(next) = self.child_table(entry, level) else {
            return 0;
        };
        let level = level.next().unwrap_or(Level::Pt);
        1 + (0..ENTRY_COUNT)
            .map(|i| self.count_below(next, level, i))
            .sum::<u64>()
    }

    /// The table `entry` (at `level`) points at, if it points at one.
    fn child_table(&self, entry: PageTableEntry, level: Level) -> Option<Frame> {
        let is_table = match level {
            Level::Pml4 => true,
            Level::Pdpt | Level::Pd => !entry.is_huge(),
            Level::Pt => false,
        };
        (entry.is_present() && is_table).then(|| entry.frame())
    }

    /// Gives every empty kernel-half PML4 entry (`256..512`) a fresh PDPT,
    /// and returns how many were made.
    ///
    /// Meant for the kernel root at boot: address spaces copy the kernel's
    /// PML4 entries once, at creation, so a PDPT added later would be seen
    /// by the kernel root alone. With all 256 in place (1 MiB), every later
    /// kernel mapping lands in tables all address spaces share.
    ///
    /// # Errors
    /// [`MapError::FrameAllocationFailed`]; the PDPTs made so far stay.
    pub fn preallocate_kernel_half<A: TableFrames + ?Sized>(
        &mut self,
        tables: &mut A,
    ) -> Result<u64, MapError> {
        let mut made = 0;
        for index in KERNEL_PML4_START..ENTRY_COUNT {
            let at = slot(self.root, index);
            if PageTableEntry::from_raw(self.mem.read_u64(at)).is_present() {
                continue;
            }
            let new = tables
                .alloc_table()
                .ok_or(MapError::FrameAllocationFailed)?;
            self.mem.zero_frame(new);
            let entry = PageTableEntry::new(new.start_address(), TABLE_FLAGS);
            self.mem.write_u64(at, entry.raw());
            made += 1;
        }
        Ok(made)
    }

    /// Frees the user half's tables (under PML4 entries `0..256`) and the
    /// root, and returns how many frames went back to `tables`. The kernel
    /// half is shared and left alone; mapped frames are not touched (see
    /// [`destroy_with`](Self::destroy_with)).
    ///
    /// The tree must not be loaded in CR3 on any CPU: its frames are reused
    /// at once, so no flush is owed afterwards.
    pub fn destroy<A: TableFrames + ?Sized>(self, tables: &mut A) -> u64 {
        self.destroy_with(tables, |_| {})
    }

    /// [`destroy`](Self::destroy), also calling `on_leaf` with every present
    /// user-half leaf, so the owner can release the frames it mapped.
    pub fn destroy_with<A, F>(mut self, tables: &mut A, mut on_leaf: F) -> u64
    where
        A: TableFrames + ?Sized,
        F: FnMut(Mapping),
    {
        let mut freed = 0;
        for index in 0..KERNEL_PML4_START {
            let base = index as u64 * Level::Pml4.entry_span();
            freed += self.free_below(self.root, Level::Pml4, index, base, tables, &mut on_leaf);
        }
        tables.free_table(self.root);
        freed + 1
    }

    /// Frees the tables under entry `index` of `table` at `level` (whose
    /// range starts at `base`), reporting leaves; returns the tables freed.
    fn free_below<A, F>(
        &mut self,
        table: Frame,
        level: Level,
        index: usize,
        base: u64,
        tables: &mut A,
        on_leaf: &mut F,
    ) -> u64
    where
        A: TableFrames + ?Sized,
        F: FnMut(Mapping),
    {
        let entry = PageTableEntry::from_raw(self.mem.read_u64(slot(table, index)));
        if !entry.is_present() {
            return 0;
        }
        let Some(next) = self.child_table(entry, level) else {
            if let Some(size) = level.leaf_size() {
                on_leaf(Mapping {
                    virt: VirtAddr::new_truncate(base),
                    phys: entry.addr_for(size),
                    size,
                    flags: entry.flags(),
                });
            }
            return 0;
        };
        let level = level.next().unwrap_or(Level::Pt);
        let mut freed = 0;
        for i in 0..ENTRY_COUNT {
            let child_base = base + i as u64 * level.entry_span();
            freed += self.free_below(next, level, i, child_base, tables, on_leaf);
        }
        tables.free_table(next);
        freed + 1
    }
}

/// A handle to one 4 KiB-level entry, from [`PageTable::get_page`].
pub struct PageEntry<'a, M: PhysMem> {
    mem: &'a mut M,
    path: Path,
    page: Page,
}

impl<M: PhysMem> fmt::Debug for PageEntry<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageEntry")
            .field("page", &self.page)
            .field("slot", &self.slot())
            .field("entry", &self.read())
            .finish()
    }
}

impl<M: PhysMem> PageEntry<'_, M> {
    /// The page the entry maps.
    #[must_use]
    pub const fn page(&self) -> Page {
        self.page
    }

    /// The physical address of the 8-byte entry.
    #[must_use]
    pub const fn slot(&self) -> PhysAddr {
        self.path.slots[self.path.len - 1]
    }

    /// The entry's current value.
    #[must_use]
    pub fn read(&self) -> PageTableEntry {
        PageTableEntry::from_raw(self.mem.read_u64(self.slot()))
    }

    /// Stores `entry` as is (bit 7 is PAT at this level, not HUGE). A
    /// present USER entry gets USER on its path.
    pub fn write(&mut self, entry: PageTableEntry) -> Flush {
        if entry.is_present() && entry.flags().contains(PageFlags::USER) {
            for &at in self.path.parents() {
                let parent = PageTableEntry::from_raw(self.mem.read_u64(at));
                let flags = parent.flags() | PageFlags::USER;
                self.mem.write_u64(at, parent.with_flags(flags).raw());
            }
        }
        self.mem.write_u64(self.slot(), entry.raw());
        Flush::new(self.page)
    }
}

/// Address of entry `index` of `table`.
const fn slot(table: Frame, index: usize) -> PhysAddr {
    PhysAddr::new(table.start_address().as_u64() + index as u64 * 8)
}

/// The flags a leaf of `size` is written with: the caller's, plus PRESENT,
/// with HUGE exactly when the page is huge.
fn leaf_flags(flags: PageFlags, size: PageSize) -> PageFlags {
    let mut flags = flags | PageFlags::PRESENT;
    flags.set(PageFlags::HUGE, size != PageSize::Size4KiB);
    flags
}

/// The page starting at `virt`, checking it is canonical and aligned to
/// `size`.
fn checked_start(virt: VirtAddr, size: PageSize) -> Result<Page, UnmapError> {
    if !virt.is_canonical() {
        return Err(UnmapError::NonCanonical);
    }
    if !virt.is_aligned(size.bytes()) {
        return Err(UnmapError::Unaligned);
    }
    Page::from_start_address(virt).ok_or(UnmapError::Unaligned)
}
