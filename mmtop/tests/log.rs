//! End to end: the `mmtop log` binary against a fake kernel on a real socket
//! or recording.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::*;
use probe_proto::{HostMsg, KernelMsg, PROTOCOL_VERSION, Version};
use serde_json::Value;

#[test]
fn log_json_over_unix_socket_sends_resync_first_and_prints_one_object_per_message() {
    let (_dir, mmtop, mut kernel, _) = connect("log", &["--json", "--count", "5"]);
    // The very first bytes from a late client must be a Resync.
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    let mut bytes = b"noise from before the client joined".to_vec();
    bytes.push(0);
    bytes.extend(stream_with_one_corrupt_frame(&boot_messages()));
    kernel.write_all(&bytes).unwrap();

    // The socket stays open: mmtop must stop because --count was reached.
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let objects: Vec<Value> = out
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    let types: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["hello", "mem_region", "mem_region", "log", "heartbeat"]
    );
    assert_eq!(objects[0]["version"]["major"], PROTOCOL_VERSION.major);
    assert_eq!(objects[0]["tsc_hz"], 2_000_000_000u64);
    assert_eq!(objects[0]["build_id"], "kernel-0.1.0-test");
    assert_eq!(objects[0]["mem_total_bytes"], 128u64 << 20);
    assert_eq!(objects[2]["start"], 0x10_0000);
    assert_eq!(objects[2]["kind"], "usable");
    assert_eq!(objects[3]["text"], "heap ready ✓");
    assert_eq!(objects[3]["level"], "info");
    assert_eq!(objects[4]["ts_us"], 1_000_000);
    assert_eq!(objects[4]["rx_frames"], 1);

    // The noise is the tail of a frame sent before mmtop joined: expected,
    // not reported. The flipped frame is, on stderr only.
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("mmtop: skipped corrupt frame"))
        .collect();
    assert_eq!(
        warnings,
        ["mmtop: skipped corrupt frame (crc mismatch)"],
        "stderr: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("link closed"), "{}", out.stderr);
}

#[test]
fn log_reports_link_closed_with_frame_counts_when_the_kernel_hangs_up() {
    let (_dir, mmtop, mut kernel, _) = connect("log", &[]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    let msgs = &boot_messages()[..2];
    kernel
        .write_all(&stream_with_one_corrupt_frame(msgs))
        .unwrap();
    drop(kernel);

    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert_eq!(
        lines[0],
        format!(
            "hello v{}.{} build=kernel-0.1.0-test mem=128.0MiB usable=127.0MiB regions=2 \
             features=host-commands uptime=0.001500s tsc=2000MHz cmdline=\"loglevel=3\"",
            PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor
        )
    );
    assert_eq!(
        lines[1],
        "region #0 [mem 0x0000000000000000-0x000000000009fbff] 639.0KiB usable"
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "mmtop: link closed (2 frames, 1 bad)"),
        "stderr: {}",
        out.stderr
    );
}

#[test]
fn log_with_no_resync_sends_nothing_to_the_kernel() {
    let (_dir, mmtop, mut kernel, _) = connect("log", &["--no-resync", "-n", "1"]);
    kernel.write_all(&frame(&boot_messages()[3])).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.lines(), ["log t=0.002000s INFO heap ready ✓"]);
    // mmtop has exited, so this reads everything it ever sent.
    let mut sent = Vec::new();
    kernel.read_to_end(&mut sent).unwrap();
    assert!(sent.is_empty(), "mmtop sent {sent:02x?}");
}

#[test]
fn log_over_tcp_sends_resync_and_decodes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let addr = format!("tcp:127.0.0.1:{port}");
    let mmtop = Mmtop::spawn(&["log", "--connect", &addr, "--json", "--count", "1"]);

    // A listening TCP socket accepts even before we call accept, so a plain
    // blocking accept is safe here; the read timeout bounds the rest.
    let (mut kernel, _) = listener.accept().unwrap();
    kernel.set_read_timeout(Some(PATIENCE)).unwrap();
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    kernel
        .write_all(&frame(&KernelMsg::Dropped { count: 17 }))
        .unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.lines(), [r#"{"type":"dropped","count":17}"#]);
}

#[test]
fn log_replays_a_recording_and_reports_link_closed_at_its_end() {
    let mut bytes = stream_with_one_corrupt_frame(&boot_messages());
    bytes.extend(b"a partial frame cut by the end of the recording");
    let out = run_on_recording("log", &bytes, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 5, "{out:?}");
    let hello = format!(
        "hello v{}.{} ",
        PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor
    );
    assert!(lines[0].starts_with(&hello), "{}", lines[0]);
    assert!(lines[1].starts_with("region #0 "), "{}", lines[1]);
    assert!(lines[2].starts_with("region #1 "), "{}", lines[2]);
    assert_eq!(lines[3], "log t=0.002000s INFO heap ready ✓");
    assert_eq!(lines[4], "heartbeat t=1.000000s rx=1 bad=0 dropped=0");
    out.assert_stderr_contains("mmtop: skipped corrupt frame (crc mismatch)");
    out.assert_stderr_ends_with("mmtop: link closed (5 frames, 1 bad)\n");
}

