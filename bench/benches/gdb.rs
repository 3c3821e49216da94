//! Bulk memory reads through the in-kernel GDB stub, in one run against
//! two peers: the COM2 link's own ceiling and QEMU's built-in gdb stub.
//!
//! It boots the kernel (`$KERNEL_ELF`, else `target/kernel.elf`; `make
//! bench` builds it) in QEMU (TCG) with COM2 on a loopback TCP port as
//! `make start` does, and QEMU's own stub (`-gdb`) on another, then takes
//! [`ROUNDS`] runs of each, the stub's three interleaved 16 KiB at a time
//! so that a busy host slows them alike, and each 16 KiB step counted at
//! its fastest:
//!
//! - COM2 raw: the kernel sends [`LEN`] filler bytes (`qkernel.blast`, no
//!   work per byte beyond the port writes) in replies of 16 KiB, the size
//!   of the `x` replies below; bytes per second at the host: the most a
//!   protocol with those packets can carry on this link;
//! - the in-kernel stub reading [`LEN`] bytes of kernel text (dense,
//!   non-zero) with `x` (binary, 16 KiB a packet: what gdb 16 and later
//!   use once the stub advertises `binary-upload+`) and with `m` (hex,
//!   8 KiB a packet: what gdb 13 uses); bytes of memory per second;
//! - QEMU's stub reading the same bytes with `m` (2 KiB a packet, its
//!   packet size);
//! - real gdb dumping the same bytes (`dump binary memory`) through each
//!   stub, timed inside gdb (its Python), once each.
//!
//! The client (`systest::rsp`) speaks the remote protocol directly: it
//! acks every reply and decodes run-length encoding and escapes. Every
//! read must equal QEMU's bytes. Run with `cargo bench -p bench --bench
//! gdb`.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use systest::rsp::{Rsp, unescape, unhex, unrle};
use systest::{Com1, Qemu, QemuConfig, free_port, kernel_elf, run_gdb};

/// Bytes read (and blasted) per run.
const LEN: usize = 256 * 1024;
/// Runs of each measurement; the best counts.
const ROUNDS: usize = 7;
/// Memory per `x` request to the kernel's stub: its `PacketSize`.
const X_CHUNK: usize = 0x4000;

/// QEMUs this process started: killed by PID if the bench panics, even
/// when panics abort.
static QEMU_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// A request the benchmark makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    /// `qkernel.blast`: filler, no memory read.
    Blast,
    /// `x`: memory, binary.
    Binary,
    /// `m`: memory, hex.
    Hex,
}

/// One request for `n` bytes at `at` and its decoded reply (filler gives
/// no bytes), timed from sending it to the reply's last byte.
fn fetch(rsp: &mut Rsp, request: Request, at: u64, n: usize) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let reply = match request {
        Request::Blast => rsp.command(format!("qkernel.blast:{n:x}").as_bytes()),
        Request::Binary => rsp.command(format!("x{at:x},{n:x}").as_bytes()),
        Request::Hex => rsp.command(format!("m{at:x},{n:x}").as_bytes()),
    };
    let took = start.elapsed();
    let bytes = match request {
        Request::Blast => {
            assert_eq!(reply.len(), n, "blast length");
            assert!(reply.iter().all(u8::is_ascii_lowercase), "blast filler");
            return (Vec::new(), took);
        }
        Request::Binary => unescape(
            reply
                .strip_prefix(b"b")
                .unwrap_or_else(|| panic!("x{at:x}: {:?}", String::from_utf8_lossy(&reply))),
        ),
        Request::Hex => {
            assert!(reply.first() != Some(&b'E'), "m{at:x} failed");
            unhex(&unrle(&reply))
        }
    };
    assert!(!bytes.is_empty(), "empty read at {at:#x}");
    (bytes, took)
}

/// One pass over `LEN` bytes: what was read and how long each 16 KiB
/// step took.
type Run = (Vec<u8>, Vec<Duration>);

