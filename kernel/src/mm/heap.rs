//! Best-fit heap allocator over a memory region its owner supplies.
//!
//! One [`Heap`] manages one region `[start, end)` that may grow up to `max`;
//! the kernel heap and each process's keyed heaps are separate instances.
//! The heap never asks for memory itself: when an allocation fails its owner
//! maps more and calls [`Heap::grow`] (or passes a callback to
//! [`Heap::alloc_or_grow`]). It needs no `alloc` and takes no lock; the
//! kernel wraps it in one.
//!
//! ```
//! use kernel::mm::heap::{BlockTag, Heap, HeapConfig};
//!
//! let mut arena = vec![0u64; 8192]; // 64 KiB, 8-aligned
//! let start = arena.as_mut_ptr().cast::<u8>();
//! let end = start.addr() + 32 * 1024;
//! let max = start.addr() + 64 * 1024;
//! // SAFETY: `arena` outlives `heap` and is touched only through it.
//! let mut heap = unsafe { Heap::new(start, end, max, HeapConfig::default())? };
//!
//! let tag = BlockTag::new(7, 0xfeed);
//! let p = heap.alloc(100, 16, tag)?;
//! assert_eq!(p.as_ptr().addr() % 16, 0);
//! assert_eq!(heap.block_of(p)?.tag, tag);
//! let p = heap.realloc(p, 400, 16)?;
//! heap.free(p)?;
//! assert_eq!(heap.free(p), Err(kernel::mm::heap::HeapError::DoubleFree { addr: p.as_ptr().addr() }));
//! heap.check()?;
//! # Ok::<(), kernel::mm::heap::HeapError>(())
//! ```
//!
//! # Algorithm
//!
//! Blocks tile the region; each starts with a header and free blocks end with
//! a footer holding their size (boundary tags), so a freed block merges with
//! both neighbours in O(1) and two free blocks are never adjacent. Free
//! blocks sit in two-level segregated lists (TLSF): one list per size class,
//! 32 classes per power of two, with a bitmap per level. An allocation
//! rounds its size up to the next class boundary and takes the head of the
//! first non-empty class at or above it, found with two bit scans: every
//! block there fits, so no list is walked. The chosen block is at most one
//! class (under 1/32 of its size) larger than the best fit among the
//! classes, and what the allocation does not use stays free, so the
//! rounding costs search precision only, not memory. When that finds
//! nothing, up to [`SCAN_LIMIT`] blocks of the classes the rounding skipped
//! are tried before reporting [`HeapError::OutOfMemory`], which recovers the
//! exact fits that matter when the heap is nearly full.
//!
//! An allocation is carved from the top of its free block, so the rest of
//! the block keeps its address and, usually, its list: no relinking. For
//! the same reason a block freed just above a free block only resizes it.
//!
//! # Complexity
//!
//! | operation | time |
//! | --- | --- |
//! | [`Heap::alloc`] | O(1): two bit scans and a bounded number of header reads and writes; at most [`SCAN_LIMIT`] more blocks when the O(1) search finds nothing |
//! | [`Heap::free`] | O(1): validate, merge with both neighbours, relink |
//! | [`Heap::realloc`] | O(1) in place (shrink, or grow into a free next block); otherwise an allocation, an O(n) copy and a free |
//! | [`Heap::alloc_zeroed`] | alloc + O(size) zeroing |
//! | [`Heap::stats`] | O(length of the largest class's list) |
//! | [`Heap::walk`], [`Heap::check`], [`Heap::find`] | O(blocks) |
//!
//! Red zones add O(slack) byte writes per allocation and checks per free.
//!
//! # Block layout
//!
//! Every block is 8-aligned, a multiple of 8 bytes and at least
//! [`MIN_BLOCK_BYTES`] long. Its 16-byte header is two words:
//!
//! | offset | bytes | used block | free block |
//! | --- | --- | --- | --- |
//! | 0 | 8 | tag word | next block in its free list (0 = last) |
//! | 8 | 8 | size word | size word |
//!
//! The size word: bit 0 `USED`; bit 1 `PREV_FREE` (the block just below is
//! free, so its footer is the word below this header); bit 2 `WIDE` (used
//! blocks: the tag is kept outside the header, see below); bits 3..39 the
//! block size in bytes, header included. A used block's size word holds
//! in bits 39..42 the pad in 8-byte units, in bits 42..49 the slack, and in
//! bits 49..64 15 bits of its seal; a free block's holds 25 bits of seal in
//! bits 39..64.
//!
//! The tag word of a used block holds the tag in compact form, when it has
//! one: owner in bits 0..16 and key in bits 16..48, each sign-extended on
//! the way back, so owners that fit an `i16` and keys that fit an `i32`
//! (small numbers, and return addresses in a kernel image in the top 2 GiB)
//! are compact. Bits 48..64 hold the other 16 bits of the seal. A block
//! whose tag is not compact is `WIDE`: its tag word is zero below the seal,
//! the 8 bytes after the header hold the key and the pad marker (below)
//! holds the owner, which costs [`WIDE_TAG_BYTES`] more per block.
//!
//! The seal is one multiply over the block's address, its size word
//! (without `PREV_FREE`, which neighbours flip) and its tag, compact or
//! wide: 31 bits for a used block (split between its two words), 25 for a
//! free one. Hashing the address means a header copied elsewhere, or stale
//! bytes inside another block, do not pass as a header.
//!
//! A used block: `header | pad | payload (the requested bytes) | slack`.
//! The pad is what is left below an aligned payload when it is too small
//! to be a free block (0..=24 bytes), plus the 16 bytes of a wide tag; when
//! non-zero its last word is a pad marker (a magic number and the pad
//! length in the low half, the magic again or a wide tag's owner in the
//! high half) so the header can be found from the payload pointer. Larger
//! gaps, below or above the payload, are free blocks. The slack (bytes
//! after the requested size, at least [`RED_ZONE_BYTES`] with red zones
//! on) records the requested size exactly; with red zones it is filled
//! with [`RED_ZONE_BYTE`] and checked when the block is freed or
//! reallocated and by [`Heap::check`].
//!
//! A free block: `header | previous block in its free list (8) | ... |
//! footer: size (8)`.
//!
//! The region ends with a 16-byte sentinel header (a used block of size 16
//! owned by [`SENTINEL_OWNER`]) so the last block has a successor.
//!
//! # Misuse
//!
//! [`Heap::free`] and [`Heap::realloc`] take any pointer. They accept it only
//! if it lies in the region, is 8-aligned, the header in front of it has a
//! valid seal and is marked used; otherwise they return
//! [`HeapError::InvalidPointer`], [`HeapError::DoubleFree`] or
//! [`HeapError::CorruptHeader`]. Everything an operation relies on (its
//! block, the neighbours it merges with, their free-list links) is validated
//! before the first write, so an operation that returns an error has changed
//! nothing and the heap stays usable. No value read from the region can make
//! the heap touch memory outside it (every access is bounds-checked), though
//! a payload overflow that forges a valid seal is beyond detection.

mod raw;
mod tlsf;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use core::fmt;
use core::num::NonZeroUsize;
use core::ptr::NonNull;

use raw::Region;
use tlsf::{Class, FreeLists, MAX_BLOCK, class_min, class_of, search_class};

/// Bytes of header in front of every block.
pub const HEADER_BYTES: usize = 16;
/// Smallest block: a header, a free-list link and a footer.
pub const MIN_BLOCK_BYTES: usize = 32;
/// Extra bytes in front of the payload of a block whose tag has no compact
/// form (an owner beyond `i16` or a key beyond `i32`, sign-extended).
pub const WIDE_TAG_BYTES: usize = 16;
/// Smallest region [`Heap::new`] accepts.
pub const MIN_REGION_BYTES: usize = 64;
/// Guard bytes after every payload when red zones are on.
pub const RED_ZONE_BYTES: usize = 16;
/// The value red-zone bytes hold.
pub const RED_ZONE_BYTE: u8 = 0xFD;
/// Owner tag of the sentinel block that closes the region.
pub const SENTINEL_OWNER: u32 = u32::MAX;
/// Most free blocks an allocation examines beyond the O(1) good fit before
/// it reports [`HeapError::OutOfMemory`].
pub const SCAN_LIMIT: usize = 32;

