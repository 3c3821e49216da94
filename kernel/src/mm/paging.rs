//! x86_64 4-level page tables as pure logic: map, unmap, translate, create
//! and destroy address spaces, and walk every mapping for dumps.
//!
//! The walker reaches tables through the [`PhysMem`] trait and gets new ones
//! from [`TableFrames`], so the same code edits real tables through the
//! kernel's direct map and emulated RAM in host tests. It never executes
//! `invlpg` or touches CR3: every edit returns a must-use [`Flush`] for the
//! caller to carry out. There is no `unsafe` here; the kernel's `PhysMem`
//! implementation holds it.
//!
//! ```
//! use kernel::mm::frame::{Frame, PhysAddr};
//! use kernel::mm::paging::{PageFlags, PageTable, PhysMem, TableFrames, VirtAddr};
//!
//! /// 64 frames of RAM, and table frames handed out from frame 1 upwards.
//! struct Ram(Vec<u64>);
//! struct Tables(u64);
//! impl PhysMem for Ram {
//!     fn read_u64(&self, pa: PhysAddr) -> u64 { self.0[pa.as_u64() as usize / 8] }
//!     fn write_u64(&mut self, pa: PhysAddr, v: u64) { self.0[pa.as_u64() as usize / 8] = v }
//! }
//! impl TableFrames for Tables {
//!     fn alloc_table(&mut self) -> Option<Frame> { self.0 += 1; Some(Frame::from_number(self.0)) }
//!     fn free_table(&mut self, _: Frame) {}
//! }
//!
//! let mut tables = Tables(0);
//! let mut pt = PageTable::create(Ram(vec![0; 64 * 512]), &mut tables)?;
//! let virt = VirtAddr::new(0x40_0000);
//! let flags = PageFlags::WRITABLE | PageFlags::USER | PageFlags::NO_EXECUTE;
//! pt.map_page(virt, Frame::from_number(42), flags, &mut tables)?
//!     .ignore(); // not loaded in CR3: nothing to invalidate
//! let (pa, got) = pt.translate(VirtAddr::new(0x40_0123)).unwrap();
//! assert_eq!(pa, PhysAddr::new(42 * 4096 + 0x123));
//! assert!(got.contains(flags | PageFlags::PRESENT));
//! assert_eq!(pt.count_tables().user_half, 3); // PDPT, PD and PT
//! # Ok::<(), kernel::mm::paging::MapError>(())
//! ```
#![forbid(unsafe_code)]

mod addr;
mod dump;
mod flags;
mod mem;
mod table;
mod walk;

#[cfg(test)]
mod emulate;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use core::fmt;

pub use addr::{
    ENTRY_COUNT, KERNEL_HALF_START, KERNEL_PML4_START, Level, PAGE_SIZE, Page, PageSize,
    USER_HALF_END, VirtAddr,
};
pub use dump::{Coalescer, pt_flags};
pub use flags::{ADDRESS_MASK, PageFlags, PageTableEntry};
pub use mem::{Flush, PhysMem, TableFrames};
pub use table::{Mapping, PageEntry, PageTable, TableCount};
pub use walk::{Leaf, Leaves, Mappings};

use crate::mm::frame::Frame;

/// Why a mapping could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapError {
    /// No frame for an intermediate table (or for a new root).
    FrameAllocationFailed,
    /// A present leaf already maps the page; it maps this frame (the first
    /// frame of a huge page).
    PageAlreadyMapped(Frame),
    /// A huge page covers the address, so there is no table to descend into.
    HugePageInTheWay,
    /// A huge page was asked for where a table of smaller pages sits.
    TableInTheWay,
    /// The virtual address is not canonical.
    NonCanonical,
    /// The virtual or physical address is not aligned to the page size.
    Unaligned,
    /// The physical address does not fit the 52 address bits of an entry.
    FrameOutOfRange,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameAllocationFailed => f.write_str("no frame for a page table"),
            Self::PageAlreadyMapped(frame) => write!(
                f,
                "page already mapped to {:#x}",
                frame.start_address().as_u64()
            ),
            Self::HugePageInTheWay => f.write_str("a huge page maps the address"),
            Self::TableInTheWay => f.write_str("a page table occupies the huge page's slot"),
            Self::NonCanonical => f.write_str("virtual address is not canonical"),
            Self::Unaligned => f.write_str("address is not aligned to the page size"),
            Self::FrameOutOfRange => f.write_str("physical address beyond 52 bits"),
        }
    }
}

impl core::error::Error for MapError {}

/// Why a mapping could not be removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnmapError {
    /// No present leaf maps the address.
    NotMapped,
    /// A huge page of this size maps the address; a 4 KiB operation was
    /// asked for.
    HugePage(PageSize),
    /// The virtual address is not canonical.
    NonCanonical,
    /// The address is not where the page (of the size found) starts.
    Unaligned,
}

impl fmt::Display for UnmapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMapped => f.write_str("page is not mapped"),
            Self::HugePage(size) => write!(f, "a {size:?} huge page maps the address"),
            Self::NonCanonical => f.write_str("virtual address is not canonical"),
            Self::Unaligned => f.write_str("address is not the start of the page"),
        }
    }
}

impl core::error::Error for UnmapError {}
