//! The kernel heap against named peers (talc, rlsf, linked_list_allocator,
//! buddy_system_allocator), in one run on the host, on the same seeded
//! workloads:
//!
//! - throughput: a random mix of alloc, free and realloc with mixed sizes
//!   and alignments over a fixed number of slots; operations per second and
//!   the ratio ours/peer;
//! - efficiency: how full a fixed arena gets (live requested bytes / arena
//!   size) under a random alloc/free/realloc pattern before the first
//!   allocation fails, averaged over several seeds.
//!
//! Our heap runs as the kernel uses it: every free and realloc validates
//! the block's sealed header and its neighbours', red zones off. Its blocks
//! carry the tag `(1, 0)`, which has the 16-byte compact header; the "wide
//! tags" row repeats the runs with a tag that has no compact form (an owner
//! beyond `i16`, a key beyond `i32`), whose blocks carry 16 bytes more.
//!
//! Run with `cargo bench -p bench --bench heap` (`make bench`). Set
//! `HEAP_BENCH_QUICK=1` for a shorter run.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use kernel::mm::heap::{BlockTag, Heap, HeapConfig};

const MIB: usize = 1 << 20;

/// xorshift64*: small, seeded, good enough to draw a workload.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// Mostly small sizes, a long tail of large ones (at least 8 bytes).
    fn size(&mut self, max: usize) -> usize {
        let cap = self.range(16, max);
        self.range(8, cap)
    }

    /// Mostly word alignment: 75% 8, 19% 16, 5% 32, ... up to 4096.
    fn align(&mut self) -> usize {
        8 << ((self.next() as u32).trailing_zeros() / 2).min(9)
    }
}

/// Zeroed memory from the host allocator for one allocator under test,
/// written once so no page fault lands inside a timed loop.
struct Arena {
    base: NonNull<u8>,
    layout: Layout,
}

impl Arena {
    fn new(size: usize) -> Self {
        let layout = Layout::from_size_align(size, 4096).expect("arena layout");
        // SAFETY: `layout` has a non-zero size.
        let base = unsafe { std::alloc::alloc(layout) };
        let base = NonNull::new(base).expect("arena allocation");
        let arena = Self { base, layout };
        arena.zero();
        arena
    }

    /// Zeroes the arena for the next allocator.
    fn zero(&self) {
        // SAFETY: `base` holds `layout.size()` writable bytes, and no
        // allocator is using them.
        unsafe { self.base.as_ptr().write_bytes(0, self.layout.size()) };
    }

    fn size(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `base` came from `alloc_zeroed` with `layout`.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// What the benchmark needs from an allocator.
trait Subject {
    const NAME: &'static str;

    /// An allocator over `size` bytes at `base`.
    ///
    /// # Safety
    ///
    /// The bytes are valid, zeroed and unused for the allocator's lifetime.
    unsafe fn new(base: NonNull<u8>, size: usize) -> Self;

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>>;

    /// # Safety
    ///
    /// `ptr` came from this allocator with this size and alignment.
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize, align: usize);

    /// # Safety
    ///
    /// As for `free`. On `None` the old block is untouched.
    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>>;
}

/// Realloc for allocators without one: allocate, copy, free.
///
/// # Safety
///
/// As for [`Subject::realloc`].
unsafe fn move_realloc<S: Subject>(
    s: &mut S,
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    new_size: usize,
) -> Option<NonNull<u8>> {
    let new = s.alloc(new_size, align)?;
    // SAFETY:
    // 1. `ptr` holds `size` bytes and `new` holds `new_size` (the caller's
    //    obligation and the allocator's promise);
    // 2. they are different live blocks, so they do not overlap.
    unsafe { std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), size.min(new_size)) };
    // SAFETY: forwarded from the caller.
    unsafe { s.free(ptr, size, align) };
    Some(new)
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("valid layout")
}

/// The kernel heap (red zones off, as in production) with blocks tagged
/// `TAG`.
struct Tagged<const WIDE: bool>(Heap);

/// Our heap with compact tags.
type Ours = Tagged<false>;

/// Our heap with wide tags.
type OursWide = Tagged<true>;

impl<const WIDE: bool> Subject for Tagged<WIDE> {
    const NAME: &'static str = if WIDE {
        "ours, wide tags"
    } else {
        "ours (kernel::mm::heap)"
    };

    unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        let start = base.as_ptr();
        let end = start.addr() + size;
        // SAFETY: forwarded from the caller; `max == end`, so the region's
        // provenance covers `[start, max)`.
        let heap = unsafe { Heap::new(start, end, end, HeapConfig::default()) };
        Self(heap.expect("arena fits a heap"))
    }

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        let tag = if WIDE {
            BlockTag::new(0x8000_0001, 0x1234_5678_9abc_def0)
        } else {
            BlockTag::new(1, 0)
        };
        self.0.alloc(size, align, tag).ok()
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>, _: usize, _: usize) {
        self.0.free(ptr).expect("valid free");
    }

    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        _: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        self.0.realloc(ptr, new_size, align).ok()
    }
}

