//! Property tests: random memory maps and random sequences of allocations
//! and frees, checked step by step against a plain per-frame model.

use core::ops::RangeInclusive;

use proptest::prelude::*;

use super::*;

/// Bitmaps of one or two levels (up to 64 * 64 frames): many quick cases.
const SMALL: RangeInclusive<u64> = 1..=700;

/// Bitmaps of three levels (over 64 * 64 frames), big enough for a whole
/// level-1 word (4096 frames) to fill up and empty again.
const LARGE: RangeInclusive<u64> = 4097..=13_000;

/// The model: one entry per frame, `None` when free.
type Model = Vec<Option<Owner>>;

#[derive(Debug, Clone)]
struct Map {
    nr: u64,
    regions: Vec<MemoryRegion>,
    reserved: Vec<(FrameRange, Owner)>,
    /// 32-bit owner slots rather than 16-bit ones.
    wide: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(Owner),
    /// Allocate this many frames one by one, to fill whole summary words.
    AllocMany(u64),
    /// Free the `n % len`-th frame handed out so far.
    FreeHeld(usize),
    /// Free any frame, most likely a wrong one.
    FreeAny(u64),
    /// Free a page by address, maybe unaligned.
    FreePage(u64),
    AllocContiguous {
        nr: u64,
        align_log2: u32,
        owner: Owner,
    },
    /// Free the `n % len`-th run handed out so far.
    FreeContiguousHeld(usize),
    /// Free any run, most likely a wrong one.
    FreeContiguousAny {
        start: u64,
        len: u64,
    },
    Release {
        start: u64,
        len: u64,
        owner: Owner,
    },
    /// Hand the `n % len`-th frame held so far to `owner`.
    SetOwnerHeld(usize, Owner),
    /// Hand any frame to any owner, most likely refused.
    SetOwnerAny(u64, Owner),
}

fn permanent_owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        Just(Owner::Reserved),
        Just(Owner::KernelImage),
        Just(Owner::BootInfo),
        Just(Owner::Bitmap),
    ]
}

fn runtime_owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        Just(Owner::KernelHeap),
        Just(Owner::KernelStack),
        Just(Owner::PageTable),
        (0..4u32).prop_map(Owner::Process),
        Just(Owner::Process(MAX_PID)),
        any::<u8>().prop_map(Owner::Other),
    ]
}

/// Any owner, including ones `set_owner` must refuse.
fn any_owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        4 => runtime_owner(),
        1 => permanent_owner(),
        1 => Just(Owner::Unusable),
        1 => (MAX_PID + 1..=u32::MAX).prop_map(Owner::Process),
    ]
}

fn map(nr: RangeInclusive<u64>) -> impl Strategy<Value = Map> {
    nr.prop_flat_map(|nr| {
        let bytes = (nr + 64) * FRAME_SIZE;
        // Byte-granular starts and lengths, so edges fall mid-frame.
        let region = (0..bytes, 0..bytes / 2, prop::bool::weighted(0.75)).prop_map(
            |(start, len, usable)| MemoryRegion {
                start: PhysAddr::new(start),
                len_bytes: len,
                usable,
            },
        );
        // Often at the bottom, like the first MiB.
        let reserved_start = prop_oneof![0..64u64, 0..nr + 16];
        let reserved =
            (reserved_start, 0..nr / 8 + 2, permanent_owner()).prop_map(|(start, len, owner)| {
                (
                    FrameRange::from_count(Frame::from_number(start), len),
                    owner,
                )
            });
        // Half the maps start with all RAM usable, so that later unusable
        // regions cut whole summary words out of it.
        let all_ram = prop::bool::ANY.prop_map(move |all| {
            all.then(|| MemoryRegion::usable(PhysAddr::new(0), nr * FRAME_SIZE))
        });
        (
            all_ram,
            prop::collection::vec(region, 0..8),
            prop::collection::vec(reserved, 0..5),
        )
            .prop_map(move |(all_ram, regions, reserved)| Map {
                nr,
                regions: all_ram.into_iter().chain(regions).collect(),
                reserved,
                wide: nr % 2 == 1,
            })
    })
}

