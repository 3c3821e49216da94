//! The sorted, canonical set of a process's VMAs over caller storage.

use core::fmt;

use super::{STACK_GUARD_GAP, USER_END, USER_START, VmFlags, Vma, VmaError, check_range};
use crate::mm::paging::{PAGE_SIZE, VirtAddr};

/// The VMAs of one address space, sorted by address, disjoint, and merged
/// wherever two touch and agree (canonical form).
///
/// The VMAs live in the first [`len`](Self::len) slots of `S`, any storage
/// that lends out a `[Vma]`: `[Vma; N]`, `Box<[Vma]>`, `&mut [Vma]`. Its
/// length is the set's capacity; the contents of the storage when the set
/// is made are ignored. Every operation either succeeds whole or returns an
/// error and leaves the set as it was, including when the storage is full.
#[derive(Clone)]
pub struct VmaSet<S> {
    /// Slots `..len` hold the VMAs in address order; the rest is unused.
    slots: S,
    /// How many slots hold VMAs.
    len: usize,
    /// Sum of the VMAs' lengths.
    mapped_bytes: u64,
    /// The gap kept free below `GROWSDOWN` VMAs and above `GROWSUP` ones.
    guard_gap: u64,
}

/// What a rewrite does to the pages of its range.
#[derive(Clone, Copy)]
enum Action {
    /// Adds this VMA; no VMA of the window overlaps it.
    Insert(Vma),
    /// Drops the pages of the range.
    Remove,
    /// Replaces the access bits of the range's pages with these.
    Protect(VmFlags),
}

/// One edit of the slots: old slots `from..read_end`, and slot `read_end`
/// too when `right` holds its copy, are replaced by the merged pieces that
/// `action` makes of them.
///
/// The old slots are read in order while the pieces are written from `from`
/// on. That is safe because only the first old VMA can give one piece more
/// than it takes (the part below `lo`), and a piece is written only once the
/// next one is known not to merge into it: before slot `t` is read at most
/// `t - from` pieces have been written. The last old VMA may give a second
/// extra piece (the part from `hi`), which is why the slot after it is read
/// ahead into `right`.
struct Rewrite {
    /// First replaced slot.
    from: usize,
    /// One past the last slot read in order.
    read_end: usize,
    /// A copy of slot `read_end`, replaced too, when it may merge.
    right: Option<Vma>,
    /// Start of the range the action applies to.
    lo: VirtAddr,
    /// End of the range the action applies to.
    hi: VirtAddr,
    /// What happens to the range.
    action: Action,
}

impl Rewrite {
    /// How many old slots the rewrite replaces.
    fn replaced(&self) -> usize {
        self.read_end - self.from + usize::from(self.right.is_some())
    }
}

/// Holds back the last piece of a rewrite until the next one is known not
/// to merge into it.
#[derive(Default)]
struct Merger {
    /// The piece that may still grow.
    pending: Option<Vma>,
}

impl Merger {
    /// Takes `piece`; returns the previous piece when `piece` does not merge
    /// into it.
    fn push(&mut self, piece: Vma) -> Option<Vma> {
        match &mut self.pending {
            Some(last) if last.merges_with(&piece) => {
                last.end = piece.end;
                None
            }
            _ => self.pending.replace(piece),
        }
    }
}

impl<S: AsRef<[Vma]> + AsMut<[Vma]>> VmaSet<S> {
    /// An empty set over `storage`, with [`STACK_GUARD_GAP`].
    pub fn new(storage: S) -> Self {
        Self::with_guard_gap(storage, STACK_GUARD_GAP)
    }

