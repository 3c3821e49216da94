//! The kernel leak scan's cost, and what recording call sites costs the
//! kernel heap, in one run.
//!
//! It boots the kernel (`$KERNEL_ELF`, else `target/kernel.elf`; `make
//! bench` builds it) in QEMU (TCG) twice with `selftest=kleak-load`, which
//! builds 4 MiB of kernel-heap blocks reachable only through one another
//! and times 100,000 `kmalloc`/`kfree` pairs in the kernel:
//!
//! - with call sites recorded (the default): [`ROUNDS`] scans over COM1,
//!   each timed by the kernel, the median counting, as milliseconds per
//!   MiB of live kernel heap (goal: under 50 under TCG);
//! - with `callsites=0`: the same pairs, for the ratio of the heap's
//!   operations per second with recording on to off (three boots of each,
//!   alternating, the best of each counting).
//!
//! Run with `cargo bench -p bench --bench kleak`.

use std::process::Command;
use std::sync::Mutex;

use probe_proto::{HostMsg, KernelMsg, LeakScanEnd, LeakScanStatus};
use systest::{DEADLINE, Qemu, QemuConfig};

/// Scans timed; the median counts.
const ROUNDS: usize = 7;
/// Boots with call sites on and off each, alternating.
const BOOTS: usize = 3;

/// QEMUs this process started: killed by PID if the bench panics.
static QEMU_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// The number after `key` in the line of `log` that contains `key`.
fn logged_number(log: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("no {key:?} in the kernel log:\n{log}"));
    let rest = &line[line.find(key).expect("found") + key.len()..];
    rest.split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number after {key:?} in {line:?}"))
}

/// Boots `selftest=kleak-load` with `extra` options; the kernel's time for
/// its pairs (µs), the live heap (bytes) and the QEMU.
fn boot(extra: &str) -> (u64, u64, Qemu) {
    let cfg = QemuConfig::with_append(format!("selftest=kleak-load memevents=0 {extra}")).no_wait();
    let mut qemu = Qemu::start("bench-kleak", &cfg);
    QEMU_PIDS.lock().expect("pid list").push(qemu.pid());
    qemu.wait_debug_log("kleak-load: ready");
    let log = qemu.debug_log();
    let us = logged_number(&log, "kmalloc/kfree pairs in");
    let live = logged_number(&log, "kleak-load: ready,");
    (us, live, qemu)
}

fn main() {
    std::panic::set_hook(Box::new(move |info| {
        for pid in QEMU_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        eprintln!("{info}");
    }));
    let (on_us, live, mut qemu) = boot("");
    let mut link = qemu.connect_telemetry();
    let mut scans: Vec<LeakScanEnd> = (0..ROUNDS)
        .map(|_| {
            link.send(&HostMsg::LeakScan { min_age_ms: 0 });
            link.wait_for("LeakScanEnd", DEADLINE, |m| match m {
                KernelMsg::LeakScanEnd(e) => Some(*e),
                _ => None,
            })
        })
        .collect();
    drop(link);
    drop(qemu);
    // Alternate the two settings, the best of each counting: the kernel
    // times itself in wall-clock time, which host load stretches.
    let mut on_us = on_us;
    let mut off_us = u64::MAX;
    for round in 0..BOOTS {
        if round > 0 {
            on_us = on_us.min(boot("").0);
        }
        off_us = off_us.min(boot("callsites=0").0);
    }

    for s in &scans {
        assert_eq!(s.status, LeakScanStatus::Done);
        assert_eq!(s.leaks, 0, "the load is all reachable: {s:?}");
    }
    scans.sort_by_key(|s| s.duration_us);
    let median = scans[ROUNDS / 2];
    let mib = live as f64 / (1 << 20) as f64;
    let ms = median.duration_us as f64 / 1000.0;
    println!(
        "{:<44} {:>10} {:>10} {:>10}",
        "kernel leak scan (TCG)", "ms", "ms/MiB", "goal"
    );
    println!(
        "{:<44} {:>10.1} {:>10.1} {:>10}",
        format!(
            "{:.1} MiB live, {} blocks, {} KiB read",
            mib,
            median.blocks,
            median.scanned_bytes / 1024
        ),
        ms,
        ms / mib,
        "< 50"
    );
    println!(
        "  (fastest {:.1} ms, slowest {:.1} ms of {ROUNDS})",
        scans[0].duration_us as f64 / 1000.0,
        scans[ROUNDS - 1].duration_us as f64 / 1000.0
    );
    let pairs = 100_000.0;
    let per_s = |us: u64| pairs * 2.0 / (us as f64 / 1e6);
    println!();
    println!(
        "{:<44} {:>12} {:>10}",
        "kmalloc/kfree in the kernel (TCG)", "ops/s", "vs off"
    );
    println!(
        "{:<44} {:>12.0} {:>10.3}",
        "call sites recorded (default)",
        per_s(on_us),
        per_s(on_us) / per_s(off_us)
    );
    println!(
        "{:<44} {:>12.0} {:>10.3}",
        "callsites=0",
        per_s(off_us),
        1.0
    );
}
