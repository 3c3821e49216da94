//! Physical frame allocator: a bitmap over all RAM with summary levels, so a
//! free frame is found in O(log64 n) and never by a scan from frame 0, and an
//! owner recorded for every used frame, so the whole state can be checked.
//!
//! The allocator lives in storage the caller provides (the kernel carves it
//! out of RAM at boot, before any allocator exists), needs no `alloc`, and
//! contains no `unsafe`: it is plain logic, tested on the host.
//!
//! ```
//! use kernel::mm::frame::{FrameBitmap, FrameRange, MemoryRegion, Owner, PhysAddr};
//!
//! const MIB: u64 = 1 << 20;
//! let map = [MemoryRegion::usable(PhysAddr::new(0), 64 * MIB)];
//! let nr_frames = FrameBitmap::span(map);
//! let mut words = vec![0; FrameBitmap::words_needed(nr_frames)];
//! let mut owners = vec![0u16; FrameBitmap::owner_slots_needed(nr_frames)];
//! let low = (FrameRange::covering(PhysAddr::new(0), MIB), Owner::Reserved);
//! let mut pmm = FrameBitmap::new(nr_frames, &mut words, owners.as_mut_slice(), map, [low])?;
//!
//! let page = pmm.alloc_page(Owner::PageTable)?;
//! assert_eq!(page, PhysAddr::new(MIB)); // lowest free frame first
//! assert_eq!(pmm.free_page(page)?, Owner::PageTable);
//! assert!(pmm.check().is_consistent());
//! # Ok::<(), kernel::mm::frame::FrameError>(())
//! ```
#![forbid(unsafe_code)]

mod addr;
mod bitmap;
mod check;
mod owner;
mod table;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use core::fmt;

pub use addr::{FRAME_SHIFT, FRAME_SIZE, Frame, FrameRange, MAX_FRAMES, PhysAddr};
pub use bitmap::{FrameBitmap, MAX_LEVELS, MemoryRegion, Usage};
pub use check::{CheckReport, Corruption, MAX_REPORTED, Mismatch, MismatchKind};
pub use owner::{MAX_PID, Owner, OwnerSlot, OwnerSlotCodec};
pub use table::{OwnerTable, SlotWidth};

/// Why a frame operation failed. Every error leaves the allocator unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameError {
    /// The frame is already free.
    DoubleFree,
    /// The frame belongs to a permanent owner (reserved, kernel image, boot
    /// info, bitmap, not RAM) and cannot be freed this way.
    Reserved,
    /// The frame is past the end of the bitmap.
    OutOfRange,
    /// The address is not the start of a frame.
    Unaligned,
    /// No free frame (or no free run of the size and alignment asked for).
    OutOfMemory,
    /// A contiguous request of zero frames or with an alignment that is not
    /// a power of two.
    InvalidRequest,
    /// The owner cannot be recorded (a pid above [`MAX_PID`]) or cannot be
    /// used for this operation.
    InvalidOwner,
    /// The storage given to [`FrameBitmap::new`] is too small.
    StorageTooSmall,
    /// The bitmap contradicts itself (a stray write); nothing was done, and
    /// [`FrameBitmap::check`] says where.
    Corrupted,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DoubleFree => "frame is already free",
            Self::Reserved => "frame is reserved and cannot be freed",
            Self::OutOfRange => "frame is outside physical memory",
            Self::Unaligned => "address is not frame-aligned",
            Self::OutOfMemory => "out of physical memory",
            Self::InvalidRequest => "invalid contiguous request",
            Self::InvalidOwner => "invalid frame owner",
            Self::StorageTooSmall => "bitmap storage too small",
            Self::Corrupted => "frame bitmap is corrupted",
        })
    }
}

impl core::error::Error for FrameError {}
