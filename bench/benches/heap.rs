//! The kernel heap against named peers (talc, rlsf, linked_list_allocator,
//! buddy_system_allocator), in one run on the host, on the same seeded
//! workloads:
//!
//! - throughput on two workloads: "mixed", a random mix of alloc, free and
//!   realloc with mixed sizes (8 B..64 KiB) and alignments over 2048 slots,
//!   and "small", kernel-like: 16384 slots each holding objects of one size
//!   of 16..256 B, allocated and freed at random. Operations per second and
//!   the ratio ours/peer, the best of several runs taken in turns so that
//!   the machine's load falls on every allocator alike;
//! - a per-operation breakdown: TSC ticks per alloc, free and realloc
//!   (each call timed alone, less the cost of reading the TSC), and, when
//!   valgrind is installed, instructions per call, counted by running this
//!   benchmark under callgrind (the inclusive cost of the `probe_`
//!   functions every call goes through in that mode); and the share of
//!   reallocs that moved their block;
//! - efficiency: how full a fixed arena gets (live requested bytes / arena
//!   size) under a random alloc/free/realloc pattern of each workload's
//!   sizes before the first allocation fails, averaged over several seeds;
//!   and for our heap, where the rest of the arena went at that point
//!   (headers, pads, slack, free blocks), from a walk of the heap.
//!
//! Our heap runs as the kernel uses it: every free and realloc validates
//! the block's sealed header and its neighbours', red zones off. Its blocks
//! carry the tag `(1, 0)`, which has the 16-byte compact header; the "wide
//! tags" row repeats the runs with a tag that has no compact form (an owner
//! beyond `i16`, a key beyond `i32`), whose blocks carry 16 bytes more.
//!
//! Run with `cargo bench -p bench --bench heap` (`make bench`). Set
//! `HEAP_BENCH_QUICK=1` for a shorter run, `HEAP_BENCH_NO_VALGRIND=1` to
//! skip the instruction counts, `HEAP_BENCH_PROFILE=ours|wide|talc|rlsf`
//! (with `:small` for the kernel-like workload) to run one throughput loop
//! many times for a profiler.

use std::alloc::Layout;
use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use kernel::mm::heap::{BlockState, BlockTag, HEADER_BYTES, Heap, HeapConfig};

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
    /// Short name for `HEAP_BENCH_PROFILE` and the instruction-count runs.
    const KEY: &'static str;

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
    const KEY: &'static str = if WIDE { "wide" } else { "ours" };

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
    const KEY: &'static str = "talc";

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
    const KEY: &'static str = "rlsf";

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
    const KEY: &'static str = "list";

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
    const KEY: &'static str = "buddy";

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

// ---------------------------------------------------------------- workloads

/// One step of a throughput workload: on an empty slot, allocate; on a
/// full one, free or realloc.
#[derive(Clone, Copy)]
struct Step {
    slot: u32,
    realloc: bool,
    size: u32,
    align: u32,
}

/// The two workloads every allocator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Workload {
    /// A random mix of alloc, free and realloc over 2048 slots, sizes
    /// 8 B..64 KiB biased small, alignments 8..4096.
    Mixed,
    /// Kernel-like: 16384 slots, each holding objects of one size from
    /// [`SMALL_SIZES`] (16..256 B, 8-aligned), allocated and freed at
    /// random, never reallocated: what a kernel's object caches do.
    Small,
}

const MIXED_SLOTS: usize = 2048;
const SMALL_SLOTS: usize = 16384;
const ARENA_OPS: usize = 64 * MIB;
const MAX_OPS_SIZE: usize = 8192;
/// Object sizes of the kernel-like workload.
const SMALL_SIZES: [usize; 9] = [16, 24, 32, 48, 64, 96, 128, 192, 256];

impl Workload {
    const ALL: [Workload; 2] = [Workload::Mixed, Workload::Small];

