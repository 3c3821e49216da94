//! The telemetry's wire cost, in one run: bytes per memory event (protocol
//! 2.0's batches beside 1.x's frame per message), events per second through
//! QEMU's UART, the kernel's cycles per event, the slowdown of a ring-3
//! workload with events on, and the time from QEMU's start to the first
//! `Hello`.
//!
//! It boots the kernel (`$KERNEL_ELF`, else `target/kernel.elf`; `make
//! bench` builds it) in QEMU (TCG):
//!
//! - the demo workload, recorded from boot for [`DEMO_SECS`] seconds, and
//!   `selftest=mm`: every event of the recording is re-encoded both ways
//!   (1.x: `encode_frame` of the message alone, which is what 1.x sent;
//!   2.0: the records a batch encoder writes for it), and the bytes of the
//!   `EventBatch` frames actually received give the overall figure with
//!   headers, CRC, COBS and terminators paid;
//! - `selftest=wire`: 20,000 events timed by the kernel with `rdtsc`
//!   (median and 99th percentile, with events on and with `memevents=0`),
//!   and the rate the host received them at, drops counted;
//! - `init=allocbench` with events on and with `memevents=0`, alternating,
//!   the best of [`BOOTS`] each: the program's own time for 20,480
//!   alloc/free pairs;
//! - the first `Hello` after QEMU starts (COM1 waits for this client, so
//!   the guest starts when QEMU is ready), best of the boots above.
//!
//! Run with `cargo bench -p bench --bench wire`.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use probe_proto::batch::{BatchDecoder, BatchEncoder, Push};
use probe_proto::frame::MAX_FRAME;
use probe_proto::{FrameDecoder, KernelMsg, encode_frame};
use systest::{Qemu, QemuConfig};

/// Seconds of the demo recorded.
const DEMO_SECS: u64 = 10;
/// Boots with events on and off each, for the slowdown.
const BOOTS: usize = 3;

