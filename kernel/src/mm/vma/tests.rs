//! Unit tests of the VMA set: flags, range checks, insert and merge, munmap
//! and mprotect splitting, lookups, gap finding, stack growth, capacity.

use super::*;
use crate::mm::paging::{KERNEL_HALF_START, PAGE_SIZE, PageFlags, USER_HALF_END, VirtAddr};

const P: u64 = PAGE_SIZE;
const R: VmFlags = VmFlags::READ;
const RW: VmFlags = VmFlags::READ.union(VmFlags::WRITE);
const RX: VmFlags = VmFlags::READ.union(VmFlags::EXEC);

fn v(addr: u64) -> VirtAddr {
    VirtAddr::new(addr)
}

/// The VMA of pages `[first, last)` (in page numbers).
fn vma(first: u64, last: u64, flags: VmFlags, kind: VmaKind) -> Vma {
    Vma::new(v(first * P), v(last * P), flags, kind).expect("test VMAs are valid")
}

fn heap(first: u64, last: u64) -> Vma {
    vma(first, last, RW, VmaKind::Heap)
}

/// A set with room for `N` VMAs and a guard gap of 2 pages.
fn set<const N: usize>() -> VmaSet<[Vma; N]> {
    VmaSet::with_guard_gap([Vma::UNUSED; N], 2 * P)
}

/// The set's VMAs as `(first page, last page, flags)`.
fn pages<S: AsRef<[Vma]> + AsMut<[Vma]>>(set: &VmaSet<S>) -> Vec<(u64, u64, VmFlags)> {
    set.iter()
        .map(|v| (v.start().as_u64() / P, v.end().as_u64() / P, v.flags()))
        .collect()
}

/// Removes pages `[first, last)`, returning the removed pieces.
fn unmap<S: AsRef<[Vma]> + AsMut<[Vma]>>(
    set: &mut VmaSet<S>,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, u64)>, VmaError> {
    let mut removed = Vec::new();
    set.remove_range(v(first * P), v(last * P), |p| {
        removed.push((p.start().as_u64() / P, p.end().as_u64() / P));
    })?;
    Ok(removed)
}

/// Sets the access of pages `[first, last)`, returning the changed pieces.
fn protect<S: AsRef<[Vma]> + AsMut<[Vma]>>(
    set: &mut VmaSet<S>,
    first: u64,
    last: u64,
    prot: VmFlags,
) -> Result<Vec<(u64, u64, VmFlags, VmFlags)>, VmaError> {
    let mut changed = Vec::new();
    set.protect_range(v(first * P), v(last * P), prot, |old, new| {
        changed.push((
            old.start().as_u64() / P,
            old.end().as_u64() / P,
            old.flags(),
            new,
        ));
    })?;
    Ok(changed)
}

#[test]
fn flags_combine_like_bitflags_and_print_like_proc_maps() {
    let mut f = VmFlags::READ | VmFlags::WRITE;
    assert!(f.contains(VmFlags::READ) && !f.contains(VmFlags::EXEC));
    f.set(VmFlags::EXEC, true);
    f -= VmFlags::WRITE;
    assert_eq!(f, RX);
    assert_eq!(!VmFlags::empty(), VmFlags::all());
    assert_eq!(VmFlags::from_bits(1 << 5), None);
    assert_eq!(VmFlags::from_bits_truncate(0xffff_ffff), VmFlags::all());
    assert_eq!(format!("{f:?}"), "VmFlags(READ | EXEC)");
    assert_eq!(format!("{:?}", VmFlags::empty()), "VmFlags(empty)");
    assert_eq!(f.to_string(), "r-xp");
    assert_eq!((RW | VmFlags::SHARED).to_string(), "rw-s");
    assert_eq!(VmFlags::empty().to_string(), "---p");
}

#[test]
fn page_flags_are_user_writable_for_write_and_no_execute_without_exec() {
    assert_eq!(
        RW.page_flags(),
        PageFlags::USER | PageFlags::WRITABLE | PageFlags::NO_EXECUTE
    );
    assert_eq!(RX.page_flags(), PageFlags::USER);
    assert!(!VmFlags::empty().page_flags().contains(PageFlags::PRESENT));
}

