//! Property tests of the page-table walker against a model: random
//! sequences of map, map-huge, unmap, update and translate on emulated RAM,
//! compared step by step with a map of leaves and a set of tables, and
//! checked whole at the end (walk, table counts, teardown).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::emulate::{Ram, Tables};
use super::*;
use crate::mm::frame::{FRAME_SIZE, MAX_FRAMES, PhysAddr};

/// Enough frames for every table the generated addresses can need: the
/// PML4, PDPT, PD and PT indices each come from sets of at most 5, so a tree
/// has at most 5 + 20 + 80 tables below the root (plus the 256 PDPTs of a
/// preallocated kernel half).
const RAM_FRAMES: u64 = 512;

/// The flags a test may ask for: everything but PRESENT (always added) and
/// with HUGE now and then (which the walker must ignore).
fn flags() -> impl Strategy<Value = PageFlags> {
    let bits = [
        PageFlags::WRITABLE,
        PageFlags::USER,
        PageFlags::WRITE_THROUGH,
        PageFlags::NO_CACHE,
        PageFlags::ACCESSED,
        PageFlags::DIRTY,
        PageFlags::HUGE,
        PageFlags::GLOBAL,
        PageFlags::COW,
        PageFlags::SOFTWARE_10,
        PageFlags::SOFTWARE_11,
        PageFlags::NO_EXECUTE,
    ];
    proptest::sample::subsequence(bits.to_vec(), 0..=bits.len())
        .prop_map(|chosen| chosen.into_iter().fold(PageFlags::empty(), |a, b| a | b))
}

/// A table index that often shares tables and sits on their edges.
fn index() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0_u64), Just(1), Just(2), Just(511)]
}

/// A PML4 index on both sides of the user/kernel boundary.
fn pml4_index() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0_u64), Just(1), Just(255), Just(256), Just(511)]
}

/// A canonical address from PML4, PDPT, PD and PT indices and an offset.
fn addr_of(i4: u64, i3: u64, i2: u64, i1: u64, offset: u64) -> u64 {
    VirtAddr::new_truncate(i4 << 39 | i3 << 30 | i2 << 21 | i1 << 12 | offset).as_u64()
}

/// The start of a leaf of `size`, mostly in a small set of places so that
/// operations collide; now and then any number at all.
fn leaf_start(size: PageSize) -> impl Strategy<Value = u64> {
    let aligned = (pml4_index(), index(), index(), index()).prop_map(move |(a, b, c, d)| {
        let (c, d) = match size {
            PageSize::Size4KiB => (c, d),
            PageSize::Size2MiB => (c, 0),
            PageSize::Size1GiB => (0, 0),
        };
        addr_of(a, b, c, d, 0)
    });
    prop_oneof![9 => aligned, 1 => any::<u64>()]
}

/// Any address near the interesting places, with an offset inside 2 MiB.
fn any_addr() -> impl Strategy<Value = u64> {
    let near = (pml4_index(), index(), index(), index(), 0..FRAME_SIZE)
        .prop_map(|(a, b, c, d, off)| addr_of(a, b, c, d, off));
    prop_oneof![9 => near, 1 => any::<u64>()]
}

