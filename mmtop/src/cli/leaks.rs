//! `mmtop leaks`: the kernel leak scan (blocks of the kernel heap nothing
//! points to, with their call sites named) and the blocks each live
//! program holds by heap and key (what would leak if it ended now).

use std::collections::BTreeMap;
use std::io::Write;

use probe_proto::names::{KernelLeakLine, LeakScanLine};
use probe_proto::{HostMsg, KernelLeak, Leak, LeakScanEnd, LeakScanStatus, Version};
use serde::Serialize;

use super::args::LeaksArgs;
use super::control::CONTROL_SINCE;
use super::request::Session;
use super::{EXIT_LEAK, EXIT_NO_PROCESS, EXIT_OK, EXIT_TIMEOUT, Status};
use crate::Msg;
use crate::format::human_bytes;
use crate::symbols::Symbolizer;

/// The first protocol version with `LeakScan`.
pub const SCAN_SINCE: Version = Version { major: 2, minor: 0 };

/// Frames after the call site a text report shows (JSON has them all).
const FRAMES_SHOWN: usize = 3;

/// One frame of a leak's stack in JSON.
#[derive(Debug, Serialize)]
struct FrameJson {
    addr: u64,
    symbol: String,
}

/// One leak in `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct LeakJson {
    addr: u64,
    size: u64,
    age_ms: u64,
    /// The call site: the first frame outside the allocator.
    caller: u64,
    /// Its name; empty when there are no symbols.
    symbol: String,
    confirmed: bool,
    /// The first bytes, as hex.
    first_bytes: String,
    stack: Vec<FrameJson>,
}

/// The kernel part of `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct KernelJson {
    status: LeakScanStatus,
    min_age_ms: u32,
    blocks: u64,
    untraced: u64,
    scanned_bytes: u64,
    duration_us: u64,
    leaks: Vec<LeakJson>,
}

/// One key of a heap in `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct KeyJson {
    heap_id: u32,
    key: u64,
    blocks: u64,
    bytes: u64,
    first_addr: u64,
    /// Milliseconds since its oldest block was allocated; null when the
    /// kernel did not record every block's birth.
    oldest_age_ms: Option<u64>,
}

/// One process in `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct ProcessJson {
    pid: u32,
    name: String,
    keys: Vec<KeyJson>,
}

/// Runs `mmtop leaks [--pid N] [--scan]`.
pub fn run(args: &LeaksArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let scan = args.scan || args.pid.is_none();
    let processes = args.pid.is_some() || !args.scan;
    let since = if scan { SCAN_SINCE } else { CONTROL_SINCE };
    let mut session = Session::open(&args.connect.address, "leaks", since, args.timeout, err)?;
    let kernel = if scan {
        Some(kernel_scan(&mut session, args, err)?)
    } else {
        None
    };
    let programs = if processes {
        Some(blocks_in_use(&mut session, args.pid, err)?)
    } else {
        None
    };
    let leaked = kernel.as_ref().is_some_and(|k| !k.leaks.is_empty());
    if args.json {
        let text = serde_json::to_string(&serde_json::json!({
            "kernel": kernel.map(Scan::json),
            "processes": programs.unwrap_or_default(),
        }))
        .expect("leaks serialize");
        let _ = writeln!(out, "{text}");
    } else {
        if let Some(k) = &kernel {
            print_scan(k, out);
        }
        if let Some(p) = &programs {
            print_processes(p, out);
        }
    }
    Ok(if leaked { EXIT_LEAK } else { EXIT_OK })
}

/// Asks for a scan and names each leak's call site.
fn kernel_scan(
    session: &mut Session<'_>,
    args: &LeaksArgs,
    err: &mut dyn Write,
) -> Result<Scan, u8> {
    let mut symbols = Symbolizer::new(args.elf.as_deref());
    if let Some(hello) = &session.hello {
        symbols.observe(hello, err);
    }
    session.send(
        &HostMsg::LeakScan {
            min_age_ms: args.min_age,
        },
        err,
    )?;
    let mut leaks: Vec<KernelLeak> = Vec::new();
    let end: LeakScanEnd = loop {
        match session.recv("LeakScanEnd", err)? {
            Msg::KernelLeak(l) => leaks.push(l),
            Msg::LeakScanEnd(e) => break e,
            _ => {}
        }
    };
    if end.status != LeakScanStatus::Done {
        let _ = writeln!(err, "mmtop: {}", LeakScanLine(&end));
        return Err(EXIT_TIMEOUT);
    }
    if let Some(first) = leaks.first() {
        // Says once why there are no names, if there are none.
        symbols.observe(&Msg::KernelLeak(*first), err);
    }
    let leaks = leaks
        .into_iter()
        .map(|l| (l, leak_json(&l, &mut symbols)))
        .collect();
    Ok(Scan { end, leaks })
}

