//! `monitor` commands: the kernel's memory introspection as text in gdb.
//!
//! The answers come from `introspect`, the same code that answers the
//! telemetry host, and their words from `probe_proto::names`, so gdb and
//! mmtop never disagree; this module only renders them. Commands that take a
//! memory-manager lock refuse to run when the kernel stopped with
//! interrupts off: every such lock is held with interrupts off, so the
//! stopped code might hold it, and taking it again would hang the stub.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd};

use super::target::Kernel;
use super::threads::Thread;
use crate::arch::x86_64::trap::RFLAGS_IF;
use crate::introspect::memory as report;
use crate::introspect::processes::{try_listing, used_by_key};
use crate::introspect::ptdump::{DUMP_BATCH, Dump, NO_FINDING};
use crate::introspect::whatis::{self, HeapPlace};
use crate::introspect::{check, heap_walk, kleak};
use crate::log::LineBuf;
use crate::memory::heap::with_kernel_heap;
use crate::mm::frame::{FRAME_SIZE, Frame};
use crate::mm::heap::BlockState;
use crate::mm::paging::VirtAddr;
use crate::mm::vma::{Vma, VmaKind};
use crate::proc::{KERNEL_PID, Process, try_with_table};
use probe_proto::DEFAULT_MIN_AGE_MS;
use probe_proto::names::{
    AuditLine, DumpSummary, FindingLine, KernelLeakLine, LeakScanLine, PtRangeLine,
};
use probe_proto::{HeapBlock, KernelMsg, PtRange};

/// Heap blocks `monitor heap` lists.
const HEAP_BLOCKS_SHOWN: usize = 16;

const HELP: &str = "\
monitor commands of the in-kernel stub:
  help            this list
  pmm             physical frames: totals and usage by owner
  check           frame-bitmap consistency and a kernel-heap check
  heap            kernel-heap statistics and its first blocks
  whatis ADDR [PID]
                  mapping, frame, owner and heap block of an address in
                  process PID (default: the one the kernel stopped in);
                  for a program also its VMA and heap block and key
  loglevel N      telemetry log level (0 error .. 3 debug)
  ps              programs with their heaps, sheds and resident pages
  vmas PID        a process's VMAs, like /proc/PID/maps
  ptdump [PID] [START END]
                  page tables as coalesced ranges with an audit
                  (default: the process the kernel stopped in; pid 0,
                  the kernel: both halves; a program: its user half)
  leaks [PID]     blocks in use per heap and key (leaks if it ended now)
  kleak [MIN_AGE_MS]
                  scan the kernel heap for blocks nothing points to
                  (default min age 1000 ms); `info symbol` names the
                  call stack's addresses";

/// Text rendered into a [`LineBuf`], for values that print several lines.
trait ToLineBuf {
    fn to_line_buf(&self) -> LineBuf;
}

impl<T: fmt::Display> ToLineBuf for T {
    fn to_line_buf(&self) -> LineBuf {
        let mut buf = LineBuf::new();
        let _ = write!(buf, "{self}");
        buf
    }
}

/// Writes one line to gdb's console in a single packet.
fn line(out: &mut ConsoleOutput<'_>, args: fmt::Arguments<'_>) {
    let mut buf = LineBuf::new();
    let _ = buf.write_fmt(args);
    let _ = buf.write_str("\n");
    out.write_raw(buf.as_str().as_bytes());
}

macro_rules! say {
    ($out:expr, $($t:tt)*) => { line($out, format_args!($($t)*)) };
}

/// Parses `0x`-prefixed hex or decimal.
fn parse_number(word: &str) -> Option<u64> {
    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    }
}

fn kib(frames: u64) -> u64 {
    frames * FRAME_SIZE / 1024
}

fn pmm(out: &mut ConsoleOutput<'_>) {
    let s = report::memory_stats();
    let used = s.total_frames - s.free_frames;
    say!(
        out,
        "frames: {} total ({} KiB), {} free ({} KiB), {} used",
        s.total_frames,
        kib(s.total_frames),
        s.free_frames,
        kib(s.free_frames),
        used
    );
    for (name, n) in s.usage.by_owner() {
        say!(out, "  {name:<13} {n:>8} frames {:>9} KiB", kib(n));
    }
}

