//! The words both sides print: frame owners, exception names, page-fault
//! causes, page-table and VMA flag letters, process states, fault
//! resolutions. The kernel's `monitor` and mmtop render the same values with
//! these, so a name is written once and never drifts between them.
//!
//! Nothing here allocates: parameterised names are small [`Display`] values.

use core::fmt::{self, Display, Write};

use crate::{
    FaultResolution, FrameErrorKind, FrameOwner, FrameUsage, HeapErrorKind, LogLevel, MemKind,
    ProcState, VmaKind,
};

/// The pid of the kernel's own task: heaps, events and listings with pid 0
/// are the kernel's.
pub const KERNEL_PID: u32 = 0;

impl FrameUsage {
    /// Frames per owner, in the order both sides print them, with the name
    /// of each row ("kernel heap", "page table", ...).
    pub fn by_owner(&self) -> [(&'static str, u64); 11] {
        [
            ("free", self.free),
            ("unusable", self.unusable),
            ("reserved", self.reserved),
            ("kernel image", self.kernel_image),
            ("boot info", self.boot_info),
            ("bitmap", self.bitmap),
            ("kernel heap", self.kernel_heap),
            ("kernel stack", self.kernel_stack),
            ("page table", self.page_table),
            ("process", self.process),
            ("other", self.other),
        ]
    }
}

/// A frame owner as one word: `kernel-heap`, `page-table`, `pid7`,
/// `other-3`.
impl Display for FrameOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            FrameOwner::Unusable => "unusable",
            FrameOwner::Reserved => "reserved",
            FrameOwner::KernelImage => "kernel-image",
            FrameOwner::BootInfo => "boot-info",
            FrameOwner::Bitmap => "bitmap",
            FrameOwner::KernelHeap => "kernel-heap",
            FrameOwner::KernelStack => "kernel-stack",
            FrameOwner::PageTable => "page-table",
            FrameOwner::Process(pid) => return write!(f, "pid{pid}"),
            FrameOwner::Other(tag) => return write!(f, "other-{tag}"),
        };
        f.write_str(name)
    }
}

impl ProcState {
    /// `runnable`, `sleeping`, `zombie` or `kernel`.
    pub const fn name(self) -> &'static str {
        match self {
            ProcState::Runnable => "runnable",
            ProcState::Sleeping => "sleeping",
            ProcState::Zombie => "zombie",
            ProcState::Kernel => "kernel",
        }
    }
}

impl VmaKind {
    /// `code`, `data`, `heap`, `stack`, `mmap` or `shed`.
    pub const fn name(self) -> &'static str {
        match self {
            VmaKind::Code => "code",
            VmaKind::Data => "data",
            VmaKind::Heap => "heap",
            VmaKind::Stack => "stack",
            VmaKind::Mmap => "mmap",
            VmaKind::Shed => "shed",
        }
    }
}

impl Display for VmaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FaultResolution {
    /// `demand`, `copy-on-write`, `cow-reuse`, `stack-growth` or `killed`.
    pub const fn name(self) -> &'static str {
        match self {
            FaultResolution::Demand => "demand",
            FaultResolution::CopyOnWrite => "copy-on-write",
            FaultResolution::CowReuse => "cow-reuse",
            FaultResolution::StackGrowth => "stack-growth",
            FaultResolution::Killed => "killed",
        }
    }
}

impl LogLevel {
    /// `ERROR`, `WARN`, `INFO` or `DEBUG`.
    pub const fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        }
    }
}

impl FrameErrorKind {
    /// `double-free`, `reserved`, `out-of-range`, ...
    pub const fn name(self) -> &'static str {
        match self {
            FrameErrorKind::DoubleFree => "double-free",
            FrameErrorKind::Reserved => "reserved",
            FrameErrorKind::OutOfRange => "out-of-range",
            FrameErrorKind::Unaligned => "unaligned",
            FrameErrorKind::OutOfMemory => "out-of-memory",
            FrameErrorKind::InvalidRequest => "invalid-request",
            FrameErrorKind::Other => "other",
        }
    }
}

