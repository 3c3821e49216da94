//! Whole screens rendered with ratatui's `TestBackend` from a synthetic
//! model, at 80x24 and 160x50, checked as plain text.

use crossterm::event::KeyCode;
use probe_proto::{
    AuditKind, CheckEnd, CheckFinding, FindingKind, FrameCheck, FrameOwner, HeapCheck, HeapStats,
    PtAudit, PtDumpEnd, PtRange, Region, VmaKind,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::state::tests::{
    heap_alloc, kernel_leak, key, owner_map_msgs, populated, pt_dump_msgs, scan_end,
    with_faults_and_leaks, worker_walk,
};
use super::state::{AppEvent, LinkState, State};
use super::{DEFAULT_ADDRESS, default_to_top, resolve_address, update, view};
use crate::Msg;
use crate::event::LinkEvent;
use crate::link::Address;

/// The screen for `s` at `w`x`h`, one string per row.
fn screen(s: &State, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(f, s)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn text(lines: &[String]) -> String {
    lines.join("\n")
}

fn assert_has(lines: &[String], needle: &str) {
    assert!(
        lines.iter().any(|l| l.contains(needle)),
        "{needle:?} not on screen:\n{}",
        text(lines)
    );
}

fn feed(s: &mut State, msgs: Vec<Msg>) {
    for m in msgs {
        update(s, AppEvent::Link(LinkEvent::Msg(m)));
    }
}

#[test]
fn processes_view_at_80x24_shows_totals_header_and_every_program() {
    let s = populated();
    let lines = screen(&s, 80, 24);
    assert!(
        lines[0].starts_with("mmtop 1:Processes 2:Detail"),
        "{}",
        text(&lines)
    );
    assert_has(&lines, "unix:target/com1.sock link up proto 2.1");
    assert_has(&lines, "frames 2639/32639 used (8%), 30000 free");
    assert_has(&lines, "kernel heap 1M/4M used");
    assert_has(&lines, "kernel heap 1024");
    assert_has(&lines, "page table 400");
    assert_has(&lines, "events/s 12");
    assert_has(&lines, "Processes (3 programs)");
    assert_has(&lines, "PID▼ NAME");
    assert_has(&lines, "RSS");
    let worker = lines.iter().find(|l| l.contains("worker")).unwrap();
    for cell in ["1", "runnable", "64K", "48K", "16K", "75.0", "16K"] {
        assert!(worker.contains(cell), "{cell} in {worker}");
    }
    assert_has(&lines, "leaker");
    assert_has(&lines, "kernel");
    assert!(lines[23].starts_with("q quit"), "{}", lines[23]);
    assert!(lines.iter().all(|l| l.chars().count() == 80));
}

#[test]
fn processes_view_large_shows_the_same_rows_with_room_to_spare() {
    let s = populated();
    let lines = screen(&s, 160, 50);
    assert_has(&lines, "worker");
    assert_has(&lines, "? help");
    let rows = lines.iter().filter(|l| l.contains("runnable")).count();
    assert_eq!(rows, 2);
}

#[test]
fn sort_and_filter_show_in_the_header_and_title() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('s')));
    update(&mut s, key(KeyCode::Char('/')));
    update(&mut s, key(KeyCode::Char('w')));
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "NAME▼");
    assert_has(&lines, "(1 of 3 match 'w')");
    assert_has(&lines, "filter: w");
    assert!(
        !lines.iter().any(|l| l.contains("leaker")),
        "{}",
        text(&lines)
    );
}

#[test]
fn lost_link_says_so_and_keeps_the_programs() {
    let mut s = populated();
    update(
        &mut s,
        AppEvent::Link(LinkEvent::Closed {
            stats: Default::default(),
            error: None,
        }),
    );
    assert!(matches!(s.link, LinkState::Lost(_)));
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "link lost, reconnecting…");
    assert_has(&lines, "worker");
}