#[test]
fn vma_prints_as_a_proc_maps_line() {
    let stack = vma(0x10, 0x12, RW | VmFlags::GROWSDOWN, VmaKind::Stack);
    assert_eq!(
        stack.to_string(),
        "00010000-00012000 rw-p stack [grows down]"
    );
    assert_eq!(
        heap(1, 2).with_id(3).to_string(),
        "00001000-00002000 rw-p heap 3"
    );
    assert_eq!(
        format!("{:?}", heap(1, 2)),
        "Vma(0x1000..0x2000 rw-p heap#0)"
    );
    assert_eq!(stack.len(), 2 * P);
    assert_eq!(stack.nr_pages(), 2);
    assert!(stack.contains(v(0x11fff)) && !stack.contains(v(0x12000)));
}

#[test]
fn new_rejects_each_kind_of_bad_range_with_its_error() {
    let new = |s, e| Vma::new(v(s), v(e), RW, VmaKind::Mmap).map(|_| ());
    assert_eq!(new(0x1000, 0x2001), Err(VmaError::Unaligned));
    assert_eq!(new(0x1800, 0x2000), Err(VmaError::Unaligned));
    assert_eq!(new(0x2000, 0x2000), Err(VmaError::EmptyRange));
    assert_eq!(new(0x3000, 0x2000), Err(VmaError::EmptyRange));
    assert_eq!(new(0, 0x2000), Err(VmaError::OutsideUserRange));
    assert_eq!(new(0x1000, USER_HALF_END), Err(VmaError::OutsideUserRange));
    assert_eq!(new(0x1000, USER_END), Ok(()));
    assert_eq!(
        new(USER_HALF_END, USER_HALF_END + P),
        Err(VmaError::NonCanonical)
    );
    assert_eq!(new(0x1000, USER_HALF_END + P), Err(VmaError::NonCanonical));
    assert_eq!(
        new(KERNEL_HALF_START, KERNEL_HALF_START + P),
        Err(VmaError::KernelHalf)
    );
    assert_eq!(
        new(0x1000, KERNEL_HALF_START + P),
        Err(VmaError::KernelHalf)
    );
    assert_eq!(
        new(u64::MAX - P + 1 - P, u64::MAX - P + 1),
        Err(VmaError::KernelHalf)
    );
    let both = VmFlags::GROWSDOWN | VmFlags::GROWSUP;
    assert_eq!(
        Vma::new(v(P), v(2 * P), both, VmaKind::Stack),
        Err(VmaError::InvalidFlags(both))
    );
}

#[test]
fn errors_display_a_readable_sentence() {
    assert_eq!(
        VmaError::Full { capacity: 4 }.to_string(),
        "more than 4 VMAs needed"
    );
    assert_eq!(
        VmaError::NotMapped(v(0x5000)).to_string(),
        "0x5000 is not mapped"
    );
    assert_eq!(
        VmaError::Overlap(heap(1, 2)).to_string(),
        "range overlaps 00001000-00002000 rw-p heap"
    );
}

#[test]
fn insert_keeps_address_order_and_rejects_overlap_with_the_vma_in_the_way() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(vma(2, 4, RX, VmaKind::Code)).unwrap();
    s.insert(vma(20, 21, R, VmaKind::Data)).unwrap();
    assert_eq!(pages(&s), [(2, 4, RX), (10, 12, RW), (20, 21, R)]);
    assert_eq!(s.insert(heap(11, 15)), Err(VmaError::Overlap(heap(10, 12))));
    assert_eq!(s.insert(heap(8, 11)), Err(VmaError::Overlap(heap(10, 12))));
    assert_eq!(s.insert(heap(9, 30)), Err(VmaError::Overlap(heap(10, 12))));
    assert_eq!(s.insert(Vma::UNUSED), Err(VmaError::EmptyRange));
    assert_eq!(s.len(), 3);
    assert_eq!(s.mapped_bytes(), 5 * P);
}

#[test]
fn insert_merges_with_touching_neighbours_that_agree() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(heap(14, 16)).unwrap();
    let merged = s.insert(heap(12, 14)).unwrap();
    assert_eq!(merged, heap(10, 16));
    assert_eq!(pages(&s), [(10, 16, RW)]);
    // Different kind, id or flags: no merge.
    s.insert(vma(16, 17, RW, VmaKind::Mmap)).unwrap();
    s.insert(heap(17, 18).with_id(1)).unwrap();
    s.insert(vma(9, 10, R, VmaKind::Heap)).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(s.mapped_bytes(), 9 * P);
}

#[test]
fn insert_into_a_full_set_fails_unless_it_merges() {
    let mut s = set::<2>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(heap(20, 22)).unwrap();
    let before = pages(&s);
    assert_eq!(s.insert(heap(30, 31)), Err(VmaError::Full { capacity: 2 }));
    assert_eq!(pages(&s), before);
    assert_eq!(s.insert(heap(12, 20)).unwrap(), heap(10, 22));
    assert_eq!(s.len(), 1);
}

