//! Processes as telemetry: the answer to the host's `Processes` request, in
//! the `checkMemory` shape plus VMAs and resident frames.

use alloc::vec::Vec;

use probe_proto::{
    KernelMsg, ProcState, ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma,
    VmaKind as WireKind,
};

use crate::mm::vma::{VmFlags, VmaKind};
use crate::{telemetry, time};

pub use super::memory::KeyUsage;

use super::{KERNEL_PID, Name, Process, State, TABLE, Table};

/// `VM_*` bits as the protocol numbers them.
pub fn wire_vm_flags(flags: VmFlags) -> u32 {
    [
        (VmFlags::READ, 1),
        (VmFlags::WRITE, 2),
        (VmFlags::EXEC, 4),
        (VmFlags::SHARED, 8),
        (VmFlags::GROWSUP, 16),
        (VmFlags::GROWSDOWN, 32),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, bit)| bit)
    .sum()
}

fn wire_kind(kind: VmaKind) -> WireKind {
    match kind {
        VmaKind::Code => WireKind::Code,
        VmaKind::Shed => WireKind::Shed,
        VmaKind::Data => WireKind::Data,
        VmaKind::Heap => WireKind::Heap,
        VmaKind::Stack => WireKind::Stack,
        VmaKind::Mmap => WireKind::Mmap,
    }
}

/// The messages describing one process: its `ProcessInfo` first.
fn describe(p: &Process, out: &mut Vec<KernelMsg<'static>>, names: &mut Vec<super::Name>) {
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
                flags: wire_vm_flags(v.flags()),
                kind: wire_kind(v.kind()),
                resident_pages: pages,
            });
        }
        tables = 1 + mm.space().tables().count_tables().user_half;
    }
    names.push(p.name);
    out.push(KernelMsg::ProcessInfo(ProcessInfo {
        ts_us,
        pid,
        parent: p.parent,
        name: "".into(),
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

/// The messages of the listing of `pid` (or of every live program for -1),
/// with the names the `ProcessInfo`s leave empty, in the same order.
fn collect(t: &Table, pid: i64) -> (Vec<KernelMsg<'static>>, Vec<Name>) {
    let mut msgs = Vec::new();
    let mut names = Vec::new();
    if !t.procs.contains_key(&KERNEL_PID) && pid <= 0 {
        describe(&super::kernel_process(), &mut msgs, &mut names);
    }
    for p in t.iter() {
        let wanted = pid < 0 || i64::from(p.pid) == pid;
        if wanted && !matches!(p.state, State::Zombie { .. }) {
            describe(p, &mut msgs, &mut names);
        }
    }
    (msgs, names)
}

/// Sends the listing of `pid` (or of every live program for -1), then
/// `ProcessListEnd`. The table is read under its lock into owned messages;
/// sending (which may wait for the UART) happens after.
pub fn send_listing(pid: i64) {
    let (msgs, names) = TABLE.with(|t| collect(t, pid));
    let total_programs = names.len() as u32;
    let mut names = names.iter();
    for msg in &msgs {
        match msg {
            KernelMsg::ProcessInfo(info) => {
                let name = names.next().map_or("?", |n| n.as_str());
                telemetry::send_waiting(&KernelMsg::ProcessInfo(ProcessInfo {
                    name: name.into(),
                    ..info.clone()
                }));
            }
            other => telemetry::send_waiting(other),
        }
    }
    // Every message above waited for room in the ring: none was dropped.
    telemetry::send_waiting(&KernelMsg::ProcessListEnd(ProcessListEnd {
        ts_us: time::uptime_us(),
        total_programs,
        complete: true,
    }));
}

/// Runs `f` on the process table unless someone holds it: the debugger may
/// have stopped the kernel inside the table's lock.
pub fn try_with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE.try_with(f)
}

/// What [`send_listing`] would send for `pid`, for other readers (the
/// debugger's `monitor ps`): the messages and, in the same order, the names
/// their `ProcessInfo`s leave empty. `None` if the table is held.
pub fn try_listing(pid: i64) -> Option<(Vec<KernelMsg<'static>>, Vec<Name>)> {
    TABLE.try_with(|t| collect(t, pid))
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