#[test]
fn detail_view_shows_heap_bars_and_maps_lines() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Enter));
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(&lines, "Process detail: pid 1 worker (runnable)");
        assert_has(&lines, "heaps (1)");
        assert_has(&lines, "███");
        assert_has(&lines, "░");
        assert_has(&lines, "48K/64K 75% largest free 16K");
        assert_has(&lines, "maps (1 VMAs)");
        assert_has(&lines, "0000000000400000-0000000000402000 r-xp");
        assert_has(&lines, "code  resident 2");
    }
}

#[test]
fn physical_view_shows_owners_as_bars_and_the_check_verdict() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('3')));
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "Physical memory");
    assert_has(&lines, "32639 frames, 2639 used, 30000 free");
    assert_has(&lines, "H kernel heap 1024");
    assert_has(&lines, "frame map: asking the kernel…");
    let lines = screen(&s, 160, 50);
    assert_has(&lines, "kernel heap      1024 █");
    assert_has(&lines, "last check: none (press c to run one)");

    update(&mut s, key(KeyCode::Char('c')));
    feed(
        &mut s,
        vec![
            Msg::FrameCheck(FrameCheck {
                ts_us: 1,
                consistent: true,
                nr_frames: 32639,
                free_counted: 30000,
                free_recorded: 30000,
                total_counted: 32639,
                total_recorded: 32639,
                used_without_owner: 0,
                free_with_owner: 0,
                invalid_owners: 0,
                summary_mismatches: 0,
                padding_mismatches: 0,
            }),
            Msg::HeapCheck(HeapCheck {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                ok: true,
                error: None,
                addr: 0,
                stats: HeapStats::default(),
            }),
            Msg::CheckFinding(CheckFinding {
                kind: FindingKind::LeakedFrame,
                phys: 0x1234000,
                used: true,
                owner: Some(FrameOwner::Process(2)),
                pid: 2,
                virt: 0,
                flags: 0,
                mappings: 0,
                recorded: 0,
            }),
            Msg::CheckEnd(CheckEnd {
                ts_us: 2,
                consistent: false,
                frames: 32639,
                spaces: 3,
                mappings: 900,
                findings: 1,
                duration_us: 1500,
            }),
        ],
    );
    let lines = screen(&s, 160, 50);
    assert_has(
        &lines,
        "frame bitmap: consistent (free 30000 counted, 30000 recorded)",
    );
    assert_has(&lines, "kernel heap: consistent");
    assert_has(
        &lines,
        "mappings: INCONSISTENT (3 spaces, 900 mappings, 1 findings",
    );
    assert_has(
        &lines,
        "leaked-frame: frame 0x1234000: bitmap used, owner pid2",
    );
}

#[test]
fn page_tables_view_shows_ranges_audit_and_summary() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('4')));
    assert_has(&screen(&s, 80, 24), "no dump yet");
    update(&mut s, key(KeyCode::Char('K')));
    let range = PtRange {
        space: 0,
        start: 0xffff_8000_0000_0000,
        end: 0xffff_8000_0020_0000,
        phys: 0,
        page_size: 2 << 20,
        flags: probe_proto::names::pt::WRITABLE | probe_proto::names::pt::NO_EXECUTE,
        pages: 1,
        dirty_pages: 0,
        region: Region::DirectMap,
    };
    feed(
        &mut s,
        vec![
            Msg::PtRange(range),
            Msg::PtAudit(PtAudit {
                space: 0,
                kind: AuditKind::WritableExecutable,
                start: 0x1000,
                end: 0x2000,
                flags: probe_proto::names::pt::WRITABLE,
            }),
            Msg::PtDumpEnd(PtDumpEnd {
                ts_us: 3,
                space: 0,
                root: 0x1000,
                ranges: 1,
                pages_4k: 0,
                pages_2m: 1,
                pages_1g: 0,
                findings: 1,
                complete: true,
            }),
        ],
    );
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(&lines, "Page tables: the kernel");
        assert_has(&lines, "0xffff800000000000-0xffff800000200000");
        assert_has(&lines, "audit: 0x0000000000001000-0x0000000000002000");
        assert_has(&lines, "the kernel: root 0x1000, 1 ranges");
    }
    let wide = screen(&s, 160, 50);
    assert_has(&wide, "RW ker NX");
    assert_has(&wide, "direct-map");
    let _ = VmaKind::Code;
}

