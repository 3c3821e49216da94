//! Unit tests of the heap over a `Vec`-backed arena.

use core::ptr::NonNull;

use super::block::SIZE;
use super::tlsf::{class_of, search_class};
use super::*;

/// A heap over its own arena; the arena lives as long as the heap.
pub(super) struct Arena {
    pub heap: Heap,
    base: *mut u8,
    len: usize,
    _words: Vec<u64>,
}

impl Arena {
    /// An arena of `max` bytes of which the heap starts with `size`.
    pub fn new(size: usize, max: usize, config: HeapConfig) -> Self {
        let mut words = vec![0u64; max.div_ceil(8)];
        let base = words.as_mut_ptr().cast::<u8>();
        // SAFETY:
        // 1. `words` holds `max` initialized bytes and lives as long as the
        //    arena, which outlives the heap (a field of the arena);
        // 2. the tests touch the bytes only through payload pointers and
        //    `poke`/`peek`, which model a misbehaving owner;
        // 3. `base` comes from the whole vector, so it covers `max` bytes.
        let heap = unsafe { Heap::new(base, base.addr() + size, base.addr() + max, config) }
            .expect("arena is large enough");
        Self {
            heap,
            base,
            len: max,
            _words: words,
        }
    }

    pub fn start(&self) -> usize {
        self.base.addr()
    }

    /// Grows the heap to `size` bytes of the arena.
    pub fn grow_to(&mut self, size: usize) -> Result<(), HeapError> {
        assert!(size <= self.len);
        // SAFETY: the arena's bytes up to `len` satisfy `Heap::new`'s
        // obligations (see `Arena::new`).
        unsafe { self.heap.grow(self.base.addr() + size) }
    }

    fn ptr(&self, addr: usize, len: usize) -> *mut u8 {
        let offset = addr - self.base.addr();
        assert!(offset + len <= self.len);
        self.base.wrapping_add(offset)
    }

    /// Overwrites arena bytes, as a buggy owner would.
    pub fn poke(&mut self, addr: usize, bytes: &[u8]) {
        let p = self.ptr(addr, bytes.len());
        // SAFETY: `ptr` checked the range lies in the arena, which is live
        // and initialized; the heap is not running.
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    }

    /// Reads arena bytes.
    pub fn peek(&self, addr: usize, len: usize) -> Vec<u8> {
        let p = self.ptr(addr, len);
        // SAFETY: as in `poke`, for reads.
        unsafe { core::slice::from_raw_parts(p, len) }.to_vec()
    }

    /// Fills a payload with a pattern derived from `seed`.
    pub fn fill(&mut self, p: NonNull<u8>, len: usize, seed: u8) {
        let bytes: Vec<u8> = (0..len).map(|i| pattern(seed, i)).collect();
        self.poke(p.as_ptr().addr(), &bytes);
    }

    /// Whether a payload still holds the pattern derived from `seed`.
    pub fn holds(&self, p: NonNull<u8>, len: usize, seed: u8) -> bool {
        self.peek(p.as_ptr().addr(), len)
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(seed, i))
    }
}

pub(super) fn pattern(seed: u8, i: usize) -> u8 {
    seed.wrapping_add((i as u8).wrapping_mul(31)) ^ (i >> 8) as u8
}

pub(super) fn addr(p: NonNull<u8>) -> usize {
    p.as_ptr().addr()
}

const KIB: usize = 1024;
const TAG: BlockTag = BlockTag::new(1, 0xc0de);

fn arena(size: usize) -> Arena {
    Arena::new(size, size, HeapConfig::default())
}

fn blocks(heap: &Heap) -> Vec<BlockInfo> {
    heap.walk().collect::<Result<_, _>>().expect("walk")
}

#[test]
fn new_heap_is_one_free_block_before_the_sentinel() {
    let a = arena(64 * KIB);
    let all = blocks(&a.heap);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, BlockState::Free);
    assert_eq!(all[0].size, 64 * KIB - HEADER_BYTES);
    let stats = a.heap.stats();
    assert_eq!(stats.free_blocks, 1);
    assert_eq!(stats.largest_free, 64 * KIB - HEADER_BYTES);
    assert_eq!(stats.overhead_bytes, HEADER_BYTES);
    a.heap.check().unwrap();
}