fn check(out: &mut ConsoleOutput<'_>) {
    let f = report::frame_check();
    say!(
        out,
        "frame bitmap: {} ({} frames; free {} counted / {} recorded; used without owner {}, \
         free with owner {}, invalid owners {}, summary mismatches {}, padding mismatches {})",
        if f.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        f.nr_frames,
        f.free_counted,
        f.free_recorded,
        f.used_without_owner,
        f.free_with_owner,
        f.invalid_owners,
        f.summary_mismatches,
        f.padding_mismatches
    );
    match with_kernel_heap(|h| report::heap_check(h)) {
        Some(h) if h.ok => say!(
            out,
            "kernel heap: ok ({} blocks, {} used bytes)",
            h.stats.total_blocks,
            h.stats.used_bytes
        ),
        Some(h) => say!(out, "kernel heap: BROKEN: {:?} at {:#x}", h.error, h.addr),
        None => say!(out, "kernel heap: not set up"),
    }
    let mut findings = [check::NO_FINDING; check::MAX_FINDINGS];
    match check::check_mappings(&mut findings) {
        Some(end) => {
            for f in findings.iter().take(end.findings as usize) {
                say!(out, "{}", FindingLine(f));
            }
            say!(
                out,
                "mappings: {} ({} spaces, {} leaves, {} frames, {} findings, {} us)",
                if end.consistent {
                    "consistent with the frame allocator"
                } else {
                    "INCONSISTENT"
                },
                end.spaces,
                end.mappings,
                end.frames,
                end.findings,
                end.duration_us
            );
        }
        None => say!(out, "mappings: not checked (processes kept moving memory)"),
    }
}

fn heap(out: &mut ConsoleOutput<'_>) {
    let h = report::memory_stats().kernel_heap;
    say!(
        out,
        "kernel heap: region {} of max {} bytes; used {} free {} overhead {}",
        h.region_bytes,
        h.max_bytes,
        h.used_bytes,
        h.free_bytes,
        h.overhead_bytes
    );
    say!(
        out,
        "blocks: {} ({} used, {} free), largest free {}",
        h.total_blocks,
        h.used_blocks,
        h.free_blocks,
        h.largest_free
    );
    let mut blocks = [HeapBlock::default(); HEAP_BLOCKS_SHOWN];
    let Some((n, intact)) = heap_walk::blocks(KERNEL_PID, 0, 0, &mut blocks) else {
        return;
    };
    for b in &blocks[..n] {
        if b.used {
            say!(
                out,
                "  {:#x} used {:>8} bytes  caller {:#x}",
                b.addr,
                b.size,
                b.key
            );
        } else {
            say!(out, "  {:#x} free {:>8} bytes", b.addr, b.size);
        }
    }
    if !intact {
        say!(out, "  walk stopped at a damaged header");
    } else if h.total_blocks > n as u64 {
        say!(out, "  ...");
    }
}

/// `whatis` in `thread`'s address space: renders introspection's answer.
fn whatis(out: &mut ConsoleOutput<'_>, thread: &Thread, addr: u64) {
    let w = whatis::whatis(thread.root, thread.pid, addr);
    let Some(m) = w.mapping else {
        let mut whose = LineBuf::new();
        let _ = thread.describe(&mut whose);
        say!(
            out,
            "{addr:#x}: not mapped in the address space of {}",
            whose.as_str()
        );
        return;
    };
    say!(
        out,
        "{addr:#x}: mapped by a {:?} page at {:#x} -> {:#x}, {:?}",
        m.size,
        m.virt.as_u64(),
        m.phys.as_u64(),
        m.flags
    );
    if let Some((phys, owner)) = w.phys {
        let frame = Frame::containing_address(phys);
        let phys = phys.as_u64();
        match owner {
            Some(owner) => say!(
                out,
                "physical {phys:#x}: frame {}, owned by {owner:?}",
                frame.number()
            ),
            None => say!(out, "physical {phys:#x}: frame {}, free", frame.number()),
        }
    }
    match w.kernel_heap {
        Some(HeapPlace::Block(b)) if b.state == BlockState::Used => say!(
            out,
            "kernel heap block {:#x}: {} bytes used, offset {} into the payload, \
             allocated from {:#x}",
            b.payload,
            b.requested,
            addr as i64 - b.payload as i64,
            b.tag.key
        ),
        Some(HeapPlace::Block(b)) => say!(out, "kernel heap: free block {:#x}", b.addr),
        Some(HeapPlace::NoBlock) => say!(out, "inside the kernel heap region, in no block"),
        Some(HeapPlace::Outside) | None => say!(out, "not in the kernel heap"),
    }
    if let Some(p) = &w.process {
        let (pid, name) = (p.pid, p.name.as_str());
        match &p.vma {
            Some((v, resident)) => {
                say!(out, "in a mapping of pid {pid} ({name}):");
                say_vma(out, v, *resident);
            }
            None => say!(out, "in no mapping of pid {pid} ({name})"),
        }
        for (id, place) in &p.heaps {
            match place {
                HeapPlace::Block(b) if b.state == BlockState::Used => say!(
                    out,
                    "heap {id} block {:#x}: {} bytes used, key {}, offset {} into the payload",
                    b.payload,
                    b.requested,
                    b.tag.key,
                    addr as i64 - b.payload as i64
                ),
                HeapPlace::Block(b) => say!(out, "heap {id}: free block {:#x}", b.addr),
                HeapPlace::NoBlock | HeapPlace::Outside => {
                    say!(out, "heap {id}: in no intact block")
                }
            }
        }
    }
}

