//! LLDB as a client of the in-kernel stub: real `lldb` in batch mode
//! attaches with `gdb-remote` to the demo workload and reads kernel text,
//! read-only data and the IDT (compared with what QEMU's own stub reads),
//! the stopped thread's `rip` and `rsp` (compared with the raw `g` packet
//! of the same stop), backtraces with kernel function names, and the
//! processes as named threads. Below LLDB, the packets it relies on: its
//! `x0,0` probe switches binary reads to LLDB's form (no `b` prefix) for
//! that client only, and a client that asked `qHostInfo` gets no
//! `target.xml` but the register layout through `qRegisterInfo`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object::{Object, ObjectSymbol};
use systest::rsp::{Rsp, unescape, unhex, unrle};
use systest::{ChildGuard, DEADLINE, Qemu, QemuConfig, free_port, kernel_elf, scratch_dir};

/// The long-lived demo programs, as `thread list` must name them.
const DEMO_PROGRAMS: [&str; 4] = ["worker", "fragmenter", "mmapper", "forker"];

/// `lldb` on the PATH, or the newest `lldb-N` (Debian installs both, some
/// systems only the versioned name).
fn lldb_bin() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(plain) = dirs.iter().map(|d| d.join("lldb")).find(|p| p.is_file()) {
        return plain;
    }
    dirs.iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: u32 = name.strip_prefix("lldb-")?.parse().ok()?;
            Some((version, entry.path()))
        })
        .max()
        .map(|(_, path)| path)
        .expect("no lldb on the PATH (make test installs it: scripts/install-deps.sh)")
}