const GRAIN: usize = 8;
const HEADER: usize = HEADER_BYTES;
const MIN_BLOCK: usize = MIN_BLOCK_BYTES;
/// Largest alignment pad: gaps of [`MIN_BLOCK`] or more become free blocks.
const MAX_PAD: usize = MIN_BLOCK - GRAIN;
/// Largest pad of a wide block.
const MAX_WIDE_PAD: usize = WIDE_TAG_BYTES + MAX_PAD;

// Word offsets inside a block.
const TAG: usize = 0;
const SIZE: usize = 8;
const PREV_LINK: usize = 16;
/// A wide block's key.
const WIDE_KEY: usize = 16;

// The size word.
const USED: u64 = 1;
const PREV_FREE: u64 = 2;
const WIDE: u64 = 4;
const SIZE_MASK: u64 = ((1 << 39) - 1) & !7;
const PAD_SHIFT: u32 = 39;
const PAD_FIELD: u64 = 7 << PAD_SHIFT;
const SLACK_SHIFT: u32 = 42;
const SLACK_BITS: u64 = 0x7f;
const MAX_SLACK: usize = SLACK_BITS as usize;
/// The seal bits of a used block's size word.
const USED_SEAL: u64 = !0 << 49;
/// The seal bits of a free block's size word.
const FREE_SEAL: u64 = !0 << 39;
/// The seal bits of a used block's tag word.
const TAG_SEAL: u64 = !0 << 48;

/// The pad marker: this value with the pad length in bits 3..6, and in the
/// high half [`MARKER_HIGH`] or a wide tag's owner.
const PAD_MAGIC: u32 = 0x9AD0_9A80;
const PAD_BITS: u64 = 0x38;
const MARKER_HIGH: u64 = 0x9AD0_9AD0;

const SEAL_SEED: u64 = 0x6b65_726e_656c_6870;

/// Who owns an allocation: a tag (process, subsystem) and a key (the
/// caller's return address for the kernel heap, the allocation key for a
/// process's keyed heap). Both are kept with the block; see the module
/// docs for how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockTag {
    /// Owner tag.
    pub owner: u32,
    /// Caller address or key.
    pub key: u64,
}

impl BlockTag {
    /// A tag for `owner` with `key`.
    pub const fn new(owner: u32, key: u64) -> Self {
        Self { owner, key }
    }
}

/// Options fixed when a heap is created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapConfig {
    /// Put [`RED_ZONE_BYTES`] guard bytes after every payload and check
    /// them on free, realloc and [`Heap::check`].
    pub red_zones: bool,
}

/// Why a heap operation failed. An operation that fails changes nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapError {
    /// No free block fits; [`Heap::grow`] may help.
    OutOfMemory,
    /// The alignment is not a power of two.
    InvalidLayout,
    /// Region bounds that are out of order, too small, unaligned, beyond
    /// `max` or larger than a heap can manage.
    InvalidRegion,
    /// The pointer is not the payload of a block of this heap.
    InvalidPointer {
        /// The pointer.
        addr: usize,
    },
    /// The pointer's block is already free.
    DoubleFree {
        /// The pointer.
        addr: usize,
    },
    /// A block header's seal does not match its contents.
    CorruptHeader {
        /// Address of the header.
        addr: usize,
    },
    /// Bytes after a payload were overwritten (red zones only).
    RedZoneOverflow {
        /// The payload.
        addr: usize,
        /// Offset from the payload of the first overwritten byte.
        offset: usize,
    },
    /// [`Heap::check`] found a structure that breaks an invariant.
    Inconsistent {
        /// Where.
        addr: usize,
        /// Which invariant.
        what: &'static str,
    },
}

impl fmt::Display for HeapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::OutOfMemory => write!(f, "out of memory"),
            Self::InvalidLayout => write!(f, "alignment is not a power of two"),
            Self::InvalidRegion => write!(f, "invalid heap region"),
            Self::InvalidPointer { addr } => write!(f, "invalid pointer {addr:#x}"),
            Self::DoubleFree { addr } => write!(f, "double free of {addr:#x}"),
            Self::CorruptHeader { addr } => write!(f, "corrupt block header at {addr:#x}"),
            Self::RedZoneOverflow { addr, offset } => {
                write!(f, "overflow past block {addr:#x} at offset {offset}")
            }
            Self::Inconsistent { addr, what } => {
                write!(f, "heap inconsistent at {addr:#x}: {what}")
            }
        }
    }
}

/// A summary of a heap. `used_bytes + free_bytes + overhead_bytes ==
/// region_bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes from the region's start to its current end.
    pub region_bytes: usize,
    /// Blocks, used and free (the sentinel not counted).
    pub total_blocks: usize,
    /// Used blocks.
    pub used_blocks: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// Size of the largest free block, header included.
    pub largest_free: usize,
    /// Bytes requested by the owners of used blocks.
    pub used_bytes: usize,
    /// Bytes in free blocks, headers included.
    pub free_bytes: usize,
    /// Everything else: headers, pads and slack of used blocks, the
    /// sentinel and alignment at the region's edges.
    pub overhead_bytes: usize,
}

/// Whether a block is handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockState {
    /// Allocated.
    Used,
    /// In a free list.
    Free,
}

/// One block as [`Heap::walk`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Address of the block (its header).
    pub addr: usize,
    /// Size of the block, header included.
    pub size: usize,
    /// Used or free.
    pub state: BlockState,
    /// Used: the pointer handed out. Free: the first byte after the header.
    pub payload: usize,
    /// Used: the bytes requested. Free: 0.
    pub requested: usize,
    /// Used: owner and key. Free: zero.
    pub tag: BlockTag,
}

/// A tag as a block keeps it: the compact form (the tag word below its
/// seal), or for a wide tag the key and owner kept outside the header.
#[derive(Clone, Copy, Debug)]
struct Stored {
    /// Bits 0..48 of the tag word; 0 when wide.
    word: u64,
    wide: bool,
    /// Wide only, else 0.
    key: u64,
    /// Wide only, else 0.
    owner: u64,
}

impl Stored {
    /// What a free block's seal covers in place of a tag.
    const NONE: Self = Self {
        word: 0,
        wide: false,
        key: 0,
        owner: 0,
    };

    #[inline(always)]
    fn of(tag: BlockTag) -> Self {
        let owner_fits = i32::from(tag.owner as i16) == tag.owner as i32;
        let key_fits = i64::from(tag.key as i32) == tag.key as i64;
        if owner_fits && key_fits {
            Self::compact(u64::from(tag.owner & 0xffff) | (tag.key & 0xffff_ffff) << 16)
        } else {
            Self {
                word: 0,
                wide: true,
                key: tag.key,
                owner: u64::from(tag.owner),
            }
        }
    }

    #[inline(always)]
    const fn compact(word: u64) -> Self {
        Self {
            word,
            wide: false,
            key: 0,
            owner: 0,
        }
    }

    fn tag(&self) -> BlockTag {
        if self.wide {
            BlockTag::new(self.owner as u32, self.key)
        } else {
            BlockTag::new(
                i32::from(self.word as i16) as u32,
                i64::from((self.word >> 16) as i32) as u64,
            )
        }
    }

    /// Bytes from a block's start to the earliest payload.
    #[inline(always)]
    fn lead(&self) -> usize {
        if self.wide {
            HEADER + WIDE_TAG_BYTES
        } else {
            HEADER
        }
    }

    /// The high half of a pad marker.
    #[inline(always)]
    fn marker_high(&self) -> u64 {
        if self.wide { self.owner } else { MARKER_HIGH }
    }
}

/// A used block, validated: its address and size word, which has all the
/// rest. Two words, so it travels in registers.
#[derive(Clone, Copy, Debug)]
struct UsedBlock {
    at: NonZeroUsize,
    word: u64,
}

