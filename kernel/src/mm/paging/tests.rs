//! Unit tests of the page-table walker on emulated RAM: address types,
//! flags, map/unmap/translate, huge pages, USER propagation, address-space
//! creation and teardown, and the mapping walk.

use core::ops::Bound;

use super::emulate::{Ram, Tables};
use super::*;
use crate::mm::frame::{FRAME_SIZE, PhysAddr};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Start of the higher-half direct map the kernel uses.
const KERNEL_BASE: u64 = 0xFFFF_8000_0000_0000;

fn v(addr: u64) -> VirtAddr {
    VirtAddr::new(addr)
}

fn f(n: u64) -> Frame {
    Frame::from_number(n)
}

fn rw() -> PageFlags {
    PageFlags::WRITABLE
}

/// A fresh empty tree over `ram`.
fn empty<'r>(ram: &'r Ram, tables: &mut Tables<'r>) -> PageTable<&'r Ram> {
    PageTable::create(ram, tables).expect("emulated RAM has frames")
}

/// The entries the CPU reads on its way to `virt`, root first, up to and
/// including the first non-present one or the leaf.
fn path(pt: &PageTable<&Ram>, virt: VirtAddr) -> Vec<PageTableEntry> {
    let mut out = Vec::new();
    let mut table = pt.root();
    for level in Level::ALL {
        let at = table.start_address().as_u64() + virt.table_index(level) as u64 * 8;
        let entry = PageTableEntry::from_raw(pt.mem().read_u64(PhysAddr::new(at)));
        out.push(entry);
        if !entry.is_present() || (level != Level::Pml4 && entry.is_huge()) {
            break;
        }
        table = entry.frame();
    }
    out
}

// ---- addresses, flags, entries ----

#[test]
fn canonical_addresses_are_the_two_halves_and_nothing_in_between() {
    for good in [
        0,
        0x7FFF_FFFF_FFFF,
        KERNEL_BASE,
        u64::MAX,
        0xFFFF_FFFF_8000_0000,
    ] {
        assert!(v(good).is_canonical(), "{good:#x}");
    }
    for bad in [
        1 << 47,
        0x0001_0000_0000_0000,
        0xFFFF_7FFF_FFFF_FFFF,
        1 << 63,
    ] {
        assert!(!v(bad).is_canonical(), "{bad:#x}");
    }
    assert!(v(0x7FFF_FFFF_FFFF).is_user_half());
    assert!(!v(1 << 47).is_user_half());
    assert!(v(KERNEL_BASE).is_kernel_half());
    assert!(!v(0xFFFF_7FFF_FFFF_FFFF).is_kernel_half());
}

#[test]
fn new_truncate_copies_bit_47_upwards() {
    assert_eq!(VirtAddr::new_truncate(1 << 47), v(KERNEL_BASE));
    assert_eq!(
        VirtAddr::new_truncate(0x1234_5678_9ABC),
        v(0x1234_5678_9ABC)
    );
    assert_eq!(
        VirtAddr::new_truncate(0xABCD_0000_0000_1000),
        v(0x0000_0000_0000_1000)
    );
}

#[test]
fn page_is_canonical_and_aligned_by_construction() {
    assert_eq!(
        Page::containing(v(0x1234)).map(Page::start_address),
        Some(v(0x1000))
    );
    assert_eq!(Page::containing(v(1 << 47)), None);
    assert_eq!(Page::from_start_address(v(0x1234)), None);
    assert_eq!(
        Page::from_start_address(v(0x2000)).map(Page::start_address),
        Some(v(0x2000))
    );
    let last_user = Page::containing(v(USER_HALF_END - 1)).unwrap();
    assert_eq!(
        last_user.checked_add(1),
        None,
        "must not step into the hole"
    );
    let last = Page::containing(v(u64::MAX)).unwrap();
    assert_eq!(last.checked_add(1), None);
    assert_eq!(
        last_user.checked_add(0).map(Page::start_address),
        Some(v(USER_HALF_END - PAGE_SIZE))
    );
}