fn size() -> impl Strategy<Value = PageSize> {
    prop_oneof![
        6 => Just(PageSize::Size4KiB),
        2 => Just(PageSize::Size2MiB),
        1 => Just(PageSize::Size1GiB),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Map(u64, u64, PageFlags),
    MapHuge(u64, u64, PageSize, PageFlags),
    UnmapPage(u64),
    Unmap(u64),
    Update(u64, PageFlags),
    Translate(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let map_at = leaf_start(PageSize::Size4KiB);
    prop_oneof![
        5 => (map_at, 0..MAX_FRAMES, flags()).prop_map(|(v, f, fl)| Op::Map(v, f, fl)),
        2 => size().prop_flat_map(|s| (leaf_start(s), Just(s), 0..(1_u64 << 52) >> 30, flags()))
            .prop_map(|(v, s, n, fl)| Op::MapHuge(v, n << 30 & !(s.bytes() - 1), s, fl)),
        3 => leaf_start(PageSize::Size4KiB).prop_map(Op::UnmapPage),
        2 => size().prop_flat_map(leaf_start).prop_map(Op::Unmap),
        2 => (size().prop_flat_map(leaf_start), flags()).prop_map(|(v, fl)| Op::Update(v, fl)),
        3 => any_addr().prop_map(Op::Translate),
    ]
}

/// What the tree should hold: leaves by start address, and which tables
/// exist (named by the first address they cover).
#[derive(Default)]
struct Model {
    leaves: BTreeMap<u64, (u64, PageSize, PageFlags)>,
    pdpts: BTreeSet<u64>,
    pds: BTreeSet<u64>,
    pts: BTreeSet<u64>,
}

const SIZES: [PageSize; 3] = [PageSize::Size4KiB, PageSize::Size2MiB, PageSize::Size1GiB];

fn flags_of(flags: PageFlags, size: PageSize) -> PageFlags {
    let mut flags = flags | PageFlags::PRESENT;
    flags.set(PageFlags::HUGE, size != PageSize::Size4KiB);
    flags
}

impl Model {
    /// The leaf covering `virt` (canonical): its start and contents.
    fn leaf(&self, virt: u64) -> Option<(u64, (u64, PageSize, PageFlags))> {
        SIZES.iter().find_map(|s| {
            let start = virt & !(s.bytes() - 1);
            self.leaves
                .get(&start)
                .filter(|l| l.1 == *s)
                .map(|&l| (start, l))
        })
    }

    fn map(
        &mut self,
        virt: u64,
        phys: u64,
        size: PageSize,
        flags: PageFlags,
    ) -> Result<(), MapError> {
        if !phys.is_multiple_of(size.bytes()) {
            return Err(MapError::Unaligned);
        }
        if phys >= MAX_FRAMES * FRAME_SIZE {
            return Err(MapError::FrameOutOfRange);
        }
        if !VirtAddr::new(virt).is_canonical() {
            return Err(MapError::NonCanonical);
        }
        if !virt.is_multiple_of(size.bytes()) {
            return Err(MapError::Unaligned);
        }
        // A bigger leaf blocks the walk; one of the same size is the page
        // itself; a smaller one sits in a table, which the check below finds.
        match self.leaf(virt) {
            Some((_, (_, s, _))) if s > size => return Err(MapError::HugePageInTheWay),
            Some((_, (p, s, _))) if s == size => {
                let frame = Frame::containing_address(PhysAddr::new(p));
                return Err(MapError::PageAlreadyMapped(frame));
            }
            _ => {}
        }
        let table_in_the_way = match size {
            PageSize::Size4KiB => false,
            PageSize::Size2MiB => self.pts.contains(&virt),
            PageSize::Size1GiB => self.pds.contains(&virt),
        };
        if table_in_the_way {
            return Err(MapError::TableInTheWay);
        }
        self.pdpts.insert(virt & !(Level::Pml4.entry_span() - 1));
        if size <= PageSize::Size2MiB {
            self.pds.insert(virt & !(Level::Pdpt.entry_span() - 1));
        }
        if size == PageSize::Size4KiB {
            self.pts.insert(virt & !(Level::Pd.entry_span() - 1));
        }
        self.leaves
            .insert(virt, (phys, size, flags_of(flags, size)));
        Ok(())
    }

    /// The leaf an unmap or update of `virt` acts on, or its error.
    fn target(&self, virt: u64) -> Result<(u64, PageSize, PageFlags), UnmapError> {
        if !VirtAddr::new(virt).is_canonical() {
            return Err(UnmapError::NonCanonical);
        }
        if !virt.is_multiple_of(PAGE_SIZE) {
            return Err(UnmapError::Unaligned);
        }
        match self.leaf(virt) {
            None => Err(UnmapError::NotMapped),
            Some((start, _)) if start != virt => Err(UnmapError::Unaligned),
            Some((_, leaf)) => Ok(leaf),
        }
    }

    /// What `unmap_page` does: only a 4 KiB leaf may go.
    fn unmap_page(&mut self, virt: u64) -> Result<Frame, UnmapError> {
        if !VirtAddr::new(virt).is_canonical() {
            return Err(UnmapError::NonCanonical);
        }
        if !virt.is_multiple_of(PAGE_SIZE) {
            return Err(UnmapError::Unaligned);
        }
        match self.leaf(virt) {
            None => Err(UnmapError::NotMapped),
            Some((_, (_, size, _))) if size != PageSize::Size4KiB => {
                Err(UnmapError::HugePage(size))
            }
            Some((_, (phys, _, _))) => {
                self.leaves.remove(&virt);
                Ok(Frame::containing_address(PhysAddr::new(phys)))
            }
        }
    }

    fn table_count(&self) -> TableCount {
        let user = |a: &&u64| VirtAddr::new(**a).is_user_half();
        let all = || self.pdpts.iter().chain(&self.pds).chain(&self.pts);
        let user_half = all().filter(user).count() as u64;
        TableCount {
            user_half,
            kernel_half: all().count() as u64 - user_half,
        }
    }
}

/// Every entry above a model leaf is PRESENT | WRITABLE, never NO_EXECUTE,
/// and USER when the leaf is.
fn check_paths(pt: &PageTable<&Ram>, model: &Model) -> Result<(), TestCaseError> {
    for (&virt, &(_, size, flags)) in &model.leaves {
        let virt = VirtAddr::new(virt);
        let mut table = pt.root();
        for level in Level::ALL {
            if Some(size) == level.leaf_size() {
                break;
            }
            let at = table.start_address().as_u64() + virt.table_index(level) as u64 * 8;
            let entry = PageTableEntry::from_raw(pt.mem().read_u64(PhysAddr::new(at)));
            let parent = entry.flags();
            prop_assert!(parent.contains(PageFlags::PRESENT | PageFlags::WRITABLE));
            prop_assert!(!parent.contains(PageFlags::NO_EXECUTE));
            if flags.contains(PageFlags::USER) {
                prop_assert!(parent.contains(PageFlags::USER), "{virt:?} at {level:?}");
            }
            table = entry.frame();
        }
    }
    Ok(())
}

/// The address a flush was owed for.
fn flushed(flush: Flush) -> u64 {
    let mut page = None;
    flush.flush(|p| page = Some(p));
    page.map_or(0, |p| p.start_address().as_u64())
}

/// Runs `op` on both and compares the results.
fn step(
    pt: &mut PageTable<&Ram>,
    tables: &mut Tables<'_>,
    model: &mut Model,
    op: &Op,
) -> Result<(), TestCaseError> {
    match *op {
        Op::Map(virt, frame, flags) => {
            let got = pt.map_page(
                VirtAddr::new(virt),
                Frame::from_number(frame),
                flags,
                tables,
            );
            let want = model.map(virt, frame * FRAME_SIZE, PageSize::Size4KiB, flags);
            prop_assert_eq!(got.map(flushed), want.map(|()| virt));
        }
        Op::MapHuge(virt, phys, size, flags) => {
            let got = pt.map_huge(
                VirtAddr::new(virt),
                PhysAddr::new(phys),
                size,
                flags,
                tables,
            );
            let want = model.map(virt, phys, size, flags);
            prop_assert_eq!(got.map(flushed), want.map(|()| virt));
        }
        Op::UnmapPage(virt) => {
            let got = pt.unmap_page(VirtAddr::new(virt));
            let want = model.unmap_page(virt);
            prop_assert_eq!(
                got.map(|(frame, flush)| (frame, flushed(flush))),
                want.map(|f| (f, virt))
            );
        }
        Op::Unmap(virt) => {
            let got = pt.unmap(VirtAddr::new(virt));
            let want = model.target(virt).map(|(phys, size, flags)| {
                model.leaves.remove(&virt);
                let phys = PhysAddr::new(phys);
                (
                    Mapping {
                        virt: VirtAddr::new(virt),
                        phys,
                        size,
                        flags,
                    },
                    virt,
                )
            });
            prop_assert_eq!(got.map(|(m, flush)| (m, flushed(flush))), want);
        }
        Op::Update(virt, flags) => {
            let got = pt.update_flags(VirtAddr::new(virt), flags);
            let want = model.target(virt).map(|(phys, size, _)| {
                model
                    .leaves
                    .insert(virt, (phys, size, flags_of(flags, size)));
            });
            prop_assert_eq!(got.map(flushed), want.map(|()| virt));
        }
        Op::Translate(virt) => {
            let got = pt.translate(VirtAddr::new(virt));
            let want = if VirtAddr::new(virt).is_canonical() {
                model
                    .leaf(virt)
                    .map(|(start, (phys, _, flags))| (PhysAddr::new(phys + (virt - start)), flags))
            } else {
                None
            };
            prop_assert_eq!(got, want);
        }
    }
    Ok(())
}

/// The tree as a list of leaves, in address order.
fn walked(pt: &PageTable<&Ram>) -> Vec<(u64, u64, PageSize, PageFlags)> {
    pt.mappings(..)
        .map(|m| (m.virt.as_u64(), m.phys.as_u64(), m.size, m.flags))
        .collect()
}

fn modelled(model: &Model) -> Vec<(u64, u64, PageSize, PageFlags)> {
    model
        .leaves
        .iter()
        .map(|(&v, &(p, s, f))| (v, p, s, f))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn walker_agrees_with_a_model_and_destroy_returns_every_user_table(
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let ram = Ram::new(RAM_FRAMES);
        let mut tables = Tables::new(&ram);
        let mut pt = PageTable::create(&ram, &mut tables).unwrap();
        let mut model = Model::default();
        for op in &ops {
            step(&mut pt, &mut tables, &mut model, op)?;
        }
        check_paths(&pt, &model)?;
        prop_assert_eq!(walked(&pt), modelled(&model));
        let count = pt.count_tables();
        prop_assert_eq!(count, model.table_count());
        prop_assert_eq!(count.total(), tables.live().len() as u64);

        let mut leaves = Vec::new();
        let freed = pt.destroy_with(&mut tables, |m| leaves.push((m.virt.as_u64(), m.phys.as_u64(), m.size, m.flags)));
        prop_assert_eq!(freed, count.owned());
        prop_assert_eq!(tables.live().len() as u64, count.kernel_half, "only kernel-half tables are left");
        let user: Vec<_> = modelled(&model).into_iter().filter(|l| VirtAddr::new(l.0).is_user_half()).collect();
        prop_assert_eq!(leaves, user);
    }

    #[test]
    fn mappings_in_a_range_are_the_leaves_overlapping_it(
        ops in proptest::collection::vec(op(), 1..60),
        ranges in proptest::collection::vec((any_addr(), any_addr()), 1..8),
    ) {
        let ram = Ram::new(RAM_FRAMES);
        let mut tables = Tables::new(&ram);
        let mut pt = PageTable::create(&ram, &mut tables).unwrap();
        let mut model = Model::default();
        for op in &ops {
            step(&mut pt, &mut tables, &mut model, op)?;
        }
        for (a, b) in ranges {
            let (a, b) = (VirtAddr::new(a), VirtAddr::new(b));
            // Canonical bounds only: the hole's treatment has its own tests.
            if !a.is_canonical() || !b.is_canonical() {
                continue;
            }
            let got: Vec<_> = pt.mappings(a..b).map(|m| m.virt.as_u64()).collect();
            let want: Vec<_> = model
                .leaves
                .iter()
                .filter(|&(&v, &(_, s, _))| a < b && v < b.as_u64() && a.as_u64() <= v + (s.bytes() - 1))
                .map(|(&v, _)| v)
                .collect();
            prop_assert_eq!(got, want, "{:?}..{:?}", a, b);
        }
    }

    #[test]
    fn running_out_of_table_frames_never_corrupts_the_tree(
        ops in proptest::collection::vec(
            (leaf_start(PageSize::Size4KiB), 0..4_u64, any::<bool>()), 1..80),
        budgets in proptest::collection::vec(0..4_u64, 80),
    ) {
        let ram = Ram::new(RAM_FRAMES);
        let mut tables = Tables::new(&ram);
        let mut pt = PageTable::create(&ram, &mut tables).unwrap();
        let mut leaves = BTreeMap::new();
        for (&(virt, frame, map), &budget) in ops.iter().zip(&budgets) {
            // User half only, so that destroy must give back every frame.
            let virt = virt & (USER_HALF_END - 1) & !(PAGE_SIZE - 1);
            tables.budget = Some(budget);
            if map {
                match pt.map_page(VirtAddr::new(virt), Frame::from_number(frame), PageFlags::USER, &mut tables) {
                    Ok(flush) => {
                        flush.ignore();
                        prop_assert!(leaves.insert(virt, frame).is_none());
                    }
                    Err(MapError::PageAlreadyMapped(f)) => prop_assert_eq!(leaves.get(&virt), Some(&f.number())),
                    Err(e) => prop_assert_eq!(e, MapError::FrameAllocationFailed),
                }
            } else {
                let got = pt.unmap_page(VirtAddr::new(virt)).map(|(f, flush)| {
                    flush.ignore();
                    f.number()
                });
                prop_assert_eq!(got.ok(), leaves.remove(&virt));
            }
        }
        tables.budget = None;
        let walked: Vec<_> = pt.mappings(..).map(|m| (m.virt.as_u64(), m.phys.as_u64() / FRAME_SIZE)).collect();
        prop_assert_eq!(walked, leaves.into_iter().collect::<Vec<_>>());
        let count = pt.count_tables();
        prop_assert_eq!(count.total(), tables.live().len() as u64);
        prop_assert_eq!(pt.destroy(&mut tables), count.owned());
        prop_assert!(tables.live().is_empty());
        prop_assert_eq!(tables.nr_allocs, tables.nr_frees);
    }

    #[test]
    fn canonical_form_and_pages_hold_their_invariants(addr in any::<u64>()) {
        let v = VirtAddr::new(addr);
        let canonical = !(USER_HALF_END..KERNEL_HALF_START).contains(&addr);
        prop_assert_eq!(v.is_canonical(), canonical);
        let t = VirtAddr::new_truncate(addr);
        prop_assert!(t.is_canonical());
        prop_assert_eq!(t.as_u64() & ((1 << 48) - 1), addr & ((1 << 48) - 1));
        prop_assert_eq!(VirtAddr::new_truncate(t.as_u64()), t);
        match Page::containing(v) {
            Some(page) => {
                prop_assert!(canonical);
                let start = page.start_address().as_u64();
                prop_assert!(start <= addr && addr - start < PAGE_SIZE);
                prop_assert_eq!(Page::from_start_address(page.start_address()), Some(page));
            }
            None => prop_assert!(!canonical),
        }
    }
}

proptest! {
    // Each case builds and walks 256 kernel-half PDPTs: fewer cases suffice.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn address_spaces_share_kernel_mappings_and_keep_user_pages_apart(
        user in proptest::collection::vec((0..2_usize, leaf_start(PageSize::Size4KiB), 0..1000_u64), 0..40),
        kernel in proptest::collection::vec((leaf_start(PageSize::Size4KiB), 0..1000_u64), 0..20),
    ) {
        let ram = Ram::new(RAM_FRAMES);
        let mut tables = Tables::new(&ram);
        let mut kroot = PageTable::create(&ram, &mut tables).unwrap();
        kroot.preallocate_kernel_half(&mut tables).unwrap();
        let mut spaces = [
            PageTable::new_address_space(&ram, &mut tables, kroot.root()).unwrap(),
            PageTable::new_address_space(&ram, &mut tables, kroot.root()).unwrap(),
        ];
        let mut models = [BTreeMap::new(), BTreeMap::new()];
        let mut kmodel = BTreeMap::new();
        for &(virt, frame) in &kernel {
            let virt = VirtAddr::new_truncate(virt | USER_HALF_END).align_down(PAGE_SIZE);
            if kroot.map_page(virt, Frame::from_number(frame), PageFlags::WRITABLE, &mut tables).map(Flush::ignore).is_ok() {
                kmodel.insert(virt.as_u64(), frame);
            }
        }
        for &(i, virt, frame) in &user {
            let virt = VirtAddr::new(virt & (USER_HALF_END - 1)).align_down(PAGE_SIZE);
            if spaces[i].map_page(virt, Frame::from_number(frame), PageFlags::USER, &mut tables).map(Flush::ignore).is_ok() {
                models[i].insert(virt.as_u64(), frame);
            }
        }
        let kwant: Vec<_> = kmodel.into_iter().collect();
        for (space, model) in spaces.iter().zip(&models) {
            let got: Vec<_> = space.mappings(..).map(|m| (m.virt.as_u64(), m.phys.as_u64() / FRAME_SIZE)).collect();
            let want: Vec<_> = model.iter().map(|(&v, &f)| (v, f)).chain(kwant.iter().copied()).collect();
            prop_assert_eq!(got, want);
        }
        let kernel_tables = kroot.count_tables();
        for space in spaces {
            let owned = space.count_tables().owned();
            prop_assert_eq!(space.destroy(&mut tables), owned);
        }
        prop_assert_eq!(tables.live().len() as u64, kernel_tables.total());
    }
}
