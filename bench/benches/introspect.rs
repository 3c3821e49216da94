//! The cost of the kernel's page-table dump and of its consistency check
//! of every mapping, at 128 MiB and 1 GiB of RAM, beside QEMU's own
//! monitor (`info mem`, which walks the same tables from outside the guest
//! and prints them coalesced) in the same run.
//!
//! For each size it boots the kernel (`$KERNEL_ELF`, else
//! `target/kernel.elf`; `make bench` builds it) in QEMU (TCG) with the
//! `memtest` program, then takes [`ROUNDS`] runs of each, the best
//! counting:
//!
//! - the dump of the kernel's space and of memtest's over COM1 (`PtDump`
//!   to `PtDumpEnd` at the host), with its size on the wire;
//! - the check (`Check` to `CheckEnd` at the host, which includes the
//!   frame-bitmap and kernel-heap checks before it), and the time the
//!   kernel measured for the mapping check alone (1 ms resolution);
//! - QEMU's `info mem` for the kernel's space, through its monitor socket,
//!   and its size in bytes.
//!
//! Run with `cargo bench -p bench --bench introspect`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use probe_proto::{HostMsg, KernelMsg, encode_frame, frame::MAX_FRAME};
use systest::{DEADLINE, Qemu, QemuConfig, Telemetry};

/// Runs of each measurement; the best counts.
const ROUNDS: usize = 5;

/// QEMUs this process started: killed by PID if the bench panics.
static QEMU_PIDS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Bytes `msg` takes on the wire, framed.
fn wire_bytes(msg: &KernelMsg<'_>) -> usize {
    let mut buf = [0u8; MAX_FRAME];
    encode_frame(msg, &mut buf).map_or(0, <[u8]>::len)
}

/// One dump of `pid`'s space: how long, how many ranges and wire bytes.
fn dump(link: &mut Telemetry, pid: u32) -> (Duration, u64, usize) {
    let start = Instant::now();
    link.send(&HostMsg::PtDump { pid });
    let mut bytes = 0;
    let ranges = link.wait_for("PtDumpEnd", DEADLINE, |m| {
        match m {
            KernelMsg::PtRange(r) if r.space == pid => bytes += wire_bytes(m),
            KernelMsg::PtAudit(a) if a.space == pid => bytes += wire_bytes(m),
            KernelMsg::PtDumpEnd(e) if e.space == pid => {
                bytes += wire_bytes(m);
                return Some(e.ranges);
            }
            _ => {}
        }
        None
    });
    (start.elapsed(), ranges, bytes)
}

/// One check: host round trip, the kernel's own time for the mapping
/// check, and whether it was consistent.
fn check(link: &mut Telemetry) -> (Duration, u64, bool) {
    let start = Instant::now();
    link.send(&HostMsg::Check);
    let (us, ok) = link.wait_for("CheckEnd", DEADLINE, |m| match m {
        KernelMsg::CheckEnd(e) => Some((e.duration_us, e.consistent)),
        _ => None,
    });
    (start.elapsed(), us, ok)
}

/// QEMU's HMP monitor on a unix socket.
struct Monitor(UnixStream);

impl Monitor {
    fn connect(path: &std::path::Path) -> Self {
        let start = Instant::now();
        loop {
            match UnixStream::connect(path) {
                Ok(s) => {
                    let mut m = Monitor(s);
                    m.until_prompt();
                    return m;
                }
                Err(_) if start.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("monitor {}: {e}", path.display()),
            }
        }
    }