/// Runs real LLDB in batch mode on the kernel ELF with `commands`, kills
/// it by PID if it outlives [`DEADLINE`], and returns its output.
fn run_lldb(commands: &[String]) -> String {
    let dir = scratch_dir("lldb");
    let out_path = dir.join("lldb.out");
    let out = std::fs::File::create(&out_path).expect("create lldb output file");
    let mut cmd = Command::new(lldb_bin());
    cmd.args(["--batch", "--no-lldbinit"]).arg(kernel_elf());
    cmd.args(["-o", "settings set use-color false"]);
    for c in commands {
        cmd.arg("-o").arg(c);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup file"))
        .stderr(out)
        .spawn()
        .expect("start lldb");
    let mut guard = ChildGuard(child);
    let start = Instant::now();
    while guard.0.try_wait().expect("poll lldb").is_none() {
        if start.elapsed() > DEADLINE {
            drop(guard);
            let text = std::fs::read_to_string(&out_path).unwrap_or_default();
            panic!("lldb did not finish within {DEADLINE:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

/// What LLDB printed for the command that starts with `command`: the
/// text after its `(lldb) ` echo, up to the next one.
fn section<'a>(out: &'a str, command: &str) -> &'a str {
    out.split("(lldb) ")
        .find(|s| s.starts_with(command))
        .and_then(|s| s.split_once('\n'))
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("no output of {command:?}:\n{out}"))
}

/// The bytes `memory read -s1 -fx` printed: `0xADDR: 0xNN 0xNN ...` lines.
fn bytes_printed(text: &str) -> Vec<u8> {
    text.lines()
        .filter(|l| l.starts_with("0x"))
        .filter_map(|l| l.split_once(": "))
        .flat_map(|(_, values)| values.split_whitespace())
        .map_while(|w| u8::from_str_radix(w.strip_prefix("0x")?, 16).ok())
        .collect()
}

/// The value `register read` printed for `reg` (`     rip = 0x...`).
fn register(text: &str, reg: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{reg} = 0x")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .unwrap_or_else(|| panic!("no {reg} in:\n{text}"))
}

/// The address and size of the kernel symbol whose (mangled) name starts
/// with `prefix`.
fn symbol(prefix: &str) -> (u64, u64) {
    let data = std::fs::read(kernel_elf()).expect("read the kernel ELF");
    let elf = object::File::parse(&*data).expect("parse the kernel ELF");
    elf.symbols()
        .find(|s| s.name().is_ok_and(|n| n.starts_with(prefix)))
        .map(|s| (s.address(), s.size()))
        .unwrap_or_else(|| panic!("no symbol {prefix}* in the kernel"))
}

/// Boots the demo workload with QEMU's own stub on `qemu_port` too, and
/// waits until the long-lived programs have started.
fn boot_demo(name: &str, qemu_port: u16) -> Qemu {
    let cfg = QemuConfig {
        extra: vec!["-gdb".into(), format!("tcp:127.0.0.1:{qemu_port}")],
        ..QemuConfig::with_append("init=demo")
    };
    let mut qemu = Qemu::start_up(name, cfg);
    for program in DEMO_PROGRAMS {
        qemu.wait_debug_log(&format!("spawned {program} as pid"));
    }
    qemu
}

#[test]
fn lldb_reads_memory_registers_backtraces_and_named_threads() {
    let qemu_port = free_port();
    let qemu = boot_demo("lldb", qemu_port);
    let port = qemu.com2_port.expect("COM2");

    // Kernel text, read-only data (the table of built-in programs: names
    // and images, so pointers) and the IDT in .data, none of which change
    // after boot.
    let text = symbol("kernel_main").0;
    let (rodata, rodata_size) = symbol("_ZN6kernel4proc8programs8PROGRAMS");
    let idt = symbol("_ZN6kernel4arch6x86_643idt3IDT").0;
    let regions = [
        ("text", text, 512),
        ("rodata", rodata, rodata_size.min(64) as usize),
        ("idt", idt, 256),
    ];
    let reads: Vec<String> = regions
        .iter()
        .map(|(_, addr, len)| format!("memory read -s1 -fx -c {len} {addr:#x}"))
        .collect();

    let mut commands = vec![
        format!("gdb-remote 127.0.0.1:{port}"),
        "register read rip rsp".to_string(),
    ];
    commands.extend(reads.iter().cloned());
    commands.extend([
        "thread list".to_string(),
        "bt all".to_string(),
        // The raw `g` of the stopped thread (`Hg0`: any thread, which the
        // stub takes to be the one it stopped in), after LLDB's own reads.
        "process plugin packet send Hg0".to_string(),
        "process plugin packet send g".to_string(),
        "process detach".to_string(),
    ]);
    let out = run_lldb(&commands);
    assert!(out.contains("Process 1 detached"), "{out}");

    // Memory: what LLDB shows is what QEMU's own stub reads.
    let mut theirs = Rsp::connect(qemu_port);
    for ((what, addr, len), read) in regions.iter().zip(&reads) {
        let ours = bytes_printed(section(&out, read));
        assert_eq!(ours.len(), *len, "{what}: {len} bytes:\n{out}");
        let qemus = theirs
            .read_hex(*addr, *len)
            .unwrap_or_else(|e| panic!("QEMU's stub cannot read {what} at {addr:#x}: {e}"));
        assert_eq!(ours, qemus, "{what} at {addr:#x} differs from QEMU's read");
        assert!(ours.iter().any(|&b| b != 0), "{what} is not all zero");
    }
    assert_eq!(theirs.command(b"D"), b"OK");

    // Registers: LLDB's rip and rsp are the `g` packet's, at its offsets.
    let regs = section(&out, "register read");
    let (rip, rsp) = (register(regs, "rip"), register(regs, "rsp"));
    assert!(rip != 0 && rsp != 0, "rip {rip:#x} rsp {rsp:#x}:\n{out}");
    let g = section(&out, "process plugin packet send g")
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("response: "))
        .map(|hex| unhex(&unrle(hex.trim().as_bytes())))
        .unwrap_or_else(|| panic!("no reply to g:\n{out}"));
    assert_eq!(g.len(), 536, "the g packet of X86_64_SSE:\n{out}");
    let word = |at: usize| u64::from_le_bytes(g[at..at + 8].try_into().expect("8 bytes"));
    assert_eq!(
        (rip, rsp),
        (word(128), word(56)),
        "rip and rsp of g:\n{out}"
    );
    // The thread LLDB shows stopped is at that rip.
    let stopped = section(&out, "thread list")
        .lines()
        .find(|l| l.starts_with("* thread #"))
        .unwrap_or_else(|| panic!("no stopped thread:\n{out}"));
    assert!(stopped.contains(&format!("{rip:#018x}")), "{stopped}");

    // Threads: the processes, by name.
    let threads = section(&out, "thread list");
    for program in DEMO_PROGRAMS.iter().chain(&["kernel"]) {
        assert!(
            threads.contains(&format!("name = '{program}'")),
            "no thread named {program}:\n{threads}"
        );
    }

    // Backtrace: the kernel task's frames carry kernel function names.
    let bt = section(&out, "bt all");
    let kernel_frames: Vec<&str> = bt
        .split("thread #")
        .find(|t| t.contains("name = 'kernel'"))
        .unwrap_or_else(|| panic!("no kernel thread in bt all:\n{bt}"))
        .lines()
        .filter(|l| l.contains("frame #") && l.contains("kernel.elf`"))
        .collect();
    assert!(
        kernel_frames.len() >= 2
            && kernel_frames
                .iter()
                .any(|f| f.contains("`kernel::") || f.contains("`kernel_main")),
        "kernel frames with names:\n{bt}"
    );
    drop(qemu);
}

/// The payload of a binary `x` reply without its `b`, escapes undone.
fn gdb_form(reply: &[u8]) -> Vec<u8> {
    let data = reply
        .strip_prefix(b"b")
        .unwrap_or_else(|| panic!("no b before {:?}", String::from_utf8_lossy(reply)));
    unescape(data)
}

#[test]
fn lldb_probe_switches_binary_reads_and_its_queries_get_lldb_answers() {
    let mut qemu = Qemu::start_up("lldb-packets", QemuConfig::default());
    let mut stub = Rsp::connect(qemu.com2_port.expect("COM2"));
    stub.handshake();
    assert!(stub.command(b"?").starts_with(b"T05"));
    let text = symbol("kernel_main").0;
    let read = format!("x{text:x},100");
    let expected = stub.read_hex(text, 0x100).expect("m of kernel text");

    // gdb's form until the probe; LLDB's (no prefix) after it.
    assert_eq!(gdb_form(&stub.command(read.as_bytes())), expected);
    assert_eq!(stub.command(b"x0,0"), b"OK");
    assert_eq!(unescape(&stub.command(read.as_bytes())), expected);

    // A client that asks qHostInfo gets the triple, no target.xml, and the
    // register layout of the g packet.
    let target_xml = b"qXfer:features:read:target.xml:0,fff";
    assert!(
        String::from_utf8_lossy(&stub.command(target_xml)).contains("i386:x86-64"),
        "gdb gets target.xml"
    );
    let host = String::from_utf8(stub.command(b"qHostInfo")).expect("text");
    let triple: String = b"x86_64-unknown-none"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(host.contains(&format!("triple:{triple};")), "{host}");
    assert!(host.contains("ptrsize:8;"), "{host}");
    assert_eq!(stub.command(target_xml), b"", "no target.xml for LLDB");
    let mut info = |n: usize| {
        String::from_utf8(stub.command(format!("qRegisterInfo{n:x}").as_bytes())).expect("text")
    };
    let rax = info(0);
    assert!(rax.starts_with("name:rax;bitsize:64;offset:0;"), "{rax}");
    let rip = info(16);
    assert!(
        rip.starts_with("name:rip;alt-name:pc;bitsize:64;offset:128;"),
        "{rip}"
    );
    assert!(rip.contains(";dwarf:16;generic:pc;"), "{rip}");
    let rsp = info(7);
    assert!(
        rsp.contains("offset:56;") && rsp.contains("generic:sp;"),
        "{rsp}"
    );
    let mxcsr = info(56);
    assert!(
        mxcsr.starts_with("name:mxcsr;bitsize:32;offset:532;"),
        "{mxcsr}"
    );
    assert_eq!(info(57), "E45", "the table ends after mxcsr");

    // Every thread's name, the stopped one with its signal.
    let threads = unescape(&stub.command(b"jThreadsInfo"));
    let threads: serde_json::Value = serde_json::from_slice(&threads).expect("JSON");
    assert_eq!(
        threads[0],
        serde_json::json!({"tid": 1, "name": "kernel", "reason": "signal", "signal": 5}),
        "{threads}"
    );

    // A new client is gdb again until it probes; one that announces
    // binary-upload+ itself is answered in gdb's form, probe included.
    stub.handshake();
    assert_eq!(gdb_form(&stub.command(read.as_bytes())), expected);
    assert!(String::from_utf8_lossy(&stub.command(target_xml)).contains("i386:x86-64"));
    stub.command(b"qSupported:multiprocess+;binary-upload+");
    assert_eq!(stub.command(b"x0,0"), b"b");
    assert_eq!(gdb_form(&stub.command(read.as_bytes())), expected);

    assert_eq!(stub.command(b"D"), b"OK");
    drop(stub);
    qemu.wait_debug_log("[gdb] debugger detached");
}