/// A scan's verdict and its leaks, raw and named.
struct Scan {
    end: LeakScanEnd,
    leaks: Vec<(KernelLeak, LeakJson)>,
}

impl Scan {
    fn json(self) -> KernelJson {
        let e = self.end;
        KernelJson {
            status: e.status,
            min_age_ms: e.min_age_ms,
            blocks: e.blocks,
            untraced: e.untraced,
            scanned_bytes: e.scanned_bytes,
            duration_us: e.duration_us,
            leaks: self.leaks.into_iter().map(|(_, j)| j).collect(),
        }
    }
}

fn leak_json(l: &KernelLeak, symbols: &mut Symbolizer) -> LeakJson {
    let (caller, symbol) = symbols.call_site(&l.stack).unwrap_or((0, None));
    let shown = (l.size as usize).min(l.first_bytes.len());
    LeakJson {
        addr: l.addr,
        size: l.size,
        age_ms: l.age_ms,
        caller,
        symbol: symbol.unwrap_or_default(),
        confirmed: l.confirmed,
        first_bytes: l.first_bytes[..shown]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        stack: l
            .stack
            .iter()
            .take_while(|&&a| a != 0)
            .map(|&addr| FrameJson {
                addr,
                symbol: symbols
                    .symbolize(addr, Some(probe_proto::KERNEL_PID), true)
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

fn print_scan(scan: &Scan, out: &mut dyn Write) {
    for (raw, l) in &scan.leaks {
        let _ = writeln!(out, "{}", KernelLeakLine(raw));
        let site = l.stack.iter().position(|f| f.addr == l.caller).unwrap_or(0);
        for (i, f) in l.stack.iter().enumerate().skip(site).take(FRAMES_SHOWN + 1) {
            let word = if i == site { "from" } else { " via" };
            let _ = writeln!(out, "    {word} {:#x} {}", f.addr, f.symbol);
        }
    }
    let _ = writeln!(out, "{}", LeakScanLine(&scan.end));
}

/// The blocks in use by heap and key of program `pid` (every program when
/// `None`), named from the process listing.
fn blocks_in_use(
    session: &mut Session<'_>,
    pid: Option<u32>,
    err: &mut dyn Write,
) -> Result<Vec<ProcessJson>, u8> {
    session.send(&HostMsg::Processes { pid: -1 }, err)?;
    let mut names = BTreeMap::new();
    loop {
        match session.recv("the process listing", err)? {
            Msg::ProcessInfo(i) => {
                names.insert(i.pid, i.name.to_string());
            }
            Msg::ProcessListEnd(_) => break,
            _ => {}
        }
    }
    let want = pid.map_or(-1, i64::from);
    session.send(&HostMsg::Leaks { pid: want }, err)?;
    let mut blocks: Vec<Leak> = Vec::new();
    let end = loop {
        match session.recv("LeaksEnd", err)? {
            Msg::BlocksInUse(l) => blocks.push(l),
            Msg::LeaksEnd(e) if e.pid == want => break e,
            _ => {}
        }
    };
    if let Some(p) = pid
        && end.processes == 0
    {
        let _ = writeln!(err, "mmtop: no live program with pid {p}");
        return Err(EXIT_NO_PROCESS);
    }
    if !end.complete {
        let _ = writeln!(err, "mmtop: a damaged heap header cut a walk short");
        return Err(EXIT_TIMEOUT);
    }
    let mut by_pid: BTreeMap<u32, Vec<KeyJson>> = BTreeMap::new();
    for b in blocks {
        by_pid.entry(b.pid).or_default().push(KeyJson {
            heap_id: b.heap_id,
            key: b.key,
            blocks: b.blocks,
            bytes: b.bytes,
            first_addr: b.first_addr,
            oldest_age_ms: b.oldest_age_ms,
        });
    }
    Ok(by_pid
        .into_iter()
        .map(|(pid, keys)| ProcessJson {
            pid,
            name: names
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| format!("Program-{pid}")),
            keys,
        })
        .collect())
}

fn print_processes(programs: &[ProcessJson], out: &mut dyn Write) {
    for p in programs {
        let _ = writeln!(out, "pid {} ({}):", p.pid, p.name);
        for k in &p.keys {
            let oldest = k
                .oldest_age_ms
                .map(|ms| format!(", oldest {:.1}s ago", ms as f64 / 1000.0))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  heap {} key {}: {} blocks, {}, first at {:#x}{oldest}",
                k.heap_id,
                k.key,
                k.blocks,
                human_bytes(k.bytes),
                k.first_addr
            );
        }
    }
    if programs.is_empty() {
        let _ = writeln!(out, "no blocks in use in any program's heap");
    }
}