    fn key(self) -> &'static str {
        match self {
            Self::Mixed => "mixed",
            Self::Small => "small",
        }
    }

    fn slots(self) -> usize {
        match self {
            Self::Mixed => MIXED_SLOTS,
            Self::Small => SMALL_SLOTS,
        }
    }

    fn steps(self, seed: u64, steps: usize) -> Vec<Step> {
        let mut rng = Rng::new(seed);
        (0..steps)
            .map(|_| match self {
                Self::Mixed => {
                    let r = rng.next();
                    // one in 64 requests is large, up to 64 KiB
                    let max = if r >> 58 == 0 {
                        8 * MAX_OPS_SIZE
                    } else {
                        MAX_OPS_SIZE
                    };
                    Step {
                        slot: rng.range(0, MIXED_SLOTS) as u32,
                        realloc: r & 1 == 0,
                        size: rng.size(max) as u32,
                        align: rng.align() as u32,
                    }
                }
                Self::Small => {
                    let slot = rng.range(0, SMALL_SLOTS);
                    Step {
                        slot: slot as u32,
                        realloc: false,
                        size: SMALL_SIZES[slot % SMALL_SIZES.len()] as u32,
                        align: 8,
                    }
                }
            })
            .collect()
    }

    /// Size and alignment of a fresh allocation in the efficiency runs.
    fn request(self, rng: &mut Rng) -> (usize, usize) {
        match self {
            Self::Mixed => (rng.size(EFF_MAX_ALLOC), rng.align()),
            Self::Small => (SMALL_SIZES[rng.range(0, SMALL_SIZES.len())], 8),
        }
    }
}

// ---------------------------------------------------------------- throughput

struct Run {
    elapsed: Duration,
    ops: usize,
    failures: usize,
}

/// Per-operation costs: total and count for alloc, free and realloc.
#[derive(Clone, Copy, Default)]
struct OpCosts {
    total: [u64; 3],
    count: [u64; 3],
    /// Reallocs that returned a different pointer (moved and copied).
    moved: u64,
}

const ALLOC: usize = 0;
const FREE: usize = 1;
const REALLOC: usize = 2;

impl OpCosts {
    fn per_op(&self, op: usize) -> Option<f64> {
        (self.count[op] > 0).then(|| self.total[op] as f64 / self.count[op] as f64)
    }
}

/// The calls a probed run makes: not inlined, so a profiler (callgrind in
/// [`instructions`]) can count what each one costs, and timed one by one.
#[inline(never)]
fn probe_alloc<S: Subject>(s: &mut S, size: usize, align: usize) -> Option<NonNull<u8>> {
    s.alloc(size, align)
}

/// # Safety
///
/// As for [`Subject::free`].
#[inline(never)]
unsafe fn probe_free<S: Subject>(s: &mut S, p: NonNull<u8>, size: usize, align: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { s.free(p, size, align) }
}

/// # Safety
///
/// As for [`Subject::realloc`].
#[inline(never)]
unsafe fn probe_realloc<S: Subject>(
    s: &mut S,
    p: NonNull<u8>,
    size: usize,
    align: usize,
    new_size: usize,
) -> Option<NonNull<u8>> {
    // SAFETY: forwarded from the caller.
    unsafe { s.realloc(p, size, align, new_size) }
}

