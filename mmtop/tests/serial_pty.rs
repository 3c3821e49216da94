//! End to end: `mmtop log` on a pty, the way it opens a serial device.
//!
//! QEMU's `-serial pty` and a USB serial adapter both look like this to
//! mmtop: a tty path opened through `serialport`. The test holds the pty's
//! master side and plays the kernel.

mod common;

use std::os::unix::io::RawFd;
use std::time::Instant;

use common::*;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::poll::{PollFd, PollFlags, poll};
use nix::pty::openpty;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nix::unistd::{close, read, ttyname, write};
use probe_proto::{FrameDecoder, HostMsg, frame::MAX_FRAME};

/// A raw-mode pty pair whose descriptors are closed however the test ends.
struct Pty {
    master: RawFd,
    slave: RawFd,
}

impl Pty {
    fn open() -> Pty {
        let p = openpty(None, None).expect("openpty");
        let pty = Pty {
            master: p.master,
            slave: p.slave,
        };
        // openpty(3) does not set close-on-exec: without it every mmtop this
        // process spawns would hold the master open and never see a hang-up.
        for fd in [pty.master, pty.slave] {
            fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).unwrap();
        }
        // Raw mode from the start: no echo or newline translation may touch
        // the frames, whatever mmtop's own setup does and whenever it does it.
        let mut termios = tcgetattr(pty.slave).unwrap();
        cfmakeraw(&mut termios);
        tcsetattr(pty.slave, SetArg::TCSANOW, &termios).unwrap();
        pty
    }

    fn slave_path(&self) -> String {
        path_str(&ttyname(self.slave).unwrap()).to_owned()
    }

    /// Hangs up, as QEMU does when it exits. The test's own slave descriptor
    /// goes too so that only mmtop holds the tty.
    fn hang_up(&mut self) {
        for fd in [&mut self.slave, &mut self.master] {
            let _ = close(*fd);
            *fd = -1;
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        self.hang_up();
    }
}

fn read_host_frame_from_master(master: RawFd) -> HostMsg {
    let deadline = Instant::now() + PATIENCE;
    let mut dec = FrameDecoder::<MAX_FRAME>::new();
    let mut buf = [0u8; 64];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no frame from mmtop on the pty");
        let mut fds = [PollFd::new(master, PollFlags::POLLIN)];
        if poll(
            &mut fds,
            i32::try_from(left.as_millis()).unwrap_or(i32::MAX),
        )
        .unwrap()
            == 0
        {
            continue;
        }
        let n = read(master, &mut buf).unwrap();
        for &b in &buf[..n] {
            if let Some(r) = dec.push::<HostMsg>(b) {
                return r.expect("a valid host frame");
            }
        }
    }
}

#[test]
fn log_reads_frames_from_a_pty_opened_as_a_serial_device() {
    let pty = Pty::open();
    let addr = format!("{}@57600", pty.slave_path());

    let mmtop = Mmtop::spawn(&["log", "--connect", &addr, "--json", "--count", "3"]);
    assert_eq!(read_host_frame_from_master(pty.master), HostMsg::Resync);
    let bytes = stream_with_one_corrupt_frame(&boot_messages()[..3]);
    let mut sent = 0;
    while sent < bytes.len() {
        sent += write(pty.master, &bytes[sent..]).unwrap();
    }

    // The master stays open until mmtop is done: the count ends it.
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let types: Vec<String> = out
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(types, [r#""hello""#, r#""mem_region""#, r#""mem_region""#]);
    out.assert_stderr_contains("mmtop: skipped corrupt frame (crc mismatch)");
    drop(pty);
}

#[test]
fn log_on_a_pty_ends_with_link_closed_when_the_other_side_hangs_up() {
    let mut pty = Pty::open();
    let mmtop = Mmtop::spawn(&["log", "--connect", &pty.slave_path()]);
    assert_eq!(read_host_frame_from_master(pty.master), HostMsg::Resync);
    pty.hang_up();

    // A hang-up is the end of the link, not a transient error to retry.
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.is_empty());
    out.assert_stderr_starts_with("mmtop: link closed");
    out.assert_stderr_ends_with("(0 frames, 0 bad)\n");
}
