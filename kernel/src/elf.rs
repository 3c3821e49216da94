//! A validating ELF64 parser for the ring-3 programs the kernel loads.
//!
//! [`ElfFile::parse`] checks everything a loader relies on before anything
//! is mapped: the header (magic, 64-bit class, little-endian, version,
//! x86_64, `ET_EXEC`), the program header table, and every `PT_LOAD`
//! segment (inside the file, `p_filesz <= p_memsz`, its pages in the user
//! range of [`mm::vma`](crate::mm::vma), never writable and executable at
//! once, sorted by address and not sharing a page with another segment),
//! and that the entry point lies in an executable segment. Every sum is
//! checked, so no input can overflow or panic the parser. Programs needing
//! an interpreter or dynamic linking are refused.
//!
//! The parser copies nothing: an [`ElfFile`] borrows the image, and
//! [`ElfFile::segment_data`] returns a segment's bytes as a sub-slice. The
//! fields are read byte by byte, so the image needs no alignment.
//!
//! ```
//! use kernel::elf::{ElfError, ElfFile};
//!
//! // An ELF header alone: no program headers.
//! let mut image = [0u8; 64];
//! image[..4].copy_from_slice(b"\x7fELF");
//! image[4..7].copy_from_slice(&[2, 1, 1]); // ELFCLASS64, little-endian, version 1
//! image[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
//! image[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
//! image[20..24].copy_from_slice(&1u32.to_le_bytes()); // EV_CURRENT
//! image[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
//! image[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
//! assert_eq!(ElfFile::parse(&image).err(), Some(ElfError::NoLoadSegments));
//! assert_eq!(ElfFile::parse(&image[..63]).err(), Some(ElfError::Truncated));
//! ```
//!
//! A loader then walks [`ElfFile::segments`]: for each, it inserts
//! [`Segment::vma`] into the process's VMA set, maps its pages, copies
//! [`ElfFile::segment_data`] to [`Segment::vaddr`] and leaves the rest of
//! the memory size zero. Parsing is O(number of program headers).
#![forbid(unsafe_code)]

#[cfg(test)]
mod image;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use core::fmt;

use crate::mm::paging::{PAGE_SIZE, VirtAddr};
use crate::mm::vma::{VmFlags, Vma, VmaError, VmaKind};

/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;

/// `e_type` of an executable with fixed addresses.
const ET_EXEC: u16 = 2;
/// `e_machine` of x86_64.
const EM_X86_64: u16 = 62;
/// `e_phnum` meaning "the count is elsewhere" (extended numbering).
const PN_XNUM: u16 = 0xffff;
/// A loadable segment.
const PT_LOAD: u32 = 1;
/// Dynamic linking information.
const PT_DYNAMIC: u32 = 2;
/// The path of a program interpreter.
const PT_INTERP: u32 = 3;
/// Segment flag: executable.
const PF_X: u32 = 1;
/// Segment flag: writable.
const PF_W: u32 = 2;
/// Segment flag: readable.
const PF_R: u32 = 4;

/// Why an image was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElfError {
    /// The image is shorter than an ELF header.
    Truncated,
    /// The image does not start with `\x7fELF`.
    BadMagic,
    /// `EI_CLASS` is not `ELFCLASS64`; this is the value found.
    NotElf64(u8),
    /// `EI_DATA` is not `ELFDATA2LSB` (little-endian); the value found.
    NotLittleEndian(u8),
    /// `EI_VERSION` or `e_version` is not 1.
    BadVersion,
    /// `e_machine` is not `EM_X86_64`; the value found.
    NotX86_64(u16),
    /// `e_type` is not `ET_EXEC` (relocatable, shared, PIE or core); the
    /// value found.
    NotExecutable(u16),
    /// `e_ehsize` is not 64; the value found.
    BadHeaderSize(u16),
    /// `e_phentsize` is not 56; the value found.
    BadProgramHeaderSize(u16),
    /// `e_phnum` is `PN_XNUM`: the count is in a section header, which this
    /// parser does not read.
    ExtendedNumbering,
    /// The program header table lies (partly) outside the file or over the
    /// ELF header, or its end overflows.
    ProgramHeadersOutOfFile,
    /// Program header `index` is `PT_INTERP` or `PT_DYNAMIC`: the program
    /// needs a dynamic linker.
    NeedsDynamicLinking {
        /// Index of the program header.
        index: usize,
    },
    /// No `PT_LOAD` segment.
    NoLoadSegments,
    /// The `PT_LOAD` segment of program header `index` is malformed.
    Segment {
        /// Index of the program header.
        index: usize,
        /// What is wrong with it.
        error: SegmentError,
    },
    /// The `PT_LOAD` segment of header `second` starts below that of
    /// header `first`, which comes before it (the ELF specification sorts
    /// them by address).
    SegmentsOutOfOrder {
        /// Index of the earlier program header.
        first: usize,
        /// Index of the later program header.
        second: usize,
    },
    /// The `PT_LOAD` segments of headers `first` and `second` share a page.
    SegmentsOverlap {
        /// Index of the earlier program header.
        first: usize,
        /// Index of the later program header.
        second: usize,
    },
    /// The entry point lies in no executable segment.
    EntryNotExecutable(VirtAddr),
}

