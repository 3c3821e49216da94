//! The foundation, end to end: the kernel boots in QEMU, speaks the protocol
//! on COM1, answers commands, reports faults, and COM2 is alive.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use probe_proto::{HostMsg, KernelMsg, MemKind, PROTOCOL_VERSION};
use systest::{DEADLINE, EXIT_FAILURE, EXIT_SUCCESS, Qemu, QemuConfig};

/// Boots with `-m mem_mib`, reads the boot `Hello` and its memory map.
fn hello_matches_dash_m(mem_mib: u32) {
    let cfg = QemuConfig {
        mem_mib,
        ..Default::default()
    };
    let mut qemu = Qemu::start("hello", &cfg);
    let started = Instant::now();
    let mut link = qemu.connect_telemetry();
    let (version, total, usable, nr_regions, tsc_hz) =
        link.wait_for("Hello", DEADLINE, |m| match m {
            KernelMsg::Hello(h) => Some((
                h.version,
                h.mem_total_bytes,
                h.mem_usable_bytes,
                h.nr_regions,
                h.tsc_hz,
            )),
            _ => None,
        });
    // The boot Hello already carries the TSC's rate: it is measured first.
    assert!(
        (100_000_000..100_000_000_000).contains(&tsc_hz),
        "a TSC rate in the boot Hello: {tsc_hz} Hz"
    );
    eprintln!("boot to Hello: {:?} (-m {mem_mib}M)", started.elapsed());
    assert_eq!(version, PROTOCOL_VERSION);
    assert_eq!(
        total,
        u64::from(mem_mib) << 20,
        "Hello's RAM total must equal -m"
    );
    assert!(
        usable > total - (2 << 20) && usable < total,
        "usable {usable:#x} vs total {total:#x}"
    );

    let mut regions = Vec::new();
    while regions.len() < nr_regions as usize {
        regions.push(link.wait_for("MemRegion", DEADLINE, |m| match m {
            KernelMsg::MemRegion(r) => Some(*r),
            _ => None,
        }));
    }
    for (i, r) in regions.iter().enumerate() {
        assert_eq!(r.index as usize, i, "regions arrive in order");
    }
    let usable_sum: u64 = regions
        .iter()
        .filter(|r| r.kind == MemKind::Usable)
        .map(|r| r.len)
        .sum();
    assert_eq!(
        usable_sum, usable,
        "the regions add up to Hello's usable total"
    );
    let top = regions
        .iter()
        .filter(|r| r.kind == MemKind::Usable)
        .map(|r| r.start + r.len)
        .max();
    assert!(top.unwrap() <= total, "no usable RAM above -m");
}

#[test]
fn boot_hello_reports_version_and_ram_equal_to_dash_m_128m() {
    hello_matches_dash_m(128);
}

#[test]
fn boot_hello_reports_version_and_ram_equal_to_dash_m_512m() {
    hello_matches_dash_m(512);
}

#[test]
fn late_client_gets_hello_after_resync_and_ping_gets_pong() {
    let (_qemu, mut link) = Qemu::boot("late", &QemuConfig::default().no_wait());
    link.resync();
    for nonce in [7, 0xdead_beef] {
        link.send(&HostMsg::Ping { nonce });
        let echoed = link.wait_for("Pong", DEADLINE, |m| match m {
            KernelMsg::Pong(p) => Some(p.nonce),
            _ => None,
        });
        assert_eq!(echoed, nonce);
    }
}

#[test]
fn heartbeats_arrive_and_time_advances() {
    let (_qemu, mut link) = Qemu::boot("heartbeat", &QemuConfig::default());
    let heartbeat = |m: &KernelMsg<'_>| match m {
        KernelMsg::Heartbeat(h) => Some(h.ts_us),
        _ => None,
    };
    let first = link.wait_for("first Heartbeat", DEADLINE, heartbeat);
    let second = link.wait_for("second Heartbeat", DEADLINE, heartbeat);
    assert!(
        second > first,
        "heartbeat timestamps increase: {first} then {second}"
    );
}

