//! `mmtop ps` against the real kernel running `memtest`: the checkMemory
//! object and the table must show the program's two heaps and two sheds as
//! the program made them.

use std::panic::{self, AssertUnwindSafe};
use std::time::{Duration, Instant};

use probe_proto::KernelMsg;
use serde_json::Value;
use systest::{Qemu, QemuConfig, run_mmtop};

/// How long `memtest` may take to get ready once the kernel runs.
const READY_WITHIN: Duration = Duration::from_secs(20);

/// What `memtest` said about itself before `memtest: ready`.
#[derive(Debug, Default)]
struct Memtest {
    /// Its lines, from `memtest:` on.
    lines: Vec<String>,
}

impl Memtest {
    fn ready(&self) -> bool {
        self.lines.iter().any(|l| l == "memtest: ready")
    }

    fn failure(&self) -> Option<&String> {
        self.lines.iter().find(|l| l.starts_with("memtest: FAIL"))
    }

    /// `key=N` from the line that starts with `prefix`.
    fn value(&self, prefix: &str, key: &str) -> Option<u64> {
        let line = self.lines.iter().find(|l| l.starts_with(prefix))?;
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
    }

    /// Takes the `memtest:` lines of a log text (the kernel prefixes a
    /// program's output with its name and pid).
    fn take(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(at) = line.find("memtest: ") {
                self.lines.push(line[at..].trim_end().to_owned());
            }
        }
    }
}

/// Boots with `init=memtest` and waits for `memtest: ready` on the
/// telemetry link (the debug console counts too). Returns the running QEMU
/// (its COM1 free again for mmtop) and what memtest said.
fn boot_memtest() -> (Qemu, Memtest) {
    // The guest waits for us (COM1's default), so no log line is lost
    // before we listen.
    let cfg = QemuConfig::with_append("init=memtest");
    let (mut qemu, mut link) = Qemu::boot("mmtop-ps", &cfg);
    let mut memtest = Memtest::default();
    let start = Instant::now();
    while !memtest.ready() {
        if let Some(fail) = memtest.failure() {
            panic!("{fail}\nmemtest said: {:#?}", memtest.lines);
        }
        assert!(
            start.elapsed() < READY_WITHIN,
            "no \"memtest: ready\" within {READY_WITHIN:?}; memtest said: {:#?}\n\
             debug console:\n{}",
            memtest.lines,
            qemu.debug_log()
        );
        // A link that closes panics inside the harness; say why it matters
        // and what the kernel printed.
        let polled = panic::catch_unwind(AssertUnwindSafe(|| {
            link.poll_for("a log line", Duration::from_millis(200), |m| match m {
                KernelMsg::Log(l) => Some(l.text.to_string()),
                _ => None,
            })
        }));
        let Ok(text) = polled else {
            panic!(
                "the telemetry link closed before memtest was ready (QEMU running: {}); \
                 debug console:\n{}",
                qemu.is_running(),
                qemu.debug_log()
            );
        };
        match text {
            Some(text) => memtest.take(&text),
            // Nothing on the link for a while: the debug console has the
            // same lines if the kernel logs there too.
            None if memtest.lines.is_empty() => {
                let mut from_console = Memtest::default();
                from_console.take(&qemu.debug_log());
                if from_console.ready() || from_console.failure().is_some() {
                    memtest = from_console;
                }
            }
            None => {}
        }
    }
    // QEMU serves one client at a time: hang up so mmtop can connect.
    drop(link);
    (qemu, memtest)
}

