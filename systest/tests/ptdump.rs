//! Page-table dumps are what the MMU does: a dump over COM1 equals a walk
//! of the same tables that this test makes itself, reading the table pages
//! through QEMU's own gdb stub (not the kernel's walker); and a process's
//! dump changes exactly as it maps, touches, loses write access to (a
//! fork's copy-on-write), writes and unmaps memory, which `mmtop diff`
//! shows.

use probe_proto::names::pt;
use probe_proto::{HostMsg, KernelMsg, PtDumpEnd, PtRange};
use serde_json::Value;
use systest::rsp::Rsp;
use systest::{DEADLINE, LoggedLine, Qemu, QemuConfig, Telemetry, free_port, run_mmtop};

/// Where the kernel maps all RAM.
const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const GLOBAL: u64 = 1 << 8;
const NX: u64 = 1 << 63;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// `(start, end, phys, page size, flags)` of a range, region left out: the
/// independent walk cannot know regions.
type Plain = (u64, u64, u64, u64, u8);

/// Asks for the dump of `pid` and collects its ranges and end.
fn dump(link: &mut Telemetry, pid: u32) -> (Vec<PtRange>, PtDumpEnd) {
    link.send(&HostMsg::PtDump { pid });
    let mut ranges = Vec::new();
    let end = link.wait_for("PtDumpEnd", DEADLINE, |m| match m {
        KernelMsg::PtRange(r) if r.space == pid => {
            ranges.push(*r);
            None
        }
        KernelMsg::PtDumpEnd(e) if e.space == pid => Some(*e),
        _ => None,
    });
    assert!(end.complete, "dump of {pid} complete");
    assert_eq!(end.ranges, ranges.len() as u64, "every range arrived");
    (ranges, end)
}

/// Merges consecutive plain ranges that continue each other with equal
/// size and flags (a dump also splits where the region changes).
fn merge(ranges: impl IntoIterator<Item = Plain>) -> Vec<Plain> {
    let mut out: Vec<Plain> = Vec::new();
    for r in ranges {
        if let Some(last) = out.last_mut()
            && last.1 == r.0
            && last.2 + (last.1 - last.0) == r.2
            && (last.3, last.4) == (r.3, r.4)
        {
            last.1 = r.1;
            continue;
        }
        out.push(r);
    }
    out
}

