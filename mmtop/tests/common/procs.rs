//! A process listing as the kernel sends it in answer to
//! `HostMsg::Processes`: the kernel (pid 0) and `memtest` (pid 1, two heaps
//! and two sheds). Shared by mmtop's unit tests (included by path) and its
//! end-to-end tests, so both check the same numbers.
#![allow(dead_code)] // Each user takes a different subset.

use probe_proto::{
    KernelMsg, Leak, ProcState, ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma,
    VmaKind,
};

/// The pid of `memtest` in the listing.
pub const MEMTEST_PID: u32 = 1;

/// When the listing was taken (microseconds since boot).
pub const LISTED_AT_US: u64 = 2_500_000;

/// The kernel's row: one heap, no sheds, no VMAs.
pub fn kernel_info() -> ProcessInfo<'static> {
    ProcessInfo {
        ts_us: LISTED_AT_US,
        pid: 0,
        parent: 0,
        name: "kernel".into(),
        state: ProcState::Kernel,
        nr_heaps: 1,
        nr_sheds: 0,
        nr_vmas: 0,
        total_heap_size: 65_536,
        total_heap_used: 1_536,
        total_heap_free: 64_000,
        total_shed_size: 0,
        resident_frames: 16,
        page_table_frames: 263,
    }
}

/// The kernel heap.
pub fn kernel_heaps() -> Vec<ProcessHeap> {
    vec![ProcessHeap {
        pid: 0,
        heap_id: 0,
        start: 0xffff_8000_0010_0000,
        heap_size: 65_536,
        heap_used: 1_536,
        heap_free: 64_000,
        used_blocks: 9,
        largest_free: 40_960,
    }]
}

/// `memtest`'s row: heaps 1 (600 bytes in 3 blocks) and 7 (empty), sheds 1
/// and 9 of 8 KiB, seven VMAs.
pub fn memtest_info() -> ProcessInfo<'static> {
    ProcessInfo {
        ts_us: LISTED_AT_US,
        pid: MEMTEST_PID,
        parent: 0,
        name: "memtest".into(),
        state: ProcState::Sleeping,
        nr_heaps: 2,
        nr_sheds: 2,
        nr_vmas: 7,
        total_heap_size: 131_072,
        total_heap_used: 600,
        total_heap_free: 130_472,
        total_shed_size: 16_384,
        resident_frames: 10,
        page_table_frames: 4,
    }
}

pub fn memtest_heaps() -> Vec<ProcessHeap> {
    vec![
        ProcessHeap {
            pid: MEMTEST_PID,
            heap_id: 1,
            start: 0x1000_0000,
            heap_size: 65_536,
            heap_used: 600,
            heap_free: 64_936,
            used_blocks: 3,
            largest_free: 64_888,
        },
        ProcessHeap {
            pid: MEMTEST_PID,
            heap_id: 7,
            start: 0x1001_0000,
            heap_size: 65_536,
            heap_used: 0,
            heap_free: 65_536,
            used_blocks: 0,
            largest_free: 65_520,
        },
    ]
}

pub fn memtest_sheds() -> Vec<ProcessShed> {
    vec![
        ProcessShed {
            pid: MEMTEST_PID,
            shed_id: 1,
            start: 0x2000_0000,
            shed_size: 8_192,
        },
        ProcessShed {
            pid: MEMTEST_PID,
            shed_id: 9,
            start: 0x2000_2000,
            shed_size: 8_192,
        },
    ]
}

pub fn memtest_vmas() -> Vec<ProcessVma> {
    let vma = |start, end, flags, kind, resident_pages| ProcessVma {
        pid: MEMTEST_PID,
        start,
        end,
        flags,
        kind,
        resident_pages,
    };
    vec![
        vma(0x40_0000, 0x40_2000, 0b101, VmaKind::Code, 2),
        vma(0x40_2000, 0x40_3000, 0b011, VmaKind::Data, 1),
        vma(0x1000_0000, 0x1001_0000, 0b011, VmaKind::Heap, 1),
        vma(0x1001_0000, 0x1002_0000, 0b011, VmaKind::Heap, 1),
        vma(0x2000_0000, 0x2000_2000, 0b001, VmaKind::Shed, 2),
        vma(0x2000_2000, 0x2000_4000, 0b001, VmaKind::Shed, 2),
        // Read, write, grows down.
        vma(
            0x7fff_fffe_f000,
            0x7fff_ffff_f000,
            0b10_0011,
            VmaKind::Stack,
            1,
        ),
    ]
}

/// What the kernel reports when `memtest` exits with two blocks (300
/// bytes) of heap 1 still allocated under key 0xabc.
pub fn memtest_leak(ts_us: u64) -> Leak {
    Leak {
        ts_us,
        pid: MEMTEST_PID,
        heap_id: 1,
        key: 0xabc,
        blocks: 2,
        bytes: 300,
        first_addr: 0x1000_0010,
        oldest_age_ms: Some(1500),
    }
}

/// One program's messages in wire order: its row, heaps, sheds, VMAs.
pub fn program_msgs(
    info: ProcessInfo<'static>,
    heaps: Vec<ProcessHeap>,
    sheds: Vec<ProcessShed>,
    vmas: Vec<ProcessVma>,
) -> Vec<KernelMsg<'static>> {
    let mut msgs = vec![KernelMsg::ProcessInfo(info)];
    msgs.extend(heaps.into_iter().map(KernelMsg::ProcessHeap));
    msgs.extend(sheds.into_iter().map(KernelMsg::ProcessShed));
    msgs.extend(vmas.into_iter().map(KernelMsg::ProcessVma));
    msgs
}

