//! What the boot loader told us, copied into kernel memory: the physical
//! memory map and the command line. Pure data, so it is tested on the host.
#![forbid(unsafe_code)]

use probe_proto::{MemKind, MemRegion};

/// Most memory-map entries kept; QEMU reports fewer than ten.
pub const MAX_REGIONS: usize = 64;
/// Longest command line kept, in bytes.
pub const MAX_CMDLINE: usize = 512;

/// One memory-map entry as the firmware gave it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawRegion {
    /// Physical start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// E820 type: 1 RAM, 2 reserved, 3 ACPI, 4 NVS, 5 unusable.
    pub e820_type: u32,
}

impl RawRegion {
    /// The protocol's name for this region's type.
    pub fn kind(&self) -> MemKind {
        match self.e820_type {
            1 => MemKind::Usable,
            2 => MemKind::Reserved,
            3 => MemKind::AcpiReclaimable,
            4 => MemKind::AcpiNvs,
            5 => MemKind::Unusable,
            other => MemKind::Other(other),
        }
    }

    /// Whether the firmware calls this region free RAM (E820 type 1).
    pub fn is_usable(&self) -> bool {
        self.e820_type == 1
    }

    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// The boot information the kernel keeps.
#[derive(Debug, Clone)]
pub struct BootInfo {
    /// Physical address of the loader's start-info block (reserved memory).
    pub start_info_phys: u64,
    regions: [RawRegion; MAX_REGIONS],
    nr_regions: usize,
    /// Entries beyond [`MAX_REGIONS`], ignored but counted.
    pub regions_dropped: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    cmdline_cut: bool,
}

impl BootInfo {
    /// Empty boot info for the start-info block at `start_info_phys`.
    pub const fn new(start_info_phys: u64) -> Self {
        Self {
            start_info_phys,
            regions: [RawRegion {
                start: 0,
                len: 0,
                e820_type: 0,
            }; MAX_REGIONS],
            nr_regions: 0,
            regions_dropped: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_cut: false,
        }
    }

    /// Appends a memory-map entry; empty entries are skipped.
    pub fn push_region(&mut self, region: RawRegion) {
        if region.len == 0 {
            return;
        }
        match self.regions.get_mut(self.nr_regions) {
            Some(slot) => {
                *slot = region;
                self.nr_regions += 1;
            }
            None => self.regions_dropped += 1,
        }
    }

    /// Stores the command line, cut at the first NUL, at [`MAX_CMDLINE`]
    /// bytes and at invalid UTF-8; [`cmdline_cut`](Self::cmdline_cut) says
    /// whether anything before the NUL was left out.
    pub fn set_cmdline(&mut self, bytes: &[u8]) {
        let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
        let n = bytes.len().min(MAX_CMDLINE);
        let valid = match core::str::from_utf8(&bytes[..n]) {
            Ok(s) => s.len(),
            Err(e) => e.valid_up_to(),
        };
        self.cmdline[..valid].copy_from_slice(&bytes[..valid]);
        self.cmdline_len = valid;
        self.cmdline_cut = valid < bytes.len();
    }

    /// Whether the command line was longer than the kernel keeps (or held
    /// invalid UTF-8) and was cut.
    pub fn cmdline_cut(&self) -> bool {
        self.cmdline_cut
    }

    /// The kernel command line.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// The memory map, in firmware order.
    pub fn regions(&self) -> &[RawRegion] {
        &self.regions[..self.nr_regions]
    }

    /// The memory map in protocol form.
    pub fn mem_regions(&self) -> impl Iterator<Item = MemRegion> + '_ {
        self.regions().iter().enumerate().map(|(i, r)| MemRegion {
            index: i as u16,
            start: r.start,
            len: r.len,
            kind: r.kind(),
        })
    }

    /// Bytes of usable RAM.
    pub fn usable_bytes(&self) -> u64 {
        self.regions()
            .iter()
            .filter(|r| r.is_usable())
            .map(|r| r.len)
            .sum()
    }

