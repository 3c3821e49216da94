//! The in-kernel GDB stub on COM2, driven by real gdb in batch mode: attach,
//! registers, memory checked against the page tables (compared with what
//! QEMU's own stub reads in the same run), breakpoints and single-step,
//! hardware breakpoints and watchpoints, `monitor` commands, detach and re-attach, and a debugger that dies while
//! the kernel is stopped; the memory map gdb gets, and (below gdb 13, which
//! cannot send them) the stub's binary reads.

use std::time::{Duration, Instant};

use probe_proto::KernelMsg;
use systest::rsp::Rsp;
use systest::{DEADLINE, Qemu, QemuConfig, Telemetry, free_port, run_gdb, spawn_gdb};

/// A kernel symbol whose bytes do not change after boot: the IDT.
const STABLE_SYMBOL: &str = "&kernel::arch::x86_64::idt::IDT";

/// The start of kernel text, as gdb reads it with `set language c`.
const TEXT: &str = "(long)&__kernel_text_start";

/// Boots with COM2 on a TCP port and `append`, and waits for the kernel to
/// be up (its first heartbeat).
fn boot(name: &str, append: &str, extra: Vec<String>) -> (Qemu, Telemetry) {
    let cfg = QemuConfig {
        extra,
        ..QemuConfig::with_append(append)
    };
    let (qemu, mut link) = Qemu::boot(name, &cfg);
    heartbeat_after(&mut link, 0);
    (qemu, link)
}

/// Waits for a `Heartbeat` stamped later than `after_us`.
fn heartbeat_after(link: &mut Telemetry, after_us: u64) -> u64 {
    link.wait_for("a later Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(h) if h.ts_us > after_us => Some(h.ts_us),
        _ => None,
    })
}

/// gdb commands that attach to the stub of `qemu`, then `commands`.
fn attach(qemu: &Qemu, commands: &[&str]) -> Vec<String> {
    let port = qemu.com2_port.expect("COM2 configured");
    let mut all = vec![
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
    ];
    all.extend(commands.iter().map(|c| c.to_string()));
    all
}

/// The 64-bit words `x/Ngx` printed on lines naming `symbol_part`.
fn words(out: &str, symbol_part: &str) -> Vec<u64> {
    out.lines()
        .filter(|l| l.contains(symbol_part))
        .filter_map(|l| l.split_once(">:"))
        .flat_map(|(_, values)| values.split_whitespace())
        .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
        .collect()
}

/// The kernel's uptime tick counter (milliseconds) as gdb reads it.
fn ticks_in(out: &str) -> u64 {
    *words(out, "TICKS")
        .first()
        .unwrap_or_else(|| panic!("no TICKS value in gdb output:\n{out}"))
}

#[test]
fn attach_reads_registers_and_memory_equal_to_qemus_own_stub() {
    let qemu_port = free_port();
    let extra = vec!["-gdb".into(), format!("tcp:127.0.0.1:{qemu_port}")];
    let (qemu, _link) = boot("gdb-attach", "", extra);
    let read = format!("x/8gx {STABLE_SYMBOL}");
    let ours = run_gdb(&attach(&qemu, &["info registers", &read]));
    for reg in [
        "rax",
        "rsp",
        "rip",
        "eflags",
        "cs             0x8",
        "ss             0x10",
    ] {
        assert!(ours.contains(reg), "no {reg:?} in info registers:\n{ours}");
    }
    let theirs = run_gdb(&[
        "set pagination off".into(),
        format!("target remote 127.0.0.1:{qemu_port}"),
        read,
    ]);
    let (a, b) = (words(&ours, "idt3IDT"), words(&theirs, "idt3IDT"));
    assert_eq!(a.len(), 8, "eight words through the kernel stub:\n{ours}");
    assert_eq!(a, b, "stub:\n{ours}\nQEMU:\n{theirs}");
    assert!(a.iter().any(|&w| w != 0), "the IDT is not empty");
}

