//! The human format: one compact, greppable line per message.
//!
//! Each line starts with the message kind, then `key=value` pairs. Strings
//! that come from the kernel are escaped so that a message can never span
//! lines or send terminal control sequences. Words the kernel prints too
//! (owners, states, flags, exception and error names) come from
//! [`probe_proto::names`].

use std::fmt::{self, Write as _};

use probe_proto::names::{
    EventClasses, ExceptionWord, FindingLine, KERNEL_PID, KernelLeakLine, LeakScanLine,
    PageFaultCause, PageFlagNames, PtFlags, PtRangeLine, VmaFlags, vector,
};
use probe_proto::{
    Exception, ExitReason, FrameCheck, FrameErrorEvent, HeapBlock, HeapCheck, HeapErrorEvent,
    HeapEvent, HeapWalkEnd, Heartbeat, Hello, Leak, Log, MapEvent, MemRegion, MemoryStats,
    PageEvent, PageFault, Panic, Pong, ProcessEvent, ProcessExit, ProcessHeap, ProcessInfo,
    ProcessListEnd, ProcessShed, ProcessVma, features,
};

use crate::Msg;

/// Bytes in a physical frame: the kernel's frame allocator hands out 4 KiB
/// pages.
pub const FRAME_SIZE: u64 = 4096;

/// `msg` as one line of text, without the newline.
pub fn human(msg: &Msg) -> String {
    match msg {
        Msg::Hello(h) => hello(h),
        Msg::MemRegion(r) => region(r),
        Msg::Log(l) => log(l),
        Msg::Heartbeat(h) => heartbeat(h),
        Msg::Exception(e) => exception(e),
        Msg::Panic(p) => panic(p),
        Msg::Pong(p) => pong(p),
        Msg::Dropped { count } => format!("dropped count={count}"),
        Msg::MemoryStats(m) => memory_stats(m),
        Msg::PageAlloc(e) => page_event("page_alloc", e),
        Msg::PageFree(e) => page_event("page_free", e),
        Msg::Map(e) => map_event("map", e),
        Msg::Unmap(e) => map_event("unmap", e),
        Msg::HeapAlloc(e) => heap_event("heap_alloc", e),
        Msg::HeapFree(e) => heap_event("heap_free", e),
        Msg::HeapError(e) => heap_error(e),
        Msg::FrameError(e) => frame_error(e),
        Msg::FrameCheck(c) => frame_check(c),
        Msg::HeapCheck(c) => heap_check(c),
        Msg::HeapBlock(b) => heap_block(b),
        Msg::HeapWalkEnd(e) => heap_walk_end(e),
        Msg::ProcessSpawn(e) => process_event("process_spawn", e),
        Msg::ProcessExit(e) => process_exit(e),
        Msg::ProcessRename(e) => process_event("process_rename", e),
        Msg::ProcessInfo(i) => process_info(i),
        Msg::ProcessHeap(h) => process_heap(h),
        Msg::ProcessShed(s) => process_shed(s),
        Msg::ProcessVma(v) => process_vma(v),
        Msg::ProcessListEnd(e) => process_list_end(e),
        Msg::PageFault(f) => page_fault(f),
        Msg::Leak(l) => leak(l),
        Msg::PtRange(r) => format!("pt_range space={} {}", r.space, PtRangeLine(r)),
        Msg::PtAudit(a) => format!(
            "pt_audit space={} {:#x}-{:#x} {}: {}",
            a.space,
            a.start,
            a.end,
            PtFlags(a.flags),
            a.kind.describe()
        ),
        Msg::PtDumpEnd(e) => format!(
            "pt_dump_end t={} space={} root={:#x} ranges={} pages_4k={} pages_2m={} pages_1g={} \
             findings={} complete={}",
            human_time(e.ts_us),
            e.space,
            e.root,
            e.ranges,
            e.pages_4k,
            e.pages_2m,
            e.pages_1g,
            e.findings,
            e.complete
        ),
        Msg::CheckFinding(c) => format!("check_finding {}", FindingLine(c)),
        Msg::CheckEnd(e) => format!(
            "check_end t={} consistent={} frames={} spaces={} mappings={} findings={} took={}us",
            human_time(e.ts_us),
            e.consistent,
            e.frames,
            e.spaces,
            e.mappings,
            e.findings,
            e.duration_us
        ),
        Msg::Settings(x) => format!(
            "settings t={} loglevel={} events={}",
            human_time(x.ts_us),
            x.log_level,
            EventClasses(x.events)
        ),
        Msg::BlocksInUse(l) => leak(l).replacen("leak ", "in_use ", 1),
        Msg::LeaksEnd(e) => format!(
            "leaks_end t={} pid={} processes={} complete={}",
            human_time(e.ts_us),
            e.pid,
            e.processes,
            e.complete
        ),
        Msg::KernelLeak(l) => format!("kernel_{}", KernelLeakLine(l)),
        Msg::LeakScanEnd(e) => format!(
            "leak_scan_end t={} {}",
            human_time(e.ts_us),
            LeakScanLine(e)
        ),
        // The decoder turns batches into their events; one that reaches a
        // printer was not decoded.
        Msg::EventBatch(b) => format!("event_batch bytes={}", b.body.len()),
        Msg::OwnerRuns(r) => {
            let mut line = format!("owner_runs first_frame={} runs=", r.first_frame);
            for (i, run) in r.runs.iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                match run.owner {
                    Some(owner) => {
                        let _ = write!(line, "{sep}{owner}x{}", run.frames);
                    }
                    None => {
                        let _ = write!(line, "{sep}freex{}", run.frames);
                    }
                }
            }
            line
        }
        Msg::OwnerMapEnd(e) => format!(
            "owner_map_end t={} first_frame={} frames={} runs={} total_frames={}",
            human_time(e.ts_us),
            e.first_frame,
            e.nr_frames,
            e.runs,
            e.total_frames
        ),
    }
}

