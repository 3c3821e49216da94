//! End to end: `mmtop ping` against a fake kernel on a unix socket.

mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;

use common::*;
use probe_proto::{HostMsg, KernelMsg, Pong};

#[test]
fn ping_waits_for_the_pong_with_its_own_nonce_and_prints_the_round_trip() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["ping", "--connect", &addr]);

    let mut kernel = accept_unix(&listener, &mut mmtop);
    let HostMsg::Ping { nonce } = read_host_frame(&mut kernel).unwrap() else {
        panic!("expected a Ping first");
    };
    // A stale pong and unrelated telemetry arrive first; neither is the answer.
    let stale = frame(&KernelMsg::Pong(Pong {
        nonce: nonce.wrapping_add(1),
        ts_us: 10,
    }));
    let log = frame(&boot_messages()[3]);
    let ours = frame(&KernelMsg::Pong(Pong {
        nonce,
        ts_us: 2_500_000,
    }));
    kernel.write_all(&[stale, log, ours].concat()).unwrap();

    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let prefix = format!("pong from {addr}: nonce={nonce} rtt=");
    assert!(lines[0].starts_with(&prefix), "{}", lines[0]);
    assert!(lines[0].ends_with("ms kernel_t=2.500000s"), "{}", lines[0]);
}

#[test]
fn ping_exits_1_when_no_pong_arrives_in_time() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["ping", "--connect", &addr, "--timeout", "0.3"]);

    let mut kernel = accept_unix(&listener, &mut mmtop);
    assert!(matches!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Ping { .. }
    ));
    let out = mmtop.finish();
    drop(kernel); // Kept open so the timeout, not a hang-up, ends the ping.
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr
            .starts_with(&format!("mmtop: no pong from {addr} within")),
        "{}",
        out.stderr
    );
}

#[test]
fn ping_exits_1_when_the_kernel_hangs_up_first() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["ping", "--connect", &addr]);

    let mut kernel = accept_unix(&listener, &mut mmtop);
    read_host_frame(&mut kernel).unwrap();
    drop(kernel);
    let out = mmtop.finish();
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr.contains("link closed before the pong"),
        "{}",
        out.stderr
    );
}

#[test]
fn ping_on_a_recording_is_refused_with_exit_2() {
    let dir = TempDir::new();
    let rec = dir.path("rec.bin");
    std::fs::write(&rec, frame(&boot_messages()[0])).unwrap();
    let out = Mmtop::spawn(&["ping", "--connect", &format!("file:{}", path_str(&rec))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("ping needs a live link"),
        "{}",
        out.stderr
    );
}
