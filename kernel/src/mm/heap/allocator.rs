//! The TLSF best-fit allocator proper: creating and growing a heap, and
//! alloc, free and realloc with their splitting, coalescing and free-list
//! upkeep.
//!
//! Headers are encoded and their seals checked by `block`'s functions; the
//! free headers, footers and list links that the free lists consist of are
//! written here, and the lists are indexed through `tlsf`. Besides the
//! hand-over of memory (`new`, `duplicate`, `grow` and the `_or_grow`
//! variants, whose callers vouch for it), the `unsafe` here is the fast
//! paths' unchecked access to the region: the "proven core" below states
//! why every address it touches is inside the heap.

use core::fmt;
use core::ptr::NonNull;

use super::block::{
    BINNED, FreeBlock, GRAIN, HEADER, MIN_BLOCK, PREV_FREE, PREV_LINK, RED_ZONE_BYTE,
    RED_ZONE_BYTES, SIZE, SIZE_MASK, Stored, TAG, USED, UsedBlock, WIDE_TAG_BYTES, binned_size,
    binned_word, block_size, compact_marker_pad, compact_seal_ok, free_size, free_word, new_secret,
    pad_marker, padded_used, plain_used, seal_keys, used_fits, used_words,
};
use super::raw::Region;
use super::tlsf::{BIN_MAX, Bins, Class, FreeLists, MAX_BLOCK, class_min, class_of, search_class};
use super::{BlockTag, Heap};

/// Smallest region [`Heap::new`] accepts.
pub const MIN_REGION_BYTES: usize = 64;
/// Most free blocks an allocation examines beyond the O(1) good fit before
/// it reports [`HeapError::OutOfMemory`].
pub const SCAN_LIMIT: usize = 32;

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

/// An allocation request, checked and sized.
#[derive(Clone, Copy, Debug)]
pub(super) struct Request {
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
    pub(super) search: usize,
}

#[inline]
fn align_up(addr: usize, align: usize) -> usize {
    (addr + align - 1) & !(align - 1)
}

impl Heap {
    /// A heap with no region: allocations fail, frees are rejected.
    pub const fn empty() -> Self {
        Self {
            mem: Region::empty(),
            lists: FreeLists::new(),
            bins: Bins::new(),
            first: 0,
            sentinel: 0,
            nr_grains: 0,
            seal_key: 0,
            free_key: 0,
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
        (heap.seal_key, heap.free_key) = seal_keys(new_secret(base, max));
        heap.set_sentinel(limit - HEADER);
        heap.write_sentinel(heap.sentinel, true);
        // SAFETY: the whole heap, one block, in no list yet.
        unsafe { heap.make_free(first, heap.sentinel - first, false) };
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
            bins: self.bins.clone(),
            first: self.first,
            sentinel: self.sentinel,
            nr_grains: self.nr_grains,
            seal_key: self.seal_key,
            free_key: self.free_key,
            max: self.max,
            red_zone: self.red_zone,
            corruption: self.corruption,
            nr_used: self.nr_used,
            nr_free: self.nr_free,
            used_bytes: self.used_bytes,
            free_bytes: self.free_bytes,
        }
    }

    /// Moves the sentinel to `addr` (no write).
    fn set_sentinel(&mut self, addr: usize) {
        self.sentinel = addr;
        self.nr_grains = (addr - self.first) / GRAIN;
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
        let start = last.map_or(self.sentinel, |(b, _)| b.addr);
        if new_sentinel < start + MIN_BLOCK {
            return Err(HeapError::InvalidRegion);
        }
        // SAFETY: the caller vouches for `[old_end, new_end)`; the rest of
        // the range was already the region's.
        unsafe { self.mem.set_len(new_end - self.mem.start()) };
        if let Some((b, class)) = last {
            self.unlink(&b, class);
            // the old sentinel is now inside a free block: make sure it no
            // longer reads as a used header
            self.mem.write(self.sentinel + SIZE, 0);
        }
        self.set_sentinel(new_sentinel);
        self.write_sentinel(new_sentinel, true);
        // SAFETY: from the free block that ended at the old sentinel (now
        // unlinked), or the old sentinel, to the new one: one block.
        unsafe { self.make_free(start, new_sentinel - start, false) };
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
                .0
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
        match Stored::compact_word(tag) {
            // the common case, with the tag's wide fields known to be zero
            Some(word) => self.alloc_stored(size, align, &Stored::compact(word)),
            None => self.alloc_wide(size, align, tag),
        }
    }