#[test]
fn events_view_shows_the_newest_lines_and_pauses() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('5')));
    feed(&mut s, (0..40).map(|i| Msg::Dropped { count: i }).collect());
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "Events (live, 41 lines)");
    assert_has(&lines, "dropped count=39");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("count=5 ") || l.ends_with("count=5"))
    );
    update(&mut s, key(KeyCode::Char(' ')));
    feed(&mut s, vec![Msg::Dropped { count: 1000 }]);
    let lines = screen(&s, 160, 50);
    assert_has(&lines, "Events (paused, 42 lines)");
    assert!(!lines.iter().any(|l| l.contains("count=1000")));
}

#[test]
fn help_overlay_lists_the_keys() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('?')));
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "help");
    assert_has(&lines, "q, Ctrl-C");
    assert_has(&lines, "filter by name");
}

#[test]
fn no_color_renders_without_colours() {
    let mut s = populated();
    s.color = false;
    let mut t = Terminal::new(TestBackend::new(80, 24)).unwrap();
    t.draw(|f| view::render(f, &s)).unwrap();
    let buf = t.backend().buffer();
    assert!(
        buf.content()
            .iter()
            .all(|c| c.fg == ratatui::style::Color::Reset && c.bg == ratatui::style::Color::Reset)
    );
    let colored = screen(&populated(), 80, 24);
    assert_eq!(screen(&s, 80, 24), colored, "same text either way");
}

#[test]
fn tiny_terminal_does_not_panic() {
    let mut s = populated();
    for v in '1'..='6' {
        update(&mut s, key(KeyCode::Char(v)));
        update(&mut s, key(KeyCode::Char('?')));
        screen(&s, 10, 3);
        update(&mut s, key(KeyCode::Char('?')));
        screen(&s, 1, 1);
    }
}

#[test]
fn no_subcommand_means_top_and_subcommands_stay() {
    let os = |v: &[&str]| {
        v.iter()
            .map(|s| s.into())
            .collect::<Vec<std::ffi::OsString>>()
    };
    assert_eq!(default_to_top(os(&["mmtop"])), os(&["mmtop", "top"]));
    assert_eq!(
        default_to_top(os(&["mmtop", "--connect", "unix:/x"])),
        os(&["mmtop", "top", "--connect", "unix:/x"])
    );
    for kept in [
        &["mmtop", "log", "-c", "unix:/x"][..],
        &["mmtop", "--help"],
        &["mmtop", "top"],
    ] {
        assert_eq!(default_to_top(os(kept)), os(kept));
    }
}

#[test]
fn connect_defaults_to_mmtop_sock_then_target_com1_sock() {
    let given = Address::Tcp {
        host: "h".into(),
        port: 1,
    };
    assert_eq!(resolve_address(Some(&given), Some("x")), Ok(given));
    assert_eq!(
        resolve_address(None, Some("target/k.sock")),
        Ok(Address::Unix("target/k.sock".into()))
    );
    assert_eq!(
        resolve_address(None, Some("/tmp/k.sock")),
        Ok(Address::Unix("/tmp/k.sock".into())),
        "a bare absolute path is a socket, not a tty"
    );
    assert_eq!(
        resolve_address(None, Some("unix:/a")),
        Ok(Address::Unix("/a".into()))
    );
    assert_eq!(
        resolve_address(None, None),
        Ok(DEFAULT_ADDRESS.parse().unwrap())
    );
    assert_eq!(
        resolve_address(None, Some("")),
        Ok(Address::Unix("target/com1.sock".into()))
    );
}