#[test]
fn null_read_in_kernel_is_reported_as_page_fault_and_exits_with_failure() {
    let (mut qemu, mut link) =
        Qemu::boot("null-read", &QemuConfig::with_append("selftest=null-read"));
    let exc = link.wait_for("Exception", DEADLINE, |m| match m {
        KernelMsg::Exception(e) => Some(*e),
        _ => None,
    });
    assert_eq!(exc.vector, 14, "page fault");
    assert_eq!(exc.cr2, 0, "the faulting address is the null page");
    assert_eq!(exc.error_code & 1, 0, "page not present");
    assert_eq!(exc.error_code & 2, 0, "a read");
    assert!(
        exc.rip >= 0xffff_ffff_8000_0000,
        "fault in kernel text: {:#x}",
        exc.rip
    );
    let message = link.wait_for("Panic", DEADLINE, |m| match m {
        KernelMsg::Panic(p) => Some(p.message.to_string()),
        _ => None,
    });
    assert!(message.contains("page fault"), "{message}");
    assert!(
        message.contains("read of non-present page 0x0 in kernel mode"),
        "{message}"
    );
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
}

#[test]
fn panic_is_reported_with_its_location_and_exits_with_failure() {
    let (mut qemu, mut link) = Qemu::boot("panic", &QemuConfig::with_append("selftest=panic"));
    let (message, file, line) = link.wait_for("Panic", DEADLINE, |m| match m {
        KernelMsg::Panic(p) => Some((p.message.to_string(), p.file.to_string(), p.line)),
        _ => None,
    });
    assert_eq!(message, "selftest panic requested");
    assert!(file.ends_with("selftest.rs"), "{file}");
    assert!(line > 0);
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
    assert!(
        qemu.debug_log()
            .contains("[PANIC] selftest panic requested")
    );
}

#[test]
fn a_panic_ends_the_machine_even_when_the_host_stopped_reading() {
    // Connected but never read: the kernel's boot output fills the socket,
    // so the UART backs up. The panic's last words wait a bounded time, then
    // the machine must still end.
    let (mut qemu, _link) = Qemu::boot("panic-stalled", &QemuConfig::with_append("selftest=panic"));
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
    assert!(
        qemu.debug_log()
            .contains("[PANIC] selftest panic requested")
    );
}

#[test]
fn a_host_that_pauses_before_reading_still_gets_the_panic() {
    let (mut qemu, mut link) =
        Qemu::boot("panic-paused", &QemuConfig::with_append("selftest=panic"));
    // Shorter than the kernel's wait for its last words.
    std::thread::sleep(Duration::from_millis(500));
    let message = link.wait_for("Panic", DEADLINE, |m| match m {
        KernelMsg::Panic(p) => Some(p.message.to_string()),
        _ => None,
    });
    assert_eq!(message, "selftest panic requested");
    assert_eq!(qemu.wait_exit(), EXIT_FAILURE);
}

#[test]
fn breakpoint_trap_resumes_and_exit_reports_success() {
    let (mut qemu, _link) = Qemu::boot("int3", &QemuConfig::with_append("selftest=breakpoint"));
    assert_eq!(qemu.wait_exit(), EXIT_SUCCESS);
    let log = qemu.debug_log();
    assert!(log.contains("breakpoint at 0xffffffff8"), "{log}");
    assert!(log.contains("resumed after breakpoint"), "{log}");
}

#[test]
fn com2_answers_gdb_packets() {
    let (mut qemu, mut link) = Qemu::boot("com2", &QemuConfig::default());
    link.wait_for("Hello", DEADLINE, |m| {
        matches!(m, KernelMsg::Hello(_)).then_some(())
    });
    let mut com2 = qemu.connect_com2();
    com2.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A GDB packet gets an ack and the stub's feature list.
    let mut got = Vec::new();
    let start = Instant::now();
    while !(got.starts_with(b"+$PacketSize=")
        && got[got.len().saturating_sub(3)..].starts_with(b"#"))
    {
        assert!(start.elapsed() < DEADLINE, "no reply on COM2, got {got:?}");
        if got.is_empty() {
            com2.write_all(b"$qSupported:swbreak+#8b").unwrap();
        }
        let mut buf = [0u8; 256];
        if let Ok(n) = com2.read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
        if got.is_empty() {
            // The kernel may not have opened COM2 yet; ask again.
            continue;
        }
    }
    let reply = String::from_utf8_lossy(&got);
    assert!(reply.contains("swbreak+"), "{reply}");
    // Detaching resumes the kernel.
    com2.write_all(b"+$D#44").unwrap();
    let mut ok = Vec::new();
    while !ok.ends_with(b"$OK#9a") {
        assert!(start.elapsed() < DEADLINE, "no OK to detach, got {ok:?}");
        let mut buf = [0u8; 64];
        if let Ok(n) = com2.read(&mut buf) {
            ok.extend_from_slice(&buf[..n]);
        }
    }
}