/// What is wrong with one `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentError {
    /// `p_offset + p_filesz` or `p_vaddr + p_memsz` (rounded up to a page)
    /// overflows.
    Overflow,
    /// `p_filesz > p_memsz`.
    FileSizeExceedsMemSize,
    /// The file bytes `p_offset..p_offset + p_filesz` are not all in the
    /// image.
    OutOfFile,
    /// `p_memsz` is 0.
    Empty,
    /// The pages the segment covers may not be user memory: they reach the
    /// kernel half, the non-canonical hole, the null page or the last user
    /// page.
    Address(VmaError),
    /// The segment is both writable and executable.
    WriteExecute,
    /// `p_align` is not a power of two, or `p_vaddr` and `p_offset` differ
    /// modulo it.
    BadAlignment,
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("image shorter than an ELF header"),
            Self::BadMagic => f.write_str("not an ELF image (bad magic)"),
            Self::NotElf64(class) => write!(f, "not a 64-bit ELF (class {class})"),
            Self::NotLittleEndian(data) => write!(f, "not little-endian (data encoding {data})"),
            Self::BadVersion => f.write_str("unknown ELF version"),
            Self::NotX86_64(machine) => write!(f, "not an x86_64 image (machine {machine})"),
            Self::NotExecutable(ty) => write!(f, "not a fixed-address executable (type {ty})"),
            Self::BadHeaderSize(size) => write!(f, "ELF header size {size}, not 64"),
            Self::BadProgramHeaderSize(size) => {
                write!(f, "program header size {size}, not 56")
            }
            Self::ExtendedNumbering => f.write_str("extended program header numbering"),
            Self::ProgramHeadersOutOfFile => f.write_str("program header table outside the file"),
            Self::NeedsDynamicLinking { index } => {
                write!(f, "program header {index} asks for dynamic linking")
            }
            Self::NoLoadSegments => f.write_str("no loadable segment"),
            Self::Segment { index, error } => write!(f, "segment {index}: {error}"),
            Self::SegmentsOutOfOrder { first, second } => {
                write!(f, "segment {second} starts below segment {first}")
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "segments {first} and {second} share a page")
            }
            Self::EntryNotExecutable(entry) => {
                write!(
                    f,
                    "entry point {:#x} is in no executable segment",
                    entry.as_u64()
                )
            }
        }
    }
}

impl core::error::Error for ElfError {}

impl fmt::Display for SegmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Overflow => f.write_str("offset or address arithmetic overflows"),
            Self::FileSizeExceedsMemSize => f.write_str("file size exceeds memory size"),
            Self::OutOfFile => f.write_str("file bytes beyond the end of the image"),
            Self::Empty => f.write_str("memory size 0"),
            Self::Address(error) => write!(f, "not user memory: {error}"),
            Self::WriteExecute => f.write_str("writable and executable"),
            Self::BadAlignment => f.write_str("bad alignment"),
        }
    }
}

/// A `PT_LOAD` segment of a parsed image, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Segment {
    /// Index of its program header.
    index: usize,
    /// `p_vaddr`.
    vaddr: VirtAddr,
    /// `p_memsz`, not 0.
    mem_size: u64,
    /// `p_filesz`, at most `mem_size`.
    file_size: u64,
    /// `p_offset`; `offset + file_size` is within the image.
    offset: u64,
    /// `p_flags`.
    flags: u32,
}