#[test]
fn new_rejects_regions_out_of_order_too_small_or_beyond_max() {
    let mut words = vec![0u64; 64];
    let base = words.as_mut_ptr().cast::<u8>();
    let b = base.addr();
    let cases = [(b + 256, b + 128), (b + 63, b + 512), (b + 512, b + 256)];
    for (end, max) in cases {
        // SAFETY: `words` is live and holds 512 bytes; the heaps that fail
        // to be created touch nothing.
        let heap = unsafe { Heap::new(base, end, max, HeapConfig::default()) };
        assert_eq!(
            heap.err(),
            Some(HeapError::InvalidRegion),
            "{end:#x} {max:#x}"
        );
    }
}

#[test]
fn allocations_are_aligned_disjoint_and_tagged() {
    let mut a = arena(256 * KIB);
    let mut live = Vec::new();
    for (i, align) in [1, 8, 16, 32, 64, 128, 4096, 16, 8, 2048]
        .into_iter()
        .enumerate()
    {
        let size = 24 + i * 40;
        let tag = BlockTag::new(i as u32, 0x1000 + i as u64);
        let p = a.heap.alloc(size, align, tag).unwrap();
        assert_eq!(addr(p) % align, 0);
        a.fill(p, size, i as u8);
        live.push((p, size, tag));
    }
    live.sort_by_key(|(p, ..)| addr(*p));
    for pair in live.windows(2) {
        assert!(addr(pair[0].0) + pair[0].1 <= addr(pair[1].0));
    }
    for (i, &(p, size, tag)) in live.iter().enumerate() {
        let info = a.heap.block_of(p).unwrap();
        assert_eq!(
            (info.payload, info.requested, info.tag),
            (addr(p), size, tag)
        );
        assert!(a.holds(p, size, tag.owner as u8), "{i}");
    }
    a.heap.check().unwrap();
}

#[test]
fn walk_reports_every_block_with_owner_and_key() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(100, 8, BlockTag::new(3, 0xdead)).unwrap();
    let q = a.heap.alloc(200, 8, BlockTag::new(4, 0xbeef)).unwrap();
    let all = blocks(&a.heap);
    let used: Vec<_> = all.iter().filter(|b| b.state == BlockState::Used).collect();
    // allocations go downwards: q below p, the free rest below both
    assert_eq!(used.len(), 2);
    assert_eq!(
        (used[0].payload, used[0].tag),
        (addr(q), BlockTag::new(4, 0xbeef))
    );
    assert_eq!(
        (used[1].payload, used[1].tag),
        (addr(p), BlockTag::new(3, 0xdead))
    );
    assert_eq!((used[0].requested, used[1].requested), (200, 100));
    assert_eq!(all[0].state, BlockState::Free);
    let mut at = a.heap.start();
    for b in &all {
        assert_eq!(b.addr, at);
        at += b.size;
    }
    assert_eq!(at + HEADER_BYTES, a.heap.end());
    assert_eq!(a.heap.find(addr(q) + 150).unwrap().payload, addr(q));
    assert_eq!(a.heap.find(a.heap.end() + 8), None);
}

#[test]
fn free_merges_with_both_neighbours() {
    let mut a = arena(64 * KIB);
    let p: Vec<_> = (0..4).map(|_| a.heap.alloc(500, 8, TAG).unwrap()).collect();
    a.heap.free(p[0]).unwrap();
    a.heap.free(p[2]).unwrap();
    assert_eq!(a.heap.stats().free_blocks, 3);
    let size = a.heap.block_of(p[1]).unwrap().size;
    a.heap.free(p[1]).unwrap(); // merges with both neighbours
    let merged = a.heap.find(addr(p[1])).unwrap();
    assert_eq!(merged.state, BlockState::Free);
    assert_eq!(merged.size, 3 * size);
    assert_eq!(a.heap.stats().free_blocks, 2);
    a.heap.check().unwrap();
    a.heap.free(p[3]).unwrap();
    assert_eq!(blocks(&a.heap).len(), 1);
    assert_eq!(a.heap.stats().used_bytes, 0);
    a.heap.check().unwrap();
}

#[test]
fn zeroed_allocation_clears_reused_memory() {
    let mut a = arena(16 * KIB);
    let p = a.heap.alloc(300, 8, TAG).unwrap();
    a.fill(p, 300, 0xAA);
    a.heap.free(p).unwrap();
    let q = a.heap.alloc_zeroed(300, 8, TAG).unwrap();
    assert_eq!(addr(q), addr(p));
    assert!(a.peek(addr(q), 300).iter().all(|&b| b == 0));
}