#[test]
fn garbage_and_truncated_frames_are_counted_and_ignored() {
    let (mut qemu, mut link) = Qemu::boot("garbage", &QemuConfig::default());
    link.wait_for("Hello", DEADLINE, |m| {
        matches!(m, KernelMsg::Hello(_)).then_some(())
    });

    let mut ping = [0u8; 32];
    let frame = probe_proto::encode_frame(&HostMsg::Ping { nonce: 1 }, &mut ping)
        .unwrap()
        .to_vec();
    let mut bad_crc = frame.clone();
    bad_crc[2] ^= 0x40;
    let bad_frames: Vec<Vec<u8>> = vec![
        b"hello kernel, this is not a frame\0".to_vec(), // not COBS/CRC
        frame[..frame.len() - 3]
            .iter()
            .copied()
            .chain([0])
            .collect(), // truncated
        bad_crc,                                         // corrupted byte
        vec![0x55; 400].into_iter().chain([0]).collect(), // longer than any command
        vec![0x03, 0x07, 0x07, 0x00],                    // CRC-less fragment
    ];
    for bad in &bad_frames {
        link.send_raw(bad);
    }
    link.send(&HostMsg::Ping { nonce: 42 });
    let nonce = link.wait_for("Pong after garbage", DEADLINE, |m| match m {
        KernelMsg::Pong(p) => Some(p.nonce),
        _ => None,
    });
    assert_eq!(nonce, 42, "the kernel still answers after garbage");
    let (rx_bad, rx_frames) = link.wait_for("Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(h) => Some((h.rx_bad, h.rx_frames)),
        _ => None,
    });
    assert_eq!(
        rx_bad,
        bad_frames.len() as u64,
        "every bad frame is counted once"
    );
    assert_eq!(rx_frames, 1, "only the good ping was handled");
    assert!(qemu.is_running());
}

#[test]
fn host_that_disconnects_and_reconnects_gets_a_fresh_hello() {
    let mut qemu = Qemu::start("reconnect", &QemuConfig::default().no_wait());
    let first = {
        let mut link = qemu.connect_telemetry();
        link.resync()
    };
    // Half a frame, then hang up: the next client must not inherit it.
    {
        let mut link = qemu.connect_telemetry();
        link.send_raw(&[0x06, 0x01, 0xac]);
    }
    let mut link = qemu.connect_telemetry();
    let second = link.resync();
    assert!(
        second > first,
        "a fresh Hello, not a replay: {first} then {second}"
    );
    link.send(&HostMsg::Ping { nonce: 9 });
    link.wait_for("Pong", DEADLINE, |m| {
        matches!(m, KernelMsg::Pong(p) if p.nonce == 9).then_some(())
    });
}

#[test]
fn a_programs_escape_sequences_reach_the_log_escaped() {
    let mut qemu = Qemu::start(
        "escaper",
        &QemuConfig::with_append("init=escaper").no_wait(),
    );
    qemu.wait_debug_log("escaper: ");
    qemu.wait_debug_log("pid 1 ended");
    let log = qemu.debug_log();
    assert!(
        log.contains(r"escaper: \u{1b}[31mred\u{7}"),
        "escaped in the log:\n{log}"
    );
    assert!(
        !log.contains('\u{1b}') && !log.contains('\u{7}'),
        "no raw control byte"
    );
}

#[test]
fn a_command_line_over_512_bytes_is_cut_with_a_warning() {
    let long = format!("loglevel=2 {}", "x".repeat(600));
    let mut qemu = Qemu::start("long-cmdline", &QemuConfig::with_append(long).no_wait());
    qemu.wait_debug_log("kernel up");
    qemu.wait_debug_log("longer than 512 bytes");
}