const TABLE_BUSY: &str = "the process table is locked by the stopped code; continue and retry";

/// `ps`: the telemetry listing (`checkMemory` plus resident pages), one
/// line per program.
fn ps(out: &mut ConsoleOutput<'_>) {
    let Some(msgs) = try_listing(-1) else {
        say!(out, "{TABLE_BUSY}");
        return;
    };
    say!(
        out,
        "{:>5} {:<9} {:>5} {:>10} {:>10} {:>10} {:>5} {:>9} {:>8} NAME",
        "PID",
        "STATE",
        "HEAPS",
        "HEAP_SIZE",
        "HEAP_USED",
        "HEAP_FREE",
        "SHEDS",
        "SHED_SIZE",
        "RESIDENT"
    );
    let infos = msgs.iter().filter_map(|m| match m {
        KernelMsg::ProcessInfo(info) => Some(info),
        _ => None,
    });
    for info in infos {
        say!(
            out,
            "{:>5} {:<9} {:>5} {:>10} {:>10} {:>10} {:>5} {:>9} {:>8} {}",
            info.pid,
            info.state.name(),
            info.nr_heaps,
            info.total_heap_size,
            info.total_heap_used,
            info.total_heap_free,
            info.nr_sheds,
            info.total_shed_size,
            info.resident_frames,
            info.name
        );
    }
}

/// Parses a pid.
fn parse_pid(out: &mut ConsoleOutput<'_>, word: &str) -> Option<u32> {
    let pid = parse_number(word).and_then(|n| u32::try_from(n).ok());
    if pid.is_none() {
        say!(out, "{word:?} is not a pid");
    }
    pid
}