fn process_event(kind: &str, e: &ProcessEvent) -> String {
    format!(
        "{kind} t={} pid={} parent={} name={}",
        human_time(e.ts_us),
        e.pid,
        e.parent,
        word(&e.name)
    )
}

fn process_exit(e: &ProcessExit) -> String {
    let reason = match e.reason {
        ExitReason::Exited(code) => format!("exit={code}"),
        ExitReason::Killed { vector } => format!("killed=#{vector}({})", ExceptionWord(vector)),
    };
    format!(
        "process_exit t={} pid={} {reason} leaked_blocks={} leaked={} frames_freed={} ({})",
        human_time(e.ts_us),
        e.pid,
        e.leaked_blocks,
        human_bytes(e.leaked_bytes),
        e.frames_freed,
        human_bytes(frames_to_bytes(e.frames_freed)),
    )
}

fn process_info(i: &ProcessInfo) -> String {
    format!(
        "process_info t={} pid={} parent={} name={} state={} heaps={} sheds={} vmas={} \
         heap_size={} heap_used={} heap_free={} shed_size={} resident={} ({}) page_tables={}",
        human_time(i.ts_us),
        i.pid,
        i.parent,
        word(&i.name),
        i.state.name(),
        i.nr_heaps,
        i.nr_sheds,
        i.nr_vmas,
        human_bytes(i.total_heap_size),
        human_bytes(i.total_heap_used),
        human_bytes(i.total_heap_free),
        human_bytes(i.total_shed_size),
        i.resident_frames,
        human_bytes(frames_to_bytes(i.resident_frames)),
        i.page_table_frames,
    )
}

fn process_heap(h: &ProcessHeap) -> String {
    format!(
        "process_heap heap={} start={:#x} size={} used={} free={} used_blocks={} largest_free={}",
        heap_name(h.pid, h.heap_id),
        h.start,
        human_bytes(h.heap_size),
        human_bytes(h.heap_used),
        human_bytes(h.heap_free),
        h.used_blocks,
        human_bytes(h.largest_free),
    )
}

fn process_shed(s: &ProcessShed) -> String {
    format!(
        "process_shed shed={} start={:#x} size={}",
        heap_name(s.pid, s.shed_id),
        s.start,
        human_bytes(s.shed_size),
    )
}

fn process_vma(v: &ProcessVma) -> String {
    format!(
        "process_vma pid={} {:#x}-{:#x} {} {} size={} resident={} ({})",
        v.pid,
        v.start,
        v.end,
        VmaFlags(v.flags),
        v.kind.name(),
        human_bytes(v.end.saturating_sub(v.start)),
        v.resident_pages,
        human_bytes(frames_to_bytes(v.resident_pages)),
    )
}

fn process_list_end(e: &ProcessListEnd) -> String {
    format!(
        "process_list_end t={} programs={} {}",
        human_time(e.ts_us),
        e.total_programs,
        if e.complete { "complete" } else { "incomplete" },
    )
}

fn page_fault(f: &PageFault) -> String {
    let vma = if f.vma_start == 0 && f.vma_end == 0 {
        "none".to_owned()
    } else {
        format!(
            "{:#x}-{:#x}({})",
            f.vma_start,
            f.vma_end,
            VmaFlags(f.vma_flags)
        )
    };
    format!(
        "page_fault t={} pid={} addr={:#x} err={:#x}({}) rip={:#x} {} vma={vma}",
        human_time(f.ts_us),
        f.pid,
        f.addr,
        f.error_code,
        PageFaultCause(f.error_code),
        f.rip,
        f.resolution.name(),
    )
}