#[test]
fn table_indices_take_nine_bits_per_level() {
    let addr = v((3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0xABC);
    assert_eq!(addr.table_index(Level::Pml4), 3);
    assert_eq!(addr.table_index(Level::Pdpt), 5);
    assert_eq!(addr.table_index(Level::Pd), 7);
    assert_eq!(addr.table_index(Level::Pt), 9);
    assert_eq!(v(KERNEL_BASE).table_index(Level::Pml4), KERNEL_PML4_START);
    assert_eq!(PageSize::Size4KiB.bytes(), 4 * KIB);
    assert_eq!(PageSize::Size2MiB.bytes(), 2 * MIB);
    assert_eq!(PageSize::Size1GiB.bytes(), GIB);
    assert_eq!(Level::Pml4.entry_span(), 512 * GIB);
}

#[test]
fn flags_never_hold_address_bits() {
    assert_eq!(PageFlags::from_bits(1 << 12), None);
    assert_eq!(
        PageFlags::from_bits(0x8000_0000_0000_0003),
        Some(PageFlags::PRESENT | rw() | PageFlags::NO_EXECUTE)
    );
    assert_eq!(PageFlags::from_bits_truncate(u64::MAX), PageFlags::all());
    assert_eq!((!PageFlags::empty()).bits() & ADDRESS_MASK, 0);
    let mut flags = PageFlags::PRESENT | PageFlags::USER;
    flags -= PageFlags::USER;
    assert_eq!(flags, PageFlags::PRESENT);
    flags.set(PageFlags::COW, true);
    assert!(flags.contains(PageFlags::COW) && flags.intersects(PageFlags::COW | rw()));
    assert!(!flags.contains(PageFlags::COW | rw()));
}

#[test]
fn flags_debug_names_known_bits_and_shows_the_rest_in_hex() {
    let flags = PageFlags::PRESENT | PageFlags::NO_EXECUTE | PageFlags::from_bits_truncate(1 << 52);
    assert_eq!(
        format!("{flags:?}"),
        "PageFlags(PRESENT | NO_EXECUTE | 0x10000000000000)"
    );
    assert_eq!(format!("{:?}", PageFlags::empty()), "PageFlags(empty)");
}

#[test]
fn huge_entry_address_drops_the_pat_bit_and_low_bits() {
    let raw = 0x4020_1000 | (PageFlags::PRESENT | PageFlags::HUGE).bits();
    let entry = PageTableEntry::from_raw(raw);
    assert_eq!(entry.addr(), PhysAddr::new(0x4020_1000));
    assert_eq!(
        entry.addr_for(PageSize::Size2MiB),
        PhysAddr::new(0x4020_0000)
    );
    assert_eq!(
        entry.addr_for(PageSize::Size1GiB),
        PhysAddr::new(0x4000_0000)
    );
    let e = PageTableEntry::new(PhysAddr::new(0x5000), rw()).with_flags(PageFlags::USER);
    assert_eq!(e.raw(), 0x5000 | PageFlags::USER.bits());
}

// ---- map, translate, unmap ----

#[test]
fn mapped_page_translates_to_its_frame_plus_offset_with_its_flags() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let flags = rw() | PageFlags::NO_EXECUTE;
    let flush = pt
        .map_page(v(0x40_0000), f(0x123), flags, &mut tables)
        .unwrap();
    assert_eq!(flush.page().start_address(), v(0x40_0000));
    flush.ignore();
    assert_eq!(
        pt.translate(v(0x40_0ABC)),
        Some((
            PhysAddr::new(0x123 * FRAME_SIZE + 0xABC),
            flags | PageFlags::PRESENT
        ))
    );
    assert_eq!(pt.translate(v(0x40_1000)), None);
    assert_eq!(pt.translate(v(0x3F_F000)), None);
    assert_eq!(
        pt.translate(v(1 << 47)),
        None,
        "non-canonical never translates"
    );
}

#[test]
fn first_page_creates_three_tables_and_its_neighbour_none() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(tables.nr_allocs, 4, "root, PDPT, PD, PT");
    pt.map_page(v(0x2000), f(2), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(tables.nr_allocs, 4);
    pt.map_page(v(0x20_0000), f(3), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(tables.nr_allocs, 5, "next 2 MiB needs a new PT only");
    assert_eq!(
        pt.count_tables(),
        TableCount {
            user_half: 4,
            kernel_half: 0
        }
    );
}

#[test]
fn mapping_a_mapped_page_fails_and_changes_nothing() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x5000), f(7), rw(), &mut tables)
        .unwrap()
        .ignore();
    let before = path(&pt, v(0x5000));
    assert_eq!(
        pt.map_page(v(0x5000), f(8), PageFlags::USER, &mut tables),
        Err(MapError::PageAlreadyMapped(f(7)))
    );
    assert_eq!(path(&pt, v(0x5000)), before, "not even USER was added");
    assert_eq!(
        pt.translate(v(0x5000)).map(|t| t.0),
        Some(PhysAddr::new(7 * FRAME_SIZE))
    );
}

#[test]
fn bad_addresses_and_frames_are_refused_before_anything_is_allocated() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let cases = [
        (v(1 << 47), f(1), MapError::NonCanonical),
        (v(0xFFFF_0000_0000_0000), f(1), MapError::NonCanonical),
        (v(0x1001), f(1), MapError::Unaligned),
        (v(0x1000), f(1 << 40), MapError::FrameOutOfRange),
    ];
    for (virt, frame, err) in cases {
        assert_eq!(pt.map_page(virt, frame, rw(), &mut tables), Err(err));
    }
    assert_eq!(tables.nr_allocs, 1, "only the root");
    assert_eq!(pt.unmap_page(v(1 << 47)), Err(UnmapError::NonCanonical));
    assert_eq!(pt.unmap_page(v(0x1800)), Err(UnmapError::Unaligned));
    assert_eq!(
        pt.update_flags(v(1 << 47), rw()),
        Err(UnmapError::NonCanonical)
    );
    assert!(matches!(
        pt.get_page(v(1 << 47), true, &mut tables),
        Err(MapError::NonCanonical)
    ));
}