    /// [`Heap::alloc`] for a tag without a compact form.
    #[inline(never)]
    fn alloc_wide(
        &mut self,
        size: usize,
        align: usize,
        tag: BlockTag,
    ) -> Result<NonNull<u8>, HeapError> {
        self.alloc_stored(size, align, &Stored::wide(tag))
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
        // SAFETY: this function's contract.
        unsafe { self.grow_for(size, align, grow)? };
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
        // SAFETY: this function's contract.
        unsafe { self.grow_for(new_size, align, grow)? };
        self.realloc(ptr, new_size, align)
    }

    /// Asks `grow` once for the memory an allocation of `size` bytes
    /// aligned to `align` needs, and takes what it gives.
    ///
    /// # Safety
    ///
    /// Every end `grow` returns satisfies the safety contract of
    /// [`Heap::grow`].
    unsafe fn grow_for(
        &mut self,
        size: usize,
        align: usize,
        grow: impl FnOnce(usize) -> Option<usize>,
    ) -> Result<(), HeapError> {
        let target = self.grow_target(size, align)?;
        let new_end = grow(target).ok_or(HeapError::OutOfMemory)?;
        // SAFETY: this function's contract.
        unsafe { self.grow(new_end) }
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
}

// Internals: sizing a request and finding a block for it.
impl Heap {
    #[inline(always)]
    pub(super) fn request(
        &self,
        size: usize,
        align: usize,
        lead: usize,
    ) -> Result<Request, HeapError> {
        if !align.is_power_of_two() {
            return Err(HeapError::InvalidLayout);
        }
        // both below a power of two: their bits together are
        if size | align >= MAX_BLOCK {
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
        // a binned block of exactly the size the payload needs, if there is
        // one and its payload is aligned
        let exact = req.lead + req.span;
        if req.lead == HEADER
            && exact <= BIN_MAX
            && let Some(p) = self.take_binned(exact, &req, stored)
        {
            return Ok(p);
        }
        let (block, class, at_head) = self.take_fit(&req)?;
        Ok(self.place(block, class, at_head, &req, stored))
    }

    /// A good-fit free block for `req`: O(1) through the bitmaps (two bit
    /// scans and one header check), or a bounded scan of the classes the
    /// rounding skipped.
    ///
    /// A list whose head fails validation is skipped (and the corruption
    /// recorded) so one damaged block does not make its whole class
    /// unusable; it is reported if nothing else fits.
    ///
    /// Returns the block, its class and whether it heads its list.
    #[inline(always)]
    fn take_fit(&mut self, req: &Request) -> Result<(FreeBlock, Class, bool), HeapError> {
        let stop = search_class(req.search);
        if let Some(class) = stop.and_then(|c| self.lists.first_non_empty(c))
            && let Some(block) = self.list_head(class).filter(|b| b.size >= req.search)
        {
            return Ok((block, class, true));
        }
        self.take_fit_slow(*req, stop)
    }

    /// [`Heap::take_fit`] when the first list it tried was empty or damaged:
    /// the other lists, a scan of the classes the rounding skipped, and
    /// then all of that again with the bins merged back.
    #[cold]
    #[inline(never)]
    fn take_fit_slow(
        &mut self,
        req: Request,
        stop: Option<Class>,
    ) -> Result<(FreeBlock, Class, bool), HeapError> {
        match self.search_lists(&req, stop) {
            Err(_) if self.bins.len() != 0 => {
                self.flush_bins();
                self.search_lists(&req, stop)
            }
            found => found,
        }
    }

    /// The lists at and above `stop`, skipping damaged heads, then
    /// [`Heap::scan_fit`].
    fn search_lists(
        &mut self,
        req: &Request,
        stop: Option<Class>,
    ) -> Result<(FreeBlock, Class, bool), HeapError> {
        let mut from = stop;
        while let Some(class) = from.and_then(|c| self.lists.first_non_empty(c)) {
            match self.list_head(class).filter(|b| b.size >= req.search) {
                Some(block) => return Ok((block, class, true)),
                None => {
                    let head = self.lists.head(class);
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
}

// The proven core: the fast paths of alloc and free and the writes every
// operation makes, reading and writing the region without range checks.
//
// Every access is inside the heap's blocks or the sentinel's header:
//
// 1. `[first, sentinel + HEADER)` lies in the region: `new` and `grow` keep
//    `sentinel + HEADER` at most the region's end, and `first` at least its
//    start.
//
// The addresses come from
//
// 2. a block address (8-aligned, in `[first, sentinel)`) checked by
//    `is_block_addr`: its first three words are in the heap, as
//    `addr + 24 <= sentinel + HEADER`;
// 3. a list head: every head is 0 or a block address, because only
//    validated blocks are filed and only validated links become heads;
// 4. a validated block (`UsedBlock`, `FreeBlock`, only made by the
//    checks below and in `block`, or a binned block checked the same way):
//    `first <= addr`, `addr + size <= sentinel`, `size >= MIN_BLOCK` and a
//    multiple of 8, so every word in `[addr, addr + size)` and the next
//    block's header are in the heap. The sentinel only ever moves up, so
//    these hold for as long as the heap lives, whatever the operation
//    wrote since;
// 5. a bin's head: 0 or a block address, as only validated used blocks are
//    binned and only validated links become heads.
//
// The seals decide whether a header is trusted; these range facts, checked
// on every value read from the region, are what keeps the accesses inside
// it even if a seal were forged. The property tests are the net, and debug
// builds check every access again.
impl Heap {
    /// Reads the `N` words at `addr`.
    ///
    /// # Safety
    ///
    /// `first <= addr` and `addr + 8 * N <= sentinel + HEADER`.
    #[inline(always)]
    unsafe fn get<const N: usize>(&self, addr: usize) -> [u64; N] {
        debug_assert!(self.first <= addr && addr + 8 * N <= self.sentinel + HEADER);
        // SAFETY: `[first, sentinel + HEADER)` lies in the region
        // (invariant 1), and the caller keeps to it.
        unsafe { self.mem.get(addr) }
    }

    /// Writes `N` words at `addr`.
    ///
    /// # Safety
    ///
    /// As for [`Heap::get`].
    #[inline(always)]
    unsafe fn set<const N: usize>(&mut self, addr: usize, words: [u64; N]) {
        debug_assert!(self.first <= addr && addr + 8 * N <= self.sentinel + HEADER);
        // SAFETY: as in `get`.
        unsafe { self.mem.set(addr, words) }
    }

    /// The used block whose payload is at `p`, after checking its header:
    /// the payload's range and alignment, then one multiply and one compare
    /// for the seal, and the sizes. Blocks with a wide tag, and every
    /// error, take the slow path.
    #[inline(always)]
    pub(super) fn used_block(&self, p: usize) -> Result<UsedBlock, HeapError> {
        let addr = p.wrapping_sub(HEADER);
        if self.is_block_addr(addr) {
            // SAFETY: a block address (2).
            let [tag_word, size_word] = unsafe { self.get::<2>(addr) };
            if plain_used(size_word) {
                if let Some(block) = self.compact_used(addr, tag_word, size_word) {
                    return Ok(block);
                }
            } else if let Some(pad) = compact_marker_pad(size_word) {
                // the word below the payload is a pad marker: the header
                // is further down
                let addr = addr.wrapping_sub(pad);
                if self.is_block_addr(addr) {
                    // SAFETY: a block address (2).
                    let [tag_word, size_word] = unsafe { self.get::<2>(addr) };
                    if padded_used(size_word, pad)
                        && let Some(block) = self.compact_used(addr, tag_word, size_word)
                    {
                        return Ok(block);
                    }
                }
            }
        }
        self.used_block_slow(p)
    }

    /// The used block with a compact tag whose header at `addr` holds
    /// `tag_word` and `size_word`, if its seal and sizes check.
    #[inline(always)]
    fn compact_used(&self, addr: usize, tag_word: u64, size_word: u64) -> Option<UsedBlock> {
        let size = (size_word & SIZE_MASK) as usize;
        let valid = compact_seal_ok(self.seal_key, addr, size_word, tag_word)
            && size <= self.sentinel - addr
            && used_fits(size_word, size);
        valid.then_some(UsedBlock {
            at: addr,
            word: size_word,
        })
    }

    /// The free block at `addr` (a block address or the sentinel) whose
    /// size word is `size_word`, after checking its header and links, and
    /// its class.
    #[inline(always)]
    fn free_block(&self, addr: usize, size_word: u64) -> Option<(FreeBlock, Class)> {
        let size = free_size(self.free_key, addr, size_word)?;
        if size < MIN_BLOCK || size > self.sentinel - addr {
            return None;
        }
        // SAFETY: `addr + size <= sentinel` with `size >= MIN_BLOCK`: a
        // block's first three words (4).
        let [next, _, prev] = unsafe { self.get::<3>(addr) };
        let (next, prev) = (next as usize, prev as usize);
        let class = class_of(size);
        let linked = (next == 0 || self.is_block_addr(next))
            && if prev == 0 {
                self.lists.head(class) == addr
            } else {
                self.is_block_addr(prev)
            };
        linked.then_some((FreeBlock { addr, size }, class))
    }

    /// The head of `class`'s list, after checking its header and its next
    /// link (it has no previous one).
    #[inline(always)]
    fn list_head(&self, class: Class) -> Option<FreeBlock> {
        let addr = self.lists.head(class);
        // SAFETY: a list head (3), not 0: `class` is not empty.
        let [next, size_word] = unsafe { self.get::<2>(addr) };
        let size = free_size(self.free_key, addr, size_word)?;
        let next = next as usize;
        let valid = size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && (next == 0 || self.is_block_addr(next));
        valid.then_some(FreeBlock { addr, size })
    }

    /// The free block just below `addr` (a block address or the sentinel),
    /// found through its footer, and its class.
    #[inline(always)]
    pub(super) fn free_below(&self, addr: usize) -> Option<(FreeBlock, Class)> {
        if addr - self.first < MIN_BLOCK {
            return None;
        }
        // SAFETY: `first + MIN_BLOCK <= addr <= sentinel`.
        let [size] = unsafe { self.get::<1>(addr - 8) };
        let size = size as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            return None;
        }
        let below = addr - size;
        // SAFETY: `first <= below` and `below + MIN_BLOCK <= addr`.
        let [size_word] = unsafe { self.get::<1>(below + SIZE) };
        // equal sizes also make `below` 8-aligned
        self.free_block(below, size_word)
            .filter(|(b, _)| b.size == size)
    }

    /// Writes a free block's header and footer and files it.
    ///
    /// # Safety
    ///
    /// `[addr, addr + size)` is a block (4) that no list holds.
    #[inline(always)]
    unsafe fn make_free(&mut self, addr: usize, size: usize, prev_free: bool) {
        let size_word =
            free_word(self.free_key, addr, size) | if prev_free { PREV_FREE } else { 0 };
        // SAFETY: the caller's.
        let head = unsafe { self.link_in(addr, size) };
        // SAFETY: a block's first three words and its last (4).
        unsafe {
            self.set(addr, [head as u64, size_word, 0]);
            self.set(addr + size - 8, [size as u64]);
        }
    }

    /// Files the block at `addr` at the head of its list; returns the old
    /// head, for the caller to write as the block's next link (and 0 as
    /// its previous).
    ///
    /// # Safety
    ///
    /// As for [`Heap::make_free`].
    #[inline(always)]
    unsafe fn link_in(&mut self, addr: usize, size: usize) -> usize {
        let class = class_of(size);
        let head = self.lists.head(class);
        // without a branch: an empty list has the block's own link written,
        // which the caller overwrites
        let old = if head != 0 { head } else { addr };
        // SAFETY: a list head (3) or the caller's block (4).
        unsafe { self.set(old + PREV_LINK, [addr as u64]) };
        self.lists.push_head(class, addr);
        self.nr_free += 1;
        self.free_bytes += size;
        head
    }

    /// Takes a validated free block, filed under `class`, out of its list.
    #[inline(always)]
    fn unlink(&mut self, block: &FreeBlock, class: Class) {
        // the links as they are now: an earlier write of the same operation
        // may have changed them since `block` was validated (to other
        // validated links)
        // SAFETY: a block's first three words (4).
        let [next, _, prev] = unsafe { self.get::<3>(block.addr) };
        let (next, prev) = (next as usize, prev as usize);
        if prev != 0 {
            // SAFETY: a validated link, a block address (2).
            unsafe { self.set(prev + TAG, [next as u64]) };
        } else {
            self.lists.set_head(class, next);
        }
        // without a branch: a last block has its own link written, which
        // every caller overwrites or leaves inside a block it reuses
        let after = if next != 0 { next } else { block.addr };
        // SAFETY: a validated link (2) or the block itself (4).
        unsafe { self.set(after + PREV_LINK, [prev as u64]) };
        self.nr_free -= 1;
        self.free_bytes -= block.size;
    }

    /// [`Heap::unlink`] for a block which heads its list if `at_head`.
    #[inline(always)]
    fn unlink_known(&mut self, block: &FreeBlock, class: Class, at_head: bool) {
        if !at_head {
            return self.unlink(block, class);
        }
        // SAFETY: a block's first word (4).
        let [next] = unsafe { self.get::<1>(block.addr + TAG) };
        let next = next as usize;
        self.lists.set_head(class, next);
        if next != 0 {
            // SAFETY: a validated link (2).
            unsafe { self.set(next + PREV_LINK, [0]) };
        }
        self.nr_free -= 1;
        self.free_bytes -= block.size;
    }

    /// Gives a validated free block, filed under `class` (at the head of
    /// its list if `at_head`), a new size, keeping its address; it changes
    /// lists only if it changes class.
    ///
    /// # Safety
    ///
    /// `[block.addr, block.addr + size)` is a block (4): it is free, and
    /// the blocks it now covers beyond the old one are out of the lists.
    #[inline(always)]
    unsafe fn refile(&mut self, block: &FreeBlock, class: Class, at_head: bool, size: usize) {
        let addr = block.addr;
        // the block below a free block is used: PREV_FREE is clear
        let size_word = free_word(self.free_key, addr, size);
        if class_of(size) == class {
            self.free_bytes = self.free_bytes - block.size + size;
            // SAFETY: the block's header (4).
            unsafe { self.set(addr + SIZE, [size_word]) };
        } else {
            self.unlink_known(block, class, at_head);
            // SAFETY: the caller's.
            let head = unsafe { self.link_in(addr, size) };
            // SAFETY: the block's first three words (4).
            unsafe { self.set(addr, [head as u64, size_word, 0]) };
        }
        // SAFETY: the block's last word (4).
        unsafe { self.set(addr + size - 8, [size as u64]) };
    }

    /// Sets or clears `PREV_FREE` in the header at `addr`.
    ///
    /// # Safety
    ///
    /// `addr` is a block address or the sentinel (2, 4).
    #[inline(always)]
    unsafe fn set_prev_free(&mut self, addr: usize, prev_free: bool) {
        // SAFETY: the caller's.
        let [size_word] = unsafe { self.get::<1>(addr + SIZE) };
        let size_word = if prev_free {
            size_word | PREV_FREE
        } else {
            size_word & !PREV_FREE
        };
        // SAFETY: as above.
        unsafe { self.set(addr + SIZE, [size_word]) };
    }

    /// Writes a used block's header, pad marker, wide tag and red zone.
    ///
    /// # Safety
    ///
    /// `[addr, addr + size)` is a block (4) with room for the header, the
    /// pad and `requested` bytes.
    #[inline(always)]
    unsafe fn write_used(
        &mut self,
        addr: usize,
        size: usize,
        prev_free: bool,
        pad: usize,
        requested: usize,
        stored: &Stored,
    ) {
        let slack = size - HEADER - pad - requested;
        let [tag_word, size_word] = used_words(self.seal_key, addr, size, pad, slack, stored);
        let size_word = size_word | if prev_free { PREV_FREE } else { 0 };
        let payload = addr + HEADER + pad;
        // SAFETY: the block's words: its pad's last, its header and the
        // word after it, all below `payload <= addr + size` (4).
        unsafe {
            if pad != 0 {
                self.set(payload - 8, [pad_marker(pad, stored)]);
            }
            if let Some(key) = stored.wide_key() {
                self.set(addr + HEADER, [key]);
            }
            self.set(addr, [tag_word, size_word]);
        }
        if self.red_zone != 0 {
            self.mem.fill(payload + requested, slack, RED_ZONE_BYTE);
        }
    }

    /// Carves the allocation out of the top of `block`: the rest below
    /// keeps the block's address (and mostly its list), the rest above (an
    /// alignment gap) becomes a free block when large enough, and a rest too
    /// small for a block stays in the allocation as pad or slack.
    ///
    /// `block` is filed under `class`, at the head of its list if `at_head`,
    /// and holds at least `req.search` bytes (or fits `req` exactly).
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
        debug_assert!(header >= block.addr && fits(block.addr, block.size, req));
        let above = payload + req.span;
        let below = header - block.addr;
        // the block first, while `class` and `at_head` still hold
        let (start, prev_free) = if below >= MIN_BLOCK {
            // SAFETY: the lower part of the free block.
            unsafe { self.refile(&block, class, at_head, below) };
            (header, true)
        } else {
            self.unlink_known(&block, class, at_head);
            (block.addr, false)
        };
        let used_end = if end - above >= MIN_BLOCK {
            // SAFETY: the upper part of the free block, out of the lists.
            unsafe { self.make_free(above, end - above, false) };
            above
        } else {
            // SAFETY: the header after the block (4).
            unsafe { self.set_prev_free(end, false) };
            end
        };
        // SAFETY: the middle of the free block, which holds the header, the
        // pad and the payload.
        unsafe {
            self.write_used(
                start,
                used_end - start,
                prev_free,
                payload - HEADER - start,
                req.size,
                stored,
            );
        }
        self.nr_used += 1;
        self.used_bytes += req.size;
        // SAFETY: inside the block, above its header, so not 0.
        unsafe { self.mem.payload_ptr_unchecked(payload) }
    }

    /// Frees a validated used block: into its bin if it is small, plain
    /// and the bin has room, else merged with its free neighbours. A heap
    /// left without used blocks merges its bins back, so that it is one
    /// free block again.
    #[inline(always)]
    fn release(&mut self, block: &UsedBlock) -> Result<(), HeapError> {
        let (addr, size) = (block.addr(), block.size());
        if plain_used(block.word) && size <= BIN_MAX && self.bins.has_room(size) {
            let word = binned_word(self.free_key, addr, size) | (block.word & PREV_FREE);
            let head = self.bins.head(size);
            // SAFETY: the block's header (4).
            unsafe { self.set(addr, [head as u64, word]) };
            self.bins.push(size, addr);
            self.nr_free += 1;
            self.free_bytes += size;
        } else {
            self.merge(addr, size, block.word)?;
        }
        self.nr_used -= 1;
        self.used_bytes -= block.requested();
        if self.nr_used == 0 && self.bins.len() != 0 {
            self.flush_bins();
        }
        Ok(())
    }

    /// Makes the block at `addr` of `size` bytes, whose size word is
    /// `word`, a free block merged with its free neighbours. Everything it
    /// relies on is checked before its first write.
    ///
    /// The block is a validated used block (4), or a binned one just taken
    /// out of its bin.
    #[inline(always)]
    fn merge(&mut self, addr: usize, size: usize, word: u64) -> Result<(), HeapError> {
        let next = addr + size;
        // SAFETY: the header after the block (4).
        let [next_word] = unsafe { self.get::<1>(next + SIZE) };
        let above = if next_word & (USED | BINNED) == 0 {
            Some(
                self.free_block(next, next_word)
                    .ok_or(HeapError::CorruptHeader { addr: next })?,
            )
        } else {
            None
        };
        let below = if word & PREV_FREE != 0 {
            Some(
                self.free_below(addr)
                    .ok_or_else(|| self.corrupt_below(addr))?,
            )
        } else {
            None
        };
        let mut merged = size;
        if let Some((n, class)) = above {
            self.unlink(&n, class);
            merged += n.size;
        } else {
            // SAFETY: the header after the block (4).
            unsafe { self.set(next + SIZE, [next_word | PREV_FREE]) };
        }
        match below {
            Some((b, class)) => {
                // retire the header, so that a second free of this block is
                // recognised as one: USED cleared, its seal kept
                // SAFETY: the block's header (4).
                unsafe { self.set(addr + SIZE, [word & !USED]) };
                // SAFETY: the block below, this one and the one above (if
                // free, unlinked) are contiguous and free.
                unsafe { self.refile(&b, class, false, b.size + merged) };
            }
            // SAFETY: this block and the one above (if free, unlinked).
            None => unsafe { self.make_free(addr, merged, false) },
        }
        Ok(())
    }

    /// Takes the first block of the bin for `size` for `req`, if there is
    /// one, its payload is aligned for `req` and it validates.
    #[inline(always)]
    fn take_binned(&mut self, size: usize, req: &Request, stored: &Stored) -> Option<NonNull<u8>> {
        let addr = self.bins.head(size);
        if addr == 0 || (addr + HEADER) & (req.align - 1) != 0 {
            return None;
        }
        // SAFETY: a bin's head is a block address (5).
        let [next, word] = unsafe { self.get::<2>(addr) };
        let next = next as usize;
        let valid = binned_size(self.free_key, addr, word) == Some(size)
            && size <= self.sentinel - addr
            && (next == 0 || self.is_block_addr(next));
        if !valid {
            // left as it is, like any damaged block: the allocation is made
            // from the free lists, and the damage reported
            self.note_corruption(HeapError::CorruptHeader { addr });
            return None;
        }
        self.bins.pop(size, next);
        self.nr_free -= 1;
        self.free_bytes -= size;
        // SAFETY: a block (4): its header and size validated just now.
        unsafe { self.write_used(addr, size, word & PREV_FREE != 0, 0, req.size, stored) };
        self.nr_used += 1;
        self.used_bytes += req.size;
        // SAFETY: inside the block, above its header, so not 0.
        Some(unsafe { self.mem.payload_ptr_unchecked(addr + HEADER) })
    }

    /// Merges every binned block back into the free lists.
    #[cold]
    #[inline(never)]
    fn flush_bins(&mut self) {
        for size in Bins::sizes() {
            loop {
                let addr = self.bins.head(size);
                if addr == 0 {
                    break;
                }
                // SAFETY: a bin's head is a block address (5).
                let [next, word] = unsafe { self.get::<2>(addr) };
                let next = next as usize;
                let valid = binned_size(self.free_key, addr, word) == Some(size)
                    && size <= self.sentinel - addr
                    && (next == 0 || self.is_block_addr(next));
                if !valid {
                    // the bin stays as it is from here on
                    self.note_corruption(HeapError::CorruptHeader { addr });
                    break;
                }
                self.bins.pop(size, next);
                self.nr_free -= 1;
                self.free_bytes -= size;
                if let Err(e) = self.merge(addr, size, word) {
                    // a damaged neighbour: the block stays binned (the
                    // failed merge wrote nothing)
                    self.bins.push(size, addr);
                    self.nr_free += 1;
                    self.free_bytes += size;
                    self.note_corruption(e);
                    break;
                }
            }
        }
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
        let new = match self.compact_tag_of(block) {
            Some(stored) => self.alloc_stored(new_size, align, &stored)?,
            None => self.alloc_stored(new_size, align, &self.wide_tag_of(block))?,
        };
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
        // SAFETY: the header after the block (4).
        let [next_word] = unsafe { self.get::<1>(next + SIZE) };
        let next_free = if next_word & (USED | BINNED) == 0 {
            Some(
                self.free_block(next, next_word)
                    .ok_or(HeapError::CorruptHeader { addr: next })?,
            )
        } else {
            None
        };
        let size = match next_free {
            // give the tail, however small, to the free block above
            Some((n, class)) if rest > 0 => {
                self.unlink(&n, class);
                // SAFETY: the tail and the block above, out of the lists.
                unsafe { self.make_free(block.addr() + need, rest + n.size, false) };
                need
            }
            None if rest >= MIN_BLOCK => {
                // SAFETY: the tail.
                unsafe {
                    self.make_free(block.addr() + need, rest, false);
                    self.set(next + SIZE, [next_word | PREV_FREE]);
                }
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
        // SAFETY: the header after the block (4).
        let [next_word] = unsafe { self.get::<1>(next + SIZE) };
        if next_word & (USED | BINNED) != 0
            || block.size() + ((next_word & SIZE_MASK) as usize) < need
        {
            return Ok(false);
        }
        let (n, class) = self
            .free_block(next, next_word)
            .ok_or(HeapError::CorruptHeader { addr: next })?;
        let total = block.size() + n.size;
        self.unlink(&n, class);
        let size = if total - need >= MIN_BLOCK {
            // SAFETY: the part of the block above that the block does not
            // take, out of the lists.
            unsafe { self.make_free(block.addr() + need, total - need, false) };
            need
        } else {
            // SAFETY: the header after the block above (4).
            unsafe { self.set_prev_free(block.addr() + total, false) };
            total
        };
        self.resize_used(block, size, requested);
        Ok(true)
    }

    /// Gives a used block a new size and requested size, keeping its
    /// start, pad and tag.
    #[inline(always)]
    fn resize_used(&mut self, block: &UsedBlock, size: usize, requested: usize) {
        debug_assert!(block.addr() + size <= self.sentinel);
        let (addr, prev_free, pad) = (block.addr(), block.prev_free(), block.pad());
        // two copies, so that the common one knows its tag is compact
        // SAFETY: the block keeps its start and `size` came from its own
        // size and the free block above it (4).
        unsafe {
            match self.compact_tag_of(block) {
                Some(stored) => self.write_used(addr, size, prev_free, pad, requested, &stored),
                None => {
                    let stored = self.wide_tag_of(block);
                    self.write_used(addr, size, prev_free, pad, requested, &stored);
                }
            }
        }
        self.used_bytes = self.used_bytes - block.requested() + requested;
    }
}

/// Whether a block at `addr` of `size` bytes can hold `req` (placed at its
/// top, as [`Heap::place`] does).
fn fits(addr: usize, size: usize, req: &Request) -> bool {
    size >= req.lead + req.span && ((addr + size - req.span) & !(req.align - 1)) >= addr + req.lead
}