struct Talc(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);

impl Subject for Talc {
    const NAME: &'static str = "talc 5";

    unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        let mut talc = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: forwarded from the caller.
        unsafe { talc.claim(base.as_ptr(), size) }.expect("arena fits talc");
        Self(talc)
    }

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        // SAFETY: the workloads never ask for zero bytes.
        unsafe { self.0.allocate(layout(size, align)) }
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize, align: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.deallocate(ptr.as_ptr(), layout(size, align)) }
    }

    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // As talc's own `GlobalAlloc::realloc`: in place, else move.
        // SAFETY: forwarded from the caller; `new_size` is non-zero.
        if unsafe {
            self.0
                .try_realloc_in_place(ptr.as_ptr(), layout(size, align), new_size)
        } {
            return Some(ptr);
        }
        // SAFETY: forwarded from the caller.
        unsafe { move_realloc(self, ptr, size, align, new_size) }
    }
}

type RlsfTlsf =
    rlsf::Tlsf<'static, usize, usize, { usize::BITS as usize - 12 }, { usize::BITS as usize }>;

struct Rlsf(RlsfTlsf);

impl Subject for Rlsf {
    const NAME: &'static str = "rlsf 0.2";

    unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        let mut tlsf = RlsfTlsf::new();
        let pool = NonNull::slice_from_raw_parts(base, size);
        // SAFETY: forwarded from the caller: the pool is valid and unused
        // for as long as `tlsf` is.
        unsafe { tlsf.insert_free_block_ptr(pool) }.expect("arena fits rlsf");
        Self(tlsf)
    }

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.0.allocate(layout(size, align))
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>, _: usize, align: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.deallocate(ptr, align) }
    }

    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        _: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller; same alignment as allocated.
        unsafe { self.0.reallocate(ptr, layout(new_size, align)) }
    }
}

struct LinkedList(linked_list_allocator::Heap);

impl Subject for LinkedList {
    const NAME: &'static str = "linked_list_allocator 0.10";

    unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        // SAFETY: forwarded from the caller.
        Self(unsafe { linked_list_allocator::Heap::new(base.as_ptr(), size) })
    }

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.0.allocate_first_fit(layout(size, align)).ok()
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize, align: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.deallocate(ptr, layout(size, align)) }
    }

    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        unsafe { move_realloc(self, ptr, size, align, new_size) }
    }
}

struct Buddy(buddy_system_allocator::Heap<32>);

impl Subject for Buddy {
    const NAME: &'static str = "buddy_system_allocator 0.13";

    unsafe fn new(base: NonNull<u8>, size: usize) -> Self {
        let mut heap = buddy_system_allocator::Heap::<32>::new();
        // SAFETY: forwarded from the caller.
        unsafe { heap.init(base.as_ptr().addr(), size) };
        Self(heap)
    }

    fn alloc(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        self.0.alloc(layout(size, align)).ok()
    }

    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize, align: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.dealloc(ptr, layout(size, align)) }
    }

    unsafe fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        size: usize,
        align: usize,
        new_size: usize,
    ) -> Option<NonNull<u8>> {
        // SAFETY: forwarded from the caller.
        unsafe { move_realloc(self, ptr, size, align, new_size) }
    }
}

// ---------------------------------------------------------------- throughput

/// One step of the throughput workload: on an empty slot, allocate; on a
/// full one, free or realloc.
#[derive(Clone, Copy)]
struct Step {
    slot: u32,
    realloc: bool,
    size: u32,
    align: u32,
}

const SLOTS: usize = 2048;
const ARENA_OPS: usize = 64 * MIB;
const MAX_OPS_SIZE: usize = 8192;

fn throughput_workload(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    (0..steps)
        .map(|_| {
            let r = rng.next();
            // one in 64 requests is large, up to 64 KiB
            let max = if r >> 58 == 0 {
                8 * MAX_OPS_SIZE
            } else {
                MAX_OPS_SIZE
            };
            Step {
                slot: rng.range(0, SLOTS) as u32,
                realloc: r & 1 == 0,
                size: rng.size(max) as u32,
                align: rng.align() as u32,
            }
        })
        .collect()
}

struct Run {
    elapsed: Duration,
    ops: usize,
    failures: usize,
}