impl UsedBlock {
    #[inline(always)]
    fn addr(&self) -> usize {
        self.at.get()
    }

    #[inline(always)]
    fn size(&self) -> usize {
        (self.word & SIZE_MASK) as usize
    }

    #[inline(always)]
    fn pad(&self) -> usize {
        ((self.word >> PAD_SHIFT) & 7) as usize * GRAIN
    }

    #[inline(always)]
    fn requested(&self) -> usize {
        self.size() - HEADER - self.pad() - ((self.word >> SLACK_SHIFT) & SLACK_BITS) as usize
    }

    #[inline(always)]
    fn prev_free(&self) -> bool {
        self.word & PREV_FREE != 0
    }

    #[inline(always)]
    fn wide(&self) -> bool {
        self.word & WIDE != 0
    }

    #[inline(always)]
    fn payload(&self) -> usize {
        self.addr() + HEADER + self.pad()
    }
}

/// A free block whose header and list links were validated.
#[derive(Clone, Copy, Debug)]
struct FreeBlock {
    addr: usize,
    size: usize,
}

/// An allocation request, checked and sized.
#[derive(Clone, Copy, Debug)]
struct Request {
    size: usize,
    align: usize,
    /// Payload plus red zone.
    body: usize,
    /// Bytes from the payload to the end of its block: `body` rounded up
    /// to 8, and at least enough for the block to hold a free block later.
    span: usize,
    /// Bytes from the block's start to the earliest payload: the header,
    /// and a wide tag.
    lead: usize,
    /// Block size that fits whatever the alignment gap.
    search: usize,
}

/// A heap over one region of memory.
pub struct Heap {
    mem: Region,
    lists: FreeLists,
    /// First block (the region's start rounded up to 8).
    first: usize,
    /// The sentinel header; the region's usable end is `sentinel + HEADER`.
    /// 0 for a heap without a region.
    sentinel: usize,
    /// How far the region may grow.
    max: usize,
    red_zone: usize,
    /// The first corruption an allocation ran into, if any.
    corruption: Option<HeapError>,
    nr_used: usize,
    nr_free: usize,
    used_bytes: usize,
    free_bytes: usize,
}

/// Smallest block holding `body` bytes after a pad of `pad` bytes: like a
/// [`Request`]'s span, the payload and what follows it take at least
/// `MIN_BLOCK - HEADER` bytes, so a payload never ends its block empty.
#[inline(always)]
fn block_size(pad: usize, body: usize) -> usize {
    HEADER + pad + body.next_multiple_of(GRAIN).max(MIN_BLOCK - HEADER)
}

#[inline]
fn align_up(addr: usize, align: usize) -> usize {
    (addr + align - 1) & !(align - 1)
}