/// A heap error as one word; a red-zone overflow gives the offset of its
/// first damaged byte from the payload start (`red-zone-overflow@+12`).
impl Display for HeapErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            HeapErrorKind::OutOfMemory => "out-of-memory",
            HeapErrorKind::InvalidLayout => "invalid-layout",
            HeapErrorKind::InvalidPointer => "invalid-pointer",
            HeapErrorKind::DoubleFree => "double-free",
            HeapErrorKind::CorruptHeader => "corrupt-header",
            HeapErrorKind::RedZoneOverflow { offset } => {
                return write!(f, "red-zone-overflow@+{offset}");
            }
            HeapErrorKind::Inconsistent => "inconsistent",
        };
        f.write_str(name)
    }
}

/// A memory-map region's kind: `usable`, `acpi-nvs`, `type-N`.
impl Display for MemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            MemKind::Usable => "usable",
            MemKind::Reserved => "reserved",
            MemKind::AcpiReclaimable => "acpi-reclaimable",
            MemKind::AcpiNvs => "acpi-nvs",
            MemKind::Unusable => "unusable",
            MemKind::Other(t) => return write!(f, "type-{t}"),
        };
        f.write_str(name)
    }
}

/// CPU exception vectors the kernel treats specially.
pub mod vector {
    /// `#DB`.
    pub const DEBUG: u8 = 1;
    /// `#BP` (`int3`).
    pub const BREAKPOINT: u8 = 3;
    /// `#DF`.
    pub const DOUBLE_FAULT: u8 = 8;
    /// `#GP`.
    pub const GENERAL_PROTECTION: u8 = 13;
    /// `#PF`.
    pub const PAGE_FAULT: u8 = 14;
}

/// Names of the CPU exceptions, by vector.
const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// The name of CPU exception `vector` ("page fault", "general protection");
/// `unknown` past the 32 architectural vectors.
pub fn exception_name(vector: u8) -> &'static str {
    EXCEPTION_NAMES
        .get(usize::from(vector))
        .copied()
        .unwrap_or("unknown")
}

/// A CPU exception's name as one lower-case word: `page-fault`, `nmi`.
pub struct ExceptionWord(pub u8);

impl Display for ExceptionWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in exception_name(self.0).chars() {
            f.write_char(if c == ' ' {
                '-'
            } else {
                c.to_ascii_lowercase()
            })?;
        }
        Ok(())
    }
}

/// Bits of a page-fault error code.
pub mod pf {
    /// The page was present: a protection violation.
    pub const PRESENT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// From ring 3.
    pub const USER: u64 = 1 << 2;
    /// A reserved bit was set in an entry.
    pub const RESERVED: u64 = 1 << 3;
    /// An instruction fetch.
    pub const FETCH: u64 = 1 << 4;
    /// A protection-key violation.
    pub const PKEY: u64 = 1 << 5;
    /// A shadow-stack access.
    pub const SHADOW_STACK: u64 = 1 << 6;
}

/// A page-fault error code as comma-separated words:
/// `not-present,write,user`, `protection,fetch,kernel,reserved-bit`.
pub struct PageFaultCause(pub u64);

impl Display for PageFaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.0;
        f.write_str(if code & pf::PRESENT == 0 {
            "not-present"
        } else {
            "protection"
        })?;
        f.write_str(access(code).0)?;
        f.write_str(if code & pf::USER != 0 {
            ",user"
        } else {
            ",kernel"
        })?;
        for (bit, word) in [
            (pf::RESERVED, ",reserved-bit"),
            (pf::PKEY, ",pkey"),
            (pf::SHADOW_STACK, ",shadow-stack"),
        ] {
            if code & bit != 0 {
                f.write_str(word)?;
            }
        }
        Ok(())
    }
}

/// The access of a page-fault error code: as a word after a comma, and as
/// a phrase.
fn access(code: u64) -> (&'static str, &'static str) {
    if code & pf::FETCH != 0 {
        (",fetch", "instruction fetch from")
    } else if code & pf::WRITE != 0 {
        (",write", "write to")
    } else {
        (",read", "read of")
    }
}

/// A page fault in a sentence: `write to non-present page 0x0 in kernel
/// mode`.
pub struct PageFaultSentence {
    /// The CPU's error code.
    pub error_code: u64,
    /// The faulting address (CR2).
    pub addr: u64,
}

