//! Ring-3 processes in the real kernel: the checkMemory listing matches what
//! a program did, bad programs are killed while others run on, demand
//! paging, copy-on-write and stack growth happen as the programs expect, a
//! page left to one process after fork is recorded as that process's, a
//! hostile program cannot hurt the kernel, and every frame the programs
//! took comes back.

use std::collections::HashMap;
use std::time::Duration;

use probe_proto::{
    ExitReason, FaultResolution, FrameOwner, HostMsg, KernelMsg, MemoryStats, PageFault,
    ProcessExit, ProcessHeap, ProcessInfo, ProcessShed, ProcessVma, VmaKind,
};
use systest::{DEADLINE, Qemu, QemuConfig, Telemetry};

/// One program of a listing, with what followed its `ProcessInfo`.
#[derive(Debug, Clone)]
struct Program {
    pid: u32,
    name: String,
    info: ProcessInfo<'static>,
    heaps: Vec<ProcessHeap>,
    sheds: Vec<ProcessShed>,
    vmas: Vec<ProcessVma>,
}

/// What a test saw on the link besides what it waited for.
#[derive(Default, Debug)]
struct Seen {
    faults: Vec<PageFault>,
    exits: Vec<ProcessExit>,
    first_stats: Option<MemoryStats>,
}

impl Seen {
    fn note(&mut self, m: &KernelMsg<'_>) {
        match m {
            KernelMsg::PageFault(f) => self.faults.push(*f),
            KernelMsg::ProcessExit(e) => self.exits.push(*e),
            KernelMsg::MemoryStats(s) if self.first_stats.is_none() => self.first_stats = Some(*s),
            _ => {}
        }
    }
}

fn boot(name: &str, append: &str) -> (Qemu, Telemetry) {
    Qemu::boot(
        name,
        &QemuConfig::with_append(format!("memevents=0 {append}")),
    )
}

/// Asks for the listing of `pid` (-1: all) and collects it.
fn listing(link: &mut Telemetry, seen: &mut Seen, pid: i64) -> (u32, Vec<Program>) {
    link.send(&HostMsg::Processes { pid });
    let mut programs: Vec<Program> = Vec::new();
    let total = link.wait_for("ProcessListEnd", DEADLINE, |m| {
        seen.note(m);
        match m {
            KernelMsg::ProcessInfo(info) => programs.push(Program {
                pid: info.pid,
                name: info.name.to_string(),
                info: ProcessInfo {
                    name: "".into(),
                    ..info.clone().into_owned()
                },
                heaps: vec![],
                sheds: vec![],
                vmas: vec![],
            }),
            KernelMsg::ProcessHeap(h) => programs.last_mut().unwrap().heaps.push(*h),
            KernelMsg::ProcessShed(s) => programs.last_mut().unwrap().sheds.push(*s),
            KernelMsg::ProcessVma(v) => programs.last_mut().unwrap().vmas.push(*v),
            KernelMsg::ProcessListEnd(end) => {
                assert!(end.complete);
                return Some(end.total_programs);
            }
            _ => {}
        }
        None
    });
    for p in &programs {
        assert_eq!(p.heaps.len() as u32, p.info.nr_heaps, "{p:?}");
        assert_eq!(p.sheds.len() as u32, p.info.nr_sheds, "{p:?}");
        assert_eq!(p.vmas.len() as u32, p.info.nr_vmas, "{p:?}");
        let heaps = |field: fn(&ProcessHeap) -> u64| p.heaps.iter().map(field).sum::<u64>();
        assert_eq!(p.info.total_heap_size, heaps(|h| h.heap_size));
        assert_eq!(p.info.total_heap_used, heaps(|h| h.heap_used));
        assert_eq!(p.info.total_heap_free, heaps(|h| h.heap_free));
        let sheds: u64 = p.sheds.iter().map(|s| s.shed_size).sum();
        assert_eq!(p.info.total_shed_size, sheds);
        for h in &p.heaps {
            assert_eq!(h.heap_free, h.heap_size - h.heap_used, "{h:?}");
        }
    }
    (total, programs)
}