    /// An empty set over `storage` that keeps `guard_gap` bytes (rounded up
    /// to whole pages) free below `GROWSDOWN` VMAs and above `GROWSUP` ones.
    pub fn with_guard_gap(storage: S, guard_gap: u64) -> Self {
        let guard_gap = guard_gap
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX - (PAGE_SIZE - 1));
        Self {
            slots: storage,
            len: 0,
            mapped_bytes: 0,
            guard_gap,
        }
    }

    /// How many VMAs the storage holds.
    pub fn capacity(&self) -> usize {
        self.slots.as_ref().len()
    }

    /// How many VMAs the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set holds no VMA.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The guard gap in bytes.
    pub fn guard_gap(&self) -> u64 {
        self.guard_gap
    }

    /// Total bytes the VMAs cover. O(1).
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped_bytes
    }

    /// The VMAs in address order.
    pub fn as_slice(&self) -> &[Vma] {
        &self.slots.as_ref()[..self.len]
    }

    /// Iterates over the VMAs in address order.
    pub fn iter(&self) -> core::slice::Iter<'_, Vma> {
        self.as_slice().iter()
    }

    /// Removes every VMA.
    pub fn clear(&mut self) {
        self.len = 0;
        self.mapped_bytes = 0;
    }

    /// The VMA that contains `addr`, any address at all. O(log n).
    pub fn find(&self, addr: VirtAddr) -> Option<&Vma> {
        self.index_of(addr).map(|i| &self.as_slice()[i])
    }

    /// The VMA closest to `addr`: the one containing it, else whichever of
    /// the VMAs below and above has a byte nearer to it (the one below on a
    /// tie). For fault reports. O(log n).
    pub fn nearest(&self, addr: VirtAddr) -> Option<&Vma> {
        let (below, above) = self.neighbours(addr);
        match (below, above) {
            (Some(b), _) if b.contains(addr) => Some(b),
            (Some(b), Some(a)) => {
                let to_below = addr.as_u64() - (b.end.as_u64() - 1);
                let to_above = a.start.as_u64() - addr.as_u64();
                Some(if to_above < to_below { a } else { b })
            }
            (b, a) => b.or(a),
        }
    }

    /// The last VMA that starts at or below `addr` (it may contain `addr`)
    /// and the first that starts above it. O(log n).
    pub fn neighbours(&self, addr: VirtAddr) -> (Option<&Vma>, Option<&Vma>) {
        let vmas = self.as_slice();
        let i = vmas.partition_point(|v| v.start <= addr);
        (i.checked_sub(1).map(|b| &vmas[b]), vmas.get(i))
    }

    /// Adds `vma`, merged with the VMAs it touches when they agree in
    /// flags, kind and id; returns the VMA that now holds its range.
    ///
    /// # Errors
    ///
    /// What [`Vma::new`] checks; [`Overlap`](VmaError::Overlap) with the
    /// first VMA in the way; [`Full`](VmaError::Full) when no slot is left
    /// and `vma` merges with neither neighbour.
    pub fn insert(&mut self, vma: Vma) -> Result<Vma, VmaError> {
        vma.check()?;
        let vmas = self.as_slice();
        let i = vmas.partition_point(|v| v.start < vma.start);
        if let Some(prev) = i.checked_sub(1).map(|p| vmas[p])
            && prev.end > vma.start
        {
            return Err(VmaError::Overlap(prev));
        }
        let next = vmas.get(i).copied();
        if let Some(next) = next
            && next.start < vma.end
        {
            return Err(VmaError::Overlap(next));
        }
        let from = match i.checked_sub(1) {
            Some(p) if vmas[p].merges_with(&vma) => p,
            _ => i,
        };
        let plan = Rewrite {
            from,
            read_end: i,
            right: next.filter(|n| vma.merges_with(n)),
            lo: vma.start,
            hi: vma.end,
            action: Action::Insert(vma),
        };
        self.apply(&plan, &mut |_, _| {})?;
        self.mapped_bytes += vma.len();
        Ok(self.as_slice()[from])
    }

    /// Unmaps `[start, end)` (the `munmap` semantics): VMAs inside it go,
    /// VMAs partly in it are cut, one across it splits in two. Calls
    /// `on_removed` with each removed piece in address order, once the
    /// operation is known to succeed, and returns the bytes removed. A range
    /// with nothing mapped is not an error.
    ///
    /// # Errors
    ///
    /// What [`Vma::new`] checks of a range; [`Full`](VmaError::Full) when a
    /// split needs a slot the storage lacks.
    pub fn remove_range(
        &mut self,
        start: VirtAddr,
        end: VirtAddr,
        mut on_removed: impl FnMut(Vma),
    ) -> Result<u64, VmaError> {
        check_range(start, end)?;
        let (i, j) = self.overlapping(start, end);
        if i == j {
            return Ok(0);
        }
        let plan = Rewrite {
            from: i,
            read_end: j,
            right: None,
            lo: start,
            hi: end,
            action: Action::Remove,
        };
        let mut removed = 0;
        self.apply(&plan, &mut |piece, _| {
            removed += piece.len();
            on_removed(piece);
        })?;
        self.mapped_bytes -= removed;
        Ok(removed)
    }

    /// Sets the access bits (`READ`, `WRITE`, `EXEC`) of `[start, end)` to
    /// `prot` (the `mprotect` semantics), splitting VMAs partly in the range
    /// and merging pieces that come to agree; other flags are kept. Calls
    /// `on_changed` with each piece whose flags change, with its old flags,
    /// and its new flags, in address order, once the operation is known to
    /// succeed.
    ///
    /// # Errors
    ///
    /// What [`Vma::new`] checks of a range;
    /// [`InvalidFlags`](VmaError::InvalidFlags) for `prot` beyond the access
    /// bits; [`NotMapped`](VmaError::NotMapped) with the first address of
    /// the range no VMA covers; [`Full`](VmaError::Full) when the splits
    /// need slots the storage lacks.
    pub fn protect_range(
        &mut self,
        start: VirtAddr,
        end: VirtAddr,
        prot: VmFlags,
        mut on_changed: impl FnMut(Vma, VmFlags),
    ) -> Result<(), VmaError> {
        check_range(start, end)?;
        if !VmFlags::ACCESS.contains(prot) {
            return Err(VmaError::InvalidFlags(prot));
        }
        let (i, j) = self.overlapping(start, end);
        let vmas = self.as_slice();
        let mut covered = start;
        for vma in &vmas[i..j] {
            if vma.start > covered {
                return Err(VmaError::NotMapped(covered));
            }
            covered = vma.end;
        }
        if covered < end {
            return Err(VmaError::NotMapped(covered));
        }
        let from = match i.checked_sub(1) {
            Some(p) if vmas[p].end == start => p,
            _ => i,
        };
        let plan = Rewrite {
            from,
            read_end: j,
            right: vmas.get(j).copied().filter(|n| n.start == end),
            lo: start,
            hi: end,
            action: Action::Protect(prot),
        };
        self.apply(&plan, &mut |old, new| {
            if let Some(new) = new {
                on_changed(old, new);
            }
        })
    }

    /// Where to put a new mapping of `len` bytes inside `[lo, hi)`: `hint`
    /// (rounded up to a page) when the mapping fits there, else the highest
    /// place that fits (top-down, as Linux places `mmap` on x86_64, so
    /// mappings grow down towards the heap and away from the stack). A
    /// mapping is never placed in the guard gap below a `GROWSDOWN` VMA or
    /// above a `GROWSUP` one. O(log n) when the hint fits, else O(n).
    ///
    /// # Errors
    ///
    /// What [`Vma::new`] checks of `[lo, hi)`; [`EmptyRange`](VmaError::EmptyRange)
    /// or [`Unaligned`](VmaError::Unaligned) for `len`;
    /// [`NoSpace`](VmaError::NoSpace) when no gap fits.
    pub fn find_gap(
        &self,
        len: u64,
        hint: Option<VirtAddr>,
        lo: VirtAddr,
        hi: VirtAddr,
    ) -> Result<VirtAddr, VmaError> {
        check_range(lo, hi)?;
        if len == 0 {
            return Err(VmaError::EmptyRange);
        }
        if !len.is_multiple_of(PAGE_SIZE) {
            return Err(VmaError::Unaligned);
        }
        let (lo, hi) = (lo.as_u64(), hi.as_u64());
        let vmas = self.as_slice();
        if let Some(hint) = hint.and_then(|h| h.as_u64().checked_next_multiple_of(PAGE_SIZE)) {
            let k = vmas.partition_point(|v| v.start.as_u64() <= hint);
            let (gap_lo, gap_hi) = self.gap(k, lo, hi);
            if gap_lo <= hint && hint.checked_add(len).is_some_and(|e| e <= gap_hi) {
                return Ok(VirtAddr::new(hint));
            }
        }
        // Gaps after the first VMA that starts at or above `hi` start above
        // `hi`; gaps are visited from there down.
        let top = vmas.partition_point(|v| v.start.as_u64() < hi);
        for k in (0..=top).rev() {
            let (gap_lo, gap_hi) = self.gap(k, lo, hi);
            if gap_hi >= gap_lo && gap_hi - gap_lo >= len {
                return Ok(VirtAddr::new(gap_hi - len));
            }
            if gap_hi <= lo {
                break;
            }
        }
        Err(VmaError::NoSpace)
    }

    /// Grows the `GROWSDOWN` VMA that contains `addr` down to `new_start`
    /// (the stack growth of a fault just below it), keeping the guard gap
    /// free above the VMA below. Returns the grown VMA; a `new_start` not
    /// below the VMA's start leaves it as it is. O(log n).
    ///
    /// # Errors
    ///
    /// [`NotMapped`](VmaError::NotMapped) when no VMA contains `addr`;
    /// [`NotGrowable`](VmaError::NotGrowable) when it lacks `GROWSDOWN`;
    /// [`Unaligned`](VmaError::Unaligned) for `new_start`;
    /// [`OutsideUserRange`](VmaError::OutsideUserRange) below the first user
    /// page; [`GuardGap`](VmaError::GuardGap) with the VMA below when the
    /// stack would come within the guard gap of it.
    pub fn grow_down(&mut self, addr: VirtAddr, new_start: VirtAddr) -> Result<Vma, VmaError> {
        let i = self.index_of(addr).ok_or(VmaError::NotMapped(addr))?;
        let vmas = self.as_slice();
        let vma = vmas[i];
        if !vma.flags.contains(VmFlags::GROWSDOWN) {
            return Err(VmaError::NotGrowable(vma));
        }
        if !new_start.is_aligned(PAGE_SIZE) {
            return Err(VmaError::Unaligned);
        }
        if new_start >= vma.start {
            return Ok(vma);
        }
        if new_start.as_u64() < USER_START {
            return Err(VmaError::OutsideUserRange);
        }
        if let Some(prev) = i.checked_sub(1).map(|p| vmas[p])
            && prev.end.as_u64().saturating_add(self.guard_gap) > new_start.as_u64()
        {
            return Err(VmaError::GuardGap(prev));
        }
        self.mapped_bytes += vma.start.as_u64() - new_start.as_u64();
        let slot = &mut self.slots.as_mut()[i];
        slot.start = new_start;
        Ok(*slot)
    }

    /// The index of the VMA containing `addr`.
    fn index_of(&self, addr: VirtAddr) -> Option<usize> {
        let vmas = self.as_slice();
        let i = vmas.partition_point(|v| v.start <= addr).checked_sub(1)?;
        vmas[i].contains(addr).then_some(i)
    }

    /// The slots `i..j` of the VMAs that overlap `[start, end)`.
    fn overlapping(&self, start: VirtAddr, end: VirtAddr) -> (usize, usize) {
        let vmas = self.as_slice();
        let i = vmas.partition_point(|v| v.end <= start);
        let j = vmas.partition_point(|v| v.start < end);
        (i, j.max(i))
    }

    /// Gap `k`, between VMA `k - 1` (or the first user page) and VMA `k`
    /// (or the end of user space), less the guard gaps, clipped to
    /// `[lo, hi)`. The result may be empty, with `lo > hi`.
    fn gap(&self, k: usize, lo: u64, hi: u64) -> (u64, u64) {
        let vmas = self.as_slice();
        let below = match k.checked_sub(1).map(|p| vmas[p]) {
            Some(prev) if prev.flags.contains(VmFlags::GROWSUP) => {
                prev.end.as_u64().saturating_add(self.guard_gap)
            }
            Some(prev) => prev.end.as_u64(),
            None => USER_START,
        };
        let above = match vmas.get(k) {
            Some(next) if next.flags.contains(VmFlags::GROWSDOWN) => {
                next.start.as_u64().saturating_sub(self.guard_gap)
            }
            Some(next) => next.start.as_u64(),
            None => USER_END,
        };
        (below.max(lo), above.min(hi))
    }

    /// Carries out `plan` whole, or returns [`Full`](VmaError::Full) and
    /// changes nothing. `report` gets each removed piece (with `None`) and
    /// each piece whose flags change (with its new flags).
    fn apply(
        &mut self,
        plan: &Rewrite,
        report: &mut impl FnMut(Vma, Option<VmFlags>),
    ) -> Result<(), VmaError> {
        let replaced = plan.replaced();
        let to = plan.from + replaced;
        let pieces = self.run(plan, false, &mut |_, _| {});
        let new_len = self.len - replaced + pieces;
        if new_len > self.capacity() {
            return Err(VmaError::Full {
                capacity: self.capacity(),
            });
        }
        let len = self.len;
        if pieces > replaced {
            let slots = self.slots.as_mut();
            slots.copy_within(to..len, to + (pieces - replaced));
        }
        let written = self.run(plan, true, report);
        debug_assert_eq!(written, pieces, "dry run and rewrite disagree");
        if pieces < replaced {
            let slots = self.slots.as_mut();
            slots.copy_within(to..len, plan.from + pieces);
        }
        self.len = new_len;
        Ok(())
    }

    /// Makes the pieces of `plan` and returns how many there are; with
    /// `write`, also stores them from slot `plan.from` on and reports them.
    fn run(
        &mut self,
        plan: &Rewrite,
        write: bool,
        report: &mut impl FnMut(Vma, Option<VmFlags>),
    ) -> usize {
        let mut merger = Merger::default();
        let mut pos = plan.from;
        let mut insert = match plan.action {
            Action::Insert(vma) => Some(vma),
            _ => None,
        };
        for t in plan.from..plan.read_end {
            debug_assert!(!write || pos <= t, "rewrite overtook its reads");
            let old = self.slots.as_ref()[t];
            if let Some(new) = insert.take_if(|new| new.start < old.start) {
                self.emit(&mut merger, &mut pos, new, write);
            }
            let below = old.clip(VirtAddr::new(0), plan.lo);
            let inside = old.clip(plan.lo, plan.hi);
            let above = old.clip(plan.hi, VirtAddr::new(u64::MAX));
            if let Some(piece) = below {
                self.emit(&mut merger, &mut pos, piece, write);
            }
            if let Some(piece) = inside {
                match plan.action {
                    Action::Remove => {
                        if write {
                            report(piece, None);
                        }
                    }
                    Action::Protect(prot) => {
                        let flags = (piece.flags - VmFlags::ACCESS) | prot;
                        if write && flags != piece.flags {
                            report(piece, Some(flags));
                        }
                        self.emit(&mut merger, &mut pos, Vma { flags, ..piece }, write);
                    }
                    // An inserted VMA overlaps nothing.
                    Action::Insert(_) => self.emit(&mut merger, &mut pos, piece, write),
                }
            }
            if let Some(piece) = above {
                self.emit(&mut merger, &mut pos, piece, write);
            }
        }
        if let Some(new) = insert {
            self.emit(&mut merger, &mut pos, new, write);
        }
        if let Some(right) = plan.right {
            self.emit(&mut merger, &mut pos, right, write);
        }
        if let Some(last) = merger.pending {
            if write {
                self.slots.as_mut()[pos] = last;
            }
            pos += 1;
        }
        pos - plan.from
    }

    /// Feeds `piece` to `merger` and stores (with `write`) the piece it
    /// lets go at `pos`.
    fn emit(&mut self, merger: &mut Merger, pos: &mut usize, piece: Vma, write: bool) {
        if let Some(done) = merger.push(piece) {
            if write {
                self.slots.as_mut()[*pos] = done;
            }
            *pos += 1;
        }
    }
}

impl<'s, S: AsRef<[Vma]> + AsMut<[Vma]>> IntoIterator for &'s VmaSet<S> {
    type Item = &'s Vma;
    type IntoIter = core::slice::Iter<'s, Vma>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<S: AsRef<[Vma]> + AsMut<[Vma]>> fmt::Debug for VmaSet<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VmaSet")
            .field("capacity", &self.capacity())
            .field("mapped_bytes", &self.mapped_bytes)
            .field("vmas", &self.as_slice())
            .finish()
    }
}