impl Segment {
    /// Index of the segment's program header.
    #[must_use]
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Where the segment's first byte goes (`p_vaddr`).
    #[must_use]
    pub const fn vaddr(&self) -> VirtAddr {
        self.vaddr
    }

    /// Bytes of memory the segment takes (`p_memsz`), never 0.
    #[must_use]
    pub const fn mem_size(&self) -> u64 {
        self.mem_size
    }

    /// Bytes copied from the file (`p_filesz`); the rest of the memory size
    /// is zero-filled.
    #[must_use]
    pub const fn file_size(&self) -> u64 {
        self.file_size
    }

    /// Offset of the segment's bytes in the image (`p_offset`).
    #[must_use]
    pub const fn file_offset(&self) -> u64 {
        self.offset
    }

    /// The raw `p_flags`.
    #[must_use]
    pub const fn raw_flags(&self) -> u32 {
        self.flags
    }

    /// Whether `PF_R` is set.
    #[must_use]
    pub const fn is_readable(&self) -> bool {
        self.flags & PF_R != 0
    }

    /// Whether `PF_W` is set.
    #[must_use]
    pub const fn is_writable(&self) -> bool {
        self.flags & PF_W != 0
    }

    /// Whether `PF_X` is set.
    #[must_use]
    pub const fn is_executable(&self) -> bool {
        self.flags & PF_X != 0
    }

    /// The VMA flags of the segment: `READ`, `WRITE`, `EXEC` from `PF_R`,
    /// `PF_W`, `PF_X`.
    #[must_use]
    pub const fn vm_flags(&self) -> VmFlags {
        let mut flags = VmFlags::empty();
        flags.set(VmFlags::READ, self.is_readable());
        flags.set(VmFlags::WRITE, self.is_writable());
        flags.set(VmFlags::EXEC, self.is_executable());
        flags
    }

    /// [`Code`](VmaKind::Code) for an executable segment, else
    /// [`Data`](VmaKind::Data).
    #[must_use]
    pub const fn vma_kind(&self) -> VmaKind {
        if self.is_executable() {
            VmaKind::Code
        } else {
            VmaKind::Data
        }
    }

    /// The first address of the segment's first page.
    #[must_use]
    pub const fn page_start(&self) -> VirtAddr {
        self.vaddr.align_down(PAGE_SIZE)
    }

    /// One past the segment's last page.
    #[must_use]
    pub const fn page_end(&self) -> VirtAddr {
        // The parser checked that this neither overflows nor leaves user
        // space.
        let end = self.vaddr.as_u64() + self.mem_size;
        VirtAddr::new(end.next_multiple_of(PAGE_SIZE))
    }

    /// Whether `addr` lies in `[vaddr, vaddr + mem_size)`.
    #[must_use]
    pub const fn contains(&self, addr: VirtAddr) -> bool {
        let offset = addr.as_u64().wrapping_sub(self.vaddr.as_u64());
        addr.as_u64() >= self.vaddr.as_u64() && offset < self.mem_size
    }

    /// The VMA of the segment's pages, with its flags and kind.
    #[must_use]
    pub fn vma(&self) -> Vma {
        Vma::new(
            self.page_start(),
            self.page_end(),
            self.vm_flags(),
            self.vma_kind(),
        )
        .expect("ElfFile::parse checked the segment's pages and flags")
    }
}

/// A parsed, checked ELF64 executable borrowing its image.
#[derive(Debug, Clone, Copy)]
pub struct ElfFile<'a> {
    /// The whole image.
    bytes: &'a [u8],
    /// `e_entry`, inside an executable segment.
    entry: VirtAddr,
    /// Offset of the program header table, which lies in `bytes`.
    phoff: usize,
    /// Number of program headers.
    phnum: usize,
    /// Number of `PT_LOAD` headers, at least 1.
    nr_segments: usize,
}

/// The fields of one program header, as read.
struct RawPhdr {
    /// `p_type`.
    kind: u32,
    /// `p_flags`.
    flags: u32,
    /// `p_offset`.
    offset: u64,
    /// `p_vaddr`.
    vaddr: u64,
    /// `p_filesz`.
    file_size: u64,
    /// `p_memsz`.
    mem_size: u64,
    /// `p_align`.
    align: u64,
}

