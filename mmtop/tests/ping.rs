//! End to end: `mmtop ping` against a fake kernel on a unix socket.

mod common;

use std::io::Write;

use common::*;
use probe_proto::{HostMsg, KernelMsg, Pong};

#[test]
fn ping_waits_for_the_pong_with_its_own_nonce_and_prints_the_round_trip() {
    let (_dir, mmtop, mut kernel, addr) = connect("ping", &[]);
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
    let (_dir, mmtop, mut kernel, addr) = connect("ping", &["--timeout", "0.3"]);
    assert!(matches!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Ping { .. }
    ));
    let out = mmtop.finish();
    drop(kernel); // Kept open so the timeout, not a hang-up, ends the ping.
    assert!(out.stdout.is_empty());
    out.assert_no_answer("pong", &addr);
}

#[test]
fn ping_exits_1_when_the_kernel_hangs_up_first() {
    let (_dir, mmtop, mut kernel, _) = connect("ping", &[]);
    read_host_frame(&mut kernel).unwrap();
    drop(kernel);
    let out = mmtop.finish();
    assert_eq!(out.code(), 1, "{out:?}");
    out.assert_stderr_contains("link closed before the pong");
}

#[test]
fn ping_on_a_recording_is_refused_with_exit_2() {
    let out = run_on_recording("ping", &frame(&boot_messages()[0]), &[]);
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_contains("ping needs a live link");
}
