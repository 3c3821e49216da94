//! Unit tests of the frame allocator: address types, owner encoding,
//! construction from a memory map, allocation, errors and the check.

use super::*;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Host-side storage for a bitmap of `nr` frames.
struct Storage {
    nr: u64,
    words: Vec<u64>,
    owners: Vec<u16>,
}

impl Storage {
    fn new(nr: u64) -> Self {
        Self {
            nr,
            words: vec![0xdead_beef; FrameBitmap::words_needed(nr)],
            owners: vec![0xbeef; FrameBitmap::owner_slots_needed(nr)],
        }
    }

    fn build(
        &mut self,
        regions: &[MemoryRegion],
        reserved: &[(FrameRange, Owner)],
    ) -> FrameBitmap<'_> {
        FrameBitmap::new(
            self.nr,
            &mut self.words,
            self.owners.as_mut_slice(),
            regions.iter().copied(),
            reserved.iter().copied(),
        )
        .expect("storage is sized by words_needed")
    }
}

fn f(n: u64) -> Frame {
    Frame::from_number(n)
}

fn frames(start: u64, end: u64) -> FrameRange {
    FrameRange::new(f(start), f(end))
}

/// Frames 0..24 held by each permanent owner in turn.
fn permanent_low_frames() -> [(FrameRange, Owner); 4] {
    [
        (frames(0, 10), Owner::Reserved),
        (frames(10, 20), Owner::KernelImage),
        (frames(20, 22), Owner::BootInfo),
        (frames(22, 24), Owner::Bitmap),
    ]
}

fn ram(start_frame: u64, nr_frames: u64) -> MemoryRegion {
    MemoryRegion::usable(f(start_frame).start_address(), nr_frames * FRAME_SIZE)
}

/// Everything the allocator keeps, to show an error changed nothing.
fn snapshot(bm: &FrameBitmap<'_>) -> (Vec<u64>, Vec<u32>, u64, u64) {
    (
        bm.words.to_vec(),
        bm.owners.to_vec(),
        bm.nr_free,
        bm.nr_total,
    )
}

fn assert_consistent(bm: &FrameBitmap<'_>) {
    let report = bm.check();
    assert!(report.is_consistent(), "{report:#?}");
}

// ---- addresses and frames ---------------------------------------------------

#[test]
fn phys_addr_alignment_helpers_round_to_powers_of_two() {
    let a = PhysAddr::new(0x1234);
    assert!(!a.is_frame_aligned());
    assert_eq!(a.align_down(FRAME_SIZE), PhysAddr::new(0x1000));
    assert_eq!(a.align_up(FRAME_SIZE), Some(PhysAddr::new(0x2000)));
    assert_eq!(a.frame_offset(), 0x234);
    assert_eq!(PhysAddr::new(u64::MAX).align_up(FRAME_SIZE), None);
    assert_eq!(
        PhysAddr::new(0x2000).align_up(FRAME_SIZE),
        Some(PhysAddr::new(0x2000))
    );
    assert_eq!(PhysAddr::new(u64::MAX).checked_add(1), None);
    assert_eq!(u64::from(a), 0x1234);
    assert_eq!(format!("{a:?}"), "PhysAddr(0x1234)");
}

#[test]
fn frame_converts_to_and_from_addresses() {
    assert_eq!(Frame::containing_address(PhysAddr::new(0x5fff)), f(5));
    assert_eq!(f(5).start_address(), PhysAddr::new(0x5000));
    assert_eq!(Frame::from_start_address(PhysAddr::new(0x5000)), Ok(f(5)));
    assert_eq!(
        Frame::from_start_address(PhysAddr::new(0x5008)),
        Err(FrameError::Unaligned)
    );
    assert_eq!(f(5).checked_add(3), Some(f(8)));
    assert_eq!(f(u64::MAX).checked_add(1), None);
    assert_eq!(format!("{:?}", f(5)), "Frame(0x5000)");
}

#[test]
fn frame_range_covering_rounds_outward_and_within_rounds_inward() {
    let covering = FrameRange::covering(PhysAddr::new(0x1800), 0x1000);
    assert_eq!(covering, frames(1, 3));
    let within = FrameRange::within(PhysAddr::new(0x1800), 0x2000);
    assert_eq!(within, frames(2, 3));
    assert!(FrameRange::within(PhysAddr::new(0x1800), 0x800).is_empty());
    assert!(FrameRange::covering(PhysAddr::new(0x1800), 0).is_empty());
    assert_eq!(FrameRange::covering(PhysAddr::new(0), 1).len(), 1);
    // Regions reaching the top of the address space saturate, not wrap.
    assert_eq!(
        FrameRange::within(PhysAddr::new(u64::MAX - 10), 100).len(),
        0
    );
    assert_eq!(FrameRange::covering(PhysAddr::new(u64::MAX), 100).len(), 1);
    let r = frames(4, 7);
    assert_eq!(
        (r.len(), r.size_bytes(), r.start_address()),
        (3, 3 * FRAME_SIZE, PhysAddr::new(0x4000))
    );
    assert!(r.contains(f(4)) && r.contains(f(6)) && !r.contains(f(7)));
    assert_eq!(r.iter().collect::<Vec<_>>(), vec![f(4), f(5), f(6)]);
    assert!(
        frames(5, 2).is_empty(),
        "an end before the start is an empty range"
    );
    assert_eq!(FrameRange::from_count(f(u64::MAX - 1), 5).len(), 1);
}

// ---- owners -----------------------------------------------------------------

