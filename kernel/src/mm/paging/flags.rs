//! Page-table entry flags and the entry type itself.
//!
//! Flags are a hand-written bitflags-style newtype so that the pure `mm` code
//! needs no dependency; the bit positions are the architectural ones, so an
//! entry is `address | flags` with no translation.

use core::fmt;

use super::addr::PageSize;
use crate::mm::flag_set::flag_set;
use crate::mm::frame::{Frame, PhysAddr};

/// Bits 12..52 of an entry: the physical address of the next table or of a
/// 4 KiB page. Every other bit is a flag.
pub const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Bit 12 of a 2 MiB or 1 GiB leaf selects the PAT entry, so a huge leaf's
/// address starts at bit 21 or 30; [`PageTableEntry::addr_for`] masks it off.
const HUGE_PAT: u64 = 1 << 12;

/// The flag bits of a page-table entry.
///
/// Only bits outside [`ADDRESS_MASK`] can be set, so an entry built from an
/// address and flags never has one spill into the other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PageFlags(u64);

impl PageFlags {
    /// The entry is in use; every other bit means nothing to the CPU without it.
    pub const PRESENT: Self = Self(1 << 0);
    /// Writes are allowed (with CR0.WP, for the kernel too).
    pub const WRITABLE: Self = Self(1 << 1);
    /// Ring 3 may access it; needed at every level of the walk.
    pub const USER: Self = Self(1 << 2);
    /// Write-through caching.
    pub const WRITE_THROUGH: Self = Self(1 << 3);
    /// Caching disabled (device memory).
    pub const NO_CACHE: Self = Self(1 << 4);
    /// Set by the CPU when the entry is used for a translation.
    pub const ACCESSED: Self = Self(1 << 5);
    /// Set by the CPU on a write through a leaf.
    pub const DIRTY: Self = Self(1 << 6);
    /// In a PDPT or PD entry: the entry is a 1 GiB or 2 MiB leaf. In a page
    /// table entry this bit is PAT; the mapper manages it and never lets a
    /// caller set it on a 4 KiB page.
    pub const HUGE: Self = Self(1 << 7);
    /// The translation survives CR3 reloads (kernel pages).
    pub const GLOBAL: Self = Self(1 << 8);
    /// Software: the page is shared copy-on-write; a write fault copies it.
    pub const COW: Self = Self(1 << 9);
    /// Software: free for the kernel's own use.
    pub const SOFTWARE_10: Self = Self(1 << 10);
    /// Software: free for the kernel's own use.
    pub const SOFTWARE_11: Self = Self(1 << 11);
    /// Instruction fetches fault (needs EFER.NXE); at any level it forbids
    /// execution of everything below.
    pub const NO_EXECUTE: Self = Self(1 << 63);

    /// Every named flag with its name, in bit order, for `Debug`.
    const NAMED: [(Self, &'static str); 13] = [
        (Self::PRESENT, "PRESENT"),
        (Self::WRITABLE, "WRITABLE"),
        (Self::USER, "USER"),
        (Self::WRITE_THROUGH, "WRITE_THROUGH"),
        (Self::NO_CACHE, "NO_CACHE"),
        (Self::ACCESSED, "ACCESSED"),
        (Self::DIRTY, "DIRTY"),
        (Self::HUGE, "HUGE"),
        (Self::GLOBAL, "GLOBAL"),
        (Self::COW, "COW"),
        (Self::SOFTWARE_10, "SOFTWARE_10"),
        (Self::SOFTWARE_11, "SOFTWARE_11"),
        (Self::NO_EXECUTE, "NO_EXECUTE"),
    ];

    /// Every bit a flag may use (all bits outside [`ADDRESS_MASK`], named or
    /// not: bits 52..63 are ignored by the CPU or hold protection keys).
    #[must_use]
    pub const fn all() -> Self {
        Self(!ADDRESS_MASK)
    }
}

flag_set!(PageFlags, u64);

/// One 8-byte page-table entry, as the CPU sees it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct PageTableEntry(u64);

impl PageTableEntry {
    /// The all-zero entry: not present, no address, no software bits.
    pub const UNUSED: Self = Self(0);

    /// The entry with raw value `raw`.
    #[must_use]
    pub const fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// An entry pointing at `addr` with `flags`. Bits of `addr` outside
    /// [`ADDRESS_MASK`] are dropped; callers pass frame or huge-page starts.
    #[must_use]
    pub const fn new(addr: PhysAddr, flags: PageFlags) -> Self {
        Self(addr.as_u64() & ADDRESS_MASK | flags.bits())
    }

    /// The raw value.
    #[must_use]
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether the entry is all zero.
    #[must_use]
    pub const fn is_unused(self) -> bool {
        self.0 == 0
    }

    /// Whether the PRESENT bit is set.
    #[must_use]
    pub const fn is_present(self) -> bool {
        self.flags().contains(PageFlags::PRESENT)
    }

    /// Whether the HUGE bit is set (meaningful in PDPT and PD entries only).
    #[must_use]
    pub const fn is_huge(self) -> bool {
        self.flags().contains(PageFlags::HUGE)
    }

    /// The flag bits.
    #[must_use]
    pub const fn flags(self) -> PageFlags {
        PageFlags::from_bits_truncate(self.0)
    }

    /// The address bits: the next table's frame or a 4 KiB page's frame.
    #[must_use]
    pub const fn addr(self) -> PhysAddr {
        PhysAddr::new(self.0 & ADDRESS_MASK)
    }

    /// The start of what a leaf of `size` maps: like [`addr`](Self::addr)
    /// but without the PAT bit and the low bits a huge page cannot use.
    #[must_use]
    pub const fn addr_for(self, size: PageSize) -> PhysAddr {
        match size {
            PageSize::Size4KiB => self.addr(),
            PageSize::Size2MiB | PageSize::Size1GiB => {
                PhysAddr::new(self.0 & ADDRESS_MASK & !HUGE_PAT & !(size.bytes() - 1))
            }
        }
    }

    /// The frame the address bits name.
    #[must_use]
    pub const fn frame(self) -> Frame {
        Frame::containing_address(self.addr())
    }

    /// The same entry with `flags` instead of its current flags.
    #[must_use]
    pub const fn with_flags(self, flags: PageFlags) -> Self {
        Self(self.0 & ADDRESS_MASK | flags.bits())
    }
}

impl fmt::Debug for PageTableEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageTableEntry")
            .field("addr", &self.addr())
            .field("flags", &self.flags())
            .finish()
    }
}
