//! The mmtop TUI in a real terminal: tmux runs it against the booted kernel
//! with the demo programs, and `capture-pane` shows what a person would see.

use std::time::{Duration, Instant};

use systest::tmux::{Tmux, WAIT};
use systest::{Com1, Qemu, QemuConfig, mmtop_bin};

/// A line of the processes table naming `name` with a size (`48K`) in it.
fn row_with_numbers<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    let is_size = |w: &str| {
        w.strip_suffix('K')
            .is_some_and(|n| n.parse::<f64>().is_ok())
    };
    screen
        .lines()
        .find(|l| l.contains(name) && l.split_whitespace().any(is_size))
}

#[test]
fn tui_shows_the_demo_programs_switches_views_and_quits() {
    let cfg = QemuConfig {
        com1: Com1::NoWait,
        append: "init=demo".into(),
        ..Default::default()
    };
    // Qemu kills QEMU by PID when dropped; the Tmux guard is declared after
    // it so the session goes first.
    let mut qemu = Qemu::start("tui", &cfg);
    qemu.wait_debug_log("kernel up");
    let command = format!(
        "env NO_COLOR= {} --connect unix:{}",
        mmtop_bin().display(),
        qemu.com1_path.display()
    );
    let tmux = Tmux::start("mmtop-tui", &command);

    let screen = tmux.wait_for("worker row with numbers", |s| {
        row_with_numbers(s, "worker").is_some() && s.contains("frames")
    });
    assert!(screen.contains("1:Processes"), "{screen}");
    assert!(screen.contains("link up"), "{screen}");

    for (key, title) in [
        ("2", "Process detail"),
        ("3", "Physical memory"),
        ("4", "Page tables"),
        ("5", "Events ("),
        ("1", "Processes ("),
    ] {
        tmux.keys(key);
        tmux.wait_for(title, |s| s.contains(title));
    }

    // The mouse: a click on a tab opens its view; on the processes table a
    // click selects a row and a second click on it opens its detail.
    let tab_column = |screen: &str, tab: &str| {
        let line = screen.lines().next().unwrap_or_default();
        let at = line
            .find(tab)
            .unwrap_or_else(|| panic!("no tab {tab}: {line}"));
        line[..at].chars().count()
    };
    let screen = tmux.capture();
    tmux.click(tab_column(&screen, "3:Physical"), 0);
    tmux.wait_for("Physical memory after a click", |s| {
        s.contains("Physical memory")
    });
    let screen = tmux.capture();
    tmux.click(tab_column(&screen, "1:Processes"), 0);
    let screen = tmux.wait_for("Processes after a click", |s| {
        s.contains("Processes (") && row_with_numbers(s, "worker").is_some()
    });
    // `PID NAME ...`: the worker's row and its pid.
    let (worker_row, worker_pid) = screen
        .lines()
        .enumerate()
        .find_map(|(row, l)| {
            let mut words = l.split_whitespace();
            let pid = words.next()?;
            (words.next() == Some("worker")).then(|| (row, pid.to_string()))
        })
        .expect("the worker's row");
    tmux.click(10, worker_row);
    tmux.click(10, worker_row);
    let detail = format!("Process detail: pid {worker_pid} worker");
    tmux.wait_for("the worker's detail after two clicks", |s| {
        s.contains(&detail)
    });

    // The physical view draws the frame map the kernel sends.
    tmux.keys("3");
    tmux.wait_for("the frame map", |s| {
        s.contains("frame map: frames 0x0-") && s.contains("KKKK")
    });

    // A check and a kernel page-table dump answer on screen.
    tmux.keys("c");
    tmux.keys("3");
    tmux.wait_for("a check verdict", |s| s.contains("mappings: consistent"));
    tmux.keys("K");
    tmux.wait_for("the kernel's page tables", |s| {
        s.contains("Page tables: the kernel") && s.contains("direct-map")
    });

    // The leaks view: s scans the kernel heap, and the scan's summary line
    // and the blocks the demo programs hold come back.
    tmux.keys("6");
    tmux.wait_for("the leaks view", |s| {
        s.contains("6:Leaks") && s.contains("press s to scan")
    });
    tmux.keys("s");
    let screen = tmux.wait_for("a leak scan's summary", |s| {
        s.contains("kernel leak scan:") && s.contains("blocks in use by key (")
    });
    assert!(
        screen.contains(" leaks (") && screen.contains("untraced;"),
        "{screen}"
    );

    tmux.keys("q");
    let start = Instant::now();
    while tmux.alive() {
        assert!(start.elapsed() < WAIT, "mmtop did not exit on q");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        qemu.is_running(),
        "quitting the TUI leaves the kernel alone"
    );
}
