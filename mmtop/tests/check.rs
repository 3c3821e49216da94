//! End to end: `mmtop check` against a fake kernel on a unix socket.

mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;

use common::*;
use probe_proto::{
    CheckEnd, CheckFinding, FindingKind, FrameCheck, FrameOwner, HeapCheck, HeapErrorKind,
    HeapStats, Heartbeat, HostMsg, KernelMsg, PROTOCOL_VERSION, Version,
};
use serde_json::{Value, json};

fn frame_check(consistent: bool) -> FrameCheck {
    FrameCheck {
        ts_us: 3_000_000,
        consistent,
        nr_frames: 32_768,
        free_counted: 30_000,
        free_recorded: if consistent { 30_000 } else { 30_001 },
        total_counted: 32_512,
        total_recorded: 32_512,
        used_without_owner: u64::from(!consistent),
        free_with_owner: 0,
        invalid_owners: 0,
        summary_mismatches: 0,
        padding_mismatches: 0,
    }
}

fn heap_check(pid: u32, ok: bool) -> HeapCheck {
    HeapCheck {
        ts_us: 3_000_100,
        pid,
        heap_id: 0,
        ok,
        error: (!ok).then_some(HeapErrorKind::CorruptHeader),
        addr: if ok { 0 } else { 0xffff_8000_0010_0040 },
        stats: HeapStats {
            pid,
            heap_id: 0,
            region_bytes: 64 << 10,
            max_bytes: 1 << 30,
            used_bytes: 1536,
            free_bytes: 60 << 10,
            overhead_bytes: 256,
            total_blocks: 12,
            used_blocks: 9,
            free_blocks: 3,
            largest_free: 40 << 10,
        },
    }
}

/// The end of a 1.3 kernel's mapping check with `findings` findings.
fn check_end(findings: u64) -> CheckEnd {
    CheckEnd {
        ts_us: 3_000_200,
        consistent: findings == 0,
        frames: 32_768,
        spaces: 3,
        mappings: 120,
        findings,
        duration_us: 900,
    }
}

/// Starts `mmtop check ARGS...` against a fresh socket and a 1.2 kernel
/// (whose `Check` has two answers); returns it, the kernel's end (after the
/// Resync/Hello exchange) and the address.
fn start(args: &[&str]) -> (TempDir, Mmtop, std::os::unix::net::UnixStream, String) {
    start_request_at("check", args, Version { major: 1, minor: 2 })
}