fn op(nr: u64) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => runtime_owner().prop_map(Op::Alloc),
        4 => any::<usize>().prop_map(Op::FreeHeld),
        1 => (0..nr + 8).prop_map(Op::FreeAny),
        1 => (0..(nr + 8) * FRAME_SIZE).prop_map(|a| Op::FreePage(if a % 3 == 0 { a } else { a & !0xfff })),
        1 => (1..=nr).prop_map(Op::AllocMany),
        2 => (prop_oneof![4 => 1..80u64, 1 => 1..=nr], 0..8u32, runtime_owner())
            .prop_map(|(nr, align_log2, owner)| Op::AllocContiguous { nr, align_log2, owner }),
        2 => any::<usize>().prop_map(Op::FreeContiguousHeld),
        1 => (0..nr + 8, 0..40u64).prop_map(|(start, len)| Op::FreeContiguousAny { start, len }),
        1 => (0..nr, 0..nr / 4 + 2, prop_oneof![permanent_owner(), Just(Owner::Unusable), runtime_owner()])
            .prop_map(|(start, len, owner)| Op::Release { start, len, owner }),
        2 => (any::<usize>(), runtime_owner()).prop_map(|(i, owner)| Op::SetOwnerHeld(i, owner)),
        1 => (0..nr + 8, any_owner()).prop_map(|(n, owner)| Op::SetOwnerAny(n, owner)),
    ]
}

fn case(nr: RangeInclusive<u64>, max_ops: usize) -> impl Strategy<Value = (Map, Vec<Op>)> {
    map(nr).prop_flat_map(move |m| {
        let nr = m.nr;
        (Just(m), prop::collection::vec(op(nr), 0..max_ops))
    })
}

/// What `FrameBitmap::new` should make of a map, worked out frame by frame.
fn model_of(m: &Map) -> Model {
    let mut model = vec![Some(Owner::Unusable); m.nr as usize];
    let within = |r: FrameRange| r.numbers().filter(|&n| n < m.nr);
    for region in m.regions.iter().filter(|r| r.usable) {
        for n in within(FrameRange::within(region.start, region.len_bytes)) {
            model[n as usize] = None;
        }
    }
    for region in m.regions.iter().filter(|r| !r.usable) {
        for n in within(FrameRange::covering(region.start, region.len_bytes)) {
            model[n as usize] = Some(Owner::Unusable);
        }
    }
    for &(range, owner) in &m.reserved {
        for n in within(range) {
            if model[n as usize] != Some(Owner::Unusable) {
                model[n as usize] = Some(owner);
            }
        }
    }
    model
}

fn expected_free(model: &Model, frame: u64) -> Result<Owner, FrameError> {
    match model.get(frame as usize) {
        None => Err(FrameError::OutOfRange),
        Some(None) => Err(FrameError::DoubleFree),
        Some(Some(owner)) if owner.is_permanent() => Err(FrameError::Reserved),
        Some(Some(owner)) => Ok(*owner),
    }
}

fn expected_set_owner(model: &Model, frame: u64, owner: Owner) -> Result<Owner, FrameError> {
    if owner.to_raw().is_none() || owner.is_permanent() {
        return Err(FrameError::InvalidOwner);
    }
    expected_free(model, frame)
}

/// The lowest run of `len` free frames starting at a multiple of `align`.
fn expected_run(model: &Model, len: u64, align: u64) -> Option<u64> {
    // free_from[i]: free frames in a row starting at i.
    let mut free_from = vec![0u64; model.len() + 1];
    for i in (0..model.len()).rev() {
        free_from[i] = if model[i].is_none() {
            free_from[i + 1] + 1
        } else {
            0
        };
    }
    (0..model.len() as u64)
        .step_by(align as usize)
        .find(|&s| free_from[s as usize] >= len)
}

