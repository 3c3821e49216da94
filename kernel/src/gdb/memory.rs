//! Memory access for the debugger, checked against the live page tables.
//!
//! Every access first walks the tables of the address space it is made in
//! (the selected process's, given by the physical address of its top-level
//! table; without taking any page-table lock: the kernel is stopped, and
//! the trap may have come from code that holds one) and then goes through
//! the direct-map alias of the physical bytes, itself checked to be mapped. An unmapped address is an
//! error, never a fault; read-only kernel text is written through its
//! writable alias, which is how software breakpoints are planted.
//!
//! [`regions`] tells gdb where memory may be read (its memory map).

use crate::arch::x86_64::cpu;
use crate::memory::direct_map::{self, DirectMap};
use crate::mm::frame::{Frame, PhysAddr};
use crate::mm::paging::{KERNEL_HALF_START, PageFlags, PageTable, USER_HALF_END, VirtAddr};

/// Most regions [`regions`] reports; past that, the last one spans the
/// rest of the kernel half's mappings, gaps included.
pub const MAX_REGIONS: usize = 64;

/// Physical address of the top-level table loaded in CR3.
pub fn live_root() -> u64 {
    cpu::current_page_table()
}

/// The tables whose top level is at physical `root`, read through the
/// direct map.
fn tables_at(root: u64) -> PageTable<DirectMap> {
    PageTable::new(DirectMap, Frame::containing_address(PhysAddr::new(root)))
}

/// The physical address of the byte at `virt`, and how many bytes from
/// there on lie in the same leaf and in the same leaf of the direct map;
/// `None` if `virt` is not mapped, its frame is outside the direct map, or
/// (for `write`) the direct map's alias is not writable.
fn alias(tables: &PageTable<DirectMap>, virt: u64, write: bool) -> Option<(PhysAddr, u64)> {
    let leaf = tables.mapping_at(VirtAddr::new(virt))?;
    let offset = virt - leaf.virt.as_u64();
    let phys = leaf.phys.as_u64() + offset;
    let alias = direct_map::virt_of(PhysAddr::new(phys));
    let direct = tables.mapping_at(VirtAddr::new(alias))?;
    let alias_offset = alias - direct.virt.as_u64();
    if direct.phys.as_u64() + alias_offset != phys {
        return None;
    }
    if write && !direct.flags.contains(PageFlags::WRITABLE) {
        return None;
    }
    let room = (leaf.size.bytes() - offset).min(direct.size.bytes() - alias_offset);
    Some((PhysAddr::new(phys), room))
}

/// Copies memory at `addr` of the address space rooted at `root` into
/// `out` up to the first inaccessible byte; returns how many bytes were
/// copied.
pub fn read(root: u64, addr: u64, out: &mut [u8]) -> usize {
    let tables = tables_at(root);
    let mut done = 0;
    while done < out.len() {
        let Some(at) = addr.checked_add(done as u64) else {
            break;
        };
        let Some((src, room)) = alias(&tables, at, false) else {
            break;
        };
        let n = (out.len() - done).min(room as usize);
        // SAFETY:
        // 1. `src..src + n` is RAM in one present direct-map leaf (checked
        //    by `alias`);
        // 2. the kernel is stopped (interrupts off, one CPU), so nothing
        //    writes it meanwhile, and `out` is a plain buffer of ours.
        unsafe { direct_map::read(src, &mut out[done..done + n]) };
        done += n;
    }
    done
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inaccessible {
    /// First byte that is not mapped (or not reachable for writing).
    pub addr: u64,
}

/// Writes `data` at `addr` of the address space rooted at `root`, all or
/// nothing: every page is checked before the first byte is written.
pub fn write(root: u64, addr: u64, data: &[u8]) -> Result<(), Inaccessible> {
    let tables = tables_at(root);
    let mut done = 0u64;
    while done < data.len() as u64 {
        let at = addr.checked_add(done).ok_or(Inaccessible { addr })?;
        let (_, room) = alias(&tables, at, true).ok_or(Inaccessible { addr: at })?;
        done += room.min(data.len() as u64 - done);
    }
    let mut done = 0;
    while done < data.len() {
        let at = addr + done as u64;
        let (dst, room) = alias(&tables, at, true).ok_or(Inaccessible { addr: at })?;
        let n = (data.len() - done).min(room as usize);
        // SAFETY:
        // 1. `dst..dst + n` is RAM in one present, writable direct-map leaf
        //    (checked above);
        // 2. the debugger asked for exactly this write while the kernel is
        //    stopped; what it does to the kernel is the user's intent, as
        //    with any debugger poking memory.
        unsafe { direct_map::write(dst, &data[done..done + n]) };
        done += n;
    }
    Ok(())
}

/// The ranges gdb may read, as `(start, length)` in address order, at most
/// [`MAX_REGIONS`]:
///
/// - the user half, whole: whichever process (gdb thread) is selected,
///   each access is checked against its tables;
/// - every run of consecutive present pages in the kernel half as the live
///   tables hold them now: the direct map of RAM, the kernel heap as far as
///   it has grown, kernel stacks, and the image, split into text, rodata
///   and data (the boot stack's guard page splits data).
///
/// gdb reads the map once per connection and refuses addresses outside
/// it, so kernel memory mapped after gdb attached (heap growth, new kernel
/// stacks) is readable after reconnecting. The walk reads the tables
/// without their lock, like every access here.
pub fn regions(mut visit: impl FnMut(u64, u64)) {
    visit(0, USER_HALF_END);
    let mut emitted = 1;
    let [text, rodata, _] = crate::memory::virt::image_sections();
    let splits = [text.0, text.1, rodata.1];
    // Every address space shares the kernel half's tables.
    let tables = tables_at(live_root());
    let mut run: Option<(u64, u64)> = None;
    for leaf in tables.mappings(VirtAddr::new(KERNEL_HALF_START)..) {
        let start = leaf.virt.as_u64();
        let end = start.saturating_add(leaf.size.bytes());
        run = Some(match run {
            None => (start, end),
            Some((first, last)) if last == start && !splits.contains(&start) => (first, end),
            // No slot left: the last region grows over the gap.
            Some((first, _)) if emitted + 1 == MAX_REGIONS => (first, end),
            Some((first, last)) => {
                visit(first, last - first);
                emitted += 1;
                (start, end)
            }
        });
    }
    if let Some((first, last)) = run {
        visit(first, last - first);
    }
}