/// Waits for the exit of `pid`.
fn wait_exit(link: &mut Telemetry, seen: &mut Seen, pid: u32) -> ProcessExit {
    if let Some(e) = seen.exits.iter().find(|e| e.pid == pid) {
        return *e;
    }
    link.wait_for("ProcessExit", DEADLINE, |m| {
        seen.note(m);
        match m {
            KernelMsg::ProcessExit(e) if e.pid == pid => Some(*e),
            _ => None,
        }
    })
}

fn pid_of(programs: &[Program], name: &str) -> u32 {
    programs
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no program {name} in {programs:#?}"))
        .pid
}

#[test]
fn check_memory_listing_matches_what_the_program_did() {
    let (mut qemu, mut link) = boot("proc-memtest", "init=memtest,demandtest");
    qemu.wait_debug_log("memtest: ready");
    qemu.wait_debug_log("demandtest: touched 4 of 64");
    let mut seen = Seen::default();
    let (total, programs) = listing(&mut link, &mut seen, -1);
    // The kernel and both programs: check_memory(-1) covers them all.
    assert_eq!(total, 3, "{programs:#?}");
    assert_eq!(programs.len(), 3);
    let kernel = &programs[0];
    assert_eq!((kernel.pid, kernel.name.as_str()), (0, "kernel"));
    assert_eq!(kernel.heaps.len(), 1);
    assert!(kernel.heaps[0].heap_used > 0);

    let memtest = programs.iter().find(|p| p.name == "memtest").unwrap();
    let mut heap_ids: Vec<u32> = memtest.heaps.iter().map(|h| h.heap_id).collect();
    heap_ids.sort();
    assert_eq!(heap_ids, [1, 7], "an automatic id and the chosen one");
    for h in &memtest.heaps {
        assert_eq!(h.heap_size, 64 * 1024);
    }
    let first = memtest.heaps.iter().find(|h| h.heap_id == 1).unwrap();
    assert_eq!(first.heap_used, 100 + 200 + 300);
    assert_eq!(first.used_blocks, 3);
    let second = memtest.heaps.iter().find(|h| h.heap_id == 7).unwrap();
    assert_eq!(second.heap_used, 0);
    let mut sheds: Vec<(u32, u64)> = memtest
        .sheds
        .iter()
        .map(|s| (s.shed_id, s.shed_size))
        .collect();
    sheds.sort();
    assert_eq!(sheds, [(1, 8192), (9, 8192)]);
    // Heaps are read-write heap VMAs, sheds read-execute: never both.
    for v in &memtest.vmas {
        assert!(v.flags & 0b110 != 0b110, "W+X VMA {v:?}");
    }
    assert_eq!(
        memtest
            .vmas
            .iter()
            .filter(|v| v.kind == VmaKind::Heap)
            .count(),
        2
    );
    assert_eq!(
        memtest
            .vmas
            .iter()
            .filter(|v| v.kind == VmaKind::Shed)
            .count(),
        2
    );

    // Demand paging backs exactly the touched pages of the mapping.
    let demand = programs
        .iter()
        .find(|p| p.pid == pid_of(&programs, "demandtest"))
        .unwrap();
    let mapping = demand
        .vmas
        .iter()
        .find(|v| v.kind == VmaKind::Mmap)
        .expect("demandtest's mapping");
    assert_eq!(mapping.end - mapping.start, 64 * 4096);
    assert_eq!(mapping.resident_pages, 4, "{mapping:?}");
    let demand_faults = seen
        .faults
        .iter()
        .filter(|f| f.pid == demand.pid && (mapping.start..mapping.end).contains(&f.addr))
        .count();
    assert!(demand_faults <= 4);

    // A walk of the program's first heap shows its three keyed blocks.
    link.send(&HostMsg::HeapWalk {
        pid: memtest.pid,
        heap_id: 1,
    });
    let mut used = Vec::new();
    let end = link.wait_for("HeapWalkEnd", DEADLINE, |m| match m {
        KernelMsg::HeapBlock(b) if b.used => {
            used.push((b.key, b.size));
            None
        }
        KernelMsg::HeapWalkEnd(e) => Some(*e),
        _ => None,
    });
    assert!(end.complete, "{end:?}");
    used.sort();
    assert_eq!(used, [(1, 100), (2, 200), (3, 300)]);
    // A heap that does not exist: an empty, incomplete walk.
    link.send(&HostMsg::HeapWalk {
        pid: memtest.pid,
        heap_id: 42,
    });
    let end = link.wait_for("HeapWalkEnd", DEADLINE, |m| match m {
        KernelMsg::HeapWalkEnd(e) => Some(*e),
        _ => None,
    });
    assert_eq!((end.blocks, end.complete), (0, false));

    // One program alone.
    let (total, one) = listing(&mut link, &mut seen, i64::from(memtest.pid));
    assert_eq!((total, one.len()), (1, 1));
    assert_eq!(one[0].info.total_heap_used, 600);
    // A pid that does not exist lists nothing.
    let (total, none) = listing(&mut link, &mut seen, 999);
    assert_eq!((total, none.len()), (0, 0));
}

#[test]
fn bad_accesses_kill_the_process_and_others_keep_running() {
    let (mut qemu, mut link) = boot("proc-kill", "init=demandtest,touchkernel,touchunmapped");
    let mut seen = Seen::default();
    qemu.wait_debug_log("demandtest: touched 4 of 64");
    let (_, programs) = listing(&mut link, &mut seen, -1);
    let _ = programs;
    for (name, addr) in [
        ("touchkernel", 0xffff_8000_0000_0000u64),
        ("touchunmapped", 0x5000_0000_0000),
    ] {
        // `killed pid N (NAME): why`, once the whole line is written.
        let needle = format!("({name}): ");
        qemu.wait_debug_log(&needle);
        let line = qemu
            .debug_log()
            .lines()
            .find(|l| l.contains("killed pid") && l.contains(&needle))
            .unwrap_or_else(|| panic!("no kill of {name}"))
            .to_string();
        assert!(line.contains(&format!("{addr:#x}")), "{line}");
        assert!(line.contains("in user mode at rip 0x4"), "{line}");
        assert!(line.contains("nearest VMA"), "{line}");
    }
    // Both were reported as killed page faults and as exits by a kill.
    let killed: Vec<PageFault> = seen
        .faults
        .iter()
        .filter(|f| f.resolution == FaultResolution::Killed)
        .copied()
        .collect();
    let mut addrs: Vec<u64> = killed.iter().map(|f| f.addr).collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [0x5000_0000_0000, 0xffff_8000_0000_0000],
        "{killed:#?}"
    );
    for f in &killed {
        assert_eq!(f.error_code & 4, 4, "user-mode fault {f:?}");
        assert_eq!(f.rip >> 22, 1, "in the program's code at 0x400000: {f:?}");
        assert!(f.vma_end > f.vma_start, "nearest VMA reported: {f:?}");
        let exit = wait_exit(&mut link, &mut seen, f.pid);
        assert_eq!(exit.reason, ExitReason::Killed { vector: 14 });
        assert!(exit.frames_freed > 0);
    }
    // The kernel and the well-behaved program run on.
    let (total, programs) = listing(&mut link, &mut seen, -1);
    assert_eq!(total, 2, "{programs:#?}");
    assert!(programs.iter().any(|p| p.name == "demandtest"));
    link.send(&HostMsg::Ping { nonce: 77 });
    link.wait_for("Pong", DEADLINE, |m| {
        matches!(m, KernelMsg::Pong(p) if p.nonce == 77).then_some(())
    });
}