#[test]
fn remove_range_splits_a_vma_across_it_and_reports_the_hole() {
    let mut s = set::<8>();
    s.insert(heap(10, 20)).unwrap();
    assert_eq!(unmap(&mut s, 12, 15), Ok(vec![(12, 15)]));
    assert_eq!(pages(&s), [(10, 12, RW), (15, 20, RW)]);
    assert_eq!(s.mapped_bytes(), 7 * P);
}

#[test]
fn remove_range_cuts_edges_drops_inner_vmas_and_ignores_holes() {
    let mut s = set::<8>();
    for (a, b) in [(2, 5), (6, 8), (9, 10), (11, 14)] {
        s.insert(heap(a, b)).unwrap();
    }
    assert_eq!(
        unmap(&mut s, 4, 12),
        Ok(vec![(4, 5), (6, 8), (9, 10), (11, 12)])
    );
    assert_eq!(pages(&s), [(2, 4, RW), (12, 14, RW)]);
    assert_eq!(unmap(&mut s, 5, 12), Ok(vec![]));
    assert_eq!(unmap(&mut s, 1, 100), Ok(vec![(2, 4), (12, 14)]));
    assert!(s.is_empty());
    assert_eq!(s.mapped_bytes(), 0);
}

#[test]
fn remove_range_checks_its_range() {
    let mut s = set::<2>();
    assert_eq!(
        s.remove_range(v(P), v(P + 1), |_| {}),
        Err(VmaError::Unaligned)
    );
    assert_eq!(
        s.remove_range(v(KERNEL_HALF_START), v(KERNEL_HALF_START + P), |_| {}),
        Err(VmaError::KernelHalf)
    );
}

#[test]
fn a_split_that_needs_a_missing_slot_fails_and_reports_nothing() {
    let mut s = set::<2>();
    s.insert(heap(10, 20)).unwrap();
    s.insert(heap(30, 40)).unwrap();
    let mut calls = 0;
    let err = s.remove_range(v(12 * P), v(13 * P), |_| calls += 1);
    assert_eq!(err, Err(VmaError::Full { capacity: 2 }));
    assert_eq!(calls, 0);
    assert_eq!(pages(&s), [(10, 20, RW), (30, 40, RW)]);
    assert_eq!(s.mapped_bytes(), 20 * P);
    // Cutting an edge needs no slot.
    assert_eq!(unmap(&mut s, 10, 13), Ok(vec![(10, 13)]));
}

#[test]
fn protect_range_splits_into_three_and_reports_the_middle() {
    let mut s = set::<8>();
    s.insert(heap(10, 20)).unwrap();
    assert_eq!(protect(&mut s, 12, 15, R), Ok(vec![(12, 15, RW, R)]));
    assert_eq!(pages(&s), [(10, 12, RW), (12, 15, R), (15, 20, RW)]);
    // Changing it back merges the three again.
    assert_eq!(protect(&mut s, 12, 15, RW), Ok(vec![(12, 15, R, RW)]));
    assert_eq!(pages(&s), [(10, 20, RW)]);
    assert_eq!(s.mapped_bytes(), 10 * P);
}

#[test]
fn protect_range_keeps_non_access_flags_and_skips_unchanged_pieces() {
    let mut s = set::<8>();
    let stack = RW | VmFlags::GROWSDOWN;
    s.insert(vma(10, 12, stack, VmaKind::Stack)).unwrap();
    s.insert(vma(12, 14, R | VmFlags::GROWSDOWN, VmaKind::Stack))
        .unwrap();
    assert_eq!(
        protect(&mut s, 10, 14, R),
        Ok(vec![(10, 12, stack, R | VmFlags::GROWSDOWN)])
    );
    assert_eq!(pages(&s), [(10, 14, R | VmFlags::GROWSDOWN)]);
}

#[test]
fn protect_range_needs_every_page_mapped_and_only_access_bits() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(vma(13, 15, R, VmaKind::Heap)).unwrap();
    assert_eq!(
        protect(&mut s, 10, 15, R),
        Err(VmaError::NotMapped(v(12 * P)))
    );
    assert_eq!(
        protect(&mut s, 9, 11, R),
        Err(VmaError::NotMapped(v(9 * P)))
    );
    assert_eq!(
        protect(&mut s, 14, 16, R),
        Err(VmaError::NotMapped(v(15 * P)))
    );
    assert_eq!(
        protect(&mut s, 20, 21, R),
        Err(VmaError::NotMapped(v(20 * P)))
    );
    assert_eq!(
        protect(&mut s, 10, 11, R | VmFlags::SHARED),
        Err(VmaError::InvalidFlags(R | VmFlags::SHARED))
    );
    assert_eq!(pages(&s), [(10, 12, RW), (13, 15, R)]);
}