#[test]
fn unmapped_read_is_an_error_and_the_kernel_keeps_running() {
    let (qemu, mut link) = boot("gdb-unmapped", "", vec![]);
    let out = run_gdb(&attach(
        &qemu,
        &[
            "x/4gx 0x1000",
            "x/2gx 0xffff900000000000",
            "x/1gx &kernel::time::TICKS",
        ],
    ));
    assert!(
        out.contains("Cannot access memory at address 0x1000"),
        "{out}"
    );
    assert!(
        out.contains("Cannot access memory at address 0xffff900000000000"),
        "{out}"
    );
    let stopped_at_ms = ticks_in(&out);
    heartbeat_after(&mut link, stopped_at_ms * 1000);
}

#[test]
fn bulk_reads_match_qemus_own_stub() {
    let qemu_port = free_port();
    let extra = vec!["-gdb".into(), format!("tcp:127.0.0.1:{qemu_port}")];
    let (qemu, _link) = boot("gdb-bulk", "", extra);
    let dir = qemu.dir.clone();
    let dump = |file: &str| -> String {
        format!(
            "dump binary memory {} {TEXT} {TEXT}+65536",
            dir.join(file).display()
        )
    };
    let bulk = format!("x/4096xb {TEXT}");
    let ours = run_gdb(&attach(
        &qemu,
        &["set language c", &dump("stub.bin"), &bulk],
    ));
    let theirs = run_gdb(&[
        format!("target remote 127.0.0.1:{qemu_port}"),
        "set language c".into(),
        dump("qemu.bin"),
    ]);
    let a = std::fs::read(dir.join("stub.bin")).unwrap_or_else(|e| panic!("{e}:\n{ours}"));
    let b = std::fs::read(dir.join("qemu.bin")).unwrap_or_else(|e| panic!("{e}:\n{theirs}"));
    assert_eq!(a.len(), 65536);
    assert!(a == b, "64 KiB of kernel text differ between the stubs");
    let bytes_printed: usize = ours
        .lines()
        .filter(|l| l.starts_with("0xffffffff8"))
        .filter_map(|l| l.split_once(":\t"))
        .map(|(_, bytes)| bytes.split_whitespace().filter(|b| b.len() == 4).count())
        .sum();
    assert_eq!(bytes_printed, 4096, "x/4096xb prints every byte:\n{ours}");
}

#[test]
fn detach_then_reattach_works() {
    let (qemu, mut link) = boot("gdb-reattach", "", vec![]);
    for _ in 0..2 {
        let out = run_gdb(&attach(
            &qemu,
            &["p $pc", "x/1gx &kernel::time::TICKS", "detach"],
        ));
        assert!(out.contains("$1 = "), "{out}");
        assert!(out.contains("Inferior 1 (process 1) detached"), "{out}");
        heartbeat_after(&mut link, ticks_in(&out) * 1000);
    }
    assert_eq!(
        qemu.debug_log().matches("[gdb] debugger detached").count(),
        2
    );
}