/// The seal of a block at `addr` with size word `size_word` (its seal bits
/// and `PREV_FREE` clear) and tag `stored`: the fields rotated apart so
/// that equal changes to two of them do not cancel, and multiplied by an
/// odd constant. The seals are the product's high bits, which depend on
/// every input bit; a change to input bit `j` always changes product bit
/// `j`, so a change anywhere in bits 49..64 is always caught.
#[inline(always)]
fn mix(addr: usize, size_word: u64, stored: &Stored) -> u64 {
    let x = (addr as u64).rotate_left(29)
        ^ size_word
        ^ stored.word.rotate_left(11)
        ^ stored.key.rotate_left(43)
        ^ (stored.owner << 19)
        ^ SEAL_SEED;
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A free block's size word (without `PREV_FREE`).
#[inline(always)]
fn free_word(addr: usize, size: usize) -> u64 {
    size as u64 | (mix(addr, size as u64, &Stored::NONE) & FREE_SEAL)
}

/// A used block's tag word and size word (without `PREV_FREE`).
#[inline(always)]
fn used_words(addr: usize, size: usize, pad: usize, slack: usize, stored: &Stored) -> (u64, u64) {
    debug_assert!(slack <= MAX_SLACK && pad / GRAIN <= 7);
    let size_word = size as u64
        | USED
        | if stored.wide { WIDE } else { 0 }
        | ((pad / GRAIN) as u64) << PAD_SHIFT
        | (slack as u64) << SLACK_SHIFT;
    let h = mix(addr, size_word, stored);
    (
        stored.word | ((h << 15) & TAG_SEAL),
        size_word | (h & USED_SEAL),
    )
}

/// Whether a used block's words carry the seal they should.
#[inline(always)]
fn used_seal_ok(addr: usize, size_word: u64, tag_word: u64, stored: &Stored) -> bool {
    let h = mix(addr, size_word & !(USED_SEAL | PREV_FREE), stored);
    ((size_word ^ h) & USED_SEAL) | ((tag_word ^ (h << 15)) & TAG_SEAL) == 0
}

impl Heap {
    /// A heap with no region: allocations fail, frees are rejected.
    pub const fn empty() -> Self {
        Self {
            mem: Region::empty(),
            lists: FreeLists::new(),
            first: 0,
            sentinel: 0,
            max: 0,
            red_zone: 0,
            corruption: None,
            nr_used: 0,
            nr_free: 0,
            used_bytes: 0,
            free_bytes: 0,
        }
    }

    /// A heap over `[start, end)` that may grow up to `max`.
    ///
    /// The region must hold at least [`MIN_REGION_BYTES`] and span less
    /// than 512 GiB.
    ///
    /// # Safety
    ///
    /// 1. `[start, end)` is valid for reads and writes and initialized
    ///    (any values) for as long as the heap is used;
    /// 2. nothing but the heap reads or writes it meanwhile, except payloads
    ///    the heap hands out, through the pointers it hands out;
    /// 3. `start`'s provenance covers `[start, max)`.
    pub unsafe fn new(
        start: *mut u8,
        end: usize,
        max: usize,
        config: HeapConfig,
    ) -> Result<Self, HeapError> {
        let base = start.addr();
        if end < base || max < end || max - base >= MAX_BLOCK {
            return Err(HeapError::InvalidRegion);
        }
        let first = align_up(base, GRAIN);
        let limit = end & !(GRAIN - 1);
        if end - base < MIN_REGION_BYTES || limit < first + MIN_BLOCK + HEADER {
            return Err(HeapError::InvalidRegion);
        }
        let mut heap = Self::empty();
        // SAFETY: obligations 1 and 2 of `Region::new` are this function's
        // 1 and 2; 3 holds because `max - base` did not overflow above.
        heap.mem = unsafe { Region::new(start, end - base) };
        heap.first = first;
        heap.max = max;
        heap.red_zone = if config.red_zones { RED_ZONE_BYTES } else { 0 };
        heap.sentinel = limit - HEADER;
        heap.make_free(first, heap.sentinel - first, false);
        heap.write_sentinel(heap.sentinel, true);
        Ok(heap)
    }

    /// The bookkeeping of this heap for a byte-identical copy of its
    /// region at the same addresses, as a forked address space holds: the
    /// copy and the original then evolve independently.
    ///
    /// # Safety
    ///
    /// The obligations of [`new`](Self::new) hold for the copy's region,
    /// which must hold exactly the bytes of this heap's region when the copy
    /// is made.
    pub unsafe fn duplicate(&self) -> Self {
        Self {
            mem: self.mem.clone(),
            lists: self.lists.clone(),
            first: self.first,
            sentinel: self.sentinel,
            max: self.max,
            red_zone: self.red_zone,
            corruption: self.corruption,
            nr_used: self.nr_used,
            nr_free: self.nr_free,
            used_bytes: self.used_bytes,
            free_bytes: self.free_bytes,
        }
    }

    /// Address of the region's first byte.
    pub fn start(&self) -> usize {
        self.mem.start()
    }

    /// Address one past the region's last byte.
    pub fn end(&self) -> usize {
        self.mem.start() + self.mem.len()
    }

    /// How far the region may grow.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether payloads are followed by red zones.
    pub fn red_zones(&self) -> bool {
        self.red_zone != 0
    }

    /// Extends the region to `new_end`; the new bytes join the last block
    /// if it is free, or form a new free block.
    ///
    /// # Safety
    ///
    /// `[end, new_end)` satisfies the obligations of [`Heap::new`].
    pub unsafe fn grow(&mut self, new_end: usize) -> Result<(), HeapError> {
        let old_end = self.end();
        if self.sentinel == 0 || new_end > self.max || new_end <= old_end {
            return Err(HeapError::InvalidRegion);
        }
        let new_sentinel = (new_end & !(GRAIN - 1)) - HEADER;
        self.check_sentinel()?;
        let last = if self.mem.read(self.sentinel + SIZE) & PREV_FREE != 0 {
            Some(
                self.free_below(self.sentinel)
                    .ok_or_else(|| self.corrupt_below(self.sentinel))?,
            )
        } else {
            None
        };
        let start = last.map_or(self.sentinel, |b| b.addr);
        if new_sentinel < start + MIN_BLOCK {
            return Err(HeapError::InvalidRegion);
        }
        // SAFETY: the caller vouches for `[old_end, new_end)`; the rest of
        // the range was already the region's.
        unsafe { self.mem.set_len(new_end - self.mem.start()) };
        if let Some(b) = last {
            self.unlink(&b);
            // the old sentinel is now inside a free block: make sure it no
            // longer reads as a used header
            self.mem.write(self.sentinel + SIZE, 0);
        }
        self.make_free(start, new_sentinel - start, false);
        self.sentinel = new_sentinel;
        self.write_sentinel(new_sentinel, true);
        Ok(())
    }

    /// The smallest region end at which an allocation of `size` bytes
    /// aligned to `align` surely succeeds (whatever its tag), for an owner
    /// about to grow the heap; [`HeapError::OutOfMemory`] if that is beyond
    /// `max`.
    pub fn grow_target(&self, size: usize, align: usize) -> Result<usize, HeapError> {
        let req = self.request(size, align, HEADER + WIDE_TAG_BYTES)?;
        if self.sentinel == 0 {
            return Err(HeapError::OutOfMemory);
        }
        let class = search_class(req.search).ok_or(HeapError::OutOfMemory)?;
        let want = class_min(class).max(req.search);
        let sentinel_word = self.mem.read(self.sentinel + SIZE);
        let have = if sentinel_word & PREV_FREE != 0 {
            self.free_below(self.sentinel)
                .ok_or_else(|| self.corrupt_below(self.sentinel))?
                .size
        } else {
            0
        };
        let target = align_up(self.end() + want.saturating_sub(have), GRAIN);
        if target > self.max {
            return Err(HeapError::OutOfMemory);
        }
        Ok(target)
    }

    /// Allocates `size` bytes aligned to `align` (a power of two) for `tag`.
    #[inline]
    pub fn alloc(
        &mut self,
        size: usize,
        align: usize,
        tag: BlockTag,
    ) -> Result<NonNull<u8>, HeapError> {
        self.alloc_stored(size, align, &Stored::of(tag))
    }

    /// Allocates like [`Heap::alloc`] and zeroes the payload.
    pub fn alloc_zeroed(
        &mut self,
        size: usize,
        align: usize,
        tag: BlockTag,
    ) -> Result<NonNull<u8>, HeapError> {
        let p = self.alloc(size, align, tag)?;
        self.mem.fill(p.as_ptr().addr(), size, 0);
        Ok(p)
    }

    /// Allocates like [`Heap::alloc`]; when the region is full, asks `grow`
    /// for more memory once and retries.
    ///
    /// `grow` gets the smallest region end that makes the allocation
    /// succeed ([`Heap::grow_target`]) and returns the end up to which it
    /// has provided memory (at least that, at most `max`), or `None`.
    ///
    /// # Safety
    ///
    /// Every end `grow` returns satisfies the safety contract of
    /// [`Heap::grow`].
    pub unsafe fn alloc_or_grow(
        &mut self,
        size: usize,
        align: usize,
        tag: BlockTag,
        grow: impl FnOnce(usize) -> Option<usize>,
    ) -> Result<NonNull<u8>, HeapError> {
        match self.alloc(size, align, tag) {
            Err(HeapError::OutOfMemory) => {}
            result => return result,
        }
        let target = self.grow_target(size, align)?;
        let new_end = grow(target).ok_or(HeapError::OutOfMemory)?;
        // SAFETY: this function's contract.
        unsafe { self.grow(new_end)? };
        self.alloc(size, align, tag)
    }

    /// Resizes like [`Heap::realloc`]; when the region is full, asks `grow`
    /// for more memory once and retries, as [`Heap::alloc_or_grow`] does.
    ///
    /// # Safety
    ///
    /// Every end `grow` returns satisfies the safety contract of
    /// [`Heap::grow`].
    pub unsafe fn realloc_or_grow(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
        grow: impl FnOnce(usize) -> Option<usize>,
    ) -> Result<NonNull<u8>, HeapError> {
        match self.realloc(ptr, new_size, align) {
            Err(HeapError::OutOfMemory) => {}
            result => return result,
        }
        let target = self.grow_target(new_size, align)?;
        let new_end = grow(target).ok_or(HeapError::OutOfMemory)?;
        // SAFETY: this function's contract.
        unsafe { self.grow(new_end)? };
        self.realloc(ptr, new_size, align)
    }

    /// Frees the block whose payload `ptr` points to.
    #[inline]
    pub fn free(&mut self, ptr: NonNull<u8>) -> Result<(), HeapError> {
        self.free_sized(ptr).map(|_| ())
    }

    /// Frees like [`Heap::free`] and returns the bytes its owner had
    /// requested, for callers that report frees, from the one validation
    /// the free does anyway.
    #[inline]
    pub fn free_sized(&mut self, ptr: NonNull<u8>) -> Result<usize, HeapError> {
        let block = self.used_block(ptr.as_ptr().addr())?;
        self.check_red_zone(&block)?;
        let requested = block.requested();
        self.release(&block).map(|()| requested)
    }

    /// Resizes the block at `ptr` to `new_size` bytes aligned to `align`,
    /// in place when it shrinks or the next block is free and large enough,
    /// otherwise by moving it (keeping its tag). On error the block is
    /// unchanged.
    #[inline]
    pub fn realloc(
        &mut self,
        ptr: NonNull<u8>,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, HeapError> {
        let p = ptr.as_ptr().addr();
        let block = self.used_block(p)?;
        self.check_red_zone(&block)?;
        let lead = if block.wide() {
            HEADER + WIDE_TAG_BYTES
        } else {
            HEADER
        };
        let req = self.request(new_size, align, lead)?;
        if p.is_multiple_of(req.align) {
            let need = block_size(block.pad(), req.body);
            if need <= block.size() {
                self.shrink_in_place(&block, need, new_size)?;
                return Ok(ptr);
            }
            if self.grow_in_place(&block, need, new_size)? {
                return Ok(ptr);
            }
        }
        self.move_block(&block, new_size, align)
    }

    /// The block whose payload `ptr` points to, validated like a free.
    pub fn block_of(&self, ptr: NonNull<u8>) -> Result<BlockInfo, HeapError> {
        let b = self.used_block(ptr.as_ptr().addr())?;
        Ok(BlockInfo {
            addr: b.addr(),
            size: b.size(),
            state: BlockState::Used,
            payload: b.payload(),
            requested: b.requested(),
            tag: self.stored_of(&b).tag(),
        })
    }

    /// The first damaged free block an allocation came across and stepped
    /// around, if any (sticky). [`Heap::check`] reports damage until it is
    /// repaired.
    pub fn corruption(&self) -> Option<HeapError> {
        self.corruption
    }

    /// Bytes requested by the owners of all used blocks.
    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }

    /// Bytes in free blocks, headers included.
    pub fn free_bytes(&self) -> usize {
        self.free_bytes
    }

    /// Block counts and byte totals.
    pub fn stats(&self) -> HeapStats {
        let region_bytes = self.mem.len();
        HeapStats {
            region_bytes,
            total_blocks: self.nr_used + self.nr_free,
            used_blocks: self.nr_used,
            free_blocks: self.nr_free,
            largest_free: self.largest_free(),
            used_bytes: self.used_bytes,
            free_bytes: self.free_bytes,
            overhead_bytes: region_bytes - self.used_bytes - self.free_bytes,
        }
    }

    /// Every block from the region's start to the sentinel, in address
    /// order. A block whose header fails validation ends the walk with an
    /// error.
    pub fn walk(&self) -> Walk<'_> {
        Walk {
            heap: self,
            at: self.first,
            failed: false,
        }
    }

    /// The block containing `addr`, by walking the heap.
    pub fn find(&self, addr: usize) -> Option<BlockInfo> {
        self.walk()
            .map_while(Result::ok)
            .find(|b| (b.addr..b.addr + b.size).contains(&addr))
    }

    /// Verifies every invariant: each header's seal and size, footers,
    /// `PREV_FREE` flags, pad markers, red zones, that no two free blocks
    /// are adjacent, that the free lists hold exactly the free blocks in
    /// their classes with consistent links and bitmaps, and that the
    /// counters match.
    pub fn check(&self) -> Result<(), HeapError> {
        if self.sentinel == 0 {
            return Ok(());
        }
        let (mut nr_used, mut nr_free, mut used_bytes, mut free_bytes) = (0, 0, 0, 0);
        let mut prev_free = false;
        let mut at = self.first;
        while at < self.sentinel {
            let info = self.block_info(at)?;
            let size_word = self.mem.read(at + SIZE);
            if (size_word & PREV_FREE != 0) != prev_free {
                return inconsistent(at, "PREV_FREE flag disagrees with the block below");
            }
            match info.state {
                BlockState::Free => {
                    if prev_free {
                        return inconsistent(at, "two adjacent free blocks");
                    }
                    if self.mem.read(at + info.size - 8) != info.size as u64 {
                        return inconsistent(at, "free block footer differs from its size");
                    }
                    nr_free += 1;
                    free_bytes += info.size;
                }
                BlockState::Used => {
                    let block = self.used_block(info.payload)?;
                    if block.addr() != at {
                        return inconsistent(at, "payload does not lead back to its header");
                    }
                    self.check_red_zone(&block)?;
                    nr_used += 1;
                    used_bytes += info.requested;
                }
            }
            prev_free = info.state == BlockState::Free;
            at += info.size;
        }
        if at != self.sentinel {
            return inconsistent(at, "blocks overrun the sentinel");
        }
        self.check_sentinel()?;
        if (self.mem.read(at + SIZE) & PREV_FREE != 0) != prev_free {
            return inconsistent(at, "sentinel PREV_FREE flag disagrees with the last block");
        }
        if (nr_used, used_bytes) != (self.nr_used, self.used_bytes) {
            return inconsistent(self.first, "used block counters differ from the blocks");
        }
        if (nr_free, free_bytes) != (self.nr_free, self.free_bytes) {
            return inconsistent(self.first, "free block counters differ from the blocks");
        }
        self.check_free_lists()
    }
}

