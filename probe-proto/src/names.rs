//! The words both sides print: frame owners, exception names, page-fault
//! causes, page-table and VMA flag letters, process states, fault
//! resolutions. The kernel's `monitor` and mmtop render the same values with
//! these, so a name is written once and never drifts between them.
//!
//! Nothing here allocates: parameterised names are small [`Display`] values.

use core::fmt::{self, Display, Write};

use crate::{
    AuditKind, CheckFinding, FaultResolution, FindingKind, FrameErrorKind, FrameOwner, FrameUsage,
    HeapErrorKind, KernelLeak, LeakScanEnd, LeakScanStatus, LogLevel, MemKind, ProcState, PtRange,
    Region, VmaKind,
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

/// The bits of [`PtRange::flags`](crate::PtRange::flags): permissions as
/// the MMU combines them over the four levels, and the leaf's caching and
/// global bits.
pub mod pt {
    /// Writable (at every level).
    pub const WRITABLE: u8 = 1 << 0;
    /// User-accessible (at every level).
    pub const USER: u8 = 1 << 1;
    /// Not executable (at some level).
    pub const NO_EXECUTE: u8 = 1 << 2;
    /// Global.
    pub const GLOBAL: u8 = 1 << 3;
    /// Write-through.
    pub const PWT: u8 = 1 << 4;
    /// Cache disabled.
    pub const PCD: u8 = 1 << 5;
    /// Page-attribute-table bit.
    pub const PAT: u8 = 1 << 6;
}

/// A region's name: `text`, `direct-map`, `kernel-heap`, `vma:heap`, `-`.
impl Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Region::Unknown => "-",
            Region::Text => "text",
            Region::Rodata => "rodata",
            Region::Data => "data",
            Region::DirectMap => "direct-map",
            Region::KernelHeap => "kernel-heap",
            Region::Heap => "heap",
            Region::KernelStack => "kernel-stack",
            Region::Vma(kind) => return write!(f, "vma:{}", kind.name()),
        };
        f.write_str(name)
    }
}

/// A range's permission and caching bits as fixed columns, so dumps line
/// up and diff well: `RW USR NX GLB pwt pcd pat`, each replaced by dashes
/// or spaces when clear (`ro ker x  ---`).
pub struct PtFlags(pub u8);

impl Display for PtFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = |bit: u8| self.0 & bit != 0;
        f.write_str(if on(pt::WRITABLE) { "RW " } else { "ro " })?;
        f.write_str(if on(pt::USER) { "USR " } else { "ker " })?;
        f.write_str(if on(pt::NO_EXECUTE) { "NX " } else { "x  " })?;
        f.write_str(if on(pt::GLOBAL) { "GLB " } else { "--- " })?;
        f.write_str(if on(pt::PWT) { "pwt " } else { "--- " })?;
        f.write_str(if on(pt::PCD) { "pcd " } else { "--- " })?;
        f.write_str(if on(pt::PAT) { "pat" } else { "---" })
    }
}

/// A size in bytes, short and human: `4K`, `2M`, `1G`, `12K`, `1536K`.
pub struct ShortSize(pub u64);

impl Display for ShortSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, shift) in [("T", 40), ("G", 30), ("M", 20), ("K", 10)] {
            if b >= 1 << shift && b.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}B")
    }
}

/// One page-table range as a line of a dump, in the spirit of Linux's
/// `kernel_page_tables`: addresses, size, page size, where it maps,
/// flags as columns, region, dirty pages.
pub struct PtRangeLine<'a>(pub &'a PtRange);

impl Display for PtRangeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "{:#018x}-{:#018x} {:>7} {:>3} -> {:#014x} {} {}",
            r.start,
            r.end,
            ShortSize(r.end.wrapping_sub(r.start)).to_padded(),
            ShortSize(r.page_size).to_padded(),
            r.phys,
            PtFlags(r.flags),
            r.region
        )?;
        if r.dirty_pages > 0 {
            write!(f, " dirty={}", r.dirty_pages)?;
        }
        Ok(())
    }
}

