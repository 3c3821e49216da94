//! The memory manager in the real kernel, judged by what it reports:
//! `selftest=mm` drives the frame allocator, paging and the heaps under load
//! with deliberate mistakes, and every event must add up.

use std::collections::{BTreeMap, HashSet};

use probe_proto::{
    FrameErrorKind, FrameOwner, HeapErrorKind, HostMsg, KernelMsg, MemoryStats, PROTOCOL_VERSION,
};
use systest::{DEADLINE, EXIT_FAILURE, Qemu, QemuConfig, Telemetry};

/// Start of the kernel image's virtual range (-2 GiB).
const KERNEL_IMAGE_START: u64 = 0xFFFF_FFFF_8000_0000;
/// Owner tag of the self-test's frames (`Owner::Other(1)`).
const TEST_OWNER: FrameOwner = FrameOwner::Other(1);

/// What the host rebuilt from the event stream.
#[derive(Default, Debug)]
struct Seen {
    logs: Vec<String>,
    dropped: u64,
    /// Frames of the test owner: allocated, freed.
    test_frames: (u64, u64),
    page_allocs: u64,
    page_frees: u64,
    frame_errors: Vec<FrameErrorKind>,
    /// Maps minus unmaps, per address space.
    mapped: BTreeMap<u64, i64>,
    maps: u64,
    unmaps: u64,
    /// Live blocks per (pid, heap): address -> size.
    live: BTreeMap<(u32, u32), BTreeMap<u64, u64>>,
    heap_allocs: u64,
    heap_frees: u64,
    /// Frees of addresses no allocation handed out.
    unknown_frees: Vec<u64>,
    heap_errors: Vec<(u32, HeapErrorKind)>,
    /// Kernel-heap allocations whose caller is inside the kernel image.
    callers_in_image: u64,
    kernel_heap_allocs: u64,
}

impl Seen {
    /// Folds one message in; returns true at the self-test's last line.
    fn take(&mut self, msg: &KernelMsg<'_>) -> bool {
        match msg {
            KernelMsg::Log(l) => {
                self.logs.push(l.text.to_string());
                return l.text.starts_with("mm: done");
            }
            KernelMsg::Dropped { count } => self.dropped += count,
            KernelMsg::PageAlloc(e) => {
                self.page_allocs += 1;
                if e.owner == TEST_OWNER {
                    self.test_frames.0 += u64::from(e.count);
                }
            }
            KernelMsg::PageFree(e) => {
                self.page_frees += 1;
                if e.owner == TEST_OWNER {
                    self.test_frames.1 += u64::from(e.count);
                }
            }
            KernelMsg::FrameError(e) => self.frame_errors.push(e.kind),
            KernelMsg::Map(e) => {
                self.maps += 1;
                *self.mapped.entry(e.space).or_default() += 1;
            }
            KernelMsg::Unmap(e) => {
                self.unmaps += 1;
                *self.mapped.entry(e.space).or_default() -= 1;
            }
            KernelMsg::HeapAlloc(e) => {
                self.heap_allocs += 1;
                if (e.pid, e.heap_id) == (0, 0) {
                    self.kernel_heap_allocs += 1;
                    if e.caller >= KERNEL_IMAGE_START {
                        self.callers_in_image += 1;
                    }
                }
                let prev = self
                    .live
                    .entry((e.pid, e.heap_id))
                    .or_default()
                    .insert(e.addr, e.size);
                assert!(prev.is_none(), "{:#x} handed out twice", e.addr);
            }
            KernelMsg::HeapFree(e) => {
                self.heap_frees += 1;
                let heap = self.live.entry((e.pid, e.heap_id)).or_default();
                match heap.remove(&e.addr) {
                    Some(size) => {
                        assert_eq!(size, e.size, "free of {:#x} reports its size", e.addr)
                    }
                    None => self.unknown_frees.push(e.addr),
                }
            }
            KernelMsg::HeapError(e) => self.heap_errors.push((e.heap_id, e.kind)),
            _ => {}
        }
        false
    }
}

