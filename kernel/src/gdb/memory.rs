//! Memory access for the debugger, checked against the live page tables.
//!
//! Every access first walks the tables in CR3 (without taking the kernel's
//! page-table lock: the kernel is stopped, and the trap may have come from
//! code that holds it) and then goes through the direct-map alias of the
//! physical bytes, itself checked to be mapped. An unmapped address is an
//! error, never a fault; read-only kernel text is written through its
//! writable alias, which is how software breakpoints are planted.

use crate::arch::x86_64::{cpu, phys_to_virt};
use crate::memory::virt::DirectMap;
use crate::mm::frame::{Frame, PhysAddr};
use crate::mm::paging::{Mapping, PageFlags, PageTable, VirtAddr};

/// The tables loaded in CR3, read through the direct map.
fn live_tables() -> PageTable<DirectMap> {
    let root = Frame::containing_address(PhysAddr::new(cpu::current_page_table()));
    PageTable::new(DirectMap, root)
}

/// The leaf that maps `virt` in the current address space.
pub fn mapping(virt: u64) -> Option<Mapping> {
    live_tables().mapping_at(VirtAddr::new(virt))
}

/// Where the byte at `virt` can be reached in the direct map, and how many
/// bytes from there on lie in the same two leaves; `None` if `virt` is not
/// mapped, its frame is outside the direct map, or (for `write`) the alias
/// is not writable.
fn alias(tables: &PageTable<DirectMap>, virt: u64, write: bool) -> Option<(u64, u64)> {
    let leaf = tables.mapping_at(VirtAddr::new(virt))?;
    let offset = virt - leaf.virt.as_u64();
    let phys = leaf.phys.as_u64() + offset;
    let alias = phys_to_virt(phys);
    let direct = tables.mapping_at(VirtAddr::new(alias))?;
    let alias_offset = alias - direct.virt.as_u64();
    if direct.phys.as_u64() + alias_offset != phys {
        return None;
    }
    if write && !direct.flags.contains(PageFlags::WRITABLE) {
        return None;
    }
    let room = (leaf.size.bytes() - offset).min(direct.size.bytes() - alias_offset);
    Some((alias, room))
}

/// Copies memory at `addr` into `out` up to the first inaccessible byte;
/// returns how many bytes were copied.
pub fn read(addr: u64, out: &mut [u8]) -> usize {
    let tables = live_tables();
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
        // 1. `src..src + n` lies in one present direct-map leaf that maps the
        //    physical bytes behind `at..at + n` (checked by `alias`);
        // 2. the kernel is stopped (interrupts off, one CPU), so nothing
        //    writes them meanwhile, and `out` is a plain buffer of ours.
        unsafe { core::ptr::copy_nonoverlapping(src as *const u8, out[done..].as_mut_ptr(), n) };
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

/// Writes `data` at `addr`, all or nothing: every page is checked before
/// the first byte is written.
pub fn write(addr: u64, data: &[u8]) -> Result<(), Inaccessible> {
    let tables = live_tables();
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
        // 1. `dst..dst + n` lies in one present, writable direct-map leaf
        //    mapping the physical bytes behind `at..at + n` (checked above);
        // 2. the debugger asked for exactly this write while the kernel is
        //    stopped; what it does to the kernel is the user's intent, as
        //    with any debugger poking memory.
        unsafe { core::ptr::copy_nonoverlapping(data[done..].as_ptr(), dst as *mut u8, n) };
        done += n;
    }
    Ok(())
}