fn snapshot(bm: &FrameBitmap<'_>) -> (Vec<u64>, Vec<u32>, u64, u64) {
    (
        bm.words.to_vec(),
        bm.owners.to_vec(),
        bm.nr_free,
        bm.nr_total,
    )
}

/// Every summary bit recomputed from the level below, independently of
/// `check`.
fn summaries_match(bm: &FrameBitmap<'_>) -> bool {
    let levels = bm.levels;
    (1..levels.count).all(|level| {
        let below = &bm.words[levels.start[level - 1]..levels.start[level]];
        let here = &bm.words[levels.start[level]..levels.start[level + 1]];
        (0..here.len() * 64).all(|bit| {
            let set = here[bit / 64] >> (bit % 64) & 1 == 1;
            let expected = below
                .get(bit)
                .is_some_and(|&w| if level == 1 { w != u64::MAX } else { w != 0 });
            set == expected
        })
    })
}

/// The bitmap agrees with the model, with itself and with `check`.
fn assert_matches(bm: &FrameBitmap<'_>, model: &Model) -> Result<(), TestCaseError> {
    for (n, expected) in model.iter().enumerate() {
        let frame = Frame::from_number(n as u64);
        prop_assert_eq!(bm.owner(frame), *expected, "owner of frame {}", n);
        prop_assert_eq!(
            bm.is_used(frame),
            expected.is_some(),
            "used bit of frame {}",
            n
        );
    }
    let used: u64 = bm
        .used_bits()
        .iter()
        .map(|w| u64::from(w.count_ones()))
        .sum();
    let padding = bm.used_bits().len() as u64 * 64 - bm.nr_frames();
    prop_assert_eq!(bm.free_frames(), bm.nr_frames() - (used - padding));
    prop_assert_eq!(
        bm.free_frames(),
        model.iter().filter(|o| o.is_none()).count() as u64
    );
    prop_assert_eq!(
        bm.total_frames(),
        model
            .iter()
            .filter(|o| **o != Some(Owner::Unusable))
            .count() as u64
    );
    prop_assert!(summaries_match(bm));
    let report = bm.check();
    prop_assert!(report.is_consistent(), "{:#?}", report);
    Ok(())
}