/// `LEN` bytes at `addr` through each of `requests` (with its size per
/// request), interleaved 16 KiB at a time so that whatever else the host
/// does slows them alike; one [`Run`] per request kind.
fn round(rsp: &mut Rsp, addr: u64, requests: &[(Request, usize)]) -> Vec<Run> {
    let mut runs = vec![(Vec::with_capacity(LEN), Vec::new()); requests.len()];
    for base in (0..LEN).step_by(X_CHUNK) {
        for (&(request, size), (data, steps)) in requests.iter().zip(&mut runs) {
            let mut done = 0;
            let mut took = Duration::ZERO;
            while done < X_CHUNK {
                let at = addr + (base + done) as u64;
                let (bytes, t) = fetch(rsp, request, at, size.min(X_CHUNK - done));
                done += if request == Request::Blast {
                    size.min(X_CHUNK - done)
                } else {
                    bytes.len()
                };
                data.extend_from_slice(&bytes);
                took += t;
            }
            steps.push(took);
        }
    }
    runs
}

/// Several runs over the same bytes, which must read the same; each 16 KiB
/// step counts at its fastest, since a busy host only ever adds time.
#[derive(Default)]
struct Best {
    data: Option<Vec<u8>>,
    steps: Vec<Duration>,
}

impl Best {
    fn add(&mut self, (data, steps): Run) {
        match &self.data {
            Some(first) => assert!(*first == data, "runs read different bytes"),
            None => self.data = Some(data),
        }
        if self.steps.is_empty() {
            self.steps = steps;
        } else {
            for (best, t) in self.steps.iter_mut().zip(steps) {
                *best = (*best).min(t);
            }
        }
    }

    fn took(&self) -> Duration {
        assert!(!self.steps.is_empty(), "at least one run");
        self.steps.iter().sum()
    }

    fn data(&self) -> &[u8] {
        self.data.as_deref().expect("at least one run")
    }
}

/// `dump binary memory` of the range through the stub on `port`, timed
/// inside gdb (its Python); the dumped bytes and the dump's wall time, or
/// `None` if this gdb cannot time it.
fn gdb_dump(port: u16, addr: u64, dir: &Path, name: &str) -> Option<(Vec<u8>, Duration)> {
    let file = dir.join(name);
    let dump = format!(
        "dump binary memory {} {addr:#x} {:#x}",
        file.display(),
        addr + LEN as u64
    );
    let out = run_gdb(&[
        "set pagination off".into(),
        format!("target remote 127.0.0.1:{port}"),
        format!(
            "python import time; t = time.monotonic(); gdb.execute({dump:?}); \
             print('dump took %.6f s' % (time.monotonic() - t))"
        ),
        "detach".into(),
    ]);
    let seconds: f64 = out.lines().find_map(|l| {
        l.strip_prefix("dump took ")?
            .strip_suffix(" s")?
            .parse()
            .ok()
    })?;
    let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{e}:\n{out}"));
    Some((data, Duration::from_secs_f64(seconds)))
}

