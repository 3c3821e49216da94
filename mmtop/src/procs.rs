//! Process listings: the messages that answer `HostMsg::Processes`,
//! assembled into programs, checked, and turned into the `checkMemory`
//! object.
//!
//! The kernel answers with, per program, one `ProcessInfo` followed by its
//! `ProcessHeap`s, `ProcessShed`s and `ProcessVma`s, then one
//! `ProcessListEnd`. Other telemetry may be interleaved and is ignored.
//! [`ListingBuilder`] collects one listing; [`Listing::completeness`] says
//! whether every announced part arrived; [`Listing::check_memory`] builds the
//! `checkMemory` object with totals summed from the parts and checked against
//! the kernel's own totals.

use probe_proto::{ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma};
use serde::{Deserialize, Serialize};

use crate::Msg;

/// One program of a listing with the parts that followed its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// Its row, with the counts and totals the kernel announced.
    pub info: ProcessInfo<'static>,
    /// Its heaps, in the order received.
    pub heaps: Vec<ProcessHeap>,
    /// Its sheds.
    pub sheds: Vec<ProcessShed>,
    /// Its virtual memory areas.
    pub vmas: Vec<ProcessVma>,
}

impl Program {
    /// A program with no parts yet.
    pub fn new(info: ProcessInfo<'static>) -> Self {
        Program {
            info,
            heaps: Vec::new(),
            sheds: Vec::new(),
            vmas: Vec::new(),
        }
    }

    /// Resident bytes: the frames mapped in its address space.
    pub fn resident_bytes(&self) -> u64 {
        crate::format::frames_to_bytes(self.info.resident_frames)
    }
}

/// One whole listing, as received; see [`Listing::completeness`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The programs, in the kernel's order.
    pub programs: Vec<Program>,
    /// The message that ended the listing.
    pub end: ProcessListEnd,
    /// Heaps, sheds and VMAs that did not follow a row of their own process
    /// (their row was lost, or the listing began before we listened).
    pub stray_parts: u64,
}

/// Why a listing cannot be trusted as a whole: something was lost on the
/// way. Asking again usually gives a complete one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    /// The kernel says it could not queue every message.
    #[error("the kernel could not queue every message of it")]
    Dropped,
    /// Rows received differ from the count in `ProcessListEnd`.
    #[error("{got} programs arrived, the kernel listed {expected}")]
    Programs {
        /// Rows received.
        got: usize,
        /// `ProcessListEnd::total_programs`.
        expected: u32,
    },
    /// A program's heaps, sheds or VMAs differ from its row's count.
    #[error("pid {pid}: {got} {what} arrived, its row announced {expected}")]
    Parts {
        /// The program.
        pid: u32,
        /// `heaps`, `sheds` or `VMAs`.
        what: &'static str,
        /// Parts received.
        got: usize,
        /// What its `ProcessInfo` announced.
        expected: u32,
    },
    /// Parts that belong to no row received before them.
    #[error("{0} heaps, sheds or VMAs arrived without their program's row")]
    Stray(u64),
}

/// The kernel's total for a program disagrees with the sum of its parts:
/// the kernel broke the protocol's promise, asking again will not help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "pid {pid} ({name}) reports {field} = {reported}, but its {parts} add up to {summed}",
    name = crate::format::escape_controls(name)
)]
pub struct TotalsMismatch {
    /// The program.
    pub pid: u32,
    /// Its name.
    pub name: String,
    /// The `checkMemory` key of the total (`totalHeapUsed`, ...).
    pub field: &'static str,
    /// `heaps` or `sheds`.
    pub parts: &'static str,
    /// What the kernel's `ProcessInfo` says.
    pub reported: u64,
    /// The sum over the parts received (saturating).
    pub summed: u64,
}

/// Collects the messages of one listing.
#[derive(Debug, Default)]
pub struct ListingBuilder {
    programs: Vec<Program>,
    stray_parts: u64,
}

impl ListingBuilder {
    /// A builder that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one message; returns the listing when `msg` ends one, and
    /// starts afresh. Messages that are not part of a listing are ignored.
    pub fn push(&mut self, msg: &Msg) -> Option<Listing> {
        match msg {
            Msg::ProcessInfo(info) => self.programs.push(Program::new(info.clone())),
            Msg::ProcessHeap(h) => {
                if let Some(p) = self.owner(h.pid) {
                    p.heaps.push(*h);
                }
            }
            Msg::ProcessShed(s) => {
                if let Some(p) = self.owner(s.pid) {
                    p.sheds.push(*s);
                }
            }
            Msg::ProcessVma(v) => {
                if let Some(p) = self.owner(v.pid) {
                    p.vmas.push(*v);
                }
            }
            Msg::ProcessListEnd(end) => {
                return Some(Listing {
                    programs: std::mem::take(&mut self.programs),
                    end: *end,
                    stray_parts: std::mem::take(&mut self.stray_parts),
                });
            }
            _ => {}
        }
        None
    }

