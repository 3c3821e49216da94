//! Virtual addresses, 4 KiB pages, page sizes and table indices.
//!
//! x86_64 with 4-level paging translates 48 bits; an address is *canonical*
//! when bits 48..64 copy bit 47. The canonical addresses form two halves: the
//! lower half (user space) and the upper half (the kernel, shared by every
//! address space).

use core::fmt;

use crate::mm::frame::{FRAME_SHIFT, FRAME_SIZE};

/// Size of a small page in bytes (the same as a physical frame).
pub const PAGE_SIZE: u64 = FRAME_SIZE;

/// Entries in one page table of any level.
pub const ENTRY_COUNT: usize = 512;

/// First PML4 index of the kernel (upper) half: entries `KERNEL_PML4_START..`
/// are shared by every address space, entries below it belong to one process.
pub const KERNEL_PML4_START: usize = ENTRY_COUNT / 2;

/// One past the last address of the lower (user) half.
pub const USER_HALF_END: u64 = 1 << 47;

/// First address of the upper (kernel) half.
pub const KERNEL_HALF_START: u64 = 0xFFFF_8000_0000_0000;

/// Bits a table index takes.
const INDEX_BITS: u32 = 9;

/// A virtual address.
///
/// Any `u64` is accepted, as with [`PhysAddr`](crate::mm::frame::PhysAddr):
/// faulting addresses and syscall arguments arrive as raw numbers, and the
/// page-table operations report [`NonCanonical`](super::MapError::NonCanonical)
/// instead of the constructor panicking. [`Page`] is the type that is
/// canonical by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(u64);

impl VirtAddr {
    /// The address `addr`, canonical or not.
    #[must_use]
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// The canonical address whose low 48 bits are those of `addr`: bit 47
    /// is copied into bits 48..64.
    #[must_use]
    pub const fn new_truncate(addr: u64) -> Self {
        Self((((addr << 16) as i64) >> 16) as u64)
    }

    /// The address as a number.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether bits 48..64 copy bit 47, so the CPU accepts the address.
    #[must_use]
    pub const fn is_canonical(self) -> bool {
        Self::new_truncate(self.0).0 == self.0
    }

    /// Whether the address is canonical and in the lower (user) half.
    #[must_use]
    pub const fn is_user_half(self) -> bool {
        self.0 < USER_HALF_END
    }

    /// Whether the address is canonical and in the upper (kernel) half.
    #[must_use]
    pub const fn is_kernel_half(self) -> bool {
        self.0 >= KERNEL_HALF_START
    }

    /// Whether the address is a multiple of `align` (a power of two).
    #[must_use]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & align.wrapping_sub(1) == 0
    }

    /// The largest multiple of `align` (a power of two) not above the address.
    #[must_use]
    pub const fn align_down(self, align: u64) -> Self {
        Self(self.0 & !align.wrapping_sub(1))
    }

    /// Offset of the address inside its 4 KiB page.
    #[must_use]
    pub const fn page_offset(self) -> u64 {
        self.0 & (PAGE_SIZE - 1)
    }

    /// `self + bytes`, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }

    /// The index of the address in its table at `level`.
    #[must_use]
    pub const fn table_index(self, level: Level) -> usize {
        ((self.0 >> level.shift()) & (ENTRY_COUNT as u64 - 1)) as usize
    }

    /// The position of the address in the 48-bit translated space: the
    /// canonical hole is squeezed out, so lower-half addresses come first and
    /// the order of canonical addresses is kept.
    pub(crate) const fn linear(self) -> u64 {
        self.0 & ((1 << 48) - 1)
    }
}

impl From<VirtAddr> for u64 {
    fn from(addr: VirtAddr) -> Self {
        addr.0
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A 4 KiB virtual page: canonical and page-aligned by construction.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Page(VirtAddr);

impl Page {
    /// The page that holds `addr`, or `None` if `addr` is not canonical.
    #[must_use]
    pub const fn containing(addr: VirtAddr) -> Option<Self> {
        if addr.is_canonical() {
            Some(Self(addr.align_down(PAGE_SIZE)))
        } else {
            None
        }
    }

    /// The page that starts at `addr`, or `None` if `addr` is not canonical
    /// or not page-aligned.
    #[must_use]
    pub const fn from_start_address(addr: VirtAddr) -> Option<Self> {
        if addr.is_canonical() && addr.is_aligned(PAGE_SIZE) {
            Some(Self(addr))
        } else {
            None
        }
    }

    /// The address of the page's first byte.
    #[must_use]
    pub const fn start_address(self) -> VirtAddr {
        self.0
    }

    /// The page `count` pages further on, or `None` if that overflows or
    /// lands in (or beyond) the canonical hole.
    #[must_use]
    pub const fn checked_add(self, count: u64) -> Option<Self> {
        let Some(bytes) = count.checked_mul(PAGE_SIZE) else {
            return None;
        };
        match self.0.checked_add(bytes) {
            Some(addr) if addr.is_canonical() => Some(Self(addr)),
            _ => None,
        }
    }
}

impl fmt::Debug for Page {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Page({:#x})", self.0.0)
    }
}

/// The size of what one leaf entry maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// A 4 KiB page, mapped by a page-table (level 1) entry.
    Size4KiB,
    /// A 2 MiB huge page, mapped by a page-directory (level 2) entry.
    Size2MiB,
    /// A 1 GiB huge page, mapped by a PDPT (level 3) entry.
    Size1GiB,
}

impl PageSize {
    /// Size in bytes.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        1 << self.level().shift()
    }

    /// The level whose entries map pages of this size.
    #[must_use]
    pub const fn level(self) -> Level {
        match self {
            Self::Size4KiB => Level::Pt,
            Self::Size2MiB => Level::Pd,
            Self::Size1GiB => Level::Pdpt,
        }
    }
}

/// A level of the 4-level table tree, root first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Level 4, the root: each entry covers 512 GiB.
    Pml4,
    /// Level 3: each entry covers 1 GiB.
    Pdpt,
    /// Level 2: each entry covers 2 MiB.
    Pd,
    /// Level 1: each entry maps one 4 KiB page.
    Pt,
}

impl Level {
    /// The four levels, root first.
    pub const ALL: [Self; 4] = [Self::Pml4, Self::Pdpt, Self::Pd, Self::Pt];

    /// How far an address is shifted right to get its index at this level.
    #[must_use]
    pub const fn shift(self) -> u32 {
        FRAME_SHIFT
            + INDEX_BITS
                * match self {
                    Self::Pml4 => 3,
                    Self::Pdpt => 2,
                    Self::Pd => 1,
                    Self::Pt => 0,
                }
    }

    /// Bytes of virtual address space one entry at this level covers.
    #[must_use]
    pub const fn entry_span(self) -> u64 {
        1 << self.shift()
    }

    /// The level below, or `None` for the page table.
    #[must_use]
    pub const fn next(self) -> Option<Self> {
        match self {
            Self::Pml4 => Some(Self::Pdpt),
            Self::Pdpt => Some(Self::Pd),
            Self::Pd => Some(Self::Pt),
            Self::Pt => None,
        }
    }

    /// The page size a leaf entry at this level maps, or `None` for the
    /// root, which cannot hold a leaf.
    #[must_use]
    pub const fn leaf_size(self) -> Option<PageSize> {
        match self {
            Self::Pml4 => None,
            Self::Pdpt => Some(PageSize::Size1GiB),
            Self::Pd => Some(PageSize::Size2MiB),
            Self::Pt => Some(PageSize::Size4KiB),
        }
    }
}