impl Display for PageFaultSentence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.error_code;
        let cause = if code & pf::PRESENT != 0 {
            "protection violation on"
        } else {
            "non-present"
        };
        let mode = if code & pf::USER != 0 {
            "user"
        } else {
            "kernel"
        };
        write!(
            f,
            "{} {cause} page {:#x} in {mode} mode",
            access(code).1,
            self.addr
        )?;
        if code & pf::RESERVED != 0 {
            f.write_str(" (reserved bit set)")?;
        }
        Ok(())
    }
}

/// The `VM_*` bits of [`ProcessVma::flags`](crate::ProcessVma::flags).
pub mod vm {
    /// Readable.
    pub const READ: u32 = 1;
    /// Writable.
    pub const WRITE: u32 = 2;
    /// Executable.
    pub const EXEC: u32 = 4;
    /// Shared between address spaces (else private).
    pub const SHARED: u32 = 8;
    /// Grows towards higher addresses.
    pub const GROWSUP: u32 = 16;
    /// Grows towards lower addresses (a stack).
    pub const GROWSDOWN: u32 = 32;
    /// Every named bit.
    pub const ALL: u32 = READ | WRITE | EXEC | SHARED | GROWSUP | GROWSDOWN;
}

/// `VM_*` bits as `/proc/PID/maps` permissions (`r-xp`, `rw-s`), then
/// `+growsdown` / `+growsup` and any unnamed bits raw (`+0x40`).
pub struct VmaFlags(pub u32);

impl Display for VmaFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.0;
        let bit = |mask: u32, c: char| if flags & mask != 0 { c } else { '-' };
        for c in [
            bit(vm::READ, 'r'),
            bit(vm::WRITE, 'w'),
            bit(vm::EXEC, 'x'),
            if flags & vm::SHARED != 0 { 's' } else { 'p' },
        ] {
            f.write_char(c)?;
        }
        if flags & vm::GROWSDOWN != 0 {
            f.write_str("+growsdown")?;
        }
        if flags & vm::GROWSUP != 0 {
            f.write_str("+growsup")?;
        }
        let rest = flags & !vm::ALL;
        if rest != 0 {
            write!(f, "+{rest:#x}")?;
        }
        Ok(())
    }
}

/// Bytes of a 4 KiB page.
const SMALL_PAGE: u64 = 4096;

/// The bits of an x86-64 page-table entry: bit 7 is PS in a 2 MiB or 1 GiB
/// entry but PAT in a 4 KiB one, whose PAT bit in large entries moves to
/// bit 12; bit 9 is the kernel's copy-on-write mark.
pub mod pte {
    /// Present.
    pub const PRESENT: u64 = 1 << 0;
    /// Writable.
    pub const WRITABLE: u64 = 1 << 1;
    /// User-accessible.
    pub const USER: u64 = 1 << 2;
    /// Write-through.
    pub const PWT: u64 = 1 << 3;
    /// Cache disabled.
    pub const PCD: u64 = 1 << 4;
    /// Accessed.
    pub const ACCESSED: u64 = 1 << 5;
    /// Dirty.
    pub const DIRTY: u64 = 1 << 6;
    /// Page size in a directory entry, PAT in a 4 KiB entry.
    pub const HUGE_OR_PAT: u64 = 1 << 7;
    /// Global.
    pub const GLOBAL: u64 = 1 << 8;
    /// Copy-on-write (an OS-available bit).
    pub const COW: u64 = 1 << 9;
    /// PAT in a 2 MiB or 1 GiB entry.
    pub const HUGE_PAT: u64 = 1 << 12;
    /// No execute.
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// Page-table entry flags as `P|W|U|NX`; bits without a name are appended
/// raw (`|0xe00`), and no bit at all reads `-`.
pub struct PageFlagNames {
    /// The entry's flag bits (the frame address bits cleared).
    pub flags: u64,
    /// The size of the page the entry maps, which decides bits 7 and 12.
    pub page_size: u64,
}

impl Display for PageFlagNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let huge = self.page_size > SMALL_PAGE;
        let named: [(u64, &str); 11] = [
            (pte::PRESENT, "P"),
            (pte::WRITABLE, "W"),
            (pte::USER, "U"),
            (pte::PWT, "PWT"),
            (pte::PCD, "PCD"),
            (pte::ACCESSED, "A"),
            (pte::DIRTY, "D"),
            (pte::HUGE_OR_PAT, if huge { "PS" } else { "PAT" }),
            (pte::GLOBAL, "G"),
            (pte::HUGE_PAT, if huge { "PAT" } else { "" }),
            (pte::NO_EXECUTE, "NX"),
        ];
        let mut rest = self.flags;
        let mut first = true;
        for (mask, name) in named {
            if !name.is_empty() && self.flags & mask != 0 {
                if !first {
                    f.write_char('|')?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !mask;
            }
        }
        if rest != 0 {
            if !first {
                f.write_char('|')?;
            }
            write!(f, "{rest:#x}")?;
        } else if first {
            f.write_char('-')?;
        }
        Ok(())
    }
}