/// Runs one op on both the bitmap and the model, checking the bitmap's
/// answer and that a failed op changed nothing.
fn apply(
    bm: &mut FrameBitmap<'_>,
    model: &mut Model,
    held: &mut Vec<Frame>,
    runs: &mut Vec<FrameRange>,
    op: &Op,
) -> Result<(), TestCaseError> {
    let before = snapshot(bm);
    let failed = match *op {
        Op::Alloc(owner) => {
            let expected = model.iter().position(Option::is_none);
            match bm.alloc_frame(owner) {
                Ok(frame) => {
                    prop_assert_eq!(
                        Some(frame.number() as usize),
                        expected,
                        "lowest free frame first"
                    );
                    model[frame.number() as usize] = Some(owner);
                    held.push(frame);
                    false
                }
                Err(err) => {
                    prop_assert_eq!(err, FrameError::OutOfMemory);
                    prop_assert_eq!(expected, None);
                    true
                }
            }
        }
        Op::AllocMany(count) => {
            let mut next = 0;
            for _ in 0..count {
                let expected = model[next..]
                    .iter()
                    .position(Option::is_none)
                    .map(|i| next + i);
                match bm.alloc_frame(Owner::PageTable) {
                    Ok(frame) => {
                        prop_assert_eq!(
                            Some(frame.number() as usize),
                            expected,
                            "lowest free frame first"
                        );
                        model[frame.number() as usize] = Some(Owner::PageTable);
                        held.push(frame);
                        next = frame.number() as usize + 1;
                    }
                    Err(err) => {
                        prop_assert_eq!(err, FrameError::OutOfMemory);
                        prop_assert_eq!(expected, None);
                        break;
                    }
                }
            }
            false
        }
        Op::FreeHeld(i) => {
            if held.is_empty() {
                return Ok(());
            }
            let frame = held.swap_remove(i % held.len());
            let result = bm.free_frame(frame);
            prop_assert_eq!(result, expected_free(model, frame.number()));
            prop_assert!(result.is_ok(), "a frame we hold frees");
            model[frame.number() as usize] = None;
            false
        }
        Op::FreeAny(n) => {
            let result = bm.free_frame(Frame::from_number(n));
            prop_assert_eq!(result, expected_free(model, n));
            if result.is_ok() {
                model[n as usize] = None;
                held.retain(|f| f.number() != n);
                runs.retain(|r| !r.contains(Frame::from_number(n)));
            }
            result.is_err()
        }
        Op::FreePage(addr) => {
            let result = bm.free_page(PhysAddr::new(addr));
            let n = addr / FRAME_SIZE;
            if addr % FRAME_SIZE != 0 {
                prop_assert_eq!(result, Err(FrameError::Unaligned));
            } else {
                prop_assert_eq!(result, expected_free(model, n));
            }
            if result.is_ok() {
                model[n as usize] = None;
                held.retain(|f| f.number() != n);
                runs.retain(|r| !r.contains(Frame::from_number(n)));
            }
            result.is_err()
        }
        Op::AllocContiguous {
            nr,
            align_log2,
            owner,
        } => {
            let align = 1 << align_log2;
            let expected = expected_run(model, nr, align);
            match bm.alloc_contiguous(nr, align, owner) {
                Ok(run) => {
                    prop_assert_eq!(Some(run.start().number()), expected);
                    prop_assert_eq!(run.len(), nr);
                    prop_assert_eq!(run.start().number() % align, 0);
                    for n in run.numbers() {
                        prop_assert_eq!(model[n as usize], None, "frame {} of the run was free", n);
                        model[n as usize] = Some(owner);
                    }
                    runs.push(run);
                    false
                }
                Err(err) => {
                    prop_assert_eq!(err, FrameError::OutOfMemory);
                    prop_assert_eq!(expected, None);
                    true
                }
            }
        }
        Op::FreeContiguousHeld(i) => {
            if runs.is_empty() {
                return Ok(());
            }
            let run = runs.swap_remove(i % runs.len());
            prop_assert_eq!(bm.free_contiguous(run), Ok(()));
            for n in run.numbers() {
                model[n as usize] = None;
            }
            false
        }
        Op::FreeContiguousAny { start, len } => {
            let run = FrameRange::from_count(Frame::from_number(start), len);
            let expected = if run.end().number() > model.len() as u64 {
                Err(FrameError::OutOfRange)
            } else {
                run.numbers()
                    .map(|n| expected_free(model, n).map(|_| ()))
                    .find(Result::is_err)
                    .unwrap_or(Ok(()))
            };
            let result = bm.free_contiguous(run);
            prop_assert_eq!(result, expected);
            if result.is_ok() {
                for n in run.numbers() {
                    model[n as usize] = None;
                }
                held.retain(|f| !run.contains(*f));
                runs.retain(|r| {
                    r.end().number() <= start || r.start().number() >= run.end().number()
                });
            }
            result.is_err()
        }
        Op::Release { start, len, owner } => {
            let range = FrameRange::from_count(Frame::from_number(start), len);
            let result = bm.release_reserved(range, owner);
            if owner == Owner::Unusable {
                prop_assert_eq!(result, Err(FrameError::InvalidOwner));
            } else if range.end().number() > model.len() as u64 {
                prop_assert_eq!(result, Err(FrameError::OutOfRange));
            } else {
                let mut count = 0;
                for n in range.numbers() {
                    if model[n as usize] == Some(owner) {
                        model[n as usize] = None;
                        count += 1;
                    }
                }
                prop_assert_eq!(result, Ok(count));
                held.retain(|f| !range.contains(*f) || model[f.number() as usize].is_some());
                runs.retain(|r| r.iter().all(|f| model[f.number() as usize].is_some()));
            }
            result.is_err()
        }
        Op::SetOwnerHeld(i, owner) => {
            if held.is_empty() {
                return Ok(());
            }
            let frame = held[i % held.len()];
            let result = bm.set_owner(frame, owner);
            prop_assert_eq!(result, expected_set_owner(model, frame.number(), owner));
            prop_assert!(result.is_ok(), "a frame we hold changes hands");
            model[frame.number() as usize] = Some(owner);
            false
        }
        Op::SetOwnerAny(n, owner) => {
            let result = bm.set_owner(Frame::from_number(n), owner);
            prop_assert_eq!(result, expected_set_owner(model, n, owner));
            if result.is_ok() {
                model[n as usize] = Some(owner);
            }
            result.is_err()
        }
    };
    if failed {
        prop_assert!(
            snapshot(bm) == before,
            "a failed {:?} changed the bitmap",
            op
        );
    }
    Ok(())
}