impl ShortSize {
    /// As a fixed-width field: formatting width applies to the whole text.
    fn to_padded(&self) -> Padded {
        let mut p = Padded {
            buf: [b' '; 24],
            len: 0,
        };
        let _ = write!(p, "{self}");
        p
    }
}

/// A short text held inline, so width and alignment apply to it as a whole.
struct Padded {
    buf: [u8; 24],
    len: usize,
}

impl Write for Padded {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Display for Padded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What an audit finding says: `writable+executable`, `user page in the
/// kernel half`, ...
impl AuditKind {
    /// The finding in words.
    pub const fn describe(self) -> &'static str {
        match self {
            AuditKind::WritableExecutable => "writable and executable",
            AuditKind::UserInKernelHalf => "user-accessible in the kernel half",
            AuditKind::OutsideVma => "user page outside every VMA",
            AuditKind::BeyondVma => "user page allowing more than its VMA",
            AuditKind::KernelHalfDiffers => "kernel-half entry differs from the kernel's tables",
        }
    }
}

/// What a consistency finding is, in words.
impl FindingKind {
    /// `mapped-but-free`, `wrong-owner`, `share-count`, `leaked-frame`,
    /// `used-without-owner`.
    pub const fn name(self) -> &'static str {
        match self {
            FindingKind::MappedButFree => "mapped-but-free",
            FindingKind::WrongOwner => "wrong-owner",
            FindingKind::ShareCount => "share-count",
            FindingKind::LeakedFrame => "leaked-frame",
            FindingKind::UsedWithoutOwner => "used-without-owner",
        }
    }
}

/// A consistency finding in one line: the frame, what the allocator
/// records, what the mappings say, e.g. `frame 0x1234000: bitmap free,
/// mapped by pid 3 at 0x400000 RW USR NX`.
pub struct FindingLine<'a>(pub &'a CheckFinding);

impl Display for FindingLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.0;
        write!(f, "{}: frame {:#x}: bitmap ", c.kind.name(), c.phys)?;
        f.write_str(if c.used { "used" } else { "free" })?;
        match c.owner {
            Some(owner) => write!(f, ", owner {owner}")?,
            None => f.write_str(", no owner")?,
        }
        match c.kind {
            FindingKind::ShareCount => {
                write!(f, "; {} mappings, share count {}", c.mappings, c.recorded)
            }
            FindingKind::LeakedFrame => {
                write!(f, "; held by no mapping, heap or table of pid {}", c.pid)
            }
            FindingKind::UsedWithoutOwner => Ok(()),
            _ if c.virt == 0 => write!(f, "; a page table of space {}", c.pid),
            _ => write!(
                f,
                "; mapped by {} at {:#x} {}",
                SpaceName(c.pid),
                c.virt,
                PtFlags(c.flags)
            ),
        }
    }
}

/// A space as words: `the kernel` or `pid N`.
pub struct SpaceName(pub u32);

impl Display for SpaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == KERNEL_PID {
            f.write_str("the kernel")
        } else {
            write!(f, "pid {}", self.0)
        }
    }
}

/// An audit finding in one line: `audit: 0x1000-0x2000 RW ker x  ...:
/// writable and executable`.
pub struct AuditLine<'a>(pub &'a crate::PtAudit);

impl Display for AuditLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0;
        write!(
            f,
            "audit: {:#018x}-{:#018x} {}: {}",
            a.start,
            a.end,
            PtFlags(a.flags),
            a.kind.describe()
        )
    }
}

/// The closing lines of a dump: the space, its root and page counts, then
/// the audit's verdict (one reassuring line when it found nothing).
pub struct DumpSummary<'a>(pub &'a crate::PtDumpEnd);

