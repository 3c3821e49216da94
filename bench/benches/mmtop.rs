//! mmtop's host side: how fast it ingests a recorded stream and how long
//! the TUI takes to draw each view.
//!
//! - Ingest: a synthetic recording (the `mmtop record` container) of
//!   1,000,000 heap and page events, cut into 4 KiB records as reads of a
//!   busy link would be, is read back, decoded and folded into the TUI's
//!   model (`ui::update`, which also formats each event for the event log),
//!   the work the TUI does per event. Goal: at least 1 M events/s.
//! - Render: a model with 1,000 processes and a 100k-event backlog (the
//!   event log keeps its last `EVENT_LOG_CAP` lines), the selected
//!   process's two heaps walked (1,000 blocks each) and the owner map of a
//!   1 GiB machine in 20,000 runs, drawn into ratatui's `TestBackend` at
//!   160x50, each view. Goal: under 16 ms (60 Hz).
//!
//! Prints a table of the figures beside the goals; nothing is asserted.
//! Run with `cargo bench -p bench --bench mmtop` (a release build).

use std::borrow::Cow;
use std::hint::black_box;
use std::time::{Duration, Instant};

use mmtop::Msg;
use mmtop::decode::Decoder;
use mmtop::event::LinkEvent;
use mmtop::link::recording::{RecordWriter, Sniffed, sniff};
use mmtop::ui::state::View;
use mmtop::ui::{AppEvent, State, update, view};
use probe_proto::{
    EventCounters, FrameOwner, FrameUsage, HeapBlock, HeapEvent, HeapStats, HeapWalkEnd, Hello,
    KernelMsg, MemoryStats, OWNER_RUNS_BATCH, OwnerMapEnd, OwnerRun, OwnerRuns, PROTOCOL_VERSION,
    PageEvent, ProcState, ProcessHeap, ProcessInfo, ProcessListEnd, ProcessVma, VmaKind,
    encode_frame, frame::MAX_FRAME,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent};

/// Events in the ingest recording.
const EVENTS: u64 = 1_000_000;
/// Processes in the render model.
const PROCESSES: u32 = 1_000;
/// Events pushed through the render model before drawing.
const BACKLOG: u64 = 100_000;
/// Blocks in each of the selected process's two heap walks.
const WALK_BLOCKS: u64 = 1_000;
/// Frames of the owner map: 1 GiB.
const MAP_FRAMES: u64 = 262_144;
/// Runs of the owner map.
const MAP_RUNS: u64 = 20_000;
/// Ingest runs; the best counts.
const INGEST_ROUNDS: usize = 3;
/// Draws of each view; the median and the worst are shown.
const DRAWS: usize = 30;

fn hello() -> KernelMsg<'static> {
    KernelMsg::Hello(Hello {
        version: PROTOCOL_VERSION,
        build_id: Cow::Borrowed("bench"),
        mem_total_bytes: 1 << 30,
        mem_usable_bytes: (1 << 30) - (1 << 20),
        nr_regions: 0,
        features: probe_proto::features::HOST_COMMANDS,
        cmdline: Cow::Borrowed(""),
        uptime_us: 0,
        tsc_hz: 2_000_000_000,
    })
}

/// The i-th event of the stream: heap allocs and frees, page allocs and
/// frees, in turn, over 1,000 processes.
fn event(i: u64) -> KernelMsg<'static> {
    let pid = (i % u64::from(PROCESSES)) as u32;
    let heap = HeapEvent {
        ts_us: i,
        pid,
        heap_id: 1,
        addr: 0x4000_0000 + (i % 4096) * 64,
        size: 16 + i % 512,
        align: 16,
        key: 0x1000 + i % 97,
        caller: 0xffff_ffff_8000_1000 + i % 31,
    };
    let page = PageEvent {
        ts_us: i,
        addr: 0x10_0000 + (i % 65_536) * 4096,
        count: 1,
        owner: FrameOwner::Process(pid),
        caller: 0xffff_ffff_8000_2000,
    };
    match i % 4 {
        0 => KernelMsg::HeapAlloc(heap),
        1 => KernelMsg::HeapFree(heap),
        2 => KernelMsg::PageAlloc(page),
        _ => KernelMsg::PageFree(page),
    }
}

fn push_frame(out: &mut Vec<u8>, msg: &KernelMsg<'_>) {
    let mut buf = [0u8; MAX_FRAME];
    out.extend_from_slice(encode_frame(msg, &mut buf).expect("encode"));
}