/// A corruption, drawn before the state it applies to is known.
#[derive(Debug, Clone)]
enum Damage {
    UsedBit(prop::sample::Index),
    OwnerSlot {
        frame: prop::sample::Index,
        invalid: bool,
        owner: Owner,
    },
    SummaryBit {
        level: prop::sample::Index,
        bit: u8,
    },
    FreeCount(i64),
    TotalCount(i64),
}

fn damage() -> impl Strategy<Value = Damage> {
    let delta = || prop_oneof![(-3i64..=-1), (1i64..=3)];
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::UsedBit),
        (any::<prop::sample::Index>(), any::<bool>(), runtime_owner()).prop_map(
            |(frame, invalid, owner)| Damage::OwnerSlot {
                frame,
                invalid,
                owner
            }
        ),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(level, bit)| Damage::SummaryBit { level, bit }),
        delta().prop_map(Damage::FreeCount),
        delta().prop_map(Damage::TotalCount),
    ]
}

/// The corruption `damage` stands for in the current state, chosen so that
/// `check` must see it: a flipped used bit always disagrees with its owner
/// slot (or is padding), an owner slot is given the wrong kind of value,
/// and a summary bit flips within its level.
fn corruption(damage: &Damage, bm: &FrameBitmap<'_>, model: &Model) -> Corruption {
    match *damage {
        Damage::UsedBit(bit) => {
            Corruption::FlipUsedBit(bit.index(bm.used_bits().len() * 64) as u64)
        }
        Damage::OwnerSlot {
            frame,
            invalid,
            owner,
        } => {
            let n = frame.index(model.len());
            let valid = u32::from(owner.to_raw().unwrap_or(6));
            let raw = match model[n] {
                // Wide slots can hold a valid 16-bit value plus high bits,
                // which must not be read as that value.
                _ if invalid && bm.owners.width() == SlotWidth::U32 => 0x1_0000 | valid,
                _ if invalid => 0xff,
                None => valid,
                Some(_) => 0,
            };
            Corruption::SetOwnerRaw {
                frame: Frame::from_number(n as u64),
                raw,
            }
        }
        Damage::SummaryBit { level, bit } if bm.nr_levels() > 1 => Corruption::FlipSummaryBit {
            level: 1 + level.index(bm.nr_levels() - 1),
            bit: u64::from(bit % 64),
        },
        Damage::SummaryBit { .. } => Corruption::SkewTotalCount(1),
        Damage::FreeCount(delta) => Corruption::SkewFreeCount(delta),
        Damage::TotalCount(delta) => Corruption::SkewTotalCount(delta),
    }
}

/// Owner storage of either width.
enum Slots {
    U16(Vec<u16>),
    U32(Vec<u32>),
}

fn build<'a>(m: &Map, words: &'a mut [u64], owners: &'a mut Slots) -> FrameBitmap<'a> {
    let owners: OwnerTable<'a> = match owners {
        Slots::U16(slots) => slots.as_mut_slice().into(),
        Slots::U32(slots) => slots.as_mut_slice().into(),
    };
    FrameBitmap::new(
        m.nr,
        words,
        owners,
        m.regions.iter().copied(),
        m.reserved.iter().copied(),
    )
    .expect("storage is sized by words_needed")
}