pub fn kernel_msgs() -> Vec<KernelMsg<'static>> {
    program_msgs(kernel_info(), kernel_heaps(), vec![], vec![])
}

/// `memtest`'s messages, its row first changed by `edit` (to make it
/// disagree with its parts, say).
pub fn memtest_msgs_with(edit: impl FnOnce(&mut ProcessInfo<'static>)) -> Vec<KernelMsg<'static>> {
    let mut info = memtest_info();
    edit(&mut info);
    program_msgs(info, memtest_heaps(), memtest_sheds(), memtest_vmas())
}

pub fn memtest_msgs() -> Vec<KernelMsg<'static>> {
    memtest_msgs_with(|_| {})
}

pub fn list_end(total_programs: u32, complete: bool) -> KernelMsg<'static> {
    KernelMsg::ProcessListEnd(ProcessListEnd {
        ts_us: LISTED_AT_US + 100,
        total_programs,
        complete,
    })
}

/// The answer to `Processes { pid: -1 }`, `memtest`'s row changed by `edit`.
pub fn full_listing_with(edit: impl FnOnce(&mut ProcessInfo<'static>)) -> Vec<KernelMsg<'static>> {
    let mut msgs = kernel_msgs();
    msgs.extend(memtest_msgs_with(edit));
    msgs.push(list_end(2, true));
    msgs
}

/// The answer to `Processes { pid: -1 }`.
pub fn full_listing() -> Vec<KernelMsg<'static>> {
    full_listing_with(|_| {})
}

/// The answer to `Processes { pid: MEMTEST_PID }`, its row changed by `edit`.
pub fn memtest_listing_with(
    edit: impl FnOnce(&mut ProcessInfo<'static>),
) -> Vec<KernelMsg<'static>> {
    let mut msgs = memtest_msgs_with(edit);
    msgs.push(list_end(1, true));
    msgs
}

/// The answer to `Processes { pid: MEMTEST_PID }`.
pub fn memtest_listing() -> Vec<KernelMsg<'static>> {
    memtest_listing_with(|_| {})
}

/// The answer to `Processes { pid }` for a pid that does not exist.
pub fn no_such_process_listing() -> Vec<KernelMsg<'static>> {
    vec![list_end(0, true)]
}

/// `mmtop ps` for [`full_listing`].
pub const PS_TABLE: &str = "\
PID  NAME     STATE     HEAPS  HEAP SIZE    USED      FREE  SHEDS  SHED SIZE  RSS  VMAS
  0  kernel   kernel        1    64.0KiB  1.5KiB   62.5KiB      0         0B   64     0
  1  memtest  sleeping      2   128.0KiB    600B  127.4KiB      2    16.0KiB   40     7
";

/// What `mmtop ps --pid 1` prints for `memtest` after its row.
pub const MEMTEST_DETAILS: &str = "\
pid 1 memtest (parent 0): 40.0KiB resident (10 frames), 4 page-table frames

heaps
  ID  START          SIZE  USED     FREE  USED BLOCKS  LARGEST FREE
   1  0x10000000  64.0KiB  600B  63.4KiB            3       63.4KiB
   7  0x10010000  64.0KiB    0B  64.0KiB            0       64.0KiB

sheds
  ID  START         SIZE
   1  0x20000000  8.0KiB
   9  0x20002000  8.0KiB

maps
  ADDRESS                    PERMS           KIND   RESIDENT
  00400000-00402000          r-xp            code     8.0KiB
  00402000-00403000          rw-p            data     4.0KiB
  10000000-10010000          rw-p            heap     4.0KiB
  10010000-10020000          rw-p            heap     4.0KiB
  20000000-20002000          r--p            shed     8.0KiB
  20002000-20004000          r--p            shed     8.0KiB
  7ffffffef000-7ffffffff000  rw-p+growsdown  stack    4.0KiB
";

/// The `checkMemory` object of [`full_listing`]: exactly these keys at
/// every level.
pub fn full_listing_check_memory() -> serde_json::Value {
    serde_json::json!({
        "totalPrograms": 2,
        "programs": [
            {
                "pid": 0,
                "programName": "kernel",
                "heaps": [
                    {"heapId": 0, "heapSize": 65_536, "heapUsed": 1_536, "heapFree": 64_000}
                ],
                "sheds": [],
                "totalHeapSize": 65_536,
                "totalHeapUsed": 1_536,
                "totalHeapFree": 64_000,
                "totalShedSize": 0
            },
            {
                "pid": 1,
                "programName": "memtest",
                "heaps": [
                    {"heapId": 1, "heapSize": 65_536, "heapUsed": 600, "heapFree": 64_936},
                    {"heapId": 7, "heapSize": 65_536, "heapUsed": 0, "heapFree": 65_536}
                ],
                "sheds": [
                    {"shedId": 1, "shedSize": 8_192},
                    {"shedId": 9, "shedSize": 8_192}
                ],
                "totalHeapSize": 131_072,
                "totalHeapUsed": 600,
                "totalHeapFree": 130_472,
                "totalShedSize": 16_384
            }
        ]
    })
}