    /// The program a part of `pid` belongs to: the last row, if it is that
    /// process's. Anything else is counted as stray.
    fn owner(&mut self, pid: u32) -> Option<&mut Program> {
        match self.programs.last_mut() {
            Some(p) if p.info.pid == pid => Some(p),
            _ => {
                self.stray_parts += 1;
                None
            }
        }
    }
}

impl Listing {
    /// Whether everything the kernel announced arrived: its `complete`
    /// flag, the number of rows, and each row's heaps, sheds and VMAs.
    pub fn completeness(&self) -> Result<(), Incomplete> {
        if !self.end.complete {
            return Err(Incomplete::Dropped);
        }
        if self.stray_parts != 0 {
            return Err(Incomplete::Stray(self.stray_parts));
        }
        if self.programs.len() as u64 != u64::from(self.end.total_programs) {
            return Err(Incomplete::Programs {
                got: self.programs.len(),
                expected: self.end.total_programs,
            });
        }
        for p in &self.programs {
            let i = &p.info;
            for (what, got, expected) in [
                ("heaps", p.heaps.len(), i.nr_heaps),
                ("sheds", p.sheds.len(), i.nr_sheds),
                ("VMAs", p.vmas.len(), i.nr_vmas),
            ] {
                if got as u64 != u64::from(expected) {
                    return Err(Incomplete::Parts {
                        pid: i.pid,
                        what,
                        got,
                        expected,
                    });
                }
            }
        }
        Ok(())
    }

    /// The `checkMemory` object: totals are the sums of the heaps and
    /// sheds, and must equal the kernel's totals.
    pub fn check_memory(&self) -> Result<CheckMemory, TotalsMismatch> {
        let programs = self
            .programs
            .iter()
            .map(ProgramMemory::of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CheckMemory {
            total_programs: programs.len() as u64,
            programs,
        })
    }
}

/// `checkMemory(-1)`: every program's heaps and sheds, with totals.
/// Serialized with exactly these camelCase keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckMemory {
    /// Programs listed, the kernel included.
    pub total_programs: u64,
    /// One entry per program.
    pub programs: Vec<ProgramMemory>,
}

/// One program of [`CheckMemory`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgramMemory {
    /// Process id; 0 is the kernel.
    pub pid: u32,
    /// Registered name, or `Program-{pid}`.
    pub program_name: String,
    /// Its heaps.
    pub heaps: Vec<HeapMemory>,
    /// Its sheds.
    pub sheds: Vec<ShedMemory>,
    /// Sum of `heapSize`.
    pub total_heap_size: u64,
    /// Sum of `heapUsed`.
    pub total_heap_used: u64,
    /// Sum of `heapFree`.
    pub total_heap_free: u64,
    /// Sum of `shedSize`.
    pub total_shed_size: u64,
}

/// One heap of [`ProgramMemory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeapMemory {
    /// Heap id within the process.
    pub heap_id: u32,
    /// Bytes the heap manages.
    pub heap_size: u64,
    /// Payload bytes in use.
    pub heap_used: u64,
    /// `heapSize - heapUsed`.
    pub heap_free: u64,
}

/// One shed of [`ProgramMemory`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShedMemory {
    /// Shed id within the process.
    pub shed_id: u32,
    /// Bytes.
    pub shed_size: u64,
}

impl From<&ProcessHeap> for HeapMemory {
    fn from(h: &ProcessHeap) -> Self {
        HeapMemory {
            heap_id: h.heap_id,
            heap_size: h.heap_size,
            heap_used: h.heap_used,
            heap_free: h.heap_free,
        }
    }
}

impl From<&ProcessShed> for ShedMemory {
    fn from(s: &ProcessShed) -> Self {
        ShedMemory {
            shed_id: s.shed_id,
            shed_size: s.shed_size,
        }
    }
}