#[test]
fn killing_gdb_while_stopped_leaves_the_kernel_running() {
    // A stopped kernel gives up on a debugger silent for 2 s.
    let (qemu, mut link) = boot("gdb-kill", "gdbidle=2", vec![]);
    let mut cmds = attach(&qemu, &["x/1gx &kernel::time::TICKS", "echo ATTACHED\\n"]);
    cmds.push("shell sleep 600".into());
    let out_path = qemu.dir.join("gdb-bg.out");
    let gdb = spawn_gdb(&cmds, &out_path);
    let start = Instant::now();
    let out = loop {
        let out = std::fs::read_to_string(&out_path).unwrap_or_default();
        if out.contains("ATTACHED") {
            break out;
        }
        assert!(start.elapsed() < DEADLINE, "gdb did not attach:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(gdb); // kills gdb by PID while the kernel is stopped
    heartbeat_after(&mut link, ticks_in(&out) * 1000);
    assert!(qemu.debug_log().contains("[gdb] debugger silent"));
}

/// The values of `$N = 0x...` lines gdb printed, in order.
fn printed_values(out: &str) -> Vec<String> {
    out.lines()
        .filter(|l| l.starts_with('$'))
        .filter_map(|l| l.split_once(" = "))
        .map(|(_, v)| v.to_string())
        .collect()
}

#[test]
fn breakpoint_on_a_kernel_function_is_hit_and_stepi_advances_rip() {
    let (qemu, mut link) = boot("gdb-break", "", vec![]);
    let out = run_gdb(&attach(
        &qemu,
        &[
            "break kernel::time::tick",
            "continue",
            "p/x $pc",
            "stepi",
            "p/x $pc",
            "delete",
            "x/1gx &kernel::time::TICKS",
            "detach",
        ],
    ));
    assert!(
        out.contains("Breakpoint 1, kernel::time::tick"),
        "breakpoint not hit:\n{out}"
    );
    let pcs = printed_values(&out);
    assert_eq!(pcs.len(), 2, "{out}");
    assert_ne!(pcs[0], pcs[1], "stepi did not move RIP:\n{out}");
    // The breakpoint's int3 is gone and the timer keeps ticking.
    heartbeat_after(&mut link, ticks_in(&out) * 1000);
}

#[test]
fn hardware_watchpoint_fires_when_the_timer_writes_its_counter() {
    let (qemu, mut link) = boot("gdb-watch", "", vec![]);
    let out = run_gdb(&attach(
        &qemu,
        &[
            "watch kernel::time::TICKS.v.value",
            "continue",
            "bt 3",
            "delete",
            "rwatch kernel::time::TICKS.v.value",
            "continue",
            "delete",
            "awatch kernel::time::TICKS.v.value",
            "continue",
            "delete",
            "x/1gx &kernel::time::TICKS",
            "detach",
        ],
    ));
    assert!(
        out.contains("Hardware watchpoint 1: kernel::time::TICKS.v.value"),
        "watchpoint not set in hardware:\n{out}"
    );
    // Set, then hit: the second mention is the stop.
    let hit = out
        .split("Hardware watchpoint 1: kernel::time::TICKS.v.value")
        .nth(2)
        .unwrap_or_else(|| panic!("watchpoint not hit:\n{out}"));
    let value = |label: &str| -> u64 {
        hit.lines()
            .find_map(|l| l.strip_prefix(label))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {label:?} line:\n{out}"))
    };
    assert_eq!(value("New value = "), value("Old value = ") + 1, "{out}");
    assert!(
        hit.contains("in kernel::time::tick"),
        "not stopped in the timer:\n{out}"
    );
    // Reads and accesses: x86 watches both with one read-or-write slot.
    for (n, what) in [(2, "read"), (3, "access (read/write)")] {
        let label = format!("Hardware {what} watchpoint {n}: kernel::time::TICKS.v.value");
        assert_eq!(out.matches(&label).count(), 2, "{label:?} not hit:\n{out}");
    }
    assert!(out.contains("\nValue = "), "{out}");
    // The debug registers are off again and the timer keeps ticking.
    heartbeat_after(&mut link, ticks_in(&out) * 1000);
    assert!(qemu.debug_log().contains("[gdb] debugger detached"));
}

#[test]
fn hardware_breakpoint_on_a_kernel_function_is_hit() {
    let (qemu, mut link) = boot("gdb-hbreak", "", vec![]);
    let out = run_gdb(&attach(
        &qemu,
        &[
            "hbreak kernel::time::tick",
            "continue",
            "p/x $pc",
            "info symbol $pc",
            "continue",
            "p/x $pc",
            "delete",
            "x/1gx &kernel::time::TICKS",
            "detach",
        ],
    ));
    assert!(
        out.contains("Hardware assisted breakpoint 1 at"),
        "hbreak not set:\n{out}"
    );
    assert_eq!(
        out.matches("Breakpoint 1, kernel::time::tick").count(),
        2,
        "hardware breakpoint not hit twice:\n{out}"
    );
    let pcs = printed_values(&out);
    assert_eq!(pcs.len(), 2, "{out}");
    assert_eq!(pcs[0], pcs[1], "both stops at the breakpoint:\n{out}");
    heartbeat_after(&mut link, ticks_in(&out) * 1000);
}

#[test]
fn monitor_commands_answer_and_agree_with_telemetry() {
    let (qemu, mut link) = boot("gdb-monitor", "", vec![]);
    let total_frames = link.wait_for("MemoryStats", DEADLINE, |m| match m {
        KernelMsg::MemoryStats(s) => Some(s.total_frames),
        _ => None,
    });
    let out = run_gdb(&attach(
        &qemu,
        &[
            "monitor help",
            "monitor pmm",
            "monitor check",
            "monitor heap",
            "monitor whatis 0xffffc00000000100",
            "monitor whatis 0x1000",
            "monitor loglevel 2",
        ],
    ));
    for needle in [
        "monitor commands of the in-kernel stub",
        &format!("frames: {total_frames} total"),
        "page table",
        "frame bitmap: consistent",
        "kernel heap: ok",
        "kernel heap: region",
        "owned by KernelHeap",
        "0x1000: not mapped",
        "log level 2",
    ] {
        assert!(out.contains(needle), "no {needle:?} in:\n{out}");
    }
}

/// Where the direct map of RAM starts.
const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;
/// Where the kernel heap starts.
const KERNEL_HEAP: u64 = 0xffff_c000_0000_0000;
/// Where the user half ends.
const USER_HALF_END: u64 = 0x8000_0000_0000;

/// The `(low, high)` rows of `info mem` (`NUM y LOW HIGH attributes`).
fn info_mem_rows(out: &str) -> Vec<(u64, u64)> {
    out.lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            fields.next()?.parse::<u32>().ok()?;
            if fields.next()? != "y" {
                return None;
            }
            let mut hex = fields
                .filter_map(|w| w.strip_prefix("0x"))
                .map(|h| u64::from_str_radix(h, 16).ok());
            Some((hex.next()??, hex.next()??))
        })
        .collect()
}

