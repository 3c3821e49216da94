//! The telemetry server: answers the host's commands with what
//! `introspect` computes. It runs in thread context (the idle loop), never
//! with a telemetry or memory lock held, and sends answers with
//! [`send_waiting`], so none is dropped for want of room.
#![deny(unsafe_code)]

use probe_proto::{
    HeapBlock, HeapWalkEnd, HostMsg, KernelMsg, LeaksEnd, OWNER_RUNS_BATCH, OwnerMapEnd, OwnerRun,
    OwnerRuns, ProcessListEnd, PtRange, Settings,
};

use super::link::{send_waiting, take_requests};
use crate::introspect::heap_walk::{self, WALK_BATCH};
use crate::introspect::ptdump::{DUMP_BATCH, Dump, NO_FINDING};
use crate::introspect::{check, kleak, memory, owner_map, processes};
use crate::memory::heap::with_kernel_heap;
use crate::time;

/// Answers the host's pending requests, oldest first.
pub fn serve_requests() {
    for cmd in take_requests() {
        match cmd {
            HostMsg::Snapshot => send_waiting(&KernelMsg::MemoryStats(memory::memory_stats())),
            HostMsg::Check => {
                send_waiting(&KernelMsg::FrameCheck(memory::frame_check()));
                if let Some(check) = with_kernel_heap(|h| memory::heap_check(h)) {
                    send_waiting(&KernelMsg::HeapCheck(check));
                }
                send_mapping_check();
            }
            HostMsg::Processes { pid } => send_listing(pid),
            HostMsg::HeapWalk { pid, heap_id } => send_heap_walk(pid, heap_id),
            HostMsg::PtDump { pid } => send_pt_dump(pid),
            HostMsg::SetLogLevel { level } => {
                crate::log::set_level(level);
                send_settings();
            }
            HostMsg::SetEvents { classes } => {
                crate::memory::events::set_classes(classes);
                send_settings();
            }
            HostMsg::Leaks { pid } => send_blocks_in_use(pid),
            HostMsg::LeakScan { min_age_ms } => {
                let end = kleak::scan(min_age_ms, |leak| {
                    send_waiting(&KernelMsg::KernelLeak(*leak));
                });
                send_waiting(&KernelMsg::LeakScanEnd(end));
            }
            HostMsg::OwnerMap {
                first_frame,
                nr_frames,
            } => send_owner_map(first_frame, nr_frames),
            // Answered by the link itself.
            HostMsg::Resync | HostMsg::Ping { .. } => {}
        }
    }
}

/// Sends the owner map of `nr_frames` frames from `first_frame`, a batch
/// of runs a message, then `OwnerMapEnd`.
fn send_owner_map(first_frame: u64, nr_frames: u64) {
    let (start, end) = owner_map::bounds(first_frame, nr_frames);
    let mut frame = start;
    let mut runs = 0u64;
    while frame < end {
        let mut batch = [OwnerRun {
            owner: None,
            frames: 0,
        }; OWNER_RUNS_BATCH];
        let got = owner_map::runs(frame, end, &mut batch);
        send_waiting(&KernelMsg::OwnerRuns(OwnerRuns {
            first_frame: frame,
            runs: (&batch[..got.runs]).into(),
        }));
        runs += got.runs as u64;
        frame = got.next_frame;
    }
    send_waiting(&KernelMsg::OwnerMapEnd(OwnerMapEnd {
        ts_us: time::uptime_us(),
        first_frame: start,
        nr_frames: end - start,
        runs,
        total_frames: owner_map::total_frames(),
    }));
}

/// Sends the log level and event classes now in force.
fn send_settings() {
    send_waiting(&KernelMsg::Settings(Settings {
        ts_us: time::uptime_us(),
        log_level: crate::log::level(),
        events: crate::memory::events::classes(),
    }));
}

/// Sends the blocks in use by key of `pid` (or every program), then
/// `LeaksEnd`.
fn send_blocks_in_use(pid: i64) {
    let (usage, processes, complete) = processes::blocks_in_use(pid);
    for u in usage {
        send_waiting(&KernelMsg::BlocksInUse(u));
    }
    send_waiting(&KernelMsg::LeaksEnd(LeaksEnd {
        ts_us: time::uptime_us(),
        pid,
        processes,
        complete,
    }));
}

/// Sends the dump of the page tables of `pid` (0: the kernel's): its
/// ranges and audit findings a batch at a time, then `PtDumpEnd`.
fn send_pt_dump(pid: u32) {
    let mut dump = Dump::new(pid);
    while !dump.is_done() {
        let mut ranges = [PtRange::default(); DUMP_BATCH];
        let mut audit = [NO_FINDING; DUMP_BATCH];
        let batch = dump.next_batch(&mut ranges, &mut audit);
        for range in &ranges[..batch.ranges] {
            send_waiting(&KernelMsg::PtRange(*range));
        }
        for finding in &audit[..batch.findings] {
            send_waiting(&KernelMsg::PtAudit(*finding));
        }
    }
    send_waiting(&KernelMsg::PtDumpEnd(dump.end()));
}

/// Runs the check of every mapping against the frame allocator and sends
/// its findings, then `CheckEnd`: after `Check`'s other answers, and every
/// `checkevery=` seconds.
pub fn send_mapping_check() {
    let mut findings = [check::NO_FINDING; check::MAX_FINDINGS];
    let Some(end) = check::check_mappings(&mut findings) else {
        kwarn!("mapping check: processes kept moving memory; not checked");
        return;
    };
    if !end.consistent {
        kwarn!("mapping check: {} findings", end.findings);
    }
    for f in findings.iter().take(end.findings as usize) {
        send_waiting(&KernelMsg::CheckFinding(*f));
    }
    send_waiting(&KernelMsg::CheckEnd(end));
}

/// Sends the listing of `pid` (or of every live program for -1), then
/// `ProcessListEnd`.
fn send_listing(pid: i64) {
    let msgs = processes::listing(pid);
    let mut total_programs = 0;
    for msg in &msgs {
        total_programs += u32::from(matches!(msg, KernelMsg::ProcessInfo(_)));
        send_waiting(msg);
    }
    // Every message above waited for room in the ring: none was dropped.
    send_waiting(&KernelMsg::ProcessListEnd(ProcessListEnd {
        ts_us: time::uptime_us(),
        total_programs,
        complete: true,
    }));
}

/// Sends every block of heap `heap_id` of `pid`, then `HeapWalkEnd` (with
/// no blocks and `complete` false if there is no such heap).
fn send_heap_walk(pid: u32, heap_id: u32) {
    let mut sent = 0u64;
    let mut complete = true;
    loop {
        let mut batch = [HeapBlock::default(); WALK_BATCH];
        let Some((n, intact)) = heap_walk::blocks(pid, heap_id, sent as usize, &mut batch) else {
            complete = false;
            break;
        };
        for block in &batch[..n] {
            send_waiting(&KernelMsg::HeapBlock(*block));
        }
        sent += n as u64;
        complete &= intact;
        if n < WALK_BATCH || !intact {
            break;
        }
    }
    send_waiting(&KernelMsg::HeapWalkEnd(HeapWalkEnd {
        ts_us: time::uptime_us(),
        pid,
        heap_id,
        blocks: sent,
        complete,
    }));
}