/// A recording: Hello, then `EVENTS` events, in 4 KiB records 1 ms apart.
fn recording() -> Vec<u8> {
    let mut stream = Vec::new();
    push_frame(&mut stream, &hello());
    for i in 0..EVENTS {
        push_frame(&mut stream, &event(i));
    }
    let mut w = RecordWriter::new(Vec::with_capacity(stream.len() + stream.len() / 256))
        .expect("write to memory");
    for (n, chunk) in stream.chunks(4096).enumerate() {
        w.write(n as u64 * 1000, chunk).expect("write to memory");
    }
    w.into_inner().expect("write to memory")
}

/// Reads, decodes and (with `model`) folds the recording into a TUI model;
/// messages seen.
fn ingest(file: &[u8], model: bool) -> u64 {
    let Sniffed::Recording(records) = sniff(file).expect("read memory") else {
        panic!("not a recording");
    };
    let mut decoder = Decoder::new();
    let mut state = State::new("file:bench", false);
    update(&mut state, AppEvent::Connected);
    let mut seen = 0;
    for record in records {
        let record = record.expect("whole records");
        for msg in decoder.feed(&record.bytes) {
            let msg = msg.expect("good frames");
            seen += 1;
            if model {
                black_box(update(&mut state, AppEvent::Link(LinkEvent::Msg(msg))));
            } else {
                black_box(msg);
            }
        }
    }
    black_box(&state);
    seen
}