/// `N` bytes of `bytes` at `at`, if they are all there.
fn read<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The little-endian `u16` at `at`.
fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    read(bytes, at).map(u16::from_le_bytes)
}

/// The little-endian `u32` at `at`.
fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    read(bytes, at).map(u32::from_le_bytes)
}

/// The little-endian `u64` at `at`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    read(bytes, at).map(u64::from_le_bytes)
}

/// The program header at `at`, if it is all in `bytes`.
fn raw_phdr(bytes: &[u8], at: usize) -> Option<RawPhdr> {
    let entry = bytes.get(at..at.checked_add(PHDR_SIZE)?)?;
    Some(RawPhdr {
        kind: u32_at(entry, 0)?,
        flags: u32_at(entry, 4)?,
        offset: u64_at(entry, 8)?,
        vaddr: u64_at(entry, 16)?,
        file_size: u64_at(entry, 32)?,
        mem_size: u64_at(entry, 40)?,
        align: u64_at(entry, 48)?,
    })
}

/// Checks one `PT_LOAD` header against an image of `len` bytes.
fn check_segment(raw: &RawPhdr, index: usize, len: u64) -> Result<Segment, SegmentError> {
    let file_end = raw
        .offset
        .checked_add(raw.file_size)
        .ok_or(SegmentError::Overflow)?;
    let mem_end = raw
        .vaddr
        .checked_add(raw.mem_size)
        .ok_or(SegmentError::Overflow)?;
    if raw.file_size > raw.mem_size {
        return Err(SegmentError::FileSizeExceedsMemSize);
    }
    if file_end > len {
        return Err(SegmentError::OutOfFile);
    }
    if raw.mem_size == 0 {
        return Err(SegmentError::Empty);
    }
    let page_end = mem_end
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(SegmentError::Overflow)?;
    let page_start = VirtAddr::new(raw.vaddr).align_down(PAGE_SIZE);
    Vma::new(
        page_start,
        VirtAddr::new(page_end),
        VmFlags::empty(),
        VmaKind::Data,
    )
    .map_err(SegmentError::Address)?;
    if raw.flags & (PF_W | PF_X) == PF_W | PF_X {
        return Err(SegmentError::WriteExecute);
    }
    if raw.align > 1
        && (!raw.align.is_power_of_two() || raw.vaddr % raw.align != raw.offset % raw.align)
    {
        return Err(SegmentError::BadAlignment);
    }
    Ok(Segment {
        index,
        vaddr: VirtAddr::new(raw.vaddr),
        mem_size: raw.mem_size,
        file_size: raw.file_size,
        offset: raw.offset,
        flags: raw.flags,
    })
}

impl<'a> ElfFile<'a> {
    /// Parses and checks `bytes`. O(number of program headers).
    ///
    /// # Errors
    ///
    /// The first problem found, as an [`ElfError`]: header fields in file
    /// order, then each program header in turn, then the entry point.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ElfError> {
        let header: [u8; EHDR_SIZE] = read(bytes, 0).ok_or(ElfError::Truncated)?;
        let h16 = |at| u16_at(&header, at).ok_or(ElfError::Truncated);
        let h32 = |at| u32_at(&header, at).ok_or(ElfError::Truncated);
        let h64 = |at| u64_at(&header, at).ok_or(ElfError::Truncated);
        if header[..4] != *b"\x7fELF" {
            return Err(ElfError::BadMagic);
        }
        if header[4] != 2 {
            return Err(ElfError::NotElf64(header[4]));
        }
        if header[5] != 1 {
            return Err(ElfError::NotLittleEndian(header[5]));
        }
        if header[6] != 1 {
            return Err(ElfError::BadVersion);
        }
        let e_type = h16(16)?;
        if e_type != ET_EXEC {
            return Err(ElfError::NotExecutable(e_type));
        }
        let machine = h16(18)?;
        if machine != EM_X86_64 {
            return Err(ElfError::NotX86_64(machine));
        }
        if h32(20)? != 1 {
            return Err(ElfError::BadVersion);
        }
        let entry = VirtAddr::new(h64(24)?);
        let phoff = h64(32)?;
        let ehsize = h16(52)?;
        if usize::from(ehsize) != EHDR_SIZE {
            return Err(ElfError::BadHeaderSize(ehsize));
        }
        let phentsize = h16(54)?;
        if usize::from(phentsize) != PHDR_SIZE {
            return Err(ElfError::BadProgramHeaderSize(phentsize));
        }
        let phnum = h16(56)?;
        if phnum == PN_XNUM {
            return Err(ElfError::ExtendedNumbering);
        }
        let phnum = usize::from(phnum);
        let phoff = usize::try_from(phoff).map_err(|_| ElfError::ProgramHeadersOutOfFile)?;
        let table_end = phnum
            .checked_mul(PHDR_SIZE)
            .and_then(|size| size.checked_add(phoff))
            .ok_or(ElfError::ProgramHeadersOutOfFile)?;
        if phnum > 0 && (phoff < EHDR_SIZE || table_end > bytes.len()) {
            return Err(ElfError::ProgramHeadersOutOfFile);
        }

