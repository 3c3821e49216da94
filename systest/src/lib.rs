//! Harness for tests that boot the real kernel in QEMU and talk to it over
//! its real serial ports: COM1 (telemetry) on a unix socket, COM2 (GDB) on a
//! loopback TCP port, the debug console in a file.
//!
//! Every QEMU (and gdb) a test starts is owned by a guard that kills it by
//! PID when dropped, so a failing test never leaves an emulator behind. Tests
//! wait for conditions with generous deadlines, never for fixed times: TCG on
//! a busy two-core machine is slow.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use probe_proto::batch::{BatchDecoder, BatchSkip};
use probe_proto::frame::MAX_FRAME;
use probe_proto::{FrameDecoder, HostMsg, KernelMsg, encode_frame};

pub mod rsp;
pub mod tmux;

/// One `... PREFIX key=value key=value ...` line of the kernel's log, as
/// the scenarios write what they did (`leaked: addr=0x... size=N`).
#[derive(Debug, Clone)]
pub struct LoggedLine(String);

impl LoggedLine {
    /// Every complete line of `log` that contains `prefix`, from just after
    /// it. A last line without its newline is still being written and is
    /// left out.
    pub fn all(log: &str, prefix: &str) -> Vec<LoggedLine> {
        log.split_inclusive('\n')
            .filter_map(|l| l.strip_suffix('\n'))
            .filter_map(|l| l.split_once(prefix))
            .map(|(_, rest)| LoggedLine(rest.to_string()))
            .collect()
    }

    /// The value of `key` (`key=` included in the name, e.g. `"size="`).
    pub fn field(&self, key: &str) -> &str {
        self.0
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {:?}", self.0))
    }

    /// The value of `key` as a number, hex when it starts with `0x`.
    pub fn number(&self, key: &str) -> u64 {
        let value = self.field(key);
        match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => value.parse(),
        }
        .unwrap_or_else(|e| panic!("{key}{value} is not a number: {e}"))
    }
}

/// How long any single condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// QEMU's exit status when the kernel reports success through isa-debug-exit.
pub const EXIT_SUCCESS: i32 = 33;
/// QEMU's exit status when the kernel reports failure (panic, fatal fault).
pub const EXIT_FAILURE: i32 = 35;

/// The kernel image under test: `$KERNEL_ELF`, else `target/kernel.elf`.
pub fn kernel_elf() -> PathBuf {
    let path = std::env::var_os("KERNEL_ELF")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/kernel.elf"));
    assert!(
        path.exists(),
        "kernel image {} not found: build it with `make kernel` (`make test` does)",
        path.display()
    );
    path
}

/// A fresh private directory for one test's sockets and logs.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "systest-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A loopback TCP port that was free a moment ago, and that this process
/// has not handed out before: tests run in parallel, and the system may
/// offer a port again as soon as the probe closes it, before the QEMU it
/// was meant for binds it (two QEMUs on one port: the second one exits).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind an ephemeral port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// How QEMU should wait for the telemetry client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Com1 {
    /// QEMU does not start the guest until a client connects: nothing the
    /// kernel sends at boot is lost.
    WaitForClient,
    /// The guest runs at once; a client that connects later has missed the
    /// boot messages and must ask for them.
    NoWait,
}

/// Options of one QEMU run.
#[derive(Debug, Clone)]
pub struct QemuConfig {
    /// `-m`, in MiB.
    pub mem_mib: u32,
    /// Kernel command line.
    pub append: String,
    /// COM1 behaviour.
    pub com1: Com1,
    /// Give COM2 a TCP port.
    pub com2: bool,
    /// Extra QEMU arguments.
    pub extra: Vec<String>,
}

impl Default for QemuConfig {
    fn default() -> Self {
        Self {
            mem_mib: 128,
            append: String::new(),
            com1: Com1::WaitForClient,
            com2: true,
            extra: vec![],
        }
    }
}