/// The best rate over the rounds, in events per second.
fn best_rate(file: &[u8], model: bool) -> f64 {
    (0..INGEST_ROUNDS)
        .map(|_| {
            let t = Instant::now();
            let n = ingest(file, model);
            n as f64 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// One process's listing messages: a row, two heaps, three VMAs.
fn program(pid: u32) -> Vec<Msg> {
    let size = 65_536 * u64::from(1 + pid % 7);
    let used = size / u64::from(2 + pid % 5);
    let mut msgs = vec![Msg::ProcessInfo(ProcessInfo {
        ts_us: 1,
        pid,
        parent: 0,
        name: Cow::Owned(format!("prog{pid:04}")),
        state: if pid == 0 {
            ProcState::Kernel
        } else {
            ProcState::Runnable
        },
        nr_heaps: 2,
        nr_sheds: 0,
        nr_vmas: 3,
        total_heap_size: 2 * size,
        total_heap_used: 2 * used,
        total_heap_free: 2 * (size - used),
        total_shed_size: 0,
        resident_frames: u64::from(pid % 300) + 3,
        page_table_frames: 4,
    })];
    for heap_id in 0..2 {
        msgs.push(Msg::ProcessHeap(ProcessHeap {
            pid,
            heap_id,
            start: 0x10_0000 + u64::from(heap_id) * size,
            heap_size: size,
            heap_used: used,
            heap_free: size - used,
            used_blocks: 12,
            largest_free: (size - used) / 2,
        }));
    }
    for (n, kind) in [VmaKind::Code, VmaKind::Heap, VmaKind::Stack]
        .into_iter()
        .enumerate()
    {
        let start = 0x40_0000 + n as u64 * 0x10_0000;
        msgs.push(Msg::ProcessVma(ProcessVma {
            pid,
            start,
            end: start + 0x8000,
            flags: 3,
            kind,
            resident_pages: 5,
        }));
    }
    msgs
}

fn snapshot() -> MemoryStats {
    MemoryStats {
        ts_us: 5,
        total_frames: 262_144,
        free_frames: 200_000,
        usage: FrameUsage {
            free: 200_000,
            reserved: 256,
            kernel_image: 600,
            bitmap: 8,
            kernel_heap: 1024,
            kernel_stack: 16,
            page_table: 4000,
            process: 56_240,
            ..FrameUsage::default()
        },
        kernel_heap: HeapStats {
            region_bytes: 4 << 20,
            used_bytes: 1 << 20,
            ..HeapStats::default()
        },
        counters: EventCounters {
            page_allocs: BACKLOG,
            page_frees: 0,
            maps: 0,
            unmaps: 0,
            heap_allocs: BACKLOG,
            heap_frees: 0,
            heap_errors: 0,
            frame_errors: 0,
        },
    }
}

/// The render model: 1,000 processes, a snapshot, a 100k-event backlog and
/// a full sparkline history; process 500 selected.
fn render_model() -> State {
    let mut state = State::new("file:bench", true);
    let feed = |state: &mut State, m: Msg| {
        update(state, AppEvent::Link(LinkEvent::Msg(m)));
    };
    update(&mut state, AppEvent::Connected);
    feed(&mut state, hello());
    for pid in 0..PROCESSES {
        for m in program(pid) {
            feed(&mut state, m);
        }
    }
    feed(
        &mut state,
        Msg::ProcessListEnd(ProcessListEnd {
            ts_us: 2,
            total_programs: PROCESSES,
            complete: true,
        }),
    );
    feed(&mut state, Msg::MemoryStats(snapshot()));
    for i in 0..BACKLOG {
        feed(&mut state, event(i));
        if i % 400 == 0 {
            update(&mut state, AppEvent::Tick);
        }
    }
    state.selected = Some(PROCESSES / 2);
    let key = |state: &mut State, c: char| {
        update(state, AppEvent::Key(KeyEvent::from(KeyCode::Char(c))));
    };
    // The detail view asks for its heaps' walks: 1,000 blocks each.
    key(&mut state, '2');
    for heap_id in 0..2 {
        let start = 0x10_0000 + u64::from(heap_id) * 65_536 * u64::from(1 + PROCESSES / 2 % 7);
        for n in 0..WALK_BLOCKS {
            feed(
                &mut state,
                Msg::HeapBlock(HeapBlock {
                    pid: PROCESSES / 2,
                    heap_id,
                    addr: start + n * 64,
                    size: 48,
                    used: n % 3 != 0,
                    key: n,
                }),
            );
        }
        feed(
            &mut state,
            Msg::HeapWalkEnd(HeapWalkEnd {
                ts_us: 1,
                pid: PROCESSES / 2,
                heap_id,
                blocks: WALK_BLOCKS,
                complete: true,
            }),
        );
    }
    // The physical view asks for the owner map: 1 GiB in 20,000 runs.
    key(&mut state, '3');
    let runs: Vec<OwnerRun> = (0..MAP_RUNS)
        .map(|i| OwnerRun {
            owner: match i % 4 {
                0 => None,
                1 => Some(FrameOwner::Process((i % u64::from(PROCESSES)) as u32)),
                2 => Some(FrameOwner::PageTable),
                _ => Some(FrameOwner::KernelHeap),
            },
            frames: MAP_FRAMES / MAP_RUNS,
        })
        .collect();
    for (n, batch) in runs.chunks(OWNER_RUNS_BATCH).enumerate() {
        feed(
            &mut state,
            Msg::OwnerRuns(OwnerRuns {
                first_frame: (n * OWNER_RUNS_BATCH) as u64 * (MAP_FRAMES / MAP_RUNS),
                runs: Cow::Owned(batch.to_vec()),
            }),
        );
    }
    feed(
        &mut state,
        Msg::OwnerMapEnd(OwnerMapEnd {
            ts_us: 1,
            first_frame: 0,
            nr_frames: MAP_FRAMES,
            runs: MAP_RUNS,
            total_frames: MAP_FRAMES,
        }),
    );
    state
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let file = recording();
    let decode = best_rate(&file, false);
    let full = best_rate(&file, true);

    let mut state = render_model();
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).expect("test backend");
    let mut draws = Vec::new();
    for v in View::ALL {
        state.view = v;
        let times: Vec<Duration> = (0..DRAWS)
            .map(|_| {
                let t = Instant::now();
                terminal
                    .draw(|f| view::render(f, &state))
                    .expect("test backend");
                t.elapsed()
            })
            .collect();
        let worst = times.iter().copied().max().unwrap_or_default();
        draws.push((v.title(), median(times), worst));
    }

    println!(
        "mmtop: ingest of a {EVENTS}-event recording ({} MiB; best of {INGEST_ROUNDS}), \
         render at 160x50 with {PROCESSES} processes and a {BACKLOG}-event backlog \
         ({DRAWS} draws each)",
        file.len() >> 20
    );
    println!(
        "{:<38} {:>14} {:>10} {:>15}",
        "measure", "result", "worst", "goal"
    );
    let rate = |r: f64| format!("{:.2} M ev/s", r / 1e6);
    println!(
        "{:<38} {:>14} {:>10} {:>15}",
        "ingest: read + decode",
        rate(decode),
        "",
        "-"
    );
    println!(
        "{:<38} {:>14} {:>10} {:>15}",
        "ingest: read + decode + model update",
        rate(full),
        "",
        ">= 1.00 M ev/s"
    );
    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
    for (title, med, worst) in draws {
        println!(
            "{:<38} {:>14} {:>10} {:>15}",
            format!("render {title} (median)"),
            ms(med),
            ms(worst),
            "< 16 ms"
        );
    }
}
