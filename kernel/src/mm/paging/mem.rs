//! What the walker needs from its surroundings: access to physical memory,
//! a source of table frames, and a way to hand back TLB work.
//!
//! Keeping these behind traits is what lets the same walker run over the
//! kernel's direct map and over emulated RAM in host tests.

use super::addr::{ENTRY_COUNT, Page};
use crate::mm::frame::{Frame, PhysAddr};

/// Reads and writes of physical memory, 8 bytes at a time.
///
/// The kernel implements it over its direct map (that impl holds the
/// `unsafe`); tests implement it over a vector. Addresses passed in are
/// always 8-byte aligned and inside a frame the walker was given (a root or
/// a frame from [`TableFrames`]) or found in a present entry.
pub trait PhysMem {
    /// The `u64` at `pa`.
    fn read_u64(&self, pa: PhysAddr) -> u64;

    /// Stores `value` at `pa`.
    fn write_u64(&mut self, pa: PhysAddr, value: u64);

    /// Fills `frame` with zeros. The default writes 512 words; an
    /// implementation may do it faster.
    fn zero_frame(&mut self, frame: Frame) {
        let start = frame.start_address();
        for i in 0..ENTRY_COUNT as u64 {
            self.write_u64(PhysAddr::new(start.as_u64() + i * 8), 0);
        }
    }
}

impl<M: PhysMem + ?Sized> PhysMem for &mut M {
    fn read_u64(&self, pa: PhysAddr) -> u64 {
        (**self).read_u64(pa)
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) {
        (**self).write_u64(pa, value);
    }

    fn zero_frame(&mut self, frame: Frame) {
        (**self).zero_frame(frame);
    }
}

/// Where page-table frames come from and go back to.
///
/// The kernel backs it with the frame allocator under owner `PageTable`, so
/// every table frame is accounted for. Frames handed out need not be zeroed:
/// the walker zeroes each new table itself through [`PhysMem::zero_frame`].
pub trait TableFrames {
    /// A frame for a new table, or `None` when memory is exhausted.
    fn alloc_table(&mut self) -> Option<Frame>;

    /// Takes back a table frame that no entry points at any more.
    fn free_table(&mut self, frame: Frame);
}

impl<T: TableFrames + ?Sized> TableFrames for &mut T {
    fn alloc_table(&mut self) -> Option<Frame> {
        (**self).alloc_table()
    }

    fn free_table(&mut self, frame: Frame) {
        (**self).free_table(frame);
    }
}

/// A TLB invalidation the caller still owes for one page.
///
/// Page-table edits return this instead of executing `invlpg`, because the
/// pure code cannot, and because only the caller knows whether the table is
/// live on this CPU (or on others). Dropping it unused is a compile warning;
/// say [`ignore`](Self::ignore) when a stale entry cannot exist, for example
/// when the address space is not loaded anywhere.
#[must_use = "the TLB may still hold the old translation: call `flush` or `ignore`"]
#[derive(Debug, PartialEq, Eq)]
pub struct Flush {
    page: Page,
}

impl Flush {
    /// A flush owed for `page`.
    pub const fn new(page: Page) -> Self {
        Self { page }
    }

    /// The page to invalidate. For a huge page this is its first 4 KiB page:
    /// `invlpg` on any address inside a huge page drops the whole entry.
    #[must_use]
    pub const fn page(&self) -> Page {
        self.page
    }

    /// Runs `invalidate` (the kernel passes a closure doing `invlpg`) on the
    /// page.
    pub fn flush(self, invalidate: impl FnOnce(Page)) {
        invalidate(self.page);
    }

    /// Drops the flush on purpose: the caller knows no TLB holds the page,
    /// or will flush everything (reload CR3) itself.
    pub fn ignore(self) {}
}