#[test]
fn realloc_shrinks_in_place_and_returns_the_tail() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(4000, 8, TAG).unwrap();
    let _guard = a.heap.alloc(16, 8, TAG).unwrap();
    a.fill(p, 4000, 5);
    let q = a.heap.realloc(p, 1000, 8).unwrap();
    assert_eq!(q, p);
    assert!(a.holds(q, 1000, 5));
    let block = a.heap.block_of(q).unwrap();
    let tail = a.heap.find(block.addr + block.size).unwrap();
    assert_eq!(tail.state, BlockState::Free, "the tail is free");
    assert_eq!(a.heap.used_bytes(), 1016);
    a.heap.check().unwrap();
}

#[test]
fn realloc_grows_in_place_into_a_free_neighbour() {
    let mut a = arena(64 * KIB);
    // allocations go downwards: `n` ends up just above `p`
    let n = a.heap.alloc(3000, 8, TAG).unwrap();
    let p = a.heap.alloc(1000, 8, TAG).unwrap();
    let _guard = a.heap.alloc(16, 8, TAG).unwrap();
    a.fill(p, 1000, 9);
    a.heap.free(n).unwrap();
    let q = a.heap.realloc(p, 3500, 8).unwrap();
    assert_eq!(q, p);
    assert!(a.holds(q, 1000, 9));
    assert_eq!(a.heap.block_of(q).unwrap().requested, 3500);
    a.heap.check().unwrap();
}

#[test]
fn realloc_moves_when_it_cannot_grow_and_keeps_contents_and_tag() {
    let mut a = arena(64 * KIB);
    let tag = BlockTag::new(9, 99);
    let p = a.heap.alloc(1000, 8, tag).unwrap();
    let _blocker = a.heap.alloc(16, 8, TAG).unwrap();
    a.fill(p, 1000, 3);
    let q = a.heap.realloc(p, 5000, 64).unwrap();
    assert_ne!(q, p);
    assert_eq!(addr(q) % 64, 0);
    assert!(a.holds(q, 1000, 3));
    assert_eq!(a.heap.block_of(q).unwrap().tag, tag);
    assert_eq!(a.heap.free(p), Err(HeapError::DoubleFree { addr: addr(p) }));
    a.heap.check().unwrap();
}

#[test]
fn realloc_to_a_stricter_alignment_moves_the_block() {
    let mut a = arena(64 * KIB);
    let p = (0..8)
        .map(|_| a.heap.alloc(40, 8, TAG).unwrap())
        .find(|p| !addr(*p).is_multiple_of(4096))
        .unwrap();
    a.fill(p, 40, 1);
    let q = a.heap.realloc(p, 40, 4096).unwrap();
    assert_eq!(addr(q) % 4096, 0);
    assert!(a.holds(q, 40, 1));
    a.heap.check().unwrap();
}

#[test]
fn out_of_memory_changes_nothing() {
    let mut a = arena(8 * KIB);
    let p = a.heap.alloc(4000, 8, TAG).unwrap();
    let before = blocks(&a.heap);
    assert_eq!(a.heap.alloc(5000, 8, TAG), Err(HeapError::OutOfMemory));
    assert_eq!(a.heap.realloc(p, 9000, 8), Err(HeapError::OutOfMemory));
    assert_eq!(
        a.heap.alloc(usize::MAX, 8, TAG),
        Err(HeapError::OutOfMemory)
    );
    assert_eq!(a.heap.alloc(8, 1 << 50, TAG), Err(HeapError::OutOfMemory));
    assert_eq!(blocks(&a.heap), before);
    a.heap.check().unwrap();
}

#[test]
fn alignment_must_be_a_power_of_two() {
    let mut a = arena(8 * KIB);
    assert_eq!(a.heap.alloc(8, 24, TAG), Err(HeapError::InvalidLayout));
    assert_eq!(a.heap.alloc(8, 0, TAG), Err(HeapError::InvalidLayout));
}

#[test]
fn zero_sized_allocations_are_distinct() {
    let mut a = arena(8 * KIB);
    let p = a.heap.alloc(0, 1, TAG).unwrap();
    let q = a.heap.alloc(0, 1, TAG).unwrap();
    assert_ne!(p, q);
    a.heap.free(p).unwrap();
    a.heap.free(q).unwrap();
    a.heap.check().unwrap();
}