fn leak(l: &Leak) -> String {
    let mut line = format!(
        "leak t={} heap={} key={:#x} blocks={} bytes={} first={:#x}",
        human_time(l.ts_us),
        heap_name(l.pid, l.heap_id),
        l.key,
        l.blocks,
        human_bytes(l.bytes),
        l.first_addr,
    );
    if let Some(ms) = l.oldest_age_ms {
        line.push_str(&format!(
            " oldest_age={}",
            human_time(ms.saturating_mul(1000))
        ));
    }
    line
}

fn memory_stats(m: &MemoryStats) -> String {
    let h = &m.kernel_heap;
    let c = &m.counters;
    format!(
        "memory_stats t={} frames={} ({}) free={} ({}) heap={} heap_used={} ({} blocks) \
         heap_free={} ({} blocks) heap_region={} \
         page_allocs={} page_frees={} maps={} unmaps={} heap_allocs={} heap_frees={} \
         heap_errors={} frame_errors={}",
        human_time(m.ts_us),
        m.total_frames,
        human_bytes(frames_to_bytes(m.total_frames)),
        m.free_frames,
        human_bytes(frames_to_bytes(m.free_frames)),
        heap_name(h.pid, h.heap_id),
        human_bytes(h.used_bytes),
        h.used_blocks,
        human_bytes(h.free_bytes),
        h.free_blocks,
        human_bytes(h.region_bytes),
        c.page_allocs,
        c.page_frees,
        c.maps,
        c.unmaps,
        c.heap_allocs,
        c.heap_frees,
        c.heap_errors,
        c.frame_errors,
    )
}

fn page_event(kind: &str, e: &PageEvent) -> String {
    format!(
        "{kind} t={} addr={:#x} count={} ({}) owner={} caller={:#x}",
        HumanTime(e.ts_us),
        e.addr,
        e.count,
        HumanBytes(frames_to_bytes(u64::from(e.count))),
        e.owner,
        e.caller
    )
}

fn map_event(kind: &str, e: &MapEvent) -> String {
    format!(
        "{kind} t={} space={:#x} virt={:#x} phys={:#x} size={} flags={} caller={:#x}",
        HumanTime(e.ts_us),
        e.space,
        e.virt,
        e.phys,
        HumanBytes(e.size),
        PageFlagNames {
            flags: e.flags,
            page_size: e.size
        },
        e.caller
    )
}

fn heap_event(kind: &str, e: &HeapEvent) -> String {
    format!(
        "{kind} t={} heap={} addr={:#x} size={} align={} key={:#x} caller={:#x}",
        HumanTime(e.ts_us),
        HeapName(e.pid, e.heap_id),
        e.addr,
        HumanBytes(e.size),
        e.align,
        e.key,
        e.caller
    )
}

fn heap_error(e: &HeapErrorEvent) -> String {
    format!(
        "heap_error t={} heap={} kind={} addr={:#x} size={} caller={:#x}",
        human_time(e.ts_us),
        heap_name(e.pid, e.heap_id),
        e.kind,
        e.addr,
        human_bytes(e.size),
        e.caller
    )
}

fn frame_error(e: &FrameErrorEvent) -> String {
    format!(
        "frame_error t={} kind={} addr={:#x} count={} caller={:#x}",
        human_time(e.ts_us),
        e.kind.name(),
        e.addr,
        e.count,
        e.caller
    )
}

fn frame_check(c: &FrameCheck) -> String {
    let mut line = format!(
        "frame_check t={} {} frames={} free={} ram={}",
        human_time(c.ts_us),
        if c.consistent { "ok" } else { "INCONSISTENT" },
        c.nr_frames,
        counted_vs_recorded(c.free_counted, c.free_recorded),
        counted_vs_recorded(c.total_counted, c.total_recorded),
    );
    // Only the counters that found something: a clean check stays short.
    for (name, n) in [
        ("used_without_owner", c.used_without_owner),
        ("free_with_owner", c.free_with_owner),
        ("invalid_owners", c.invalid_owners),
        ("summary_mismatches", c.summary_mismatches),
        ("padding_mismatches", c.padding_mismatches),
    ] {
        if n != 0 {
            let _ = write!(line, " {name}={n}");
        }
    }
    line
}

/// A count the check made, with the allocator's own figure when they differ.
fn counted_vs_recorded(counted: u64, recorded: u64) -> String {
    if counted == recorded {
        counted.to_string()
    } else {
        format!("{counted}(recorded={recorded})")
    }
}

