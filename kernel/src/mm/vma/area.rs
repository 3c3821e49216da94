//! One virtual memory area.

use core::fmt;

use super::{VmFlags, VmaError, VmaKind, check_range};
use crate::mm::paging::{PAGE_SIZE, VirtAddr};

/// A page-aligned range `[start, end)` of the user half, its flags, what it
/// holds, and which heap or shed of the process it is.
///
/// [`Vma::new`] checks the range and flags, so a `Vma` from it can always
/// go into a set; [`Vma::UNUSED`] is only a filler for storage.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vma {
    /// First address of the range, page-aligned.
    pub(super) start: VirtAddr,
    /// One past the last address, page-aligned, above `start`.
    pub(super) end: VirtAddr,
    /// Access and behaviour.
    pub(super) flags: VmFlags,
    /// What the range holds.
    pub(super) kind: VmaKind,
    /// Which heap or shed of its kind this is (0 where a process has one).
    pub(super) id: u32,
}

impl Vma {
    /// A filler for the slots of a set's storage that hold no VMA:
    /// `[Vma::UNUSED; N]`. It is empty, so no set accepts it.
    pub const UNUSED: Self = Self {
        start: VirtAddr::new(0),
        end: VirtAddr::new(0),
        flags: VmFlags::empty(),
        kind: VmaKind::Mmap,
        id: 0,
    };

    /// The VMA `[start, end)` with `flags` and `kind`, and id 0.
    ///
    /// # Errors
    ///
    /// [`Unaligned`](VmaError::Unaligned),
    /// [`EmptyRange`](VmaError::EmptyRange),
    /// [`NonCanonical`](VmaError::NonCanonical),
    /// [`KernelHalf`](VmaError::KernelHalf) or
    /// [`OutsideUserRange`](VmaError::OutsideUserRange) for a range a VMA
    /// may not cover; [`InvalidFlags`](VmaError::InvalidFlags) for both
    /// `GROWSUP` and `GROWSDOWN`.
    pub fn new(
        start: VirtAddr,
        end: VirtAddr,
        flags: VmFlags,
        kind: VmaKind,
    ) -> Result<Self, VmaError> {
        let vma = Self {
            start,
            end,
            flags,
            kind,
            id: 0,
        };
        vma.check()?;
        Ok(vma)
    }

    /// The same VMA with id `id` (a heap or shed id).
    #[must_use]
    pub const fn with_id(self, id: u32) -> Self {
        Self { id, ..self }
    }

    /// Checks what [`Vma::new`] checks.
    pub(super) fn check(&self) -> Result<(), VmaError> {
        check_range(self.start, self.end)?;
        if self
            .flags
            .contains(VmFlags::GROWSDOWN.union(VmFlags::GROWSUP))
        {
            return Err(VmaError::InvalidFlags(self.flags));
        }
        Ok(())
    }

    /// First address.
    #[must_use]
    pub const fn start(&self) -> VirtAddr {
        self.start
    }

    /// One past the last address.
    #[must_use]
    pub const fn end(&self) -> VirtAddr {
        self.end
    }

    /// Access and behaviour flags.
    #[must_use]
    pub const fn flags(&self) -> VmFlags {
        self.flags
    }

    /// What the VMA holds.
    #[must_use]
    pub const fn kind(&self) -> VmaKind {
        self.kind
    }

    /// Which heap or shed of its kind this is.
    #[must_use]
    pub const fn id(&self) -> u32 {
        self.id
    }

    /// Length in bytes.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.end.as_u64().wrapping_sub(self.start.as_u64())
    }

    /// Whether the VMA covers no byte (only [`Vma::UNUSED`] does).
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length in pages.
    #[must_use]
    pub const fn nr_pages(&self) -> u64 {
        self.len() / PAGE_SIZE
    }

    /// Whether `addr` lies in `[start, end)`.
    #[must_use]
    pub const fn contains(&self, addr: VirtAddr) -> bool {
        self.start.as_u64() <= addr.as_u64() && addr.as_u64() < self.end.as_u64()
    }

    /// Whether `next` starts where `self` ends and agrees in flags, kind
    /// and id, so the two are one VMA.
    pub(super) fn merges_with(&self, next: &Self) -> bool {
        self.end == next.start
            && self.flags == next.flags
            && self.kind == next.kind
            && self.id == next.id
    }

    /// The part of the VMA in `[lo, hi)`, if any.
    pub(super) fn clip(self, lo: VirtAddr, hi: VirtAddr) -> Option<Self> {
        let start = self.start.max(lo);
        let end = self.end.min(hi);
        (start < end).then_some(Self { start, end, ..self })
    }
}

impl fmt::Debug for Vma {
    /// `Vma(0x400000..0x402000 r-xp code#0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Vma({:#x}..{:#x} {} {}#{})",
            self.start.as_u64(),
            self.end.as_u64(),
            self.flags,
            self.kind,
            self.id
        )
    }
}

impl fmt::Display for Vma {
    /// A line of `/proc/PID/maps`: `00400000-00402000 r-xp code`, with the
    /// id after the kind when it is not 0 (`heap 2`) and `[grows down]` for
    /// a stack that grows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08x}-{:08x} {} {}",
            self.start.as_u64(),
            self.end.as_u64(),
            self.flags,
            self.kind
        )?;
        if self.id != 0 {
            write!(f, " {}", self.id)?;
        }
        if self.flags.contains(VmFlags::GROWSDOWN) {
            f.write_str(" [grows down]")?;
        }
        if self.flags.contains(VmFlags::GROWSUP) {
            f.write_str(" [grows up]")?;
        }
        Ok(())
    }
}
