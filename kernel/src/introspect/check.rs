//! The consistency check that ties the frame allocator to every mapping:
//! each frame a space maps, and each of its page-table frames, must be used
//! and owned by the right owner; a shared frame's count must equal its
//! mappings; a frame charged to a process must be held by one; a used
//! frame must have an owner.
//!
//! It allocates nothing: the frames it meets are marked in a bitmap set
//! aside with the allocator's, shared frames are counted in their own
//! table, and findings go into the caller's array. It runs with the process
//! table held when no process's memory is in flight (spawn, fork and exit
//! move frames outside the table), so every frame a process holds is
//! reachable from the table while it looks.

use probe_proto::{CheckEnd, CheckFinding, FindingKind, Region};

use crate::memory::direct_map::DirectMap;
use crate::memory::{phys, virt};
use crate::mm::frame::{Frame, FrameBitmap, Owner};
use crate::mm::paging::{
    KERNEL_HALF_START, KERNEL_PML4_START, Leaf, PageTable, USER_HALF_END, VirtAddr, pt_flags,
};
use crate::proc::{KERNEL_PID, frames};
use crate::time;

/// Findings a check keeps at most; past that they are only counted.
pub const MAX_FINDINGS: usize = 64;

/// A filler for finding arrays.
pub const NO_FINDING: CheckFinding = CheckFinding {
    kind: FindingKind::MappedButFree,
    phys: 0,
    used: false,
    owner: None,
    pid: 0,
    virt: 0,
    flags: 0,
    mappings: 0,
    recorded: 0,
};

/// How often the check waits for processes in flight before giving up.
const SETTLE_TRIES: u32 = 1000;

/// Findings gathered so far.
struct Findings<'a> {
    out: &'a mut [CheckFinding],
    total: u64,
}

impl Findings<'_> {
    fn push(&mut self, finding: CheckFinding) {
        if let Some(slot) = self.out.get_mut(self.total as usize) {
            *slot = finding;
        }
        self.total += 1;
    }
}

/// Runs the check; fills `out` with the first findings and returns the
/// verdict (with the total count of findings and the time taken).
/// `None` if processes kept moving memory and the check could not start.
pub fn check_mappings(out: &mut [CheckFinding]) -> Option<CheckEnd> {
    let started = time::uptime_us();
    let mut findings = Findings { out, total: 0 };
    let mut end = CheckEnd::default();
    let mut settled = None;
    for _ in 0..SETTLE_TRIES {
        settled = crate::proc::with_settled_table(|table| {
            phys::with_frames(|pmm, marks| {
                marks.fill(0);
                frames::begin_census();
                let mut spaces = 1;
                let mut leaves = check_kernel_space(pmm, marks, &mut findings);
                for p in table.iter() {
                    let Some(mm) = p.mm.as_ref() else { continue };
                    spaces += 1;
                    leaves +=
                        check_user_space(p.pid, mm.space().tables(), pmm, marks, &mut findings);
                }
                frames::census_mismatches(|frame, users, seen| {
                    let frame = Frame::from_number(frame);
                    findings.push(CheckFinding {
                        kind: FindingKind::ShareCount,
                        mappings: u64::from(seen),
                        recorded: u64::from(users),
                        ..finding(pmm, frame)
                    });
                });
                check_charges(pmm, marks, &mut findings);
                (spaces, leaves, pmm.nr_frames())
            })
        });
        if settled.is_some() {
            break;
        }
        core::hint::spin_loop();
    }
    let (spaces, leaves, frames) = settled?;
    end.ts_us = time::uptime_us();
    end.consistent = findings.total == 0;
    end.frames = frames;
    end.spaces = spaces;
    end.mappings = leaves;
    end.findings = findings.total;
    end.duration_us = end.ts_us - started;
    Some(end)
}

/// What the allocator records of `frame`, as the start of a finding.
fn finding(pmm: &FrameBitmap<'_>, frame: Frame) -> CheckFinding {
    CheckFinding {
        phys: frame.start_address().as_u64(),
        used: pmm.is_used(frame),
        owner: pmm.owner(frame),
        ..NO_FINDING
    }
}

/// Marks `frame`; whether it was in range.
fn mark(marks: &mut [u64], frame: Frame) -> bool {
    let n = frame.number() as usize;
    match marks.get_mut(n / 64) {
        Some(word) => {
            *word |= 1 << (n % 64);
            true
        }
        None => false,
    }
}

fn is_marked(marks: &[u64], frame: Frame) -> bool {
    let n = frame.number() as usize;
    marks.get(n / 64).is_some_and(|w| w & (1 << (n % 64)) != 0)
}