#[test]
fn unmap_returns_the_frame_and_a_flush_for_the_page() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x7000), f(9), rw(), &mut tables)
        .unwrap()
        .ignore();
    let (frame, flush) = pt.unmap_page(v(0x7000)).unwrap();
    assert_eq!(frame, f(9));
    let mut flushed = None;
    flush.flush(|page| flushed = Some(page));
    assert_eq!(flushed.map(Page::start_address), Some(v(0x7000)));
    assert_eq!(pt.translate(v(0x7000)), None);
    assert_eq!(pt.unmap_page(v(0x7000)), Err(UnmapError::NotMapped));
    assert_eq!(
        pt.unmap_page(v(0x7FFF_0000_0000)),
        Err(UnmapError::NotMapped)
    );
}

#[test]
fn unmap_keeps_empty_tables_for_the_next_mapping() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.unmap_page(v(0x1000)).unwrap().1.ignore();
    assert_eq!(tables.nr_frees, 0);
    assert_eq!(pt.count_tables().user_half, 3);
    pt.map_page(v(0x1000), f(2), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(tables.nr_allocs, 4, "the tables were reused");
}

#[test]
fn user_leaf_puts_user_on_every_entry_of_its_path() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    for entry in &path(&pt, v(0x1000))[..3] {
        assert_eq!(
            entry.flags(),
            PageFlags::PRESENT | rw(),
            "kernel path has no USER"
        );
    }
    // A user page next door shares the path, which must now grant USER.
    pt.map_page(v(0x2000), f(2), PageFlags::USER, &mut tables)
        .unwrap()
        .ignore();
    for entry in &path(&pt, v(0x2000))[..3] {
        assert_eq!(entry.flags(), PageFlags::PRESENT | rw() | PageFlags::USER);
    }
    // The kernel page's own leaf is still not USER: the leaf decides.
    assert!(!pt.translate(v(0x1000)).unwrap().1.contains(PageFlags::USER));
    let (_, leaf) = pt.translate(v(0x2000)).unwrap();
    assert_eq!(
        leaf,
        PageFlags::PRESENT | PageFlags::USER,
        "read-only user page"
    );
}

#[test]
fn no_execute_stays_on_the_leaf_and_never_reaches_the_tables() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let data = rw() | PageFlags::USER | PageFlags::NO_EXECUTE;
    pt.map_page(v(0x1000), f(1), data, &mut tables)
        .unwrap()
        .ignore();
    pt.map_page(v(0x2000), f(2), PageFlags::USER, &mut tables)
        .unwrap()
        .ignore();
    let entries = path(&pt, v(0x1000));
    assert!(
        entries[..3]
            .iter()
            .all(|e| !e.flags().contains(PageFlags::NO_EXECUTE))
    );
    assert!(entries[3].flags().contains(PageFlags::NO_EXECUTE));
    assert!(
        !pt.translate(v(0x2000))
            .unwrap()
            .1
            .contains(PageFlags::NO_EXECUTE)
    );
}

#[test]
fn huge_flag_given_by_the_caller_is_ignored_on_small_pages() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw() | PageFlags::HUGE, &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(
        pt.translate(v(0x1000)).unwrap().1,
        PageFlags::PRESENT | rw()
    );
}

// ---- huge pages ----

#[test]
fn huge_pages_translate_with_the_offset_inside_them() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let two = PhysAddr::new(6 * MIB);
    let one = PhysAddr::new(3 * GIB);
    pt.map_huge(v(0x4000_0000), two, PageSize::Size2MiB, rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.map_huge(
        v(KERNEL_BASE + GIB),
        one,
        PageSize::Size1GiB,
        PageFlags::GLOBAL,
        &mut tables,
    )
    .unwrap()
    .ignore();
    let (pa, flags) = pt.translate(v(0x4000_0000 + 0x1F_FFFF)).unwrap();
    assert_eq!(pa, PhysAddr::new(6 * MIB + 0x1F_FFFF));
    assert_eq!(flags, PageFlags::PRESENT | rw() | PageFlags::HUGE);
    let (pa, flags) = pt.translate(v(KERNEL_BASE + GIB + 0x1234_5678)).unwrap();
    assert_eq!(pa, PhysAddr::new(3 * GIB + 0x1234_5678));
    assert!(flags.contains(PageFlags::HUGE | PageFlags::GLOBAL));
    assert_eq!(pt.translate(v(0x4000_0000 + 2 * MIB)), None);
    let m = pt.mapping_at(v(0x4000_1234)).unwrap();
    assert_eq!(
        (m.virt, m.phys, m.size),
        (v(0x4000_0000), two, PageSize::Size2MiB)
    );
    assert_eq!(
        pt.count_tables(),
        TableCount {
            user_half: 2,
            kernel_half: 1
        }
    );
}

