//! Helpers for driving the real `mmtop` binary against a fake kernel side.
//!
//! The fake kernel is this test process: it listens where mmtop connects,
//! reads the host's frames and writes kernel frames built with probe-proto.
//! Every child is killed on drop and every wait is bounded, so a broken
//! mmtop fails a test instead of hanging it.
#![allow(dead_code)] // Each test binary uses a different subset.

pub mod memory;
pub mod procs;

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use probe_proto::{
    FrameDecoder, Heartbeat, Hello, HostMsg, KernelMsg, Log, LogLevel, MemKind, MemRegion,
    PROTOCOL_VERSION, Pong, Version, encode_frame, frame::MAX_FRAME,
};

/// Upper bound on any wait for mmtop; far above what a passing run needs,
/// only there so a failure cannot hang the suite.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A scratch directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mmtop-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running mmtop, killed if the test ends before it does.
pub struct Mmtop {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// What a finished mmtop left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> i32 {
        self.status.code().expect("mmtop exited by a signal")
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// Asserts that stderr contains `needle`.
    pub fn assert_stderr_contains(&self, needle: &str) {
        assert!(self.stderr.contains(needle), "{}", self.stderr);
    }

    /// Asserts that stderr starts with `prefix`.
    pub fn assert_stderr_starts_with(&self, prefix: &str) {
        assert!(self.stderr.starts_with(prefix), "{}", self.stderr);
    }

    /// Asserts that stderr ends with `suffix`.
    pub fn assert_stderr_ends_with(&self, suffix: &str) {
        assert!(self.stderr.ends_with(suffix), "{}", self.stderr);
    }

    /// Asserts that mmtop gave up with exit status 1, saying that no `what`
    /// came from `addr` in time.
    pub fn assert_no_answer(&self, what: &str, addr: &str) {
        assert_eq!(self.code(), 1, "{self:?}");
        self.assert_stderr_starts_with(&format!("mmtop: no {what} from {addr} within"));
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}

impl Mmtop {
    /// Starts `mmtop ARGS...` with its output captured.
    pub fn spawn(args: &[&str]) -> Mmtop {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mmtop"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mmtop");
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        Mmtop {
            child,
            stdout,
            stderr,
        }
    }

    /// Whether mmtop is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to [`PATIENCE`]) for mmtop to exit and collects its output.
    pub fn finish(mut self) -> Output {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for mmtop") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stdout = self.stdout.take().unwrap().join().unwrap();
                let stderr = self.stderr.take().unwrap().join().unwrap();
                panic!(
                    "mmtop did not exit within {PATIENCE:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        Output {
            status,
            stdout: self.stdout.take().unwrap().join().unwrap(),
            stderr: self.stderr.take().unwrap().join().unwrap(),
        }
    }
}

impl Drop for Mmtop {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One encoded frame.
pub fn frame(msg: &KernelMsg<'_>) -> Vec<u8> {
    let mut out = [0u8; MAX_FRAME];
    encode_frame(msg, &mut out).expect("encode").to_vec()
}

/// Reads one host frame (up to its `0x00`) on the fake kernel's side.
pub fn read_host_frame(stream: &mut impl Read) -> io::Result<HostMsg> {
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(result) = dec.push::<HostMsg>(byte[0]) {
            return result.map_err(|e| io::Error::other(format!("bad host frame: {e:?}")));
        }
    }
}

pub fn hello(version: Version) -> KernelMsg<'static> {
    KernelMsg::Hello(Hello {
        version,
        build_id: "kernel-0.1.0-test".into(),
        mem_total_bytes: 128 << 20,
        mem_usable_bytes: (128 << 20) - (1 << 20),
        nr_regions: 2,
        features: probe_proto::features::HOST_COMMANDS,
        cmdline: "loglevel=3".into(),
        uptime_us: 1_500,
        tsc_hz: 2_000_000_000,
    })
}