#[test]
fn check_exits_0_and_prints_both_results_when_the_kernel_is_consistent() {
    let (_dir, mmtop, mut kernel, _) = start(&[]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    // Unrelated telemetry and another heap's check come first: not the answer.
    let noise = [
        frame(&KernelMsg::Heartbeat(Heartbeat {
            ts_us: 1,
            rx_frames: 2,
            rx_bad: 0,
            tx_dropped: 0,
        })),
        frame(&KernelMsg::HeapCheck(heap_check(5, false))),
    ];
    kernel.write_all(&noise.concat()).unwrap();
    kernel
        .write_all(&frame(&KernelMsg::FrameCheck(frame_check(true))))
        .unwrap();
    kernel
        .write_all(&frame(&KernelMsg::HeapCheck(heap_check(0, true))))
        .unwrap();

    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.lines(),
        [
            "frame_check t=3.000000s ok frames=32768 free=30000 ram=32512",
            "heap_check t=3.000100s heap=kernel#0 ok used=1.5KiB (9 blocks) free=60.0KiB \
             (3 blocks) largest_free=40.0KiB overhead=256B region=64.0KiB",
        ]
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn check_exits_4_when_the_kernel_reports_an_inconsistency() {
    let (_dir, mmtop, mut kernel, _) = start(&[]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    let answer = [
        frame(&KernelMsg::FrameCheck(frame_check(false))),
        frame(&KernelMsg::HeapCheck(heap_check(0, true))),
    ];
    kernel.write_all(&answer.concat()).unwrap();

    let out = mmtop.finish();
    assert_eq!(out.code(), 4, "{out:?}");
    let lines = out.lines();
    assert_eq!(
        lines[0],
        "frame_check t=3.000000s INCONSISTENT frames=32768 free=30000(recorded=30001) \
         ram=32512 used_without_owner=1"
    );
    assert!(lines[1].starts_with("heap_check "), "{out:?}");
    assert_eq!(
        out.stderr, "mmtop: the frame bitmap is inconsistent\n",
        "{out:?}"
    );
}

#[test]
fn check_json_is_one_object_and_a_failed_heap_check_exits_4() {
    let (_dir, mmtop, mut kernel, _) = start(&["--json"]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    let answer = [
        frame(&KernelMsg::FrameCheck(frame_check(true))),
        frame(&KernelMsg::HeapCheck(heap_check(0, false))),
    ];
    kernel.write_all(&answer.concat()).unwrap();

    let out = mmtop.finish();
    assert_eq!(out.code(), 4, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with(r#"{"frame_check":{"#), "{}", lines[0]);
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        got,
        json!({
            "frame_check": {"ts_us": 3_000_000, "consistent": true, "nr_frames": 32_768,
                "free_counted": 30_000, "free_recorded": 30_000, "total_counted": 32_512,
                "total_recorded": 32_512, "used_without_owner": 0, "free_with_owner": 0,
                "invalid_owners": 0, "summary_mismatches": 0, "padding_mismatches": 0},
            "heap_check": {"ts_us": 3_000_100, "pid": 0, "heap_id": 0, "ok": false,
                "error": "corrupt_header", "addr": 0xffff_8000_0010_0040u64,
                "stats": {"pid": 0, "heap_id": 0, "region_bytes": 65_536,
                    "max_bytes": 1u64 << 30, "used_bytes": 1536, "free_bytes": 61_440,
                    "overhead_bytes": 256, "total_blocks": 12, "used_blocks": 9,
                    "free_blocks": 3, "largest_free": 40_960}}
        })
    );
    assert_eq!(out.stderr, "mmtop: the kernel heap check failed\n");
}

#[test]
fn check_exits_1_when_the_answer_does_not_come_in_time() {
    let (_dir, mmtop, mut kernel, addr) = start(&["--timeout", "0.5"]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    // Half an answer: the heap check never comes.
    kernel
        .write_all(&frame(&KernelMsg::FrameCheck(frame_check(true))))
        .unwrap();

    let out = mmtop.finish();
    drop(kernel); // Kept open so the timeout, not a hang-up, ends mmtop.
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("mmtop: no HeapCheck from {addr} within")),
        "{}",
        out.stderr
    );
}

#[test]
fn check_repeats_the_resync_until_the_kernel_says_hello() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["check", "--connect", &addr]);
    let mut kernel = accept_unix(&listener, &mut mmtop);

    // The first Resync is "lost"; the second one is answered.
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    answer_resync(&mut kernel, PROTOCOL_VERSION);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    let answer = [
        frame(&KernelMsg::FrameCheck(frame_check(true))),
        frame(&KernelMsg::HeapCheck(heap_check(0, true))),
        frame(&KernelMsg::CheckEnd(check_end(0))),
    ];
    kernel.write_all(&answer.concat()).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
}

#[test]
fn check_exits_1_when_no_hello_arrives() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["check", "--connect", &addr, "-t", "0.3"]);
    let kernel = accept_unix(&listener, &mut mmtop);
    let out = mmtop.finish();
    drop(kernel);
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("mmtop: no Hello from {addr} within")),
        "{}",
        out.stderr
    );
}