/// QEMUs this process started: killed by PID if the bench panics.
static QEMU_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// What one boot's COM1 carried.
struct Capture {
    /// Every message, batches expanded, in order, with the time it arrived.
    msgs: Vec<(Instant, KernelMsg<'static>)>,
    /// Bytes of `EventBatch` frames, terminators included.
    batch_bytes: u64,
    /// Events those held.
    batch_events: u64,
    /// Sum of the `Dropped` counts.
    dropped: u64,
    /// From QEMU's start to the first `Hello`.
    to_hello: Option<Duration>,
    qemu: Qemu,
}

/// Boots with `append` (COM1 waiting for us) and reads COM1 from the
/// start until `done` says so or `limit` passes.
fn capture(append: &str, limit: Duration, mut done: impl FnMut(&Qemu) -> bool) -> Capture {
    let started = Instant::now();
    let qemu = Qemu::start("bench-wire", &QemuConfig::with_append(append));
    QEMU_PIDS.lock().expect("pid list").push(qemu.pid());
    let mut stream = loop {
        match UnixStream::connect(&qemu.com1_path) {
            Ok(s) => break s,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => panic!("cannot connect to COM1: {e}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut frames = Box::new(FrameDecoder::<MAX_FRAME>::new());
    let mut batches = BatchDecoder::new();
    let mut cap = Capture {
        msgs: Vec::new(),
        batch_bytes: 0,
        batch_events: 0,
        dropped: 0,
        to_hello: None,
        qemu,
    };
    let mut frame_len = 0u64;
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit && !done(&cap.qemu) {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => panic!("COM1 read: {e}"),
        };
        let now = Instant::now();
        for &b in &buf[..n] {
            frame_len += 1;
            let Some(result) = frames.push::<KernelMsg>(b) else {
                continue;
            };
            let len = std::mem::take(&mut frame_len);
            match result {
                Ok(KernelMsg::EventBatch(batch)) => {
                    let events = batches.decode(&batch.body).expect("an unbroken stream");
                    cap.batch_bytes += len;
                    cap.batch_events += events.len() as u64;
                    cap.msgs.extend(events.into_iter().map(|e| (now, e)));
                }
                Ok(msg) => {
                    if let KernelMsg::Hello(_) = msg {
                        cap.to_hello.get_or_insert(now - started);
                    }
                    if let KernelMsg::Dropped { count } = msg {
                        cap.dropped += count;
                    }
                    cap.msgs.push((now, msg.into_owned()));
                }
                Err(e) => panic!("bad frame on COM1: {e:?}"),
            }
        }
    }
    cap
}

fn event_type(msg: &KernelMsg<'_>) -> Option<&'static str> {
    Some(match msg {
        KernelMsg::HeapAlloc(_) => "heap_alloc",
        KernelMsg::HeapFree(_) => "heap_free",
        KernelMsg::PageAlloc(_) => "page_alloc",
        KernelMsg::PageFree(_) => "page_free",
        KernelMsg::Map(_) => "map",
        KernelMsg::Unmap(_) => "unmap",
        KernelMsg::PageFault(_) => "page_fault",
        _ => return None,
    })
}

/// Per event type: (events, 1.x bytes, 2.0 record bytes).
fn sizes(msgs: &[(Instant, KernelMsg<'static>)]) -> BTreeMap<&'static str, (u64, u64, u64)> {
    let mut out: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    let mut enc = Box::new(BatchEncoder::new());
    let mut frame = [0u8; MAX_FRAME];
    for (_, msg) in msgs {
        let Some(kind) = event_type(msg) else {
            continue;
        };
        let old = encode_frame(msg, &mut frame).expect("fits").len() as u64;
        let mut before = enc.record_bytes();
        if enc.push(msg) == Push::Full {
            enc.finish();
            before = 0;
            assert_eq!(enc.push(msg), Push::Added);
        }
        let new = (enc.record_bytes() - before) as u64;
        let e = out.entry(kind).or_default();
        e.0 += 1;
        e.1 += old;
        e.2 += new;
    }
    out
}

fn print_sizes(title: &str, cap: &Capture) {
    let table = sizes(&cap.msgs);
    println!("{title}");
    println!(
        "  {:<12} {:>8} {:>10} {:>10} {:>8}",
        "event", "count", "1.x B/ev", "2.0 B/ev", "1.x/2.0"
    );
    let (mut n, mut old, mut new) = (0, 0, 0);
    for (kind, (c, o, w)) in &table {
        n += c;
        old += o;
        new += w;
        println!(
            "  {:<12} {:>8} {:>10.2} {:>10.2} {:>8.1}",
            kind,
            c,
            *o as f64 / *c as f64,
            *w as f64 / *c as f64,
            *o as f64 / *w as f64
        );
    }
    println!(
        "  {:<12} {:>8} {:>10.2} {:>10.2} {:>8.1}   (records only)",
        "all",
        n,
        old as f64 / n as f64,
        new as f64 / n as f64,
        old as f64 / new as f64
    );
    let wire = cap.batch_bytes as f64 / cap.batch_events as f64;
    println!(
        "  {:<12} {:>8} {:>10.2} {:>10.2} {:>8.1}   (on the wire: batch headers, CRC, COBS, 0x00 paid; goal <= 6)",
        "all, wire",
        cap.batch_events,
        old as f64 / n as f64,
        wire,
        old as f64 / n as f64 / wire
    );
    println!("  dropped: {}", cap.dropped);
}

/// The number after `key` in the first line of `log` that has it.
fn logged_number(log: &str, key: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(key))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn main() {
    std::panic::set_hook(Box::new(move |info| {
        for pid in QEMU_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        eprintln!("{info}");
    }));
    let mut to_hello = Vec::new();

    // The demo, from boot.
    let demo_end = Duration::from_secs(DEMO_SECS + 3);
    let demo = capture("init=demo", demo_end, |_| false);
    to_hello.extend(demo.to_hello);
    let hello = demo
        .msgs
        .iter()
        .find_map(|(at, m)| match m {
            KernelMsg::Hello(h) => Some((*at, h.tsc_hz)),
            _ => None,
        })
        .expect("a Hello");
    let mut tsc_hz = hello.1.max(1);
    let span = demo.msgs.last().expect("msgs").0 - hello.0;
    let demo_events = demo
        .msgs
        .iter()
        .filter(|(_, m)| event_type(m).is_some())
        .count();
    print_sizes(
        &format!(
            "Bytes per event, demo workload ({:.1} s from the boot Hello, {} events, {:.0} events/s)",
            span.as_secs_f64(),
            demo_events,
            demo_events as f64 / span.as_secs_f64()
        ),
        &demo,
    );
    let wire_demo = demo.batch_bytes as f64 / demo.batch_events as f64;
    drop(demo);
    println!();

    // selftest=mm.
    let mm = capture("selftest=mm init=none", Duration::from_secs(40), |q| {
        q.debug_log().contains("mm: done")
    });
    to_hello.extend(mm.to_hello);
    print_sizes("Bytes per event, selftest=mm", &mm);
    drop(mm);
    println!();

    // The kernel's cost per event, and the rate through the UART.
    let mut costs = Vec::new();
    for extra in ["", " memevents=0"] {
        let cap = capture(
            &format!("selftest=wire init=none{extra}"),
            Duration::from_secs(120),
            |q| q.debug_log().contains("wire: emit cycles"),
        );
        to_hello.extend(cap.to_hello);
        std::thread::sleep(Duration::from_millis(200));
        let log = cap.qemu.debug_log();
        let median = logged_number(&log, "emit cycles median").expect("median");
        let p99 = logged_number(&log, " p99").expect("p99");
        // The boot Hello goes out before the TSC is calibrated (its
        // tsc_hz is 0); the boot log gives the rate.
        if let Some(khz) = logged_number(&log, "TSC at") {
            tsc_hz = khz * 1000;
        }
        let synthetic: Vec<Instant> = cap
            .msgs
            .iter()
            .filter_map(|(at, m)| match m {
                KernelMsg::HeapAlloc(e) | KernelMsg::HeapFree(e) if e.heap_id == 99 => Some(*at),
                _ => None,
            })
            .collect();
        costs.push((extra, median, p99, synthetic, cap.dropped));
    }
    println!(
        "Kernel cost of one event (selftest=wire, rdtsc around the emit path, TSC {:.0} MHz)",
        tsc_hz as f64 / 1e6
    );
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>10}",
        "events", "median cyc", "p99 cyc", "median ns", "p99 ns"
    );
    for (extra, median, p99, _, _) in &costs {
        let ns = |c: &u64| *c as f64 * 1e9 / tsc_hz as f64;
        println!(
            "  {:<22} {:>10} {:>10} {:>10.0} {:>10.0}",
            if extra.is_empty() {
                "on"
            } else {
                "off (memevents=0)"
            },
            median,
            p99,
            ns(median),
            ns(p99)
        );
    }
    let (_, _, _, got, dropped) = &costs[0];
    if let (Some(a), Some(b)) = (got.first(), got.last()) {
        let secs = (*b - *a).as_secs_f64().max(1e-6);
        println!(
            "  through QEMU's UART: {} of 20000 events in {:.3} s = {:.0} events/s, {} dropped",
            got.len(),
            secs,
            got.len() as f64 / secs,
            dropped
        );
    }
    println!(
        "  at 115200 baud (11520 B/s) and {:.2} B/event (demo, on the wire): {:.0} events/s",
        wire_demo,
        11_520.0 / wire_demo
    );
    println!();

    // Slowdown of a ring-3 workload that allocates hard.
    let mut on = u64::MAX;
    let mut off = u64::MAX;
    for _ in 0..BOOTS {
        for (extra, best) in [("", &mut on), (" memevents=0", &mut off)] {
            let cap = capture(
                &format!("init=allocbench{extra}"),
                Duration::from_secs(120),
                |q| q.debug_log().contains("allocbench: "),
            );
            to_hello.extend(cap.to_hello);
            std::thread::sleep(Duration::from_millis(100));
            let us = logged_number(&cap.qemu.debug_log(), "pairs in").expect("allocbench time");
            *best = (*best).min(us);
        }
    }
    println!(
        "Ring-3 workload (allocbench: 20,480 heap alloc/free pairs by syscall), best of {BOOTS}"
    );
    println!(
        "  events on: {:.1} ms, memevents=0: {:.1} ms, slowdown {:+.1}% (goal <= 5%)",
        on as f64 / 1e3,
        off as f64 / 1e3,
        (on as f64 / off as f64 - 1.0) * 100.0
    );
    println!();

    to_hello.sort();
    println!(
        "Boot to first Hello from QEMU's start (TCG): best {:.3} s, median {:.3} s of {} boots (goal < 0.3 s)",
        to_hello[0].as_secs_f64(),
        to_hello[to_hello.len() / 2].as_secs_f64(),
        to_hello.len()
    );
}
