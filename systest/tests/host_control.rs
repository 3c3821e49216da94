//! The host steers what the kernel sends: `SetEvents` leaves out whole
//! classes of events (their counters still count) and brings them back,
//! `SetLogLevel` changes the log level, both answered by `Settings`; and
//! `mmtop leaks` lists a live program's blocks by key.

use probe_proto::names::event_class;
use probe_proto::{HostMsg, KernelMsg};
use serde_json::Value;
use systest::{DEADLINE, Qemu, QemuConfig, run_mmtop};

#[test]
fn set_events_leaves_out_classes_that_still_count_and_brings_them_back() {
    let cfg = QemuConfig::with_append("init=demo");
    let (_qemu, mut link) = Qemu::boot("host-control", &cfg);
    link.wait_for("a HeapAlloc of the demo", DEADLINE, |m| {
        matches!(m, KernelMsg::HeapAlloc(_)).then_some(())
    });

    link.send(&HostMsg::SetEvents {
        classes: event_class::PROCESS,
    });
    let settings = link.wait_for("Settings", DEADLINE, |m| match m {
        KernelMsg::Settings(s) => Some(*s),
        _ => None,
    });
    assert_eq!(settings.events, event_class::PROCESS);

    // Two snapshots apart: the heap counters move, no memory event comes.
    let mut memory_events = 0;
    let mut counts = Vec::new();
    while counts.len() < 2 {
        let m = link.wait_for("MemoryStats", DEADLINE, |m| match m {
            KernelMsg::MemoryStats(s) => Some(Some(s.counters.heap_allocs)),
            KernelMsg::PageAlloc(_)
            | KernelMsg::PageFree(_)
            | KernelMsg::Map(_)
            | KernelMsg::Unmap(_)
            | KernelMsg::HeapAlloc(_)
            | KernelMsg::HeapFree(_)
            | KernelMsg::PageFault(_) => Some(None),
            _ => None,
        });
        match m {
            Some(count) => counts.push(count),
            None => memory_events += 1,
        }
    }
    assert_eq!(memory_events, 0, "no page, map, heap or fault event");
    assert!(counts[1] > counts[0], "the counters went on: {counts:?}");

    link.send(&HostMsg::SetEvents {
        classes: event_class::ALL,
    });
    link.wait_for("a HeapAlloc again", DEADLINE, |m| {
        matches!(m, KernelMsg::HeapAlloc(_)).then_some(())
    });

    link.send(&HostMsg::SetLogLevel { level: 3 });
    let settings = link.wait_for("Settings", DEADLINE, |m| match m {
        KernelMsg::Settings(s) => Some(*s),
        _ => None,
    });
    assert_eq!((settings.log_level, settings.events), (3, event_class::ALL));
}

#[test]
fn mmtop_leaks_lists_memtests_blocks_by_key_and_loglevel_answers() {
    let cfg = QemuConfig::with_append("memevents=0 init=memtest").no_wait();
    let mut qemu = Qemu::start("mmtop-leaks", &cfg);
    qemu.wait_debug_log("memtest: ready");
    let addr = qemu.com1_address();
    let (code, out, err) = run_mmtop(&["leaks", "-c", &addr, "--pid", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let got: Value = serde_json::from_str(&out).unwrap();
    assert!(got["kernel"].is_null());
    let p = &got["processes"][0];
    assert_eq!(
        (p["pid"].as_u64(), p["name"].as_str()),
        (Some(1), Some("memtest"))
    );
    let keys: Vec<(u64, u64, u64)> = p["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["key"].as_u64().unwrap(),
                k["blocks"].as_u64().unwrap(),
                k["bytes"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(keys, [(1, 1, 100), (2, 1, 200), (3, 1, 300)]);
    // Each key's oldest block has an age, and it grows while it lives
    // (the kernel's clock, not this one's, so only the order is checked).
    let ages = |v: &Value| -> Vec<u64> {
        v["processes"][0]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["oldest_age_ms"].as_u64().expect("an age"))
            .collect()
    };
    let before = ages(&got);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, out, err) = run_mmtop(&["leaks", "-c", &addr, "--pid", "1", "--json"]);
    assert_eq!(code, 0, "{err}");
    let after = ages(&serde_json::from_str(&out).unwrap());
    assert!(
        before.iter().zip(&after).all(|(b, a)| a > b),
        "{before:?} then {after:?}"
    );

    let (code, _, err) = run_mmtop(&["leaks", "-c", &addr, "--pid", "42"]);
    assert_eq!(code, 5, "{err}");
    let (code, out, err) = run_mmtop(&["loglevel", "-c", &addr, "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("log level 1 (warn), events "), "{out}");
}