/// Reads the 512 entries of the table at physical `table` through QEMU's
/// stub, in pieces its packet size allows.
fn read_table(rsp: &mut Rsp, piece: usize, table: u64) -> Vec<u64> {
    let mut bytes = Vec::new();
    while bytes.len() < 4096 {
        let at = PHYS_OFFSET + table + bytes.len() as u64;
        let n = piece.min(4096 - bytes.len());
        bytes.extend(rsp.read_hex(at, n).expect("QEMU reads the direct map"));
    }
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// The leaves under the table at `table` (level 4 = PML4), as plain
/// ranges with the permissions combined the way the MMU does.
#[allow(clippy::too_many_arguments)]
fn walk(
    rsp: &mut Rsp,
    piece: usize,
    table: u64,
    level: u32,
    base: u64,
    upper: (bool, bool, bool),
    indices: std::ops::Range<usize>,
    out: &mut Vec<Plain>,
) {
    let entries = read_table(rsp, piece, table);
    let shift = 12 + 9 * (level - 1);
    for i in indices {
        let e = entries[i];
        if e & PRESENT == 0 {
            continue;
        }
        let mut va = base | ((i as u64) << shift);
        if level == 4 && i >= 256 {
            va |= 0xffff_0000_0000_0000; // sign extension
        }
        let (w, u, nx) = (
            upper.0 && e & WRITABLE != 0,
            upper.1 && e & USER != 0,
            upper.2 || e & NX != 0,
        );
        let leaf = level == 1 || ((level == 2 || level == 3) && e & HUGE != 0);
        if !leaf {
            walk(rsp, piece, e & ADDR, level - 1, va, (w, u, nx), 0..512, out);
            continue;
        }
        let size = 1u64 << shift;
        let pat = if level == 1 {
            e & HUGE != 0
        } else {
            e & (1 << 12) != 0
        };
        let phys = e & ADDR & !(size - 1);
        let bits = [
            (w, pt::WRITABLE),
            (u, pt::USER),
            (nx, pt::NO_EXECUTE),
            (e & GLOBAL != 0, pt::GLOBAL),
            (e & PWT != 0, pt::PWT),
            (e & PCD != 0, pt::PCD),
            (pat, pt::PAT),
        ];
        let flags = bits.iter().filter(|b| b.0).fold(0, |f, b| f | b.1);
        out.push((va, va.wrapping_add(size), phys, size, flags));
    }
}

fn plain(r: &PtRange) -> Plain {
    (r.start, r.end, r.phys, r.page_size, r.flags)
}

#[test]
fn dumps_equal_an_independent_walk_of_the_same_tables_through_qemus_stub() {
    let port = free_port();
    let cfg = QemuConfig {
        append: "memevents=0 init=memtest".into(),
        extra: vec!["-gdb".into(), format!("tcp:127.0.0.1:{port}")],
        ..Default::default()
    };
    let mut qemu = Qemu::start("ptdump-walk", &cfg);
    let mut link = qemu.connect_telemetry();
    qemu.wait_debug_log("memtest: ready");
    let pid = 1;
    let (kernel, kernel_end) = dump(&mut link, 0);
    let (user, user_end) = dump(&mut link, pid);
    assert!(
        user.iter().all(|r| r.start < 1 << 47),
        "a process's dump is its user half"
    );
    assert!(
        kernel
            .iter()
            .any(|r| r.region == probe_proto::Region::DirectMap)
    );
    assert_eq!(
        kernel_end.findings + user_end.findings,
        0,
        "the audit is clean"
    );

    // QEMU's stub stops the machine while it is read.
    let mut rsp = Rsp::connect(port);
    let (_, packet) = rsp.handshake();
    let piece = (packet / 2 - 16).min(4096);
    let mut theirs = Vec::new();
    walk(
        &mut rsp,
        piece,
        kernel_end.root,
        4,
        0,
        (true, true, false),
        0..512,
        &mut theirs,
    );
    assert_eq!(
        merge(kernel.iter().map(plain)),
        merge(theirs),
        "the kernel's space"
    );
    let mut theirs = Vec::new();
    walk(
        &mut rsp,
        piece,
        user_end.root,
        4,
        0,
        (true, true, false),
        0..256,
        &mut theirs,
    );
    assert_eq!(
        merge(user.iter().map(plain)),
        merge(theirs),
        "pid {pid}'s space"
    );
    assert!(user.len() >= 5, "code, data, heaps, sheds, stack: {user:?}");
    drop(rsp);
    drop(qemu);
}

/// The `ptsteps` line of step `name`: its region's address and its pid.
fn step(qemu: &mut Qemu, name: &str) -> (u64, u32) {
    let needle = format!("ptsteps: step={name} ");
    qemu.wait_debug_log(&needle);
    let line = LoggedLine::all(&qemu.debug_log(), &needle).remove(0);
    (line.number("addr="), line.number("pid=") as u32)
}

/// Saves the dump of `pid` with `mmtop ptdump -o` and returns the path.
fn snapshot(qemu: &Qemu, pid: u32, name: &str) -> String {
    let path = qemu.dir.join(format!("{name}.json"));
    let path = path.to_str().unwrap().to_string();
    let addr = format!("unix:{}", qemu.com1_path.display());
    let (code, _, err) = run_mmtop(&[
        "ptdump",
        "-c",
        &addr,
        "--pid",
        &pid.to_string(),
        "--json",
        "-o",
        &path,
    ]);
    assert_eq!(code, 0, "mmtop ptdump: {err}");
    path
}

/// `mmtop diff A B --json` and its exit code.
fn diff(a: &str, b: &str) -> (i32, Value) {
    let (code, out, err) = run_mmtop(&["diff", a, b, "--json"]);
    assert!(code == 0 || code == 1, "mmtop diff: {err}");
    (code, serde_json::from_str(&out).expect("diff JSON"))
}

/// The address ranges a list of ranges covers, adjacent ones merged.
fn covered(list: &Value) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["start"].as_u64().unwrap(), r["end"].as_u64().unwrap()))
        .collect();
    spans.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, end) in spans {
        match out.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

fn starts(list: &Value) -> Vec<u64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["start"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_dump_changes_as_the_process_maps_touches_forks_writes_and_unmaps() {
    let cfg = QemuConfig {
        append: "memevents=0 init=ptsteps".into(),
        com1: systest::Com1::NoWait,
        ..Default::default()
    };
    let mut qemu = Qemu::start("ptdump-steps", &cfg);
    let page = 4096;

    // Mapped: nothing is resident yet (demand paging).
    let (addr, pid) = step(&mut qemu, "mapped");
    let mapped = snapshot(&qemu, pid, "mapped");
    let region = addr..addr + 4 * page;

    // Touched: exactly the two written pages appear, writable.
    step(&mut qemu, "touched");
    let touched = snapshot(&qemu, pid, "touched");
    let (code, d) = diff(&mapped, &touched);
    assert_eq!(code, 1, "{d}");
    assert_eq!(covered(&d["added"]), [(addr, addr + 2 * page)], "{d}");
    for r in d["added"].as_array().unwrap() {
        assert_eq!(r["writable"], true, "{d}");
        assert_eq!(r["region"], "vma:mmap", "{d}");
    }
    assert!(d["removed"].as_array().unwrap().is_empty(), "{d}");
    assert!(d["changed"].as_array().unwrap().is_empty(), "{d}");

    // Forked: the region is copy-on-write now, read-only on the same frames.
    step(&mut qemu, "protected");
    let protected = snapshot(&qemu, pid, "protected");
    let (_, d) = diff(&touched, &protected);
    let in_region: Vec<&Value> = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| region.contains(&c["before"]["start"].as_u64().unwrap()))
        .collect();
    let afters: Vec<Value> = in_region.iter().map(|c| c["after"].clone()).collect();
    assert_eq!(
        covered(&Value::from(afters)),
        [(addr, addr + 2 * page)],
        "{d}"
    );
    for c in &in_region {
        assert_eq!(c["before"]["writable"], true, "{d}");
        assert_eq!(c["after"]["writable"], false, "{d}");
        assert_eq!(c["before"]["phys"], c["after"]["phys"], "same frames: {d}");
    }
    assert!(
        starts(&d["added"]).iter().all(|s| !region.contains(s)),
        "{d}"
    );

    // Written: the first page gets a frame of its own, writable again.
    step(&mut qemu, "written");
    let written = snapshot(&qemu, pid, "written");
    let (_, d) = diff(&protected, &written);
    let change = d["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["after"]["start"].as_u64() == Some(addr))
        .unwrap_or_else(|| panic!("the first page changed: {d}"));
    assert_eq!(change["after"]["end"].as_u64(), Some(addr + page));
    assert_eq!(change["after"]["writable"], true);
    assert_ne!(change["before"]["phys"], change["after"]["phys"], "{d}");

    // Unmapped: every range of the region is gone, nothing else appears
    // there.
    step(&mut qemu, "unmapped");
    let unmapped = snapshot(&qemu, pid, "unmapped");
    let (code, d) = diff(&written, &unmapped);
    assert_eq!(code, 1);
    let before: Value = serde_json::from_str(&std::fs::read_to_string(&written).unwrap()).unwrap();
    let held: Vec<u64> = starts(&before["ranges"])
        .into_iter()
        .filter(|s| region.contains(s))
        .collect();
    assert!(!held.is_empty());
    let removed: Vec<u64> = starts(&d["removed"])
        .into_iter()
        .filter(|s| region.contains(s))
        .collect();
    assert_eq!(removed, held, "{d}");
    assert!(
        starts(&d["added"]).iter().all(|s| !region.contains(s)),
        "{d}"
    );
    // The same snapshot twice is no difference.
    assert_eq!(diff(&unmapped, &unmapped).0, 0);
}
