//! End to end: `mmtop record` against a fake kernel on a unix socket, and
//! replays of its recordings by `mmtop log --connect file:...` and into the
//! TUI's model.

mod common;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use common::procs::full_listing;
use common::*;
use mmtop::Msg;
use mmtop::decode::Decoder;
use mmtop::link::recording::{MAGIC, RecordWriter, Replay, ReplayOptions, Sniffed, sniff};
use mmtop::procs::ListingBuilder;
use mmtop::ui::{AppEvent, State, update};
use probe_proto::{HeapEvent, HostMsg, KernelMsg, PageEvent, Pong};

/// Starts `mmtop record -o DIR/rec ARGS...` against a fresh socket; the
/// directory, mmtop, the kernel's end and the recording's path.
fn start_record(args: &[&str]) -> (TempDir, Mmtop, std::os::unix::net::UnixStream, String) {
    let dir = TempDir::new();
    let sock = dir.path("com1.sock");
    let rec = path_str(&dir.path("rec.mmrec")).to_owned();
    let listener = UnixListener::bind(&sock).unwrap();
    let addr = format!("unix:{}", path_str(&sock));
    let mut all = vec!["record", "--connect", &addr, "-o", &rec];
    all.extend(args);
    let mut mmtop = Mmtop::spawn(&all);
    let kernel = accept_unix(&listener, &mut mmtop);
    (dir, mmtop, kernel, rec)
}

fn heap_alloc(ts_us: u64) -> KernelMsg<'static> {
    KernelMsg::HeapAlloc(HeapEvent {
        ts_us,
        pid: 1,
        heap_id: 1,
        addr: 0x1000 + ts_us,
        size: 48,
        align: 16,
        key: 7,
        caller: 0,
    })
}

