//! Looking at a heap without changing it: the block-by-block walk, the full
//! consistency check, the lookup of one block, and the statistics.
//!
//! Everything here only reads. The walk and the check take O(blocks) and
//! decode each header with `Heap::block_info` (in `block`); the counters
//! come from the allocator's bookkeeping.
#![forbid(unsafe_code)]

use core::ptr::NonNull;

use super::block::{BINNED, PREV_FREE, PREV_LINK, SIZE, SIZE_MASK, TAG, binned_size};
use super::tlsf::{Bins, FreeLists, class_of};
use super::{BlockTag, Heap, HeapError};

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

impl Heap {
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
    /// `PREV_FREE` flags, pad markers, red zones, that no two merged free
    /// blocks are adjacent, that the free lists hold exactly the merged free
    /// blocks in their classes with consistent links and bitmaps, that the
    /// bins hold exactly the binned blocks, and that the counters match.
    pub fn check(&self) -> Result<(), HeapError> {
        if self.sentinel == 0 {
            return Ok(());
        }
        let (mut nr_used, mut nr_free, mut used_bytes, mut free_bytes) = (0, 0, 0, 0);
        let mut nr_binned = 0;
        let mut prev_free = false;
        let mut at = self.first;
        while at < self.sentinel {
            let info = self.block_info(at)?;
            let size_word = self.mem.read(at + SIZE);
            if (size_word & PREV_FREE != 0) != prev_free {
                return inconsistent(at, "PREV_FREE flag disagrees with the block below");
            }
            let binned = info.state == BlockState::Free && size_word & BINNED != 0;
            match info.state {
                BlockState::Free if binned => {
                    nr_binned += 1;
                    nr_free += 1;
                    free_bytes += info.size;
                }
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
            prev_free = info.state == BlockState::Free && !binned;
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
        if nr_binned != self.bins.len() {
            return inconsistent(self.first, "binned blocks differ from the bins' count");
        }
        self.check_free_lists()?;
        self.check_bins()
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

// Internals: reads only.
impl Heap {
    fn largest_free(&self) -> usize {
        let binned = Bins::sizes()
            .rev()
            .find(|&size| self.bins.count(size) > 0)
            .unwrap_or(0);
        let Some(class) = self.lists.last_non_empty() else {
            return binned;
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
        largest.max(binned)
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
        if listed != self.nr_free - self.bins.len() {
            return inconsistent(self.first, "free blocks missing from the free lists");
        }
        Ok(())
    }

    fn check_bins(&self) -> Result<(), HeapError> {
        for size in Bins::sizes() {
            let mut at = self.bins.head(size);
            for _ in 0..self.bins.count(size) {
                if !self.is_block_addr(at)
                    || binned_size(self.free_key, at, self.mem.read(at + SIZE)) != Some(size)
                {
                    return inconsistent(at, "bin holds a block that is not binned there");
                }
                at = self.mem.read(at + TAG) as usize;
            }
            if at != 0 {
                return inconsistent(at, "bin holds more blocks than it counts");
            }
        }
        Ok(())
    }

    /// Whether the block at `addr` is in a bin (free, not merged).
    #[cfg(test)]
    pub(super) fn is_binned(&self, addr: usize) -> bool {
        let size_word = self.mem.read(addr + SIZE);
        binned_size(self.free_key, addr, size_word).is_some()
    }
}