fn storage(m: &Map) -> (Vec<u64>, Slots) {
    // Garbage first: `new` must not depend on zeroed storage.
    let words = vec![0x5a5a_5a5a; FrameBitmap::words_needed(m.nr)];
    let nr_slots = FrameBitmap::owner_slots_needed(m.nr);
    let owners = if m.wide {
        Slots::U32(vec![0xa5a5_a5a5; nr_slots])
    } else {
        Slots::U16(vec![0xa5a5; nr_slots])
    };
    (words, owners)
}

/// Builds the bitmap of `m`, runs `ops` on it and on the model, and checks
/// they agree after each step: allocation takes the lowest free frame (so
/// never a reserved or used one), contiguous runs are free and aligned,
/// errors are the model's and change nothing, counters equal the recount,
/// summaries match the level below and `check` finds everything consistent.
fn run_against_model(m: &Map, ops: &[Op]) -> Result<(), TestCaseError> {
    let (mut words, mut owners) = storage(m);
    let mut bm = build(m, &mut words, &mut owners);
    let mut model = model_of(m);
    assert_matches(&bm, &model)?;
    let (mut held, mut runs) = (Vec::new(), Vec::new());
    for op in ops {
        apply(&mut bm, &mut model, &mut held, &mut runs, op)?;
        assert_matches(&bm, &model)?;
    }
    Ok(())
}

/// Runs `ops`, injects `damage`, and checks that `check` reports it and
/// that the allocator afterwards neither panics nor hands out a frame the
/// model says is used.
fn run_with_damage(m: &Map, ops: &[Op], damage: &Damage) -> Result<(), TestCaseError> {
    let (mut words, mut owners) = storage(m);
    let mut bm = build(m, &mut words, &mut owners);
    let mut model = model_of(m);
    let (mut held, mut runs) = (Vec::new(), Vec::new());
    for op in ops {
        apply(&mut bm, &mut model, &mut held, &mut runs, op)?;
    }
    let corruption = corruption(damage, &bm, &model);
    prop_assert_eq!(bm.inject_corruption(corruption), Ok(()));
    let report = bm.check();
    prop_assert!(
        !report.is_consistent(),
        "{:?} went unnoticed: {:#?}",
        corruption,
        report
    );

    for _ in 0..16 {
        let used_before: Vec<bool> = model.iter().map(Option::is_some).collect();
        if let Ok(frame) = bm.alloc_frame(Owner::KernelHeap) {
            let n = frame.number() as usize;
            prop_assert!(
                !used_before[n],
                "{:?} handed out used {:?}",
                corruption,
                frame
            );
            model[n] = Some(Owner::KernelHeap);
        }
        if let Ok(run) = bm.alloc_contiguous(3, 2, Owner::KernelHeap) {
            for n in run.numbers() {
                prop_assert!(
                    !used_before[n as usize],
                    "{:?} handed out used frame {}",
                    corruption,
                    n
                );
                model[n as usize] = Some(Owner::KernelHeap);
            }
        }
        if let Some(frame) = held.pop()
            && bm.free_frame(frame).is_ok()
        {
            model[frame.number() as usize] = None;
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn small_bitmap_matches_a_per_frame_model((m, ops) in case(SMALL, 120)) {
        run_against_model(&m, &ops)?;
    }

    #[test]
    fn small_bitmap_check_detects_injected_corruption((m, ops) in case(SMALL, 60), damage in damage()) {
        run_with_damage(&m, &ops, &damage)?;
    }
}

proptest! {
    // Each step walks 4k to 13k frames: fewer cases and steps.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn three_level_bitmap_matches_a_per_frame_model((m, ops) in case(LARGE, 40)) {
        run_against_model(&m, &ops)?;
    }

    #[test]
    fn three_level_bitmap_check_detects_injected_corruption(
        (m, ops) in case(LARGE, 20),
        damage in damage(),
    ) {
        run_with_damage(&m, &ops, &damage)?;
    }
}