#[test]
fn log_prints_a_process_listing_one_line_per_message_in_both_formats() {
    let listing = frames(&common::procs::memtest_listing());
    let out = run_on_recording("log", &listing, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 13, "{out:?}");
    assert_eq!(
        lines[0],
        "process_info t=2.500000s pid=1 parent=0 name=memtest state=sleeping heaps=2 sheds=2 \
         vmas=7 heap_size=128.0KiB heap_used=600B heap_free=127.4KiB shed_size=16.0KiB \
         resident=10 (40.0KiB) page_tables=4"
    );
    assert_eq!(
        lines[1],
        "process_heap heap=pid1#1 start=0x10000000 size=64.0KiB used=600B free=63.4KiB \
         used_blocks=3 largest_free=63.4KiB"
    );
    assert_eq!(
        lines[4],
        "process_shed shed=pid1#9 start=0x20002000 size=8.0KiB"
    );
    assert_eq!(
        lines[5],
        "process_vma pid=1 0x400000-0x402000 r-xp code size=8.0KiB resident=2 (8.0KiB)"
    );
    assert_eq!(
        lines[12],
        "process_list_end t=2.500100s programs=1 complete"
    );

    let out = run_on_recording("log", &listing, &["--json"]);
    assert_eq!(out.code(), 0, "{out:?}");
    let objects: Vec<Value> = out
        .lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let types: Vec<&str> = objects
        .iter()
        .map(|o| o["type"].as_str().unwrap())
        .collect();
    let mut expected = vec!["process_info"];
    expected.extend(["process_heap"; 2]);
    expected.extend(["process_shed"; 2]);
    expected.extend(["process_vma"; 7]);
    expected.push("process_list_end");
    assert_eq!(types, expected);
    assert_eq!(objects[0]["name"], "memtest");
    assert_eq!(objects[0]["state"], "sleeping");
    assert_eq!(objects[2]["heap_id"], 7);
    assert_eq!(objects[11]["kind"], "stack");
    assert_eq!(objects[12]["total_programs"], 1);
}

#[test]
fn log_refuses_a_kernel_speaking_another_major_version_with_exit_3() {
    let future = Version {
        major: PROTOCOL_VERSION.major + 1,
        minor: 0,
    };
    let mut bytes = frame(&hello(future));
    bytes.extend(frame(&boot_messages()[3]));
    let out = run_on_recording("log", &bytes, &[]);
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(out.stdout.is_empty(), "nothing decoded is trusted: {out:?}");
    out.assert_stderr_contains(&format!(
        "kernel speaks protocol {}.0, this mmtop speaks {}.{} (any {}.x); use a matching mmtop",
        future.major, PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor, PROTOCOL_VERSION.major
    ));
}

#[test]
fn log_exits_2_with_the_address_and_reason_when_the_socket_is_missing() {
    let dir = TempDir::new();
    let sock = dir.path("nobody-listens.sock");
    let addr = format!("unix:{}", path_str(&sock));
    let out = Mmtop::spawn(&["log", "--connect", &addr]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_starts_with(&format!("mmtop: cannot connect to {addr}: "));
    assert!(out.stdout.is_empty());
}

#[test]
fn log_exits_2_and_lists_the_accepted_forms_on_an_unknown_scheme() {
    let out = Mmtop::spawn(&["log", "--connect", "foo:bar"]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_contains(
        "unknown address scheme 'foo:' — expected unix:PATH, tcp:HOST:PORT, \
             /dev/ttyX[@BAUD] or file:PATH",
    );
}

#[test]
fn log_exits_1_when_the_timeout_passes_before_count_messages() {
    let (_dir, mmtop, mut kernel, _) = connect("log", &["--count", "2", "--timeout", "0.5"]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    kernel
        .write_all(&frame(&KernelMsg::Dropped { count: 1 }))
        .unwrap();

    let out = mmtop.finish();
    drop(kernel); // Only now: a hang-up would have ended mmtop with exit 0.
    assert_eq!(out.code(), 1, "{out:?}");
    assert_eq!(out.lines(), ["dropped count=1"]);
    out.assert_stderr_contains("timed out");
    out.assert_stderr_contains("1 of 2 messages");
}

#[test]
fn log_without_count_treats_the_timeout_as_a_listening_period_and_exits_0() {
    let (_dir, mmtop, kernel, _) = connect("log", &["--timeout", "0.3"]);
    let out = mmtop.finish();
    drop(kernel);
    assert_eq!(out.code(), 0, "{out:?}");
    assert!(out.stdout.is_empty());
    out.assert_stderr_contains("stopped after");
    out.assert_stderr_contains("(0 messages)");
}