#[test]
fn info_mem_lists_the_user_half_the_direct_map_the_heap_and_the_image() {
    let (qemu, mut link) = boot("gdb-memmap", "", vec![]);
    let out = run_gdb(&attach(
        &qemu,
        &[
            "x/1gx &kernel::time::TICKS",
            "set language c",
            "info mem",
            "p/x (long)&__kernel_text_start",
            "p/x (long)&__kernel_text_end",
            "x/4gx 0x1000",
            "x/2gx 0xffff900000000000",
        ],
    ));
    assert!(
        out.contains("Using memory regions provided by the target."),
        "{out}"
    );
    let rows = info_mem_rows(&out);
    let text: Vec<u64> = printed_values(&out)
        .iter()
        .filter_map(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        .collect();
    assert_eq!(text.len(), 2, "text bounds:\n{out}");
    let ram = u64::from(QemuConfig::default().mem_mib) << 20;
    for (row, what) in [
        ((0, USER_HALF_END), "the user half"),
        ((DIRECT_MAP, DIRECT_MAP + ram), "the direct map of all RAM"),
        ((text[0], text[1]), "kernel text"),
    ] {
        assert!(rows.contains(&row), "no row for {what} {row:#x?}:\n{out}");
    }
    let heap = rows
        .iter()
        .find(|r| r.0 == KERNEL_HEAP)
        .unwrap_or_else(|| panic!("no kernel heap row:\n{out}"));
    assert!(heap.1 - heap.0 >= 64 * 1024, "heap row {heap:#x?}");
    assert!(
        rows.windows(2).all(|w| w[0].1 <= w[1].0),
        "rows overlap: {rows:#x?}"
    );
    // Reads inside the map still work; outside it gdb refuses by itself.
    assert!(!words(&out, "TICKS").is_empty(), "{out}");
    for addr in ["0x1000", "0xffff900000000000"] {
        assert!(
            out.contains(&format!("Cannot access memory at address {addr}")),
            "{addr}:\n{out}"
        );
    }
    heartbeat_after(&mut link, ticks_in(&out) * 1000);
}

/// `(start, length)` of each `<memory>` element of a memory-map document.
fn map_regions(xml: &str) -> Vec<(u64, u64)> {
    let attr = |element: &str, name: &str| -> Option<u64> {
        let value = element
            .split(&format!("{name}=\"0x"))
            .nth(1)?
            .split('"')
            .next()?;
        u64::from_str_radix(value, 16).ok()
    };
    xml.split("<memory ")
        .skip(1)
        .filter_map(|e| Some((attr(e, "start")?, attr(e, "length")?)))
        .collect()
}

#[test]
fn binary_reads_equal_hex_reads_and_stop_where_memory_ends() {
    let (qemu, mut link) = boot("gdb-binary", "", vec![]);
    let mut stub = Rsp::connect(qemu.com2_port.expect("COM2"));
    let (features, packet_size) = stub.handshake();
    for feature in [
        "binary-upload+",
        "qXfer:memory-map:read+",
        "PacketSize=4000",
    ] {
        assert!(features.contains(feature), "no {feature} in {features}");
    }
    assert!(stub.command(b"?").starts_with(b"T"));
    // In small pieces, so each is formatted from an offset.
    let map = stub.read_xfer("memory-map", 0x80);
    let regions = map_regions(&map);
    let text = regions
        .iter()
        .find(|r| r.0 >= 0xffff_ffff_8000_0000)
        .unwrap_or_else(|| panic!("no image region in {map}"))
        .0;
    let direct = regions
        .iter()
        .find(|r| r.0 == DIRECT_MAP)
        .unwrap_or_else(|| panic!("no direct map in {map}"));

    // 64 KiB of text: binary and hex agree, escapes included.
    let len = 64 * 1024;
    let mut binary = Vec::new();
    while binary.len() < len {
        let at = text + binary.len() as u64;
        let n = packet_size.min(len - binary.len());
        binary.extend(stub.read_binary(at, n).expect("x of kernel text"));
    }
    let mut hex = Vec::new();
    while hex.len() < len {
        let at = text + hex.len() as u64;
        let n = (packet_size / 2).min(len - hex.len());
        hex.extend(stub.read_hex(at, n).expect("m of kernel text"));
    }
    assert_eq!(binary.len(), len);
    assert!(binary == hex, "x and m read different text");
    let escaped = binary.iter().filter(|b| b"#$}*".contains(b)).count();
    assert!(escaped > 0, "no byte of the text needed escaping");

    // A read across the end of RAM stops there; one outside is an error.
    let end = direct.0 + direct.1;
    let tail = stub
        .read_binary(end - 0x100, 0x200)
        .expect("x up to the end");
    assert_eq!(tail.len(), 0x100, "x stops at the end of the direct map");
    assert_eq!(stub.read_hex(end - 0x100, 0x100), Ok(tail));
    assert!(stub.read_binary(end, 0x10).is_err(), "x beyond RAM");
    assert!(stub.read_binary(0x1000, 0x10).is_err(), "x of page 1");
    assert_eq!(stub.command(b"x1000,0"), b"OK");
    // A broken packet is asked for again; one too long to parse is an error.
    stub.send_raw(b"$x1000,10#00");
    assert_eq!(stub.recv_byte(), b'-', "a bad checksum is refused");
    let long = format!("x{},10", "0".repeat(80));
    assert_eq!(stub.command(long.as_bytes()), b"E01");
    // The link benchmark's filler.
    let filler = stub.command(b"qkernel.blast:100");
    assert_eq!(filler.len(), 0x100);
    assert!(filler.iter().all(u8::is_ascii_lowercase));

    assert_eq!(stub.command(b"D"), b"OK");
    drop(stub);
    heartbeat_after(&mut link, 0);
    assert!(qemu.debug_log().contains("[gdb] debugger detached"));
}