#[test]
fn check_exits_1_when_the_kernel_hangs_up_before_answering() {
    let (_dir, mmtop, mut kernel, _) = start(&[]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    drop(kernel);
    let out = mmtop.finish();
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr
            .contains("link closed before FrameCheck and HeapCheck arrived"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_exits_3_on_a_kernel_without_the_1_1_commands() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["check", "--connect", &addr]);
    let mut kernel = accept_unix(&listener, &mut mmtop);
    answer_resync(&mut kernel, Version { major: 1, minor: 0 });
    let out = mmtop.finish();
    assert_eq!(out.code(), 3, "{out:?}");
    assert_eq!(
        out.stderr,
        "mmtop: kernel speaks protocol 1.0; check needs 1.1 or later\n"
    );
}

#[test]
fn check_exits_3_on_a_kernel_of_another_major_version() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["check", "--connect", &addr]);
    let mut kernel = accept_unix(&listener, &mut mmtop);
    answer_resync(
        &mut kernel,
        Version {
            major: PROTOCOL_VERSION.major + 1,
            minor: 0,
        },
    );
    let out = mmtop.finish();
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(
        out.stderr.contains("use a matching mmtop"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_exits_2_on_a_recording_or_a_missing_socket() {
    let dir = TempDir::new();
    let rec = dir.path("rec.bin");
    std::fs::write(&rec, frame(&boot_messages()[0])).unwrap();
    let out = Mmtop::spawn(&["check", "-c", &format!("file:{}", path_str(&rec))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.contains("check needs a live link"),
        "{}",
        out.stderr
    );

    let sock = dir.path("nobody.sock");
    let out = Mmtop::spawn(&["check", "-c", &format!("unix:{}", path_str(&sock))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(
        out.stderr.starts_with("mmtop: cannot connect to unix:"),
        "{}",
        out.stderr
    );
}

#[test]
fn check_of_a_1_3_kernel_lists_mapping_findings_and_exits_4() {
    let (_dir, mmtop, mut kernel, _) = start_request_at("check", &["--json"], PROTOCOL_VERSION);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    let finding = CheckFinding {
        kind: FindingKind::MappedButFree,
        phys: 0x123_4000,
        used: false,
        owner: None,
        pid: 3,
        virt: 0x40_0000,
        flags: 0b111,
        mappings: 1,
        recorded: 0,
    };
    let leaked = CheckFinding {
        kind: FindingKind::LeakedFrame,
        used: true,
        owner: Some(FrameOwner::Process(3)),
        phys: 0x200_0000,
        virt: 0,
        ..finding
    };
    let answer = [
        frame(&KernelMsg::FrameCheck(frame_check(true))),
        frame(&KernelMsg::HeapCheck(heap_check(0, true))),
        frame(&KernelMsg::CheckFinding(finding)),
        frame(&KernelMsg::CheckFinding(leaked)),
        frame(&KernelMsg::CheckEnd(check_end(2))),
    ];
    kernel.write_all(&answer.concat()).unwrap();

    let out = mmtop.finish();
    assert_eq!(out.code(), 4, "{out:?}");
    let got: Value = serde_json::from_str(&out.lines()[0]).unwrap();
    assert_eq!(got["consistent"], false);
    assert_eq!(
        (got["frames"].as_u64(), got["spaces"].as_u64()),
        (Some(32_768), Some(3))
    );
    let findings = got["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["kind"], "mapped_but_free");
    assert_eq!(findings[0]["phys"], 0x123_4000);
    assert_eq!(findings[1]["owner"], json!({"process": 3}));
    assert!(got["frame_check"]["consistent"].as_bool().unwrap());
    assert_eq!(out.stderr, "mmtop: frames and mappings disagree\n");
}

#[test]
fn check_of_a_1_3_kernel_says_its_mappings_are_consistent_in_one_line() {
    let (_dir, mmtop, mut kernel, _) = start_request_at("check", &[], PROTOCOL_VERSION);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    let answer = [
        frame(&KernelMsg::FrameCheck(frame_check(true))),
        frame(&KernelMsg::HeapCheck(heap_check(0, true))),
        frame(&KernelMsg::CheckEnd(check_end(0))),
    ];
    kernel.write_all(&answer.concat()).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.lines()[2],
        "mappings: consistent with the frame allocator (3 spaces, 120 leaves, 32768 frames, \
         checked in 900 us)"
    );
}