#[test]
fn good_fit_takes_the_smallest_block_that_fits() {
    let mut a = arena(256 * KIB);
    let sizes = [5000, 64, 1000, 64, 300, 64, 2000, 64];
    let p: Vec<_> = sizes
        .iter()
        .map(|&s| a.heap.alloc(s, 8, TAG).unwrap())
        .collect();
    let holes: Vec<_> = p.iter().map(|&q| a.heap.block_of(q).unwrap()).collect();
    for i in [0, 2, 4, 6] {
        a.heap.free(p[i]).unwrap();
    }
    let inside =
        |q: NonNull<u8>, hole: &BlockInfo| (hole.addr..hole.addr + hole.size).contains(&addr(q));
    assert!(inside(a.heap.alloc(280, 8, TAG).unwrap(), &holes[4]));
    assert!(inside(a.heap.alloc(900, 8, TAG).unwrap(), &holes[2]));
    assert!(inside(a.heap.alloc(1900, 8, TAG).unwrap(), &holes[6]));
    a.heap.check().unwrap();
}

#[test]
fn nearly_full_heap_still_finds_an_exact_fit() {
    // A free block of 1000 bytes sits in a class whose lower bound is below
    // 1000: the O(1) search (which rounds up) misses it, the scan finds it.
    let mut a = arena(16 * KIB);
    let p = a.heap.alloc(1000 - HEADER_BYTES, 8, TAG).unwrap();
    let rest = a.heap.stats().largest_free - HEADER_BYTES;
    let _fill = a.heap.alloc(rest, 8, TAG).unwrap();
    a.heap.free(p).unwrap();
    assert!(search_class(1000).unwrap() > class_of(1000));
    assert_eq!(a.heap.alloc(1000 - HEADER_BYTES, 8, TAG), Ok(p));
    assert_eq!(a.heap.stats().free_blocks, 0);
    a.heap.check().unwrap();
}

#[test]
fn grow_extends_a_free_last_block() {
    let mut a = Arena::new(8 * KIB, 64 * KIB, HeapConfig::default());
    assert_eq!(a.heap.alloc(10 * KIB, 8, TAG), Err(HeapError::OutOfMemory));
    a.grow_to(32 * KIB).unwrap();
    assert_eq!(blocks(&a.heap).len(), 1);
    let p = a.heap.alloc(10 * KIB, 8, TAG).unwrap();
    let block = a.heap.block_of(p).unwrap();
    assert_eq!(
        block.addr + block.size,
        a.heap.end() - HEADER_BYTES,
        "top of the grown block"
    );
    assert_eq!(a.heap.stats().free_blocks, 1);
    a.heap.check().unwrap();
}

#[test]
fn grow_after_a_used_last_block_adds_a_free_block() {
    let mut a = Arena::new(8 * KIB, 64 * KIB, HeapConfig::default());
    let rest = a.heap.stats().largest_free - HEADER_BYTES;
    let p = a.heap.alloc(rest, 8, TAG).unwrap();
    a.grow_to(16 * KIB).unwrap();
    let all = blocks(&a.heap);
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].state, BlockState::Free);
    assert_eq!(all[1].addr, a.start() + 8 * KIB - HEADER_BYTES);
    // the old sentinel is gone: its payload address is no block
    assert!(
        a.heap
            .free(NonNull::new((all[1].addr + HEADER_BYTES) as *mut u8).unwrap())
            .is_err()
    );
    a.heap.free(p).unwrap();
    assert_eq!(blocks(&a.heap).len(), 1);
    a.heap.check().unwrap();
}

#[test]
fn grow_rejects_shrinking_tiny_steps_and_going_past_max() {
    let mut a = Arena::new(8 * KIB, 16 * KIB, HeapConfig::default());
    let rest = a.heap.stats().largest_free - HEADER_BYTES;
    a.heap.alloc(rest, 8, TAG).unwrap();
    assert_eq!(a.grow_to(4 * KIB), Err(HeapError::InvalidRegion));
    assert_eq!(a.grow_to(8 * KIB + 16), Err(HeapError::InvalidRegion));
    // SAFETY: rejected before touching anything.
    let past = unsafe { a.heap.grow(a.start() + 32 * KIB) };
    assert_eq!(past, Err(HeapError::InvalidRegion));
    a.heap.check().unwrap();
}

#[test]
fn alloc_or_grow_asks_the_owner_for_just_enough() {
    let mut a = Arena::new(8 * KIB, 256 * KIB, HeapConfig::default());
    let start = a.start();
    let mut asked = None;
    // SAFETY: the callback returns ends within the arena.
    let p = unsafe {
        a.heap.alloc_or_grow(20 * KIB, 4096, TAG, |target| {
            asked = Some(target);
            Some(target.next_multiple_of(4096))
        })
    }
    .unwrap();
    let target = asked.unwrap();
    assert!(
        target > start + 20 * KIB && target < start + 40 * KIB,
        "{target:#x}"
    );
    assert_eq!(addr(p) % 4096, 0);
    // SAFETY: the callback provides nothing.
    let none = unsafe { a.heap.alloc_or_grow(1 << 20, 8, TAG, |_| None) };
    assert_eq!(none, Err(HeapError::OutOfMemory));
    a.heap.check().unwrap();
}

