//! Iteration over the present leaves of a tree, for page-table dumps.

use core::ops::{Bound, RangeBounds};

use super::addr::{ENTRY_COUNT, Level, USER_HALF_END, VirtAddr};
use super::flags::{PageFlags, PageTableEntry};
use super::mem::PhysMem;
use super::table::Mapping;
use crate::mm::frame::{Frame, PhysAddr};

/// The last position in the 48-bit translated space.
const LINEAR_MAX: u64 = (1 << 48) - 1;

/// The present leaves overlapping a virtual range, in address order; from
/// [`PageTable::mappings`](super::PageTable::mappings).
///
/// It keeps one cursor per level instead of recursing, so it needs no heap
/// and holds only a shared borrow of the memory while the caller formats
/// each mapping.
#[derive(Debug)]
pub struct Mappings<'a, M> {
    mem: &'a M,
    /// The range, inclusive, as positions in the 48-bit translated space.
    lo: u64,
    hi: u64,
    /// For each level on the current path: the table, the next index in it,
    /// and the position the table's first entry covers.
    tables: [Frame; 4],
    next: [usize; 4],
    bases: [u64; 4],
    /// Writable, user and no-execute as the entries above each level's
    /// table combine them.
    path: [PageFlags; 4],
    depth: usize,
    done: bool,
}

/// A present leaf and the permissions the MMU applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leaf {
    /// The leaf.
    pub mapping: Mapping,
    /// Its flags with writable and user kept only if every level above
    /// allows them, and no-execute added if any level sets it.
    pub effective: PageFlags,
}

/// Everything a path allows before any entry is read.
const PERMISSIVE: PageFlags = PageFlags::WRITABLE.union(PageFlags::USER);

/// `upper` (a path's permissions) further restricted by entry flags `flags`.
fn combine(upper: PageFlags, flags: PageFlags) -> PageFlags {
    let both = PageFlags::WRITABLE | PageFlags::USER;
    let mut out = flags.difference(both) | (upper & flags & both);
    if upper.contains(PageFlags::NO_EXECUTE) {
        out.insert(PageFlags::NO_EXECUTE);
    }
    out
}

impl<'a, M: PhysMem> Mappings<'a, M> {
    pub(super) fn new<R: RangeBounds<VirtAddr>>(mem: &'a M, root: Frame, range: R) -> Self {
        let lo = match range.start_bound() {
            Bound::Included(&v) => Some(start_position(v)),
            Bound::Excluded(&v) => start_position(v).checked_add(1),
            Bound::Unbounded => Some(0),
        };
        let hi = match range.end_bound() {
            Bound::Included(&v) => Some(end_position(v)),
            Bound::Excluded(&v) => {
                if v.is_canonical() {
                    v.linear().checked_sub(1)
                } else {
                    Some(USER_HALF_END - 1)
                }
            }
            Bound::Unbounded => Some(LINEAR_MAX),
        };
        let (lo, hi, done) = match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi && lo <= LINEAR_MAX => (lo, hi, false),
            _ => (0, 0, true),
        };
        Self {
            mem,
            lo,
            hi,
            tables: [root; 4],
            next: [(lo >> Level::Pml4.shift()) as usize, 0, 0, 0],
            bases: [0; 4],
            path: [PERMISSIVE; 4],
            depth: 0,
            done,
        }
    }
}

/// Where a range starting at `v` starts: a start in the canonical hole
/// starts at the kernel half.
fn start_position(v: VirtAddr) -> u64 {
    if v.is_canonical() {
        v.linear()
    } else {
        USER_HALF_END
    }
}

/// Where a range ending at `v` (included) ends: an end in the canonical hole
/// ends with the user half.
fn end_position(v: VirtAddr) -> u64 {
    if v.is_canonical() {
        v.linear()
    } else {
        USER_HALF_END - 1
    }
}

impl<M: PhysMem> Iterator for Mappings<'_, M> {
    type Item = Mapping;

    fn next(&mut self) -> Option<Mapping> {
        self.next_leaf().map(|leaf| leaf.mapping)
    }
}

impl<M: PhysMem> Mappings<'_, M> {
    /// The next leaf with its effective permissions.
    pub fn next_leaf(&mut self) -> Option<Leaf> {
        while !self.done {
            let level = Level::ALL[self.depth];
            let index = self.next[self.depth];
            if index == ENTRY_COUNT {
                // This table is finished: resume its parent after it.
                if self.depth == 0 {
                    self.done = true;
                } else {
                    self.depth -= 1;
                }
                continue;
            }
            self.next[self.depth] += 1;
            let base = self.bases[self.depth] + index as u64 * level.entry_span();
            if base > self.hi {
                // Entries only grow from here, at every level above too.
                self.done = true;
                break;
            }
            let at = self.tables[self.depth].start_address().as_u64() + index as u64 * 8;
            let entry = PageTableEntry::from_raw(self.mem.read_u64(PhysAddr::new(at)));
            if !entry.is_present() {
                continue;
            }
            let leaf = match level {
                Level::Pml4 => None,
                Level::Pdpt | Level::Pd if !entry.is_huge() => None,
                _ => level.leaf_size(),
            };
            if let Some(size) = leaf {
                let mapping = Mapping {
                    virt: VirtAddr::new_truncate(base),
                    phys: entry.addr_for(size),
                    size,
                    flags: entry.flags(),
                };
                let effective = combine(self.path[self.depth], entry.flags());
                return Some(Leaf { mapping, effective });
            }
            let Some(child) = level.next() else {
                continue;
            };
            let path = combine(self.path[self.depth], entry.flags());
            self.depth += 1;
            self.path[self.depth] = path;
            self.tables[self.depth] = entry.frame();
            self.bases[self.depth] = base;
            // Skip the child's entries that end before the range starts.
            self.next[self.depth] = if self.lo > base {
                ((self.lo - base) >> child.shift()) as usize
            } else {
                0
            };
        }
        None
    }
}

/// The present leaves of a range with their effective permissions; from
/// [`PageTable::leaves`](super::PageTable::leaves).
#[derive(Debug)]
pub struct Leaves<'a, M>(pub(super) Mappings<'a, M>);

impl<M: PhysMem> Iterator for Leaves<'_, M> {
    type Item = Leaf;

    fn next(&mut self) -> Option<Leaf> {
        self.0.next_leaf()
    }
}
