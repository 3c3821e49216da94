//! `mmtop log --elf`: the kernel's raw return addresses named from its ELF,
//! and no names at all from an ELF that is not the running kernel.

use std::path::{Path, PathBuf};

use systest::{Qemu, QemuConfig, kernel_elf, run_mmtop, scratch_dir};

/// How long to read: the resync's snapshot and the workload's first memory
/// events (the stream is sparse once the demo programs have started).
const SECONDS: &str = "20";

/// Boots the demo workload with memory events and waits until it is up.
fn booted(name: &str) -> (Qemu, String) {
    let qemu = Qemu::start_up(name, QemuConfig::with_append("memevents=1 init=demo"));
    let addr = qemu.com1_address();
    (qemu, addr)
}

/// `mmtop log --json` with `elf`: exit code, the JSON lines and stderr.
fn log_with_elf(addr: &str, elf: &Path) -> (Vec<serde_json::Value>, String) {
    let elf = elf.to_str().expect("a UTF-8 path");
    let (code, out, err) = run_mmtop(&[
        "log",
        "-c",
        addr,
        "--json",
        "--timeout",
        SECONDS,
        "--elf",
        elf,
    ]);
    assert_eq!(code, 0, "stderr: {err}");
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    (lines, err)
}

/// `kernel::memory::heap::kmalloc` as the start of its legacy mangled name,
/// `_ZN6kernel6memory4heap7kmalloc`; `None` for a name that is not a plain
/// path of identifiers (generics, impl blocks, closures).
fn mangled_prefix(function: &str) -> Option<String> {
    let mut mangled = String::from("_ZN");
    for part in function.split("::") {
        let plain = !part.is_empty()
            && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.starts_with(|c: char| c.is_ascii_digit());
        if !plain {
            return None;
        }
        mangled.push_str(&format!("{}{part}", part.len()));
    }
    Some(mangled)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn mmtop_log_names_kernel_heap_callers_from_the_kernel_elf() {
    let elf = kernel_elf();
    let (_qemu, addr) = booted("symbols-named");
    let (lines, err) = log_with_elf(&addr, &elf);
    assert!(
        !err.contains("no symbols"),
        "the ELF is the running kernel: {err}"
    );
    let hello = lines
        .iter()
        .find(|v| v["type"] == "hello")
        .expect("a hello");
    let build_id = hello["build_id"].as_str().unwrap();
    assert!(build_id.starts_with("kernel 0.1.0 "), "{build_id}");
    assert!(build_id.contains(" id="), "{build_id}");

    let bytes = std::fs::read(&elf).unwrap();
    let after_hello = || lines.iter().skip_while(|v| v["type"] != "hello");
    // Kernel callers: every heap allocation's (the kernel heap's, pid 0) and
    // every page allocation's and mapping's, named after a function the
    // kernel ELF has, with file and line.
    let mut kernel_named = 0;
    let mut functions = std::collections::BTreeSet::new();
    for event in after_hello().filter(|v| {
        (v["type"] == "heap_alloc" && v["pid"] == 0)
            || v["type"] == "page_alloc"
            || v["type"] == "map"
    }) {
        if event["caller"] == 0 {
            continue; // no caller recorded
        }
        let symbol = event["caller_symbol"]
            .as_str()
            .unwrap_or_else(|| panic!("a caller without a name: {event}"));
        let (function, rest) = symbol.split_once('+').expect("function+0xoff");
        assert!(rest.starts_with("0x"), "{symbol}");
        assert!(rest.contains(".rs:"), "file:line: {symbol}");
        functions.insert(function.to_string());
        if function.starts_with("kernel::") && rest.contains("kernel/src/") {
            kernel_named += 1;
        }
    }
    let mut checked = 0;
    for function in &functions {
        if let Some(mangled) = mangled_prefix(function) {
            assert!(
                contains(&bytes, mangled.as_bytes()),
                "{function} is not a symbol of {}",
                elf.display()
            );
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no kernel heap, page or map caller checked: {functions:?}"
    );
    assert!(
        kernel_named > 0,
        "no caller named after a kernel function in kernel/src"
    );
    assert!(
        after_hello().any(|v| v["type"] == "heap_alloc" && v["pid"] == 0),
        "no kernel heap allocation in {SECONDS}s"
    );

    // Ring 3: a program's heap calls, named from target/user/NAME.debug.
    let user_named = after_hello()
        .filter(|v| v["type"] == "heap_alloc" && v["pid"] != 0)
        .filter_map(|v| v["caller_symbol"].as_str())
        .filter(|s| s.contains("user/src/"))
        .count();
    assert!(user_named > 0, "no program heap caller named");
}

#[test]
fn mmtop_log_gives_no_names_from_an_elf_that_is_not_the_running_kernel() {
    let elf = kernel_elf();
    let (_qemu, addr) = booted("symbols-mismatch");

    // A user program's debug image: an ELF, but no kernel build id.
    let program = std::fs::read_dir(elf.parent().unwrap().join("user"))
        .expect("target/user next to the kernel ELF")
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "debug"))
        .expect("a program's .debug image");

    // The kernel ELF with its build id changed.
    let mut bytes = std::fs::read(&elf).unwrap();
    let mark = b"kernel 0.1.0 debug id=";
    let at = bytes
        .windows(mark.len())
        .position(|w| w == mark)
        .expect("the build id in the ELF")
        + mark.len();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let copy: PathBuf = scratch_dir("symbols-mismatch").join("kernel.elf");
    std::fs::write(&copy, &bytes).unwrap();

    for wrong in [&program, &copy] {
        let (lines, err) = log_with_elf(&addr, wrong);
        let warnings: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("is not the running kernel"))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning for {wrong:?}: {err}");
        assert!(
            warnings[0].starts_with(&format!("mmtop: {} is not", wrong.display()))
                && warnings[0].ends_with("; no symbols"),
            "{err}"
        );
        assert!(
            lines.iter().any(|v| v["type"] == "heap_alloc"),
            "events arrived"
        );
        for line in &lines {
            let text = line.to_string();
            assert!(!text.contains("_symbol\""), "a name from {wrong:?}: {text}");
        }
    }
}