fn heap_check(c: &HeapCheck) -> String {
    let s = &c.stats;
    let mut line = format!(
        "heap_check t={} heap={} {}",
        human_time(c.ts_us),
        heap_name(c.pid, c.heap_id),
        if c.ok { "ok" } else { "FAILED" },
    );
    if let Some(kind) = c.error {
        let _ = write!(line, " error={kind} at={:#x}", c.addr);
    }
    let _ = write!(
        line,
        " used={} ({} blocks) free={} ({} blocks) largest_free={} overhead={} region={}",
        human_bytes(s.used_bytes),
        s.used_blocks,
        human_bytes(s.free_bytes),
        s.free_blocks,
        human_bytes(s.largest_free),
        human_bytes(s.overhead_bytes),
        human_bytes(s.region_bytes),
    );
    line
}

fn heap_block(b: &HeapBlock) -> String {
    let mut line = format!(
        "heap_block heap={} addr={:#x} size={} {}",
        heap_name(b.pid, b.heap_id),
        b.addr,
        human_bytes(b.size),
        if b.used { "used" } else { "free" },
    );
    if b.used {
        let _ = write!(line, " key={:#x}", b.key);
    }
    line
}

fn heap_walk_end(e: &HeapWalkEnd) -> String {
    format!(
        "heap_walk_end t={} heap={} blocks={} {}",
        human_time(e.ts_us),
        heap_name(e.pid, e.heap_id),
        e.blocks,
        if e.complete { "complete" } else { "incomplete" },
    )
}

/// Bytes in `frames` physical frames, saturating.
pub fn frames_to_bytes(frames: u64) -> u64 {
    frames.saturating_mul(FRAME_SIZE)
}

/// A heap as `kernel#ID` (pid 0) or `pidN#ID`.
pub fn heap_name(pid: u32, heap_id: u32) -> String {
    HeapName(pid, heap_id).to_string()
}

/// [`heap_name`] written in place.
struct HeapName(u32, u32);

impl fmt::Display for HeapName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HeapName(KERNEL_PID, heap_id) => write!(f, "kernel#{heap_id}"),
            HeapName(pid, heap_id) => write!(f, "pid{pid}#{heap_id}"),
        }
    }
}

fn hello(h: &Hello) -> String {
    format!(
        "hello v{}.{} build={} mem={} usable={} regions={} features={} uptime={} tsc={}MHz \
         cmdline={:?}",
        h.version.major,
        h.version.minor,
        word(&h.build_id),
        human_bytes(h.mem_total_bytes),
        human_bytes(h.mem_usable_bytes),
        h.nr_regions,
        feature_names(h.features),
        human_time(h.uptime_us),
        h.tsc_hz / 1_000_000,
        h.cmdline,
    )
}

fn region(r: &MemRegion) -> String {
    // The kernel log's e820 form: inclusive end, 16 hex digits.
    let range = match r.len {
        0 => format!("0x{:016x} (empty)", r.start),
        len => format!(
            "0x{:016x}-0x{:016x}",
            r.start,
            r.start.saturating_add(len - 1)
        ),
    };
    format!(
        "region #{} [mem {range}] {} {}",
        r.index,
        human_bytes(r.len),
        r.kind
    )
}

fn log(l: &Log) -> String {
    format!(
        "log t={} {} {}",
        human_time(l.ts_us),
        l.level.name(),
        escape_controls(&l.text)
    )
}

fn heartbeat(h: &Heartbeat) -> String {
    format!(
        "heartbeat t={} rx={} bad={} dropped={}",
        human_time(h.ts_us),
        h.rx_frames,
        h.rx_bad,
        h.tx_dropped
    )
}

fn exception(e: &Exception) -> String {
    let mut line = format!(
        "exception t={} #{} {} err={:#x}",
        human_time(e.ts_us),
        e.vector,
        ExceptionWord(e.vector),
        e.error_code
    );
    if e.vector == vector::PAGE_FAULT {
        let _ = write!(line, "({})", PageFaultCause(e.error_code));
    }
    let _ = write!(line, " cr2={:#x} rip={:#x} rsp={:#x}", e.cr2, e.rip, e.rsp);
    line
}

fn panic(p: &Panic) -> String {
    format!(
        "panic t={} {:?} at {}:{}:{}",
        human_time(p.ts_us),
        p.message,
        word(&p.file),
        p.line,
        p.column
    )
}

fn pong(p: &Pong) -> String {
    format!("pong t={} nonce={}", human_time(p.ts_us), p.nonce)
}

/// Microseconds as seconds with all six decimals: the kernel's resolution.
pub fn human_time(us: u64) -> String {
    HumanTime(us).to_string()
}