/// A leaf's flags as short letters: `r`, `w` or `-`, `x` unless NX, `u`ser
/// or `k`ernel, then `g`lobal, `c`opy-on-write, `a`ccessed, `d`irty
/// (`rw-ua`, `r-xkg`).
pub struct PageFlagLetters(pub u64);

impl Display for PageFlagLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = self.0;
        let on = |mask: u64| flags & mask != 0;
        f.write_char('r')?;
        f.write_char(if on(pte::WRITABLE) { 'w' } else { '-' })?;
        f.write_char(if on(pte::NO_EXECUTE) { '-' } else { 'x' })?;
        f.write_char(if on(pte::USER) { 'u' } else { 'k' })?;
        for (mask, c) in [
            (pte::GLOBAL, 'g'),
            (pte::COW, 'c'),
            (pte::ACCESSED, 'a'),
            (pte::DIRTY, 'd'),
        ] {
            if on(mask) {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::{String, ToString};

    use super::*;

    fn text(d: impl Display) -> String {
        d.to_string()
    }

    #[test]
    fn owner_rows_cover_every_usage_field_in_print_order() {
        let usage = FrameUsage {
            free: 1,
            unusable: 2,
            reserved: 3,
            kernel_image: 4,
            boot_info: 5,
            bitmap: 6,
            kernel_heap: 7,
            kernel_stack: 8,
            page_table: 9,
            process: 10,
            other: 11,
        };
        let rows = usage.by_owner();
        assert_eq!(rows.map(|(_, n)| n), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert_eq!(rows[8].0, "page table");
    }

    #[test]
    fn exception_names_and_words() {
        assert_eq!(exception_name(14), "page fault");
        assert_eq!(exception_name(200), "unknown");
        assert_eq!(text(ExceptionWord(14)), "page-fault");
        assert_eq!(text(ExceptionWord(2)), "nmi");
    }

    #[test]
    fn page_fault_error_codes_in_words_and_sentences() {
        assert_eq!(text(PageFaultCause(0b110)), "not-present,write,user");
        assert_eq!(
            text(PageFaultCause(0b11001)),
            "protection,fetch,kernel,reserved-bit"
        );
        let s = PageFaultSentence {
            error_code: 0b10,
            addr: 0,
        };
        assert_eq!(text(s), "write to non-present page 0x0 in kernel mode");
    }

    #[test]
    fn flag_spellings() {
        assert_eq!(
            text(VmaFlags(vm::READ | vm::WRITE | vm::GROWSDOWN)),
            "rw-p+growsdown"
        );
        assert_eq!(
            text(VmaFlags(vm::READ | vm::EXEC | vm::SHARED | 64)),
            "r-xs+0x40"
        );
        assert_eq!(
            text(PageFlagNames {
                flags: pte::PRESENT | pte::WRITABLE | pte::NO_EXECUTE | 0xe00,
                page_size: 4096
            }),
            "P|W|NX|0xe00"
        );
        assert_eq!(
            text(PageFlagNames {
                flags: 0,
                page_size: 4096
            }),
            "-"
        );
        assert_eq!(
            text(PageFlagLetters(
                pte::PRESENT | pte::WRITABLE | pte::USER | pte::NO_EXECUTE | pte::ACCESSED
            )),
            "rw-ua"
        );
        assert_eq!(text(FrameOwner::Process(7)), "pid7");
        assert_eq!(
            text(HeapErrorKind::RedZoneOverflow { offset: 12 }),
            "red-zone-overflow@+12"
        );
    }
}
