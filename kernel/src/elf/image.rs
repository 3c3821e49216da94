//! Builds small ELF64 images for the tests.

use super::{EHDR_SIZE, PHDR_SIZE};

/// `PT_LOAD`.
pub const LOAD: u32 = 1;
/// `PF_X`.
pub const X: u32 = 1;
/// `PF_W`.
pub const W: u32 = 2;
/// `PF_R`.
pub const R: u32 = 4;

/// One program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`.
    pub kind: u32,
    /// `p_flags`.
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub file_size: u64,
    /// `p_memsz`.
    pub mem_size: u64,
    /// `p_align`.
    pub align: u64,
}

impl Phdr {
    /// A `PT_LOAD` header with page alignment.
    pub fn load(flags: u32, offset: u64, vaddr: u64, file_size: u64, mem_size: u64) -> Self {
        Self {
            kind: LOAD,
            flags,
            offset,
            vaddr,
            file_size,
            mem_size,
            align: 0x1000,
        }
    }
}

/// The header fields an image is built from; `build` lays them out.
#[derive(Debug, Clone)]
pub struct Image {
    /// `e_ident[0..4]`.
    pub magic: [u8; 4],
    /// `EI_CLASS`.
    pub class: u8,
    /// `EI_DATA`.
    pub data: u8,
    /// `EI_VERSION`.
    pub ident_version: u8,
    /// `e_type`.
    pub kind: u16,
    /// `e_machine`.
    pub machine: u16,
    /// `e_version`.
    pub version: u32,
    /// `e_entry`.
    pub entry: u64,
    /// `e_phoff`; `None` puts the table right after the header.
    pub phoff: Option<u64>,
    /// `e_ehsize`.
    pub ehsize: u16,
    /// `e_phentsize`.
    pub phentsize: u16,
    /// `e_phnum`; `None` counts `phdrs`.
    pub phnum: Option<u16>,
    /// The program headers.
    pub phdrs: Vec<Phdr>,
    /// Total image length; `None` covers the table and every segment's
    /// file bytes.
    pub len: Option<usize>,
}

impl Image {
    /// A typical small program: code (R+X) at 0x40_0000 from file offset
    /// 0x1000, data (R+W) with a zeroed tail at 0x40_2000 from 0x2000, entry
    /// 0x40_0010.
    pub fn program() -> Self {
        Self {
            magic: *b"\x7fELF",
            class: 2,
            data: 1,
            ident_version: 1,
            kind: 2,
            machine: 62,
            version: 1,
            entry: 0x40_0010,
            phoff: None,
            ehsize: 64,
            phentsize: 56,
            phnum: None,
            phdrs: vec![
                Phdr::load(R | X, 0x1000, 0x40_0000, 0x200, 0x200),
                Phdr::load(R | W, 0x2000, 0x40_2000, 0x100, 0x3000),
            ],
            len: None,
        }
    }

    /// The image's bytes. Segment file bytes hold `offset % 251`, so a test
    /// can tell where a slice came from.
    pub fn build(&self) -> Vec<u8> {
        let phoff = self.phoff.unwrap_or(EHDR_SIZE as u64);
        let table_end = phoff as usize + self.phdrs.len() * PHDR_SIZE;
        let data_end = self
            .phdrs
            .iter()
            .map(|p| p.offset.saturating_add(p.file_size).min(1 << 20) as usize)
            .max()
            .unwrap_or(0);
        let len = self.len.unwrap_or(table_end.max(data_end).max(EHDR_SIZE));
        let mut out: Vec<u8> = (0..len.max(table_end)).map(|i| (i % 251) as u8).collect();
        out[..EHDR_SIZE].fill(0);
        out[..4].copy_from_slice(&self.magic);
        out[4] = self.class;
        out[5] = self.data;
        out[6] = self.ident_version;
        out[16..18].copy_from_slice(&self.kind.to_le_bytes());
        out[18..20].copy_from_slice(&self.machine.to_le_bytes());
        out[20..24].copy_from_slice(&self.version.to_le_bytes());
        out[24..32].copy_from_slice(&self.entry.to_le_bytes());
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[52..54].copy_from_slice(&self.ehsize.to_le_bytes());
        out[54..56].copy_from_slice(&self.phentsize.to_le_bytes());
        let phnum = self.phnum.unwrap_or(self.phdrs.len() as u16);
        out[56..58].copy_from_slice(&phnum.to_le_bytes());
        for (i, p) in self.phdrs.iter().enumerate() {
            let at = phoff as usize + i * PHDR_SIZE;
            let entry = &mut out[at..at + PHDR_SIZE];
            entry.fill(0);
            entry[0..4].copy_from_slice(&p.kind.to_le_bytes());
            entry[4..8].copy_from_slice(&p.flags.to_le_bytes());
            entry[8..16].copy_from_slice(&p.offset.to_le_bytes());
            entry[16..24].copy_from_slice(&p.vaddr.to_le_bytes());
            entry[24..32].copy_from_slice(&p.vaddr.to_le_bytes());
            entry[32..40].copy_from_slice(&p.file_size.to_le_bytes());
            entry[40..48].copy_from_slice(&p.mem_size.to_le_bytes());
            entry[48..56].copy_from_slice(&p.align.to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
