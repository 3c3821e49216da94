//! One vocabulary on both sides: gdb's `monitor pmm` and `mmtop stats`
//! name the frame owners with the same words, in the same order, because
//! both take them from `probe_proto`.

use probe_proto::FrameUsage;
use systest::{Com1, Qemu, QemuConfig, run_gdb, run_mmtop};

/// The owner names of the rows of a table: the lines after the line that
/// contains `header`, indented by two spaces, each with its name first and
/// `trailing_words` words after it (a frame count first), up to the first
/// line that is not indented.
fn owner_rows(out: &str, header: &str, trailing_words: usize) -> Vec<String> {
    let after = out
        .lines()
        .skip_while(|l| !l.contains(header))
        .skip(1)
        .take_while(|l| l.starts_with("  "));
    after
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let split = words.len().checked_sub(trailing_words)?;
            // A row's first column after the name is its frame count.
            words[split].parse::<u64>().ok()?;
            Some(words[..split].join(" "))
        })
        .filter(|name| name != "total")
        .collect()
}

#[test]
fn monitor_pmm_and_mmtop_stats_print_the_same_owner_names() {
    let cfg = QemuConfig {
        com1: Com1::NoWait,
        ..Default::default()
    };
    let mut qemu = Qemu::start("owner-names", &cfg);
    qemu.wait_debug_log("kernel up");
    let addr = format!("unix:{}", qemu.com1_path.display());
    let (code, stats, err) = run_mmtop(&["stats", "--connect", &addr, "--timeout", "60"]);
    assert_eq!(code, 0, "mmtop stats failed: {err}");

    let port = qemu.com2_port.expect("COM2 configured");
    let gdb = run_gdb(&[
        "set pagination off".to_string(),
        format!("target remote 127.0.0.1:{port}"),
        "monitor pmm".to_string(),
    ]);

    // mmtop: "  kernel heap        123      0.5"; monitor: "  kernel heap
    // 123 frames 492 KiB".
    let from_mmtop = owner_rows(&stats, "frames by owner", 2);
    let from_monitor = owner_rows(&gdb, "frames:", 4);
    let expected: Vec<String> = FrameUsage::default()
        .by_owner()
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(from_mmtop, expected, "mmtop stats:\n{stats}");
    assert_eq!(from_monitor, expected, "monitor pmm:\n{gdb}");
    assert!(qemu.is_running(), "the kernel runs on after the monitor");
}