#[test]
fn owner_raw_encoding_round_trips_every_variant() {
    let owners = [
        Owner::Unusable,
        Owner::Reserved,
        Owner::KernelImage,
        Owner::BootInfo,
        Owner::Bitmap,
        Owner::KernelHeap,
        Owner::KernelStack,
        Owner::PageTable,
        Owner::Process(0),
        Owner::Process(1),
        Owner::Process(MAX_PID),
        Owner::Other(0),
        Owner::Other(u8::MAX),
    ];
    let mut raws = Vec::new();
    for owner in owners {
        let raw = owner.to_raw().unwrap();
        assert_ne!(raw, 0, "0 means free");
        assert_eq!(Owner::from_raw(raw), Some(owner));
        raws.push(raw);
    }
    raws.sort_unstable();
    raws.dedup();
    assert_eq!(raws.len(), owners.len(), "encodings are distinct");
}

#[test]
fn every_raw_slot_value_decodes_to_at_most_one_owner_and_back() {
    let mut valid = 0;
    for raw in 0..=OwnerSlot::MAX {
        if let Some(owner) = Owner::from_raw(raw) {
            assert_eq!(owner.to_raw(), Some(raw), "{raw:#x} decodes to {owner:?}");
            valid += 1;
        }
    }
    // 8 fixed owners, 256 `Other` tags, every pid up to MAX_PID.
    assert_eq!(valid, 8 + 256 + (MAX_PID as usize + 1));
}

#[test]
fn owner_pid_above_max_has_no_encoding() {
    assert_eq!(Owner::Process(MAX_PID + 1).to_raw(), None);
    assert_eq!(Owner::Process(u32::MAX).to_raw(), None);
}

#[test]
fn invalid_raw_owner_values_decode_to_none() {
    for raw in [0, 9, 0xff, 0x100 | 1, 0x4100, 0x7fff, 0x3fff] {
        assert_eq!(Owner::from_raw(raw), None, "{raw:#x}");
    }
}

#[test]
fn permanent_owners_are_the_boot_time_ones() {
    assert!(Owner::Unusable.is_permanent());
    assert!(Owner::Reserved.is_permanent());
    assert!(Owner::KernelImage.is_permanent());
    assert!(Owner::BootInfo.is_permanent());
    assert!(Owner::Bitmap.is_permanent());
    assert!(!Owner::KernelHeap.is_permanent());
    assert!(!Owner::PageTable.is_permanent());
    assert!(!Owner::Process(3).is_permanent());
}

// ---- layout and construction -------------------------------------------------

#[test]
fn words_needed_counts_every_summary_level() {
    assert_eq!(FrameBitmap::words_needed(0), 1);
    assert_eq!(FrameBitmap::words_needed(1), 1);
    assert_eq!(FrameBitmap::words_needed(64), 1);
    assert_eq!(FrameBitmap::words_needed(65), 2 + 1);
    assert_eq!(FrameBitmap::words_needed(4096), 64 + 1);
    assert_eq!(FrameBitmap::words_needed(4097), 65 + 2 + 1);
    // 16 GiB: 65 536 + 1 024 + 16 + 1.
    assert_eq!(FrameBitmap::words_needed(16 * GIB / FRAME_SIZE), 66_577);
    let nr = 16 * GIB / FRAME_SIZE;
    assert_eq!(
        FrameBitmap::storage_bytes_with(nr, SlotWidth::U16),
        66_577 * 8 + 8 * MIB
    );
    assert_eq!(
        FrameBitmap::storage_bytes_with(nr, SlotWidth::U32),
        66_577 * 8 + 16 * MIB
    );
    assert_eq!(
        FrameBitmap::storage_bytes(nr),
        FrameBitmap::storage_bytes_with(nr, SlotWidth::U32)
    );
    // The whole x86_64 physical space still fits in MAX_LEVELS levels.
    let words = FrameBitmap::words_needed(MAX_FRAMES);
    assert!(words > (MAX_FRAMES / 64) as usize);
}

#[test]
fn storage_too_small_is_rejected() {
    let mut words = vec![0; FrameBitmap::words_needed(4097) - 1];
    let mut owners = vec![0u16; 4097];
    let err =
        FrameBitmap::new(4097, &mut words, owners.as_mut_slice(), [ram(0, 4097)], []).unwrap_err();
    assert_eq!(err, FrameError::StorageTooSmall);
    let mut words = vec![0; FrameBitmap::words_needed(4097)];
    let mut owners = vec![0u32; 4096];
    let err =
        FrameBitmap::new(4097, &mut words, owners.as_mut_slice(), [ram(0, 4097)], []).unwrap_err();
    assert_eq!(err, FrameError::StorageTooSmall);
}

#[test]
fn more_frames_than_x86_64_can_address_is_rejected() {
    let owners: &mut [u16] = &mut [];
    let err = FrameBitmap::new(MAX_FRAMES + 1, &mut [], owners, [], []).unwrap_err();
    assert_eq!(err, FrameError::OutOfRange);
}

#[test]
fn invalid_owner_in_reserved_range_is_rejected() {
    let mut words = vec![0; 1];
    let mut owners = vec![0u16; 8];
    let reserved = [(frames(0, 1), Owner::Process(u32::MAX))];
    let err =
        FrameBitmap::new(8, &mut words, owners.as_mut_slice(), [ram(0, 8)], reserved).unwrap_err();
    assert_eq!(err, FrameError::InvalidOwner);
}

