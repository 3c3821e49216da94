//! Property tests: random alloc/free/realloc/grow sequences, with and
//! without misuse, against a model of the live allocations.

use core::ptr::NonNull;

use proptest::prelude::*;

use super::block::{PREV_FREE, SIZE, Stored};
use super::tests::{Arena, addr, pattern};
use super::tlsf::search_class;
use super::*;

const KIB: usize = 1024;
const INITIAL: usize = 64 * KIB;
const MAX: usize = 1024 * KIB;

#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_shift: u32,
        owner: u32,
        zeroed: bool,
    },
    Free {
        pick: usize,
    },
    Realloc {
        pick: usize,
        size: usize,
        align_shift: u32,
    },
    Grow {
        bytes: usize,
    },
    /// Misuse, each followed by a check that nothing changed.
    DoubleFree {
        pick: usize,
    },
    InteriorFree {
        pick: usize,
        words: usize,
    },
    ClobberHeader {
        pick: usize,
        byte: usize,
        xor: u8,
    },
    Overflow {
        pick: usize,
        byte: usize,
    },
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..256usize, 3 => 256..4096usize, 1 => 4096..40_000usize]
}

fn align_shift() -> impl Strategy<Value = u32> {
    prop_oneof![6 => 0..=4u32, 1 => 5..=12u32]
}

fn op(misuse: bool) -> impl Strategy<Value = Op> {
    let alloc = (
        size(),
        align_shift(),
        any::<u32>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(size, align_shift, owner, zeroed)| Op::Alloc {
            size,
            align_shift,
            owner,
            zeroed,
        });
    let free = any::<usize>().prop_map(|pick| Op::Free { pick });
    let realloc =
        (any::<usize>(), size(), align_shift()).prop_map(|(pick, size, align_shift)| Op::Realloc {
            pick,
            size,
            align_shift,
        });
    let grow = (1..64 * KIB).prop_map(|bytes| Op::Grow { bytes });
    let misuse_weight = if misuse { 1 } else { 0 };
    prop_oneof![
        6 => alloc,
        4 => free,
        4 => realloc,
        1 => grow,
        misuse_weight => any::<usize>().prop_map(|pick| Op::DoubleFree { pick }),
        misuse_weight => (any::<usize>(), 1..512usize)
            .prop_map(|(pick, words)| Op::InteriorFree { pick, words }),
        misuse_weight => (any::<usize>(), 0..HEADER_BYTES, 1..=255u8)
            .prop_map(|(pick, byte, xor)| Op::ClobberHeader { pick, byte, xor }),
        misuse_weight => (any::<usize>(), any::<usize>())
            .prop_map(|(pick, byte)| Op::Overflow { pick, byte }),
    ]
}

/// A live allocation in the model.
#[derive(Clone, Copy, Debug)]
struct Live {
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    seed: u8,
    tag: BlockTag,
}

struct Model {
    a: Arena,
    live: Vec<Live>,
    next_seed: u8,
}

impl Model {
    fn new(config: HeapConfig) -> Self {
        Self {
            a: Arena::new(INITIAL, MAX, config),
            live: Vec::new(),
            next_seed: 0,
        }
    }

    fn seed(&mut self) -> u8 {
        self.next_seed = self.next_seed.wrapping_add(37);
        self.next_seed
    }