#[test]
fn boot_style_huge_entries_with_pat_bit_translate_correctly() {
    // The boot stub writes PD entries by hand; a PAT bit (12) in one must not
    // leak into the address.
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let mut entry = pt.get_page(v(0), true, &mut tables).unwrap().unwrap();
    entry.write(PageTableEntry::UNUSED).ignore();
    let pd = path(&pt, v(0))[1].frame().start_address();
    let raw = (8 * MIB) | (1 << 12) | (PageFlags::PRESENT | PageFlags::HUGE | rw()).bits();
    // Entry 1 of the PD maps 2..4 MiB.
    pt.mem_mut().write_u64(PhysAddr::new(pd.as_u64() + 8), raw);
    assert_eq!(
        pt.translate(v(2 * MIB + 0x10)).map(|t| t.0),
        Some(PhysAddr::new(8 * MIB + 0x10))
    );
}

#[test]
fn small_mappings_cannot_go_through_or_under_huge_pages() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_huge(
        v(0),
        PhysAddr::new(0),
        PageSize::Size2MiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    pt.map_huge(
        v(GIB),
        PhysAddr::new(GIB),
        PageSize::Size1GiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    assert_eq!(
        pt.map_page(v(0x1000), f(1), rw(), &mut tables),
        Err(MapError::HugePageInTheWay)
    );
    assert_eq!(
        pt.map_page(v(GIB + 0x1000), f(1), rw(), &mut tables),
        Err(MapError::HugePageInTheWay)
    );
    assert_eq!(
        pt.map_huge(
            v(GIB + 2 * MIB),
            PhysAddr::new(0),
            PageSize::Size2MiB,
            rw(),
            &mut tables
        ),
        Err(MapError::HugePageInTheWay)
    );
    assert_eq!(
        pt.map_huge(
            v(0),
            PhysAddr::new(4 * MIB),
            PageSize::Size2MiB,
            rw(),
            &mut tables
        ),
        Err(MapError::PageAlreadyMapped(f(0)))
    );
    assert!(matches!(
        pt.get_page(v(0x3000), false, &mut tables),
        Err(MapError::HugePageInTheWay)
    ));
}

#[test]
fn huge_page_where_a_table_sits_is_refused() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(
        pt.map_huge(
            v(0),
            PhysAddr::new(0),
            PageSize::Size2MiB,
            rw(),
            &mut tables
        ),
        Err(MapError::TableInTheWay)
    );
    assert_eq!(
        pt.map_huge(
            v(0),
            PhysAddr::new(0),
            PageSize::Size1GiB,
            rw(),
            &mut tables
        ),
        Err(MapError::TableInTheWay)
    );
}

#[test]
fn huge_pages_need_aligned_virtual_and_physical_addresses() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let two = PageSize::Size2MiB;
    assert_eq!(
        pt.map_huge(v(MIB), PhysAddr::new(0), two, rw(), &mut tables),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        pt.map_huge(v(0), PhysAddr::new(MIB), two, rw(), &mut tables),
        Err(MapError::Unaligned)
    );
    assert_eq!(
        pt.map_huge(v(0), PhysAddr::new(1 << 52), two, rw(), &mut tables),
        Err(MapError::FrameOutOfRange)
    );
    assert_eq!(tables.nr_allocs, 1);
}

#[test]
fn huge_pages_are_removed_whole_and_only_from_their_start() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let phys = PhysAddr::new(10 * MIB);
    pt.map_huge(v(2 * MIB), phys, PageSize::Size2MiB, rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(
        pt.unmap_page(v(2 * MIB)),
        Err(UnmapError::HugePage(PageSize::Size2MiB))
    );
    assert_eq!(
        pt.unmap(v(2 * MIB + 0x1000)).map(|_| ()),
        Err(UnmapError::Unaligned)
    );
    let (m, flush) = pt.unmap(v(2 * MIB)).unwrap();
    assert_eq!(flush.page().start_address(), v(2 * MIB));
    flush.ignore();
    assert_eq!((m.phys, m.size), (phys, PageSize::Size2MiB));
    assert!(m.flags.contains(PageFlags::HUGE));
    assert_eq!(pt.translate(v(2 * MIB)), None);
}

// ---- update_flags ----

