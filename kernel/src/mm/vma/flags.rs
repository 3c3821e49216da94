//! VMA flags and kinds.

use core::fmt;

use crate::mm::flag_set::flag_set;
use crate::mm::paging::PageFlags;

/// What a process may do with a VMA's pages, and how the VMA behaves.
///
/// A hand-written bitflags-style newtype, like
/// [`PageFlags`](crate::mm::paging::PageFlags). The values are Linux's
/// `VM_*` bits, which makes dumps easy to compare.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(transparent)]
pub struct VmFlags(u32);

impl VmFlags {
    /// `VM_READ`: the pages may be read.
    pub const READ: Self = Self(1 << 0);
    /// `VM_WRITE`: the pages may be written.
    pub const WRITE: Self = Self(1 << 1);
    /// `VM_EXEC`: instructions may be fetched from the pages.
    pub const EXEC: Self = Self(1 << 2);
    /// `VM_SHARED`: writes are seen by every process mapping the pages
    /// (no copy-on-write after `fork`).
    pub const SHARED: Self = Self(1 << 3);
    /// `VM_GROWSDOWN`: a stack; a fault just below it grows it down.
    pub const GROWSDOWN: Self = Self(1 << 8);
    /// `VM_GROWSUP`: the VMA may grow upwards (kept free above, never grown
    /// here).
    pub const GROWSUP: Self = Self(1 << 9);

    /// The access bits: `READ | WRITE | EXEC`, the ones `mprotect` changes.
    pub const ACCESS: Self = Self(Self::READ.0 | Self::WRITE.0 | Self::EXEC.0);

    /// Every named flag with its name, in bit order, for `Debug`.
    const NAMED: [(Self, &'static str); 6] = [
        (Self::READ, "READ"),
        (Self::WRITE, "WRITE"),
        (Self::EXEC, "EXEC"),
        (Self::SHARED, "SHARED"),
        (Self::GROWSDOWN, "GROWSDOWN"),
        (Self::GROWSUP, "GROWSUP"),
    ];

    /// Every named flag.
    #[must_use]
    pub const fn all() -> Self {
        Self(Self::ACCESS.0 | Self::SHARED.0 | Self::GROWSDOWN.0 | Self::GROWSUP.0)
    }

    /// The page-table flags of a present page of a VMA with these flags:
    /// always `USER`, `WRITABLE` for `WRITE`, `NO_EXECUTE` unless `EXEC`.
    /// `PRESENT` is left to the caller, which may also clear `WRITABLE` on a
    /// private page shared copy-on-write.
    #[must_use]
    pub const fn page_flags(self) -> PageFlags {
        let mut flags = PageFlags::USER;
        if self.contains(Self::WRITE) {
            flags.insert(PageFlags::WRITABLE);
        }
        if !self.contains(Self::EXEC) {
            flags.insert(PageFlags::NO_EXECUTE);
        }
        flags
    }
}

flag_set!(VmFlags, u32);

impl VmFlags {
    /// The bits as the protocol numbers them (`probe_proto::names::vm`).
    #[must_use]
    pub fn wire_bits(self) -> u32 {
        use probe_proto::names::vm;
        [
            (Self::READ, vm::READ),
            (Self::WRITE, vm::WRITE),
            (Self::EXEC, vm::EXEC),
            (Self::SHARED, vm::SHARED),
            (Self::GROWSUP, vm::GROWSUP),
            (Self::GROWSDOWN, vm::GROWSDOWN),
        ]
        .into_iter()
        .filter(|(f, _)| self.contains(*f))
        .map(|(_, bit)| bit)
        .sum()
    }
}

impl fmt::Display for VmFlags {
    /// The four columns of `/proc/PID/maps` (`rwxp`, `r--s`, `---p`), in
    /// the words both sides print; growth is the VMA's to say.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use probe_proto::names::{VmaFlags, vm};
        let columns = vm::READ | vm::WRITE | vm::EXEC | vm::SHARED;
        VmaFlags(self.wire_bits() & columns).fmt(f)
    }
}

/// What a VMA holds: the protocol's kind, so the kernel keeps, reports
/// and names one type (`VmaKind::name`).
pub use probe_proto::VmaKind;