/// A host that attaches after the programs started has seen no spawn: it
/// asks for a listing once to learn their names (and does not print it),
/// so their ring-3 callers are named too.
#[test]
fn mmtop_log_attached_late_names_programs_that_started_before_it() {
    // One program, so the kernel answers the listing promptly however
    // busy the machine is.
    let cfg = QemuConfig::with_append("memevents=1 init=worker").no_wait();
    let mut qemu = Qemu::start("symbols-late", &cfg);
    // Let it start and name itself before anyone listens.
    qemu.wait_debug_log("worker: heap=");
    let (lines, err) = log_with_elf(&qemu.com1_address(), &kernel_elf());
    assert!(!err.contains("no symbols"), "{err}");
    assert!(
        !lines.iter().any(|v| v["type"] == "process_info"),
        "the listing mmtop asked for is read, not printed"
    );
    // Programs whose spawn and name this host never saw (those it does
    // see are named the usual way).
    let announced: std::collections::BTreeSet<u64> = lines
        .iter()
        .filter(|v| v["type"] == "process_spawn" || v["type"] == "process_rename")
        .filter_map(|v| v["pid"].as_u64())
        .collect();
    let user_named = lines
        .iter()
        .filter(|v| v["type"] == "heap_alloc" && v["pid"] != 0)
        .filter(|v| !announced.contains(&v["pid"].as_u64().unwrap()))
        .filter_map(|v| v["caller_symbol"].as_str())
        .filter(|s| s.contains("user/src/"))
        .count();
    assert!(user_named > 0, "no program heap caller named");
}