#[test]
fn update_flags_keeps_the_frame_and_the_page_size() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x3000), f(3), rw(), &mut tables)
        .unwrap()
        .ignore();
    let flush = pt
        .update_flags(v(0x3000), PageFlags::COW | PageFlags::USER)
        .unwrap();
    assert_eq!(flush.page().start_address(), v(0x3000));
    flush.ignore();
    assert_eq!(
        pt.translate(v(0x3000)),
        Some((
            f(3).start_address(),
            PageFlags::PRESENT | PageFlags::COW | PageFlags::USER
        ))
    );
    assert!(
        path(&pt, v(0x3000))[..3]
            .iter()
            .all(|e| e.flags().contains(PageFlags::USER))
    );

    pt.map_huge(
        v(GIB),
        PhysAddr::new(GIB),
        PageSize::Size1GiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    pt.update_flags(v(GIB), PageFlags::NO_EXECUTE)
        .unwrap()
        .ignore();
    let m = pt.mapping_at(v(GIB)).unwrap();
    assert_eq!(m.size, PageSize::Size1GiB);
    assert_eq!(
        m.flags,
        PageFlags::PRESENT | PageFlags::HUGE | PageFlags::NO_EXECUTE
    );
    assert_eq!(
        pt.update_flags(v(GIB + 0x1000), rw()),
        Err(UnmapError::Unaligned)
    );
    assert_eq!(pt.update_flags(v(0x4000), rw()), Err(UnmapError::NotMapped));
}

// ---- get_page ----

#[test]
fn get_page_without_make_finds_nothing_where_tables_are_missing() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    assert!(
        pt.get_page(v(0x1000), false, &mut tables)
            .unwrap()
            .is_none()
    );
    assert_eq!(tables.nr_allocs, 1);
}

#[test]
fn get_page_with_make_builds_the_path_and_hands_out_the_entry() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let mut entry = pt.get_page(v(0x1234), true, &mut tables).unwrap().unwrap();
    assert_eq!(entry.page().start_address(), v(0x1000));
    assert_eq!(
        entry.read(),
        PageTableEntry::UNUSED,
        "new tables are zeroed"
    );
    let slot = entry.slot();
    let flags = PageFlags::PRESENT | PageFlags::USER;
    let flush = entry.write(PageTableEntry::new(f(5).start_address(), flags));
    assert_eq!(flush.page().start_address(), v(0x1000));
    flush.ignore();
    assert_eq!(tables.nr_allocs, 4);
    assert_eq!(
        pt.translate(v(0x1234)),
        Some((PhysAddr::new(5 * FRAME_SIZE + 0x234), flags))
    );
    assert!(
        path(&pt, v(0x1000))[..3]
            .iter()
            .all(|e| e.flags().contains(PageFlags::USER))
    );
    // The slot is the PT entry: index 1 of the last table.
    assert_eq!(slot.as_u64() % FRAME_SIZE, 8);
    let again = pt.get_page(v(0x1000), false, &mut tables).unwrap().unwrap();
    assert_eq!(again.slot(), slot);
}

// ---- allocation failure ----

#[test]
fn failed_table_allocation_leaves_a_consistent_tree() {
    let ram = Ram::new(64);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    tables.budget = Some(1);
    assert_eq!(
        pt.map_page(v(0x1000), f(1), rw(), &mut tables),
        Err(MapError::FrameAllocationFailed)
    );
    assert_eq!(pt.translate(v(0x1000)), None);
    assert_eq!(pt.count_tables().user_half, 1, "the PDPT made stays linked");
    tables.budget = None;
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(pt.count_tables().user_half, 3);
    assert_eq!(pt.destroy(&mut tables), 4);
    assert!(tables.live().is_empty());

    tables.budget = Some(0);
    assert!(matches!(
        PageTable::create(&ram, &mut tables),
        Err(MapError::FrameAllocationFailed)
    ));
}

// ---- address spaces ----