impl Display for DumpSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        writeln!(
            f,
            "{}: root {:#x}, {} ranges of {} 4K, {} 2M and {} 1G pages",
            SpaceName(e.space),
            e.root,
            e.ranges,
            e.pages_4k,
            e.pages_2m,
            e.pages_1g
        )?;
        match e.findings {
            0 => f.write_str(
                "audit: no findings (no W+X page, no user page in the kernel half, every user \
                 page in its VMA)",
            ),
            n => write!(f, "audit: {n} findings"),
        }
    }
}

impl core::str::FromStr for Region {
    type Err = ();

    /// The inverse of `Display`: `text`, `vma:heap`, `-`.
    fn from_str(s: &str) -> Result<Self, ()> {
        const KINDS: [VmaKind; 6] = [
            VmaKind::Code,
            VmaKind::Data,
            VmaKind::Heap,
            VmaKind::Stack,
            VmaKind::Mmap,
            VmaKind::Shed,
        ];
        if let Some(kind) = s.strip_prefix("vma:") {
            return KINDS
                .into_iter()
                .find(|k| k.name() == kind)
                .map(Region::Vma)
                .ok_or(());
        }
        [
            Region::Unknown,
            Region::Text,
            Region::Rodata,
            Region::Data,
            Region::DirectMap,
            Region::KernelHeap,
            Region::Heap,
            Region::KernelStack,
        ]
        .into_iter()
        .find(|r| {
            let mut buf = Padded {
                buf: [0; 24],
                len: 0,
            };
            write!(buf, "{r}").is_ok() && buf.as_str() == s
        })
        .ok_or(())
    }
}

impl Padded {
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Text with its control characters escaped (`\u{1b}`, `\n`) and the rest
/// kept, so a line from an untrusted source stays one harmless line.
pub struct EscapeControls<'a>(pub &'a str);

impl Display for EscapeControls<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// The classes of events the kernel streams (see
/// [`HostMsg::SetEvents`](crate::HostMsg::SetEvents)).
pub mod event_class {
    /// `PageAlloc`, `PageFree`, `FrameError`.
    pub const PAGE: u32 = 1 << 0;
    /// `Map`, `Unmap`.
    pub const MAP: u32 = 1 << 1;
    /// `HeapAlloc`, `HeapFree`, `HeapError`.
    pub const HEAP: u32 = 1 << 2;
    /// `PageFault`.
    pub const FAULT: u32 = 1 << 3;
    /// `ProcessSpawn`, `ProcessExit`, `ProcessRename`.
    pub const PROCESS: u32 = 1 << 4;
    /// Every class.
    pub const ALL: u32 = PAGE | MAP | HEAP | FAULT | PROCESS;
    /// The classes with their names, in order.
    pub const NAMED: [(u32, &str); 5] = [
        (PAGE, "page"),
        (MAP, "map"),
        (HEAP, "heap"),
        (FAULT, "fault"),
        (PROCESS, "process"),
    ];

    /// Classes from a comma-separated list of names, `all` or `none`.
    pub fn parse(text: &str) -> Option<u32> {
        match text {
            "all" => return Some(ALL),
            "none" => return Some(0),
            _ => {}
        }
        text.split(',').try_fold(0, |classes, word| {
            NAMED
                .iter()
                .find(|(_, name)| *name == word.trim())
                .map(|(bit, _)| classes | bit)
        })
    }
}

/// Event classes as a comma-separated list (`page,map,heap`), or `none`.
pub struct EventClasses(pub u32);

impl Display for EventClasses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in event_class::NAMED {
            if self.0 & bit != 0 {
                if !first {
                    f.write_char(',')?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// A kernel leak in one line: address, size, age, whether the previous
/// scan reported it too, and its first bytes, e.g. `leak 0xffffc00000001230
/// size 48 age 2417 ms confirmed bytes 2a 00 00 00 00 00 00 00`.
pub struct KernelLeakLine<'a>(pub &'a KernelLeak);

impl Display for KernelLeakLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.0;
        write!(
            f,
            "leak {:#x} size {} age {} ms {} bytes",
            l.addr,
            l.size,
            l.age_ms,
            if l.confirmed { "confirmed" } else { "new" }
        )?;
        let shown = (l.size as usize).min(l.first_bytes.len());
        for b in &l.first_bytes[..shown] {
            write!(f, " {b:02x}")?;
        }
        Ok(())
    }
}

