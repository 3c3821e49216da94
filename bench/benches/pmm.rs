//! Physical frame allocator throughput on 16 GiB against a linear first-fit
//! scan, at 10 %, 90 % and 99.9 % full.
//!
//! For each fill level the bitmap is filled at random positions, then a loop
//! of pairs runs: allocate one frame, free a random used frame, so the free
//! positions keep moving. The peer, "linear first-fit scan", looks for the
//! first non-full word from frame 0 over a copy of the same level-0 bitmap
//! words. Both take the lowest free frame, so from the same state and the
//! same random choices they hand out the same frames; the bench checks that
//! in lockstep before timing each of them alone.

use std::hint::black_box;
use std::time::{Duration, Instant};

use kernel::mm::frame::{
    FRAME_SIZE, Frame, FrameBitmap, FrameRange, MemoryRegion, Owner, PhysAddr, SlotWidth,
};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
/// 16 GiB of RAM: 4 Mi frames, four bitmap levels.
const NR_FRAMES: u64 = 16 * GIB / FRAME_SIZE;
const FILLS: [f64; 3] = [0.10, 0.90, 0.999];
/// Pairs checked in lockstep against the peer before timing.
const LOCKSTEP_PAIRS: usize = 2_000;
/// Time budget of each measured loop, and its cap in pairs.
const BUDGET: Duration = Duration::from_millis(400);
const MAX_PAIRS: u64 = 5_000_000;
const OWNER: Owner = Owner::Process(1);

/// SplitMix64: a tiny, seedable generator, so both sides see the same
/// choices without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// The peer: first fit by scanning level-0 words from frame 0.
struct LinearScan {
    words: Vec<u64>,
    /// Words examined, to show why it slows down.
    words_scanned: u64,
}

impl LinearScan {
    fn alloc(&mut self) -> Option<u64> {
        let (idx, word) = self
            .words
            .iter_mut()
            .enumerate()
            .find(|(_, w)| **w != u64::MAX)?;
        self.words_scanned += idx as u64 + 1;
        let bit = (!*word).trailing_zeros();
        *word |= 1 << bit;
        Some(idx as u64 * 64 + u64::from(bit))
    }

    fn free(&mut self, frame: u64) -> bool {
        let word = &mut self.words[(frame / 64) as usize];
        let mask = 1 << (frame % 64);
        let was_used = *word & mask != 0;
        *word &= !mask;
        was_used
    }
}

/// Picks a random used frame at or above `first` (below it sit the reserved
/// frames), by rejection from the level-0 words: uniform over the frames the
/// bench may free, with no list of them to keep up (a list of 4 Mi frames
/// would add a cache miss per pick to both sides).
struct Victims {
    first: u64,
    rng: Rng,
}

impl Victims {
    fn pick(&mut self, used_bits: &[u64]) -> u64 {
        loop {
            let frame = self.first + self.rng.below((NR_FRAMES - self.first) as usize) as u64;
            if used_bits[(frame / 64) as usize] & (1 << (frame % 64)) != 0 {
                return frame;
            }
        }
    }
}

/// One alloc + free pair on our allocator.
fn pair_ours(bm: &mut FrameBitmap<'_>, victims: &mut Victims) -> u64 {
    let frame = bm.alloc_frame(OWNER).expect("a frame is free");
    let victim = victims.pick(bm.used_bits());
    bm.free_frame(Frame::from_number(victim))
        .expect("a used, unreserved frame frees");
    frame.number()
}

/// The same pair on the peer.
fn pair_scan(scan: &mut LinearScan, victims: &mut Victims) -> u64 {
    let frame = scan.alloc().expect("a frame is free");
    let victim = victims.pick(&scan.words);
    assert!(scan.free(victim), "a used frame frees");
    frame
}

/// Runs `pair` until the budget or the cap is spent; pairs per second.
fn measure(mut pair: impl FnMut() -> u64) -> (u64, f64) {
    let start = Instant::now();
    let mut pairs = 0;
    // Look at the clock every few pairs only: a scan pair can take tens of
    // microseconds, one of ours tens of nanoseconds.
    while pairs < MAX_PAIRS && (pairs % 16 != 0 || start.elapsed() < BUDGET) {
        black_box(pair());
        pairs += 1;
    }
    (pairs, pairs as f64 / start.elapsed().as_secs_f64())
}

struct Row {
    fill: f64,
    ours: f64,
    scan: f64,
    /// Picks of a victim per second alone: the harness's share of a pair.
    picks: f64,
    scan_words_per_alloc: f64,
}