fn boot_selftest_mm(append: &str) -> (Qemu, Telemetry, Seen) {
    let (qemu, mut link) = Qemu::boot("mm", &QemuConfig::with_append(append));
    let mut seen = Seen::default();
    link.wait_for("the self-test's last line", DEADLINE, |m| {
        seen.take(m).then_some(())
    });
    (qemu, link, seen)
}

fn snapshot(link: &mut Telemetry) -> MemoryStats {
    link.send(&HostMsg::Snapshot);
    link.wait_for("MemoryStats", DEADLINE, |m| match m {
        KernelMsg::MemoryStats(s) => Some(*s),
        _ => None,
    })
}

#[test]
fn mm_selftest_events_balance_and_bad_frees_are_reported() {
    let (mut qemu, mut link, seen) = boot_selftest_mm("selftest=mm");
    let failed: Vec<_> = seen.logs.iter().filter(|l| l.contains("FAILED")).collect();
    assert!(failed.is_empty(), "kernel-side checks failed: {failed:#?}");
    assert!(
        seen.logs.iter().any(|l| l == "mm: done, all checks passed"),
        "{:#?}",
        seen.logs
    );
    assert_eq!(
        seen.dropped, 0,
        "the self-test drains the link: no event lost"
    );
    eprintln!(
        "events: {} page allocs, {} page frees, {} maps, {} unmaps, {} heap allocs, {} heap frees",
        seen.page_allocs,
        seen.page_frees,
        seen.maps,
        seen.unmaps,
        seen.heap_allocs,
        seen.heap_frees
    );

    // Frames: every test frame came back; the three bad frees were refused.
    let (taken, returned) = seen.test_frames;
    assert!(taken > 1000 + 64 + 64, "took {taken} test frames");
    assert_eq!(taken, returned, "test frames taken and returned balance");
    assert_eq!(
        seen.frame_errors,
        [
            FrameErrorKind::DoubleFree,
            FrameErrorKind::Reserved,
            FrameErrorKind::Unaligned
        ]
    );

    // Mappings: the process space is left with nothing mapped; the kernel
    // space keeps exactly its heap pages.
    let stats = snapshot(&mut link);
    let user_spaces: Vec<_> = seen
        .mapped
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(s, _)| *s)
        .collect();
    assert!(
        !user_spaces.is_empty(),
        "a space whose pages were all unmapped: {:?}",
        seen.mapped
    );
    let kernel_mapped: i64 = seen.mapped.values().sum();
    assert_eq!(
        kernel_mapped as u64,
        (stats.kernel_heap.region_bytes) / 4096,
        "pages still mapped are the kernel heap's"
    );

    // Heaps: nothing left allocated, every free matched an allocation.
    assert!(
        seen.unknown_frees.is_empty(),
        "frees of unknown blocks: {:x?}",
        seen.unknown_frees
    );
    for (heap, blocks) in &seen.live {
        assert!(blocks.is_empty(), "heap {heap:?} still holds {blocks:x?}");
    }
    assert!(
        seen.live.len() >= 2,
        "the kernel heap and a further heap: {:?}",
        seen.live.keys()
    );
    assert!(
        seen.kernel_heap_allocs > 2000,
        "{} kernel-heap allocations",
        seen.kernel_heap_allocs
    );
    assert!(
        seen.callers_in_image * 10 >= seen.kernel_heap_allocs * 9,
        "callers recorded for {} of {} allocations",
        seen.callers_in_image,
        seen.kernel_heap_allocs
    );
    assert_eq!(
        seen.heap_errors,
        [
            (0, HeapErrorKind::InvalidPointer),
            (0, HeapErrorKind::DoubleFree),
            (0, HeapErrorKind::RedZoneOverflow { offset: 40 }),
        ]
    );

    // The kernel's own counters agree with the stream.
    let c = stats.counters;
    assert_eq!(c.page_allocs, seen.page_allocs, "page allocs");
    assert_eq!(c.page_frees, seen.page_frees, "page frees");
    assert_eq!(c.maps, seen.maps, "maps");
    assert_eq!(c.unmaps, seen.unmaps, "unmaps");
    assert_eq!(c.heap_allocs, seen.heap_allocs, "heap allocs");
    assert_eq!(c.heap_frees, seen.heap_frees, "heap frees");
    assert_eq!(c.heap_errors, 3);
    assert_eq!(c.frame_errors, 3);
    assert_eq!(stats.usage.other, 0, "no test frame still held");
    assert_eq!(stats.kernel_heap.used_blocks, 0);
    assert_eq!(
        stats.free_frames, stats.usage.free,
        "free count equals the frames with no owner"
    );

    // The structures are intact after the bad frees.
    link.send(&HostMsg::Check);
    let frames = link.wait_for("FrameCheck", DEADLINE, |m| match m {
        KernelMsg::FrameCheck(c) => Some(*c),
        _ => None,
    });
    assert!(frames.consistent, "{frames:?}");
    assert_eq!(frames.free_counted, frames.free_recorded);
    let heap = link.wait_for("HeapCheck", DEADLINE, |m| match m {
        KernelMsg::HeapCheck(c) => Some(*c),
        _ => None,
    });
    assert!(heap.ok, "{heap:?}");
    assert_eq!(heap.error, None);

    // A walk of the kernel heap agrees with its statistics.
    link.send(&HostMsg::HeapWalk { pid: 0, heap_id: 0 });
    let mut blocks = Vec::new();
    let end = link.wait_for("HeapWalkEnd", DEADLINE, |m| match m {
        KernelMsg::HeapBlock(b) => {
            blocks.push(*b);
            None
        }
        KernelMsg::HeapWalkEnd(e) => Some(*e),
        _ => None,
    });
    assert!(end.complete);
    assert_eq!(end.blocks, blocks.len() as u64);
    assert_eq!(blocks.len() as u64, heap.stats.total_blocks);
    assert_eq!(
        blocks.iter().filter(|b| b.used).count() as u64,
        heap.stats.used_blocks
    );
    let addrs: HashSet<u64> = blocks.iter().map(|b| b.addr).collect();
    assert_eq!(addrs.len(), blocks.len(), "each block once");
    assert!(
        blocks.windows(2).all(|w| w[0].addr < w[1].addr),
        "in address order"
    );

    // And the kernel keeps running.
    link.send(&HostMsg::Ping { nonce: 77 });
    link.wait_for("Pong", DEADLINE, |m| match m {
        KernelMsg::Pong(p) if p.nonce == 77 => Some(()),
        _ => None,
    });
    assert!(qemu.is_running());
}