#[test]
fn realloc_or_grow_grows_once_and_keeps_the_block_on_refusal() {
    let mut a = Arena::new(8 * KIB, 256 * KIB, HeapConfig::default());
    let p = a.heap.alloc(100, 8, TAG).unwrap();
    // SAFETY: 100 bytes just handed out.
    unsafe { p.as_ptr().write_bytes(0x5A, 100) };
    let mut calls = 0;
    // SAFETY: the callback returns ends within the arena.
    let q = unsafe {
        a.heap.realloc_or_grow(p, 20 * KIB, 8, |target| {
            calls += 1;
            Some(target.next_multiple_of(4096))
        })
    }
    .unwrap();
    assert_eq!(calls, 1);
    // SAFETY: `q` holds 20 KiB, the first 100 copied from `p`.
    let kept = unsafe { core::slice::from_raw_parts(q.as_ptr(), 100) };
    assert!(kept.iter().all(|&b| b == 0x5A));
    // SAFETY: the callback provides nothing.
    let none = unsafe { a.heap.realloc_or_grow(q, 1 << 20, 8, |_| None) };
    assert_eq!(none, Err(HeapError::OutOfMemory));
    assert_eq!(a.heap.block_of(q).unwrap().requested, 20 * KIB);
    assert_eq!(a.heap.free_sized(q), Ok(20 * KIB));
    a.heap.check().unwrap();
}

#[test]
fn double_free_is_reported_whatever_the_block_merged_with() {
    // blocks too large for a bin merge; small ones (the even ones of 100
    // bytes, plain) go to bins, the odd ones (with a pad) merge too
    for base in [300, 100] {
        let mut a = arena(64 * KIB);
        let p: Vec<_> = (0..7)
            .map(|i| {
                a.heap
                    .alloc(base + i * 8, if i % 2 == 0 { 8 } else { 32 }, TAG)
                    .unwrap()
            })
            .collect();
        // alone, then merged upwards, then merged downwards
        for &i in &[4, 3, 1, 2, 0, 5] {
            a.heap.free(p[i]).unwrap();
            let before = blocks(&a.heap);
            assert_eq!(
                a.heap.free(p[i]),
                Err(HeapError::DoubleFree { addr: addr(p[i]) })
            );
            assert_eq!(
                a.heap.realloc(p[i], 8, 8),
                Err(HeapError::DoubleFree { addr: addr(p[i]) })
            );
            assert_eq!(blocks(&a.heap), before);
            a.heap.check().unwrap();
        }
    }
}

#[test]
fn a_small_freed_block_is_binned_and_handed_out_again() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(40, 8, TAG).unwrap();
    let _guard = a.heap.alloc(40, 8, TAG).unwrap();
    let block = a.heap.block_of(p).unwrap();
    a.heap.free(p).unwrap();
    // free but not merged: the walk shows it as a free block of its own
    let freed = a.heap.find(addr(p)).unwrap();
    assert_eq!(
        (freed.state, freed.addr, freed.size),
        (BlockState::Free, block.addr, block.size)
    );
    assert!(a.heap.is_binned(block.addr));
    a.heap.check().unwrap();
    // the next allocation of that size takes it back, whatever its tag
    let tag = BlockTag::new(5, 0xfeed);
    let q = a.heap.alloc(36, 8, tag).unwrap();
    assert_eq!(q, p);
    let info = a.heap.block_of(q).unwrap();
    assert_eq!((info.requested, info.tag), (36, tag));
    a.heap.check().unwrap();
}

#[test]
fn bins_merge_back_when_nothing_else_fits_and_when_the_heap_empties() {
    let mut a = arena(16 * KIB);
    // fill the heap with small blocks, then free every other one: each
    // freed block lands in a bin, unmerged
    let mut live = Vec::new();
    while let Ok(p) = a.heap.alloc(100, 8, TAG) {
        live.push(p);
    }
    let freed: Vec<_> = live.iter().copied().step_by(2).collect();
    for &p in &freed {
        a.heap.free(p).unwrap();
    }
    a.heap.check().unwrap();
    // an allocation that needs two neighbours merged: the bins are merged
    // back first, so it fits once a pair of neighbours is free
    let kept: Vec<_> = live.iter().copied().skip(1).step_by(2).collect();
    a.heap.free(kept[1]).unwrap();
    let big = a.heap.alloc(300, 8, TAG).unwrap();
    a.heap.check().unwrap();
    a.heap.free(big).unwrap();
    for (i, &p) in kept.iter().enumerate() {
        if i != 1 {
            a.heap.free(p).unwrap();
        }
    }
    // nothing used: one free block again
    assert_eq!(blocks(&a.heap).len(), 1);
    a.heap.check().unwrap();
}