    /// Bytes of installed RAM, which is what QEMU's `-m` sets.
    ///
    /// The map does not list RAM that firmware shadows (the legacy VGA/BIOS
    /// window at 640 KiB..1 MiB) and marks RAM it keeps (the EBDA, ACPI data
    /// at the top of low memory) as reserved. Below 4 GiB, all addresses up to
    /// the top of RAM are RAM, so that part counts as the top of the highest
    /// usable region, extended through reserved regions that abut it; above
    /// 4 GiB only usable regions count (the rest are device windows).
    pub fn total_ram_bytes(&self) -> u64 {
        const FOUR_GIB: u64 = 1 << 32;
        let mut low_top = 0;
        for r in self
            .regions()
            .iter()
            .filter(|r| r.is_usable() && r.start < FOUR_GIB)
        {
            let mut end = r.end().min(FOUR_GIB);
            while let Some(next) = self
                .regions()
                .iter()
                .find(|n| n.start == end && !n.is_usable() && n.end() <= FOUR_GIB)
            {
                end = next.end();
            }
            low_top = low_top.max(end);
        }
        let high: u64 = self
            .regions()
            .iter()
            .filter(|r| r.is_usable() && r.end() > FOUR_GIB)
            .map(|r| r.end() - r.start.max(FOUR_GIB))
            .sum();
        low_top + high
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(regions: &[(u64, u64, u32)]) -> BootInfo {
        let mut b = BootInfo::new(0x1000);
        for &(start, end, e820_type) in regions {
            b.push_region(RawRegion {
                start,
                len: end - start,
                e820_type,
            });
        }
        b
    }

    /// The map QEMU 7.2 gives a PVH guest with `-m 128M`.
    fn qemu_128m() -> BootInfo {
        map(&[
            (0, 0x9fc00, 1),
            (0x9fc00, 0xa0000, 2),
            (0xf0000, 0x100000, 2),
            (0x100000, 0x7fe0000, 1),
            (0x7fe0000, 0x8000000, 2),
            (0xfffc0000, 0x1_0000_0000, 2),
            (0xfd_0000_0000, 0x100_0000_0000, 2),
        ])
    }

    #[test]
    fn total_ram_of_a_qemu_map_equals_its_dash_m() {
        assert_eq!(qemu_128m().total_ram_bytes(), 128 << 20);
        assert_eq!(qemu_128m().usable_bytes(), 0x9fc00 + 0x7fe0000 - 0x100000);
    }

    #[test]
    fn total_ram_counts_memory_above_the_pci_hole() {
        let b = map(&[
            (0, 0x9fc00, 1),
            (0x100000, 0xbffe0000, 1),
            (0xbffe0000, 0xc0000000, 2),
            (0xfffc0000, 0x1_0000_0000, 2),
            (0x1_0000_0000, 0x2_4000_0000, 1),
        ]);
        assert_eq!(b.total_ram_bytes(), 8 << 30);
    }

    #[test]
    fn regions_are_numbered_and_typed_for_the_wire() {
        let b = qemu_128m();
        let regions: Vec<MemRegion> = b.mem_regions().collect();
        assert_eq!(regions.len(), 7);
        assert_eq!(regions[3].index, 3);
        assert_eq!(regions[3].kind, MemKind::Usable);
        assert_eq!(regions[4].kind, MemKind::Reserved);
    }

    #[test]
    fn overflowing_map_is_counted_not_lost_silently() {
        let mut b = BootInfo::new(0);
        for i in 0..(MAX_REGIONS as u64 + 3) {
            b.push_region(RawRegion {
                start: i << 20,
                len: 4096,
                e820_type: 1,
            });
        }
        assert_eq!(b.regions().len(), MAX_REGIONS);
        assert_eq!(b.regions_dropped, 3);
    }

    #[test]
    fn cmdline_stops_at_nul_and_invalid_utf8() {
        let mut b = BootInfo::new(0);
        b.set_cmdline(b"loglevel=3\0garbage");
        assert_eq!(b.cmdline(), "loglevel=3");
        b.set_cmdline(&[b'a', b'b', 0xff, b'c']);
        assert_eq!(b.cmdline(), "ab");
    }

    #[test]
    fn a_command_line_longer_than_kept_is_flagged_as_cut() {
        let mut b = BootInfo::new(0);
        b.set_cmdline(&[b'a'; MAX_CMDLINE]);
        assert!(!b.cmdline_cut());
        let mut long = [b'a'; MAX_CMDLINE + 1];
        b.set_cmdline(&long);
        assert!(b.cmdline_cut());
        assert_eq!(b.cmdline().len(), MAX_CMDLINE);
        long[MAX_CMDLINE] = 0;
        b.set_cmdline(&long);
        assert!(!b.cmdline_cut(), "a NUL right after the kept bytes ends it");
    }
}