/// A time stamp for one operation: the TSC, fenced so the operation stays
/// between two stamps.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ticks() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: x86_64 always has SSE2 (lfence) and the time-stamp counter;
    // neither touches memory.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn ticks() -> u64 {
    use std::sync::OnceLock;
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// What one pair of [`ticks`] costs with nothing between them.
fn tick_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..10_001)
        .map(|_| {
            let t0 = ticks();
            let t1 = ticks();
            t1 - t0
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// How a run calls the allocator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Straight calls, timed as a whole.
    Throughput,
    /// Through the `probe_` functions, each call timed with [`ticks`].
    Timed,
    /// Through the `probe_` functions, untimed (under callgrind).
    Counted,
}

/// Runs a workload once in `arena` (the same memory for every allocator,
/// so they all see the same pages); writes and checks a word in every block
/// so a broken allocator cannot go unnoticed.
fn run_steps<S: Subject>(
    arena: &Arena,
    steps: &[Step],
    slots: usize,
    mode: Mode,
) -> (Run, OpCosts) {
    arena.zero();
    // SAFETY: the arena is zeroed, unused and outlives `s`, which is
    // dropped at the end of this function.
    let mut s = unsafe { S::new(arena.base, arena.size()) };
    let mut slots: Vec<Option<(NonNull<u8>, usize, usize)>> = vec![None; slots];
    let mut failures = 0;
    let mut costs = OpCosts::default();
    let overhead = if mode == Mode::Timed {
        tick_overhead()
    } else {
        0
    };
    let probed = mode != Mode::Throughput;
    let timed = mode == Mode::Timed;
    let mut moved = 0;
    let mut note = |op: usize, t0: u64| {
        if timed {
            costs.total[op] += (ticks() - t0).saturating_sub(overhead);
        }
        costs.count[op] += 1;
    };
    let start = Instant::now();
    for step in steps {
        let i = step.slot as usize;
        let (size, align) = (step.size as usize, step.align as usize);
        match slots[i] {
            None => {
                let t0 = if timed { ticks() } else { 0 };
                let p = if probed {
                    probe_alloc(&mut s, size, align)
                } else {
                    s.alloc(size, align)
                };
                note(ALLOC, t0);
                match p {
                    Some(p) => {
                        mark(p, i);
                        slots[i] = Some((p, size, align));
                    }
                    None => failures += 1,
                }
            }
            Some((p, old, align)) => {
                assert_eq!(read_mark(p), i as u64, "{}: block clobbered", S::NAME);
                if step.realloc {
                    let t0 = if timed { ticks() } else { 0 };
                    // SAFETY: `p` is live with this size and alignment.
                    let q = unsafe {
                        if probed {
                            probe_realloc(&mut s, p, old, align, size)
                        } else {
                            s.realloc(p, old, align, size)
                        }
                    };
                    note(REALLOC, t0);
                    match q {
                        Some(q) => {
                            moved += u64::from(q != p);
                            slots[i] = Some((q, size, align));
                        }
                        None => failures += 1,
                    }
                } else {
                    let t0 = if timed { ticks() } else { 0 };
                    // SAFETY: as above.
                    unsafe {
                        if probed {
                            probe_free(&mut s, p, old, align)
                        } else {
                            s.free(p, old, align)
                        }
                    };
                    note(FREE, t0);
                    slots[i] = None;
                }
            }
        }
    }
    let elapsed = start.elapsed();
    costs.moved = moved;
    for (p, size, align) in slots.into_iter().flatten() {
        // SAFETY: every block left is live with this size and alignment.
        unsafe { s.free(p, size, align) };
    }
    let run = Run {
        elapsed,
        ops: steps.len(),
        failures,
    };
    (run, costs)
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
fn best_throughput<S: Subject>(
    arena: &Arena,
    steps: &[Step],
    slots: usize,
    reps: usize,
) -> (f64, usize) {
    let mut best = Duration::MAX;
    let mut failures = 0;
    for _ in 0..reps {
        let (run, _) = run_steps::<S>(arena, steps, slots, Mode::Throughput);
        best = best.min(run.elapsed);
        failures = run.failures;
        assert_eq!(run.ops, steps.len());
    }
    (steps.len() as f64 / best.as_secs_f64(), failures)
}

/// Ticks per alloc, free and realloc: for each, the lowest mean of `reps`
/// timed runs; and the share of reallocs that moved their block, in
/// percent (the same in every run).
fn op_ticks<S: Subject>(
    arena: &Arena,
    steps: &[Step],
    slots: usize,
    reps: usize,
) -> ([Option<f64>; 3], Option<f64>) {
    let mut best = [None::<f64>; 3];
    let mut moved = None;
    for _ in 0..reps {
        let (_, costs) = run_steps::<S>(arena, steps, slots, Mode::Timed);
        for (op, best) in best.iter_mut().enumerate() {
            if let Some(t) = costs.per_op(op) {
                *best = Some(best.map_or(t, |b| b.min(t)));
            }
        }
        let reallocs = costs.count[REALLOC];
        moved = (reallocs > 0).then(|| 100.0 * costs.moved as f64 / reallocs as f64);
    }
    (best, moved)
}

// ------------------------------------------------------ instruction counts

/// Steps of the runs under callgrind: the start of the timed workload.
const COUNTED_STEPS: usize = 100_000;

/// Instructions per alloc, free and realloc of `S` on `workload`, counted
/// by running this benchmark's `Counted` mode under callgrind: the
/// inclusive cost of each `probe_` function over its number of calls.
/// `None` when valgrind is not installed or the run fails.
fn instructions<S: Subject>(workload: Workload) -> Option<[Option<f64>; 3]> {
    let exe = std::env::current_exe().ok()?;
    let out = std::env::temp_dir().join(format!(
        "heap-bench-{}-{}-{}.callgrind",
        std::process::id(),
        S::KEY,
        workload.key()
    ));
    let run = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(&exe)
        .env("HEAP_BENCH_COUNT", format!("{}:{}", S::KEY, workload.key()))
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let profile = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    if !run.status.success() {
        return None;
    }
    // the child prints its call counts
    let stdout = String::from_utf8_lossy(&run.stdout);
    let counts: Vec<u64> = stdout
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let [allocs, frees, reallocs] = counts[..] else {
        return None;
    };
    let inclusive = callgrind_inclusive(&profile?, &["probe_alloc", "probe_free", "probe_realloc"]);
    let per = |cost: u64, calls: u64| (calls > 0).then(|| cost as f64 / calls as f64);
    Some([
        per(inclusive[0], allocs),
        per(inclusive[1], frees),
        per(inclusive[2], reallocs),
    ])
}

/// The inclusive cost (its own lines and its calls) of each function whose
/// name contains one of `names`, from a callgrind output file.
fn callgrind_inclusive(profile: &str, names: &[&str]) -> Vec<u64> {
    let mut totals = vec![0; names.len()];
    // callgrind writes a function's name once, as "(id) name" after "fn="
    // or "cfn=", then only "(id)"
    let mut ids = std::collections::HashMap::new();
    let mut name_of = |spec: &str| -> String {
        match spec.split_once(' ') {
            Some((id, name)) => {
                ids.insert(id.to_owned(), name.to_owned());
                name.to_owned()
            }
            None => ids.get(spec).cloned().unwrap_or_default(),
        }
    };
    let mut current = None;
    for line in profile.lines() {
        if let Some(spec) = line.strip_prefix("fn=") {
            let name = name_of(spec);
            current = names.iter().position(|n| name.contains(n));
        } else if let Some(spec) = line.strip_prefix("cfn=") {
            name_of(spec);
        } else if line.starts_with(|c: char| c.is_ascii_digit() || "+-*".contains(c)) {
            // a cost line: a position, then the Ir count; after a "calls="
            // line, the inclusive cost of those calls
            if let Some(i) = current {
                let cost = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
                totals[i] += cost.unwrap_or(0);
            }
        }
    }
    totals
}

/// The child side of [`instructions`]: one counted run, then the counts.
fn count_child(spec: &str) {
    let (key, workload) = spec.split_once(':').expect("subject:workload");
    let workload = match workload {
        "small" => Workload::Small,
        _ => Workload::Mixed,
    };
    let steps = workload.steps(seed_of(workload), COUNTED_STEPS);
    let arena = Arena::new(ARENA_OPS);
    let run = |f: fn(&Arena, &[Step], usize, Mode) -> (Run, OpCosts)| {
        let (_, costs) = f(&arena, &steps, workload.slots(), Mode::Counted);
        println!(
            "{} {} {}",
            costs.count[ALLOC], costs.count[FREE], costs.count[REALLOC]
        );
    };
    match key {
        "ours" => run(run_steps::<Ours>),
        "wide" => run(run_steps::<OursWide>),
        "talc" => run(run_steps::<Talc>),
        "rlsf" => run(run_steps::<Rlsf>),
        "buddy" => run(run_steps::<Buddy>),
        _ => run(run_steps::<LinkedList>),
    }
}

fn valgrind_available() -> bool {
    std::process::Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------- efficiency

/// Largest fresh allocation; reallocs go up to ten times that.
const EFF_MAX_ALLOC: usize = 10_000;

/// How an arena is filled until the first failed request.
#[derive(Clone, Copy)]
enum Pattern {
    /// Allocations only.
    Fill,
    /// Mixed: half allocations, a tenth frees, the rest reallocs to a new
    /// random size up to ten times the largest allocation. Small: 60%
    /// allocations, 40% frees.
    Churn,
}

/// Fills an arena with `pattern` until a request fails; returns live
/// requested bytes / arena size.
fn fill_until_failure<S: Subject>(
    workload: Workload,
    arena_size: usize,
    pattern: Pattern,
    seed: u64,
) -> f64 {
    fill_and_inspect::<S, ()>(workload, arena_size, pattern, seed, |_| ()).0
}

/// [`fill_until_failure`], handing the allocator to `inspect` at the first
/// failure (before anything is freed).
fn fill_and_inspect<S: Subject, R>(
    workload: Workload,
    arena_size: usize,
    pattern: Pattern,
    seed: u64,
    inspect: impl FnOnce(&S) -> R,
) -> (f64, R) {
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
        let alloc = match workload {
            Workload::Mixed => action < 5,
            Workload::Small => action < 6,
        };
        if alloc || live.is_empty() {
            let (size, align) = workload.request(&mut rng);
            match s.alloc(size, align) {
                Some(p) => live.push((p, size, align)),
                None => break,
            }
            live_bytes += size;
        } else if action == 5 || workload == Workload::Small {
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
    let seen = inspect(&s);
    drop(s);
    drop(arena);
    (live_bytes as f64 / arena_size as f64, seen)
}

/// Where our heap's arena goes when the mixed fill first fails, in bytes
/// summed over the seeds: what was requested, the block headers, the
/// alignment pads, the slack after payloads (rounding to 8 bytes, the
/// minimum block and rests too small to be blocks), the free blocks left
/// (none of which fit the failed request) and what lies outside the
/// blocks (the sentinel and the arena's unaligned end).
#[derive(Default)]
struct Breakdown {
    arena: usize,
    requested: usize,
    headers: usize,
    pads: usize,
    slack: usize,
    free: usize,
    largest_free: usize,
    outside: usize,
}

impl Breakdown {
    /// Adds `other`'s bytes to these.
    fn add(&mut self, other: &Breakdown) {
        self.arena += other.arena;
        self.requested += other.requested;
        self.headers += other.headers;
        self.pads += other.pads;
        self.slack += other.slack;
        self.free += other.free;
        self.largest_free += other.largest_free;
        self.outside += other.outside;
    }
}

fn breakdown(arena_size: usize, rounds: u64) -> Breakdown {
    let mut total = Breakdown::default();
    for r in 0..rounds {
        let (_, b) = fill_and_inspect::<Ours, Breakdown>(
            Workload::Mixed,
            arena_size,
            Pattern::Fill,
            0xE44 + r,
            |ours| {
                let mut b = Breakdown {
                    arena: arena_size,
                    outside: arena_size,
                    ..Breakdown::default()
                };
                for info in ours.0.walk() {
                    let info = info.expect("the heap walks");
                    b.outside -= info.size;
                    if info.state == BlockState::Used {
                        let lead = info.payload - info.addr;
                        b.requested += info.requested;
                        b.headers += HEADER_BYTES;
                        b.pads += lead - HEADER_BYTES;
                        b.slack += info.size - lead - info.requested;
                    } else {
                        b.free += info.size;
                        b.largest_free = b.largest_free.max(info.size);
                    }
                }
                b
            },
        );
        total.add(&b);
    }
    total
}

fn efficiency<S: Subject>(
    workload: Workload,
    arena_size: usize,
    pattern: Pattern,
    rounds: u64,
) -> f64 {
    let total: f64 = (0..rounds)
        .map(|r| fill_until_failure::<S>(workload, arena_size, pattern, 0xE44 + r))
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
    /// TSC ticks per alloc, free, realloc.
    ticks: [Option<f64>; 3],
    /// Percent of reallocs that moved their block.
    moved: Option<f64>,
    /// Instructions per alloc, free, realloc (callgrind).
    instructions: Option<[Option<f64>; 3]>,
}

struct Settings {
    quick: bool,
    reps: usize,
    valgrind: bool,
}

/// One throughput run of a subject: time and failures.
type Runner = fn(&Arena, &[Step], usize) -> (Duration, usize);

fn run_once<S: Subject>(arena: &Arena, steps: &[Step], slots: usize) -> (Duration, usize) {
    let (run, _) = run_steps::<S>(arena, steps, slots, Mode::Throughput);
    assert_eq!(run.ops, steps.len());
    (run.elapsed, run.failures)
}

/// Throughput of every subject: the best of `reps` runs each, the runs
/// taken in turns (ours, talc, rlsf, ... then again) so that a change in
/// the machine's load falls on all of them alike. linked_list_allocator,
/// which takes seconds per run, runs once.
fn throughputs(
    runners: &[(&str, Runner)],
    arena: &Arena,
    steps: &[Step],
    slots: usize,
    reps: usize,
) -> Vec<(f64, usize)> {
    let mut best = vec![(Duration::MAX, 0); runners.len()];
    for rep in 0..reps {
        for ((key, run), best) in runners.iter().zip(&mut best) {
            if rep > 0 && *key == "list" {
                continue;
            }
            let (elapsed, failures) = run(arena, steps, slots);
            *best = (best.0.min(elapsed), failures);
        }
    }
    best.into_iter()
        .map(|(elapsed, failures)| (steps.len() as f64 / elapsed.as_secs_f64(), failures))
        .collect()
}

fn measure<S: Subject>(
    workload: Workload,
    arena: &Arena,
    steps: &[Step],
    set: &Settings,
    (ops_per_sec, failures): (f64, usize),
) -> Row {
    let slots = workload.slots();
    // linked_list_allocator takes seconds per run: once is enough
    let reps = if S::KEY == "list" { 1 } else { set.reps };
    let (ticks, moved) = op_ticks::<S>(arena, steps, slots, reps.min(3));
    let rounds = if set.quick { 4 } else { 24 };
    // first fit over tens of thousands of small holes: too slow to churn
    let churn_rounds = if S::KEY == "list" && workload == Workload::Small {
        0
    } else {
        rounds
    };
    let eff = |size: usize, pattern: Pattern, rounds: u64| {
        if rounds == 0 {
            f64::NAN
        } else {
            efficiency::<S>(workload, size, pattern, rounds)
        }
    };
    Row {
        name: S::NAME,
        ops_per_sec,
        failures,
        efficiency: [
            eff(MIB, Pattern::Fill, rounds),
            eff(16 * MIB, Pattern::Fill, rounds / 4),
            eff(MIB, Pattern::Churn, churn_rounds),
            eff(16 * MIB, Pattern::Churn, churn_rounds / 4),
        ],
        ticks,
        moved,
        instructions: if set.valgrind && S::KEY != "list" {
            instructions::<S>(workload)
        } else {
            None
        },
    }
}

fn seed_of(workload: Workload) -> u64 {
    match workload {
        Workload::Mixed => 0x5EED,
        Workload::Small => 0x5A11,
    }
}

fn main() {
    if let Some(spec) = std::env::var_os("HEAP_BENCH_COUNT") {
        count_child(spec.to_str().expect("HEAP_BENCH_COUNT is ASCII"));
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` does not run us
    // to completion anyway, so a plain smoke run is enough there.
    let quick =
        std::env::var_os("HEAP_BENCH_QUICK").is_some() || !std::env::args().any(|a| a == "--bench");
    let nr_steps = if quick { 100_000 } else { 400_000 };
    let started = Instant::now();
    let arena = Arena::new(ARENA_OPS);

    // `HEAP_BENCH_PROFILE=ours|wide|talc|rlsf[:small]`: only that throughput
    // loop, many times, for a profiler
    if let Some(spec) = std::env::var_os("HEAP_BENCH_PROFILE") {
        let spec = spec.to_str().unwrap_or("ours");
        let (name, workload) = match spec.split_once(':') {
            Some((name, "small")) => (name, Workload::Small),
            Some((name, _)) => (name, Workload::Mixed),
            None => (spec, Workload::Mixed),
        };
        let steps = workload.steps(seed_of(workload), nr_steps);
        let slots = workload.slots();
        let (ops, _) = match name {
            "talc" => best_throughput::<Talc>(&arena, &steps, slots, 20),
            "rlsf" => best_throughput::<Rlsf>(&arena, &steps, slots, 20),
            "wide" => best_throughput::<OursWide>(&arena, &steps, slots, 20),
            _ => best_throughput::<Ours>(&arena, &steps, slots, 20),
        };
        println!("{:.2} Mops/s", ops / 1e6);
        return;
    }

    let set = Settings {
        quick,
        reps: if quick { 1 } else { 9 },
        valgrind: !quick
            && std::env::var_os("HEAP_BENCH_NO_VALGRIND").is_none()
            && valgrind_available(),
    };
    let mut tables = Vec::new();
    for workload in Workload::ALL {
        let steps = workload.steps(seed_of(workload), nr_steps);
        let runners: [(&str, Runner); 6] = [
            (Ours::KEY, run_once::<Ours>),
            (OursWide::KEY, run_once::<OursWide>),
            (Talc::KEY, run_once::<Talc>),
            (Rlsf::KEY, run_once::<Rlsf>),
            (Buddy::KEY, run_once::<Buddy>),
            (LinkedList::KEY, run_once::<LinkedList>),
        ];
        let ops = throughputs(&runners, &arena, &steps, workload.slots(), set.reps);
        let rows = [
            measure::<Ours>(workload, &arena, &steps, &set, ops[0]),
            measure::<OursWide>(workload, &arena, &steps, &set, ops[1]),
            measure::<Talc>(workload, &arena, &steps, &set, ops[2]),
            measure::<Rlsf>(workload, &arena, &steps, &set, ops[3]),
            measure::<Buddy>(workload, &arena, &steps, &set, ops[4]),
            measure::<LinkedList>(workload, &arena, &steps, &set, ops[5]),
        ];
        tables.push((workload, rows));
    }

    println!();
    println!(
        "heap, mixed: {nr_steps} random alloc/free/realloc steps over {MIXED_SLOTS} slots in a {} MiB arena \
         (sizes 8 B..64 KiB, align 8..4096), best of {} runs taken in turns",
        ARENA_OPS / MIB,
        set.reps
    );
    println!(
        "heap, small (kernel-like): {nr_steps} random alloc/free steps over {SMALL_SLOTS} slots, each slot one \
         size of {SMALL_SIZES:?} B, align 8"
    );
    println!(
        "efficiency: live requested bytes / arena at the first failed request, averaged over seeds;"
    );
    println!(
        "            mixed: sizes 8 B..{EFF_MAX_ALLOC} B biased small, align 8..4096; fill = allocations only; \
         churn = 50% alloc, 10% free, 40% realloc up to {} B",
        10 * EFF_MAX_ALLOC
    );
    println!(
        "            small: sizes as above; fill = allocations only; churn = 60% alloc, 40% free"
    );
    for (workload, rows) in &tables {
        println!();
        println!("workload: {}", workload.key());
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
        for row in rows {
            let [a, b, c, d] = row.efficiency.map(|e| {
                if e.is_nan() {
                    "-".to_owned()
                } else {
                    format!("{e:.2}%")
                }
            });
            println!(
                "| {:<28} | {:>7.2} | {:>9.2} | {:>8} | {a:>9} | {b:>9} | {c:>9} | {d:>9} |",
                row.name,
                row.ops_per_sec / 1e6,
                ours / row.ops_per_sec,
                row.failures,
            );
        }
    }

    println!();
    println!(
        "per operation: TSC ticks (timed one by one, less the cost of reading the TSC; lowest mean of {} runs); \
         instructions (callgrind, {COUNTED_STEPS} steps{}); re. moved: reallocs that moved the block",
        set.reps.min(3),
        if set.valgrind {
            ""
        } else {
            ": not run, valgrind missing or quick run"
        }
    );
    println!();
    println!(
        "| {:<28} | {:<8} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "allocator",
        "workload",
        "tck/alloc",
        "tck/free",
        "tck/reall",
        "ins/alloc",
        "ins/free",
        "ins/reall",
        "re. moved"
    );
    println!(
        "|{:-<30}|{:-<10}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|",
        "", "", "", "", "", "", "", "", ""
    );
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    for (workload, rows) in &tables {
        for row in rows {
            let instr = row.instructions.unwrap_or([None; 3]);
            println!(
                "| {:<28} | {:<8} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
                row.name,
                workload.key(),
                cell(row.ticks[0]),
                cell(row.ticks[1]),
                cell(row.ticks[2]),
                cell(instr[0]),
                cell(instr[1]),
                cell(instr[2]),
                row.moved.map_or("-".to_owned(), |m| format!("{m:.1}%")),
            );
        }
    }

    println!();
    for (workload, rows) in &tables {
        let ours = rows[0].ops_per_sec;
        let target = |peer: &Row| {
            let ratio = ours / peer.ops_per_sec;
            format!(
                "vs {} {:.2} ({})",
                peer.name,
                ratio,
                if ratio >= 1.0 { "met" } else { "NOT met" }
            )
        };
        println!(
            "targets, {}: ops ratio {}; {}",
            workload.key(),
            target(&rows[2]),
            target(&rows[3])
        );
    }
    let mixed = &tables[0].1;
    let fill = mixed[0].efficiency[0].min(mixed[0].efficiency[1]);
    println!(
        "         fill efficiency (mixed, 1 and 16 MiB) {:.2}% ({}, target {FILL_TARGET}%; talc {:.2}%, rlsf {:.2}%)",
        fill,
        if fill >= FILL_TARGET {
            "met"
        } else {
            "NOT met"
        },
        mixed[2].efficiency[0].min(mixed[2].efficiency[1]),
        mixed[3].efficiency[0].min(mixed[3].efficiency[1]),
    );
    println!();
    println!(
        "where our arena goes at the mixed fill's first failure (percent of the arena, mean over seeds; compact tags)"
    );
    println!();
    println!(
        "| {:<6} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>12} | {:>8} |",
        "arena", "requested", "headers", "pads", "slack", "free", "largest free", "outside"
    );
    println!(
        "|{:-<8}|{:->11}|{:->10}|{:->10}|{:->10}|{:->10}|{:->14}|{:->10}|",
        "", "", "", "", "", "", "", ""
    );
    let rounds = if set.quick { 4 } else { 24 };
    for (size, rounds) in [(MIB, rounds), (16 * MIB, rounds / 4)] {
        let b = breakdown(size, rounds);
        let pct = |v: usize| format!("{:.2}%", 100.0 * v as f64 / b.arena as f64);
        println!(
            "| {:<6} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>12} | {:>8} |",
            format!("{} MiB", size / MIB),
            pct(b.requested),
            pct(b.headers),
            pct(b.pads),
            pct(b.slack),
            pct(b.free),
            pct(b.largest_free),
            pct(b.outside),
        );
    }
    println!("total time {:.1} s", started.elapsed().as_secs_f64());
}

/// The fill efficiency the heap aims for at 1 and 16 MiB (dlmalloc's
/// published figure is 99.14%).
const FILL_TARGET: f64 = 99.2;