#[test]
fn fork_is_copy_on_write_and_the_stack_grows() {
    let (mut qemu, mut link) = boot("proc-cow", "init=cowtest,stacktest");
    let mut seen = Seen::default();
    qemu.wait_debug_log("cowtest: done child_exit=0");
    qemu.wait_debug_log("stacktest: depth=50 ok");
    let log = qemu.debug_log();
    assert!(log.contains("cowtest: parent ok"), "{log}");
    assert!(log.contains("cowtest: child ok"), "{log}");
    assert!(!log.contains("FAIL"), "{log}");
    // Let every exit (cowtest, its child, stacktest) and so every fault
    // of the programs arrive: a program logs its last line before it
    // exits, so its exit may still be on the way.
    if seen.exits.len() < 3 {
        link.wait_for("three ProcessExits", DEADLINE, |m| {
            seen.note(m);
            (seen.exits.len() >= 3).then_some(())
        });
    }
    let resolutions: Vec<FaultResolution> = seen.faults.iter().map(|f| f.resolution).collect();
    // After the fork the first writer of a shared page copies it; the other
    // side, left the frame's only user, takes it over in place.
    assert!(
        resolutions.contains(&FaultResolution::CopyOnWrite),
        "{resolutions:?}"
    );
    assert!(
        resolutions.contains(&FaultResolution::CowReuse),
        "{resolutions:?}"
    );
    assert!(
        resolutions.contains(&FaultResolution::StackGrowth),
        "{resolutions:?}"
    );
    assert!(
        !resolutions.contains(&FaultResolution::Killed),
        "{resolutions:?}"
    );
    let copies = resolutions
        .iter()
        .filter(|r| **r == FaultResolution::CopyOnWrite)
        .count();
    let reuses = resolutions
        .iter()
        .filter(|r| **r == FaultResolution::CowReuse)
        .count();
    // Each page copied by one side is left to one user on the other: a
    // reference count that was wrong would copy twice or never reuse.
    assert!(reuses <= copies, "{copies} copies, {reuses} reuses");
    let exits: Vec<_> = seen.exits.iter().map(|e| e.reason).collect();
    assert_eq!(
        exits.len(),
        3,
        "cowtest, its child and stacktest: {exits:?}"
    );
    assert!(
        exits.iter().all(|r| *r == ExitReason::Exited(0)),
        "{exits:?}"
    );
}