#[test]
fn leaks_view_before_a_scan_says_how_to_start_one() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('6')));
    let lines = screen(&s, 80, 24);
    assert!(lines[0].contains("6:Leaks"), "{}", lines[0]);
    assert_has(
        &lines,
        "kernel leak scan: none yet (press s to scan the kernel heap)",
    );
    assert_has(&lines, "s scan");
    update(&mut s, key(KeyCode::Char('s')));
    assert_has(&screen(&s, 80, 24), "kernel leak scan: scanning…");
}

#[test]
fn leaks_view_shows_each_leak_with_its_call_site_and_the_scan_summary() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('6')));
    update(&mut s, key(KeyCode::Char('s')));
    let mut named = kernel_leak(0xffff_c000_0000_fbb0, true);
    named.size = 264;
    feed(
        &mut s,
        vec![
            Msg::KernelLeak(named),
            Msg::KernelLeak(kernel_leak(0xffff_c000_0000_fd18, false)),
            Msg::LeakScanEnd(scan_end(2, 1)),
            Msg::BlocksInUse(probe_proto::Leak {
                ts_us: 1,
                pid: 1,
                heap_id: 0,
                key: 7,
                blocks: 3,
                bytes: 3072,
                first_addr: 0x10_0000,
                oldest_age_ms: None,
            }),
            Msg::LeaksEnd(probe_proto::LeaksEnd {
                ts_us: 2,
                pid: -1,
                processes: 1,
                complete: true,
            }),
            Msg::Leak(probe_proto::Leak {
                ts_us: 3,
                pid: 9,
                heap_id: 1,
                key: 4,
                blocks: 2,
                bytes: 64,
                first_addr: 0x20_0000,
                oldest_age_ms: None,
            }),
        ],
    );
    // The symbolizer is off in tests; a named call site is the same row
    // with the name in place of the address.
    s.leaks.leaks[0].symbol = Some("kernel::selftest::kleak::leak_cycle+0x89".into());
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(
            &lines,
            "kernel leak scan: 2 leaks (1 confirmed) among 10 blocks, 0 untraced;",
        );
        assert_has(&lines, "bytes scanned in 16290 us (min age 1000 ms)");
        assert_has(&lines, "ADDRESS");
        assert_has(&lines, "0xffffc0000000fbb0   264B    1.8s confirmed");
        assert_has(&lines, "0xffffc0000000fd18   328B    1.8s new");
        assert_has(&lines, "blocks in use by key (1 programs)");
        assert_has(&lines, "PID NAME   HEAP   KEY BLOCKS BYTES FIRST");
        assert_has(&lines, "1   worker pid1#0   7      3    3K 0x100000");
    }
    let narrow = screen(&s, 80, 24);
    assert_has(&narrow, "    from kernel::selftest::kleak::leak_cycle+0x89");
    assert_has(&narrow, "    from 0xffffffff80100000");
    let wide = screen(&s, 160, 50);
    assert_has(&wide, "0 untraced; 218496 bytes scanned");
    assert_has(
        &wide,
        "0xffffc0000000fbb0   264B    1.8s confirmed kernel::selftest::kleak::leak_cycle+0x89",
    );
    assert_has(&wide, "328B    1.8s new       0xffffffff80100000");
    assert_has(&wide, "left behind when a heap went away (1)");
    assert_has(
        &wide,
        "pid 9     pid9#1     key 4        2 blocks, 64B, first at 0x200000",
    );
}

#[test]
fn leaks_view_says_when_the_kernel_is_too_old_to_scan() {
    let mut s = populated();
    s.version = Some(probe_proto::Version { major: 1, minor: 3 });
    update(&mut s, key(KeyCode::Char('6')));
    assert_has(
        &screen(&s, 80, 24),
        "the kernel speaks protocol 1.3; the leak scan needs 2.0",
    );
}