impl QemuConfig {
    /// The defaults with the kernel command line `append`.
    pub fn with_append(append: impl Into<String>) -> Self {
        Self {
            append: append.into(),
            ..Self::default()
        }
    }

    /// These options with the guest running at once, before any client
    /// connects ([`Com1::NoWait`]).
    pub fn no_wait(self) -> Self {
        Self {
            com1: Com1::NoWait,
            ..self
        }
    }
}

/// A running QEMU, killed by PID when dropped.
pub struct Qemu {
    child: Child,
    /// Scratch directory of this run.
    pub dir: PathBuf,
    /// COM1's unix socket.
    pub com1_path: PathBuf,
    /// COM2's TCP port, if configured.
    pub com2_port: Option<u16>,
    /// The debug-console log file.
    pub debugcon: PathBuf,
    status: Option<ExitStatus>,
}

impl Qemu {
    /// Boots the kernel with `cfg`; `name` labels the scratch directory.
    pub fn start(name: &str, cfg: &QemuConfig) -> Qemu {
        let dir = scratch_dir(name);
        let com1_path = dir.join("com1.sock");
        let debugcon = dir.join("debugcon.log");
        let wait = match cfg.com1 {
            Com1::WaitForClient => "on",
            Com1::NoWait => "off",
        };
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.arg("-kernel")
            .arg(kernel_elf())
            .args(["-m", &format!("{}M", cfg.mem_mib)])
            .args(["-display", "none", "-no-reboot", "-monitor", "none"])
            .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
            .arg("-serial")
            .arg(format!(
                "unix:{},server=on,wait={wait}",
                com1_path.display()
            ))
            .arg("-debugcon")
            .arg(format!("file:{}", debugcon.display()));
        let com2_port = cfg.com2.then(free_port);
        if let Some(port) = com2_port {
            cmd.arg("-serial").arg(format!(
                "tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on"
            ));
        }
        // Tests get a quiet kernel (no demo programs) unless they ask.
        let append = if cfg
            .append
            .split_whitespace()
            .any(|w| w.starts_with("init="))
        {
            cfg.append.clone()
        } else {
            format!("{} init=none", cfg.append).trim().to_string()
        };
        if !append.is_empty() {
            cmd.args(["-append", &append]);
        }
        cmd.args(&cfg.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .expect("start qemu-system-x86_64 (make test installs it)");
        Qemu {
            child,
            dir,
            com1_path,
            com2_port,
            debugcon,
            status: None,
        }
    }

    /// Boots the kernel with `cfg` and connects to its COM1.
    pub fn boot(name: &str, cfg: &QemuConfig) -> (Qemu, Telemetry) {
        let mut qemu = Qemu::start(name, cfg);
        let link = qemu.connect_telemetry();
        (qemu, link)
    }

    /// Boots the kernel with `cfg`, but the guest running at once, and waits
    /// until it is up: a client that connects now has missed its boot
    /// messages.
    pub fn start_up(name: &str, cfg: QemuConfig) -> Qemu {
        let mut qemu = Qemu::start(name, &cfg.no_wait());
        qemu.wait_debug_log("kernel up");
        qemu
    }

    /// COM1 as mmtop's address, `unix:PATH`.
    pub fn com1_address(&self) -> String {
        format!("unix:{}", self.com1_path.display())
    }

    /// QEMU's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects to COM1, retrying until QEMU has created the socket.
    pub fn connect_telemetry(&mut self) -> Telemetry {
        let start = Instant::now();
        loop {
            match UnixStream::connect(&self.com1_path) {
                Ok(stream) => return Telemetry::new(stream, self.debugcon.clone()),
                Err(_) if start.elapsed() < DEADLINE => {
                    if let Some(status) = self.try_status() {
                        panic!(
                            "QEMU exited ({status}) before COM1 opened: {}",
                            self.stderr_tail()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot connect to {}: {e}", self.com1_path.display()),
            }
        }
    }

    /// Connects to COM2's TCP port, retrying until QEMU listens.
    pub fn connect_com2(&mut self) -> TcpStream {
        let port = self.com2_port.expect("QEMU was started without COM2");
        let start = Instant::now();
        loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_nodelay(true).ok();
                    return s;
                }
                Err(e) if start.elapsed() > DEADLINE => panic!("cannot connect to COM2: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits for QEMU to exit and returns its status code.
    pub fn wait_exit(&mut self) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                start.elapsed() < DEADLINE,
                "QEMU did not exit within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// The kernel's debug-console output so far.
    pub fn debug_log(&self) -> String {
        read_debug_log(&self.debugcon)
    }

    /// Waits until the debug console shows `needle` (e.g. "kernel up") in a
    /// complete line: the kernel writes the console a byte at a time, so a
    /// line may be read half written.
    pub fn wait_debug_log(&mut self, needle: &str) {
        let start = Instant::now();
        let shown = |log: &str| log.find(needle).is_some_and(|at| log[at..].contains('\n'));
        while !shown(&self.debug_log()) {
            assert!(self.is_running(), "QEMU exited before logging {needle:?}");
            assert!(
                start.elapsed() < DEADLINE,
                "no {needle:?} in the debug log within {DEADLINE:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr_tail(&mut self) -> String {
        let mut s = String::new();
        if let Some(err) = self.child.stderr.as_mut() {
            let _ = err.read_to_string(&mut s);
        }
        s
    }
}

/// The debug console log at `path` as far as it is written; empty before
/// QEMU creates it.
fn read_debug_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The last lines of a debug console log, for a failure message.
fn log_tail(path: &Path) -> String {
    let log = read_debug_log(path);
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(12)..].join("\n")
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client of the telemetry link.
pub struct Telemetry {
    stream: UnixStream,
    /// The kernel's debug console log, quoted when the link closes early.
    debugcon: PathBuf,
    decoder: Box<FrameDecoder<MAX_FRAME>>,
    /// Turns event batches back into their events.
    batches: BatchDecoder,
    /// Events of a batch not yet offered to a caller.
    events: VecDeque<KernelMsg<'static>>,
    pending: VecDeque<u8>,
    /// Frames this client could not decode.
    pub bad_frames: u64,
    /// Event batches this client could not decode after a sync point (a
    /// lost or damaged frame).
    pub skipped_batches: u64,
}

impl Telemetry {
    fn new(stream: UnixStream, debugcon: PathBuf) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        Self {
            stream,
            debugcon,
            decoder: Box::new(FrameDecoder::new()),
            batches: BatchDecoder::new(),
            events: VecDeque::new(),
            pending: VecDeque::new(),
            bad_frames: 0,
            skipped_batches: 0,
        }
    }

    /// Sends one host command.
    pub fn send(&mut self, msg: &HostMsg) {
        let mut buf = [0u8; MAX_FRAME];
        let frame = encode_frame(msg, &mut buf).expect("host messages fit a frame");
        self.send_raw(frame);
    }

    /// Sends raw bytes, framed or not.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to COM1");
    }

    /// Reads messages until `pick` returns `Some`, or fails after `timeout`.
    /// Messages `pick` declines are skipped. Event batches are seen as the
    /// events they hold, in order, from the kernel's first sync point on.
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        pick: impl FnMut(&KernelMsg<'_>) -> Option<T>,
    ) -> T {
        match self.poll_for(what, timeout, pick) {
            Some(t) => t,
            None => panic!("timed out after {timeout:?} waiting for {what}"),
        }
    }

    /// Like [`wait_for`](Self::wait_for) but gives `None` on timeout.
    pub fn poll_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pick: impl FnMut(&KernelMsg<'_>) -> Option<T>,
    ) -> Option<T> {
        let start = Instant::now();
        loop {
            while let Some(event) = self.events.pop_front() {
                if let Some(t) = pick(&event) {
                    return Some(t);
                }
            }
            while let Some(byte) = self.pending.pop_front() {
                match self.decoder.push::<KernelMsg>(byte) {
                    Some(Ok(KernelMsg::EventBatch(b))) => match self.batches.decode(&b.body) {
                        Ok(events) => {
                            // The rest stay for the next call.
                            self.events.extend(events);
                            while let Some(event) = self.events.pop_front() {
                                if let Some(t) = pick(&event) {
                                    return Some(t);
                                }
                            }
                        }
                        Err(BatchSkip::NotSynced { .. }) => {}
                        Err(_) => self.skipped_batches += 1,
                    },
                    Some(Ok(msg)) => {
                        if let Some(t) = pick(&msg) {
                            return Some(t);
                        }
                    }
                    Some(Err(_)) => self.bad_frames += 1,
                    None => {}
                }
            }
            if start.elapsed() >= timeout {
                return None;
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => panic!(
                    "telemetry link closed while waiting for {what} ({} bad frames); \
                     the kernel's debug log ends:\n{}",
                    self.bad_frames,
                    log_tail(&self.debugcon)
                ),
                Ok(n) => self.pending.extend(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) => panic!("telemetry read failed while waiting for {what}: {e}"),
            }
        }
    }

    /// Sends `Resync` (again every second, since bytes that reach the UART
    /// before the kernel set it up are lost) until a `Hello` arrives; returns
    /// its uptime.
    pub fn resync(&mut self) -> u64 {
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            // A leading 0x00 ends whatever partial frame a previous client left.
            self.send_raw(&[0]);
            self.send(&HostMsg::Resync);
            let hello = self.poll_for("Hello", Duration::from_secs(1), |m| match m {
                KernelMsg::Hello(h) => Some(h.uptime_us),
                _ => None,
            });
            if let Some(uptime) = hello {
                return uptime;
            }
        }
        panic!("no Hello within {DEADLINE:?} of sending Resync");
    }
}

/// A child process (gdb) killed by PID when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts real gdb in batch mode on the kernel ELF with `commands`, its
/// stdout and stderr together into the file `out_path`.
pub fn spawn_gdb(commands: &[String], out_path: &Path) -> ChildGuard {
    let out = std::fs::File::create(out_path).expect("create gdb output file");
    let mut cmd = Command::new("gdb");
    cmd.args(["-q", "-batch", "-nx"]).arg(kernel_elf());
    for c in commands {
        cmd.arg("-ex").arg(c);
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup file"))
        .stderr(out)
        .spawn()
        .expect("start gdb (make test installs it)");
    ChildGuard(child)
}

/// Runs real gdb in batch mode on the kernel ELF with `commands`, kills it
/// after [`DEADLINE`], and returns its stdout and stderr together.
pub fn run_gdb(commands: &[String]) -> String {
    let dir = scratch_dir("gdb");
    let out_path = dir.join("gdb.out");
    let mut guard = spawn_gdb(commands, &out_path);
    let start = Instant::now();
    while guard.0.try_wait().expect("poll gdb").is_none() {
        assert!(
            start.elapsed() < DEADLINE,
            "gdb did not finish within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    text
}

/// The mmtop binary cargo built next to this test (`cargo test --workspace`
/// builds it).
pub fn mmtop_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>");
    let bin = dir.join("mmtop");
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace` (or `cargo build -p mmtop`)",
        bin.display()
    );
    bin
}

/// Runs mmtop with `args` to completion (killed by PID if it outlives
/// [`DEADLINE`]); returns its exit code, stdout and stderr.
pub fn run_mmtop(args: &[&str]) -> (i32, String, String) {
    let dir = scratch_dir("mmtop");
    let (out, err) = (dir.join("out"), dir.join("err"));
    let child = Command::new(mmtop_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("create mmtop's stdout file"))
        .stderr(std::fs::File::create(&err).expect("create mmtop's stderr file"))
        .spawn()
        .expect("start mmtop");
    let mut guard = ChildGuard(child);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = guard.0.try_wait().expect("poll mmtop") {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "mmtop did not finish");
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    let result = (status.code().unwrap_or(-1), read(&out), read(&err));
    let _ = std::fs::remove_dir_all(&dir);
    result
}