#[test]
fn record_starts_at_hello_and_log_replays_the_same_messages() {
    let (_dir, mmtop, mut kernel, rec) = start_record(&["--count", "6"]);
    assert_eq!(read_host_frame(&mut kernel).unwrap(), HostMsg::Resync);
    // The tail of a frame sent before the client joined, and a whole
    // message from before the Hello: neither is recorded.
    let mut early = b"tail of an old frame\x00".to_vec();
    early.extend(frame(&KernelMsg::Pong(Pong { nonce: 1, ts_us: 1 })));
    kernel.write_all(&early).unwrap();
    let msgs = boot_messages();
    let bytes = frames(&msgs);
    // In two writes, cut inside a frame, with a pause between.
    kernel.write_all(&bytes[..bytes.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    kernel.write_all(&bytes[bytes.len() / 2..]).unwrap();
    kernel.write_all(&frame(&heap_alloc(5))).unwrap();
    // Beyond --count: not recorded (mmtop may have hung up already).
    let _ = kernel.write_all(&frame(&heap_alloc(6)));

    let out = mmtop.finish();
    assert_eq!(out.code(), 0, "{out:?}");
    out.assert_stderr_contains("mmtop: recorded 6 messages");

    // The container: magic, records whose bytes are the frames from the
    // Hello on, unchanged; the first at 0 us, times never decreasing.
    let file = std::fs::read(&rec).unwrap();
    assert!(file.starts_with(MAGIC));
    let Sniffed::Recording(records) = sniff(file.as_slice()).unwrap() else {
        panic!("not a recording");
    };
    let records: Vec<_> = records.map(Result::unwrap).collect();
    assert_eq!(records[0].t_us, 0);
    assert!(records.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    let recorded: Vec<u8> = records.iter().flat_map(|r| r.bytes.clone()).collect();
    let mut expected = bytes.clone();
    expected.extend(frame(&heap_alloc(5)));
    assert_eq!(recorded, expected);

    // `mmtop log` on the recording prints what it prints on the raw bytes.
    let addr = format!("file:{rec}");
    let replayed = Mmtop::spawn(&["log", "--json", "--connect", &addr]).finish();
    assert_eq!(replayed.code(), 0, "{replayed:?}");
    let raw = run_on_recording("log", &expected, &["--json"]);
    assert_eq!(replayed.stdout, raw.stdout);
    let types: Vec<String> = replayed
        .lines()
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(
        types,
        [
            "\"hello\"",
            "\"mem_region\"",
            "\"mem_region\"",
            "\"log\"",
            "\"heartbeat\"",
            "\"heap_alloc\""
        ]
    );
    assert!(!replayed.stderr.contains("corrupt"), "{}", replayed.stderr);
}

/// A recording of `(time, message)` pairs, one record each.
fn synthetic(msgs: &[(u64, KernelMsg<'_>)]) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new()).unwrap();
    for (t, m) in msgs {
        w.write(*t, &frame(m)).unwrap();
    }
    w.into_inner().unwrap()
}

#[test]
fn log_at_skips_earlier_messages_and_speed_paces_the_replay() {
    let msgs: Vec<(u64, KernelMsg)> = (0..5).map(|i| (i * 10_000_000, heap_alloc(i))).collect();
    let bytes = synthetic(&msgs);
    let all = run_on_recording("log", &bytes, &[]);
    assert_eq!(all.lines().len(), 5, "{all:?}");
    let skipped = run_on_recording("log", &bytes, &["--at", "25s"]);
    assert_eq!(skipped.code(), 0, "{skipped:?}");
    assert_eq!(skipped.lines(), all.lines()[3..]);
    let skipped = run_on_recording("log", &bytes, &["--at", "20"]);
    assert_eq!(skipped.lines(), all.lines()[2..]);

    // 40 recorded seconds at 100x: at least 0.4 s; --at 35s leaves 5 s,
    // 50 ms. Without --speed: as fast as it reads.
    let started = Instant::now();
    let paced = run_on_recording("log", &bytes, &["--speed", "100"]);
    assert!(started.elapsed() >= Duration::from_millis(390), "{paced:?}");
    assert_eq!(paced.lines(), all.lines());
    let started = Instant::now();
    run_on_recording("log", &bytes, &["--speed", "100", "--at", "35s"]);
    assert!(started.elapsed() < Duration::from_millis(390));
}

#[test]
fn a_truncated_recording_replays_its_whole_records_and_says_so() {
    let msgs: Vec<(u64, KernelMsg)> = (0..3).map(|i| (i, heap_alloc(i))).collect();
    let mut bytes = synthetic(&msgs);
    bytes.truncate(bytes.len() - 3);
    let out = run_on_recording("log", &bytes, &[]);
    assert_eq!(out.code(), 0, "{out:?}");
    assert_eq!(out.lines().len(), 2, "{out:?}");
    out.assert_stderr_contains("recording truncated: the record at byte");
}

/// Replays `bytes` (a recording) into a fresh TUI model, as the TUI does.
fn replay_into_model(bytes: Vec<u8>) -> State {
    let Sniffed::Recording(records) = sniff(std::io::Cursor::new(bytes)).unwrap() else {
        panic!("not a recording");
    };
    let mut replay = Replay::new(records, ReplayOptions::default());
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut replay, &mut raw).unwrap();
    let mut state = State::new("file:rec", false);
    update(&mut state, AppEvent::Connected);
    let mut decoder = Decoder::new();
    for msg in decoder.feed(&raw) {
        update(
            &mut state,
            AppEvent::Link(mmtop::LinkEvent::Msg(msg.unwrap())),
        );
    }
    state
}

#[test]
fn replaying_a_recording_rebuilds_the_kernels_last_listing() {
    // An earlier listing with other numbers, heap and page events, then the
    // kernel's listing at the end of the recording.
    let mut msgs: Vec<(u64, KernelMsg)> = vec![(0, hello(probe_proto::PROTOCOL_VERSION))];
    let early = common::procs::full_listing_with(|i| {
        i.total_heap_used /= 2;
        i.resident_frames += 100;
    });
    msgs.extend(early.into_iter().map(|m| (100, m)));
    for i in 0..1000u64 {
        msgs.push((200 + i, heap_alloc(i)));
        msgs.push((
            200 + i,
            KernelMsg::PageAlloc(PageEvent {
                ts_us: i,
                addr: 0x20_0000 + i * 4096,
                count: 1,
                owner: probe_proto::FrameOwner::Process(1),
                caller: 0,
            }),
        ));
    }
    let last = full_listing();
    msgs.extend(last.iter().cloned().map(|m| (5_000, m)));
    let state = replay_into_model(synthetic(&msgs));

    let mut builder = ListingBuilder::new();
    let listing = last
        .iter()
        .map(|m| Msg::from(m.clone().into_owned()))
        .find_map(|m| builder.push(&m))
        .expect("the fixture is a whole listing");
    assert!(state.listing_complete);
    assert_eq!(state.programs, listing.programs);
    assert_eq!(state.programs.len(), 2);
    assert_eq!(state.msgs_total, msgs.len() as u64);
}