#[test]
fn new_frees_usable_ram_and_keeps_holes_unusable() {
    let mut st = Storage::new(300);
    let bm = st.build(&[ram(10, 20), ram(100, 200)], &[]);
    assert_eq!(bm.nr_frames(), 300);
    assert_eq!(bm.total_frames(), 220);
    assert_eq!(bm.free_frames(), 220);
    assert_eq!(bm.used_frames(), 0);
    assert!(bm.is_used(f(9)) && !bm.is_used(f(10)) && !bm.is_used(f(29)) && bm.is_used(f(30)));
    assert_eq!(bm.owner(f(50)), Some(Owner::Unusable));
    assert_eq!(bm.owner(f(150)), None);
    assert!(bm.is_used(f(300)), "frames past the end are never free");
    assert_eq!(bm.owner(f(300)), Some(Owner::Unusable));
    assert_eq!(bm.nr_levels(), 2);
    assert_consistent(&bm);
}

#[test]
fn partial_frames_at_usable_region_edges_stay_unusable() {
    let mut st = Storage::new(16);
    let region = MemoryRegion::usable(PhysAddr::new(FRAME_SIZE + 1), 4 * FRAME_SIZE);
    let bm = st.build(&[region], &[]);
    // Bytes 0x1001..0x5001: only frames 2, 3 and 4 are whole.
    assert_eq!(bm.free_frames(), 3);
    assert!(bm.is_used(f(1)) && !bm.is_used(f(2)) && !bm.is_used(f(4)) && bm.is_used(f(5)));
    assert_consistent(&bm);
}

#[test]
fn unusable_region_wins_over_overlapping_usable_region() {
    let mut st = Storage::new(64);
    // An unusable region listed before the usable one it overlaps still wins,
    // and it covers every frame it touches.
    let acpi = MemoryRegion::unusable(PhysAddr::new(8 * FRAME_SIZE + 100), FRAME_SIZE);
    let bm = st.build(&[acpi, ram(0, 64)], &[]);
    assert_eq!(bm.owner(f(8)), Some(Owner::Unusable));
    assert_eq!(bm.owner(f(9)), Some(Owner::Unusable));
    assert_eq!(bm.free_frames(), 62);
    assert_eq!(bm.total_frames(), 62);
    assert_consistent(&bm);
}

#[test]
fn reserved_ranges_take_their_owner_but_holes_stay_unusable() {
    let mut st = Storage::new(1024);
    // RAM with a hole at 160..256, like the legacy VGA/BIOS area.
    let map = [ram(0, 160), ram(256, 768)];
    let reserved = [
        (FrameRange::covering(PhysAddr::new(0), MIB), Owner::Reserved),
        (frames(300, 310), Owner::KernelImage),
        (frames(305, 312), Owner::BootInfo),
        (frames(400, 402), Owner::Bitmap),
    ];
    let bm = st.build(&map, &reserved);
    assert_eq!(bm.owner(f(0)), Some(Owner::Reserved));
    assert_eq!(
        bm.owner(f(200)),
        Some(Owner::Unusable),
        "a hole stays unusable"
    );
    assert_eq!(bm.owner(f(304)), Some(Owner::KernelImage));
    assert_eq!(bm.owner(f(305)), Some(Owner::BootInfo), "later ranges win");
    assert_eq!(bm.owner(f(401)), Some(Owner::Bitmap));
    assert_eq!(bm.total_frames(), 928);
    assert_eq!(bm.free_frames(), 928 - 160 - 12 - 2);
    assert_consistent(&bm);
}

#[test]
fn regions_and_ranges_past_nr_frames_are_ignored() {
    let mut st = Storage::new(100);
    let bm = st.build(&[ram(50, 1000)], &[(frames(90, 5000), Owner::KernelImage)]);
    assert_eq!(bm.total_frames(), 50);
    assert_eq!(bm.free_frames(), 40);
    assert_consistent(&bm);
}

#[test]
fn span_ends_at_the_highest_whole_usable_frame() {
    let map = [
        ram(0, 10),
        MemoryRegion::unusable(PhysAddr::new(4 * GIB - 16 * MIB), 16 * MIB),
        MemoryRegion::usable(PhysAddr::new(MIB), 3 * FRAME_SIZE + 5),
    ];
    assert_eq!(FrameBitmap::span(map), MIB / FRAME_SIZE + 3);
    assert_eq!(FrameBitmap::span([]), 0);
}

#[test]
fn empty_bitmap_has_no_frame_to_give() {
    let mut st = Storage::new(0);
    let mut bm = st.build(&[], &[]);
    assert_eq!(
        (bm.nr_frames(), bm.total_frames(), bm.free_frames()),
        (0, 0, 0)
    );
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    assert_eq!(bm.free_frame(f(0)), Err(FrameError::OutOfRange));
    assert_consistent(&bm);
}

// ---- allocation --------------------------------------------------------------

#[test]
fn alloc_returns_the_lowest_free_frame_and_records_its_owner() {
    let mut st = Storage::new(200);
    let mut bm = st.build(&[ram(0, 200)], &[(frames(0, 70), Owner::Reserved)]);
    assert_eq!(bm.alloc_frame(Owner::PageTable), Ok(f(70)));
    assert_eq!(bm.alloc_frame(Owner::Process(7)), Ok(f(71)));
    assert_eq!(bm.owner(f(70)), Some(Owner::PageTable));
    assert_eq!(bm.owner(f(71)), Some(Owner::Process(7)));
    assert_eq!(bm.free_frames(), 128);
    assert_eq!(bm.used_frames(), 72);
    assert_consistent(&bm);
}

#[test]
fn alloc_until_out_of_memory_hands_out_each_free_frame_once() {
    let nr = 64 * 64 + 100; // three levels
    let mut st = Storage::new(nr);
    let mut bm = st.build(&[ram(0, nr)], &[(frames(0, 256), Owner::Reserved)]);
    let mut got = Vec::new();
    while let Ok(frame) = bm.alloc_frame(Owner::KernelHeap) {
        got.push(frame.number());
    }
    assert_eq!(got, (256..nr).collect::<Vec<_>>());
    assert_eq!(bm.free_frames(), 0);
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    assert_consistent(&bm);
}