#[test]
fn new_address_space_shares_the_kernel_half_and_nothing_else() {
    let ram = Ram::new(1024);
    let mut tables = Tables::new(&ram);
    let mut kernel = empty(&ram, &mut tables);
    assert_eq!(kernel.preallocate_kernel_half(&mut tables).unwrap(), 256);
    assert_eq!(kernel.preallocate_kernel_half(&mut tables).unwrap(), 0);
    kernel
        .map_page(
            v(KERNEL_BASE),
            f(100),
            rw() | PageFlags::GLOBAL,
            &mut tables,
        )
        .unwrap()
        .ignore();

    let mut a = PageTable::new_address_space(&ram, &mut tables, kernel.root()).unwrap();
    let mut b = PageTable::new_address_space(&ram, &mut tables, kernel.root()).unwrap();
    assert_ne!(a.root(), b.root());
    for space in [&a, &b] {
        assert_eq!(
            space.translate(v(KERNEL_BASE)).map(|t| t.0),
            Some(f(100).start_address())
        );
        assert_eq!(space.count_tables(), kernel.count_tables());
    }
    // Kernel mappings made later, anywhere in the upper half, reach everyone.
    kernel
        .map_page(v(u64::MAX - 0xFFF), f(101), rw(), &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(
        a.translate(v(u64::MAX)).map(|t| t.0),
        Some(PhysAddr::new(101 * FRAME_SIZE + 0xFFF))
    );
    // User halves are private.
    a.map_page(v(0x1000), f(200), PageFlags::USER, &mut tables)
        .unwrap()
        .ignore();
    b.map_page(v(0x1000), f(300), PageFlags::USER, &mut tables)
        .unwrap()
        .ignore();
    assert_eq!(
        a.translate(v(0x1000)).map(|t| t.0),
        Some(f(200).start_address())
    );
    assert_eq!(
        b.translate(v(0x1000)).map(|t| t.0),
        Some(f(300).start_address())
    );
    assert_eq!(kernel.translate(v(0x1000)), None);

    let before = tables.live().len();
    assert_eq!(a.destroy(&mut tables), 4);
    assert_eq!(tables.live().len(), before - 4);
    assert_eq!(
        b.translate(v(KERNEL_BASE)).map(|t| t.0),
        Some(f(100).start_address()),
        "kernel half survives"
    );
}

#[test]
fn destroy_returns_every_table_and_reports_every_user_leaf() {
    let ram = Ram::new(1024);
    let mut tables = Tables::new(&ram);
    let mut kernel = empty(&ram, &mut tables);
    kernel
        .map_page(v(KERNEL_BASE), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    let kernel_tables = tables.live().clone();

    let mut space = PageTable::new_address_space(&ram, &mut tables, kernel.root()).unwrap();
    let user = PageFlags::USER | rw();
    let smalls = [0x1000, 0x2000, 0x20_0000, 0x40_0000_0000, 0x7FFF_FFFF_F000];
    for (i, addr) in smalls.into_iter().enumerate() {
        space
            .map_page(v(addr), f(500 + i as u64), user, &mut tables)
            .unwrap()
            .ignore();
    }
    space
        .map_huge(
            v(0x4000_0000),
            PhysAddr::new(0x20_0000),
            PageSize::Size2MiB,
            user,
            &mut tables,
        )
        .unwrap()
        .ignore();
    space
        .map_huge(
            v(0x80_0000_0000),
            PhysAddr::new(GIB),
            PageSize::Size1GiB,
            user,
            &mut tables,
        )
        .unwrap()
        .ignore();
    let owned = space.count_tables().owned();

    let mut leaves = Vec::new();
    let freed = space.destroy_with(&mut tables, |m| leaves.push(m));
    assert_eq!(freed, owned);
    assert_eq!(
        tables.live(),
        &kernel_tables,
        "exactly the kernel's tables are left"
    );
    let mut got: Vec<_> = leaves
        .iter()
        .map(|m| (m.virt.as_u64(), m.phys.as_u64(), m.size))
        .collect();
    got.sort_unstable();
    let mut want: Vec<_> = smalls
        .iter()
        .enumerate()
        .map(|(i, &a)| (a, (500 + i as u64) * FRAME_SIZE, PageSize::Size4KiB))
        .collect();
    want.push((0x4000_0000, 0x20_0000, PageSize::Size2MiB));
    want.push((0x80_0000_0000, GIB, PageSize::Size1GiB));
    want.sort_unstable();
    assert_eq!(got, want);
    assert!(kernel.translate(v(KERNEL_BASE)).is_some());

    assert_eq!(
        kernel.destroy(&mut tables),
        1,
        "a kernel-half-only tree frees just its root"
    );
    assert_eq!(
        tables.nr_allocs - tables.nr_frees,
        3,
        "the kernel-half tables were never freed"
    );
}

// ---- walking ----

#[test]
fn mappings_walk_every_leaf_in_address_order_unmerged() {
    let ram = Ram::new(256);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    let k = rw() | PageFlags::GLOBAL;
    pt.map_page(v(KERNEL_BASE + 0x1000), f(9), k, &mut tables)
        .unwrap()
        .ignore();
    pt.map_page(v(0x2000), f(2), rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.map_huge(
        v(2 * MIB),
        PhysAddr::new(4 * MIB),
        PageSize::Size2MiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    pt.map_huge(
        v(GIB),
        PhysAddr::new(GIB),
        PageSize::Size1GiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    let all: Vec<_> = pt
        .mappings(..)
        .map(|m| (m.virt.as_u64(), m.phys.as_u64(), m.size))
        .collect();
    assert_eq!(
        all,
        [
            (0x1000, FRAME_SIZE, PageSize::Size4KiB),
            (0x2000, 2 * FRAME_SIZE, PageSize::Size4KiB),
            (2 * MIB, 4 * MIB, PageSize::Size2MiB),
            (GIB, GIB, PageSize::Size1GiB),
            (KERNEL_BASE + 0x1000, 9 * FRAME_SIZE, PageSize::Size4KiB),
        ]
    );
    let kernel = pt.mappings(v(KERNEL_BASE)..).next().unwrap();
    assert_eq!(kernel.flags, k | PageFlags::PRESENT);
    assert_eq!(kernel.virt, v(KERNEL_BASE + 0x1000));
}

#[test]
fn mappings_in_a_range_include_leaves_that_overlap_its_edges() {
    let ram = Ram::new(256);
    let mut tables = Tables::new(&ram);
    let mut pt = empty(&ram, &mut tables);
    pt.map_page(v(0x1000), f(1), rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.map_huge(
        v(2 * MIB),
        PhysAddr::new(0),
        PageSize::Size2MiB,
        rw(),
        &mut tables,
    )
    .unwrap()
    .ignore();
    pt.map_page(v(4 * MIB), f(2), rw(), &mut tables)
        .unwrap()
        .ignore();
    pt.map_page(v(KERNEL_BASE), f(3), rw(), &mut tables)
        .unwrap()
        .ignore();
    let starts =
        |r: &mut dyn Iterator<Item = Mapping>| r.map(|m| m.virt.as_u64()).collect::<Vec<_>>();
    assert_eq!(starts(&mut pt.mappings(v(3 * MIB)..v(4 * MIB))), [2 * MIB]);
    assert_eq!(
        starts(&mut pt.mappings(v(3 * MIB)..=v(4 * MIB))),
        [2 * MIB, 4 * MIB]
    );
    assert_eq!(starts(&mut pt.mappings(v(0x1FFF)..v(2 * MIB))), [0x1000]);
    assert_eq!(
        starts(&mut pt.mappings(v(0x2000)..v(2 * MIB))),
        Vec::<u64>::new()
    );
    assert_eq!(
        starts(&mut pt.mappings(v(0x1000)..v(0x1000))),
        Vec::<u64>::new()
    );
    assert_eq!(
        starts(&mut pt.mappings(v(0x5000)..v(0x1000))),
        Vec::<u64>::new()
    );
    // Bounds in the canonical hole stand for its edges.
    assert_eq!(
        starts(&mut pt.mappings(..v(1 << 47))),
        [0x1000, 2 * MIB, 4 * MIB]
    );
    assert_eq!(
        starts(&mut pt.mappings(..=v(1 << 50))),
        [0x1000, 2 * MIB, 4 * MIB]
    );
    assert_eq!(starts(&mut pt.mappings(v(1 << 47)..)), [KERNEL_BASE]);
    assert_eq!(starts(&mut pt.mappings(v(0x1000)..=v(0x1000))), [0x1000]);
    // Byte 0x1001 is still in the page at 0x1000.
    let after = (Bound::Excluded(v(0x1000)), Bound::Unbounded);
    assert_eq!(starts(&mut pt.mappings(after)).len(), 4);
    let after = (Bound::Excluded(v(0x1FFF)), Bound::Unbounded);
    assert_eq!(starts(&mut pt.mappings(after)).len(), 3);
}

#[test]
fn errors_read_as_sentences() {
    let all_map = [
        MapError::FrameAllocationFailed,
        MapError::PageAlreadyMapped(f(1)),
        MapError::HugePageInTheWay,
        MapError::TableInTheWay,
        MapError::NonCanonical,
        MapError::Unaligned,
        MapError::FrameOutOfRange,
    ];
    for e in all_map {
        assert!(!e.to_string().is_empty());
    }
    assert_eq!(
        MapError::PageAlreadyMapped(f(1)).to_string(),
        "page already mapped to 0x1000"
    );
    for e in [
        UnmapError::NotMapped,
        UnmapError::HugePage(PageSize::Size2MiB),
        UnmapError::NonCanonical,
        UnmapError::Unaligned,
    ] {
        assert!(!e.to_string().is_empty());
    }
}

// ---- dumps: effective permissions and coalescing ----

/// Coalesces every leaf of `pt` as space 7, with `region` naming each leaf.
fn dump(
    pt: &PageTable<&Ram>,
    region: impl Fn(u64) -> probe_proto::Region,
) -> Vec<probe_proto::PtRange> {
    let mut c = Coalescer::new();
    let mut out = Vec::new();
    for leaf in pt.leaves(..) {
        out.extend(c.push(7, &leaf, region(leaf.mapping.virt.as_u64())));
    }
    out.extend(c.finish());
    out
}

#[test]
fn dump_coalesces_leaves_that_continue_in_both_spaces_with_equal_flags() {
    use probe_proto::Region;
    use probe_proto::names::pt;
    let ram = Ram::new(512);
    let mut tables = Tables::new(&ram);
    let mut t = empty(&ram, &mut tables);
    let data = PageFlags::WRITABLE | PageFlags::USER | PageFlags::NO_EXECUTE;
    // Four pages over frames 100..104, two more over 200..202 (the frames
    // jump), one read-only, then one in another region.
    let pages = [
        (0x40_0000, 100, data),
        (0x40_1000, 101, data),
        (0x40_2000, 102, data),
        (0x40_3000, 103, data),
        (0x40_4000, 200, data),
        (0x40_5000, 201, data),
        (0x40_6000, 202, PageFlags::USER | PageFlags::NO_EXECUTE),
        (0x40_7000, 203, PageFlags::USER | PageFlags::NO_EXECUTE),
    ];
    for (virt, frame, flags) in pages {
        t.map_page(v(virt), f(frame), flags, &mut tables)
            .unwrap()
            .ignore();
    }
    let ranges = dump(&t, |virt| {
        if virt >= 0x40_7000 {
            Region::Heap
        } else {
            Region::Unknown
        }
    });
    let got: Vec<_> = ranges
        .iter()
        .map(|r| (r.start, r.end, r.phys, r.pages, r.flags, r.region))
        .collect();
    let rw = pt::WRITABLE | pt::USER | pt::NO_EXECUTE;
    let ro = pt::USER | pt::NO_EXECUTE;
    assert_eq!(
        got,
        [
            (
                0x40_0000,
                0x40_4000,
                100 * FRAME_SIZE,
                4,
                rw,
                Region::Unknown
            ),
            (
                0x40_4000,
                0x40_6000,
                200 * FRAME_SIZE,
                2,
                rw,
                Region::Unknown
            ),
            (
                0x40_6000,
                0x40_7000,
                202 * FRAME_SIZE,
                1,
                ro,
                Region::Unknown
            ),
            (0x40_7000, 0x40_8000, 203 * FRAME_SIZE, 1, ro, Region::Heap),
        ]
    );
    assert!(
        ranges
            .iter()
            .all(|r| r.space == 7 && r.page_size == FRAME_SIZE)
    );
}

#[test]
fn dump_flags_are_what_the_mmu_applies_over_all_four_levels() {
    use probe_proto::names::pt;
    let ram = Ram::new(512);
    let mut tables = Tables::new(&ram);
    let mut t = empty(&ram, &mut tables);
    let flags = PageFlags::WRITABLE | PageFlags::USER;
    t.map_page(v(0x40_0000), f(100), flags, &mut tables)
        .unwrap()
        .ignore();
    let leaf = t.leaves(..).next().unwrap();
    assert_eq!(
        pt_flags(&leaf),
        pt::WRITABLE | pt::USER,
        "writable, executable"
    );

    // A read-only top-level entry makes the page read-only; a no-execute
    // directory entry makes it not executable; the leaf itself is unchanged.
    let pml4 = t.root().start_address().as_u64();
    let entry = t.mem().read_u64(PhysAddr::new(pml4));
    let mut mem = &ram;
    mem.write_u64(PhysAddr::new(pml4), entry & !PageFlags::WRITABLE.bits());
    let p = path(&t, v(0x40_0000));
    let pd_at =
        p[1].frame().start_address().as_u64() + v(0x40_0000).table_index(Level::Pd) as u64 * 8;
    let pd = t.mem().read_u64(PhysAddr::new(pd_at));
    mem.write_u64(PhysAddr::new(pd_at), pd | PageFlags::NO_EXECUTE.bits());
    let leaf = t.leaves(..).next().unwrap();
    assert!(leaf.mapping.flags.contains(PageFlags::WRITABLE));
    assert_eq!(pt_flags(&leaf), pt::USER | pt::NO_EXECUTE);
    assert_eq!(t.mappings(..).next(), Some(leaf.mapping));
}

#[test]
fn dump_counts_dirty_leaves_without_splitting_on_them() {
    let ram = Ram::new(512);
    let mut tables = Tables::new(&ram);
    let mut t = empty(&ram, &mut tables);
    t.map_page(v(0x40_0000), f(100), rw() | PageFlags::DIRTY, &mut tables)
        .unwrap()
        .ignore();
    t.map_page(v(0x40_1000), f(101), rw(), &mut tables)
        .unwrap()
        .ignore();
    t.map_page(
        v(0x40_2000),
        f(102),
        rw() | PageFlags::DIRTY | PageFlags::ACCESSED,
        &mut tables,
    )
    .unwrap()
    .ignore();
    let ranges = dump(&t, |_| probe_proto::Region::Unknown);
    assert_eq!(ranges.len(), 1);
    assert_eq!((ranges[0].pages, ranges[0].dirty_pages), (3, 2));
}