/// A leak scan's verdict in one line, e.g. `kernel leak scan: 2 leaks (1
/// confirmed) among 310 blocks, 0 untraced; 1.2 MiB scanned in 5123 us
/// (min age 1000 ms)`.
pub struct LeakScanLine<'a>(pub &'a LeakScanEnd);

impl Display for LeakScanLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        match e.status {
            LeakScanStatus::Busy => {
                return f.write_str(
                    "kernel leak scan: not run (another scan, or the code the kernel stopped in, \
                     holds the heap or the process table)",
                );
            }
            LeakScanStatus::NoMemory => {
                return f.write_str("kernel leak scan: not run (no frames for its work area)");
            }
            LeakScanStatus::Done => {}
        }
        write!(
            f,
            "kernel leak scan: {} leaks ({} confirmed) among {} blocks, {} untraced; {} bytes \
             scanned in {} us (min age {} ms)",
            e.leaks,
            e.confirmed,
            e.blocks,
            e.untraced,
            e.scanned_bytes,
            e.duration_us,
            e.min_age_ms
        )
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

    #[test]
    fn page_table_ranges_print_as_aligned_columns() {
        let r = PtRange {
            space: 3,
            start: 0x40_0000,
            end: 0x40_2000,
            phys: 0x12_3000,
            page_size: 4096,
            flags: pt::WRITABLE | pt::USER | pt::NO_EXECUTE,
            pages: 2,
            dirty_pages: 1,
            region: Region::Vma(VmaKind::Heap),
        };
        assert_eq!(
            text(PtRangeLine(&r)),
            "0x0000000000400000-0x0000000000402000      8K  4K -> 0x000000123000 RW USR NX \
             --- --- --- --- vma:heap dirty=1"
        );
        assert_eq!(text(ShortSize(3 << 20)), "3M");
        assert_eq!(text(ShortSize(1536 << 10)), "1536K");
        for region in [
            Region::Unknown,
            Region::DirectMap,
            Region::Vma(VmaKind::Stack),
        ] {
            assert_eq!(text(region).parse::<Region>(), Ok(region));
        }
        assert_eq!("vma:nope".parse::<Region>(), Err(()));
    }

    #[test]
    fn findings_name_the_frame_the_allocator_and_the_mapping() {
        let c = CheckFinding {
            kind: FindingKind::MappedButFree,
            phys: 0x123_4000,
            used: false,
            owner: None,
            pid: 3,
            virt: 0x40_0000,
            flags: pt::WRITABLE | pt::USER | pt::NO_EXECUTE,
            mappings: 1,
            recorded: 0,
        };
        assert_eq!(
            text(FindingLine(&c)),
            "mapped-but-free: frame 0x1234000: bitmap free, no owner; mapped by pid 3 at \
             0x400000 RW USR NX --- --- --- ---"
        );
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            text(EscapeControls("a\u{1b}[31mred\u{7f}\té")),
            "a\\u{1b}[31mred\\u{7f}\\té"
        );
    }

    #[test]
    fn event_classes_read_and_print_as_names() {
        assert_eq!(
            event_class::parse("page,heap"),
            Some(event_class::PAGE | event_class::HEAP)
        );
        assert_eq!(event_class::parse("all"), Some(event_class::ALL));
        assert_eq!(event_class::parse("none"), Some(0));
        assert_eq!(event_class::parse("page,disk"), None);
        assert_eq!(
            text(EventClasses(event_class::ALL)),
            "page,map,heap,fault,process"
        );
        assert_eq!(text(EventClasses(0)), "none");
    }
}