#[test]
fn protect_range_that_merges_fits_a_full_set() {
    // [A rw][B r] full; making the top of A read-only splits A and merges
    // its top with B: three pieces on the way, two at the end.
    let mut s = set::<2>();
    s.insert(heap(10, 20)).unwrap();
    s.insert(vma(20, 30, R, VmaKind::Heap)).unwrap();
    assert_eq!(protect(&mut s, 15, 30, R), Ok(vec![(15, 20, RW, R)]));
    assert_eq!(pages(&s), [(10, 15, RW), (15, 30, R)]);
    assert_eq!(
        protect(&mut s, 12, 13, RX),
        Err(VmaError::Full { capacity: 2 })
    );
    assert_eq!(pages(&s), [(10, 15, RW), (15, 30, R)]);
}

#[test]
fn find_uses_half_open_ranges() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(heap(13, 14).with_id(2)).unwrap();
    assert_eq!(s.find(v(10 * P)), Some(&heap(10, 12)));
    assert_eq!(s.find(v(12 * P - 1)), Some(&heap(10, 12)));
    assert_eq!(s.find(v(12 * P)), None);
    assert_eq!(s.find(v(13 * P + 5)).map(Vma::id), Some(2));
    assert_eq!(s.find(v(0)), None);
    assert_eq!(s.find(v(u64::MAX)), None);
}

#[test]
fn nearest_picks_the_closer_neighbour_and_the_lower_on_a_tie() {
    let mut s = set::<8>();
    assert_eq!(s.nearest(v(0x5000)), None);
    s.insert(heap(10, 12)).unwrap();
    s.insert(heap(20, 22).with_id(1)).unwrap();
    let near = |a| s.nearest(v(a)).map(Vma::id);
    assert_eq!(near(11 * P), Some(0));
    assert_eq!(near(0), Some(0));
    assert_eq!(near(u64::MAX), Some(1));
    assert_eq!(near(13 * P), Some(0));
    assert_eq!(near(19 * P), Some(1));
    // Last byte below is 12P - 1; first above is 20P.
    assert_eq!(near(16 * P - 1), Some(0));
    assert_eq!(near(16 * P), Some(1));
    let (below, above) = s.neighbours(v(15 * P));
    assert_eq!((below.map(Vma::id), above.map(Vma::id)), (Some(0), Some(1)));
}

#[test]
fn find_gap_is_top_down_within_its_bounds() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    s.insert(heap(20, 22)).unwrap();
    let gap = |len, lo, hi| {
        s.find_gap(len * P, None, v(lo * P), v(hi * P))
            .map(|a| a.as_u64() / P)
    };
    assert_eq!(gap(2, 1, 30), Ok(28));
    assert_eq!(gap(2, 1, 22), Ok(18));
    assert_eq!(gap(8, 1, 22), Ok(12));
    assert_eq!(gap(9, 1, 22), Ok(1));
    assert_eq!(gap(10, 1, 22), Err(VmaError::NoSpace));
    assert_eq!(gap(1, 10, 12), Err(VmaError::NoSpace));
    assert_eq!(gap(1, 11, 13), Ok(12));
    assert_eq!(
        s.find_gap(P, None, v(USER_START), v(USER_END)),
        Ok(v(USER_END - P))
    );
}

#[test]
fn find_gap_takes_a_hint_that_fits_rounded_up_to_a_page() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    let find = |hint| s.find_gap(2 * P, Some(v(hint)), v(P), v(100 * P));
    assert_eq!(find(5 * P), Ok(v(5 * P)));
    assert_eq!(find(5 * P + 1), Ok(v(6 * P)));
    assert_eq!(find(9 * P), Ok(v(98 * P)), "overlaps the heap");
    assert_eq!(find(11 * P), Ok(v(98 * P)), "inside the heap");
    assert_eq!(find(99 * P), Ok(v(98 * P)), "beyond hi");
    assert_eq!(find(u64::MAX), Ok(v(98 * P)), "rounds past the end");
}