    fn blocks(&self) -> Vec<BlockInfo> {
        self.a.heap.walk().collect::<Result<_, _>>().expect("walk")
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Alloc {
                size,
                align_shift,
                owner,
                zeroed,
            } => {
                let align = 1 << align_shift;
                let tag = BlockTag::new(owner, size as u64 ^ 0xabcd);
                let largest = self.a.heap.stats().largest_free;
                // a block this large is always found in O(1)
                let sure = self
                    .a
                    .heap
                    .request(size, align, Stored::of(tag).lead())
                    .ok()
                    .and_then(|r| search_class(r.search))
                    .map_or(usize::MAX, tlsf::class_min);
                let result = if zeroed {
                    self.a.heap.alloc_zeroed(size, align, tag)
                } else {
                    self.a.heap.alloc(size, align, tag)
                };
                match result {
                    Ok(ptr) => {
                        prop_assert_eq!(addr(ptr) % align, 0);
                        if zeroed {
                            prop_assert!(self.a.peek(addr(ptr), size).iter().all(|&b| b == 0));
                        }
                        let seed = self.seed();
                        self.a.fill(ptr, size, seed);
                        self.live.push(Live {
                            ptr,
                            size,
                            align,
                            seed,
                            tag,
                        });
                    }
                    Err(HeapError::OutOfMemory) => {
                        prop_assert!(largest < sure, "OOM with a {largest}-byte block free");
                    }
                    Err(e) => prop_assert!(false, "alloc failed: {e:?}"),
                }
            }
            Op::Free { pick } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let l = self.live.swap_remove(pick % self.live.len());
                prop_assert!(self.a.holds(l.ptr, l.size, l.seed));
                prop_assert_eq!(self.a.heap.free(l.ptr), Ok(()));
            }
            Op::Realloc {
                pick,
                size,
                align_shift,
            } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let i = pick % self.live.len();
                let l = self.live[i];
                let align = 1 << align_shift;
                match self.a.heap.realloc(l.ptr, size, align) {
                    Ok(ptr) => {
                        prop_assert_eq!(addr(ptr) % align, 0);
                        prop_assert!(self.a.holds(ptr, l.size.min(size), l.seed));
                        prop_assert_eq!(self.a.heap.block_of(ptr).unwrap().tag, l.tag);
                        let seed = self.seed();
                        self.a.fill(ptr, size, seed);
                        self.live[i] = Live {
                            ptr,
                            size,
                            align,
                            seed,
                            tag: l.tag,
                        };
                    }
                    Err(HeapError::OutOfMemory) => {
                        prop_assert!(self.a.holds(l.ptr, l.size, l.seed));
                    }
                    Err(e) => prop_assert!(false, "realloc failed: {e:?}"),
                }
            }
            Op::Grow { bytes } => {
                let len = self.a.heap.end() - self.a.start();
                let target = (len + bytes).min(MAX);
                if target > len {
                    let before = self.a.heap.free_bytes();
                    // only whole words at the end are usable
                    let start = self.a.start();
                    let adds = (start + target) & !7 > (start + len) & !7;
                    match self.a.grow_to(target) {
                        Ok(()) if adds => prop_assert!(self.a.heap.free_bytes() > before),
                        Ok(()) => prop_assert_eq!(self.a.heap.free_bytes(), before),
                        // only a step too small for a block of its own
                        Err(HeapError::InvalidRegion) => {
                            prop_assert!(target - len < MIN_BLOCK_BYTES)
                        }
                        Err(e) => prop_assert!(false, "grow failed: {e:?}"),
                    }
                }
            }
            Op::DoubleFree { pick } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let l = self.live.swap_remove(pick % self.live.len());
                prop_assert_eq!(self.a.heap.free(l.ptr), Ok(()));
                let before = self.blocks();
                let twice = HeapError::DoubleFree { addr: addr(l.ptr) };
                prop_assert_eq!(self.a.heap.free(l.ptr), Err(twice));
                prop_assert_eq!(self.a.heap.realloc(l.ptr, 8, 8), Err(twice));
                prop_assert_eq!(self.blocks(), before);
            }
            Op::InteriorFree { pick, words } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let l = self.live[pick % self.live.len()];
                let inside = addr(l.ptr) + 8 * (1 + words % (l.size / 8).max(1));
                let before = self.blocks();
                let p = NonNull::new(inside as *mut u8).unwrap();
                prop_assert!(self.a.heap.free(p).is_err());
                prop_assert!(self.a.heap.realloc(p, 8, 8).is_err());
                prop_assert_eq!(self.blocks(), before);
            }
            Op::ClobberHeader { pick, byte, xor } => {
                if self.live.is_empty() {
                    return Ok(());
                }
                let l = self.live[pick % self.live.len()];
                let header = self.a.heap.block_of(l.ptr).unwrap().addr;
                let at = header + byte;
                let saved = self.a.peek(at, 1)[0];
                self.a.poke(at, &[saved ^ xor]);
                // PREV_FREE is outside the seal: a flip there is caught by
                // check() through the neighbours, not by free()
                if byte != SIZE || xor & !(PREV_FREE as u8) != 0 {
                    prop_assert!(self.a.heap.free(l.ptr).is_err());
                    prop_assert!(self.a.heap.realloc(l.ptr, 1, 8).is_err());
                }
                prop_assert!(self.a.heap.check().is_err());
                self.a.poke(at, &[saved]);
                self.a
                    .heap
                    .check()
                    .map_err(|e| TestCaseError::fail(format!("{e}")))?;
            }
            Op::Overflow { pick, byte } => {
                if self.live.is_empty() || !self.a.heap.red_zones() {
                    return Ok(());
                }
                let l = self.live[pick % self.live.len()];
                let info = self.a.heap.block_of(l.ptr).unwrap();
                let slack = info.addr + info.size - (info.payload + info.requested);
                let at = addr(l.ptr) + l.size + byte % slack;
                let saved = self.a.peek(at, 1)[0];
                self.a.poke(at, &[!saved]);
                let overflow = HeapError::RedZoneOverflow {
                    addr: addr(l.ptr),
                    offset: at - addr(l.ptr),
                };
                prop_assert_eq!(self.a.heap.free(l.ptr), Err(overflow));
                prop_assert_eq!(self.a.heap.check(), Err(overflow));
                self.a.poke(at, &[saved]);
            }
        }
        Ok(())
    }

    /// Everything that must hold after every step.
    fn verify(&self, deep: bool) -> Result<(), TestCaseError> {
        let heap = &self.a.heap;
        heap.check()
            .map_err(|e| TestCaseError::fail(format!("check: {e}")))?;
        let blocks = self.blocks();

        // the walk tiles the region: blocks, then the sentinel, plus the
        // bytes lost to rounding the region's ends to 8
        let start = heap.start();
        let tiled: usize = blocks.iter().map(|b| b.size).sum();
        let edges = (heap.end() - start) - ((heap.end() & !7) - start.next_multiple_of(8));
        prop_assert_eq!(tiled + HEADER_BYTES + edges, heap.end() - start);
        for pair in blocks.windows(2) {
            let merged = |b: &BlockInfo| b.state == BlockState::Free && !heap.is_binned(b.addr);
            prop_assert!(
                !merged(&pair[0]) || !merged(&pair[1]),
                "adjacent free blocks at {:#x}",
                pair[0].addr
            );
        }

        // used blocks are exactly the model's live allocations
        let mut used: Vec<_> = blocks
            .iter()
            .filter(|b| b.state == BlockState::Used)
            .map(|b| (b.payload, b.requested, b.tag))
            .collect();
        let mut model: Vec<_> = self
            .live
            .iter()
            .map(|l| (addr(l.ptr), l.size, l.tag))
            .collect();
        used.sort_unstable_by_key(|u| u.0);
        model.sort_unstable_by_key(|m| m.0);
        prop_assert_eq!(&used, &model);
        for pair in used.windows(2) {
            prop_assert!(pair[0].0 + pair[0].1 <= pair[1].0, "overlap");
        }
        for l in &self.live {
            prop_assert_eq!(addr(l.ptr) % l.align, 0);
            let edge = l.size.min(32);
            let ends_hold = self.a.holds(l.ptr, edge, l.seed)
                && self.a.peek(addr(l.ptr) + l.size - edge, edge)
                    == (l.size - edge..l.size)
                        .map(|i| pattern(l.seed, i))
                        .collect::<Vec<_>>();
            prop_assert!(ends_hold, "payload at {:#x} changed", addr(l.ptr));
            if deep {
                prop_assert!(self.a.holds(l.ptr, l.size, l.seed));
            }
        }

        // every byte is accounted for
        let stats = heap.stats();
        let requested: usize = self.live.iter().map(|l| l.size).sum();
        let free: usize = blocks
            .iter()
            .filter(|b| b.state == BlockState::Free)
            .map(|b| b.size)
            .sum();
        let overhead: usize = blocks.iter().map(|b| b.size - b.requested).sum::<usize>() - free
            + HEADER_BYTES
            + edges;
        prop_assert_eq!(stats.used_bytes, requested);
        prop_assert_eq!(stats.free_bytes, free);
        prop_assert_eq!(stats.overhead_bytes, overhead);
        prop_assert_eq!(
            stats.used_bytes + stats.free_bytes + stats.overhead_bytes,
            stats.region_bytes
        );
        prop_assert_eq!(stats.total_blocks, blocks.len());
        Ok(())
    }

    fn run(mut self, ops: &[Op]) -> Result<(), TestCaseError> {
        for (i, op) in ops.iter().enumerate() {
            self.apply(op)?;
            self.verify(i % 16 == 15)?;
        }
        self.verify(true)?;
        for l in std::mem::take(&mut self.live) {
            prop_assert_eq!(self.a.heap.free(l.ptr), Ok(()));
        }
        self.verify(true)?;
        let blocks = self.blocks();
        prop_assert_eq!(blocks.len(), 1, "all memory merges back into one block");
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_alloc_free_realloc_grow_match_the_model(
        ops in prop::collection::vec(op(false), 1..200),
    ) {
        Model::new(HeapConfig::default()).run(&ops)?;
    }

    #[test]
    fn red_zoned_heap_matches_the_model(ops in prop::collection::vec(op(false), 1..200)) {
        Model::new(HeapConfig { red_zones: true }).run(&ops)?;
    }

    #[test]
    fn misuse_is_detected_and_leaves_the_heap_working(
        ops in prop::collection::vec(op(true), 1..200),
        red_zones in any::<bool>(),
    ) {
        Model::new(HeapConfig { red_zones }).run(&ops)?;
    }
}

