//! The consistency check ties the frame allocator to every mapping: it
//! finds exactly the faults `selftest=check-faults` injects into a running
//! system (a mapped frame marked free, a frame charged to a process that
//! holds it nowhere, a share count off by one), and it stays consistent
//! over many checks of the demo workload while programs fork, fault and
//! exit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;
use systest::{Com1, DEADLINE, Qemu, QemuConfig, run_mmtop};

/// `mmtop check --json` against `qemu`: its exit code and report.
fn check(qemu: &Qemu) -> (i32, Value) {
    let addr = format!("unix:{}", qemu.com1_path.display());
    let (code, out, err) = run_mmtop(&["check", "-c", &addr, "--json", "--timeout", "30"]);
    let report = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    (code, report)
}

#[test]
fn the_check_reports_exactly_the_three_injected_faults() {
    let cfg = QemuConfig {
        append: "memevents=0 init=ptsteps selftest=check-faults".into(),
        com1: Com1::NoWait,
        ..Default::default()
    };
    let mut qemu = Qemu::start("check-faults", &cfg);
    qemu.wait_debug_log("injected: share-count");
    // `injected: KIND phys=0x...`: kind by frame.
    let injected: BTreeMap<u64, String> = qemu
        .debug_log()
        .lines()
        .filter_map(|l| l.split_once("injected: "))
        .map(|(_, rest)| {
            let mut words = rest.split_whitespace();
            let kind = words.next().unwrap().replace('-', "_");
            let phys = words.next().unwrap().trim_start_matches("phys=0x");
            (u64::from_str_radix(phys, 16).unwrap(), kind)
        })
        .collect();
    assert_eq!(injected.len(), 3, "{injected:?}");

    let (code, report) = check(&qemu);
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["consistent"], false);
    let found: BTreeMap<u64, String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["phys"].as_u64().unwrap(),
                f["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(found, injected, "{report}");
    assert_eq!(
        report["findings"].as_array().unwrap().len(),
        3,
        "one finding a frame: {report}"
    );
    assert!(report["spaces"].as_u64().unwrap() >= 3, "{report}");
    assert!(qemu.is_running());
}

#[test]
fn the_check_stays_consistent_while_the_demo_forks_faults_and_exits() {
    let cfg = QemuConfig {
        // The harness boots with no programs unless told.
        append: "memevents=0 init=demo".into(),
        com1: Com1::NoWait,
        ..Default::default()
    };
    let mut qemu = Qemu::start("check-demo", &cfg);
    qemu.wait_debug_log("spawned forker");
    let started = Instant::now();
    let mut checks = 0;
    let mut most_spaces = 0;
    while checks < 10 {
        assert!(
            started.elapsed() < DEADLINE,
            "ten checks within {DEADLINE:?}"
        );
        let (code, report) = check(&qemu);
        assert_eq!(code, 0, "{report}");
        assert_eq!(report["consistent"], true, "{report}");
        assert!(report["findings"].as_array().unwrap().is_empty());
        most_spaces = most_spaces.max(report["spaces"].as_u64().unwrap());
        checks += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        most_spaces >= 4,
        "programs were running: {most_spaces} spaces"
    );
    let log = qemu.debug_log();
    assert!(log.contains("forker"), "the demo ran");
}

#[test]
fn checkevery_runs_the_check_on_its_own_and_reports_it() {
    let cfg = QemuConfig {
        append: "memevents=0 init=demo checkevery=1".into(),
        ..Default::default()
    };
    let mut qemu = Qemu::start("check-every", &cfg);
    let mut link = qemu.connect_telemetry();
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let end = link.wait_for("a periodic CheckEnd", DEADLINE, |m| match m {
            probe_proto::KernelMsg::CheckEnd(e) => Some(*e),
            _ => None,
        });
        assert!(end.consistent, "{end:?}");
        seen.push(end.ts_us);
    }
    assert!(
        seen[1] >= seen[0] + 900_000,
        "about a second apart: {seen:?}"
    );
}