/// The `VM_SHARED` bit of a fault's `vma_flags`.
const VM_SHARED: u32 = 8;

/// One copy-on-write reuse, with what the host's event replay said about
/// the page right after it.
#[derive(Debug)]
struct Reuse {
    pid: u32,
    page: u64,
    /// Recorded owner of the frame each address space maps at `page`.
    holders: Vec<Option<FrameOwner>>,
}

#[test]
fn a_page_left_to_the_child_after_fork_is_recorded_as_the_childs() {
    // Events on: the host rebuilds who holds each frame (PageAlloc and
    // PageFree) and what each space maps (Map and Unmap), as a physical map
    // view would.
    let cfg = QemuConfig::with_append("init=cowtest");
    let (_qemu, mut link) = Qemu::boot("proc-cow-owner", &cfg);
    let mut owners: HashMap<u64, FrameOwner> = HashMap::new();
    let mut maps: HashMap<(u64, u64), u64> = HashMap::new();
    let mut reuses: Vec<Reuse> = Vec::new();
    let (mut exits, mut dropped) = (Vec::new(), 0);
    // The parent exits after waiting for the child: two exits end it.
    link.wait_for("both cowtest exits", DEADLINE, |m| {
        match m {
            KernelMsg::Dropped { count } => dropped += count,
            KernelMsg::PageAlloc(e) => {
                for i in 0..u64::from(e.count) {
                    owners.insert(e.addr + i * 4096, e.owner);
                }
            }
            KernelMsg::PageFree(e) => {
                for i in 0..u64::from(e.count) {
                    owners.remove(&(e.addr + i * 4096));
                }
            }
            KernelMsg::Map(e) => {
                maps.insert((e.space, e.virt), e.phys);
            }
            KernelMsg::Unmap(e) => {
                maps.remove(&(e.space, e.virt));
            }
            KernelMsg::PageFault(f)
                if f.resolution == FaultResolution::CowReuse && f.vma_flags & VM_SHARED == 0 =>
            {
                let page = f.addr & !0xfff;
                let holders = maps
                    .iter()
                    .filter(|((_, virt), _)| *virt == page)
                    .map(|(_, phys)| owners.get(phys).copied())
                    .collect();
                reuses.push(Reuse {
                    pid: f.pid,
                    page,
                    holders,
                });
            }
            KernelMsg::ProcessExit(e) => exits.push(*e),
            _ => {}
        }
        (exits.len() == 2).then_some(())
    });
    assert_eq!(dropped, 0, "the replay needs every event");
    assert!(
        exits.iter().all(|e| e.reason == ExitReason::Exited(0)),
        "{exits:?}"
    );
    // The parent waits for the child, so it exits second.
    let parent = exits[1].pid;
    // The parent runs on after fork and writes first, copying the global
    // and the mmap page; the child, left their only user, takes the frames
    // the parent allocated over in place.
    assert!(
        reuses.iter().any(|r| r.pid != parent),
        "the child reused a frame: {reuses:?}"
    );
    // Whoever reuses a private page must be recorded as its frame's holder,
    // not the process that allocated it (which maps a copy by now).
    for r in &reuses {
        assert!(
            r.holders.contains(&Some(FrameOwner::Process(r.pid))),
            "pid {} reused {:#x}, but no frame mapped there is recorded as its: {reuses:#x?}",
            r.pid,
            r.page
        );
    }
}