/// What [`corrupt_one_header_byte`] damages.
#[derive(Clone, Copy, Debug)]
struct Corruption {
    /// Which block of the walk.
    pick: usize,
    /// Which of the bytes the seal covers.
    byte: usize,
    xor: u8,
}

impl Model {
    /// Flips bits in one byte that a seal covers: of a used block's
    /// header, pad marker or wide key, or of a free block's size word
    /// (never a flip of `PREV_FREE` alone, which no seal covers), and
    /// checks that everything the design claims catches it, then repairs
    /// it.
    fn corrupt_one_header_byte(&mut self, c: Corruption) -> Result<(), TestCaseError> {
        let blocks = self.blocks();
        let i = c.pick % blocks.len();
        let b = blocks[i];
        let mut sealed: Vec<usize> = match b.state {
            BlockState::Used => (b.addr..b.addr + HEADER_BYTES).collect(),
            BlockState::Free => (b.addr + SIZE..b.addr + HEADER_BYTES).collect(),
        };
        if b.state == BlockState::Used && b.payload > b.addr + HEADER_BYTES {
            // the pad marker, and a wide block's key after the header
            sealed.extend(b.payload - 8..b.payload);
            let wide = i32::from(b.tag.owner as i16) != b.tag.owner as i32
                || i64::from(b.tag.key as i32) != b.tag.key as i64;
            if wide {
                sealed.extend(b.addr + HEADER_BYTES..b.addr + HEADER_BYTES + 8);
            }
        }
        let at = sealed[c.byte % sealed.len()];
        // PREV_FREE is outside the seal (the allocator sets it for a
        // neighbour below): corrupt the covered bits only.
        let xor = if at == b.addr + SIZE {
            c.xor & !(PREV_FREE as u8)
        } else {
            c.xor
        };
        if xor == 0 {
            return Ok(());
        }
        let binned = self.a.heap.is_binned(b.addr);
        let (start, len) = (self.a.start(), self.a.heap.end() - self.a.start());
        let saved = self.a.peek(at, 1)[0];
        self.a.poke(at, &[saved ^ xor]);
        let damaged = self.a.peek(start, len);
        prop_assert!(self.a.heap.check().is_err(), "check missed {at:#x}");
        match b.state {
            BlockState::Used => {
                let p = NonNull::new(b.payload as *mut u8).unwrap();
                prop_assert!(self.a.heap.free(p).is_err(), "free missed {at:#x}");
                prop_assert!(self.a.heap.realloc(p, 1, 8).is_err());
                prop_assert!(self.a.heap.block_of(p).is_err());
                // refused without a write
                prop_assert!(self.a.peek(start, len) == damaged);
            }
            BlockState::Free => {
                // the block above merges down only through a valid header
                // (a binned block is no merge candidate: it is not merged)
                // (or not at all: a block freed into a bin is not merged)
                if let Some(above) = blocks.get(i + 1).filter(|_| !binned) {
                    let p = NonNull::new(above.payload as *mut u8).unwrap();
                    let before = self.a.peek(b.addr, b.size);
                    match self.a.heap.free(p) {
                        Err(_) => prop_assert!(self.a.peek(start, len) == damaged),
                        Ok(()) => {
                            prop_assert!(self.a.heap.is_binned(above.addr), "merged into {at:#x}");
                            prop_assert!(self.a.peek(b.addr, b.size) == before);
                            self.live.retain(|l| l.ptr != p);
                        }
                    }
                }
                // and no allocation is carved from it
                let size = b.size - HEADER_BYTES;
                if let Ok(q) = self.a.heap.alloc(size, 8, BlockTag::new(7, 7)) {
                    let q_addr = addr(q);
                    prop_assert!(
                        !(b.addr..b.addr + b.size).contains(&q_addr),
                        "handed out {q_addr:#x} from the damaged block at {:#x}",
                        b.addr
                    );
                    let seed = self.seed();
                    self.a.fill(q, size, seed);
                    self.live.push(Live {
                        ptr: q,
                        size,
                        align: 8,
                        seed,
                        tag: BlockTag::new(7, 7),
                    });
                }
            }
        }
        // Undo the flipped bits; the allocator may meanwhile have set this
        // header's PREV_FREE bit for a neighbour below, which stays.
        let now = self.a.peek(at, 1)[0];
        self.a.poke(at, &[now ^ xor]);
        self.a
            .heap
            .check()
            .map_err(|e| TestCaseError::fail(format!("after repair: {e}")))?;
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every one-byte corruption of what a seal covers is caught: by
    /// `free`, `realloc`, `block_of` and `check` for a used block, by
    /// `check`, the merge from above and the allocator for a free one.
    #[test]
    fn every_one_byte_header_corruption_is_caught(
        ops in prop::collection::vec(op(false), 1..80),
        corruptions in prop::collection::vec(
            (any::<usize>(), any::<usize>(), 1..=255u8)
                .prop_map(|(pick, byte, xor)| Corruption { pick, byte, xor }),
            1..8,
        ),
        red_zones in any::<bool>(),
    ) {
        let mut m = Model::new(HeapConfig { red_zones });
        for op in &ops {
            m.apply(op)?;
        }
        for c in corruptions {
            m.corrupt_one_header_byte(c)?;
            m.verify(false)?;
        }
    }
}

/// A long fill-and-churn run in a small heap: exercises out-of-memory and
/// the near-full scan on every step.
#[test]
fn churn_near_full_keeps_every_invariant() {
    let mut m = Model::new(HeapConfig::default());
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..4000 {
        let r = rand();
        let op = match r % 8 {
            0..=4 => Op::Alloc {
                size: (r >> 8) as usize % 3000,
                align_shift: ((r >> 40) % 13) as u32 * u32::from(r >> 60 == 0),
                owner: i,
                zeroed: false,
            },
            5 | 6 => Op::Free {
                pick: (r >> 16) as usize,
            },
            _ => Op::Realloc {
                pick: (r >> 16) as usize,
                size: (r >> 32) as usize % 5000,
                align_shift: 3,
            },
        };
        m.apply(&op).unwrap();
        m.verify(i % 64 == 0).unwrap();
    }
    assert!(m.a.heap.stats().used_bytes > INITIAL / 2);
}
