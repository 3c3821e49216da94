//! End to end: `mmtop stats` against a fake kernel on a unix socket.

mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;

use common::*;
use probe_proto::{
    EventCounters, FrameUsage, HeapStats, HostMsg, KernelMsg, MemoryStats, PROTOCOL_VERSION,
};
use serde_json::Value;

fn snapshot() -> MemoryStats {
    MemoryStats {
        ts_us: 1_500_000,
        total_frames: 32_768,
        free_frames: 30_000,
        usage: FrameUsage {
            free: 30_000,
            unusable: 0,
            reserved: 256,
            kernel_image: 512,
            boot_info: 4,
            bitmap: 2,
            kernel_heap: 16,
            kernel_stack: 8,
            page_table: 6,
            process: 1960,
            other: 4,
        },
        kernel_heap: HeapStats {
            pid: 0,
            heap_id: 0,
            region_bytes: 64 << 10,
            max_bytes: 1 << 30,
            used_bytes: 1536,
            free_bytes: 60 << 10,
            overhead_bytes: 256,
            total_blocks: 12,
            used_blocks: 9,
            free_blocks: 3,
            largest_free: 40 << 10,
        },
        counters: EventCounters {
            page_allocs: 10,
            page_frees: 2,
            maps: 5,
            unmaps: 0,
            heap_allocs: 100,
            heap_frees: 90,
            heap_errors: 1,
            frame_errors: 0,
        },
    }
}

/// Runs `mmtop stats ARGS...` against a kernel that answers the snapshot
/// request after some unrelated telemetry.
fn run(args: &[&str]) -> Output {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut all = vec!["stats", "--connect", &addr];
    all.extend(args);
    let mut mmtop = Mmtop::spawn(&all);
    let mut kernel = accept_unix(&listener, &mut mmtop);
    answer_resync(&mut kernel, PROTOCOL_VERSION);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Snapshot);
    let mut bytes = frame(&boot_messages()[3]);
    bytes.extend(frame(&KernelMsg::MemoryStats(snapshot())));
    kernel.write_all(&bytes).unwrap();
    let out = mmtop.finish();
    drop(kernel);
    out
}

#[test]
fn stats_prints_frames_by_owner_the_kernel_heap_and_the_counters() {
    let out = run(&[]);
    assert_eq!(out.code(), 0, "{out:?}");
    let expected = "\
memory at t=1.500000s: 32768 frames (128.0MiB), 30000 free (117.2MiB)

frames by owner       frames       MiB
  free                 30000     117.2
  unusable                 0       0.0
  reserved               256       1.0
  kernel image           512       2.0
  boot info                4       0.0
  bitmap                   2       0.0
  kernel heap             16       0.1
  kernel stack             8       0.0
  page table               6       0.0
  process               1960       7.7
  other                    4       0.0
  total                32768     128.0

kernel heap kernel#0
  region       64.0KiB (max 1.0GiB)
  used          1.5KiB in 9 blocks
  free         60.0KiB in 3 blocks, largest 40.0KiB
  overhead        256B

events since boot
  page allocs           10    page frees             2
  maps                   5    unmaps                 0
  heap allocs          100    heap frees            90
  heap errors            1    frame errors           0
";
    assert_eq!(out.stdout, expected);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn stats_json_is_the_memory_stats_object() {
    let out = run(&["--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(got["type"], "memory_stats");
    assert_eq!(got["total_frames"], 32_768);
    assert_eq!(got["free_frames"], 30_000);
    assert_eq!(got["usage"]["kernel_image"], 512);
    assert_eq!(got["usage"]["process"], 1960);
    assert_eq!(got["kernel_heap"]["used_bytes"], 1536);
    assert_eq!(got["kernel_heap"]["largest_free"], 40 << 10);
    assert_eq!(got["counters"]["heap_allocs"], 100);
    assert_eq!(got["counters"]["heap_errors"], 1);
}

#[test]
fn stats_exits_1_when_no_snapshot_arrives_in_time() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["stats", "--connect", &addr, "-t", "0.5"]);
    let mut kernel = accept_unix(&listener, &mut mmtop);
    answer_resync(&mut kernel, PROTOCOL_VERSION);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Snapshot);
    let out = mmtop.finish();
    drop(kernel);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .starts_with(&format!("mmtop: no MemoryStats from {addr} within")),
        "{}",
        out.stderr
    );
}