#[test]
fn every_frame_comes_back_after_the_programs_exit() {
    let (mut qemu, mut link) = boot(
        "proc-balance",
        "init=cowtest,stacktest,touchkernel,touchunmapped,leaker",
    );
    let mut seen = Seen::default();
    // The first MemoryStats is the picture before any program ran.
    link.wait_for("first MemoryStats", DEADLINE, |m| {
        seen.note(m);
        seen.first_stats.map(|_| ())
    });
    let before = seen.first_stats.unwrap();
    qemu.wait_debug_log("cowtest: done");
    qemu.wait_debug_log("stacktest: depth=50 ok");
    // Wait until only the kernel is left (zombies reaped).
    let start = std::time::Instant::now();
    loop {
        let (total, _) = listing(&mut link, &mut seen, -1);
        if total == 1 {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "programs still alive");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    link.send(&HostMsg::Snapshot);
    let after = link.wait_for("MemoryStats", DEADLINE, |m| match m {
        KernelMsg::MemoryStats(s) => Some(*s),
        _ => None,
    });
    assert_eq!(after.usage.process, 0, "{after:#?}");
    assert_eq!(after.usage.kernel_stack, before.usage.kernel_stack);
    assert_eq!(after.usage.page_table, before.usage.page_table);
    // The kernel heap may keep what it grew by (it does not shrink); every
    // other frame is back.
    let heap_growth = after.usage.kernel_heap - before.usage.kernel_heap;
    assert_eq!(
        after.free_frames + heap_growth,
        before.free_frames,
        "{before:#?} {after:#?}"
    );
    assert!(seen.exits.len() >= 4, "{:?}", seen.exits);
    link.send(&HostMsg::Check);
    let consistent = link.wait_for("FrameCheck", DEADLINE, |m| match m {
        KernelMsg::FrameCheck(c) => Some(c.consistent),
        _ => None,
    });
    assert!(consistent);
}

#[test]
fn hostile_system_calls_get_errors_and_the_kernel_survives() {
    let (mut qemu, mut link) = boot("proc-fuzz", "init=fuzzer");
    qemu.wait_debug_log("fuzz: calls=");
    let log = qemu.debug_log();
    let line = log.lines().find(|l| l.contains("fuzz: calls=")).unwrap();
    let field = |name: &str| -> u64 {
        let at = line.find(&format!("{name}=")).unwrap() + name.len() + 1;
        line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (calls, ok, errors) = (field("calls"), field("ok"), field("errors"));
    assert!(calls >= 1000, "{line}");
    assert_eq!(ok + errors, calls, "{line}");
    assert!(errors > calls / 4, "hostile calls are refused: {line}");
    assert!(!log.contains("PANIC"), "{log}");
    // The kernel still answers, and its memory is consistent.
    link.send(&HostMsg::Ping { nonce: 5 });
    link.wait_for("Pong", DEADLINE, |m| {
        matches!(m, KernelMsg::Pong(p) if p.nonce == 5).then_some(())
    });
    link.send(&HostMsg::Check);
    let (frames_ok, heap_ok) = (
        link.wait_for("FrameCheck", DEADLINE, |m| match m {
            KernelMsg::FrameCheck(c) => Some(c.consistent),
            _ => None,
        }),
        link.wait_for("HeapCheck", DEADLINE, |m| match m {
            KernelMsg::HeapCheck(c) => Some(c.ok),
            _ => None,
        }),
    );
    assert!(frames_ok && heap_ok);
    assert!(qemu.is_running());
}