/// What a kernel says to a client that asked for a resync, plus some
/// ordinary traffic: Hello, its two regions, a log line and a heartbeat.
pub fn boot_messages() -> Vec<KernelMsg<'static>> {
    vec![
        hello(PROTOCOL_VERSION),
        KernelMsg::MemRegion(MemRegion {
            index: 0,
            start: 0,
            len: 0x9fc00,
            kind: MemKind::Usable,
        }),
        KernelMsg::MemRegion(MemRegion {
            index: 1,
            start: 0x10_0000,
            len: 0x7ee_0000,
            kind: MemKind::Usable,
        }),
        KernelMsg::Log(Log {
            ts_us: 2_000,
            level: LogLevel::Info,
            text: "heap ready ✓".into(),
        }),
        KernelMsg::Heartbeat(Heartbeat {
            ts_us: 1_000_000,
            rx_frames: 1,
            rx_bad: 0,
            tx_dropped: 0,
        }),
    ]
}

/// Frames of `msgs` with a corrupt frame after the first one (a flipped
/// payload byte, so the decoder sees a CRC error and must resync).
pub fn stream_with_one_corrupt_frame(msgs: &[KernelMsg<'_>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        bytes.extend(frame(m));
        if i == 0 {
            let mut bad = frame(&KernelMsg::Pong(Pong { nonce: 1, ts_us: 1 }));
            // One COBS block (code byte = length), so the middle byte is
            // payload and the flip is a CRC error, not a COBS one.
            assert_eq!(usize::from(bad[0]), bad.len() - 1);
            let mid = bad.len() / 2;
            bad[mid] ^= 0x5a;
            bytes.extend(bad);
        }
    }
    bytes
}

/// Waits for mmtop to connect to `listener`, bounded by [`PATIENCE`].
pub fn accept_unix(listener: &UnixListener, mmtop: &mut Mmtop) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(mmtop.running(), "mmtop exited before connecting");
                assert!(Instant::now() < deadline, "mmtop never connected");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// Plays the kernel's side of connecting: reads the client's Resync and
/// answers with a Hello of `version`.
pub fn answer_resync(kernel: &mut (impl Read + std::io::Write), version: Version) {
    assert_eq!(read_host_frame(kernel).unwrap(), HostMsg::Resync);
    kernel.write_all(&frame(&hello(version))).unwrap();
}

/// What starting mmtop against a fake kernel gives: the scratch directory
/// (keep it alive), mmtop, the kernel's end of the socket and the address
/// mmtop was given.
pub type Connected = (TempDir, Mmtop, UnixStream, String);

/// Starts `mmtop COMMAND --connect unix:SOCK ARGS...` against a fresh
/// socket and waits for it to connect.
pub fn connect(command: &str, args: &[&str]) -> Connected {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut all = vec![command, "--connect", &addr];
    all.extend(args);
    let mut mmtop = Mmtop::spawn(&all);
    let kernel = accept_unix(&listener, &mut mmtop);
    (dir, mmtop, kernel, addr)
}

/// [`connect`], then plays the kernel's side of connecting (Resync, Hello).
pub fn start_request(command: &str, args: &[&str]) -> Connected {
    start_request_at(command, args, PROTOCOL_VERSION)
}

/// [`start_request`] against a kernel that says Hello with `version`.
pub fn start_request_at(command: &str, args: &[&str], version: Version) -> Connected {
    let (dir, mmtop, mut kernel, addr) = connect(command, args);
    answer_resync(&mut kernel, version);
    (dir, mmtop, kernel, addr)
}

/// Runs `mmtop COMMAND` to its end against a kernel that says Hello with
/// `version` and nothing more.
pub fn run_after_hello(command: &str, version: Version) -> Output {
    let (_dir, mmtop, _kernel, _) = start_request_at(command, &[], version);
    mmtop.finish()
}

/// Runs `mmtop COMMAND --connect file:REC ARGS...` to its end on a
/// recording REC of `bytes`.
pub fn run_on_recording(command: &str, bytes: &[u8], args: &[&str]) -> Output {
    let dir = TempDir::new();
    let rec = dir.path("rec.bin");
    std::fs::write(&rec, bytes).unwrap();
    let addr = format!("file:{}", path_str(&rec));
    let mut all = vec![command, "--connect", &addr];
    all.extend(args);
    Mmtop::spawn(&all).finish()
}

/// The frames of `msgs`, back to back.
pub fn frames(msgs: &[KernelMsg<'_>]) -> Vec<u8> {
    msgs.iter().flat_map(|m| frame(m)).collect()
}