#[test]
fn processes_view_shows_faults_blocks_leaks_and_the_link_rate() {
    let mut s = populated();
    with_faults_and_leaks(&mut s);
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "ev/s 3K/s  bad 0  dropped 0");
    assert_has(&lines, "RSS   FLTS  BLKS  LEAK");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("HEAPS") || l.contains("SHEDS")),
        "narrow: no heap and shed counts\n{}",
        text(&lines)
    );
    assert_has(&lines, "ended leaking: 1 programs, 4 blocks");
    let worker = lines.iter().find(|l| l.contains("worker")).unwrap();
    assert!(
        worker.trim_end().ends_with("16K   6     2     5"),
        "{worker}"
    );
    assert!(lines.iter().all(|l| l.chars().count() == 80));

    let wide = screen(&s, 160, 50);
    assert_has(&wide, "HEAPS");
    assert_has(&wide, "SHEDS");
    assert_has(&wide, "FLTS d/c/s/k");
    let worker = wide.iter().find(|l| l.contains("worker")).unwrap();
    assert!(worker.contains("6 3/2/1/0"), "{worker}");
    let leaker = wide.iter().find(|l| l.contains("leaker")).unwrap();
    assert!(leaker.contains("1 0/0/0/1"), "{leaker}");
}

#[test]
fn detail_view_draws_each_heap_to_scale_and_the_recent_allocations() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Enter));
    assert_has(&screen(&s, 80, 24), "walking its blocks…");
    feed(&mut s, worker_walk());
    feed(&mut s, (0..3).map(|i| heap_alloc(1, i)).collect());
    feed(&mut s, vec![heap_alloc(2, 50)]);
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(
            &lines,
            "4 blocks (2 used, 2 free), largest free block 8K, fragmentation 50%",
        );
        // 16K used, 8K free, 32K used, 8K free, the rows in address
        // order: a quarter of the cells used, an eighth free, a half used.
        let map: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("    █") || l.starts_with("    ·"))
            .collect();
        assert_eq!(map.len(), if w == 80 { 2 } else { 4 }, "{}", text(&lines));
        let cells: Vec<char> = map.iter().flat_map(|l| l.chars().skip(4)).collect();
        let q = cells.len() / 4;
        let all = |r: std::ops::Range<usize>, c: char| cells[r].iter().all(|&x| x == c);
        assert!(all(0..q - 1, '█'), "{}", text(&lines));
        assert!(all(q + 1..q * 3 / 2 - 1, '·'), "{}", text(&lines));
        assert!(all(q * 3 / 2 + 1..q * 7 / 2 - 1, '█'), "{}", text(&lines));
        assert!(
            map[map.len() - 1].trim_end().ends_with("···"),
            "{}",
            text(&lines)
        );
        assert_has(&lines, "recent allocations (3)");
        assert_has(
            &lines,
            "1.500002s pid1#0   0x000000100080    48B key 2      0xffffffff80001000",
        );
        assert!(
            !lines.iter().any(|l| l.contains("key 50")),
            "only this process's"
        );
    }
}

/// The cells of the map rows (those starting with the reserved frames'
/// `r`, or every line from the map's header on when zoomed).
fn map_cells(lines: &[String]) -> String {
    let at = lines
        .iter()
        .position(|l| l.starts_with("frame map:"))
        .expect("a map header");
    lines[at + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("last check"))
        .map(|l| l.as_str())
        .collect()
}

