//! `mmtop` against the real kernel, the way `make run` uses it: QEMU's
//! guest runs before mmtop attaches, and mmtop must still show the `Hello`.

use systest::{Qemu, QemuConfig, run_mmtop};

#[test]
fn mmtop_log_attached_late_shows_hello_memory_map_and_heartbeat() {
    let cfg = QemuConfig {
        mem_mib: 256,
        ..Default::default()
    };
    // The guest gets past its boot Hello (sent to nobody), so only mmtop's
    // Resync can bring one.
    let qemu = Qemu::start_up("mmtop-log", cfg);
    let addr = qemu.com1_address();
    let (code, out, err) = run_mmtop(&[
        "log",
        "--connect",
        &addr,
        "--json",
        "--count",
        "12",
        "--timeout",
        "60",
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let at = lines
        .iter()
        .position(|v| v["type"] == "hello")
        .expect("a hello line");
    let hello = &lines[at];
    assert_eq!(hello["mem_total_bytes"], 256u64 << 20);
    let regions = lines[at..]
        .iter()
        .filter(|v| v["type"] == "mem_region")
        .count();
    assert_eq!(regions as u64, hello["nr_regions"].as_u64().unwrap());
    assert!(lines.iter().any(|v| v["type"] == "heartbeat"), "{out}");
    assert!(
        lines[at..].iter().any(|v| v["type"] == "memory_stats"),
        "a late host gets the memory picture with the Hello: {out}"
    );
}

#[test]
fn mmtop_ping_gets_pong_from_the_kernel() {
    let (_qemu, addr) = booted("mmtop-ping", "");
    let (code, out, err) = run_mmtop(&["ping", "--connect", &addr, "--timeout", "30"]);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(out.contains("pong from"), "{out}");
}

/// Boots with `append`, waits until the kernel is up, returns its COM1.
fn booted(name: &str, append: &str) -> (Qemu, String) {
    let qemu = Qemu::start_up(name, QemuConfig::with_append(append));
    let addr = qemu.com1_address();
    (qemu, addr)
}

/// Runs `mmtop COMMAND -c ADDR --json -t 60`, which must succeed, and gives
/// the one JSON object it prints.
fn mmtop_json(command: &str, addr: &str) -> serde_json::Value {
    let (code, out, err) = run_mmtop(&[command, "-c", addr, "--json", "-t", "60"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    serde_json::from_str(out.trim()).expect("one JSON object")
}

#[test]
fn mmtop_check_passes_on_a_healthy_kernel() {
    let (_qemu, addr) = booted("mmtop-check", "");
    let v = mmtop_json("check", &addr);
    assert_eq!(v["frame_check"]["consistent"], true, "{v}");
    assert_eq!(v["heap_check"]["ok"], true, "{v}");
    assert_eq!(
        v["frame_check"]["free_counted"],
        v["frame_check"]["free_recorded"]
    );
}

#[test]
fn mmtop_check_exits_4_when_the_bitmap_is_damaged() {
    let (mut qemu, addr) = booted("mmtop-check-bad", "selftest=corrupt-bitmap");
    qemu.wait_debug_log("skewed by one on purpose");
    let (code, out, err) = run_mmtop(&["check", "-c", &addr, "-t", "60"]);
    assert_eq!(code, 4, "stdout: {out}\nstderr: {err}");
    assert!(qemu.is_running(), "the kernel keeps running");
}

#[test]
fn mmtop_stats_reports_frames_by_owner() {
    let (_qemu, addr) = booted("mmtop-stats", "");
    let v = mmtop_json("stats", &addr);
    assert_eq!(v["type"], "memory_stats", "{v}");
    assert_eq!(
        v["total_frames"], 32639,
        "128 MiB less the firmware holes: {v}"
    );
    assert!(v["usage"]["page_table"].as_u64().unwrap() >= 256, "{v}");
    let (code, out, _) = run_mmtop(&["stats", "-c", &addr, "-t", "60"]);
    assert_eq!(code, 0);
    assert!(out.contains("page"), "human table names owners: {out}");
}