#[test]
fn a_damaged_binned_block_is_not_handed_out() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(40, 8, TAG).unwrap();
    let _guard = a.heap.alloc(40, 8, TAG).unwrap();
    let header = a.heap.block_of(p).unwrap().addr;
    a.heap.free(p).unwrap();
    // a write after free hits its size word
    let saved = a.peek(header + SIZE, 8);
    a.poke(header + SIZE, &[0xEE; 8]);
    let q = a.heap.alloc(40, 8, TAG).unwrap();
    assert_ne!(q, p);
    let corrupt = HeapError::CorruptHeader { addr: header };
    assert_eq!(a.heap.corruption(), Some(corrupt));
    assert_eq!(a.heap.check(), Err(corrupt));
    assert_eq!(
        a.heap.free(p),
        Err(HeapError::InvalidPointer { addr: addr(p) })
    );
    // repaired, it is used again
    a.poke(header + SIZE, &saved);
    a.heap.check().unwrap();
    assert_eq!(a.heap.alloc(40, 8, TAG), Ok(p));
}

#[test]
fn pointers_that_are_not_payloads_are_rejected() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(200, 8, TAG).unwrap();
    a.fill(p, 200, 0x11);
    let bad = |x: usize| NonNull::new(x as *mut u8).unwrap();
    let candidates = [
        addr(p) + 8,
        addr(p) + 1,
        addr(p) - 8,
        a.heap.start(),
        a.heap.end(),
        a.heap.end() + 4096,
        8,
        usize::MAX & !7,
    ];
    let before = blocks(&a.heap);
    for x in candidates {
        let err = a.heap.free(bad(x)).unwrap_err();
        assert!(
            matches!(
                err,
                HeapError::InvalidPointer { .. } | HeapError::CorruptHeader { .. }
            ),
            "{x:#x}: {err:?}"
        );
    }
    assert_eq!(blocks(&a.heap), before);
    a.heap.free(p).unwrap();
    a.heap.check().unwrap();
}

#[test]
fn empty_heap_rejects_everything() {
    let mut heap = Heap::empty();
    assert_eq!(heap.alloc(8, 8, TAG), Err(HeapError::OutOfMemory));
    let p = NonNull::new(0x1000 as *mut u8).unwrap();
    assert_eq!(
        heap.free(p),
        Err(HeapError::InvalidPointer { addr: 0x1000 })
    );
    assert_eq!(heap.walk().count(), 0);
    assert_eq!(heap.stats(), HeapStats::default());
    heap.check().unwrap();
}

#[test]
fn clobbered_header_is_reported_and_the_rest_of_the_heap_works() {
    let mut a = arena(64 * KIB);
    // allocations go downwards: q sits just below p, r below q
    let p = a.heap.alloc(64, 8, TAG).unwrap();
    let q = a.heap.alloc(64, 8, TAG).unwrap();
    let r = a.heap.alloc(64, 8, TAG).unwrap();
    let p_header = addr(p) - HEADER_BYTES;
    assert_eq!(p_header, addr(q) + 64, "q has no slack");
    // q overflows by 8 bytes into p's key
    let saved = a.peek(p_header, 8);
    a.poke(addr(q) + 64, &[0x55; 8]);
    let corrupt = HeapError::CorruptHeader { addr: p_header };
    assert_eq!(a.heap.free(p), Err(corrupt));
    assert_eq!(a.heap.realloc(p, 8, 8), Err(corrupt));
    assert_eq!(a.heap.check(), Err(corrupt));
    // the heap still serves other blocks
    a.heap.free(r).unwrap();
    let s = a.heap.alloc(1000, 8, TAG).unwrap();
    a.heap.free(s).unwrap();
    a.heap.free(q).unwrap();
    // repairing the header makes the block freeable again
    a.poke(p_header, &saved);
    a.heap.check().unwrap();
    a.heap.free(p).unwrap();
    a.heap.check().unwrap();
    assert_eq!(blocks(&a.heap).len(), 1);
}