#[test]
fn physical_view_draws_the_frame_map_by_owner_and_zooms() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('3')));
    feed(&mut s, owner_map_msgs());
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(&lines, ". free 30000");
        assert_has(&lines, "0-9 process 497");
        let cells = map_cells(&lines);
        // 1024 frames: 256 reserved, 128 kernel image, 64 kernel heap,
        // 256 free, 64 of pid 3, 32 page tables, 224 free; at 80x24 two
        // frames a cell.
        let per_cell = if w == 80 { 2 } else { 1 };
        let count = |c: char| cells.chars().filter(|&x| x == c).count();
        assert_eq!(count('r'), 256 / per_cell, "{}", text(&lines));
        assert_eq!(count('K'), 128 / per_cell);
        assert_eq!(count('H'), 64 / per_cell);
        assert_eq!(count('3'), 64 / per_cell, "pid 3 shows its digit");
        assert_eq!(count('P'), 32 / per_cell);
        assert_eq!(count('.'), 480 / per_cell);
        assert!(cells.starts_with("rrrr"), "{cells}");
        assert!(
            cells.contains(&format!("{}{}", "H".repeat(32 / per_cell), ".")),
            "kernel heap then free: {cells}"
        );
    }
    assert_has(
        &screen(&s, 80, 24),
        "frame map: frames 0x0-0x3ff (4.0MiB), 2 a cell, zoom 1x",
    );

    // Zoomed in, a cell is one frame, from the start of memory.
    update(&mut s, key(KeyCode::Char('z')));
    let lines = screen(&s, 80, 24);
    assert_has(&lines, "frames 0x0-0x22f (2.2MiB), 1 a cell, zoom 2x");
    let cells = map_cells(&lines);
    assert!(cells.starts_with(&"r".repeat(256)), "{cells}");
    assert!(cells[256..].starts_with(&"K".repeat(128)), "{cells}");
    // Panned right to the end, the map stops at the last frame.
    for _ in 0..20 {
        update(&mut s, key(KeyCode::Right));
    }
    assert_has(&screen(&s, 80, 24), "frames 0x1d0-0x3ff");
    update(&mut s, key(KeyCode::Char('x')));
    update(&mut s, key(KeyCode::Char('x')));
    assert_has(
        &screen(&s, 80, 24),
        "frames 0x0-0x3ff (4.0MiB), 2 a cell, zoom 1x",
    );
}

#[test]
fn a_map_cell_shows_its_used_frames_over_free_ones() {
    use probe_proto::{OwnerMapEnd, OwnerRun, OwnerRuns};
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('3')));
    let runs = vec![
        OwnerRun {
            owner: None,
            frames: 1,
        },
        OwnerRun {
            owner: Some(probe_proto::FrameOwner::Process(5)),
            frames: 1,
        },
        OwnerRun {
            owner: None,
            frames: 1022,
        },
    ];
    feed(
        &mut s,
        vec![
            Msg::OwnerRuns(OwnerRuns {
                first_frame: 0,
                runs: runs.into(),
            }),
            Msg::OwnerMapEnd(OwnerMapEnd {
                total_frames: 1024,
                ..OwnerMapEnd::default()
            }),
        ],
    );
    let cells = map_cells(&screen(&s, 80, 24));
    assert!(
        cells.starts_with("5...."),
        "one frame of pid 5 in two: {cells}"
    );
}

#[test]
fn page_tables_diff_shows_removed_and_added_ranges_since_the_last_dump() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Down));
    update(&mut s, key(KeyCode::Char('p')));
    feed(&mut s, pt_dump_msgs(1, &[0x40_0000, 0x40_1000], 1_000_000));
    update(&mut s, key(KeyCode::Char('d')));
    assert_has(
        &screen(&s, 80, 24),
        "no earlier dump of this space to compare with",
    );
    update(&mut s, key(KeyCode::Char('p')));
    feed(
        &mut s,
        pt_dump_msgs(1, &[0x40_0000, 0x7fff_f000], 2_000_000),
    );
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(&lines, "Page tables: pid 1");
        assert_has(
            &lines,
            "changes since the dump at 1.000000s (this one at 2.000000s):",
        );
        assert_has(&lines, "- 0x0000000000401000-0x0000000000402000");
        assert_has(&lines, "+ 0x000000007ffff000-0x0000000080000000");
        assert_has(&lines, "1 added, 1 removed, 0 changed");
        assert!(
            !lines.iter().any(|l| l.contains("0x0000000000400000-")),
            "an unchanged range is not shown"
        );
    }
    assert_has(&screen(&s, 80, 24), "d diff");
    update(&mut s, key(KeyCode::Char('d')));
    assert_has(&screen(&s, 80, 24), "0x0000000000400000-0x0000000000401000");
}