impl ProgramMemory {
    /// `p` in the `checkMemory` shape, its totals summed and checked.
    fn of(p: &Program) -> Result<Self, TotalsMismatch> {
        let heaps: Vec<HeapMemory> = p.heaps.iter().map(HeapMemory::from).collect();
        let sheds: Vec<ShedMemory> = p.sheds.iter().map(ShedMemory::from).collect();
        let sum = |values: &mut dyn Iterator<Item = u64>| {
            values.fold(0u64, |sum, v| sum.saturating_add(v))
        };
        let total_heap_size = sum(&mut heaps.iter().map(|h| h.heap_size));
        let total_heap_used = sum(&mut heaps.iter().map(|h| h.heap_used));
        let total_heap_free = sum(&mut heaps.iter().map(|h| h.heap_free));
        let total_shed_size = sum(&mut sheds.iter().map(|s| s.shed_size));
        let i = &p.info;
        for (field, parts, reported, summed) in [
            ("totalHeapSize", "heaps", i.total_heap_size, total_heap_size),
            ("totalHeapUsed", "heaps", i.total_heap_used, total_heap_used),
            ("totalHeapFree", "heaps", i.total_heap_free, total_heap_free),
            ("totalShedSize", "sheds", i.total_shed_size, total_shed_size),
        ] {
            if reported != summed {
                return Err(TotalsMismatch {
                    pid: i.pid,
                    name: i.name.to_string(),
                    field,
                    parts,
                    reported,
                    summed,
                });
            }
        }
        Ok(ProgramMemory {
            pid: i.pid,
            program_name: i.name.to_string(),
            heaps,
            sheds,
            total_heap_size,
            total_heap_used,
            total_heap_free,
            total_shed_size,
        })
    }
}

impl CheckMemory {
    /// The object as one line of JSON.
    pub fn to_json(&self) -> String {
        // Strings and integers only: serialization cannot fail.
        serde_json::to_string(self).expect("checkMemory serializes to JSON")
    }
}

