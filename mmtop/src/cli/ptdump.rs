//! `mmtop ptdump` and `mmtop diff`: page-table snapshots of the kernel's
//! space or a process's, as text that diffs well or as JSON, saved for
//! later and compared range by range.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use probe_proto::names::{AuditLine, DumpSummary, PtRangeLine, pt};
use probe_proto::{AuditKind, HostMsg, KERNEL_PID, PtAudit, PtDumpEnd, PtRange, Region, Version};
use serde::{Deserialize, Serialize};

use super::args::{DiffArgs, PtdumpArgs};
use super::request::Session;
use super::{EXIT_CONNECT, EXIT_NO_PROCESS, EXIT_OK, EXIT_TIMEOUT, Status};
use crate::Msg;
use crate::link::Address;

/// The first protocol version with `PtDump`.
pub const PTDUMP_SINCE: Version = Version { major: 2, minor: 0 };

/// Which address space a snapshot is of: `"kernel"` or a pid in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Space {
    /// A process.
    Pid(u32),
    /// The kernel's own.
    Named(KernelSpace),
}

/// The word `"kernel"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelSpace {
    /// The kernel's space.
    Kernel,
}

impl Space {
    /// The space of `pid` (0: the kernel's).
    pub fn of(pid: u32) -> Self {
        if pid == KERNEL_PID {
            Space::Named(KernelSpace::Kernel)
        } else {
            Space::Pid(pid)
        }
    }

    /// Its pid (0: the kernel).
    pub fn pid(self) -> u32 {
        match self {
            Space::Pid(pid) => pid,
            Space::Named(KernelSpace::Kernel) => KERNEL_PID,
        }
    }
}

/// One range of a snapshot, flags spelled out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// First virtual address.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// Physical address behind `start`.
    pub phys: u64,
    /// Bytes of each leaf.
    pub page_size: u64,
    /// Writable at every level.
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// Not executable.
    pub nx: bool,
    /// Global.
    pub global: bool,
    /// Write-through.
    pub pwt: bool,
    /// Cache disabled.
    pub pcd: bool,
    /// PAT bit.
    #[serde(default)]
    pub pat: bool,
    /// Leaves in it.
    #[serde(default)]
    pub pages: u64,
    /// Dirty leaves in it.
    #[serde(default)]
    pub dirty_pages: u64,
    /// The kernel region or VMA kind (`direct-map`, `vma:heap`, `-`).
    pub region: String,
}

impl Range {
    fn of(r: &PtRange) -> Self {
        let on = |bit| r.flags & bit != 0;
        Range {
            start: r.start,
            end: r.end,
            phys: r.phys,
            page_size: r.page_size,
            writable: on(pt::WRITABLE),
            user: on(pt::USER),
            nx: on(pt::NO_EXECUTE),
            global: on(pt::GLOBAL),
            pwt: on(pt::PWT),
            pcd: on(pt::PCD),
            pat: on(pt::PAT),
            pages: r.pages,
            dirty_pages: r.dirty_pages,
            region: r.region.to_string(),
        }
    }

    /// Back to the wire form, for printing (space 0: not shown).
    fn wire(&self) -> PtRange {
        let bits = [
            (self.writable, pt::WRITABLE),
            (self.user, pt::USER),
            (self.nx, pt::NO_EXECUTE),
            (self.global, pt::GLOBAL),
            (self.pwt, pt::PWT),
            (self.pcd, pt::PCD),
            (self.pat, pt::PAT),
        ];
        PtRange {
            space: 0,
            start: self.start,
            end: self.end,
            phys: self.phys,
            page_size: self.page_size,
            flags: bits.iter().filter(|(on, _)| *on).fold(0, |f, (_, b)| f | b),
            pages: self.pages,
            dirty_pages: self.dirty_pages,
            region: self.region.parse().unwrap_or(Region::Unknown),
        }
    }

    /// The line a dump prints for it.
    fn line(&self) -> String {
        PtRangeLine(&self.wire()).to_string()
    }

    /// What identifies the range apart from its bounds (dirty pages are not
    /// part of it, as in a dump).
    fn identity(&self) -> (u64, u64, u64, u8, &str) {
        let w = self.wire();
        (self.end, self.phys, self.page_size, w.flags, &self.region)
    }
}

/// One audit finding of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: AuditKind,
    /// First address concerned.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// The finding in words.
    pub what: String,
}

/// A page-table snapshot: the `--json` form and the file `-o` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Whose tables.
    pub space: Space,
    /// Physical address of the top-level table.
    pub root: u64,
    /// The ranges, in address order.
    pub ranges: Vec<Range>,
    /// The audit's findings.
    pub audit: Vec<Finding>,
    /// 4 KiB, 2 MiB and 1 GiB leaves.
    #[serde(default)]
    pub pages: [u64; 3],
}