/// Iterator over a heap's blocks; see [`Heap::walk`].
pub struct Walk<'a> {
    heap: &'a Heap,
    at: usize,
    failed: bool,
}

impl Iterator for Walk<'_> {
    type Item = Result<BlockInfo, HeapError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.heap.sentinel {
            return None;
        }
        match self.heap.block_info(self.at) {
            Ok(info) => {
                self.at += info.size;
                Some(Ok(info))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

fn inconsistent<T>(addr: usize, what: &'static str) -> Result<T, HeapError> {
    Err(HeapError::Inconsistent { addr, what })
}

// Internals: validation (reads only) first, then the writes.
impl Heap {
    #[inline(always)]
    fn request(&self, size: usize, align: usize, lead: usize) -> Result<Request, HeapError> {
        if !align.is_power_of_two() {
            return Err(HeapError::InvalidLayout);
        }
        if size >= MAX_BLOCK || align >= MAX_BLOCK {
            return Err(HeapError::OutOfMemory);
        }
        let align = align.max(GRAIN);
        let body = size + self.red_zone;
        let span = body.next_multiple_of(GRAIN).max(MIN_BLOCK - HEADER);
        let search = lead + span + (align - GRAIN);
        if search >= MAX_BLOCK {
            return Err(HeapError::OutOfMemory);
        }
        Ok(Request {
            size,
            align,
            body,
            span,
            lead,
            search,
        })
    }

    #[inline(always)]
    fn alloc_stored(
        &mut self,
        size: usize,
        align: usize,
        stored: &Stored,
    ) -> Result<NonNull<u8>, HeapError> {
        let req = self.request(size, align, stored.lead())?;
        let (block, class, at_head) = self.take_fit(&req)?;
        Ok(self.place(block, class, at_head, &req, stored))
    }

    /// Whether `addr` could be a block header other than the sentinel.
    #[inline(always)]
    fn is_block_addr(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.first) < self.sentinel - self.first && addr.is_multiple_of(GRAIN)
    }

    /// The free block at `addr` with words `next` and `size_word`, after
    /// checking its header and links.
    #[inline(always)]
    fn free_block(&self, addr: usize, next: u64, size_word: u64) -> Option<FreeBlock> {
        let size = (size_word & SIZE_MASK) as usize;
        if size_word & !PREV_FREE != free_word(addr, size)
            || size < MIN_BLOCK
            || size > self.sentinel - addr
        {
            return None;
        }
        let next = next as usize;
        let prev = self.mem.read(addr + PREV_LINK) as usize;
        // without branches (0 is no block address)
        let heads = self.lists.head(class_of(size)) == addr;
        let linked = ((next == 0) | self.is_block_addr(next))
            & ((prev == 0 && heads) | self.is_block_addr(prev));
        linked.then_some(FreeBlock { addr, size })
    }

    /// The free block at `addr`, if its header says it is one and it
    /// validates.
    #[inline(always)]
    fn free_block_at(&self, addr: usize) -> Option<FreeBlock> {
        let [next, size_word] = self.mem.read_words(addr);
        self.free_block(addr, next, size_word)
    }

    /// The head of a free list, after checking its header and next link
    /// (it has no previous one).
    #[inline(always)]
    fn list_head(&self, addr: usize) -> Option<FreeBlock> {
        let [next, size_word] = self.mem.read_words(addr);
        let size = (size_word & SIZE_MASK) as usize;
        let next = next as usize;
        let valid = size_word & !PREV_FREE == free_word(addr, size)
            && size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && ((next == 0) | self.is_block_addr(next));
        valid.then_some(FreeBlock { addr, size })
    }

    /// The free block just below `addr`, found through its footer.
    #[inline(always)]
    fn free_below(&self, addr: usize) -> Option<FreeBlock> {
        let size = self.mem.read(addr - 8) as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            return None;
        }
        self.free_block_at(addr - size).filter(|b| b.size == size)
    }

    /// The used block whose payload is at `p`, after checking its header.
    #[inline(always)]
    fn used_block(&self, p: usize) -> Result<UsedBlock, HeapError> {
        match self.try_used_block(p) {
            Some(block) => Ok(block),
            None => Err(self.used_block_error(p)),
        }
    }

    /// The fast path of [`Heap::used_block`]: `None` for anything amiss.
    #[inline(always)]
    fn try_used_block(&self, p: usize) -> Option<UsedBlock> {
        if !p.is_multiple_of(GRAIN) || p < self.first + HEADER || p >= self.sentinel {
            return None;
        }
        let addr = p - HEADER;
        let [tag_word, word] = self.mem.read_words(addr);
        if word & (USED | WIDE | PAD_FIELD) != USED {
            return self.try_padded_block(p, word);
        }
        // the size word of a block without pad
        let stored = Stored::compact(tag_word & !TAG_SEAL);
        self.validate_used(addr, word, tag_word, 0, &stored)
    }

    /// [`Heap::try_used_block`] for a payload behind a pad: `marker` is the
    /// word below it.
    #[inline(never)]
    fn try_padded_block(&self, p: usize, marker: u64) -> Option<UsedBlock> {
        let pad = (marker & PAD_BITS) as usize;
        if (marker as u32) & !(PAD_BITS as u32) != PAD_MAGIC
            || pad == 0
            || p - self.first < HEADER + pad
        {
            return None;
        }
        let addr = p - HEADER - pad;
        let [tag_word, size_word] = self.mem.read_words(addr);
        if size_word & USED == 0 || size_word & PAD_FIELD != ((pad / GRAIN) as u64) << PAD_SHIFT {
            return None;
        }
        let stored = if size_word & WIDE != 0 {
            if pad < WIDE_TAG_BYTES || tag_word & !TAG_SEAL != 0 {
                return None;
            }
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(addr + WIDE_KEY),
                owner: marker >> 32,
            }
        } else {
            if pad > MAX_PAD || marker >> 32 != MARKER_HIGH {
                return None;
            }
            Stored::compact(tag_word & !TAG_SEAL)
        };
        self.validate_used(addr, size_word, tag_word, pad, &stored)
    }

    /// Checks a used block's seal and sizes.
    #[inline(always)]
    fn validate_used(
        &self,
        addr: usize,
        size_word: u64,
        tag_word: u64,
        pad: usize,
        stored: &Stored,
    ) -> Option<UsedBlock> {
        let size = (size_word & SIZE_MASK) as usize;
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        let valid = used_seal_ok(addr, size_word, tag_word, stored)
            && size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && HEADER + pad + slack <= size;
        if !valid {
            return None;
        }
        Some(UsedBlock {
            at: NonZeroUsize::new(addr)?,
            word: size_word,
        })
    }

    /// The tag of a validated used block.
    #[inline(always)]
    fn stored_of(&self, block: &UsedBlock) -> Stored {
        if block.wide() {
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(block.addr() + WIDE_KEY),
                owner: self.mem.read(block.payload() - 8) >> 32,
            }
        } else {
            Stored::compact(self.mem.read(block.addr() + TAG) & !TAG_SEAL)
        }
    }

    /// The error for a free block below `addr` that fails validation.
    #[cold]
    fn corrupt_below(&self, addr: usize) -> HeapError {
        let size = self.mem.read(addr - 8) as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            HeapError::CorruptHeader { addr }
        } else {
            HeapError::CorruptHeader { addr: addr - size }
        }
    }

    /// Why [`Heap::try_used_block`] rejected `p`.
    #[cold]
    #[inline(never)]
    fn used_block_error(&self, p: usize) -> HeapError {
        let invalid = HeapError::InvalidPointer { addr: p };
        if self.sentinel == 0
            || !p.is_multiple_of(GRAIN)
            || p < self.first + HEADER
            || p >= self.sentinel
        {
            return invalid;
        }
        let word = self.mem.read(p - 8);
        let pad = if word & USED != 0 {
            0
        } else if (word as u32) & !(PAD_BITS as u32) == PAD_MAGIC {
            let pad = (word & PAD_BITS) as usize;
            if pad == 0 || p - self.first < HEADER + pad {
                return invalid;
            }
            pad
        } else {
            return self.classify_unused(p);
        };
        let addr = p - HEADER - pad;
        let size_word = self.mem.read(addr + SIZE);
        if size_word & USED == 0 {
            return self.classify_unused(p);
        }
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        let size = (size_word & SIZE_MASK) as usize;
        let plausible = size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN == pad
            && HEADER + pad + slack <= size;
        if plausible {
            HeapError::CorruptHeader { addr }
        } else {
            invalid
        }
    }

    /// Why `p` has no used header in front of it: a free header there (or
    /// where a pad marker, since overwritten by a free-list link, would have
    /// led) means `p` was freed already.
    #[cold]
    fn classify_unused(&self, p: usize) -> HeapError {
        for pad in (0..=MAX_WIDE_PAD).step_by(GRAIN) {
            let Some(addr) = p.checked_sub(HEADER + pad) else {
                break;
            };
            if addr < self.first {
                break;
            }
            let size_word = self.mem.read(addr + SIZE);
            let size = (size_word & SIZE_MASK) as usize;
            if size_word & !PREV_FREE == free_word(addr, size)
                && size > HEADER + pad
                && size <= self.sentinel - addr
            {
                return HeapError::DoubleFree { addr: p };
            }
        }
        HeapError::InvalidPointer { addr: p }
    }

    #[inline(always)]
    fn check_red_zone(&self, block: &UsedBlock) -> Result<(), HeapError> {
        if self.red_zone == 0 {
            return Ok(());
        }
        self.check_red_zone_bytes(block)
    }

    #[inline(never)]
    fn check_red_zone_bytes(&self, block: &UsedBlock) -> Result<(), HeapError> {
        let from = block.payload() + block.requested();
        let len = block.addr() + block.size() - from;
        match self.mem.first_mismatch(from, len, RED_ZONE_BYTE) {
            None => Ok(()),
            Some(at) => Err(HeapError::RedZoneOverflow {
                addr: block.payload(),
                offset: block.requested() + at,
            }),
        }
    }

    fn check_sentinel(&self) -> Result<(), HeapError> {
        let addr = self.sentinel;
        let (tag_word, size_word) = sentinel_words(addr);
        if self.mem.read(addr + SIZE) & !PREV_FREE != size_word
            || self.mem.read(addr + TAG) != tag_word
        {
            return Err(HeapError::CorruptHeader { addr });
        }
        Ok(())
    }

    /// A good-fit free block for `req`: O(1) through the bitmaps, or a
    /// bounded scan of the classes the rounding skipped.
    ///
    /// A list whose head fails validation is skipped (and the corruption
    /// recorded) so one damaged block does not make its whole class
    /// unusable; it is reported if nothing else fits.
    ///
    /// Returns the block, its class and whether it heads its list.
    #[inline(always)]
    fn take_fit(&mut self, req: &Request) -> Result<(FreeBlock, Class, bool), HeapError> {
        let stop = search_class(req.search);
        if let Some(class) = stop.and_then(|c| self.lists.first_non_empty(c)) {
            let head = self.lists.head(class);
            if let Some(block) = self.list_head(head) {
                debug_assert!(block.size >= req.search);
                return Ok((block, class, true));
            }
        }
        self.take_fit_slow(req, stop)
    }

    /// [`Heap::take_fit`] when the first list it tried was empty or damaged.
    #[cold]
    #[inline(never)]
    fn take_fit_slow(
        &mut self,
        req: &Request,
        stop: Option<Class>,
    ) -> Result<(FreeBlock, Class, bool), HeapError> {
        let mut from = stop;
        while let Some(class) = from.and_then(|c| self.lists.first_non_empty(c)) {
            let head = self.lists.head(class);
            match self.list_head(head) {
                Some(block) => {
                    debug_assert!(block.size >= req.search);
                    return Ok((block, class, true));
                }
                None => {
                    self.note_corruption(HeapError::CorruptHeader { addr: head });
                    from = class.next();
                }
            }
        }
        self.scan_fit(req, stop)
            .map(|block| (block, class_of(block.size), false))
    }

    /// Tries up to [`SCAN_LIMIT`] blocks in the classes below `stop` that
    /// may still hold a block large enough for `req`, largest class first:
    /// the class `req.search` falls in, then (for aligned requests, whose
    /// actual gap may be smaller than the worst case) the classes below it.
    #[cold]
    fn scan_fit(&mut self, req: &Request, stop: Option<Class>) -> Result<FreeBlock, HeapError> {
        let mut budget = SCAN_LIMIT;
        let mut error = HeapError::OutOfMemory;
        let lowest = class_of(block_size(req.lead - HEADER, req.body));
        let mut from = match stop {
            Some(stop) if stop <= class_of(req.search) => stop.prev(),
            _ => Some(class_of(req.search)),
        };
        while let Some(class) = from.and_then(|c| self.lists.last_non_empty_up_to(c)) {
            if class < lowest || budget == 0 {
                break;
            }
            let mut at = self.lists.head(class);
            while at != 0 && budget > 0 {
                budget -= 1;
                match self.free_block_at(at) {
                    Some(block) if fits(block.addr, block.size, req) => return Ok(block),
                    Some(_) => at = self.mem.read(at + TAG) as usize,
                    None => {
                        error = HeapError::CorruptHeader { addr: at };
                        self.note_corruption(error);
                        break;
                    }
                }
            }
            from = class.prev();
        }
        if let Some(e) = self.corruption.filter(|_| error == HeapError::OutOfMemory) {
            error = e;
        }
        Err(error)
    }

    #[cold]
    fn note_corruption(&mut self, error: HeapError) {
        self.corruption.get_or_insert(error);
    }

    fn largest_free(&self) -> usize {
        let Some(class) = self.lists.last_non_empty() else {
            return 0;
        };
        let mut largest = 0;
        let mut at = self.lists.head(class);
        for _ in 0..self.nr_free {
            if !self.is_block_addr(at) {
                break;
            }
            largest = largest.max((self.mem.read(at + SIZE) & SIZE_MASK) as usize);
            at = self.mem.read(at + TAG) as usize;
        }
        largest
    }

    /// Decodes and validates the header at `addr` for a walk.
    fn block_info(&self, addr: usize) -> Result<BlockInfo, HeapError> {
        let corrupt = HeapError::CorruptHeader { addr };
        let size_word = self.mem.read(addr + SIZE);
        let size = (size_word & SIZE_MASK) as usize;
        if size < MIN_BLOCK || size > self.sentinel - addr {
            return Err(corrupt);
        }
        if size_word & USED == 0 {
            if size_word & !PREV_FREE != free_word(addr, size) {
                return Err(corrupt);
            }
            return Ok(BlockInfo {
                addr,
                size,
                state: BlockState::Free,
                payload: addr + HEADER,
                requested: 0,
                tag: BlockTag::default(),
            });
        }
        let pad = ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN;
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        if HEADER + pad + slack > size {
            return Err(corrupt);
        }
        let tag_word = self.mem.read(addr + TAG);
        let payload = addr + HEADER + pad;
        let stored = if size_word & WIDE != 0 {
            if pad < WIDE_TAG_BYTES {
                return Err(corrupt);
            }
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(addr + WIDE_KEY),
                owner: self.mem.read(payload - 8) >> 32,
            }
        } else {
            if pad > MAX_PAD {
                return Err(corrupt);
            }
            Stored::compact(tag_word & !TAG_SEAL)
        };
        if (stored.wide && tag_word & !TAG_SEAL != 0)
            || !used_seal_ok(addr, size_word, tag_word, &stored)
        {
            return Err(corrupt);
        }
        Ok(BlockInfo {
            addr,
            size,
            state: BlockState::Used,
            payload,
            requested: size - HEADER - pad - slack,
            tag: stored.tag(),
        })
    }

    fn check_free_lists(&self) -> Result<(), HeapError> {
        if let Some(class) = self.lists.bitmap_mismatch() {
            return inconsistent(
                self.lists.head(class),
                "free-list bitmap disagrees with lists",
            );
        }
        let mut listed = 0;
        for class in FreeLists::classes() {
            let mut prev = 0;
            let mut at = self.lists.head(class);
            while at != 0 {
                listed += 1;
                if listed > self.nr_free {
                    return inconsistent(at, "free lists hold more entries than free blocks");
                }
                if !self.is_block_addr(at) {
                    return inconsistent(at, "free-list link outside the heap");
                }
                let info = self.block_info(at)?;
                if info.state != BlockState::Free {
                    return inconsistent(at, "used block in a free list");
                }
                if class_of(info.size) != class {
                    return inconsistent(at, "free block filed under the wrong class");
                }
                if self.mem.read(at + PREV_LINK) as usize != prev {
                    return inconsistent(at, "free-list back link broken");
                }
                prev = at;
                at = self.mem.read(at + TAG) as usize;
            }
        }
        if listed != self.nr_free {
            return inconsistent(self.first, "free blocks missing from the free lists");
        }
        Ok(())
    }

    // Writes. Callers have validated everything these rely on.

    /// Writes a free block's header and footer and files it.
    #[inline(always)]
    fn make_free(&mut self, addr: usize, size: usize, prev_free: bool) {
        let size_word = free_word(addr, size) | if prev_free { PREV_FREE } else { 0 };
        let head = self.link_in(addr, size);
        self.mem.write_words(addr, [head as u64, size_word, 0]);
        self.mem.write(addr + size - 8, size as u64);
    }

    /// Files the block at `addr` at the head of its list; returns the old
    /// head, for the caller to write as the block's next link (and 0 as
    /// its previous).
    #[inline(always)]
    fn link_in(&mut self, addr: usize, size: usize) -> usize {
        let class = class_of(size);
        let head = self.lists.head(class);
        // without a branch: an empty list has the block's own link written,
        // which the caller overwrites
        let old = if head != 0 { head } else { addr };
        self.mem.write(old + PREV_LINK, addr as u64);
        self.lists.push_head(class, addr);
        self.nr_free += 1;
        self.free_bytes += size;
        head
    }

    /// Gives a free block a new size, keeping its address; it changes
    /// lists only if it changes class.
    #[inline(always)]
    fn refile(&mut self, block: &FreeBlock, size: usize) {
        let (addr, old) = (block.addr, block.size);
        // the block below a free block is used: PREV_FREE is clear
        let size_word = free_word(addr, size);
        if class_of(old) == class_of(size) {
            self.free_bytes = self.free_bytes - old + size;
            self.mem.write(addr + SIZE, size_word);
        } else {
            self.unlink(block);
            let head = self.link_in(addr, size);
            self.mem.write_words(addr, [head as u64, size_word, 0]);
        }
        self.mem.write(addr + size - 8, size as u64);
    }

    #[inline(always)]
    fn unlink(&mut self, block: &FreeBlock) {
        // the links as they are now: an earlier write of the same operation
        // may have changed them since `block` was validated
        let [next, _, prev] = self.mem.read_words(block.addr);
        let (next, prev) = (next as usize, prev as usize);
        if prev != 0 {
            self.mem.write(prev + TAG, next as u64);
        } else {
            self.lists.set_head(class_of(block.size), next);
        }
        // without a branch: a last block has its own link written, which
        // every caller overwrites or leaves inside a block it reuses
        let after = if next != 0 { next } else { block.addr };
        self.mem.write(after + PREV_LINK, prev as u64);
        self.nr_free -= 1;
        self.free_bytes -= block.size;
    }

    /// [`Heap::unlink`] for a block whose class is known, and which heads
    /// its list if `at_head`.
    #[inline(always)]
    fn unlink_known(&mut self, block: &FreeBlock, class: Class, at_head: bool) {
        if !at_head {
            return self.unlink(block);
        }
        let next = self.mem.read(block.addr + TAG) as usize;
        self.lists.set_head(class, next);
        // as in `unlink`
        let after = if next != 0 { next } else { block.addr };
        self.mem.write(after + PREV_LINK, 0);
        self.nr_free -= 1;
        self.free_bytes -= block.size;
    }

    /// [`Heap::refile`] for a block whose class is known, and which heads
    /// its list if `at_head`.
    #[inline(always)]
    fn refile_known(&mut self, block: &FreeBlock, class: Class, at_head: bool, size: usize) {
        let addr = block.addr;
        let size_word = free_word(addr, size);
        let new_class = class_of(size);
        if new_class == class {
            self.free_bytes = self.free_bytes - block.size + size;
            self.mem.write(addr + SIZE, size_word);
        } else {
            self.unlink_known(block, class, at_head);
            let head = self.link_in(addr, size);
            self.mem.write_words(addr, [head as u64, size_word, 0]);
        }
        self.mem.write(addr + size - 8, size as u64);
    }

    fn write_sentinel(&mut self, addr: usize, prev_free: bool) {
        let (tag_word, size_word) = sentinel_words(addr);
        self.mem.write(addr + TAG, tag_word);
        self.mem.write(
            addr + SIZE,
            size_word | if prev_free { PREV_FREE } else { 0 },
        );
    }

    /// Writes a used block's header, pad marker, wide tag and red zone.
    #[inline(always)]
    fn write_used(
        &mut self,
        addr: usize,
        size: usize,
        prev_free: bool,
        pad: usize,
        requested: usize,
        stored: &Stored,
    ) {
        let slack = size - HEADER - pad - requested;
        let (tag_word, size_word) = used_words(addr, size, pad, slack, stored);
        let size_word = size_word | if prev_free { PREV_FREE } else { 0 };
        let payload = addr + HEADER + pad;
        // the pad marker, without a branch: with no pad it lands on the size
        // word, written next
        let marker = stored.marker_high() << 32 | u64::from(PAD_MAGIC) | pad as u64;
        self.mem
            .write(if pad != 0 { payload - 8 } else { addr + SIZE }, marker);
        if stored.wide {
            self.mem.write(addr + WIDE_KEY, stored.key);
        }
        self.mem.write_words(addr, [tag_word, size_word]);
        if self.red_zone != 0 {
            self.mem.fill(payload + requested, slack, RED_ZONE_BYTE);
        }
    }

    #[inline(always)]
    fn set_prev_free(&mut self, addr: usize, prev_free: bool) {
        let size_word = self.mem.read(addr + SIZE);
        let size_word = if prev_free {
            size_word | PREV_FREE
        } else {
            size_word & !PREV_FREE
        };
        self.mem.write(addr + SIZE, size_word);
    }

    /// Carves the allocation out of the top of `block`: the rest below
    /// keeps the block's address (and mostly its list), the rest above (an
    /// alignment gap) becomes a free block when large enough, and a rest too
    /// small for a block stays in the allocation as pad or slack.
    ///
    /// `block` is filed under `class`, at the head of its list if `at_head`.
    #[inline(always)]
    fn place(
        &mut self,
        block: FreeBlock,
        class: Class,
        at_head: bool,
        req: &Request,
        stored: &Stored,
    ) -> NonNull<u8> {
        let end = block.addr + block.size;
        let payload = (end - req.span) & !(req.align - 1);
        let header = payload - req.lead;
        debug_assert!(header >= block.addr);
        let above = payload + req.span;
        let below = header - block.addr;
        // the block first, while `class` and `at_head` still hold
        let (start, prev_free) = if below >= MIN_BLOCK {
            self.refile_known(&block, class, at_head, below);
            (header, true)
        } else {
            self.unlink_known(&block, class, at_head);
            (block.addr, false)
        };
        let used_end = if end - above >= MIN_BLOCK {
            self.make_free(above, end - above, false);
            above
        } else {
            self.set_prev_free(end, false);
            end
        };
        self.write_used(
            start,
            used_end - start,
            prev_free,
            payload - HEADER - start,
            req.size,
            stored,
        );
        self.nr_used += 1;
        self.used_bytes += req.size;
        self.mem.payload_ptr(payload)
    }

    /// Frees a validated used block, merging it with free neighbours.
    #[inline(always)]
    fn release(&mut self, block: &UsedBlock) -> Result<(), HeapError> {
        let next = block.addr() + block.size();
        let [next_link, next_word] = self.mem.read_words(next);
        let next_free = if next_word & USED == 0 {
            Some(
                self.free_block(next, next_link, next_word)
                    .ok_or(HeapError::CorruptHeader { addr: next })?,
            )
        } else {
            None
        };
        let below = if block.prev_free() {
            Some(
                self.free_below(block.addr())
                    .ok_or_else(|| self.corrupt_below(block.addr()))?,
            )
        } else {
            None
        };
        let mut size = block.size();
        if let Some(n) = next_free {
            self.unlink(&n);
            size += n.size;
        } else {
            self.mem.write(next + SIZE, next_word | PREV_FREE);
        }
        match below {
            Some(b) => {
                // leave a free header behind so a second free of this block
                // is recognised as one
                self.mem
                    .write(block.addr() + SIZE, free_word(block.addr(), block.size()));
                self.refile(&b, b.size + size);
            }
            None => self.make_free(block.addr(), size, false),
        }
        self.nr_used -= 1;
        self.used_bytes -= block.requested();
        Ok(())
    }

    /// Moves a block to a new allocation of `new_size` bytes, keeping its
    /// tag and contents.
    #[inline(never)]
    fn move_block(
        &mut self,
        block: &UsedBlock,
        new_size: usize,
        align: usize,
    ) -> Result<NonNull<u8>, HeapError> {
        let p = block.payload();
        let stored = self.stored_of(block);
        let new = self.alloc_stored(new_size, align, &stored)?;
        let q = new.as_ptr().addr();
        self.mem.copy(p, q, block.requested().min(new_size));
        // the allocation may have carved the free block below the old one
        let now = self.mem.read(block.addr() + SIZE);
        let old = UsedBlock {
            word: (block.word & !PREV_FREE) | (now & PREV_FREE),
            ..*block
        };
        match self.release(&old) {
            Ok(()) => Ok(new),
            Err(e) => {
                // leave the old block as it was
                let undo = self.used_block(q).and_then(|b| self.release(&b));
                debug_assert!(undo.is_ok());
                Err(e)
            }
        }
    }

    /// Shrinks (or keeps) a block to `need` bytes holding `requested`.
    #[inline(always)]
    fn shrink_in_place(
        &mut self,
        block: &UsedBlock,
        need: usize,
        requested: usize,
    ) -> Result<(), HeapError> {
        let next = block.addr() + block.size();
        let rest = block.size() - need;
        let [next_link, next_word] = self.mem.read_words(next);
        let next_free = if next_word & USED == 0 {
            Some(
                self.free_block(next, next_link, next_word)
                    .ok_or(HeapError::CorruptHeader { addr: next })?,
            )
        } else {
            None
        };
        let size = match next_free {
            // give the tail, however small, to the free block above
            Some(n) if rest > 0 => {
                self.unlink(&n);
                self.make_free(block.addr() + need, rest + n.size, false);
                need
            }
            None if rest >= MIN_BLOCK => {
                self.make_free(block.addr() + need, rest, false);
                self.mem.write(next + SIZE, next_word | PREV_FREE);
                need
            }
            _ => block.size(),
        };
        self.resize_used(block, size, requested);
        Ok(())
    }

    /// Grows a block into the free block above it, if that is enough.
    #[inline(always)]
    fn grow_in_place(
        &mut self,
        block: &UsedBlock,
        need: usize,
        requested: usize,
    ) -> Result<bool, HeapError> {
        let next = block.addr() + block.size();
        let [next_link, next_word] = self.mem.read_words(next);
        if next_word & USED != 0 || block.size() + ((next_word & SIZE_MASK) as usize) < need {
            return Ok(false);
        }
        let n = self
            .free_block(next, next_link, next_word)
            .ok_or(HeapError::CorruptHeader { addr: next })?;
        let total = block.size() + n.size;
        self.unlink(&n);
        let size = if total - need >= MIN_BLOCK {
            self.make_free(block.addr() + need, total - need, false);
            need
        } else {
            self.set_prev_free(block.addr() + total, false);
            total
        };
        self.resize_used(block, size, requested);
        Ok(true)
    }

    #[inline(always)]
    fn resize_used(&mut self, block: &UsedBlock, size: usize, requested: usize) {
        let stored = self.stored_of(block);
        self.write_used(
            block.addr(),
            size,
            block.prev_free(),
            block.pad(),
            requested,
            &stored,
        );
        self.used_bytes = self.used_bytes - block.requested() + requested;
    }
}

/// Whether a block at `addr` of `size` bytes can hold `req` (placed at its
/// top, as [`Heap::place`] does).
fn fits(addr: usize, size: usize, req: &Request) -> bool {
    size >= req.lead + req.span && ((addr + size - req.span) & !(req.align - 1)) >= addr + req.lead
}

/// The sentinel's tag word and size word (without `PREV_FREE`).
fn sentinel_words(addr: usize) -> (u64, u64) {
    used_words(
        addr,
        HEADER,
        0,
        0,
        &Stored::of(BlockTag::new(SENTINEL_OWNER, 0)),
    )
}