/// Checks a page-table frame of space `pid`.
fn check_table(
    pid: u32,
    pmm: &FrameBitmap<'_>,
    marks: &mut [u64],
    table: Frame,
    out: &mut Findings<'_>,
) {
    mark(marks, table);
    let f = finding(pmm, table);
    let kind = if !f.used {
        FindingKind::MappedButFree
    } else if f.owner != Some(Owner::PageTable) {
        FindingKind::WrongOwner
    } else {
        return;
    };
    out.push(CheckFinding { kind, pid, ..f });
}

/// The kernel's space: its tables, and every leaf outside the direct map
/// (which maps all RAM, used or not); the image, heap and stacks must be
/// owned as such.
fn check_kernel_space(pmm: &FrameBitmap<'_>, marks: &mut [u64], out: &mut Findings<'_>) -> u64 {
    let tables = PageTable::new(DirectMap, virt::kernel_root());
    tables.for_each_table(0..crate::mm::paging::ENTRY_COUNT, |t| {
        check_table(KERNEL_PID, pmm, marks, t, out)
    });
    let mut leaves = 0;
    for leaf in tables.leaves(VirtAddr::new(KERNEL_HALF_START)..) {
        let region = virt::region_of(leaf.mapping.virt.as_u64());
        if region == Region::DirectMap {
            continue;
        }
        leaves += 1;
        let expected = match region {
            Region::Text | Region::Rodata | Region::Data => Some(Owner::KernelImage),
            Region::KernelHeap => Some(Owner::KernelHeap),
            Region::KernelStack => Some(Owner::KernelStack),
            _ => None,
        };
        for_each_frame(&leaf, |frame, virt| {
            mark(marks, frame);
            let f = finding(pmm, frame);
            let kind = if !f.used {
                FindingKind::MappedButFree
            } else if expected.is_some_and(|o| f.owner != Some(o)) {
                FindingKind::WrongOwner
            } else {
                return;
            };
            out.push(CheckFinding {
                kind,
                pid: KERNEL_PID,
                virt,
                flags: pt_flags(&leaf),
                ..f
            });
        });
    }
    leaves
}

/// A process's space: its user half's tables and leaves. A frame it maps
/// must be used and charged to a process: not necessarily this one, since
/// a copy-on-write frame stays charged to the process that allocated it
/// until its last user writes it; a shared one counts as one mapping.
fn check_user_space(
    pid: u32,
    tables: &PageTable<DirectMap>,
    pmm: &FrameBitmap<'_>,
    marks: &mut [u64],
    out: &mut Findings<'_>,
) -> u64 {
    tables.for_each_table(0..KERNEL_PML4_START, |t| {
        check_table(pid, pmm, marks, t, out)
    });
    let mut leaves = 0;
    for leaf in tables.leaves(..VirtAddr::new(USER_HALF_END)) {
        leaves += 1;
        for_each_frame(&leaf, |frame, virt| {
            mark(marks, frame);
            frames::note_mapping(frame);
            let f = finding(pmm, frame);
            let own = matches!(f.owner, Some(Owner::Process(_)));
            let kind = if !f.used {
                FindingKind::MappedButFree
            } else if !own {
                FindingKind::WrongOwner
            } else {
                return;
            };
            out.push(CheckFinding {
                kind,
                pid,
                virt,
                flags: pt_flags(&leaf),
                ..f
            });
        });
    }
    leaves
}

/// Every 4 KiB frame a leaf maps, with its virtual address.
fn for_each_frame(leaf: &Leaf, mut f: impl FnMut(Frame, u64)) {
    let m = &leaf.mapping;
    let first = Frame::containing_address(m.phys);
    for i in 0..m.size.bytes() / crate::mm::frame::FRAME_SIZE {
        f(
            Frame::from_number(first.number() + i),
            m.virt.as_u64() + i * crate::mm::frame::FRAME_SIZE,
        );
    }
}

/// Every frame: a used one needs an owner, and one charged to a process
/// must have been met in a mapping.
fn check_charges(pmm: &FrameBitmap<'_>, marks: &[u64], out: &mut Findings<'_>) {
    for n in 0..pmm.nr_frames() {
        let frame = Frame::from_number(n);
        if !pmm.is_used(frame) {
            continue;
        }
        match pmm.owner(frame) {
            None => out.push(CheckFinding {
                kind: FindingKind::UsedWithoutOwner,
                ..finding(pmm, frame)
            }),
            Some(Owner::Process(pid)) if !is_marked(marks, frame) => out.push(CheckFinding {
                kind: FindingKind::LeakedFrame,
                pid,
                ..finding(pmm, frame)
            }),
            _ => {}
        }
    }
}