impl Snapshot {
    /// The snapshot a whole dump of `pid`'s space makes: its ranges,
    /// audit findings and end (as `ptdump` fetches it and the TUI keeps
    /// it).
    pub fn of_dump(pid: u32, ranges: &[PtRange], audits: &[PtAudit], end: &PtDumpEnd) -> Self {
        Snapshot {
            space: Space::of(pid),
            root: end.root,
            ranges: ranges.iter().map(Range::of).collect(),
            audit: audits
                .iter()
                .map(|a| Finding {
                    kind: a.kind,
                    start: a.start,
                    end: a.end,
                    what: a.kind.describe().to_string(),
                })
                .collect(),
            pages: [end.pages_4k, end.pages_2m, end.pages_1g],
        }
    }

    /// The text form: one line a range, the audit, then the totals.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for r in &self.ranges {
            let _ = writeln!(s, "{}", r.line());
        }
        for f in &self.audit {
            let a = PtAudit {
                space: self.space.pid(),
                kind: f.kind,
                start: f.start,
                end: f.end,
                flags: 0,
            };
            let _ = writeln!(s, "{}", AuditLine(&a));
        }
        let end = PtDumpEnd {
            space: self.space.pid(),
            root: self.root,
            ranges: self.ranges.len() as u64,
            pages_4k: self.pages[0],
            pages_2m: self.pages[1],
            pages_1g: self.pages[2],
            findings: self.audit.len() as u64,
            complete: true,
            ts_us: 0,
        };
        let _ = writeln!(s, "{}", DumpSummary(&end));
        s
    }
}

/// Asks the kernel at `address` for the dump of `pid`'s space.
fn fetch(
    address: &Address,
    pid: u32,
    timeout: std::time::Duration,
    err: &mut dyn Write,
) -> Result<Snapshot, u8> {
    let mut session = Session::open(address, "ptdump", PTDUMP_SINCE, timeout, err)?;
    session.send(&HostMsg::PtDump { pid }, err)?;
    let mut ranges = Vec::new();
    let mut audit = Vec::new();
    loop {
        match session.recv("the page-table dump", err)? {
            Msg::PtRange(r) if r.space == pid => ranges.push(r),
            Msg::PtAudit(a) if a.space == pid => audit.push(a),
            Msg::PtDumpEnd(e) if e.space == pid => {
                if !e.complete {
                    let _ = writeln!(
                        err,
                        "mmtop: no process {pid} with an address space at {address}"
                    );
                    return Err(EXIT_NO_PROCESS);
                }
                if e.ranges != ranges.len() as u64 {
                    let _ = writeln!(
                        err,
                        "mmtop: the kernel sent {} ranges but {} arrived",
                        e.ranges,
                        ranges.len()
                    );
                    return Err(EXIT_TIMEOUT);
                }
                return Ok(Snapshot::of_dump(pid, &ranges, &audit, &e));
            }
            _ => {}
        }
    }
}

/// Runs `mmtop ptdump`.
pub fn run(args: &PtdumpArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let pid = args.pid.unwrap_or(KERNEL_PID);
    let snapshot = fetch(&args.connect.address, pid, args.timeout, err)?;
    let json = serde_json::to_string(&snapshot).expect("a snapshot serializes to JSON");
    if let Some(path) = &args.output
        && let Err(e) = std::fs::write(path, format!("{json}\n"))
    {
        let _ = writeln!(err, "mmtop: cannot write {}: {e}", path.display());
        return Err(EXIT_CONNECT);
    }
    let text = if args.json {
        format!("{json}\n")
    } else {
        snapshot.text()
    };
    let _ = out.write_all(text.as_bytes());
    Ok(EXIT_OK)
}

/// A snapshot file, or why it cannot be used.
fn load(path: &Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a page-table snapshot: {e}", path.display()))
}

/// What changed from one snapshot to another, range by range (by start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Ranges only in the second.
    pub added: Vec<Range>,
    /// Ranges only in the first.
    pub removed: Vec<Range>,
    /// Ranges starting at the same address whose end, frame, page size,
    /// flags or region differ.
    pub changed: Vec<Change>,
}

/// One range before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// In the first snapshot.
    pub before: Range,
    /// In the second.
    pub after: Range,
}

impl Diff {
    /// Compares `a` with `b`.
    pub fn of(a: &Snapshot, b: &Snapshot) -> Self {
        let by_start = |s: &Snapshot| -> BTreeMap<u64, Range> {
            s.ranges.iter().map(|r| (r.start, r.clone())).collect()
        };
        let (mut old, new) = (by_start(a), by_start(b));
        let mut diff = Diff::default();
        for (start, after) in new {
            match old.remove(&start) {
                None => diff.added.push(after),
                Some(before) if before.identity() != after.identity() => {
                    diff.changed.push(Change { before, after })
                }
                Some(_) => {}
            }
        }
        diff.removed = old.into_values().collect();
        diff
    }

    /// Whether the snapshots are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// As text: `-` removed, `+` added, and a changed range as its `-` and
    /// `+` lines, in address order.
    pub fn text(&self) -> String {
        let mut lines: Vec<(u64, u8, String)> = Vec::new();
        for r in &self.removed {
            lines.push((r.start, 0, format!("- {}", r.line())));
        }
        for c in &self.changed {
            lines.push((c.before.start, 0, format!("- {}", c.before.line())));
            lines.push((c.after.start, 1, format!("+ {}", c.after.line())));
        }
        for r in &self.added {
            lines.push((r.start, 1, format!("+ {}", r.line())));
        }
        lines.sort();
        let mut s: String = lines.into_iter().map(|(_, _, l)| l + "\n").collect();
        let _ = writeln!(
            s,
            "{} added, {} removed, {} changed",
            self.added.len(),
            self.removed.len(),
            self.changed.len()
        );
        s
    }
}