/// Where `.text` starts in the kernel ELF: `__kernel_text_start`.
fn text_start(elf: &Path) -> u64 {
    let image = std::fs::read(elf).expect("read the kernel ELF");
    let u16_at = |o: usize| u16::from_le_bytes(image[o..o + 2].try_into().expect("2 bytes"));
    let u32_at = |o: usize| u32::from_le_bytes(image[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(image[o..o + 8].try_into().expect("8 bytes"));
    assert_eq!(&image[..5], b"\x7fELF\x02", "an ELF64 kernel");
    let shoff = u64_at(0x28) as usize;
    let shentsize = usize::from(u16_at(0x3a));
    let shnum = usize::from(u16_at(0x3c));
    let shstrndx = usize::from(u16_at(0x3e));
    let section = |i: usize| shoff + i * shentsize;
    let names = u64_at(section(shstrndx) + 0x18) as usize;
    (0..shnum)
        .find(|&i| {
            let name = names + u32_at(section(i)) as usize;
            image[name..].starts_with(b".text\0")
        })
        .map(|i| u64_at(section(i) + 0x10))
        .expect("a .text section")
}

fn rate(took: Duration) -> f64 {
    LEN as f64 / took.as_secs_f64()
}

fn main() {
    let elf = kernel_elf();
    let text = text_start(&elf);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        for pid in QEMU_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        default_hook(info);
    }));

    let qemu_port = free_port();
    let cfg = QemuConfig {
        com1: Com1::NoWait,
        extra: vec!["-gdb".into(), format!("tcp:127.0.0.1:{qemu_port}")],
        ..Default::default()
    };
    let mut qemu = Qemu::start("bench-gdb", &cfg);
    QEMU_PIDS.lock().expect("pid list").push(qemu.pid());
    qemu.wait_debug_log("kernel up");
    let com2 = qemu.com2_port.expect("COM2");

    // The kernel's stub: the first packet stops the kernel.
    let mut stub = Rsp::connect(com2);
    let (features, packet_size) = stub.handshake();
    assert!(
        features.contains("binary-upload+"),
        "the stub does not advertise binary reads: {features}"
    );
    stub.command(b"?");
    let (mut raw, mut by_x, mut by_m) = (Best::default(), Best::default(), Best::default());
    let requests = [
        (Request::Blast, X_CHUNK),
        (Request::Binary, X_CHUNK),
        (Request::Hex, packet_size / 2),
    ];
    for _ in 0..ROUNDS {
        let mut runs = round(&mut stub, text, &requests).into_iter();
        for best in [&mut raw, &mut by_x, &mut by_m] {
            best.add(runs.next().expect("one run per request"));
        }
    }
    assert_eq!(stub.command(b"D"), b"OK");
    drop(stub);

    let by_gdb = gdb_dump(com2, text, &qemu.dir, "stub.bin");

    // QEMU's stub, same range, same client.
    let mut peer = Rsp::connect(qemu_port);
    let (_, peer_packet_size) = peer.handshake();
    let mut by_qemu = Best::default();
    for _ in 0..ROUNDS {
        let run = round(&mut peer, text, &[(Request::Hex, peer_packet_size / 2)]);
        by_qemu.add(run.into_iter().next().expect("one run"));
    }
    let theirs = by_qemu.data();
    peer.send(b"D");
    drop(peer);
    let by_gdb_qemu = gdb_dump(qemu_port, text, &qemu.dir, "qemu.bin");

    assert!(by_x.data() == theirs, "x read differs from QEMU's stub");
    assert!(by_m.data() == theirs, "m read differs from QEMU's stub");
    for (dump, through) in [(&by_gdb, "the stub"), (&by_gdb_qemu, "QEMU's stub")] {
        if let Some((data, _)) = dump {
            assert!(data == theirs, "gdb's dump through {through} differs");
        }
    }
    drop(qemu);
    QEMU_PIDS.lock().expect("pid list").clear();

    let raw_rate = rate(raw.took());
    let qemu_rate = rate(by_qemu.took());
    let gdb_version = Command::new("gdb")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default();
    println!(
        "gdb stub: {} KiB of kernel text at {text:#x}, each 16 KiB at its best of {ROUNDS}; \
         KB/s = 1000 bytes of memory per second; {gdb_version}",
        LEN / 1024
    );
    println!("{:<44} {:>10} {:>9} {:>9}", "path", "KB/s", "/raw", "/QEMU");
    let mut rows = vec![
        ("COM2 raw (qkernel.blast, 16 KiB)", raw_rate),
        ("in-kernel stub, x (binary, 16 KiB)", rate(by_x.took())),
        ("in-kernel stub, m (hex, 8 KiB)", rate(by_m.took())),
        ("QEMU stub, m (hex, 2 KiB)", qemu_rate),
    ];
    for (dump, name) in [
        (&by_gdb, "gdb dump via in-kernel stub"),
        (&by_gdb_qemu, "gdb dump via QEMU stub"),
    ] {
        match dump {
            Some((_, took)) => rows.push((name, rate(*took))),
            None => println!("{name}: gdb cannot time it (no Python)"),
        }
    }
    for (name, r) in rows {
        println!(
            "{name:<44} {:>10.1} {:>9.2} {:>9.3}",
            r / 1000.0,
            r / raw_rate,
            r / qemu_rate
        );
    }
    println!(
        "raw: the kernel's transmit path alone (one wait per 16-byte FIFO burst); \
         every read verified against QEMU's stub"
    );
}
