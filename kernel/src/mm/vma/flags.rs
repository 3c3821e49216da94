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

impl fmt::Display for VmFlags {
    /// The four columns of `/proc/PID/maps`: `rwxp`, `r--s`, `---p`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = |flag, c| if self.contains(flag) { c } else { '-' };
        let shared = if self.contains(Self::SHARED) {
            's'
        } else {
            'p'
        };
        write!(
            f,
            "{}{}{}{shared}",
            column(Self::READ, 'r'),
            column(Self::WRITE, 'w'),
            column(Self::EXEC, 'x'),
        )
    }
}

/// What a VMA holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VmaKind {
    /// Program code loaded from the ELF image.
    Code,
    /// A shed: a region of code or constants the process writes through
    /// the memory API.
    Shed,
    /// Program data loaded from the ELF image, with its zero-filled tail.
    Data,
    /// A keyed heap of the process.
    Heap,
    /// The user stack.
    Stack,
    /// An anonymous `mmap` mapping.
    Mmap,
}

impl VmaKind {
    /// The kind's name as dumps show it: `code`, `shed`, `data`, `heap`,
    /// `stack`, `mmap`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Shed => "shed",
            Self::Data => "data",
            Self::Heap => "heap",
            Self::Stack => "stack",
            Self::Mmap => "mmap",
        }
    }
}

impl fmt::Display for VmaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
