//! The stub's process `monitor` commands against a kernel running memtest:
//! `ps` agrees with the telemetry listing, `vmas`, `ptdump` and `leaks` show
//! what memtest made, a bad pid answers an error, and the kernel runs on.

use probe_proto::{HostMsg, KernelMsg};
use systest::{DEADLINE, LoggedLine, Qemu, QemuConfig, Telemetry, run_gdb};

fn boot() -> (Qemu, Telemetry) {
    let cfg = QemuConfig {
        append: "memevents=0 init=memtest".into(),
        ..Default::default()
    };
    let mut qemu = Qemu::start("gdb-monitor", &cfg);
    let link = qemu.connect_telemetry();
    qemu.wait_debug_log("memtest: ready");
    (qemu, link)
}

/// `(pid, heap size, heap used, heap free, shed size, heaps, sheds)` of the
/// program `name` in the telemetry listing.
type Row = (u32, u64, u64, u64, u64, u32, u32);

fn listed(link: &mut Telemetry, name: &str) -> Row {
    link.send(&HostMsg::Processes { pid: -1 });
    let mut row = None;
    link.wait_for("ProcessListEnd", DEADLINE, |m| {
        match m {
            KernelMsg::ProcessInfo(i) if i.name == name => {
                row = Some((
                    i.pid,
                    i.total_heap_size,
                    i.total_heap_used,
                    i.total_heap_free,
                    i.total_shed_size,
                    i.nr_heaps,
                    i.nr_sheds,
                ));
            }
            KernelMsg::ProcessListEnd(_) => return Some(()),
            _ => {}
        }
        None
    });
    row.unwrap_or_else(|| panic!("no {name} in the listing"))
}

/// The words of the `monitor ps` line whose last word is `name`.
fn ps_row<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() == 10 && w[9] == name && w[0].parse::<u32>().is_ok())
        .unwrap_or_else(|| panic!("no ps line for {name}:\n{out}"))
}

#[test]
fn process_monitor_commands_show_memtest() {
    let (qemu, mut link) = boot();
    let (pid, size, used, free, shed, heaps, sheds) = listed(&mut link, "memtest");
    assert_eq!(used, 600, "memtest holds 100 + 200 + 300 bytes");

    let port = qemu.com2_port.expect("COM2 configured");
    let cmds: Vec<String> = [
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
        "monitor help".into(),
        "monitor ps".into(),
        format!("monitor vmas {pid}"),
        format!("monitor ptdump {pid}"),
        format!("monitor ptdump {pid} 0x400000 0x401000"),
        format!("monitor leaks {pid}"),
        "monitor vmas 999".into(),
        "monitor ptdump 12x".into(),
        "monitor ptdump 0x2000 0x1000".into(),
        "monitor leaks 999".into(),
        "detach".into(),
    ]
    .into();
    let out = run_gdb(&cmds);
    println!("{out}");

    for c in ["ps", "vmas PID", "ptdump [PID]", "leaks [PID]"] {
        assert!(out.contains(c), "help lists {c}:\n{out}");
    }

    let row = ps_row(&out, "memtest");
    assert_eq!(row[0], pid.to_string(), "{out}");
    let n = |i: usize| row[i].parse::<u64>().unwrap();
    assert_eq!(
        (n(2), n(3), n(4), n(5), n(6), n(7)),
        (u64::from(heaps), size, used, free, u64::from(sheds), shed),
        "monitor ps agrees with the telemetry listing:\n{out}"
    );
    assert_eq!((n(2), n(4), n(6)), (2, 600, 2), "{out}");
    let kernel = ps_row(&out, "kernel");
    assert_eq!((kernel[0], kernel[1]), ("0", "kernel"), "{out}");

    let vma_lines: Vec<&str> = out.lines().filter(|l| l.contains(" resident=")).collect();
    assert!(
        vma_lines
            .iter()
            .any(|l| l.starts_with("0000000000400000-") && l.contains(" r-xp ")),
        "code at 0x400000, r-x:\n{out}"
    );
    assert!(vma_lines.iter().any(|l| l.contains(" heap ")), "{out}");
    assert!(vma_lines.iter().any(|l| l.contains(" shed ")), "{out}");

    assert!(
        out.lines().any(|l| l.starts_with("0x0000000000400000-")),
        "a range at 0x400000:\n{out}"
    );
    for (key, bytes) in [(1, 100), (2, 200), (3, 300)] {
        let want = format!("heap 1 key {key}: 1 blocks, {bytes} bytes");
        assert!(out.contains(&want), "{want:?} in:\n{out}");
    }
    assert!(out.contains("no process with pid 999"), "{out}");
    assert!(out.contains("\"12x\" is not a pid"), "{out}");
    assert!(out.contains("ptdump: empty range"), "{out}");

    // Detached: the kernel runs on and answers.
    link.send(&HostMsg::Ping { nonce: 7 });
    link.wait_for("Pong or Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Pong(_) | KernelMsg::Heartbeat(_) => Some(()),
        _ => None,
    });
}

/// `monitor kleak` runs the same scan as `mmtop leaks --scan`: against
/// `selftest=kleak` it lists exactly the logged leaks, each with its call
/// stack, new the first time and confirmed the second.
#[test]
fn monitor_kleak_lists_the_injected_leaks() {
    let cfg = QemuConfig {
        append: "memevents=0 selftest=kleak".into(),
        ..Default::default()
    };
    let mut qemu = Qemu::start("gdb-kleak", &cfg);
    let _link = qemu.connect_telemetry();
    qemu.wait_debug_log("kleak: leaks made");
    let leaked: Vec<String> = LoggedLine::all(&qemu.debug_log(), "leaked: ")
        .iter()
        .map(|l| l.field("addr=").to_string())
        .collect();
    assert_eq!(leaked.len(), 6);
    let port = qemu.com2_port.expect("COM2 configured");
    let cmds: Vec<String> = [
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
        "monitor kleak 0".into(),
        "monitor kleak 0".into(),
        "monitor kleak x".into(),
        "detach".into(),
    ]
    .into();
    let out = run_gdb(&cmds);
    for addr in &leaked {
        for state in ["new", "confirmed"] {
            let want = format!("leak {addr} ");
            assert!(
                out.lines()
                    .any(|l| l.starts_with(&want) && l.contains(&format!(" {state} "))),
                "{want}... {state} in:\n{out}"
            );
        }
    }
    let leak_lines = out.lines().filter(|l| l.starts_with("leak 0x")).count();
    assert_eq!(leak_lines, 12, "six leaks, twice:\n{out}");
    assert!(
        out.contains("kernel leak scan: 6 leaks (0 confirmed)"),
        "{out}"
    );
    assert!(
        out.contains("kernel leak scan: 6 leaks (6 confirmed)"),
        "{out}"
    );
    // Each leak's stack follows it, one return address a line.
    assert!(
        out.lines().any(|l| l.starts_with("    0xffffffff8")),
        "{out}"
    );
    assert!(
        out.contains("kleak: the minimum age is a number of milliseconds"),
        "{out}"
    );
}
