//! End to end: `mmtop ps` against a fake kernel on a unix socket.

mod common;

use std::io::Write;

use common::procs::*;
use common::*;
use probe_proto::{Heartbeat, HostMsg, KernelMsg, Version};
use serde_json::{Value, json};

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

const TABLE: &str = "\
PID  NAME     STATE     HEAPS  HEAP SIZE    USED      FREE  SHEDS  SHED SIZE  RSS  VMAS
  0  kernel   kernel        1    64.0KiB  1.5KiB   62.5KiB      0         0B   64     0
  1  memtest  sleeping      2   128.0KiB    600B  127.4KiB      2    16.0KiB   40     7
";

#[test]
fn ps_asks_for_every_process_and_prints_a_table() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &[]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    kernel.write_all(&with_noise(full_listing())).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.stdout, TABLE);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_json_is_exactly_the_check_memory_object_with_summed_totals() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &["--json"]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    kernel.write_all(&with_noise(full_listing())).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{out:?}");
    let got: Value = serde_json::from_str(lines[0]).unwrap();
    // Value equality: exactly these keys at every level, nothing more.
    assert_eq!(
        got,
        json!({
            "totalPrograms": 2,
            "programs": [
                {"pid": 0, "programName": "kernel",
                 "heaps": [{"heapId": 0, "heapSize": 65_536, "heapUsed": 1_536,
                            "heapFree": 64_000}],
                 "sheds": [],
                 "totalHeapSize": 65_536, "totalHeapUsed": 1_536, "totalHeapFree": 64_000,
                 "totalShedSize": 0},
                {"pid": 1, "programName": "memtest",
                 "heaps": [{"heapId": 1, "heapSize": 65_536, "heapUsed": 600,
                            "heapFree": 64_936},
                           {"heapId": 7, "heapSize": 65_536, "heapUsed": 0,
                            "heapFree": 65_536}],
                 "sheds": [{"shedId": 1, "shedSize": 8_192}, {"shedId": 9, "shedSize": 8_192}],
                 "totalHeapSize": 131_072, "totalHeapUsed": 600, "totalHeapFree": 130_472,
                 "totalShedSize": 16_384}
            ]
        })
    );
    for p in got["programs"].as_array().unwrap() {
        let sum = |list: &str, key: &str| -> u64 {
            p[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x[key].as_u64().unwrap())
                .sum()
        };
        assert_eq!(p["totalHeapSize"], sum("heaps", "heapSize"));
        assert_eq!(p["totalHeapUsed"], sum("heaps", "heapUsed"));
        assert_eq!(p["totalHeapFree"], sum("heaps", "heapFree"));
        assert_eq!(p["totalShedSize"], sum("sheds", "shedSize"));
    }
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_pid_asks_for_that_process_and_adds_its_heaps_sheds_and_maps() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &["--pid", "1"]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: 1 }
    );
    kernel.write_all(&with_noise(memtest_listing())).unwrap();
    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    let expected = "\
PID  NAME     STATE     HEAPS  HEAP SIZE  USED      FREE  SHEDS  SHED SIZE  RSS  VMAS
  1  memtest  sleeping      2   128.0KiB  600B  127.4KiB      2    16.0KiB   40     7

pid 1 memtest (parent 0): 40.0KiB resident (10 frames), 4 page-table frames

heaps
  ID  START          SIZE  USED     FREE  USED BLOCKS  LARGEST FREE
   1  0x10000000  64.0KiB  600B  63.4KiB            3       63.4KiB
   7  0x10010000  64.0KiB    0B  64.0KiB            0       64.0KiB

sheds
  ID  START         SIZE
   1  0x20000000  8.0KiB
   9  0x20002000  8.0KiB

maps
  ADDRESS                    PERMS           KIND   RESIDENT
  00400000-00402000          r-xp            code     8.0KiB
  00402000-00403000          rw-p            data     4.0KiB
  10000000-10010000          rw-p            heap     4.0KiB
  10010000-10020000          rw-p            heap     4.0KiB
  20000000-20002000          r--p            shed     8.0KiB
  20002000-20004000          r--p            shed     8.0KiB
  7ffffffef000-7ffffffff000  rw-p+growsdown  stack    4.0KiB
";
    assert_eq!(out.stdout, expected);
    assert!(out.stderr.is_empty(), "{}", out.stderr);
}

#[test]
fn ps_pid_json_lists_only_that_process() {
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &["--pid", "1", "--json"]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: 1 }
    );
    // A listing of everything (not the answer to a single pid) comes first
    // and is passed over.
    let mut bytes = frames(&full_listing());
    bytes.extend(frames(&memtest_listing()));
    kernel.write_all(&bytes).unwrap();
    let out = mmtop.finish();
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
        let (_dir, mmtop, mut kernel, _) = start_request("ps", args);
        assert_eq!(
            read_host_frame(&mut kernel).unwrap(),
            HostMsg::Processes { pid: 42 }
        );
        kernel
            .write_all(&frames(&no_such_process_listing()))
            .unwrap();
        let out = mmtop.finish();
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
    assert_eq!(out.stdout, TABLE);
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
    let (_dir, mmtop, mut kernel, _) = start_request("ps", &["--json"]);
    assert_eq!(
        read_host_frame(&mut kernel).unwrap(),
        HostMsg::Processes { pid: -1 }
    );
    let mut info = memtest_info();
    info.total_heap_free -= 1;
    let mut msgs = kernel_msgs();
    msgs.extend(program_msgs(
        info,
        memtest_heaps(),
        memtest_sheds(),
        memtest_vmas(),
    ));
    msgs.push(list_end(2, true));
    kernel.write_all(&frames(&msgs)).unwrap();
    let out = mmtop.finish();
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
    assert_eq!(out.code(), 1, "{out:?}");
    assert!(
        out.stderr
            .starts_with(&format!("mmtop: no ProcessListEnd from {addr} within")),
        "{}",
        out.stderr
    );
}

#[test]
fn ps_exits_3_on_a_kernel_older_than_1_2() {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut mmtop = Mmtop::spawn(&["ps", "--connect", &addr]);
    let mut kernel = accept_unix(&listener, &mut mmtop);
    answer_resync(&mut kernel, Version { major: 1, minor: 1 });
    let out = mmtop.finish();
    assert_eq!(out.code(), 3, "{out:?}");
    assert_eq!(
        out.stderr,
        "mmtop: kernel speaks protocol 1.1; ps needs 1.2 or later\n"
    );
}

#[test]
fn ps_exits_2_on_a_recording() {
    let dir = TempDir::new();
    let rec = dir.path("rec.bin");
    std::fs::write(&rec, frames(&full_listing())).unwrap();
    let out = Mmtop::spawn(&["ps", "-c", &format!("file:{}", path_str(&rec))]).finish();
    assert_eq!(out.code(), 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(
        out.stderr.contains("ps needs a live link"),
        "{}",
        out.stderr
    );
}
