//! End to end: `mmtop check` against a fake kernel on a unix socket.

mod common;

use std::io::Write;

use common::memory::{frame_check, heap_check};
use common::*;
use probe_proto::{
    CheckEnd, CheckFinding, FindingKind, FrameOwner, Heartbeat, HostMsg, KernelMsg,
    PROTOCOL_VERSION, Version,
};
use serde_json::{Value, json};

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

/// Starts `mmtop check ARGS...` against a fresh socket and a kernel of
/// this protocol; returns it, the kernel's end (after the Resync/Hello
/// exchange) and the address.
fn start(args: &[&str]) -> Connected {
    start_request_at("check", args, PROTOCOL_VERSION)
}

/// Runs `mmtop check ARGS...` against a kernel of `version` that expects
/// `Check` and answers with `answer`.
fn check(args: &[&str], version: Version, answer: &[KernelMsg<'_>]) -> Output {
    let (_dir, mmtop, mut kernel, _) = start_request_at("check", args, version);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    kernel.write_all(&frames(answer)).unwrap();
    mmtop.finish()
}

#[test]
fn check_exits_0_and_prints_both_results_when_the_kernel_is_consistent() {
    // Unrelated telemetry and another heap's check come first: not the answer.
    let answer = [
        KernelMsg::Heartbeat(Heartbeat {
            ts_us: 1,
            rx_frames: 2,
            rx_bad: 0,
            tx_dropped: 0,
        }),
        KernelMsg::HeapCheck(heap_check(5, false)),
        KernelMsg::FrameCheck(frame_check(true)),
        KernelMsg::HeapCheck(heap_check(0, true)),
        KernelMsg::CheckEnd(check_end(0)),
    ];
    let out = check(&[], PROTOCOL_VERSION, &answer);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.lines(),
        [
            "frame_check t=3.000000s ok frames=32768 free=30000 ram=32512",
            "heap_check t=3.000100s heap=kernel#0 ok used=1.5KiB (9 blocks) free=60.0KiB \
             (3 blocks) largest_free=40.0KiB overhead=256B region=64.0KiB",
            "mappings: consistent with the frame allocator (3 spaces, 120 leaves, 32768 \
             frames, checked in 900 us)",
        ]
    );
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn check_exits_4_when_the_kernel_reports_an_inconsistency() {
    let answer = [
        KernelMsg::FrameCheck(frame_check(false)),
        KernelMsg::HeapCheck(heap_check(0, true)),
        KernelMsg::CheckEnd(check_end(0)),
    ];
    let out = check(&[], PROTOCOL_VERSION, &answer);
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
    let answer = [
        KernelMsg::FrameCheck(frame_check(true)),
        KernelMsg::HeapCheck(heap_check(0, false)),
        KernelMsg::CheckEnd(check_end(0)),
    ];
    let out = check(&["--json"], PROTOCOL_VERSION, &answer);
    assert_eq!(out.code(), 4, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        got,
        json!({
            "consistent": false, "frames": 32_768, "spaces": 3, "mappings": 120,
            "duration_us": 900, "findings": [],
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
    assert!(out.stdout.is_empty(), "{out:?}");
    out.assert_no_answer("HeapCheck", &addr);
}

#[test]
fn check_repeats_the_resync_until_the_kernel_says_hello() {
    let (_dir, mmtop, mut kernel, _) = connect("check", &[]);
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
    let (_dir, mmtop, kernel, addr) = connect("check", &["-t", "0.3"]);
    let out = mmtop.finish();
    drop(kernel);
    out.assert_no_answer("Hello", &addr);
}

#[test]
fn check_exits_1_when_the_kernel_hangs_up_before_answering() {
    let (_dir, mmtop, mut kernel, _) = start(&[]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Check);
    drop(kernel);
    let out = mmtop.finish();
    assert_eq!(out.code(), 1, "{out:?}");
    out.assert_stderr_contains("link closed before FrameCheck and HeapCheck arrived");
}

#[test]
fn check_exits_3_on_a_1_x_kernel_and_names_both_versions() {
    let out = run_after_hello("check", Version { major: 1, minor: 4 });
    assert_eq!(out.code(), 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "mmtop: kernel speaks protocol 1.4, this mmtop speaks {}.{} (any 2.x); use a matching mmtop\n",
            PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor
        )
    );
}

#[test]
fn check_exits_3_on_a_kernel_of_another_major_version() {
    let future = Version {
        major: PROTOCOL_VERSION.major + 1,
        minor: 0,
    };
    let out = run_after_hello("check", future);
    assert_eq!(out.code(), 3, "{out:?}");
    out.assert_stderr_contains("use a matching mmtop");
}

#[test]
fn check_exits_2_on_a_recording_or_a_missing_socket() {
    let out = run_on_recording("check", &frame(&boot_messages()[0]), &[]);
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_contains("check needs a live link");

    let dir = TempDir::new();
    let sock = dir.path("nobody.sock");
    let out = Mmtop::spawn(&["check", "-c", &format!("unix:{}", path_str(&sock))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    out.assert_stderr_starts_with("mmtop: cannot connect to unix:");
}

#[test]
fn check_of_a_1_3_kernel_lists_mapping_findings_and_exits_4() {
    // A shared frame mapped twice whose count says three.
    let finding = CheckFinding {
        kind: FindingKind::ShareCount,
        phys: 0x4bf_000,
        used: true,
        owner: Some(FrameOwner::Process(1)),
        pid: 0,
        virt: 0,
        flags: 0,
        mappings: 2,
        recorded: 3,
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
        KernelMsg::FrameCheck(frame_check(true)),
        KernelMsg::HeapCheck(heap_check(0, true)),
        KernelMsg::CheckFinding(finding),
        KernelMsg::CheckFinding(leaked),
        KernelMsg::CheckEnd(check_end(2)),
    ];
    let out = check(&["--json"], PROTOCOL_VERSION, &answer);
    assert_eq!(out.code(), 4, "{out:?}");
    let got: Value = serde_json::from_str(out.lines()[0]).unwrap();
    assert_eq!(got["consistent"], false);
    assert_eq!(
        (got["frames"].as_u64(), got["spaces"].as_u64()),
        (Some(32_768), Some(3))
    );
    let findings = got["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["kind"], "share_count");
    assert_eq!(findings[0]["phys"], 0x4bf_000);
    assert_eq!(
        (
            findings[0]["mappings"].as_u64(),
            findings[0]["recorded"].as_u64()
        ),
        (Some(2), Some(3))
    );
    assert_eq!(findings[1]["owner"], json!({"process": 3}));
    assert!(got["frame_check"]["consistent"].as_bool().unwrap());
    assert_eq!(out.stderr, "mmtop: frames and mappings disagree\n");
}

#[test]
fn check_of_a_1_3_kernel_says_its_mappings_are_consistent_in_one_line() {
    let answer = [
        KernelMsg::FrameCheck(frame_check(true)),
        KernelMsg::HeapCheck(heap_check(0, true)),
        KernelMsg::CheckEnd(check_end(0)),
    ];
    let out = check(&[], PROTOCOL_VERSION, &answer);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(
        out.lines()[2],
        "mappings: consistent with the frame allocator (3 spaces, 120 leaves, 32768 frames, \
         checked in 900 us)"
    );
}