#[test]
fn with_memevents_off_only_the_counters_count() {
    let (_qemu, mut link, seen) = boot_selftest_mm("selftest=mm memevents=0");
    assert!(
        seen.logs.iter().any(|l| l == "mm: done, all checks passed"),
        "{:#?}",
        seen.logs
    );
    assert_eq!(
        seen.heap_allocs + seen.page_allocs + seen.maps,
        0,
        "no event frames"
    );
    let stats = snapshot(&mut link);
    assert!(stats.counters.heap_allocs > 2000, "{:?}", stats.counters);
    assert_eq!(stats.counters.heap_allocs, stats.counters.heap_frees);
    assert_eq!(stats.counters.heap_errors, 3);
}

#[test]
fn late_host_gets_memory_stats_with_hello() {
    let (_qemu, mut link) = Qemu::boot("mm-late", &QemuConfig::default().no_wait());
    link.resync();
    let stats = link.wait_for("MemoryStats after Resync", DEADLINE, |m| match m {
        KernelMsg::MemoryStats(s) => Some(*s),
        _ => None,
    });
    assert_eq!(
        stats.total_frames, 32639,
        "128 MiB of RAM less the firmware holes"
    );
    let u = stats.usage;
    let owned = u.free
        + u.reserved
        + u.kernel_image
        + u.boot_info
        + u.bitmap
        + u.kernel_heap
        + u.kernel_stack
        + u.page_table
        + u.process
        + u.other;
    assert_eq!(
        owned, stats.total_frames,
        "every RAM frame has one owner class: {u:?}"
    );
    assert!(u.kernel_heap >= 16, "the kernel heap's first 64 KiB: {u:?}");
    assert!(u.page_table >= 256, "the kernel half's tables: {u:?}");
    assert_eq!(PROTOCOL_VERSION.major, 2);
}