/// Runs `f` on process `pid`, answering an error if the table is busy or
/// there is no such process.
fn with_process(
    out: &mut ConsoleOutput<'_>,
    pid: u32,
    f: impl FnOnce(&mut ConsoleOutput<'_>, &Process),
) {
    let found = try_with_table(|t| match t.get(pid) {
        Some(p) => {
            f(out, p);
            true
        }
        None => false,
    });
    match found {
        None => say!(out, "{TABLE_BUSY}"),
        Some(false) => say!(out, "no process with pid {pid}"),
        Some(true) => {}
    }
}

/// One VMA as `/proc/PID/maps` shows it, with its resident pages.
fn say_vma(out: &mut ConsoleOutput<'_>, v: &Vma, resident: u64) {
    let (start, end) = (v.start().as_u64(), v.end().as_u64());
    let id = match v.kind() {
        VmaKind::Heap | VmaKind::Shed => v.id(),
        _ => 0,
    };
    let mut kind = LineBuf::new();
    let _ = write!(kind, "{}", v.kind().name());
    if id != 0 {
        let _ = write!(kind, " {id}");
    }
    say!(
        out,
        "{start:016x}-{end:016x} {} {:<8} resident={}",
        v.flags(),
        kind.as_str(),
        resident
    );
}

fn vmas(out: &mut ConsoleOutput<'_>, pid: u32) {
    with_process(out, pid, |out, p| {
        let Some(mm) = p.mm.as_ref() else {
            say!(
                out,
                "pid {pid} ({}) has no user address space",
                p.name.as_str()
            );
            return;
        };
        for v in mm.vmas() {
            let resident = mm.resident_pages(v.start().as_u64(), v.end().as_u64());
            say_vma(out, v, resident);
        }
    });
}

/// Renders the dump of `pid`'s tables over `first..=last`: the coalesced
/// ranges and audit findings of `introspect::ptdump`, then the totals.
fn dump(out: &mut ConsoleOutput<'_>, pid: u32, range: Option<(u64, u64)>) {
    let mut dump = match range {
        None => Dump::new(pid),
        Some((first, last)) => Dump::of_range(pid, first, last),
    };
    while !dump.is_done() {
        let mut ranges = [PtRange::default(); DUMP_BATCH];
        let mut audit = [NO_FINDING; DUMP_BATCH];
        let batch = dump.next_batch(&mut ranges, &mut audit);
        for r in &ranges[..batch.ranges] {
            say!(out, "{}", PtRangeLine(r));
        }
        for f in &audit[..batch.findings] {
            say!(out, "{}", AuditLine(f));
        }
    }
    let end = dump.end();
    if !end.complete {
        say!(
            out,
            "no process with pid {pid}, or it has no user address space"
        );
        return;
    }
    if end.ranges == 0 {
        match range {
            Some((first, last)) => say!(out, "no leaves in {first:#x}..={last:#x}"),
            None => say!(out, "no leaves"),
        }
    }
    for line in DumpSummary(&end).to_line_buf().as_str().lines() {
        say!(out, "{line}");
    }
}

/// A canonical address, or an error answer.
fn parse_canonical(out: &mut ConsoleOutput<'_>, word: &str) -> Option<u64> {
    match parse_number(word) {
        Some(a) if VirtAddr::new_truncate(a).as_u64() == a => Some(a),
        Some(a) => {
            say!(out, "ptdump: {a:#x} is not a canonical address");
            None
        }
        None => {
            say!(out, "ptdump: {word:?} is not an address");
            None
        }
    }
}

/// `ptdump [PID] [START END]`; without a pid, of the process the kernel
/// stopped in (the kernel: both halves; a program: its user half).
fn ptdump(out: &mut ConsoleOutput<'_>, stopped_pid: u32, args: &[&str]) {
    let (pid, range) = match args {
        [] => (None, None),
        [pid] => (Some(*pid), None),
        [start, end] => (None, Some((*start, *end))),
        [pid, start, end] => (Some(*pid), Some((*start, *end))),
        _ => {
            say!(out, "usage: ptdump [PID] [START END]");
            return;
        }
    };
    let range = match range {
        None => None,
        Some((s, e)) => {
            let Some(start) = parse_canonical(out, s) else {
                return;
            };
            let Some(end) = parse_number(e) else {
                say!(out, "ptdump: {e:?} is not an address");
                return;
            };
            if end <= start {
                say!(out, "ptdump: empty range {start:#x}..{end:#x}");
                return;
            }
            let last = end - 1;
            if VirtAddr::new_truncate(last).as_u64() != last {
                say!(out, "ptdump: {end:#x} ends in the non-canonical hole");
                return;
            }
            Some((start, last))
        }
    };
    let pid = match pid {
        None => stopped_pid,
        Some(word) => match parse_pid(out, word) {
            Some(pid) => pid,
            None => return,
        },
    };
    dump(out, pid, range);
}

fn leaks_of(out: &mut ConsoleOutput<'_>, p: &Process) {
    if p.pid == KERNEL_PID || p.mm.is_none() {
        return;
    }
    let (usage, intact) = used_by_key(p);
    say!(out, "pid {} ({}):", p.pid, p.name.as_str());
    if usage.is_empty() {
        say!(out, "  nothing in use");
    }
    for u in &usage {
        let l = u.to_leak(p.pid);
        let (heap, key, n, bytes, first) = (l.heap_id, l.key, l.blocks, l.bytes, l.first_addr);
        match l.oldest_age_ms {
            Some(ms) => say!(
                out,
                "  heap {heap} key {key}: {n} blocks, {bytes} bytes, first at {first:#x}, \
                 oldest {ms} ms ago"
            ),
            None => say!(
                out,
                "  heap {heap} key {key}: {n} blocks, {bytes} bytes, first at {first:#x}"
            ),
        }
    }
    if !intact {
        say!(out, "  (a damaged block header cut the walk short)");
    }
}

fn leaks(out: &mut ConsoleOutput<'_>, pid: Option<u32>) {
    match pid {
        Some(KERNEL_PID) => say!(out, "pid 0 is the kernel: see `monitor heap`"),
        Some(pid) => with_process(out, pid, |out, p| {
            if p.mm.is_none() {
                say!(out, "pid {pid} ({}) has no heaps left", p.name.as_str());
            }
            leaks_of(out, p);
        }),
        None => {
            if try_with_table(|t| t.iter().for_each(|p| leaks_of(out, p))).is_none() {
                say!(out, "{TABLE_BUSY}");
            }
        }
    }
}

/// Runs a kernel leak scan and prints each leak with its call stack.
fn kleak(out: &mut ConsoleOutput<'_>, min_age_ms: u32) {
    let end = kleak::scan(min_age_ms, |leak| {
        say!(out, "{}", KernelLeakLine(leak));
        for &ret in leak.stack.iter().take_while(|&&r| r != 0) {
            say!(out, "    {ret:#x}");
        }
    });
    say!(out, "{}", LeakScanLine(&end));
}

impl MonitorCmd for Kernel {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let out = &mut out;
        let cmd = core::str::from_utf8(cmd).unwrap_or("");
        let mut words = cmd.split_ascii_whitespace();
        let name = words.next().unwrap_or("help");
        let needs_locks = matches!(
            name,
            "pmm" | "check" | "heap" | "whatis" | "ps" | "leaks" | "ptdump" | "kleak"
        );
        let Some(&stopped) = self.stopped_thread() else {
            say!(out, "no stop recorded");
            return Ok(());
        };
        if needs_locks && self.frame.rflags & RFLAGS_IF == 0 {
            say!(
                out,
                "the kernel stopped with interrupts off, maybe holding a memory-manager lock; \
                 `monitor {name}` could hang it. Continue to a point with interrupts on."
            );
            return Ok(());
        }
        match (name, words.next()) {
            ("help", _) => {
                for l in HELP.lines() {
                    say!(out, "{l}");
                }
            }
            ("pmm", _) => pmm(out),
            ("check", _) => check(out),
            ("heap", _) => heap(out),
            ("whatis", Some(word)) => {
                let Some(addr) = parse_number(word) else {
                    say!(out, "whatis: {word:?} is not an address");
                    return Ok(());
                };
                let thread = match words.next() {
                    None => Some(&stopped),
                    Some(word) => parse_pid(out, word).and_then(|pid| {
                        let t = self.thread_of(pid);
                        if t.is_none() {
                            say!(out, "no live process with pid {pid}");
                        }
                        t
                    }),
                };
                if let Some(thread) = thread {
                    whatis(out, thread, addr);
                }
            }
            ("ps", _) => ps(out),
            ("vmas", Some(word)) => {
                if let Some(pid) = parse_pid(out, word) {
                    vmas(out, pid);
                }
            }
            ("ptdump", first) => {
                // No allocation: the dump fills arrays on the stack.
                let mut args = [""; 4];
                let mut n = 0;
                for w in first.into_iter().chain(words) {
                    if n < args.len() {
                        args[n] = w;
                    }
                    n += 1;
                }
                let pid = stopped.pid.unwrap_or(KERNEL_PID);
                ptdump(out, pid, &args[..n.min(args.len())]);
            }
            ("leaks", None) => leaks(out, None),
            ("leaks", Some(word)) => {
                if let Some(pid) = parse_pid(out, word) {
                    leaks(out, Some(pid));
                }
            }
            ("kleak", word) => match word.map_or(Some(DEFAULT_MIN_AGE_MS), |w| w.parse().ok()) {
                Some(min_age_ms) => kleak(out, min_age_ms),
                None => say!(out, "kleak: the minimum age is a number of milliseconds"),
            },
            ("loglevel", Some(word)) => match word.parse::<u8>() {
                Ok(level @ 0..=3) => {
                    crate::log::set_level(level);
                    say!(out, "log level {level}");
                }
                _ => say!(out, "loglevel: 0 (error) .. 3 (debug)"),
            },
            _ => say!(
                out,
                "unknown or incomplete command {cmd:?}; try `monitor help`"
            ),
        }
        Ok(())
    }
}
