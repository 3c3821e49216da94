//! The process listing: the answer to the host's `Processes` request and
//! to `monitor ps`, in the `checkMemory` shape plus VMAs and resident
//! frames; and a process's blocks in use by key (`monitor leaks`).

use alloc::borrow::Cow;
use alloc::vec::Vec;

use probe_proto::{
    KERNEL_PID, KernelMsg, Leak, ProcState, ProcessHeap, ProcessInfo, ProcessShed, ProcessVma,
};

use crate::proc::heaps::KeyUsage;
use crate::proc::{Process, State, Table};
use crate::time;

/// The messages describing one process: its `ProcessInfo` first.
fn describe(p: &Process, out: &mut Vec<KernelMsg<'static>>) {
    let ts_us = time::uptime_us();
    let pid = p.pid;
    let state = match p.state {
        _ if pid == KERNEL_PID => ProcState::Kernel,
        State::Runnable => ProcState::Runnable,
        State::Sleeping { .. } | State::Waiting => ProcState::Sleeping,
        State::Zombie { .. } => ProcState::Zombie,
    };
    let mut heaps = Vec::new();
    let mut sheds = Vec::new();
    let mut vmas = Vec::new();
    let (mut resident, mut tables) = (0, 0);
    if pid == KERNEL_PID {
        let s = crate::memory::heap::get_heap_stats();
        heaps.push(ProcessHeap {
            pid,
            heap_id: 0,
            start: crate::memory::heap::KERNEL_HEAP_START,
            heap_size: s.region_bytes as u64,
            heap_used: s.used_bytes as u64,
            heap_free: (s.region_bytes - s.used_bytes) as u64,
            used_blocks: s.used_blocks as u64,
            largest_free: s.largest_free as u64,
        });
    } else if let Some(mm) = p.mm.as_ref() {
        for h in p.memory.heaps() {
            let used = h.used_bytes();
            let (used_blocks, largest_free) = h.detail(mm);
            heaps.push(ProcessHeap {
                pid,
                heap_id: h.id,
                start: h.start,
                heap_size: h.size,
                heap_used: used,
                heap_free: h.size - used,
                used_blocks,
                largest_free,
            });
        }
        for s in p.memory.sheds() {
            sheds.push(ProcessShed {
                pid,
                shed_id: s.id,
                start: s.start,
                shed_size: s.size,
            });
        }
        for v in mm.vmas() {
            let (start, end) = (v.start().as_u64(), v.end().as_u64());
            let pages = mm.resident_pages(start, end);
            resident += pages;
            vmas.push(ProcessVma {
                pid,
                start,
                end,
                flags: v.flags().wire_bits(),
                kind: v.kind(),
                resident_pages: pages,
            });
        }
        tables = 1 + mm.space().tables().count_tables().user_half;
    }
    out.push(KernelMsg::ProcessInfo(ProcessInfo {
        ts_us,
        pid,
        parent: p.parent,
        name: Cow::Owned(p.name.as_str().into()),
        state,
        nr_heaps: heaps.len() as u32,
        nr_sheds: sheds.len() as u32,
        nr_vmas: vmas.len() as u32,
        total_heap_size: heaps.iter().map(|h| h.heap_size).sum(),
        total_heap_used: heaps.iter().map(|h| h.heap_used).sum(),
        total_heap_free: heaps.iter().map(|h| h.heap_free).sum(),
        total_shed_size: sheds.iter().map(|s| s.shed_size).sum(),
        resident_frames: resident,
        page_table_frames: tables,
    }));
    out.extend(heaps.into_iter().map(KernelMsg::ProcessHeap));
    out.extend(sheds.into_iter().map(KernelMsg::ProcessShed));
    out.extend(vmas.into_iter().map(KernelMsg::ProcessVma));
}

/// The listing of `pid` (or of every live program for -1): per program
/// its `ProcessInfo`, then its heaps, sheds and VMAs. The kernel (pid 0) is
/// listed even before programs run. The table is read under its lock into
/// owned messages; sending them (which may wait for the UART) comes after.
pub fn listing(pid: i64) -> Vec<KernelMsg<'static>> {
    crate::proc::with_table(|t| collect(t, pid))
}

/// [`listing`] for a reader that must not wait (the debugger, which may
/// have stopped the kernel inside the table's lock): `None` if it is held.
pub fn try_listing(pid: i64) -> Option<Vec<KernelMsg<'static>>> {
    crate::proc::try_with_table(|t| collect(t, pid))
}

fn collect(t: &Table, pid: i64) -> Vec<KernelMsg<'static>> {
    let mut msgs = Vec::new();
    if !t.contains(KERNEL_PID) && pid <= 0 {
        describe(&crate::proc::kernel_process(), &mut msgs);
    }
    for p in t.iter() {
        let wanted = pid < 0 || i64::from(p.pid) == pid;
        if wanted && !matches!(p.state, State::Zombie { .. }) {
            describe(p, &mut msgs);
        }
    }
    msgs
}

/// Blocks in use per heap and key of `p`, by heap (in the process's order)
/// then key; the flag is false if a damaged header cut a heap's walk short.
pub fn used_by_key(p: &Process) -> (Vec<KeyUsage>, bool) {
    let mut out = Vec::new();
    let mut intact = true;
    if let Some(mm) = p.mm.as_ref() {
        for h in p.memory.heaps() {
            let (usage, whole) = h.used_by_key(mm);
            intact &= whole;
            out.extend(usage);
        }
    }
    (out, intact)
}

/// The answer to the host's `Leaks`: blocks in use per heap and key of
/// `pid` (or of every live program for -1), as `Leak` values, the number
/// of processes reported, and whether every walk was whole and the pid
/// found.
pub fn blocks_in_use(pid: i64) -> (Vec<Leak>, u32, bool) {
    crate::proc::with_table(|t| {
        let mut out = Vec::new();
        let mut processes = 0;
        let mut whole = true;
        for p in t.iter() {
            let wanted = pid < 0 || i64::from(p.pid) == pid;
            if !wanted || p.pid == KERNEL_PID || p.mm.is_none() {
                continue;
            }
            let (usage, intact) = used_by_key(p);
            whole &= intact;
            processes += 1;
            out.extend(usage.iter().map(|u| u.to_leak(p.pid)));
        }
        let found = pid < 0 || processes > 0;
        (out, processes, whole && found)
    })
}
