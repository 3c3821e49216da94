//! Reads the `hvm_start_info` block QEMU hands over on a PVH boot.
//!
//! Layout from Xen's `arch-x86/hvm/start_info.h` (version 1 adds the memory
//! map). Everything is read through the direct map, copied out, and
//! validated before use.

use crate::boot_info::{BootInfo, MAX_CMDLINE, RawRegion};

use super::phys_to_virt;

const HVM_START_MAGIC: u32 = 0x336e_c578;

#[derive(Clone, Copy)]
#[repr(C)]
struct HvmStartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[derive(Clone, Copy)]
#[repr(C)]
struct HvmMemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// Copies a `T` out of physical memory.
///
/// # Safety
///
/// `pa .. pa + size_of::<T>()` must lie in RAM covered by the direct map and
/// hold a valid `T` (plain integers here, so any bits do).
unsafe fn read_phys<T: Copy>(pa: u64) -> T {
    // SAFETY: guaranteed by the caller; unaligned read since firmware
    // structures carry no alignment promise.
    unsafe { core::ptr::read_unaligned(phys_to_virt(pa) as *const T) }
}

/// Parses the start-info block at physical address `start_info`.
pub fn parse(start_info: u64) -> Result<BootInfo, &'static str> {
    if start_info == 0 || start_info >= super::BOOT_DIRECT_MAP_BYTES {
        return Err("no hvm_start_info (not booted through PVH?)");
    }
    // SAFETY: QEMU placed the block in low RAM, below the 4 GiB the boot
    // tables map; its fields are plain integers.
    let info: HvmStartInfo = unsafe { read_phys(start_info) };
    if info.magic != HVM_START_MAGIC {
        return Err("hvm_start_info has a bad magic number");
    }
    if info.version < 1 || info.memmap_paddr == 0 {
        return Err("hvm_start_info carries no memory map (version 0)");
    }
    let mut boot = BootInfo::new(start_info);
    for i in 0..u64::from(info.memmap_entries) {
        let pa = info.memmap_paddr + i * core::mem::size_of::<HvmMemmapEntry>() as u64;
        // SAFETY: the table of memmap_entries entries lies in low RAM.
        let e: HvmMemmapEntry = unsafe { read_phys(pa) };
        boot.push_region(RawRegion {
            start: e.addr,
            len: e.size,
            e820_type: e.kind,
        });
    }
    if info.cmdline_paddr != 0 && info.cmdline_paddr < super::BOOT_DIRECT_MAP_BYTES {
        // One byte more than is kept, to tell a cut line from a full one.
        let mut buf = [0u8; MAX_CMDLINE + 1];
        for (i, slot) in buf.iter_mut().enumerate() {
            // SAFETY: the NUL-terminated command line lies in low RAM; we stop
            // at its terminator or at MAX_CMDLINE + 1 bytes.
            let b: u8 = unsafe { read_phys(info.cmdline_paddr + i as u64) };
            if b == 0 {
                break;
            }
            *slot = b;
        }
        boot.set_cmdline(&buf);
    }
    Ok(boot)
}
