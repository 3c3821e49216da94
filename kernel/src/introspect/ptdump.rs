//! Page-table dumps: the live tables of the kernel's space or a process's,
//! walked with the kernel's own walker, coalesced into ranges as Linux's
//! ptdump does, each named by the kernel region or VMA it belongs to, and
//! audited as they go.
//!
//! The walk takes no allocation and no cap: it runs a batch at a time under
//! the tables' lock (the kernel's tables, or the process table), fills the
//! caller's arrays, and resumes after the last range it closed, so a
//! reader that waits for the UART between batches holds no lock meanwhile.
//!
//! A process's dump covers its user half; its kernel half is the kernel's
//! own tables, which the audit checks entry by entry at the top level.

use probe_proto::{AuditKind, PtAudit, PtDumpEnd, PtRange, Region, names::pt};

use crate::memory::direct_map::DirectMap;
use crate::memory::virt::{self, Tables};
use crate::mm::paging::{
    Coalescer, ENTRY_COUNT, KERNEL_HALF_START, KERNEL_PML4_START, PageSize, PageTable,
    USER_HALF_END, VirtAddr,
};
use crate::mm::vma::{VmFlags, Vma};
use crate::proc::KERNEL_PID;
use crate::time;

/// Ranges one batch holds at most.
pub const DUMP_BATCH: usize = 32;

/// Findings one range can have at most: an audit array must hold this many.
pub const MAX_PER_RANGE: usize = 3;

/// A filler for audit arrays.
pub const NO_FINDING: PtAudit = PtAudit {
    space: 0,
    kind: AuditKind::WritableExecutable,
    start: 0,
    end: 0,
    flags: 0,
};

/// A dump in progress: where the next batch starts, and the totals so far.
#[derive(Debug, Clone, Copy)]
pub struct Dump {
    space: u32,
    /// The next batch walks from here; `None` once the walk is over.
    resume: Option<u64>,
    /// The last address the dump covers.
    last: u64,
    /// Whether the top-level kernel-half audit is done.
    top_audited: bool,
    end: PtDumpEnd,
}

/// What one batch produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct Batch {
    /// Ranges filled in the caller's array.
    pub ranges: usize,
    /// Findings filled in the caller's array.
    pub findings: usize,
}

impl Dump {
    /// A dump of the space of `pid` (0: the kernel's, both halves; a
    /// program's, its user half).
    pub fn new(pid: u32) -> Self {
        let last = if pid == KERNEL_PID {
            u64::MAX
        } else {
            USER_HALF_END - 1
        };
        Self::of_range(pid, 0, last)
    }

    /// A dump of `first..=last` of the space of `pid` (0: the kernel's).
    pub fn of_range(pid: u32, first: u64, last: u64) -> Self {
        Self {
            space: pid,
            resume: Some(first),
            last,
            top_audited: pid == KERNEL_PID,
            end: PtDumpEnd {
                space: pid,
                complete: true,
                ..PtDumpEnd::default()
            },
        }
    }

    /// Whether every range has been produced.
    pub fn is_done(&self) -> bool {
        self.resume.is_none()
    }

    /// The dump's end, with its totals: valid once [`is_done`](Self::is_done).
    pub fn end(&self) -> PtDumpEnd {
        PtDumpEnd {
            ts_us: time::uptime_us(),
            ..self.end
        }
    }

    /// The next batch: up to `ranges.len()` ranges and, as room allows,
    /// their audit findings. Holds the tables' lock while it walks.
    pub fn next_batch(&mut self, ranges: &mut [PtRange], audit: &mut [PtAudit]) -> Batch {
        let Some(from) = self.resume else {
            return Batch::default();
        };
        if self.space == KERNEL_PID {
            virt::with_kernel_tables(|tables| {
                self.end.root = tables.root().start_address().as_u64();
                self.walk(tables, from, &[], ranges, audit)
            })
        } else {
            let space = self.space;
            let batch = crate::proc::with_table(|t| {
                let mm = t.get(space)?.mm.as_ref()?;
                let tables = mm.space().tables();
                self.end.root = tables.root().start_address().as_u64();
                let mut batch = Batch::default();
                if !self.top_audited {
                    batch.findings = audit_kernel_half(space, tables, audit);
                    self.top_audited = true;
                }
                let more = self.walk(
                    tables,
                    from,
                    mm.vmas(),
                    ranges,
                    &mut audit[batch.findings..],
                );
                batch.ranges = more.ranges;
                batch.findings += more.findings;
                Some(batch)
            });
            batch.unwrap_or_else(|| {
                // No such process, or one without an address space.
                self.end.complete = false;
                self.resume = None;
                Batch::default()
            })
        }
    }

