//! The kernel leak scan against the real kernel: `selftest=kleak` makes
//! leaks (logged `leaked: addr=0x... size=N`) and blocks that stay
//! reachable from a static, from another block, through an interior
//! pointer and from a static `Vec` (logged `kept: ...`). `mmtop leaks
//! --scan` must report exactly the leaked blocks, named by their call
//! sites, new on the first scan and confirmed on the next; on the demo
//! workload, scans over a minute must report nothing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;
use systest::{LoggedLine, Qemu, QemuConfig, kernel_elf, run_mmtop};

/// `(addr, size)` of each `PREFIX addr=0x... size=N` line of the log.
fn logged(log: &str, prefix: &str) -> BTreeSet<(u64, u64)> {
    LoggedLine::all(log, prefix)
        .iter()
        .map(|l| (l.number("addr="), l.number("size=")))
        .collect()
}

/// Runs `mmtop leaks --scan --json` with `extra` arguments; the exit code
/// and the kernel part of the report.
fn scan(addr: &str, extra: &[&str]) -> (i32, Value) {
    let elf = kernel_elf();
    let mut args = vec!["leaks", "--scan", "--json", "-c", addr, "--elf"];
    args.push(elf.to_str().unwrap());
    args.extend_from_slice(extra);
    let (code, out, err) = run_mmtop(&args);
    let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?} {err}"));
    assert!(got["processes"].as_array().unwrap().is_empty(), "{got}");
    (code, got["kernel"].clone())
}

fn leaks_of(kernel: &Value) -> Vec<&Value> {
    kernel["leaks"].as_array().unwrap().iter().collect()
}

#[test]
fn the_scan_reports_exactly_the_injected_leaks_by_call_site() {
    // With memory events on: what the event stream keeps of the last
    // allocation (a leak) must not count as a reference.
    let cfg = QemuConfig::with_append("selftest=kleak").no_wait();
    let mut qemu = Qemu::start("kleak", &cfg);
    qemu.wait_debug_log("kleak: leaks made");
    let log = qemu.debug_log();
    let leaked = logged(&log, "leaked: ");
    let kept = logged(&log, "kept: ");
    assert_eq!((leaked.len(), kept.len()), (6, 4), "{log}");
    let addr = qemu.com1_address();

    let (code, first) = scan(&addr, &["--min-age", "0"]);
    assert_eq!(code, 6, "a leak is exit status 6: {first}");
    let found: BTreeSet<(u64, u64)> = leaks_of(&first)
        .iter()
        .map(|l| (l["addr"].as_u64().unwrap(), l["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(found, leaked, "exactly the dropped blocks: {first}");
    assert!(found.is_disjoint(&kept));
    assert!(first["scanned_bytes"].as_u64().unwrap() > 0, "{first}");
    assert_eq!(first["untraced"].as_u64(), Some(0), "{first}");
    for l in leaks_of(&first) {
        assert_eq!(l["confirmed"], false, "{l}");
        // Named by the selftest function that allocated it, past the
        // allocator's own frames.
        let symbol = l["symbol"].as_str().unwrap();
        assert!(symbol.starts_with("kernel::selftest::kleak::"), "{l}");
        assert!(
            l["stack"][0]["addr"].as_u64().is_some(),
            "the whole stack is there too: {l}"
        );
    }
    // The kmalloc block names its own function; the boxes name theirs.
    let by_size = |size: u64| {
        leaks_of(&first)
            .into_iter()
            .find(|l| l["size"].as_u64() == Some(size))
            .unwrap()["symbol"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(by_size(152).contains("leak_kmalloc"), "{first}");
    assert!(by_size(264).contains("leak_cycle"), "{first}");
    assert!(by_size(24).contains("leak_box"), "{first}");

    // The second scan confirms every one of them.
    let (code, second) = scan(&addr, &["--min-age", "0"]);
    assert_eq!(code, 6);
    let confirmed: BTreeSet<(u64, u64)> = leaks_of(&second)
        .iter()
        .filter(|l| l["confirmed"] == true)
        .map(|l| (l["addr"].as_u64().unwrap(), l["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(confirmed, leaked, "{second}");

    // A minimum age above the leaks' age reports none of them.
    let (code, young) = scan(&addr, &["--min-age", "3600000"]);
    assert_eq!(code, 0, "{young}");
    assert!(leaks_of(&young).is_empty(), "{young}");

    // The text report names the call site and says what was scanned.
    let (code, out, err) = run_mmtop(&[
        "leaks",
        "--scan",
        "--min-age",
        "0",
        "-c",
        &addr,
        "--elf",
        kernel_elf().to_str().unwrap(),
    ]);
    assert_eq!(code, 6, "{err}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("from ") && l.contains("leak_kmalloc")),
        "{out}"
    );
    assert!(
        out.contains("kernel leak scan: 6 leaks (6 confirmed)"),
        "{out}"
    );
}

#[test]
fn the_demo_workload_has_no_kernel_leak_over_a_minute() {
    let cfg = QemuConfig::with_append("memevents=0 init=demo").no_wait();
    let mut qemu = Qemu::start("kleak-demo", &cfg);
    qemu.wait_debug_log("kernel up");
    let addr = qemu.com1_address();
    let start = Instant::now();
    let mut scans = 0;
    let mut most_blocks = 0;
    while start.elapsed() < Duration::from_secs(60) || scans < 3 {
        let (code, kernel) = scan(&addr, &[]);
        assert_eq!(code, 0, "scan {scans} reported a leak: {kernel}");
        assert!(leaks_of(&kernel).is_empty(), "{kernel}");
        most_blocks = most_blocks.max(kernel["blocks"].as_u64().unwrap());
        scans += 1;
        std::thread::sleep(Duration::from_secs(4));
    }
    // The programs' kernel-side state was in the heap and was scanned.
    assert!(most_blocks > 5, "{most_blocks} blocks at most");
}