/// Whether `msg` is part of a process listing (the answer to `Processes`).
pub fn is_listing(msg: &Msg) -> bool {
    matches!(
        msg,
        Msg::ProcessInfo(_)
            | Msg::ProcessHeap(_)
            | Msg::ProcessShed(_)
            | Msg::ProcessVma(_)
            | Msg::ProcessListEnd(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs_fixture::*;
    use probe_proto::KernelMsg;
    use serde_json::Value;

    /// Feeds wire messages through the owned form, as the link does.
    fn assemble(msgs: &[KernelMsg<'_>]) -> Vec<Listing> {
        let mut b = ListingBuilder::new();
        msgs.iter()
            .filter_map(|m| b.push(&m.clone().into_owned()))
            .collect()
    }

    fn one(msgs: &[KernelMsg<'_>]) -> Listing {
        let mut listings = assemble(msgs);
        assert_eq!(listings.len(), 1, "{listings:?}");
        listings.remove(0)
    }

    #[test]
    fn builder_groups_parts_under_their_row_and_ignores_other_telemetry() {
        let mut msgs = full_listing();
        // Unrelated events in the middle of the listing.
        msgs.insert(3, KernelMsg::Dropped { count: 0 });
        msgs.insert(1, KernelMsg::Pong(probe_proto::Pong { nonce: 1, ts_us: 2 }));
        let l = one(&msgs);
        assert_eq!(l.completeness(), Ok(()));
        assert_eq!(l.end.total_programs, 2);
        let [kernel, memtest] = &l.programs[..] else {
            panic!("{l:?}");
        };
        assert_eq!(kernel.info.name, "kernel");
        assert_eq!(kernel.heaps, kernel_heaps());
        assert!(kernel.sheds.is_empty() && kernel.vmas.is_empty());
        assert_eq!(memtest.info.name, "memtest");
        assert_eq!(memtest.heaps, memtest_heaps());
        assert_eq!(memtest.sheds, memtest_sheds());
        assert_eq!(memtest.vmas, memtest_vmas());
        assert_eq!(memtest.resident_bytes(), 40_960);
    }

    #[test]
    fn builder_starts_afresh_after_each_end() {
        let mut msgs = full_listing();
        msgs.extend(memtest_listing());
        msgs.extend(no_such_process_listing());
        let listings = assemble(&msgs);
        let pids: Vec<Vec<u32>> = listings
            .iter()
            .map(|l| l.programs.iter().map(|p| p.info.pid).collect())
            .collect();
        assert_eq!(pids, [vec![0, MEMTEST_PID], vec![MEMTEST_PID], vec![]]);
        assert!(listings.iter().all(|l| l.completeness().is_ok()));
    }

    #[test]
    fn a_listing_the_kernel_flags_incomplete_is_incomplete() {
        let mut msgs = memtest_msgs();
        msgs.push(list_end(1, false));
        assert_eq!(one(&msgs).completeness(), Err(Incomplete::Dropped));
    }

    #[test]
    fn a_lost_row_or_part_makes_the_listing_incomplete() {
        // memtest's second heap lost.
        let mut msgs = full_listing();
        let at = msgs
            .iter()
            .position(|m| matches!(m, KernelMsg::ProcessHeap(h) if h.heap_id == 7))
            .unwrap();
        msgs.remove(at);
        let err = one(&msgs).completeness().unwrap_err();
        assert_eq!(
            err,
            Incomplete::Parts {
                pid: MEMTEST_PID,
                what: "heaps",
                got: 1,
                expected: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "pid 1: 1 heaps arrived, its row announced 2"
        );

        // A VMA lost.
        let mut msgs = memtest_listing();
        msgs.remove(6);
        assert!(matches!(
            one(&msgs).completeness(),
            Err(Incomplete::Parts {
                what: "VMAs",
                got: 6,
                expected: 7,
                ..
            })
        ));

        // memtest's row lost: its parts have no owner.
        let mut msgs = full_listing();
        let at = msgs
            .iter()
            .position(|m| matches!(m, KernelMsg::ProcessInfo(i) if i.pid == MEMTEST_PID))
            .unwrap();
        msgs.remove(at);
        let l = one(&msgs);
        assert_eq!(l.stray_parts, 11);
        assert_eq!(l.completeness(), Err(Incomplete::Stray(11)));

        // A row lost together with its parts: the count says so.
        let mut msgs = kernel_msgs();
        msgs.push(list_end(2, true));
        let err = one(&msgs).completeness().unwrap_err();
        assert_eq!(err.to_string(), "1 programs arrived, the kernel listed 2");
    }

    #[test]
    fn check_memory_has_exactly_the_documented_keys_and_sums() {
        let cm = one(&full_listing()).check_memory().unwrap();
        let got: Value = serde_json::from_str(&cm.to_json()).unwrap();
        // Value equality compares key sets exactly: nothing extra, nothing
        // missing, at every level.
        assert_eq!(got, full_listing_check_memory());
        // The documented order, so the object reads like checkMemory's.
        assert!(
            cm.to_json().starts_with(
                r#"{"totalPrograms":2,"programs":[{"pid":0,"programName":"kernel","heaps":[{"heapId":0,"heapSize":65536,"heapUsed":1536,"heapFree":64000}],"sheds":[],"totalHeapSize""#
            ),
            "{}",
            cm.to_json()
        );
        // And it reads back.
        assert_eq!(
            serde_json::from_str::<CheckMemory>(&cm.to_json()).unwrap(),
            cm
        );
    }

    #[test]
    fn check_memory_totals_are_sums_of_the_parts() {
        let cm = one(&full_listing()).check_memory().unwrap();
        assert_eq!(cm.total_programs, cm.programs.len() as u64);
        for p in &cm.programs {
            let heaps = |field: fn(&HeapMemory) -> u64| p.heaps.iter().map(field).sum::<u64>();
            assert_eq!(p.total_heap_size, heaps(|h| h.heap_size));
            assert_eq!(p.total_heap_used, heaps(|h| h.heap_used));
            assert_eq!(p.total_heap_free, heaps(|h| h.heap_free));
            let sheds: u64 = p.sheds.iter().map(|s| s.shed_size).sum();
            assert_eq!(p.total_shed_size, sheds);
        }
    }

    #[test]
    fn a_kernel_total_that_is_not_the_sum_of_its_parts_is_refused() {
        let l = one(&memtest_listing_with(|info| info.total_heap_used = 700));
        assert_eq!(l.completeness(), Ok(()), "complete, just wrong");
        let err = l.check_memory().unwrap_err();
        assert_eq!(
            err.to_string(),
            "pid 1 (memtest) reports totalHeapUsed = 700, but its heaps add up to 600"
        );

        let msgs = memtest_listing_with(|info| info.total_shed_size = 8_192);
        let err = one(&msgs).check_memory().unwrap_err();
        assert_eq!(
            (err.field, err.parts, err.summed),
            ("totalShedSize", "sheds", 16_384)
        );
    }

    #[test]
    fn no_such_process_is_an_empty_complete_listing() {
        let l = one(&no_such_process_listing());
        assert_eq!(l.completeness(), Ok(()));
        let cm = l.check_memory().unwrap();
        assert_eq!(cm.to_json(), r#"{"totalPrograms":0,"programs":[]}"#);
    }
}
