//! Page-table dumps: consecutive leaves coalesced into ranges, as Linux's
//! ptdump prints them.
//!
//! A range goes on while the next leaf continues it in virtual and
//! physical memory and has the same page size, permission and caching
//! flags and region. Accessed and dirty are not part of a range's identity;
//! dirty leaves are counted.

use probe_proto::names::pt;
use probe_proto::{PtRange, Region};

use super::flags::PageFlags;
use super::walk::Leaf;

/// The protocol's flag bits of a leaf: writable, user and no-execute from
/// its effective permissions, the rest from the leaf itself.
#[must_use]
pub fn pt_flags(leaf: &Leaf) -> u8 {
    let e = leaf.effective;
    let f = leaf.mapping.flags;
    // Bit 7 is PAT in a 4 KiB leaf; in a huge one it says "huge" and PAT
    // moves to bit 12.
    let pat = if leaf.mapping.size.bytes() > super::PAGE_SIZE {
        f.bits() & (1 << 12) != 0
    } else {
        f.contains(PageFlags::HUGE)
    };
    [
        (e.contains(PageFlags::WRITABLE), pt::WRITABLE),
        (e.contains(PageFlags::USER), pt::USER),
        (e.contains(PageFlags::NO_EXECUTE), pt::NO_EXECUTE),
        (f.contains(PageFlags::GLOBAL), pt::GLOBAL),
        (f.contains(PageFlags::WRITE_THROUGH), pt::PWT),
        (f.contains(PageFlags::NO_CACHE), pt::PCD),
        (pat, pt::PAT),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .fold(0, |bits, (_, bit)| bits | bit)
}

/// Folds leaves, in address order, into ranges.
#[derive(Debug, Default)]
pub struct Coalescer {
    open: Option<PtRange>,
}

impl Coalescer {
    /// No range open.
    #[must_use]
    pub const fn new() -> Self {
        Self { open: None }
    }

    /// Adds the next leaf of space `space`, in region `region`; returns
    /// the range it closed, if it does not continue the open one.
    pub fn push(&mut self, space: u32, leaf: &Leaf, region: Region) -> Option<PtRange> {
        let m = &leaf.mapping;
        let (start, phys, size) = (m.virt.as_u64(), m.phys.as_u64(), m.size.bytes());
        let flags = pt_flags(leaf);
        let dirty = u64::from(m.flags.contains(PageFlags::DIRTY));
        if let Some(r) = self.open.as_mut()
            && r.space == space
            && r.end == start
            && r.phys.wrapping_add(r.end - r.start) == phys
            && r.page_size == size
            && r.flags == flags
            && r.region == region
        {
            r.end = start.wrapping_add(size);
            r.pages += 1;
            r.dirty_pages += dirty;
            return None;
        }
        self.open.replace(PtRange {
            space,
            start,
            end: start.wrapping_add(size),
            phys,
            page_size: size,
            flags,
            pages: 1,
            dirty_pages: dirty,
            region,
        })
    }

    /// The range still open (it may grow with the next leaf).
    #[must_use]
    pub fn open(&self) -> Option<&PtRange> {
        self.open.as_ref()
    }

    /// Closes and returns the open range: the walk is over.
    pub fn finish(&mut self) -> Option<PtRange> {
        self.open.take()
    }
}