        let len = bytes.len() as u64;
        let mut nr_segments = 0;
        let mut last: Option<Segment> = None;
        for index in 0..phnum {
            let raw = raw_phdr(bytes, phoff + index * PHDR_SIZE)
                .ok_or(ElfError::ProgramHeadersOutOfFile)?;
            match raw.kind {
                PT_INTERP | PT_DYNAMIC => return Err(ElfError::NeedsDynamicLinking { index }),
                PT_LOAD => {}
                _ => continue,
            }
            let segment = check_segment(&raw, index, len)
                .map_err(|error| ElfError::Segment { index, error })?;
            if let Some(prev) = last {
                if segment.vaddr < prev.vaddr {
                    return Err(ElfError::SegmentsOutOfOrder {
                        first: prev.index,
                        second: index,
                    });
                }
                if segment.page_start() < prev.page_end() {
                    return Err(ElfError::SegmentsOverlap {
                        first: prev.index,
                        second: index,
                    });
                }
            }
            last = Some(segment);
            nr_segments += 1;
        }
        if nr_segments == 0 {
            return Err(ElfError::NoLoadSegments);
        }
        let elf = Self {
            bytes,
            entry,
            phoff,
            phnum,
            nr_segments,
        };
        if !elf
            .segments()
            .any(|s| s.is_executable() && s.contains(entry))
        {
            return Err(ElfError::EntryNotExecutable(entry));
        }
        Ok(elf)
    }

    /// The entry point (`e_entry`), inside an executable segment.
    #[must_use]
    pub const fn entry(&self) -> VirtAddr {
        self.entry
    }

    /// The whole image.
    #[must_use]
    pub const fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// How many `PT_LOAD` segments there are (at least 1).
    #[must_use]
    pub const fn nr_segments(&self) -> usize {
        self.nr_segments
    }

    /// The `PT_LOAD` segments, in address order.
    #[must_use]
    pub fn segments(&self) -> Segments<'a> {
        Segments {
            bytes: self.bytes,
            phoff: self.phoff,
            next: 0,
            phnum: self.phnum,
        }
    }

    /// The bytes of `segment` in the image (`p_filesz` of them).
    ///
    /// A `segment` from another image yields the bytes at its offset here
    /// if they exist, else an empty slice.
    #[must_use]
    pub fn segment_data(&self, segment: &Segment) -> &'a [u8] {
        usize::try_from(segment.offset)
            .ok()
            .zip(usize::try_from(segment.file_size).ok())
            .and_then(|(start, size)| self.bytes.get(start..start.checked_add(size)?))
            .unwrap_or(&[])
    }
}

/// The `PT_LOAD` segments of an [`ElfFile`], in address order.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    /// The image.
    bytes: &'a [u8],
    /// Offset of the program header table.
    phoff: usize,
    /// Index of the next header to look at.
    next: usize,
    /// Number of program headers.
    phnum: usize,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        while self.next < self.phnum {
            let index = self.next;
            self.next += 1;
            let raw = raw_phdr(self.bytes, self.phoff + index * PHDR_SIZE)?;
            if raw.kind == PT_LOAD {
                // Checked by `ElfFile::parse`; `ok()` only keeps this panic-free.
                return check_segment(&raw, index, self.bytes.len() as u64).ok();
            }
        }
        None
    }
}