#[test]
fn events_view_filters_by_kind_and_pid_and_says_so() {
    let mut s = populated();
    update(&mut s, key(KeyCode::Char('5')));
    feed(
        &mut s,
        (0..30).map(|i| heap_alloc(1 + (i % 3) as u32, i)).collect(),
    );
    update(&mut s, key(KeyCode::Char('f')));
    assert_has(&screen(&s, 80, 24), "events filter (kinds, pids): ▏");
    for c in "heap_alloc 3".chars() {
        update(&mut s, key(KeyCode::Char(c)));
    }
    update(&mut s, key(KeyCode::Enter));
    for (w, h) in [(80, 24), (160, 50)] {
        let lines = screen(&s, w, h);
        assert_has(&lines, "Events (live, 31 lines, filter 'heap_alloc 3')");
        let shown: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("heap_alloc"))
            .collect();
        assert_eq!(shown.len(), 10, "{}", text(&lines));
        assert!(shown.iter().all(|l| l.contains("heap=pid3#0")));
        assert!(!lines.iter().any(|l| l.starts_with("hello")));
    }
}

#[test]
fn every_tab_is_where_clicks_find_it() {
    let s = populated();
    let line = &screen(&s, 80, 24)[0];
    for (i, v) in super::state::View::ALL.iter().enumerate() {
        let label = format!("{}:{}", i + 1, v.short_title());
        let at = line.find(&label).expect("every tab is drawn");
        let column = line[..at].chars().count() as u16;
        assert_eq!(
            super::state::View::at_tab_column(column),
            Some(*v),
            "{label}"
        );
        let last = column + label.chars().count() as u16 - 1;
        assert_eq!(super::state::View::at_tab_column(last), Some(*v), "{label}");
    }
}

#[test]
fn a_clicked_process_row_is_the_row_drawn_there() {
    let mut s = populated();
    update(&mut s, AppEvent::Resize(80, 24));
    update(
        &mut s,
        AppEvent::Mouse(crossterm::event::MouseEvent {
            kind: crossterm::event::MouseEventKind::Down(crossterm::event::MouseButton::Left),
            column: 3,
            row: 10,
            modifiers: crossterm::event::KeyModifiers::NONE,
        }),
    );
    let lines = screen(&s, 80, 24);
    assert!(lines[10].contains("worker"), "{}", text(&lines));
    assert_eq!(s.selected, Some(1));
}

#[test]
fn a_long_process_table_scrolls_to_keep_the_selection_on_screen() {
    let mut s = populated();
    let mut msgs = Vec::new();
    for pid in 0..60 {
        msgs.extend(super::state::tests::program_msgs(
            pid,
            &format!("prog{pid:02}"),
            65536,
            1024,
        ));
    }
    msgs.push(Msg::ProcessListEnd(probe_proto::ProcessListEnd {
        ts_us: 3,
        total_programs: 60,
        complete: true,
    }));
    feed(&mut s, msgs);
    for _ in 0..40 {
        update(&mut s, key(KeyCode::Down));
    }
    assert_eq!(s.selected, Some(40));
    let lines = screen(&s, 80, 24);
    let last_row = &lines[22];
    assert!(last_row.contains("prog40"), "{}", text(&lines));
    assert!(lines[9].contains("prog27"), "{}", text(&lines));
    assert!(!lines.iter().any(|l| l.contains("prog41")));
}