/// Boots into `selftest` and returns the exception it reports.
fn fault_of(selftest: &str) -> probe_proto::Exception {
    let cfg = QemuConfig::with_append(format!("selftest={selftest}"));
    let (mut qemu, mut link) = Qemu::boot(selftest, &cfg);
    let paging = link.wait_for("the paging log line", DEADLINE, |m| match m {
        KernelMsg::Log(l) if l.text.starts_with("paging:") => Some(l.text.to_string()),
        _ => None,
    });
    assert!(paging.ends_with(" 0 writable+executable"), "{paging}");
    let exc = link.wait_for("Exception", DEADLINE, |m| match m {
        KernelMsg::Exception(e) => Some(*e),
        _ => None,
    });
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
    exc
}

/// Page-fault error code bits.
const PF_PRESENT: u64 = 1;
const PF_WRITE: u64 = 1 << 1;
const PF_FETCH: u64 = 1 << 4;

/// Boots into `selftest` and returns the page fault it reports, checked to
/// have the error code bits `bits` set.
fn page_fault_of(selftest: &str, bits: u64) -> probe_proto::Exception {
    let e = fault_of(selftest);
    assert_eq!(e.vector, 14);
    assert_eq!(e.error_code & bits, bits);
    e
}

#[test]
fn writing_kernel_text_faults() {
    let e = page_fault_of("write-text", PF_PRESENT | PF_WRITE);
    assert!(e.cr2 >= KERNEL_IMAGE_START, "cr2 {:#x}", e.cr2);
}

#[test]
fn executing_kernel_data_faults() {
    let e = page_fault_of("exec-data", PF_PRESENT | PF_FETCH);
    assert_eq!(e.cr2, e.rip, "the fetch itself faulted");
}

#[test]
fn stack_overflow_hits_the_guard_page_and_is_named_so() {
    let cfg = QemuConfig::with_append("selftest=stack-overflow");
    let (mut qemu, mut link) = Qemu::boot("stack-overflow", &cfg);
    let e = link.wait_for("Exception", DEADLINE, |m| match m {
        KernelMsg::Exception(e) => Some(*e),
        _ => None,
    });
    assert_eq!(e.vector, 8, "double fault on its own stack: {e:?}");
    let message = link.wait_for("Panic", DEADLINE, |m| match m {
        KernelMsg::Panic(p) => Some(p.message.to_string()),
        _ => None,
    });
    assert!(
        message.starts_with("kernel stack overflow: the boot task ran off its stack "),
        "{message}"
    );
    assert!(message.contains("into the guard page at 0x"), "{message}");
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
}

#[test]
fn exhausted_memory_is_refused_cleanly_and_dropped_events_are_counted() {
    let (mut qemu, mut link) = Qemu::boot("oom", &QemuConfig::with_append("selftest=oom"));
    let (mut page_allocs, mut dropped) = (0u64, 0u64);
    let done = link.wait_for("oom: done", DEADLINE, |m| match m {
        KernelMsg::PageAlloc(_) => {
            page_allocs += 1;
            None
        }
        KernelMsg::Dropped { count } => {
            dropped += count;
            None
        }
        KernelMsg::Log(l) if l.text.starts_with("oom: done") => Some(l.text.to_string()),
        _ => None,
    });
    assert_eq!(done, "oom: done, all checks passed");
    let stats = snapshot(&mut link);
    eprintln!(
        "{} page allocs counted, {page_allocs} received, {dropped} messages dropped",
        stats.counters.page_allocs
    );
    // Whether the ring overflows depends on how fast the host drains the
    // UART; either way nothing may go missing unaccounted.
    assert!(page_allocs <= stats.counters.page_allocs);
    assert!(
        page_allocs + dropped >= stats.counters.page_allocs,
        "every page alloc was either received or counted as dropped"
    );
    assert!(stats.counters.frame_errors >= 2, "{:?}", stats.counters);
    assert_eq!(stats.usage.other, 0, "every frame came back");
    link.send(&HostMsg::Check);
    let frames = link.wait_for("FrameCheck", DEADLINE, |m| match m {
        KernelMsg::FrameCheck(c) => Some(*c),
        _ => None,
    });
    assert!(frames.consistent, "{frames:?}");
    assert!(qemu.is_running());
}