/// Runs `mmtop diff`; the exit status is 0 the same, 1 different, 2 bad
/// input.
pub fn diff(args: &DiffArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let files: Vec<Option<Result<Snapshot, String>>> = [&args.first, &args.second]
        .iter()
        .map(|p| (p.as_os_str() != "live").then(|| load(p)))
        .collect();
    let mut loaded = Vec::new();
    for f in &files {
        match f {
            Some(Err(why)) => {
                let _ = writeln!(err, "mmtop: {why}");
                return Err(EXIT_CONNECT);
            }
            Some(Ok(s)) => loaded.push(Some(s.clone())),
            None => loaded.push(None),
        }
    }
    let space = loaded.iter().flatten().next().map(|s| s.space);
    let take_live = |slot: &mut Option<Snapshot>, err: &mut dyn Write| -> Result<(), u8> {
        if slot.is_some() {
            return Ok(());
        }
        let Some(address) = &args.connect else {
            let _ = writeln!(err, "mmtop: `live` needs --connect ADDR");
            return Err(EXIT_CONNECT);
        };
        let pid = args.pid.or(space.map(Space::pid)).unwrap_or(KERNEL_PID);
        *slot = Some(fetch(address, pid, args.timeout, err)?);
        Ok(())
    };
    let [mut a, mut b]: [Option<Snapshot>; 2] = [loaded[0].take(), loaded[1].take()];
    for slot in [&mut a, &mut b] {
        take_live(slot, err)?;
    }
    let (a, b) = (a.expect("loaded or fetched"), b.expect("loaded or fetched"));
    if a.space != b.space {
        let _ = writeln!(
            err,
            "mmtop: note: comparing different spaces ({:?} and {:?})",
            a.space, b.space
        );
    }
    let d = Diff::of(&a, &b);
    let text = if args.json {
        serde_json::to_string(&d).expect("a diff serializes to JSON") + "\n"
    } else {
        d.text()
    };
    let _ = out.write_all(text.as_bytes());
    Ok(if d.is_empty() { EXIT_OK } else { EXIT_TIMEOUT })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u64, end: u64, phys: u64, writable: bool, region: &str) -> Range {
        Range {
            start,
            end,
            phys,
            page_size: 4096,
            writable,
            user: true,
            nx: true,
            global: false,
            pwt: false,
            pcd: false,
            pat: false,
            pages: (end - start) / 4096,
            dirty_pages: 0,
            region: region.into(),
        }
    }

    fn snapshot(ranges: Vec<Range>) -> Snapshot {
        Snapshot {
            space: Space::Pid(3),
            root: 0x1000,
            ranges,
            audit: vec![],
            pages: [0; 3],
        }
    }

    #[test]
    fn snapshot_json_names_the_kernel_space_and_reads_back() {
        let mut s = snapshot(vec![range(0x40_0000, 0x40_1000, 0x5000, false, "vma:code")]);
        s.space = Space::of(0);
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.starts_with(r#"{"space":"kernel","root":4096,"ranges":[{"start":4194304,"#));
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
        let pid: Snapshot = serde_json::from_str(&json.replace(r#""kernel""#, "7")).unwrap();
        assert_eq!(pid.space, Space::Pid(7));
    }

    #[test]
    fn diff_reports_added_removed_and_changed_ranges_by_start() {
        let a = snapshot(vec![
            range(0x40_0000, 0x40_1000, 0x5000, false, "vma:code"),
            range(0x50_0000, 0x50_2000, 0x9000, true, "vma:heap"),
            range(0x60_0000, 0x60_1000, 0xa000, true, "vma:mmap"),
        ]);
        let mut dirty = range(0x40_0000, 0x40_1000, 0x5000, false, "vma:code");
        dirty.dirty_pages = 1;
        let b = snapshot(vec![
            dirty,
            range(0x50_0000, 0x50_2000, 0x9000, false, "vma:heap"),
            range(0x70_0000, 0x70_1000, 0xb000, true, "vma:mmap"),
        ]);
        let d = Diff::of(&a, &b);
        assert_eq!(
            d.added.iter().map(|r| r.start).collect::<Vec<_>>(),
            [0x70_0000]
        );
        assert_eq!(
            d.removed.iter().map(|r| r.start).collect::<Vec<_>>(),
            [0x60_0000]
        );
        assert_eq!(d.changed.len(), 1, "dirty pages are not a change");
        assert!(d.changed[0].before.writable && !d.changed[0].after.writable);
        let text = d.text();
        assert!(text.ends_with("1 added, 1 removed, 1 changed\n"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("- 0x0000000000500000-") && l.contains(" RW "))
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("+ 0x0000000000500000-") && l.contains(" ro "))
        );
        assert!(Diff::of(&a, &a).is_empty());
    }
}