/// The object's programs, checked for the shape every program must have:
/// totals equal to the sums, free = size - used per heap.
fn programs(object: &Value) -> &Vec<Value> {
    let programs = object["programs"].as_array().expect("programs array");
    assert_eq!(
        object["totalPrograms"].as_u64(),
        Some(programs.len() as u64),
        "totalPrograms counts the programs: {object}"
    );
    for p in programs {
        let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted,
            [
                "heaps",
                "pid",
                "programName",
                "sheds",
                "totalHeapFree",
                "totalHeapSize",
                "totalHeapUsed",
                "totalShedSize"
            ],
            "{p}"
        );
        let sum = |list: &str, key: &str| -> u64 {
            p[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[key].as_u64().unwrap())
                .sum()
        };
        assert_eq!(p["totalHeapSize"], sum("heaps", "heapSize"), "{p}");
        assert_eq!(p["totalHeapUsed"], sum("heaps", "heapUsed"), "{p}");
        assert_eq!(p["totalHeapFree"], sum("heaps", "heapFree"), "{p}");
        assert_eq!(p["totalShedSize"], sum("sheds", "shedSize"), "{p}");
        for h in p["heaps"].as_array().unwrap() {
            let (size, used) = (h["heapSize"].as_u64(), h["heapUsed"].as_u64());
            assert_eq!(
                h["heapFree"].as_u64(),
                size.zip(used).map(|(s, u)| s - u),
                "{p}"
            );
        }
    }
    programs
}

#[test]
fn mmtop_ps_shows_memtest_heaps_and_sheds_as_the_program_made_them() {
    let (qemu, memtest) = boot_memtest();
    let addr = qemu.com1_address();

    let (code, out, err) = run_mmtop(&["ps", "-c", &addr, "--json", "-t", "60"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let object: Value = serde_json::from_str(out.trim()).expect("one JSON object");
    let programs = programs(&object);
    assert!(
        programs
            .iter()
            .any(|p| p["pid"] == 0 && p["programName"] == "kernel"),
        "the kernel is a program too: {object}"
    );
    let named: Vec<&Value> = programs
        .iter()
        .filter(|p| p["programName"] == "memtest")
        .collect();
    let [me] = named[..] else {
        panic!("exactly one memtest: {object}");
    };

    let heaps = me["heaps"].as_array().unwrap();
    assert_eq!(heaps.len(), 2, "{me}");
    for h in heaps {
        assert_eq!(h["heapSize"], 65_536, "{me}");
    }
    let heap_ids: Vec<u64> = heaps
        .iter()
        .map(|h| h["heapId"].as_u64().unwrap())
        .collect();
    assert!(heap_ids.contains(&7), "heap 7 asked for by id: {me}");
    // The first heap (id chosen by the kernel) holds the 100 + 200 + 300
    // bytes.
    let first_id = memtest
        .value("memtest: ids", "heap_a")
        .unwrap_or_else(|| *heap_ids.iter().find(|&&id| id != 7).unwrap());
    let first = heaps
        .iter()
        .find(|h| h["heapId"] == first_id)
        .unwrap_or_else(|| panic!("no heap {first_id}: {me}"));
    assert_eq!(first["heapUsed"], 600, "{me}");
    if let Some(used) = memtest.value("memtest: heaps=", "used") {
        assert_eq!(
            me["totalHeapUsed"], used,
            "mmtop agrees with what check_memory told the program"
        );
    }

    let sheds = me["sheds"].as_array().unwrap();
    assert_eq!(sheds.len(), 2, "{me}");
    for s in sheds {
        assert_eq!(s["shedSize"], 8_192, "{me}");
    }
    assert!(
        sheds.iter().any(|s| s["shedId"] == 9),
        "shed 9 asked for by id: {me}"
    );
    assert_eq!(me["totalHeapSize"], 131_072, "{me}");
    assert_eq!(me["totalShedSize"], 16_384, "{me}");

    // The table for that one process names it and lists its parts.
    let pid = me["pid"].as_u64().unwrap().to_string();
    let (code, out, err) = run_mmtop(&["ps", "-c", &addr, "--pid", &pid, "-t", "60"]);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert!(out.contains("memtest"), "{out}");
    for section in ["\nheaps\n", "\nsheds\n", "\nmaps\n"] {
        assert!(out.contains(section), "{section:?} in {out}");
    }
    assert!(out.contains(" shed "), "a shed VMA in the maps: {out}");

    // A pid that does not exist.
    let (code, out, err) = run_mmtop(&["ps", "-c", &addr, "--pid", "4242", "-t", "60"]);
    assert_eq!(code, 5, "stdout: {out}\nstderr: {err}");
    assert_eq!(err, "mmtop: no process 4242\n");
}