#[test]
fn freed_frame_is_handed_out_again() {
    let mut st = Storage::new(4096 * 3);
    let mut bm = st.build(&[ram(0, 4096 * 3)], &[]);
    for _ in 0..4096 * 3 {
        bm.alloc_frame(Owner::KernelHeap).unwrap();
    }
    assert_eq!(bm.free_frame(f(9000)), Ok(Owner::KernelHeap));
    assert_eq!(bm.free_frames(), 1);
    assert_consistent(&bm);
    assert_eq!(bm.alloc_frame(Owner::PageTable), Ok(f(9000)));
    assert_consistent(&bm);
}

#[test]
fn alloc_page_and_free_page_work_on_addresses() {
    let mut st = Storage::new(64);
    let mut bm = st.build(&[ram(16, 48)], &[]);
    let page = bm.alloc_page(Owner::KernelStack).unwrap();
    assert_eq!(page, PhysAddr::new(16 * FRAME_SIZE));
    assert_eq!(bm.free_page(page), Ok(Owner::KernelStack));
    assert_eq!(bm.free_frames(), 48);
}

#[test]
fn pid_above_max_is_refused_and_changes_nothing() {
    let mut st = Storage::new(64);
    let mut bm = st.build(&[ram(0, 64)], &[]);
    let before = snapshot(&bm);
    assert_eq!(
        bm.alloc_frame(Owner::Process(MAX_PID + 1)),
        Err(FrameError::InvalidOwner)
    );
    assert_eq!(
        bm.alloc_contiguous(2, 1, Owner::Process(u32::MAX)),
        Err(FrameError::InvalidOwner)
    );
    assert_eq!(snapshot(&bm), before);
}

// ---- errors change nothing ----------------------------------------------------