    /// Reads up to the next `(qemu) ` prompt; the bytes before it.
    fn until_prompt(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        while !out.ends_with(b"(qemu) ") {
            let n = self.0.read(&mut buf).expect("monitor read");
            assert!(n > 0, "monitor closed");
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    /// Runs `command`; how long it took and how many bytes it printed.
    fn run(&mut self, command: &str) -> (Duration, usize) {
        let start = Instant::now();
        self.0
            .write_all(format!("{command}\n").as_bytes())
            .expect("monitor write");
        let out = self.until_prompt();
        (start.elapsed(), out.len())
    }
}

/// The best of `ROUNDS` runs of `f`, by its first element.
fn best<T: Copy>(mut f: impl FnMut() -> (Duration, T)) -> (Duration, T) {
    (0..ROUNDS)
        .map(|_| f())
        .min_by_key(|(d, _)| *d)
        .expect("at least one round")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    std::panic::set_hook(Box::new(move |info| {
        for pid in QEMU_PIDS.lock().map(|p| p.clone()).unwrap_or_default() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        eprintln!("{info}");
    }));
    println!(
        "{:<8} {:<34} {:>9} {:>9} {:>8} {:>10} {:>9}",
        "RAM", "what", "ms", "ms/MiB", "ranges", "bytes", "/QEMU"
    );
    for mib in [128u32, 1024] {
        let dir = std::env::temp_dir().join(format!("mmprobe-bench-{}-{mib}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let monitor_path = dir.join("monitor.sock");
        let cfg = QemuConfig {
            mem_mib: mib,
            append: "memevents=0 init=memtest".into(),
            extra: vec![
                "-monitor".into(),
                format!("unix:{},server=on,wait=off", monitor_path.display()),
            ],
            ..Default::default()
        };
        let mut qemu = Qemu::start(&format!("bench-introspect-{mib}"), &cfg);
        QEMU_PIDS.lock().expect("pid list").push(qemu.pid());
        let mut link = qemu.connect_telemetry();
        qemu.wait_debug_log("memtest: ready");
        let mut monitor = Monitor::connect(&monitor_path);

        let (qemu_t, qemu_bytes) = best(|| monitor.run("info mem"));
        let (kernel_t, (kernel_ranges, kernel_bytes)) = best(|| {
            let (t, r, b) = dump(&mut link, 0);
            (t, (r, b))
        });
        let (user_t, (user_ranges, user_bytes)) = best(|| {
            let (t, r, b) = dump(&mut link, 1);
            (t, (r, b))
        });
        let (check_t, (check_us, consistent)) = best(|| {
            let (t, us, ok) = check(&mut link);
            (t, (us, ok))
        });
        assert!(consistent, "the check finds memtest's kernel consistent");
        let per_mib = |d: Duration| ms(d) / f64::from(mib);
        let ram = format!("{mib} MiB");
        println!(
            "{ram:<8} {:<34} {:>9.2} {:>9.4} {:>8} {:>10} {:>9.2}",
            "ptdump, kernel space (COM1)",
            ms(kernel_t),
            per_mib(kernel_t),
            kernel_ranges,
            kernel_bytes,
            kernel_t.as_secs_f64() / qemu_t.as_secs_f64()
        );
        println!(
            "{ram:<8} {:<34} {:>9.2} {:>9.4} {:>8} {:>10} {:>9}",
            "ptdump, memtest's space (COM1)",
            ms(user_t),
            per_mib(user_t),
            user_ranges,
            user_bytes,
            "-"
        );
        println!(
            "{ram:<8} {:<34} {:>9.2} {:>9.4} {:>8} {:>10} {:>9}",
            "QEMU info mem, kernel space (HMP)",
            ms(qemu_t),
            per_mib(qemu_t),
            "-",
            qemu_bytes,
            "1.00"
        );
        println!(
            "{ram:<8} {:<34} {:>9.2} {:>9.4} {:>8} {:>10} {:>9}",
            "check, round trip (COM1)",
            ms(check_t),
            per_mib(check_t),
            "-",
            "-",
            "-"
        );
        println!(
            "{ram:<8} {:<34} {:>9.2} {:>9.4} {:>8} {:>10} {:>9}",
            "mapping check, in the kernel",
            check_us as f64 / 1e3,
            check_us as f64 / 1e3 / f64::from(mib),
            "-",
            "-",
            "-"
        );
        drop(monitor);
        drop(link);
        drop(qemu);
        QEMU_PIDS.lock().expect("pid list").clear();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