/// Runs the workload once in `arena` (the same memory for every allocator,
/// so they all see the same pages); writes and checks a word in every block
/// so a broken allocator cannot go unnoticed.
fn run_throughput<S: Subject>(arena: &Arena, steps: &[Step]) -> Run {
    arena.zero();
    // SAFETY: the arena is zeroed, unused and outlives `s`, which is
    // dropped at the end of this function.
    let mut s = unsafe { S::new(arena.base, arena.size()) };
    let mut slots: Vec<Option<(NonNull<u8>, usize, usize)>> = vec![None; SLOTS];
    let mut failures = 0;
    let start = Instant::now();
    for step in steps {
        let i = step.slot as usize;
        let (size, align) = (step.size as usize, step.align as usize);
        match slots[i] {
            None => match s.alloc(size, align) {
                Some(p) => {
                    mark(p, i);
                    slots[i] = Some((p, size, align));
                }
                None => failures += 1,
            },
            Some((p, old, align)) => {
                assert_eq!(read_mark(p), i as u64, "{}: block clobbered", S::NAME);
                if step.realloc {
                    // SAFETY: `p` is live with this size and alignment.
                    match unsafe { s.realloc(p, old, align, size) } {
                        Some(q) => slots[i] = Some((q, size, align)),
                        None => failures += 1,
                    }
                } else {
                    // SAFETY: as above.
                    unsafe { s.free(p, old, align) };
                    slots[i] = None;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    for (p, size, align) in slots.into_iter().flatten() {
        // SAFETY: every block left is live with this size and alignment.
        unsafe { s.free(p, size, align) };
    }
    Run {
        elapsed,
        ops: steps.len(),
        failures,
    }
}

fn mark(p: NonNull<u8>, slot: usize) {
    // SAFETY: every request is at least 8 bytes.
    unsafe { p.cast::<u64>().as_ptr().write_unaligned(slot as u64) }
}

fn read_mark(p: NonNull<u8>) -> u64 {
    // SAFETY: as in `mark`; the block is live.
    black_box(unsafe { p.cast::<u64>().as_ptr().read_unaligned() })
}

/// Best of `reps` runs (the least disturbed by the machine).
fn best_throughput<S: Subject>(arena: &Arena, steps: &[Step], reps: usize) -> (f64, usize) {
    let mut best = Duration::MAX;
    let mut failures = 0;
    for _ in 0..reps {
        let run = run_throughput::<S>(arena, steps);
        best = best.min(run.elapsed);
        failures = run.failures;
        assert_eq!(run.ops, steps.len());
    }
    (steps.len() as f64 / best.as_secs_f64(), failures)
}

// ---------------------------------------------------------------- efficiency

/// Largest fresh allocation; reallocs go up to ten times that.
const EFF_MAX_ALLOC: usize = 10_000;

/// How an arena is filled until the first failed request.
#[derive(Clone, Copy)]
enum Pattern {
    /// Allocations only.
    Fill,
    /// Half allocations, a tenth frees, the rest reallocs to a new random
    /// size up to ten times the largest allocation.
    Churn,
}

/// Fills an arena with `pattern` until a request fails; returns live
/// requested bytes / arena size.
fn fill_until_failure<S: Subject>(arena_size: usize, pattern: Pattern, seed: u64) -> f64 {
    let arena = Arena::new(arena_size);
    // SAFETY: the arena is zeroed, unused and outlives `s`.
    let mut s = unsafe { S::new(arena.base, arena_size) };
    let mut rng = Rng::new(seed);
    let mut live: Vec<(NonNull<u8>, usize, usize)> = Vec::new();
    let mut live_bytes = 0;
    loop {
        let action = match pattern {
            Pattern::Fill => 0,
            Pattern::Churn => rng.range(0, 10),
        };
        if action < 5 || live.is_empty() {
            let (size, align) = (rng.size(EFF_MAX_ALLOC), rng.align());
            match s.alloc(size, align) {
                Some(p) => live.push((p, size, align)),
                None => break,
            }
            live_bytes += size;
        } else if action == 5 {
            let (p, size, align) = live.swap_remove(rng.range(0, live.len()));
            // SAFETY: `p` is live with this size and alignment.
            unsafe { s.free(p, size, align) };
            live_bytes -= size;
        } else {
            let i = rng.range(0, live.len());
            let (p, size, align) = live[i];
            let new_size = rng.range(8, 10 * EFF_MAX_ALLOC);
            // SAFETY: as above.
            match unsafe { s.realloc(p, size, align, new_size) } {
                Some(q) => live[i] = (q, new_size, align),
                None => break,
            }
            live_bytes = live_bytes - size + new_size;
        }
    }
    drop(s);
    drop(arena);
    live_bytes as f64 / arena_size as f64
}

fn efficiency<S: Subject>(arena_size: usize, pattern: Pattern, rounds: u64) -> f64 {
    let total: f64 = (0..rounds)
        .map(|r| fill_until_failure::<S>(arena_size, pattern, 0xE44 + r))
        .sum();
    100.0 * total / rounds as f64
}

// ---------------------------------------------------------------- report

struct Row {
    name: &'static str,
    ops_per_sec: f64,
    failures: usize,
    /// Efficiency in percent: fill 1 MiB, fill 16 MiB, churn 1 MiB, churn
    /// 16 MiB.
    efficiency: [f64; 4],
}

fn measure<S: Subject>(arena: &Arena, steps: &[Step], reps: usize, quick: bool) -> Row {
    let (ops_per_sec, failures) = best_throughput::<S>(arena, steps, reps);
    let rounds = if quick { 4 } else { 24 };
    Row {
        name: S::NAME,
        ops_per_sec,
        failures,
        efficiency: [
            efficiency::<S>(MIB, Pattern::Fill, rounds),
            efficiency::<S>(16 * MIB, Pattern::Fill, rounds / 4),
            efficiency::<S>(MIB, Pattern::Churn, rounds),
            efficiency::<S>(16 * MIB, Pattern::Churn, rounds / 4),
        ],
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run us
    // to completion anyway, so a plain smoke run is enough there.
    let quick =
        std::env::var_os("HEAP_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench");
    let nr_steps = if quick { 100_000 } else { 400_000 };
    let reps = if quick { 1 } else { 5 };
    let steps = throughput_workload(0x5EED, nr_steps);
    let started = Instant::now();
    let arena = Arena::new(ARENA_OPS);

    // `HEAP_BENCH_PROFILE=ours|wide|talc|rlsf`: only that throughput loop, many
    // times, for a profiler
    if let Some(name) = std::env::var_os("HEAP_BENCH_PROFILE") {
        let (ops, _) = match name.to_str() {
            Some("talc") => best_throughput::<Talc>(&arena, &steps, 20),
            Some("rlsf") => best_throughput::<Rlsf>(&arena, &steps, 20),
            Some("wide") => best_throughput::<OursWide>(&arena, &steps, 20),
            _ => best_throughput::<Ours>(&arena, &steps, 20),
        };
        println!("{:.2} Mops/s", ops / 1e6);
        return;
    }

    let rows = [
        measure::<Ours>(&arena, &steps, reps, quick),
        measure::<OursWide>(&arena, &steps, reps, quick),
        measure::<Talc>(&arena, &steps, reps, quick),
        measure::<Rlsf>(&arena, &steps, reps, quick),
        measure::<Buddy>(&arena, &steps, reps, quick),
        measure::<LinkedList>(&arena, &steps, 1, quick),
    ];

    println!();
    println!(
        "heap: {nr_steps} random alloc/free/realloc steps over {SLOTS} slots in a {} MiB arena \
         (sizes 8 B..64 KiB, align 8..4096), best of {reps}",
        ARENA_OPS / MIB
    );
    println!(
        "efficiency: live requested bytes / arena at the first failed request; sizes 8 B..{EFF_MAX_ALLOC} B \
         biased small, align 8..4096;"
    );
    println!(
        "            fill = allocations only; churn = 50% alloc, 10% free, 40% realloc up to {} B",
        10 * EFF_MAX_ALLOC
    );
    println!();
    println!(
        "| {:<28} | {:>7} | {:>9} | {:>8} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "allocator",
        "Mops/s",
        "ours/peer",
        "failures",
        "fill 1M",
        "fill 16M",
        "churn 1M",
        "churn 16M"
    );
    println!(
        "|{:-<30}|{:->9}|{:->11}|{:->10}|{:->11}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", "", "", ""
    );
    let ours = rows[0].ops_per_sec;
    for row in &rows {
        let [a, b, c, d] = row.efficiency;
        println!(
            "| {:<28} | {:>7.2} | {:>9.2} | {:>8} | {:>8.2}% | {:>8.2}% | {:>8.2}% | {:>8.2}% |",
            row.name,
            row.ops_per_sec / 1e6,
            ours / row.ops_per_sec,
            row.failures,
            a,
            b,
            c,
            d,
        );
    }
    println!();
    let target = |peer: &Row| {
        let ratio = ours / peer.ops_per_sec;
        format!(
            "ops ratio vs {} {:.2} ({})",
            peer.name,
            ratio,
            if ratio >= 1.0 { "met" } else { "NOT met" }
        )
    };
    println!("targets: {}; {}", target(&rows[2]), target(&rows[3]));
    let fill = rows[0].efficiency[0].min(rows[0].efficiency[1]);
    println!(
        "         fill efficiency {:.2}% ({}, target 99%; talc {:.2}%)",
        fill,
        if fill >= 99.0 { "met" } else { "NOT met" },
        rows[2].efficiency[0].min(rows[2].efficiency[1]),
    );
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
}