#[test]
fn double_free_is_detected_and_changes_nothing() {
    let mut st = Storage::new(128);
    let mut bm = st.build(&[ram(0, 128)], &[]);
    let frame = bm.alloc_frame(Owner::KernelHeap).unwrap();
    bm.free_frame(frame).unwrap();
    let before = snapshot(&bm);
    assert_eq!(bm.free_frame(frame), Err(FrameError::DoubleFree));
    assert_eq!(
        bm.free_frame(f(100)),
        Err(FrameError::DoubleFree),
        "never allocated"
    );
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn freeing_reserved_frames_is_refused_and_changes_nothing() {
    let mut st = Storage::new(512);
    let map = [ram(0, 200), ram(300, 212)];
    let reserved = permanent_low_frames();
    let mut bm = st.build(&map, &reserved);
    let before = snapshot(&bm);
    for frame in [0, 9, 10, 19, 20, 22, 250] {
        assert_eq!(
            bm.free_frame(f(frame)),
            Err(FrameError::Reserved),
            "frame {frame}"
        );
    }
    assert_eq!(
        bm.free_page(PhysAddr::new(15 * FRAME_SIZE)),
        Err(FrameError::Reserved)
    );
    assert_eq!(bm.free_contiguous(frames(5, 30)), Err(FrameError::Reserved));
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn freeing_past_the_end_is_refused_and_changes_nothing() {
    let mut st = Storage::new(100);
    let mut bm = st.build(&[ram(0, 100)], &[]);
    bm.alloc_frame(Owner::KernelHeap).unwrap();
    let before = snapshot(&bm);
    assert_eq!(bm.free_frame(f(100)), Err(FrameError::OutOfRange));
    assert_eq!(bm.free_frame(f(u64::MAX)), Err(FrameError::OutOfRange));
    assert_eq!(
        bm.free_page(PhysAddr::new(!0xfff)),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(
        bm.free_contiguous(frames(0, 101)),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn free_page_of_an_unaligned_address_is_refused_and_changes_nothing() {
    let mut st = Storage::new(100);
    let mut bm = st.build(&[ram(0, 100)], &[]);
    let page = bm.alloc_page(Owner::KernelHeap).unwrap();
    let before = snapshot(&bm);
    for bad in [
        page.as_u64() + 1,
        page.as_u64() + 0x800,
        page.as_u64() + 0xfff,
    ] {
        assert_eq!(bm.free_page(PhysAddr::new(bad)), Err(FrameError::Unaligned));
    }
    assert_eq!(snapshot(&bm), before);
    assert_eq!(bm.free_page(page), Ok(Owner::KernelHeap));
}

// ---- changing owners ----------------------------------------------------------

#[test]
fn set_owner_hands_a_used_frame_over_and_returns_the_old_owner() {
    let mut st = Storage::new(200);
    let mut bm = st.build(&[ram(0, 200)], &[(frames(0, 16), Owner::Reserved)]);
    let parent_page = bm.alloc_frame(Owner::Process(1)).unwrap();
    let other = bm.alloc_frame(Owner::Process(1)).unwrap();
    let (free, used, total) = (bm.free_frames(), bm.used_frames(), bm.total_frames());
    let usage = bm.usage();

    assert_eq!(
        bm.set_owner(parent_page, Owner::Process(2)),
        Ok(Owner::Process(1))
    );
    assert_eq!(bm.owner(parent_page), Some(Owner::Process(2)));
    assert_eq!(bm.owner(other), Some(Owner::Process(1)), "only that frame");
    assert!(bm.is_used(parent_page));
    // The frame stays used: counters and owner classes do not move, only
    // the split between pids does.
    assert_eq!(
        (bm.free_frames(), bm.used_frames(), bm.total_frames()),
        (free, used, total)
    );
    assert_eq!(bm.usage(), usage);
    assert_eq!(bm.frames_owned_by(Owner::Process(1)), 1);
    assert_eq!(bm.frames_owned_by(Owner::Process(2)), 1);
    assert_consistent(&bm);

    // Handing it to the owner it has is a no-op that succeeds.
    let before = snapshot(&bm);
    assert_eq!(
        bm.set_owner(parent_page, Owner::Process(2)),
        Ok(Owner::Process(2))
    );
    assert_eq!(snapshot(&bm), before);

    // Across owner classes: the class counts follow the slot.
    assert_eq!(
        bm.set_owner(parent_page, Owner::Other(9)),
        Ok(Owner::Process(2))
    );
    let moved = bm.usage();
    assert_eq!((moved.process, moved.other), (usage.process - 1, 1));
    assert_consistent(&bm);

    // The new owner is the one freeing reports.
    assert_eq!(bm.free_frame(parent_page), Ok(Owner::Other(9)));
    assert_eq!(bm.free_frame(other), Ok(Owner::Process(1)));
    assert_consistent(&bm);
}

#[test]
fn set_owner_refuses_free_permanent_and_out_of_range_frames_and_changes_nothing() {
    let mut st = Storage::new(256);
    let map = [ram(0, 200)];
    let reserved = permanent_low_frames();
    let mut bm = st.build(&map, &reserved);
    let held = bm.alloc_frame(Owner::Process(3)).unwrap();
    let freed = bm.alloc_frame(Owner::Process(3)).unwrap();
    bm.free_frame(freed).unwrap();
    let before = snapshot(&bm);

    // Free frames have no owner to change: freed, and never allocated.
    for frame in [freed, f(150)] {
        assert_eq!(
            bm.set_owner(frame, Owner::Process(4)),
            Err(FrameError::DoubleFree),
            "{frame:?}"
        );
    }
    // Permanent frames (and holes, `Unusable`) keep their owner.
    for frame in [0, 9, 10, 19, 20, 22, 210] {
        assert_eq!(
            bm.set_owner(f(frame), Owner::Process(4)),
            Err(FrameError::Reserved),
            "frame {frame}"
        );
    }
    assert_eq!(
        bm.set_owner(f(256), Owner::Process(4)),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(
        bm.set_owner(f(u64::MAX), Owner::Process(4)),
        Err(FrameError::OutOfRange)
    );
    // Owners that cannot be recorded, or would pin the frame for good.
    for owner in [
        Owner::Process(MAX_PID + 1),
        Owner::Unusable,
        Owner::Reserved,
        Owner::KernelImage,
        Owner::BootInfo,
        Owner::Bitmap,
    ] {
        assert_eq!(
            bm.set_owner(held, owner),
            Err(FrameError::InvalidOwner),
            "{owner:?}"
        );
    }
    assert_eq!(snapshot(&bm), before);
    assert_eq!(bm.owner(held), Some(Owner::Process(3)));
    assert_consistent(&bm);
}

#[test]
fn set_owner_of_a_corrupt_slot_is_refused_and_changes_nothing() {
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    assert!(bm.is_used(f(601)));
    bm.inject_corruption(Corruption::SetOwnerRaw {
        frame: f(601),
        raw: 0xff,
    })
    .unwrap();
    let before = snapshot(&bm);
    assert_eq!(
        bm.set_owner(f(601), Owner::Process(1)),
        Err(FrameError::Corrupted)
    );
    assert_eq!(snapshot(&bm), before);
}

// ---- contiguous runs ---------------------------------------------------------

#[test]
fn alloc_contiguous_returns_an_aligned_free_run_spanning_words() {
    let mut st = Storage::new(1024);
    let mut bm = st.build(&[ram(0, 1024)], &[(frames(0, 3), Owner::Reserved)]);
    let run = bm.alloc_contiguous(100, 64, Owner::Other(1)).unwrap();
    assert_eq!(run, frames(64, 164));
    assert!(run.iter().all(|fr| bm.owner(fr) == Some(Owner::Other(1))));
    let run = bm.alloc_contiguous(3, 1, Owner::Other(2)).unwrap();
    assert_eq!(run, frames(3, 6), "unaligned requests take the lowest run");
    assert_eq!(bm.free_frames(), 1024 - 3 - 100 - 3);
    assert_consistent(&bm);
    bm.free_contiguous(run).unwrap();
    assert_eq!(bm.free_frames(), 1024 - 3 - 100);
    assert_consistent(&bm);
}

#[test]
fn alloc_contiguous_skips_runs_that_are_too_short() {
    let nr = 64 * 64 * 2;
    let mut st = Storage::new(nr);
    let mut bm = st.build(&[ram(0, nr)], &[]);
    // Use everything, then free runs of 3 frames every 100 frames and one
    // run of 8 near the end.
    let all = bm.alloc_contiguous(nr, 1, Owner::KernelHeap).unwrap();
    assert_eq!(all.len(), nr);
    for start in (0..nr - 200).step_by(100) {
        bm.free_contiguous(frames(start, start + 3)).unwrap();
    }
    bm.free_contiguous(frames(nr - 50, nr - 42)).unwrap();
    assert_consistent(&bm);
    assert_eq!(
        bm.alloc_contiguous(5, 1, Owner::Other(0)),
        Ok(frames(nr - 50, nr - 45))
    );
    assert_eq!(
        bm.alloc_contiguous(4, 1, Owner::Other(0)),
        Err(FrameError::OutOfMemory)
    );
    assert_eq!(bm.alloc_contiguous(3, 1, Owner::Other(0)), Ok(frames(0, 3)));
    assert_consistent(&bm);
}

#[test]
fn alloc_contiguous_rejects_invalid_requests_and_changes_nothing() {
    let mut st = Storage::new(128);
    let mut bm = st.build(&[ram(0, 128)], &[]);
    let before = snapshot(&bm);
    assert_eq!(
        bm.alloc_contiguous(0, 1, Owner::KernelHeap),
        Err(FrameError::InvalidRequest)
    );
    assert_eq!(
        bm.alloc_contiguous(1, 0, Owner::KernelHeap),
        Err(FrameError::InvalidRequest)
    );
    assert_eq!(
        bm.alloc_contiguous(1, 3, Owner::KernelHeap),
        Err(FrameError::InvalidRequest)
    );
    assert_eq!(
        bm.alloc_contiguous(129, 1, Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    assert_eq!(
        bm.alloc_contiguous(2, 1 << 62, Owner::KernelHeap),
        Ok(frames(0, 2))
    );
    bm.free_contiguous(frames(0, 2)).unwrap();
    assert_eq!(
        bm.alloc_contiguous(2, 1 << 62, Owner::KernelHeap),
        Ok(frames(0, 2))
    );
    bm.free_contiguous(frames(0, 2)).unwrap();
    bm.alloc_frame(Owner::KernelHeap).unwrap();
    let before_align = snapshot(&bm);
    assert_eq!(
        bm.alloc_contiguous(2, 256, Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    assert_eq!(
        bm.alloc_contiguous(2, 1 << 63, Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    assert_eq!(snapshot(&bm), before_align);
    bm.free_frame(f(0)).unwrap();
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn free_contiguous_is_all_or_nothing() {
    let mut st = Storage::new(64);
    let mut bm = st.build(&[ram(0, 64)], &[]);
    let run = bm.alloc_contiguous(10, 1, Owner::KernelHeap).unwrap();
    bm.free_frame(f(5)).unwrap();
    let before = snapshot(&bm);
    assert_eq!(bm.free_contiguous(run), Err(FrameError::DoubleFree));
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn release_reserved_frees_only_frames_of_that_owner() {
    let mut st = Storage::new(128);
    let reserved = [
        (frames(10, 20), Owner::BootInfo),
        (frames(15, 17), Owner::KernelImage),
    ];
    let mut bm = st.build(&[ram(0, 120)], &reserved);
    let free_before = bm.free_frames();
    assert_eq!(bm.release_reserved(frames(0, 128), Owner::BootInfo), Ok(8));
    assert_eq!(bm.free_frames(), free_before + 8);
    assert_eq!(bm.owner(f(16)), Some(Owner::KernelImage));
    assert_eq!(bm.owner(f(10)), None);
    assert_consistent(&bm);
    let before = snapshot(&bm);
    assert_eq!(
        bm.release_reserved(frames(0, 128), Owner::Unusable),
        Err(FrameError::InvalidOwner)
    );
    assert_eq!(
        bm.release_reserved(frames(0, 129), Owner::KernelImage),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(snapshot(&bm), before);
}

// ---- scale ------------------------------------------------------------------

#[test]
fn sixteen_gib_bitmap_finds_its_last_free_frame_through_four_levels() {
    let nr = 16 * GIB / FRAME_SIZE;
    let mut st = Storage::new(nr);
    let mut bm = st.build(&[ram(0, nr)], &[]);
    assert_eq!(bm.nr_levels(), 4);
    let all = bm.alloc_contiguous(nr, 1, Owner::KernelHeap).unwrap();
    assert_eq!(all.len(), nr);
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::OutOfMemory)
    );
    bm.free_frame(f(nr - 1)).unwrap();
    bm.free_frame(f(nr / 2 + 77)).unwrap();
    assert_eq!(bm.alloc_frame(Owner::PageTable), Ok(f(nr / 2 + 77)));
    assert_eq!(bm.alloc_frame(Owner::PageTable), Ok(f(nr - 1)));
    assert_eq!(bm.free_frames(), 0);
    assert_consistent(&bm);
}

// ---- accounting ---------------------------------------------------------------

#[test]
fn usage_and_frames_owned_by_count_each_owner() {
    let mut st = Storage::new(256);
    let reserved = [
        (frames(0, 16), Owner::Reserved),
        (frames(16, 20), Owner::KernelImage),
    ];
    let mut bm = st.build(&[ram(0, 200)], &reserved);
    for _ in 0..3 {
        bm.alloc_frame(Owner::Process(5)).unwrap();
    }
    bm.alloc_frame(Owner::Process(6)).unwrap();
    bm.alloc_frame(Owner::PageTable).unwrap();
    let usage = bm.usage();
    assert_eq!(usage.unusable, 56);
    assert_eq!(usage.reserved, 16);
    assert_eq!(usage.kernel_image, 4);
    assert_eq!(usage.process, 4);
    assert_eq!(usage.page_table, 1);
    assert_eq!(usage.free, bm.free_frames());
    assert_eq!(usage.invalid, 0);
    assert_eq!(bm.frames_owned_by(Owner::Process(5)), 3);
    assert_eq!(bm.frames_owned_by(Owner::Process(6)), 1);
    assert_eq!(bm.frames_owned_by(Owner::Process(MAX_PID + 1)), 0);
}

#[test]
fn used_bits_expose_level_zero_with_padding_set() {
    let mut st = Storage::new(70);
    let mut bm = st.build(&[ram(0, 70)], &[]);
    bm.alloc_frame(Owner::KernelHeap).unwrap();
    assert_eq!(bm.used_bits(), &[1, !0 << 6]);
}

// ---- 32-bit owner slots -------------------------------------------------------

#[test]
fn u32_owner_slots_behave_like_u16_slots() {
    let nr = 5000;
    let map = [ram(0, nr - 100)];
    let reserved = [
        (frames(0, 256), Owner::Reserved),
        (frames(300, 310), Owner::KernelImage),
    ];
    let mut words16 = vec![0; FrameBitmap::words_needed(nr)];
    let mut slots16 = vec![0xffff_u16; nr as usize];
    let mut narrow =
        FrameBitmap::new(nr, &mut words16, slots16.as_mut_slice(), map, reserved).unwrap();
    let mut words32 = vec![0; FrameBitmap::words_needed(nr)];
    let mut slots32 = vec![u32::MAX; nr as usize];
    let mut wide =
        FrameBitmap::new(nr, &mut words32, slots32.as_mut_slice(), map, reserved).unwrap();
    assert_eq!(narrow.owners.width(), SlotWidth::U16);
    assert_eq!(wide.owners.width(), SlotWidth::U32);
    for i in 0..3000 {
        let owner = Owner::Process(i % 7);
        assert_eq!(narrow.alloc_frame(owner), wide.alloc_frame(owner));
        if i % 3 == 0 {
            let frame = f(256 + u64::from(i) / 2);
            assert_eq!(narrow.free_frame(frame), wide.free_frame(frame));
        }
    }
    assert_eq!(
        narrow.alloc_contiguous(40, 8, Owner::Other(3)),
        wide.alloc_contiguous(40, 8, Owner::Other(3))
    );
    assert_eq!(snapshot(&narrow), snapshot(&wide));
    assert_eq!(narrow.usage(), wide.usage());
    assert_consistent(&wide);
}

#[test]
fn u32_slot_with_high_bits_is_corrupt_not_truncated() {
    let mut words = vec![0; 1];
    let mut slots = vec![0u32; 64];
    let mut bm = FrameBitmap::new(64, &mut words, slots.as_mut_slice(), [ram(0, 64)], []).unwrap();
    bm.alloc_frame(Owner::KernelHeap).unwrap();
    let heap = u32::from(Owner::KernelHeap.to_raw().unwrap());
    bm.inject_corruption(Corruption::SetOwnerRaw {
        frame: f(0),
        raw: 0x1_0000 | heap,
    })
    .unwrap();
    assert_eq!(bm.owner(f(0)), None);
    assert_eq!(bm.free_frame(f(0)), Err(FrameError::Corrupted));
    let report = bm.check();
    assert_eq!(report.invalid_owners, 1);
    assert_eq!(
        report.mismatches()[0].kind,
        MismatchKind::InvalidOwner {
            raw: 0x1_0000 | heap
        }
    );
}

#[test]
fn u16_slot_refuses_a_corruption_value_it_cannot_hold() {
    let mut st = Storage::new(64);
    let mut bm = st.build(&[ram(0, 64)], &[]);
    let before = snapshot(&bm);
    let corruption = Corruption::SetOwnerRaw {
        frame: f(0),
        raw: 0x1_0000,
    };
    assert_eq!(
        bm.inject_corruption(corruption),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(snapshot(&bm), before);
}

// ---- check and corruption -----------------------------------------------------

/// A bitmap of 3 levels with some of everything, for corruption tests.
fn busy(st: &mut Storage) -> FrameBitmap<'_> {
    let nr = st.nr;
    let mut bm = st.build(&[ram(0, nr - 30)], &[(frames(0, 256), Owner::Reserved)]);
    for i in 0..1000 {
        bm.alloc_frame(Owner::Process(i % 4)).unwrap();
    }
    for i in (300..1200).step_by(3) {
        bm.free_frame(f(i)).unwrap();
    }
    bm
}

#[test]
fn check_is_consistent_after_construction_and_operations() {
    let mut st = Storage::new(5000);
    let bm = busy(&mut st);
    let report = bm.check();
    assert!(report.is_consistent(), "{report:#?}");
    assert_eq!(report.nr_mismatches(), 0);
    assert!(report.mismatches().is_empty());
    assert_eq!(report.free_counted, bm.free_frames());
    assert_eq!(report.total_counted, 4970);
}

#[test]
fn check_detects_a_flipped_used_bit() {
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    bm.inject_corruption(Corruption::FlipUsedBit(400)).unwrap(); // used -> free
    let report = bm.check();
    assert!(!report.is_consistent());
    assert_eq!(report.free_with_owner, 1);
    assert_eq!(
        report.mismatches()[0],
        Mismatch {
            frame: f(400),
            kind: MismatchKind::FreeWithOwner
        }
    );
    assert_ne!(report.free_counted, report.free_recorded);

    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    bm.inject_corruption(Corruption::FlipUsedBit(4000)).unwrap(); // free -> used
    let report = bm.check();
    assert_eq!(report.used_without_owner, 1);
    assert_eq!(report.mismatches()[0].frame, f(4000));
}

#[test]
fn check_detects_corrupted_owner_slots() {
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    bm.inject_corruption(Corruption::SetOwnerRaw {
        frame: f(4000),
        raw: 6,
    })
    .unwrap();
    bm.inject_corruption(Corruption::SetOwnerRaw {
        frame: f(500),
        raw: 0,
    })
    .unwrap();
    bm.inject_corruption(Corruption::SetOwnerRaw {
        frame: f(501),
        raw: 0xff,
    })
    .unwrap();
    let report = bm.check();
    assert_eq!(report.free_with_owner, 1);
    assert_eq!(report.used_without_owner, 1);
    assert_eq!(report.invalid_owners, 1);
    let kinds: Vec<_> = report
        .mismatches()
        .iter()
        .map(|m| (m.frame.number(), m.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (500, MismatchKind::UsedWithoutOwner),
            (501, MismatchKind::InvalidOwner { raw: 0xff }),
            (4000, MismatchKind::FreeWithOwner),
        ]
    );
}

#[test]
fn check_detects_summary_and_padding_corruption() {
    for (corruption, level) in [
        (Corruption::FlipSummaryBit { level: 1, bit: 20 }, 1),
        (Corruption::FlipSummaryBit { level: 2, bit: 0 }, 2),
    ] {
        let mut st = Storage::new(5000);
        let mut bm = busy(&mut st);
        bm.inject_corruption(corruption).unwrap();
        let report = bm.check();
        assert_eq!(report.summary_mismatches, 1, "{corruption:?}");
        assert_eq!(report.mismatches()[0].kind, MismatchKind::Summary { level });
    }
    // 5000 frames: level 0 has 79 words (bits 5000..5056 padding), level 1
    // has 2 words (bits 79..128 padding), level 2 one word (bits 2..64).
    for (corruption, level) in [
        (Corruption::FlipUsedBit(5001), 0),
        (Corruption::FlipSummaryBit { level: 1, bit: 100 }, 1),
        (Corruption::FlipSummaryBit { level: 2, bit: 63 }, 2),
    ] {
        let mut st = Storage::new(5000);
        let mut bm = busy(&mut st);
        bm.inject_corruption(corruption).unwrap();
        let report = bm.check();
        assert_eq!(report.padding_mismatches, 1, "{corruption:?}");
        assert_eq!(report.mismatches()[0].kind, MismatchKind::Padding { level });
    }
}

#[test]
fn check_detects_skewed_counters() {
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    bm.inject_corruption(Corruption::SkewFreeCount(-1)).unwrap();
    let report = bm.check();
    assert_eq!(report.nr_mismatches(), 1);
    assert_eq!(report.free_recorded + 1, report.free_counted);
    bm.inject_corruption(Corruption::SkewFreeCount(1)).unwrap();
    bm.inject_corruption(Corruption::SkewTotalCount(3)).unwrap();
    let report = bm.check();
    assert_eq!(report.nr_mismatches(), 1);
    assert_eq!(report.total_recorded, report.total_counted + 3);
}

#[test]
fn check_lists_at_most_max_reported_mismatches_but_counts_all() {
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    for frame in 4000..4020 {
        bm.inject_corruption(Corruption::SetOwnerRaw {
            frame: f(frame),
            raw: 8,
        })
        .unwrap();
    }
    let report = bm.check();
    assert_eq!(report.free_with_owner, 20);
    assert_eq!(report.mismatches().len(), MAX_REPORTED);
    assert_eq!(
        report.mismatches()[MAX_REPORTED - 1].frame,
        f(4000 + MAX_REPORTED as u64 - 1)
    );
}

#[test]
fn corrupted_bitmap_never_hands_out_a_used_frame() {
    // A used frame whose bit was cleared: the owner slot still says used.
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    let lowest_free = (0..5000).find(|&n| !bm.is_used(f(n))).unwrap();
    let victim = 256;
    assert!(victim < lowest_free && bm.is_used(f(victim)));
    bm.inject_corruption(Corruption::FlipUsedBit(victim))
        .unwrap();
    let before = snapshot(&bm);
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::Corrupted)
    );
    assert_eq!(
        bm.alloc_contiguous(1, 1, Owner::KernelHeap),
        Err(FrameError::Corrupted)
    );
    assert_eq!(snapshot(&bm), before);

    // A summary bit that claims a full word has room.
    let mut st = Storage::new(5000);
    let mut bm = busy(&mut st);
    bm.inject_corruption(Corruption::FlipSummaryBit { level: 1, bit: 0 })
        .unwrap();
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::Corrupted)
    );

    // A cleared padding bit would name a frame past the end.
    let mut st = Storage::new(100);
    let mut bm = st.build(&[ram(0, 100)], &[]);
    bm.alloc_contiguous(100, 1, Owner::KernelHeap).unwrap();
    bm.inject_corruption(Corruption::FlipUsedBit(120)).unwrap();
    bm.inject_corruption(Corruption::SkewFreeCount(1)).unwrap();
    bm.inject_corruption(Corruption::FlipSummaryBit { level: 1, bit: 1 })
        .unwrap();
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::Corrupted)
    );

    // A free counter above the truth.
    let mut st = Storage::new(100);
    let mut bm = st.build(&[ram(0, 100)], &[]);
    bm.alloc_contiguous(100, 1, Owner::KernelHeap).unwrap();
    bm.inject_corruption(Corruption::SkewFreeCount(5)).unwrap();
    assert_eq!(
        bm.alloc_frame(Owner::KernelHeap),
        Err(FrameError::Corrupted)
    );
}

#[test]
fn inject_corruption_outside_the_bitmap_is_refused() {
    let mut st = Storage::new(100);
    let mut bm = st.build(&[ram(0, 100)], &[]);
    let before = snapshot(&bm);
    assert_eq!(
        bm.inject_corruption(Corruption::FlipUsedBit(128)),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(
        bm.inject_corruption(Corruption::SetOwnerRaw {
            frame: f(100),
            raw: 1
        }),
        Err(FrameError::OutOfRange)
    );
    for level in [0, 2] {
        let corruption = Corruption::FlipSummaryBit { level, bit: 0 };
        assert_eq!(
            bm.inject_corruption(corruption),
            Err(FrameError::OutOfRange)
        );
    }
    assert_eq!(
        bm.inject_corruption(Corruption::FlipSummaryBit { level: 1, bit: 64 }),
        Err(FrameError::OutOfRange)
    );
    assert_eq!(snapshot(&bm), before);
}

#[test]
fn errors_display_a_sentence() {
    assert_eq!(FrameError::DoubleFree.to_string(), "frame is already free");
    assert_eq!(
        FrameError::Unaligned.to_string(),
        "address is not frame-aligned"
    );
}