#[test]
fn clobbered_free_block_is_not_handed_out() {
    let mut a = arena(64 * KIB);
    let p = a.heap.alloc(1000, 8, TAG).unwrap();
    let _guard = a.heap.alloc(8, 8, TAG).unwrap();
    a.heap.free(p).unwrap();
    // a write after free hits the free block's size word
    let header = addr(p) - HEADER_BYTES;
    let saved = a.peek(header + SIZE, 8);
    a.poke(header + SIZE, &[0xEE; 8]);
    // the allocation steps around it to the next class and records it
    let q = a.heap.alloc(900, 8, TAG).unwrap();
    assert_ne!(q, p);
    let corrupt = HeapError::CorruptHeader { addr: header };
    assert_eq!(a.heap.corruption(), Some(corrupt));
    assert_eq!(a.heap.check(), Err(corrupt));
    a.heap.free(q).unwrap();
    // nothing else fits: the corruption is the answer, not "out of memory"
    let rest = a.heap.stats().largest_free - HEADER_BYTES;
    let big = a.heap.alloc(rest, 8, TAG).unwrap();
    assert_eq!(a.heap.alloc(900, 8, TAG), Err(corrupt));
    a.heap.free(big).unwrap();
    a.poke(header + SIZE, &saved);
    a.heap.check().unwrap();
    let again = a.heap.alloc(900, 8, TAG).unwrap();
    assert!(
        (header..header + 1024).contains(&addr(again)),
        "the repaired block is used"
    );
}

#[test]
fn red_zone_overflow_is_caught_on_free_realloc_and_check() {
    let mut a = Arena::new(64 * KIB, 64 * KIB, HeapConfig { red_zones: true });
    let p = a.heap.alloc(100, 8, TAG).unwrap();
    let q = a.heap.alloc(100, 8, TAG).unwrap();
    a.fill(p, 100, 1);
    a.heap.check().unwrap();
    a.poke(addr(p) + 100, &[0]); // one byte too far
    let overflow = HeapError::RedZoneOverflow {
        addr: addr(p),
        offset: 100,
    };
    assert_eq!(a.heap.free(p), Err(overflow));
    assert_eq!(a.heap.realloc(p, 50, 8), Err(overflow));
    assert_eq!(a.heap.check(), Err(overflow));
    // the rest of the heap works; the block stays allocated until repaired
    a.heap.free(q).unwrap();
    a.poke(addr(p) + 100, &[RED_ZONE_BYTE]);
    let p = a.heap.realloc(p, 60, 8).unwrap();
    a.poke(addr(p) + 60, &[RED_ZONE_BYTE - 1]);
    assert_eq!(
        a.heap.free(p),
        Err(HeapError::RedZoneOverflow {
            addr: addr(p),
            offset: 60
        })
    );
    a.poke(addr(p) + 60, &[RED_ZONE_BYTE]);
    a.heap.free(p).unwrap();
    a.heap.check().unwrap();
}

#[test]
fn stats_account_for_every_byte() {
    let mut a = Arena::new(64 * KIB, 64 * KIB, HeapConfig { red_zones: true });
    let p = a.heap.alloc(100, 8, TAG).unwrap();
    let _q = a.heap.alloc(333, 64, TAG).unwrap();
    let _r = a.heap.alloc(1, 4096, TAG).unwrap();
    a.heap.free(p).unwrap();
    let stats = a.heap.stats();
    let all = blocks(&a.heap);
    let used: usize = all.iter().map(|b| b.requested).sum();
    let free: usize = all
        .iter()
        .filter(|b| b.state == BlockState::Free)
        .map(|b| b.size)
        .sum();
    let overhead: usize = all
        .iter()
        .filter(|b| b.state == BlockState::Used)
        .map(|b| b.size - b.requested)
        .sum::<usize>()
        + HEADER_BYTES;
    assert_eq!((stats.used_bytes, stats.free_bytes), (334, free));
    assert_eq!(used, 334);
    assert_eq!(stats.overhead_bytes, overhead);
    assert_eq!(used + free + overhead, 64 * KIB);
    assert_eq!(stats.total_blocks, all.len());
    assert_eq!(
        stats.largest_free,
        all.iter()
            .filter(|b| b.state == BlockState::Free)
            .map(|b| b.size)
            .max()
            .unwrap()
    );
}

#[test]
fn heap_error_messages_name_the_address() {
    let e = HeapError::CorruptHeader { addr: 0x1234 };
    assert_eq!(e.to_string(), "corrupt block header at 0x1234");
}