/// A byte count in binary units with one decimal (`639.0KiB`), or plain
/// bytes below 1 KiB.
pub fn human_bytes(bytes: u64) -> String {
    HumanBytes(bytes).to_string()
}

/// [`human_time`] written in place: the per-event lines use it so that
/// each costs one allocation, not four.
struct HumanTime(u64);

impl fmt::Display for HumanTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// [`human_bytes`] written in place.
struct HumanBytes(u64);

impl fmt::Display for HumanBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let bytes = self.0;
        if bytes < 1024 {
            return write!(f, "{bytes}B");
        }
        let mut value = bytes as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, "{value:.1}{}", UNITS[unit])
    }
}

fn feature_names(bits: u32) -> String {
    const NAMES: [(u32, &str); 3] = [
        (features::HOST_COMMANDS, "host-commands"),
        (features::DEBUGCON_LOG, "debugcon-log"),
        (features::GDB_STUB, "gdb-stub"),
    ];
    let mut names: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let unknown = NAMES.iter().fold(bits, |rest, (bit, _)| rest & !bit);
    if unknown != 0 {
        // Bits from a newer kernel: shown raw rather than hidden.
        names.push(format!("{unknown:#x}"));
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// A kernel string as one token: as is when it has no space, quote or control
/// character, quoted and escaped otherwise.
fn word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"')
    {
        s.to_owned()
    } else {
        format!("{s:?}")
    }
}

/// Escapes control characters (newlines, escapes) but keeps the rest, so a
/// log line stays one readable line.
pub fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_fixture::{frame_check, heap_block, heap_check, memory_stats};
    use crate::procs_fixture::{
        memtest_heaps, memtest_info, memtest_leak, memtest_sheds, memtest_vmas,
    };
    use probe_proto::{
        FaultResolution, FrameErrorKind, FrameOwner, HeapErrorKind, LogLevel, MemKind, Version,
    };

    /// The entry flags as map lines print them.
    fn page_flags(flags: u64, page_size: u64) -> String {
        PageFlagNames { flags, page_size }.to_string()
    }

    /// The VMA flags as `process_vma` and `page_fault` lines print them.
    fn vma_flags(flags: u32) -> String {
        VmaFlags(flags).to_string()
    }

    /// A frame owner as `page_alloc` and `page_free` lines print it.
    fn frame_owner(owner: FrameOwner) -> String {
        owner.to_string()
    }

    #[test]
    fn hello_line_summarises_version_build_memory_and_cmdline() {
        let line = human(&Msg::Hello(Hello {
            version: Version { major: 1, minor: 0 },
            build_id: "kernel-0.1.0-debug".into(),
            mem_total_bytes: 128 << 20,
            mem_usable_bytes: 130_000_000,
            nr_regions: 6,
            features: features::HOST_COMMANDS | features::GDB_STUB,
            cmdline: "loglevel=2 test=\"a b\"".into(),
            uptime_us: 12_345,
            tsc_hz: 2_000_000_000,
        }));
        assert_eq!(
            line,
            "hello v1.0 build=kernel-0.1.0-debug mem=128.0MiB usable=124.0MiB regions=6 \
             features=host-commands,gdb-stub uptime=0.012345s tsc=2000MHz cmdline=\"loglevel=2 test=\\\"a b\\\"\""
        );
    }

    #[test]
    fn region_line_uses_the_e820_inclusive_range() {
        let line = human(&Msg::MemRegion(MemRegion {
            index: 0,
            start: 0,
            len: 0x9fc00,
            kind: MemKind::Usable,
        }));
        assert_eq!(
            line,
            "region #0 [mem 0x0000000000000000-0x000000000009fbff] 639.0KiB usable"
        );
        let empty = human(&Msg::MemRegion(MemRegion {
            index: 1,
            start: 0x1000,
            len: 0,
            kind: MemKind::Other(9),
        }));
        assert_eq!(
            empty,
            "region #1 [mem 0x0000000000001000 (empty)] 0B type-9"
        );
    }

    #[test]
    fn log_line_escapes_control_characters_but_keeps_unicode() {
        let line = human(&Msg::Log(Log {
            ts_us: 1_234_567,
            level: LogLevel::Info,
            text: "heap ✓\nnext\x1b[31m".into(),
        }));
        assert_eq!(line, "log t=1.234567s INFO heap ✓\\nnext\\u{1b}[31m");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn heartbeat_pong_and_dropped_lines() {
        assert_eq!(
            human(&Msg::Heartbeat(Heartbeat {
                ts_us: 1_234_000,
                rx_frames: 3,
                rx_bad: 0,
                tx_dropped: 0
            })),
            "heartbeat t=1.234000s rx=3 bad=0 dropped=0"
        );
        assert_eq!(
            human(&Msg::Pong(Pong {
                nonce: 42,
                ts_us: 5
            })),
            "pong t=0.000005s nonce=42"
        );
        assert_eq!(human(&Msg::Dropped { count: 3 }), "dropped count=3");
    }

    #[test]
    fn page_fault_line_names_the_vector_and_decodes_the_error_code() {
        let line = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 14,
            error_code: 0x6,
            cr2: 0,
            rip: 0xffff_ffff_8000_1234,
            rsp: 0xffff_8000_0000_0ff0,
        }));
        assert_eq!(
            line,
            "exception t=0.000000s #14 page-fault err=0x6(not-present,write,user) cr2=0x0 \
             rip=0xffffffff80001234 rsp=0xffff800000000ff0"
        );
        let fetch = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 14,
            error_code: 0x11,
            cr2: 0x1000,
            rip: 0x1000,
            rsp: 0,
        }));
        assert!(
            fetch.contains("err=0x11(protection,fetch,kernel)"),
            "{fetch}"
        );
        let gp = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 13,
            error_code: 0,
            cr2: 0,
            rip: 1,
            rsp: 2,
        }));
        assert!(gp.contains("#13 general-protection err=0x0 cr2"), "{gp}");
    }

    #[test]
    fn panic_line_quotes_the_message_and_gives_the_location() {
        assert_eq!(
            human(&Msg::Panic(Panic {
                ts_us: 2_000_000,
                message: "double free of 0x1000".into(),
                file: "kernel/src/mm/heap.rs".into(),
                line: 120,
                column: 13,
            })),
            "panic t=2.000000s \"double free of 0x1000\" at kernel/src/mm/heap.rs:120:13"
        );
    }

    #[test]
    fn unknown_feature_bits_are_shown_raw_and_no_bits_read_none() {
        assert_eq!(feature_names(0), "none");
        assert_eq!(
            feature_names(features::DEBUGCON_LOG | 0x100),
            "debugcon-log,0x100"
        );
    }

    #[test]
    fn memory_stats_line_gives_frames_heap_and_counters() {
        let line = human(&Msg::MemoryStats(MemoryStats {
            ts_us: 1_000_000,
            ..memory_stats()
        }));
        assert_eq!(
            line,
            "memory_stats t=1.000000s frames=32768 (128.0MiB) free=30000 (117.2MiB) \
             heap=kernel#0 heap_used=1.5KiB (9 blocks) heap_free=60.0KiB (3 blocks) \
             heap_region=64.0KiB \
             page_allocs=10 page_frees=2 maps=5 unmaps=0 heap_allocs=100 heap_frees=90 \
             heap_errors=1 frame_errors=0"
        );
    }

    #[test]
    fn page_event_lines_give_hex_address_size_and_readable_owner() {
        let e = PageEvent {
            ts_us: 5,
            addr: 0x20_0000,
            count: 4,
            owner: FrameOwner::KernelHeap,
            caller: 0xffff_ffff_8000_1234,
        };
        assert_eq!(
            human(&Msg::PageAlloc(e)),
            "page_alloc t=0.000005s addr=0x200000 count=4 (16.0KiB) owner=kernel-heap \
             caller=0xffffffff80001234"
        );
        let free = human(&Msg::PageFree(PageEvent {
            owner: FrameOwner::Process(7),
            count: 1,
            ..e
        }));
        assert!(
            free.starts_with("page_free t=0.000005s addr=0x200000 count=1 (4.0KiB) owner=pid7 "),
            "{free}"
        );
        assert_eq!(frame_owner(FrameOwner::Other(3)), "other-3");
        assert_eq!(frame_owner(FrameOwner::PageTable), "page-table");
    }

    #[test]
    fn map_event_lines_decode_the_entry_flags() {
        let e = MapEvent {
            ts_us: 0,
            space: 0x1000,
            virt: 0x4000_0000,
            phys: 0x30_0000,
            size: 4096,
            flags: 0b111 | (1 << 63),
            caller: 0xffff_ffff_8000_0010,
        };
        assert_eq!(
            human(&Msg::Map(e)),
            "map t=0.000000s space=0x1000 virt=0x40000000 phys=0x300000 size=4.0KiB \
             flags=P|W|U|NX caller=0xffffffff80000010"
        );
        let unmap = human(&Msg::Unmap(MapEvent {
            size: 2 << 20,
            flags: 0x83,
            ..e
        }));
        assert!(unmap.contains(" size=2.0MiB flags=P|W|PS "), "{unmap}");
    }

    #[test]
    fn page_flags_name_known_bits_and_keep_unknown_ones_raw() {
        assert_eq!(page_flags(0, 4096), "-");
        assert_eq!(page_flags(0x1, 4096), "P");
        // Bit 7 is PAT in a 4 KiB entry, PS in a large one (PAT moves to 12).
        assert_eq!(page_flags(0x80, 4096), "PAT");
        assert_eq!(page_flags(0x1081, 1 << 30), "P|PS|PAT");
        assert_eq!(page_flags(0x161, 4096), "P|A|D|G");
        assert_eq!(page_flags(0x1e00 | 1, 4096), "P|0x1e00");
        assert_eq!(page_flags(0x18, 4096), "PWT|PCD");
    }

    #[test]
    fn heap_event_and_error_lines() {
        let e = HeapEvent {
            ts_us: 2_000_000,
            pid: 0,
            heap_id: 0,
            addr: 0xffff_8000_0010_0040,
            size: 48,
            align: 16,
            key: 0xffff_ffff_8000_2000,
            caller: 0xffff_ffff_8000_2000,
        };
        assert_eq!(
            human(&Msg::HeapAlloc(e)),
            "heap_alloc t=2.000000s heap=kernel#0 addr=0xffff800000100040 size=48B align=16 \
             key=0xffffffff80002000 caller=0xffffffff80002000"
        );
        let free = human(&Msg::HeapFree(HeapEvent {
            pid: 12,
            heap_id: 1,
            size: 4096,
            ..e
        }));
        assert!(
            free.starts_with("heap_free t=2.000000s heap=pid12#1 "),
            "{free}"
        );
        assert!(free.contains(" size=4.0KiB "), "{free}");

        assert_eq!(
            human(&Msg::HeapError(HeapErrorEvent {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                kind: HeapErrorKind::RedZoneOverflow { offset: 52 },
                addr: 0x1000,
                size: 48,
                caller: 0x2000,
            })),
            "heap_error t=0.000001s heap=kernel#0 kind=red-zone-overflow@+52 addr=0x1000 \
             size=48B caller=0x2000"
        );
        assert_eq!(
            human(&Msg::FrameError(FrameErrorEvent {
                ts_us: 1,
                kind: FrameErrorKind::DoubleFree,
                addr: 0x5000,
                count: 1,
                caller: 0x3000,
            })),
            "frame_error t=0.000001s kind=double-free addr=0x5000 count=1 caller=0x3000"
        );
    }

    #[test]
    fn frame_check_line_is_short_when_consistent_and_names_what_differs_otherwise() {
        assert_eq!(
            human(&Msg::FrameCheck(frame_check(true))),
            "frame_check t=3.000000s ok frames=32768 free=30000 ram=32512"
        );
        let bad = FrameCheck {
            summary_mismatches: 2,
            ..frame_check(false)
        };
        assert_eq!(
            human(&Msg::FrameCheck(bad)),
            "frame_check t=3.000000s INCONSISTENT frames=32768 free=30000(recorded=30001) \
             ram=32512 used_without_owner=1 summary_mismatches=2"
        );
    }

    #[test]
    fn heap_check_line_gives_the_verdict_the_error_and_the_occupancy() {
        let ok = HeapCheck {
            ts_us: 3_000_000,
            ..heap_check(0, true)
        };
        assert_eq!(
            human(&Msg::HeapCheck(ok)),
            "heap_check t=3.000000s heap=kernel#0 ok used=1.5KiB (9 blocks) free=60.0KiB \
             (3 blocks) largest_free=40.0KiB overhead=256B region=64.0KiB"
        );
        let bad = human(&Msg::HeapCheck(HeapCheck {
            ok: false,
            error: Some(HeapErrorKind::CorruptHeader),
            addr: 0xffff_8000_0010_0000,
            ..ok
        }));
        assert!(
            bad.starts_with(
                "heap_check t=3.000000s heap=kernel#0 FAILED error=corrupt-header \
                 at=0xffff800000100000 used="
            ),
            "{bad}"
        );
    }

    #[test]
    fn heap_walk_lines() {
        let block = heap_block();
        assert_eq!(
            human(&Msg::HeapBlock(block)),
            "heap_block heap=kernel#0 addr=0x1040 size=64B used key=0xabc"
        );
        assert_eq!(
            human(&Msg::HeapBlock(HeapBlock {
                used: false,
                ..block
            })),
            "heap_block heap=kernel#0 addr=0x1040 size=64B free"
        );
        assert_eq!(
            human(&Msg::HeapWalkEnd(HeapWalkEnd {
                ts_us: 9,
                pid: 3,
                heap_id: 2,
                blocks: 12,
                complete: false,
            })),
            "heap_walk_end t=0.000009s heap=pid3#2 blocks=12 incomplete"
        );
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1024), "1.0KiB");
        assert_eq!(human_bytes(128 << 20), "128.0MiB");
        assert_eq!(human_bytes(3 << 30), "3.0GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0EiB");
    }

    #[test]
    fn process_lifecycle_lines() {
        let e = ProcessEvent {
            ts_us: 1_000_000,
            pid: 3,
            parent: 0,
            name: "memtest".into(),
        };
        assert_eq!(
            human(&Msg::ProcessSpawn(e.clone())),
            "process_spawn t=1.000000s pid=3 parent=0 name=memtest"
        );
        assert_eq!(
            human(&Msg::ProcessRename(ProcessEvent {
                name: "my prog".into(),
                ..e
            })),
            "process_rename t=1.000000s pid=3 parent=0 name=\"my prog\""
        );
        let exit = ProcessExit {
            ts_us: 2_000_000,
            pid: 3,
            reason: ExitReason::Exited(0),
            leaked_blocks: 2,
            leaked_bytes: 300,
            frames_freed: 12,
        };
        assert_eq!(
            human(&Msg::ProcessExit(exit)),
            "process_exit t=2.000000s pid=3 exit=0 leaked_blocks=2 leaked=300B frames_freed=12 \
             (48.0KiB)"
        );
        let killed = human(&Msg::ProcessExit(ProcessExit {
            reason: ExitReason::Killed { vector: 14 },
            ..exit
        }));
        assert!(
            killed.starts_with("process_exit t=2.000000s pid=3 killed=#14(page-fault) "),
            "{killed}"
        );
    }

    #[test]
    fn process_listing_lines() {
        assert_eq!(
            human(&Msg::ProcessInfo(memtest_info())),
            "process_info t=2.500000s pid=1 parent=0 name=memtest state=sleeping heaps=2 sheds=2 \
             vmas=7 heap_size=128.0KiB heap_used=600B heap_free=127.4KiB shed_size=16.0KiB \
             resident=10 (40.0KiB) page_tables=4"
        );
        assert_eq!(
            human(&Msg::ProcessHeap(memtest_heaps()[1])),
            "process_heap heap=pid1#7 start=0x10010000 size=64.0KiB used=0B free=64.0KiB \
             used_blocks=0 largest_free=64.0KiB"
        );
        assert_eq!(
            human(&Msg::ProcessShed(memtest_sheds()[1])),
            "process_shed shed=pid1#9 start=0x20002000 size=8.0KiB"
        );
        assert_eq!(
            human(&Msg::ProcessVma(memtest_vmas()[6])),
            "process_vma pid=1 0x7ffffffef000-0x7ffffffff000 rw-p+growsdown stack size=64.0KiB \
             resident=1 (4.0KiB)"
        );
        assert_eq!(
            human(&Msg::ProcessListEnd(ProcessListEnd {
                ts_us: 3,
                total_programs: 2,
                complete: false,
            })),
            "process_list_end t=0.000003s programs=2 incomplete"
        );
    }

    #[test]
    fn vma_flags_read_like_proc_maps() {
        assert_eq!(vma_flags(0), "---p");
        assert_eq!(vma_flags(0b101), "r-xp");
        assert_eq!(vma_flags(0b1011), "rw-s");
        assert_eq!(vma_flags(0b1_0011), "rw-p+growsup");
        assert_eq!(vma_flags(0x41), "r--p+0x40");
    }

    #[test]
    fn page_fault_and_leak_lines() {
        let f = PageFault {
            ts_us: 4,
            pid: 1,
            addr: 0x1000_0040,
            error_code: 0x7,
            rip: 0x40_0123,
            resolution: FaultResolution::CopyOnWrite,
            vma_start: 0x1000_0000,
            vma_end: 0x1001_0000,
            vma_flags: 3,
        };
        assert_eq!(
            human(&Msg::PageFault(f)),
            "page_fault t=0.000004s pid=1 addr=0x10000040 err=0x7(protection,write,user) \
             rip=0x400123 copy-on-write vma=0x10000000-0x10010000(rw-p)"
        );
        let killed = human(&Msg::PageFault(PageFault {
            addr: 0,
            error_code: 4,
            resolution: FaultResolution::Killed,
            vma_start: 0,
            vma_end: 0,
            vma_flags: 0,
            ..f
        }));
        assert!(
            killed.ends_with("err=0x4(not-present,read,user) rip=0x400123 killed vma=none"),
            "{killed}"
        );
        assert_eq!(
            human(&Msg::Leak(memtest_leak(5))),
            "leak t=0.000005s heap=pid1#1 key=0xabc blocks=2 bytes=300B first=0x10000010 \
             oldest_age=1.500000s"
        );
    }
}
