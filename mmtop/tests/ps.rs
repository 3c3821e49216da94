//! End to end: `mmtop ps` against a fake kernel on a unix socket.

mod common;

use std::io::Write;

use common::procs::*;
use common::*;
use probe_proto::{Heartbeat, HostMsg, KernelMsg, PROTOCOL_VERSION, Version};
use serde_json::Value;

/// Unrelated telemetry the kernel sends while it answers.
fn noise() -> KernelMsg<'static> {
    KernelMsg::Heartbeat(Heartbeat {
        ts_us: 2_000_000,
        rx_frames: 3,
        rx_bad: 0,
        tx_dropped: 0,
    })
}

/// `msgs` with a heartbeat after the first message.
fn with_noise(mut msgs: Vec<KernelMsg<'static>>) -> Vec<u8> {
    msgs.insert(1.min(msgs.len()), noise());
    frames(&msgs)
}

/// Runs `mmtop ps ARGS...` against a kernel that expects a request for
/// the listing of `pid` (-1: all) and answers with `answer`.
fn ps(args: &[&str], pid: i64, answer: &[u8]) -> Output {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", args);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid }
    );
    kernel.write_all(answer).unwrap();
    mmtop.finish()
}

#[test]
fn ps_asks_for_every_process_and_prints_a_table() {
    let out = ps(&[], -1, &with_noise(full_listing()));
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, PS_TABLE);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_json_is_exactly_the_check_memory_object_with_summed_totals() {
    let out = ps(&["--json"], -1, &with_noise(full_listing()));
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    // Value equality: exactly these keys at every level, nothing more.
    assert_eq!(got, full_listing_check_memory());
    for p in got["programs"].as_array().unwrap() {
        for (total, parts, key) in [
            ("totalHeapSize", "heaps", "heapSize"),
            ("totalHeapUsed", "heaps", "heapUsed"),
            ("totalHeapFree", "heaps", "heapFree"),
            ("totalShedSize", "sheds", "shedSize"),
        ] {
            let parts = p[parts].as_array().unwrap();
            let sum: u64 = parts.iter().map(|x| x[key].as_u64().unwrap()).sum();
            assert_eq!(p[total], sum);
        }
    }
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_pid_asks_for_that_process_and_adds_its_heaps_sheds_and_maps() {
    let out = ps(&["--pid", "1"], 1, &with_noise(memtest_listing()));
    assert_eq!(out.code(), 0, "{out:?}");
    let expected = format!(
        "\
PID  NAME     STATE     HEAPS  HEAP SIZE  USED      FREE  SHEDS  SHED SIZE  RSS  VMAS
  1  memtest  sleeping      2   128.0KiB  600B  127.4KiB      2    16.0KiB   40     7

{MEMTEST_DETAILS}"
    );
    assert_eq!(out.stdout, expected);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_pid_json_lists_only_that_process() {
    // A listing of everything (not the answer to a single pid) comes first
    // and is passed over.
    let mut bytes = frames(&full_listing());
    bytes.extend(frames(&memtest_listing()));
    let out = ps(&["--pid", "1", "--json"], 1, &bytes);
    assert_eq!(out.code(), 0, "{out:?}");
    let got: Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(got["totalPrograms"], 1, "{got}");
    assert_eq!(got["programs"][0]["programName"], "memtest", "{got}");
}

#[test]
fn ps_for_a_pid_that_does_not_exist_says_so_and_exits_5() {
    for json in [false, true] {
        let args: &[&str] = if json {
            &["--pid", "42", "--json"]
        } else {
            &["--pid", "42"]
        };
        let out = ps(args, 42, &frames(&no_such_process_listing()));
        assert_eq!(out.code(), 5, "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(out.stderr, "mmtop: no process 42\n");
    }
}

#[test]
fn ps_asks_again_after_an_incomplete_listing() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &[]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    // The kernel could not queue everything: a heap is missing and it says so.
    let mut first = full_listing();
    first.retain(|m| !matches!(m, KernelMsg::ProcessHeap(h) if h.heap_id == 7));
    *first.last_mut().unwrap() = list_end(2, false);
    kernel.write_all(&frames(&first)).unwrap();
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    kernel.write_all(&frames(&full_listing())).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, PS_TABLE);
    assert_eq!(
        out.stderr,
        "mmtop: the process listing is incomplete (the kernel could not queue every message \
         of it); asking again\n"
    );
}

#[test]
fn ps_gives_up_with_exit_3_when_the_listing_is_incomplete_twice() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &["--json"]);
    // A VMA lost without the kernel noticing: only the counts tell.
    let mut lossy = full_listing();
    let at = lossy
        .iter()
        .position(|m| matches!(m, KernelMsg::ProcessVma(_)))
        .unwrap();
    lossy.remove(at);
    for _ in 0..2 {
        assert_eq!(
            read_host_frame(&mut kernel).unwrap(),
            HostMsg::Processes { pid: -1 }
        );
        kernel.write_all(&frames(&lossy)).unwrap();
    }
    let out = mmtop.finish();
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "mmtop: the process listing is incomplete (pid 1: 6 VMAs arrived, its row announced \
             7); asking again",
            "mmtop: the process listing is incomplete again (pid 1: 6 VMAs arrived, its row \
             announced 7); giving up",
        ]
    );
}

#[test]
fn ps_exits_3_when_a_kernel_total_is_not_the_sum_of_its_heaps() {
    let msgs = full_listing_with(|info| info.total_heap_free -= 1);
    let out = ps(&["--json"], -1, &frames(&msgs));
    assert_eq!(out.code(), 3, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(
        out.stderr,
        "mmtop: protocol error: pid 1 (memtest) reports totalHeapFree = 130471, but its heaps \
         add up to 130472\n"
    );
}

#[test]
fn ps_exits_1_when_the_listing_does_not_end_in_time() {
    let (_dir, mmtop, mut kernel, addr) = start_request("ps", &["-t", "0.5"]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    kernel.write_all(&frames(&memtest_msgs())).unwrap();
    let out = mmtop.finish();
    drop(kernel);
    out.assert_no_answer("ProcessListEnd", &addr);
}

#[test]
fn ps_exits_3_on_a_1_x_kernel() {
    let out = run_after_hello("ps", Version { major: 1, minor: 2 });
    assert_eq!(out.code(), 3, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "mmtop: kernel speaks protocol 1.2, this mmtop speaks {}.{} (any 2.x); use a matching mmtop\n",
            PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor
        )
    );
}

#[test]
fn ps_exits_2_on_a_recording() {
    let out = run_on_recording("ps", &frames(&full_listing()), &[]);
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    out.assert_stderr_contains("ps needs a live link");
}