    /// Walks from `from` to the dump's last address, filling `ranges` and
    /// `audit`; stops early when either is full, to resume at the start of
    /// the range left open. `audit` must hold at least [`MAX_PER_RANGE`].
    fn walk(
        &mut self,
        tables: &Tables,
        from: u64,
        vmas: &[Vma],
        ranges: &mut [PtRange],
        audit: &mut [PtAudit],
    ) -> Batch {
        let mut batch = Batch::default();
        let mut coalescer = Coalescer::new();
        let lo = VirtAddr::new_truncate(from);
        let hi = VirtAddr::new_truncate(self.last);
        let mut leaves = tables.leaves(lo..=hi);
        loop {
            let leaf = leaves.next();
            let closed = match &leaf {
                Some(l) => {
                    let region = region_in(self.space, vmas, l.mapping.virt.as_u64());
                    coalescer.push(self.space, l, region)
                }
                None => coalescer.finish(),
            };
            if let Some(range) = closed {
                let found = audit_range(&range, vmas, &mut audit[batch.findings..]);
                let Some(found) = found.filter(|_| batch.ranges < ranges.len()) else {
                    // No room for it or its findings: the next batch starts
                    // with it again.
                    self.resume = Some(range.start);
                    return batch;
                };
                ranges[batch.ranges] = range;
                batch.ranges += 1;
                batch.findings += found;
                self.count(&range, found);
            }
            if leaf.is_none() {
                self.resume = None;
                return batch;
            }
        }
    }

    fn count(&mut self, range: &PtRange, findings: usize) {
        self.end.ranges += 1;
        self.end.findings += findings as u64;
        let pages = range.pages;
        match range.page_size {
            s if s == PageSize::Size4KiB.bytes() => self.end.pages_4k += pages,
            s if s == PageSize::Size2MiB.bytes() => self.end.pages_2m += pages,
            _ => self.end.pages_1g += pages,
        }
    }
}

/// The region of `virt` in `space`: for a program, the kind of its VMA.
fn region_in(space: u32, vmas: &[Vma], virt: u64) -> Region {
    if space != KERNEL_PID && virt < USER_HALF_END {
        return vma_at(vmas, virt).map_or(Region::Unknown, |v| Region::Vma(v.kind()));
    }
    virt::region_of(virt)
}

fn vma_at(vmas: &[Vma], virt: u64) -> Option<&Vma> {
    vmas.iter()
        .find(|v| (v.start().as_u64()..v.end().as_u64()).contains(&virt))
}

/// Writes the findings of `range` into `out`; how many, or `None` if they
/// do not fit.
fn audit_range(range: &PtRange, vmas: &[Vma], out: &mut [PtAudit]) -> Option<usize> {
    let on = |bit: u8| range.flags & bit != 0;
    let mut found = [None; MAX_PER_RANGE];
    if on(pt::WRITABLE) && !on(pt::NO_EXECUTE) {
        found[0] = Some(AuditKind::WritableExecutable);
    }
    if on(pt::USER) && range.start >= KERNEL_HALF_START {
        found[1] = Some(AuditKind::UserInKernelHalf);
    }
    if range.space != KERNEL_PID && range.start < USER_HALF_END {
        found[2] = match vma_at(vmas, range.start) {
            None => Some(AuditKind::OutsideVma),
            Some(v) if range.end > v.end().as_u64() => Some(AuditKind::OutsideVma),
            Some(v) => {
                let f = v.flags();
                let beyond = (on(pt::WRITABLE) && !f.contains(VmFlags::WRITE))
                    || (!on(pt::NO_EXECUTE) && !f.contains(VmFlags::EXEC));
                beyond.then_some(AuditKind::BeyondVma)
            }
        };
    }
    let n = found.iter().flatten().count();
    if n > out.len() {
        return None;
    }
    for (slot, kind) in out.iter_mut().zip(found.into_iter().flatten()) {
        *slot = PtAudit {
            space: range.space,
            kind,
            start: range.start,
            end: range.end,
            flags: range.flags,
        };
    }
    Some(n)
}

/// Findings for top-level kernel-half entries of `tables` that are not the
/// kernel's own (every space shares the kernel's tables there).
fn audit_kernel_half(space: u32, tables: &Tables, out: &mut [PtAudit]) -> usize {
    let kernel = PageTable::new(DirectMap, virt::kernel_root());
    let mut n = 0;
    for index in KERNEL_PML4_START..ENTRY_COUNT {
        if tables.root_entry(index) == kernel.root_entry(index) || n == out.len() {
            continue;
        }
        let start = VirtAddr::new_truncate((index as u64) << 39).as_u64();
        out[n] = PtAudit {
            space,
            kind: AuditKind::KernelHalfDiffers,
            start,
            end: start.wrapping_add(1 << 39),
            flags: 0,
        };
        n += 1;
    }
    n
}
