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
//! Small blocks have bins in front of the lists, as a kernel's object
//! caches do: a freed block of up to 256 bytes with its payload right after
//! its header (no pad, compact tag) goes into the bin for its size, a LIFO
//! list of up to 64 blocks, without merging, and the next allocation that
//! needs exactly that size (and whose alignment the block's payload meets)
//! takes it back: a few header reads and writes each way, no neighbours,
//! no bitmaps. A binned block keeps a sealed header (a free block's seal
//! over its size and the `BINNED` bit, bit 2), so freeing it again is a
//! double free; to its neighbours it is still a used block, and the walks
//! report it as free. The bins are merged back into the lists when an
//! allocation finds nothing else (before [`HeapError::OutOfMemory`]) and
//! when the last used block is freed, so they never cost an allocation
//! that merging would have made possible.
//!
//! # Complexity
//!
//! | operation | time |
//! | --- | --- |
//! | [`Heap::alloc`] | O(1): a bin's first block, or two bit scans and a bounded number of header reads and writes; at most [`SCAN_LIMIT`] more blocks, and merging the bins back (at most 64 blocks per bin), when the O(1) search finds nothing |
//! | [`Heap::free`] | O(1): validate, then bin, or merge with both neighbours and relink; merging the bins back when the heap empties |
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
//! free and merged, so its footer is the word below this header); bit 2
//! `WIDE` in a used block (the tag is kept outside the header, see below),
//! `BINNED` in one that is not (it is in a bin); bits 3..39 the
//! block size in bytes, header included. A used block's size word holds
//! in bits 39..42 the pad in 8-byte units, in bits 42..48 the slack, and in
//! its top two bytes (bits 48..64) 16 bits of its seal; a free block's
//! holds 24 bits of seal in its top three bytes (bits 40..64).
//!
//! The tag word of a used block holds the tag in compact form, when it has
//! one: owner in bits 0..16 and key in bits 16..48, each sign-extended on
//! the way back, so owners that fit an `i16` and keys that fit an `i32`
//! (small numbers, and return addresses in a kernel image in the top 2 GiB)
//! are compact. Its top two bytes hold the other 16 bits of the seal. A
//! block whose tag is not compact is `WIDE`: its tag word is zero below the
//! seal, the 8 bytes after the header hold the key and the pad marker
//! (below) holds the owner, which costs [`WIDE_TAG_BYTES`] more per block.
//!
//! The seal is one multiply by an odd constant over the block's address,
//! its size word (without `PREV_FREE`, which neighbours flip and the seal
//! leaves out), its tag, compact or wide, and a secret drawn for each heap
//! when it is made: the top 32 bits of the product for a used block (split
//! between its two words), the top 24 of another for a free one. Checking
//! a header is one load, one multiply and one compare. Every field enters
//! the product at a whole-byte offset, so a change confined to one byte of
//! a header is a change to one byte of the multiplier's input, and for the
//! constant used every such change moves the product's top 32 bits (a test
//! checks all of them): any one-byte corruption of a header, other than a
//! flip of `PREV_FREE` alone, is always caught. A wider corruption passes
//! with probability 2^-32 (used) or 2^-24 (free). Hashing the address
//! and the secret means a header copied elsewhere, stale bytes inside
//! another block, or a header from another heap do not pass as a header.
//!
//! A used block: `header | pad | payload (the requested bytes) | slack`.
//! The pad is what is left below an aligned payload when it is too small
//! to be a free block (0..=24 bytes), plus the 16 bytes of a wide tag; when
//! non-zero its last word is a pad marker (a magic number and the pad
//! length in the low half, the magic again or a wide tag's owner in the
//! high half) so the header can be found from the payload pointer. Larger
//! gaps, below or above the payload, are free blocks. The slack (bytes
//! after the requested size, at least [`RED_ZONE_BYTES`] with red zones
//! on, at most 63) records the requested size exactly; with red zones it
//! is filled with [`RED_ZONE_BYTE`] and checked when the block is freed or
//! reallocated and by [`Heap::check`].
//!
//! A free block: `header | previous block in its free list (8) | ... |
//! footer: size (8)`. A binned block: `header (the next block in its bin,
//! and the size word) | ...`, no footer.
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
//! [`HeapError::CorruptHeader`]. A block freed into the free block below it
//! leaves its header behind with `USED` cleared and its seal kept, so a
//! second free of it is still a double free, whatever it merged with.
//! Everything an operation relies on (its block, the neighbours it merges
//! with, their free-list links) is validated before the first write, so an
//! operation that returns an error has changed nothing and the heap stays
//! usable. No value read from the region can make the heap touch memory
//! outside it: every address is range-checked when it is read (a payload
//! pointer, a size, a link, a footer), so the allocator's core then reads
//! and writes without checking again (see `allocator`), and debug builds
//! check every access once more. A payload overflow that forges a valid
//! seal is beyond detection.

mod allocator;
mod block;
mod raw;
mod tlsf;
mod walk;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use allocator::{HeapConfig, HeapError, MIN_REGION_BYTES, SCAN_LIMIT};
pub use block::{
    BlockTag, HEADER_BYTES, MIN_BLOCK_BYTES, RED_ZONE_BYTE, RED_ZONE_BYTES, SENTINEL_OWNER,
    WIDE_TAG_BYTES,
};
pub use walk::{BlockInfo, BlockState, HeapStats, Walk};

use raw::Region;
use tlsf::{Bins, FreeLists};

/// A heap over one region of memory.
pub struct Heap {
    mem: Region,
    lists: FreeLists,
    bins: Bins,
    /// First block (the region's start rounded up to 8).
    first: usize,
    /// The sentinel header; the region's usable end is `sentinel + HEADER`.
    /// 0 for a heap without a region.
    sentinel: usize,
    /// `(sentinel - first) / 8`: how many block addresses there are.
    nr_grains: usize,
    /// Key of used blocks' seals (the heap's secret).
    seal_key: u64,
    /// Key of free blocks' seals.
    free_key: u64,
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
