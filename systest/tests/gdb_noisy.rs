//! The in-kernel stub on a noisy line: a damaged or malformed packet gets
//! `-` (send again) or an error reply and the session goes on, breakpoints
//! and all; reads are bounded; software breakpoints stay in kernel text.
//! Spoken to with the raw remote-protocol client, as a bad line would.

use std::process::Command;

use probe_proto::KernelMsg;
use systest::rsp::Rsp;
use systest::{DEADLINE, Qemu, QemuConfig, kernel_elf};

/// Bytes of the stub's packet buffer (its `PacketSize`).
const PACKET_BYTES: usize = 0x4000;

/// The address of the symbol `name` in the kernel ELF.
fn symbol(name: &str) -> u64 {
    let out = Command::new("nm")
        .arg("-C")
        .arg(kernel_elf())
        .output()
        .expect("nm (binutils) lists the kernel's symbols");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut words = l.splitn(3, ' ');
            let addr = words.next()?;
            let _kind = words.next()?;
            (words.next()? == name).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .unwrap_or_else(|| panic!("no symbol {name}"))
}

fn is_error(reply: &[u8]) -> bool {
    reply.len() == 3 && reply[0] == b'E'
}

#[test]
fn a_noisy_line_gets_resends_and_error_replies_and_the_session_goes_on() {
    let cfg = QemuConfig::default();
    let mut qemu = Qemu::start("gdb-noisy", &cfg);
    let mut link = qemu.connect_telemetry();
    // The stub listens once the kernel is up.
    link.wait_for("a Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(_) => Some(()),
        _ => None,
    });
    let port = qemu.com2_port.expect("COM2 configured");
    let mut rsp = Rsp::connect(port);
    let (_, size) = rsp.handshake();
    assert_eq!(size, PACKET_BYTES);

    let text = symbol("kernel_main");
    let ticks = symbol("kernel::time::TICKS");
    // A software breakpoint in kernel text, which must survive the noise.
    assert_eq!(rsp.command(format!("Z0,{text:x},1").as_bytes()), b"OK");

    // A flipped bit: the checksum fails, the stub asks for the packet again.
    for _ in 0..20 {
        rsp.send_raw(format!("$m{text:x},8#00").as_bytes());
        assert_eq!(rsp.recv_byte(), b'-', "a bad checksum is asked for again");
    }
    // Packets that parse badly get an error each, not the end.
    for bad in [
        &b"Gzz"[..],
        b"M0,4:zzzz",
        b"T0",
        b"vCont;x",
        b"mzz,4",
        &[b'q'; PACKET_BYTES + 100],
    ] {
        let reply = rsp.command(bad);
        assert!(
            is_error(&reply),
            "{:?} gets an error, got {:?}",
            String::from_utf8_lossy(&bad[..bad.len().min(16)]),
            String::from_utf8_lossy(&reply)
        );
    }
    // gdb's own `-` (a reply arrived damaged) does not end it either.
    rsp.send_raw(b"-");

    // Still the same session: stopped, the breakpoint still planted.
    let stop = rsp.command(b"?");
    assert!(matches!(stop.first(), Some(b'T' | b'S')), "{stop:?}");
    let planted = rsp.read_hex(text, 1).expect("text is readable");
    assert_eq!(planted, [0xcc], "the stub hides nothing: memory shows int3");

    // Reads are bounded by the packet size, and one that runs off the
    // mapped memory returns what could be read.
    let reply = rsp.command(format!("m{text:x},100000").as_bytes());
    assert_eq!(reply.len(), PACKET_BYTES, "half a packet of memory, as hex");
    let end_of_ram = 0xffff_8000_0000_0000u64 + (128 << 20);
    let reply = rsp.command(format!("m{:x},40", end_of_ram - 16).as_bytes());
    assert_eq!(reply.len(), 32, "the 16 readable bytes, no error appended");
    assert!(is_error(
        &rsp.command(format!("m{end_of_ram:x},8").as_bytes())
    ));
    let blast = rsp.command(b"qkernel.blast:ffffffff");
    assert_eq!(blast.len(), 1 << 20, "a blast is bounded to 1 MiB");

    // Software breakpoints only in kernel text: not in .bss, not in the
    // direct map.
    assert!(is_error(&rsp.command(format!("Z0,{ticks:x},1").as_bytes())));
    let direct_map = 0xffff_8000_0010_0000u64;
    assert!(is_error(
        &rsp.command(format!("Z0,{direct_map:x},1").as_bytes())
    ));
    assert_eq!(rsp.command(format!("z0,{text:x},1").as_bytes()), b"OK");
    assert_eq!(
        rsp.read_hex(text, 1).unwrap(),
        [planted_free(text)],
        "the byte restored"
    );

    // A client that goes away in the middle of a long reply: the next one
    // gets its own answers, not the rest of the old reply.
    rsp.send(b"qkernel.blast:100000");
    for _ in 0..4096 {
        rsp.recv_byte();
    }
    drop(rsp);
    let mut rsp = Rsp::connect(port);
    rsp.send(b"qSupported:multiprocess+");
    let mut stale = 0;
    while !matches!(rsp.recv_byte(), b'+' | b'$') {
        stale += 1;
    }
    assert!(
        stale < 2048,
        "{stale} bytes of the old reply reached the new client"
    );
    let supported = rsp.recv();
    assert!(supported.starts_with(b"PacketSize="), "{supported:?}");

    // Detached, the kernel runs on.
    assert_eq!(rsp.command(b"D"), b"OK");
    let first = link.wait_for("a Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(h) => Some(h.ts_us),
        _ => None,
    });
    link.wait_for("a later Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(h) if h.ts_us > first => Some(()),
        _ => None,
    });
}

/// The byte at `addr` in the kernel ELF's text, as loaded.
fn planted_free(addr: u64) -> u8 {
    let out = Command::new("objdump")
        .args(["-d", "--start-address"])
        .arg(format!("{addr:#x}"))
        .arg("--stop-address")
        .arg(format!("{:#x}", addr + 1))
        .arg(kernel_elf())
        .output()
        .expect("objdump (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{addr:x}:")))
        .unwrap_or_else(|| panic!("no instruction at {addr:#x}:\n{text}"));
    let hex = line.split('\t').nth(1).expect("bytes column");
    u8::from_str_radix(hex.split_whitespace().next().unwrap(), 16).unwrap()
}
