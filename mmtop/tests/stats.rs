//! End to end: `mmtop stats` against a fake kernel on a unix socket.

mod common;

use std::io::Write;

use common::memory::{STATS_TABLE, memory_stats};
use common::*;
use probe_proto::{HostMsg, KernelMsg};
use serde_json::Value;

/// Runs `mmtop stats ARGS...` against a kernel that answers the snapshot
/// request after some unrelated telemetry.
fn run(args: &[&str]) -> Output {
    let (_dir, mmtop, mut kernel, _) = start_request("stats", args);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Snapshot);
    let mut bytes = frame(&boot_messages()[3]);
    bytes.extend(frame(&KernelMsg::MemoryStats(memory_stats())));
    kernel.write_all(&bytes).unwrap();
    let out = mmtop.finish();
    drop(kernel);
    out
}

#[test]
fn stats_prints_frames_by_owner_the_kernel_heap_and_the_counters() {
    let out = run(&[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, STATS_TABLE);
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
    let (_dir, mmtop, mut kernel, addr) = start_request("stats", &["-t", "0.5"]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Snapshot);
    let out = mmtop.finish();
    drop(kernel);
    assert!(out.stdout.is_empty());
    out.assert_no_answer("MemoryStats", &addr);
}
