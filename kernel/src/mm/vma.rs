//! The VMA set of a process: which ranges of its user address space are
//! mapped, with what access and for what purpose.
//!
//! A [`Vma`] is a page-aligned range of the user half with [`VmFlags`]
//! (`VM_READ`, `VM_WRITE`, `VM_EXEC`, `VM_SHARED`, `VM_GROWSUP`,
//! `VM_GROWSDOWN`) and a [`VmaKind`]. A [`VmaSet`] keeps a process's VMAs
//! sorted by address in storage its owner supplies (an array, a boxed slice
//! or a borrowed one), so it needs no `alloc`. It is pure bookkeeping: the
//! kernel edits page tables in the callbacks of
//! [`remove_range`](VmaSet::remove_range) and
//! [`protect_range`](VmaSet::protect_range), which report exactly the pieces
//! that changed.
//!
//! The set is kept in canonical form: two VMAs that touch and agree in
//! flags, kind and id are always merged into one, so the same pages with the
//! same attributes give the same set whatever the history.
//!
//! ```
//! use kernel::mm::paging::VirtAddr;
//! use kernel::mm::vma::{Vma, VmaError, VmaKind, VmaSet, VmFlags};
//!
//! let v = VirtAddr::new;
//! let mut set = VmaSet::new([Vma::UNUSED; 16]);
//! let rw = VmFlags::READ | VmFlags::WRITE;
//! set.insert(Vma::new(v(0x40_0000), v(0x40_4000), rw, VmaKind::Heap)?)?;
//! assert_eq!(set.find(v(0x40_1234)).map(|vma| vma.kind()), Some(VmaKind::Heap));
//!
//! // munmap the middle page: the heap splits in two.
//! let mut unmapped = Vec::new();
//! set.remove_range(v(0x40_1000), v(0x40_2000), |piece| unmapped.push(piece))?;
//! assert_eq!(unmapped.len(), 1);
//! assert_eq!(set.len(), 2);
//! assert_eq!(set.mapped_bytes(), 0x3000);
//!
//! // mmap placement is top-down: the highest gap that fits below `hi`.
//! let at = set.find_gap(0x2000, None, v(0x10_0000), v(0x80_0000))?;
//! assert_eq!(at, v(0x7f_e000));
//! # Ok::<(), VmaError>(())
//! ```
//!
//! # Complexity
//!
//! With `n` VMAs: [`find`](VmaSet::find), [`nearest`](VmaSet::nearest) and
//! [`grow_down`](VmaSet::grow_down) are O(log n) binary searches.
//! [`insert`](VmaSet::insert), [`remove_range`](VmaSet::remove_range) and
//! [`protect_range`](VmaSet::protect_range) find their place in O(log n)
//! and then shift the tail of the array, O(n) moves of small `Copy` values.
//! [`find_gap`](VmaSet::find_gap) takes a fitting hint in O(log n) and
//! otherwise scans the gaps top-down, O(n).
//! [`mapped_bytes`](VmaSet::mapped_bytes) is kept up to date: O(1).
#![forbid(unsafe_code)]

mod area;
mod flags;
mod set;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use core::fmt;

pub use area::Vma;
pub use flags::{VmFlags, VmaKind};
pub use set::VmaSet;

use crate::mm::paging::{KERNEL_HALF_START, PAGE_SIZE, USER_HALF_END, VirtAddr};

/// The lowest address a VMA may cover: page 0 stays unmapped so that a null
/// pointer always faults.
pub const USER_START: u64 = PAGE_SIZE;

/// One past the highest address a VMA may cover. The last page below the
/// canonical hole stays unmapped: code running to its end would leave a
/// non-canonical return address in RCX, and `sysret` to one faults in ring 0
/// on Intel CPUs.
pub const USER_END: u64 = USER_HALF_END - PAGE_SIZE;

/// The gap kept free below a `VM_GROWSDOWN` VMA (and above a `VM_GROWSUP`
/// one) unless a set is built with another: a stack never grows to touch
/// the VMA below it, and [`VmaSet::find_gap`] does not place mappings there.
pub const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;

/// Why a VMA operation was refused. Every error leaves the set unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VmaError {
    /// An address or length is not a multiple of the page size.
    Unaligned,
    /// The range is empty (`start >= end`, or a zero length).
    EmptyRange,
    /// Part of the range lies in the non-canonical hole between the halves.
    NonCanonical,
    /// Part of the range lies in the kernel half.
    KernelHalf,
    /// The range covers the null page or the reserved last user page
    /// (outside [`USER_START`]..[`USER_END`]).
    OutsideUserRange,
    /// The flags cannot be used here: both `GROWSUP` and `GROWSDOWN`, or
    /// bits other than `READ`, `WRITE` and `EXEC` given to `protect_range`.
    InvalidFlags(VmFlags),
    /// The range overlaps this VMA already in the set.
    Overlap(Vma),
    /// The operation needs more VMAs than the set's storage holds.
    Full {
        /// How many VMAs the storage holds.
        capacity: usize,
    },
    /// No VMA maps this address, which the operation needs mapped.
    NotMapped(VirtAddr),
    /// The VMA does not have `GROWSDOWN`.
    NotGrowable(Vma),
    /// Growing would come within the guard gap of this VMA below.
    GuardGap(Vma),
    /// No gap of the length asked for lies in the range asked for.
    NoSpace,
}

impl fmt::Display for VmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unaligned => f.write_str("address or length is not page-aligned"),
            Self::EmptyRange => f.write_str("empty range"),
            Self::NonCanonical => f.write_str("range reaches the non-canonical hole"),
            Self::KernelHalf => f.write_str("range reaches the kernel half"),
            Self::OutsideUserRange => {
                f.write_str("range covers the null page or the last user page")
            }
            Self::InvalidFlags(flags) => write!(f, "flags {flags:?} not allowed here"),
            Self::Overlap(vma) => write!(f, "range overlaps {vma}"),
            Self::Full { capacity } => write!(f, "more than {capacity} VMAs needed"),
            Self::NotMapped(addr) => write!(f, "{:#x} is not mapped", addr.as_u64()),
            Self::NotGrowable(vma) => write!(f, "{vma} cannot grow down"),
            Self::GuardGap(vma) => write!(f, "growth would enter the guard gap above {vma}"),
            Self::NoSpace => f.write_str("no free gap large enough"),
        }
    }
}

impl core::error::Error for VmaError {}

/// Checks that `[start, end)` is a non-empty, page-aligned range that a VMA
/// may cover.
fn check_range(start: VirtAddr, end: VirtAddr) -> Result<(), VmaError> {
    if !start.is_aligned(PAGE_SIZE) || !end.is_aligned(PAGE_SIZE) {
        return Err(VmaError::Unaligned);
    }
    let (start, end) = (start.as_u64(), end.as_u64());
    if start >= end {
        return Err(VmaError::EmptyRange);
    }
    // `end` is exclusive: the range's last byte is `end - 1`.
    let last = end - 1;
    if start >= KERNEL_HALF_START || last >= KERNEL_HALF_START {
        return Err(VmaError::KernelHalf);
    }
    if start >= USER_HALF_END || last >= USER_HALF_END {
        return Err(VmaError::NonCanonical);
    }
    if start < USER_START || end > USER_END {
        return Err(VmaError::OutsideUserRange);
    }
    Ok(())
}
