//! The TLSF best-fit allocator proper: creating and growing a heap, and
//! alloc, free and realloc with their splitting, coalescing and free-list
//! upkeep.
//!
//! Headers are validated, and used headers written, through `block`; the
//! free headers, footers and list links that the free lists consist of are
//! written here, and the lists are indexed through `tlsf`. The only
//! `unsafe` here is the hand-over of memory (`new`, `duplicate`, `grow` and
//! the `_or_grow` variants, whose callers vouch for it); every access to the
//! region goes through `raw`.

use core::fmt;
use core::ptr::NonNull;

use super::block::{
    FreeBlock, GRAIN, HEADER, MIN_BLOCK, PREV_FREE, PREV_LINK, RED_ZONE_BYTES, SIZE, SIZE_MASK,
    Stored, TAG, USED, UsedBlock, WIDE_TAG_BYTES, block_size, free_word,
};
use super::raw::Region;
use super::tlsf::{Class, FreeLists, MAX_BLOCK, class_min, class_of, search_class};
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
}

// Writes. Callers have validated everything these rely on.
impl Heap {
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