fn run(fill: f64, seed: u64) -> Row {
    let map = [MemoryRegion::usable(
        PhysAddr::new(0),
        NR_FRAMES * FRAME_SIZE,
    )];
    let nr_frames = FrameBitmap::span(map);
    let mut words = vec![0; FrameBitmap::words_needed(nr_frames)];
    // 16-bit owner slots, the recommended layout.
    let mut owners = vec![0u16; FrameBitmap::owner_slots_needed(nr_frames)];
    // Where a kernel would keep the storage: just above its image at 16 MiB.
    let storage = FrameRange::covering(
        PhysAddr::new(16 * MIB),
        FrameBitmap::storage_bytes_with(nr_frames, SlotWidth::U16),
    );
    let reserved = [
        (FrameRange::covering(PhysAddr::new(0), MIB), Owner::Reserved),
        (
            FrameRange::covering(PhysAddr::new(2 * MIB), 4 * MIB),
            Owner::KernelImage,
        ),
        (storage, Owner::Bitmap),
    ];
    let mut bm = FrameBitmap::new(nr_frames, &mut words, owners.as_mut_slice(), map, reserved)
        .expect("storage fits");
    assert_eq!(bm.nr_levels(), 4);

    // Fill at random positions: take everything, give back a random share.
    let first = reserved
        .iter()
        .map(|(range, _)| range.end().number())
        .max()
        .unwrap_or(0);
    let mut victims = Victims {
        first,
        rng: Rng(seed),
    };
    while bm.alloc_frame(OWNER).is_ok() {}
    let target_used = (fill * bm.total_frames() as f64).round() as u64;
    while bm.used_frames() > target_used {
        let victim = victims.pick(bm.used_bits());
        bm.free_frame(Frame::from_number(victim))
            .expect("unreserved");
    }

    // Same words, same choices: both must hand out the same frames.
    let mut scan = LinearScan {
        words: bm.used_bits().to_vec(),
        words_scanned: 0,
    };
    let mut victims_ours = Victims {
        first,
        rng: Rng(seed ^ 1),
    };
    let mut victims_scan = Victims {
        first,
        rng: Rng(seed ^ 1),
    };
    for _ in 0..LOCKSTEP_PAIRS {
        let ours = pair_ours(&mut bm, &mut victims_ours);
        let peer = pair_scan(&mut scan, &mut victims_scan);
        assert_eq!(ours, peer, "both take the lowest free frame");
    }
    assert_eq!(bm.used_bits(), &scan.words[..], "same state after lockstep");

    let mut victims_alone = Victims {
        first,
        rng: Rng(seed ^ 2),
    };
    let (_, picks) = measure(|| victims_alone.pick(bm.used_bits()));
    let (_, ours) = measure(|| pair_ours(&mut bm, &mut victims_ours));
    scan.words_scanned = 0;
    let (scan_pairs, scan_rate) = measure(|| pair_scan(&mut scan, &mut victims_scan));

    let report = bm.check();
    assert!(report.is_consistent(), "{report:#?}");
    let fill_now = bm.used_frames() as f64 / bm.total_frames() as f64;
    assert!(
        (fill_now - fill).abs() < 0.001,
        "fill stays at {fill}, is {fill_now}"
    );
    Row {
        fill,
        ours,
        scan: scan_rate,
        picks,
        scan_words_per_alloc: scan.words_scanned as f64 / scan_pairs as f64,
    }
}

fn main() {
    println!(
        "pmm: {} GiB, {} frames, alloc_frame + free_frame of a random used frame per op",
        NR_FRAMES * FRAME_SIZE / GIB,
        NR_FRAMES
    );
    println!(
        "{:>7} {:>14} {:>14} {:>9} {:>12} {:>16} {:>18}",
        "fill",
        "ours ops/s",
        "scan ops/s",
        "ratio",
        "ours ns/op",
        "of which pick",
        "scan words/alloc"
    );
    let mut rows = Vec::new();
    for (i, fill) in FILLS.into_iter().enumerate() {
        let row = run(fill, 0x5eed + i as u64);
        println!(
            "{:>6.1}% {:>14.0} {:>14.0} {:>8.0}x {:>12.1} {:>16.1} {:>18.0}",
            row.fill * 100.0,
            row.ours,
            row.scan,
            row.ours / row.scan,
            1e9 / row.ours,
            1e9 / row.picks,
            row.scan_words_per_alloc
        );
        rows.push(row);
    }
    let fastest = rows.iter().map(|r| r.ours).fold(f64::MIN, f64::max);
    let slowest = rows.iter().map(|r| r.ours).fold(f64::MAX, f64::min);
    println!(
        "peer: linear first-fit scan from frame 0; ours varies {:.2}x across fills; \
         pick = choosing the random used frame to free, harness cost in both columns",
        fastest / slowest
    );
}