#[test]
fn tags_without_a_compact_form_round_trip_in_wide_blocks() {
    let mut a = arena(64 * KIB);
    // (tag, compact?): owners that fit an i16 and keys that fit an i32,
    // sign-extended, are compact
    let tags = [
        (BlockTag::new(0x7fff, 0x7fff_ffff), true),
        (BlockTag::new(0xffff_8000, 0xffff_ffff_8000_0000), true),
        (BlockTag::new(SENTINEL_OWNER, 0xffff_ffff_8010_2345), true),
        (BlockTag::new(0x8000, 1), false),
        (BlockTag::new(1, 0x8000_0000), false),
        (BlockTag::new(0xdead_beef, u64::MAX / 3), false),
    ];
    let mut live = Vec::new();
    for (i, (tag, compact)) in tags.into_iter().enumerate() {
        let align = 8 << (i % 3);
        let p = a.heap.alloc(40 + i, align, tag).unwrap();
        assert_eq!(addr(p) % align, 0);
        let info = a.heap.block_of(p).unwrap();
        assert_eq!((info.tag, info.requested), (tag, 40 + i));
        let lead = info.payload - info.addr;
        if compact {
            assert!(lead <= HEADER_BYTES + 24, "{tag:x?}: {lead}");
        } else {
            assert!(lead >= HEADER_BYTES + WIDE_TAG_BYTES, "{tag:x?}: {lead}");
        }
        a.fill(p, 40 + i, i as u8);
        live.push((p, tag));
    }
    let walked: Vec<_> = blocks(&a.heap)
        .into_iter()
        .filter(|b| b.state == BlockState::Used)
        .map(|b| b.tag)
        .collect();
    assert_eq!(walked.len(), tags.len());
    for (_, tag) in &live {
        assert!(walked.contains(tag));
    }
    a.heap.check().unwrap();
    for (i, (p, tag)) in live.into_iter().enumerate() {
        let q = a.heap.realloc(p, 4000, 8 << (i % 3)).unwrap();
        assert!(a.holds(q, 40 + i, i as u8));
        assert_eq!(a.heap.block_of(q).unwrap().tag, tag);
        a.heap.free(q).unwrap();
        assert_eq!(a.heap.free(q), Err(HeapError::DoubleFree { addr: addr(q) }));
    }
    a.heap.check().unwrap();
    assert_eq!(blocks(&a.heap).len(), 1);
}

#[test]
fn a_wide_block_shrunk_to_nothing_still_reports_a_double_free() {
    let mut a = arena(64 * KIB);
    let wide = BlockTag::new(0x8000_0000, 0x1234_5678_9abc);
    let _guard = a.heap.alloc(64, 8, TAG).unwrap();
    let p = a.heap.alloc(100, 8, wide).unwrap();
    // too large for a bin: it merges
    let below = a.heap.alloc(300, 8, TAG).unwrap();
    let p = a.heap.realloc(p, 0, 8).unwrap();
    let info = a.heap.block_of(p).unwrap();
    assert!(
        info.payload < info.addr + info.size,
        "the payload is inside its block"
    );
    // merges with free neighbours on both sides
    a.heap.free(below).unwrap();
    a.heap.free(p).unwrap();
    assert_eq!(a.heap.free(p), Err(HeapError::DoubleFree { addr: addr(p) }));
    a.heap.check().unwrap();
}

/// `duplicate` models `fork`: the copy's bookkeeping describes the bytes of
/// the region as they were when it was made. Restoring those bytes (the
/// child's copy of the pages) after the original moved on leaves the copy
/// consistent and independent.
#[test]
fn duplicate_describes_a_byte_copy_of_the_region() {
    let mut arena = Arena::new(4096, 4096, HeapConfig::default());
    let tag = BlockTag::new(1, 7);
    let a = arena.heap.alloc(100, 16, tag).unwrap();
    let b = arena.heap.alloc(200, 16, tag).unwrap();
    let (start, len) = (arena.start(), 4096);
    let image = arena.peek(start, len);
    // SAFETY: the copy is checked only after the region holds `image`
    // again, the bytes it was made from.
    let mut copy = unsafe { arena.heap.duplicate() };
    let before = copy.stats();
    arena.heap.free(a).unwrap();
    let _c = arena.heap.alloc(300, 16, tag).unwrap();
    let original_image = arena.peek(start, len);
    arena.poke(start, &image);
    assert_eq!(copy.check(), Ok(()));
    assert_eq!(copy.stats(), before);
    copy.free(b).unwrap();
    assert_eq!(copy.check(), Ok(()));
    assert_eq!(copy.stats().used_blocks, 1);
    arena.poke(start, &original_image);
    assert_eq!(arena.heap.check(), Ok(()));
    assert_eq!(arena.heap.stats().used_blocks, 2);
}