#[test]
fn find_gap_keeps_the_guard_gap_below_a_stack() {
    let mut s = set::<8>();
    s.insert(vma(20, 22, RW | VmFlags::GROWSDOWN, VmaKind::Stack))
        .unwrap();
    s.insert(vma(4, 6, RW | VmFlags::GROWSUP, VmaKind::Mmap))
        .unwrap();
    let gap = |len, hint: Option<u64>| {
        s.find_gap(len * P, hint.map(|h| v(h * P)), v(P), v(21 * P))
            .map(|a| a.as_u64() / P)
    };
    assert_eq!(gap(2, None), Ok(16), "two pages kept free below the stack");
    assert_eq!(gap(2, Some(17)), Ok(16), "hint in the guard gap");
    assert_eq!(
        gap(10, None),
        Ok(8),
        "two pages kept free above a GROWSUP VMA"
    );
    assert_eq!(gap(11, None), Err(VmaError::NoSpace));
    assert_eq!(gap(3, Some(1)), Ok(1), "below the GROWSUP VMA");
}

#[test]
fn find_gap_checks_its_arguments() {
    let s = set::<2>();
    assert_eq!(
        s.find_gap(0, None, v(P), v(9 * P)),
        Err(VmaError::EmptyRange)
    );
    assert_eq!(
        s.find_gap(100, None, v(P), v(9 * P)),
        Err(VmaError::Unaligned)
    );
    assert_eq!(
        s.find_gap(P, None, v(0), v(9 * P)),
        Err(VmaError::OutsideUserRange)
    );
    assert_eq!(
        s.find_gap(P, None, v(9 * P), v(9 * P)),
        Err(VmaError::EmptyRange)
    );
    assert_eq!(
        s.find_gap(!(P - 1), None, v(P), v(9 * P)),
        Err(VmaError::NoSpace)
    );
}

#[test]
fn grow_down_extends_a_stack_but_not_into_the_guard_gap() {
    let mut s = set::<8>();
    s.insert(heap(10, 12)).unwrap();
    let stack = RW | VmFlags::GROWSDOWN;
    s.insert(vma(20, 22, stack, VmaKind::Stack)).unwrap();
    assert_eq!(
        s.grow_down(v(21 * P), v(16 * P)),
        Ok(vma(16, 22, stack, VmaKind::Stack))
    );
    assert_eq!(s.mapped_bytes(), 8 * P);
    assert_eq!(
        s.grow_down(v(21 * P), v(18 * P)),
        Ok(vma(16, 22, stack, VmaKind::Stack))
    );
    assert_eq!(
        s.grow_down(v(16 * P), v(14 * P)).map(|v| v.start()),
        Ok(v(14 * P))
    );
    assert_eq!(
        s.grow_down(v(14 * P), v(13 * P)),
        Err(VmaError::GuardGap(heap(10, 12)))
    );
    assert_eq!(
        s.grow_down(v(14 * P), v(14 * P - 1)),
        Err(VmaError::Unaligned)
    );
    assert_eq!(
        s.grow_down(v(11 * P), v(5 * P)),
        Err(VmaError::NotGrowable(heap(10, 12)))
    );
    assert_eq!(
        s.grow_down(v(13 * P), v(5 * P)),
        Err(VmaError::NotMapped(v(13 * P)))
    );
    assert_eq!(pages(&s), [(10, 12, RW), (14, 22, stack)]);
}

#[test]
fn grow_down_stops_at_the_null_page() {
    let mut s = set::<2>();
    let stack = RW | VmFlags::GROWSDOWN;
    s.insert(vma(4, 5, stack, VmaKind::Stack)).unwrap();
    assert_eq!(s.grow_down(v(4 * P), v(0)), Err(VmaError::OutsideUserRange));
    assert_eq!(s.grow_down(v(4 * P), v(P)).map(|v| v.start()), Ok(v(P)));
}

#[test]
fn storage_may_be_a_borrowed_slice_or_a_box() {
    let mut storage = [Vma::UNUSED; 3];
    let mut s = VmaSet::new(&mut storage[..]);
    s.insert(heap(1, 2)).unwrap();
    assert_eq!(s.capacity(), 3);
    assert_eq!(s.guard_gap(), STACK_GUARD_GAP);
    let mut boxed = VmaSet::with_guard_gap(vec![Vma::UNUSED; 5].into_boxed_slice(), 1);
    assert_eq!(boxed.guard_gap(), P, "rounded up to a page");
    boxed.insert(heap(1, 2)).unwrap();
    assert_eq!((&boxed).into_iter().count(), 1);
    boxed.clear();
    assert!(boxed.is_empty() && boxed.mapped_bytes() == 0);
}
