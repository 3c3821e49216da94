//! `mmtop stats`: ask the kernel for a memory snapshot and print it.

use std::fmt::Write as _;
use std::io::Write;

use probe_proto::{HostMsg, MemoryStats};

use super::EXIT_OK;
use super::args::RequestArgs;
use super::request::{COMMANDS_SINCE, Session};
use crate::Msg;
use crate::format::{frames_to_bytes, heap_name, human_bytes, human_time, json};

/// Runs `mmtop stats`; returns the exit status.
pub fn run(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match stats(args, out, err) {
        Ok(code) | Err(code) => code,
    }
}

fn stats(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, u8> {
    let mut session = Session::open(
        &args.connect.address,
        "stats",
        COMMANDS_SINCE,
        args.timeout,
        err,
    )?;
    session.send(&HostMsg::Snapshot, err)?;
    let stats = loop {
        // Other telemetry keeps flowing; only a snapshot is the answer.
        if let Msg::MemoryStats(m) = session.recv("MemoryStats", err)? {
            break m;
        }
    };
    let text = if args.json {
        // The same object `mmtop log --json` prints for this message.
        json(&Msg::MemoryStats(stats))
    } else {
        table(&stats)
    };
    let _ = write!(out, "{text}");
    if args.json {
        let _ = writeln!(out);
    }
    Ok(EXIT_OK)
}

/// Mebibytes of `frames` frames, one decimal.
fn mib(frames: u64) -> String {
    format!("{:.1}", frames_to_bytes(frames) as f64 / f64::from(1 << 20))
}

/// The snapshot as a few small tables, ending with a newline.
pub fn table(m: &MemoryStats) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "memory at t={}: {} frames ({}), {} free ({})",
        human_time(m.ts_us),
        m.total_frames,
        human_bytes(frames_to_bytes(m.total_frames)),
        m.free_frames,
        human_bytes(frames_to_bytes(m.free_frames)),
    );

    let rows = m.usage.by_owner();
    let _ = writeln!(
        s,
        "\n{:<16}{:>12}{:>10}",
        "frames by owner", "frames", "MiB"
    );
    for (name, frames) in rows {
        let _ = writeln!(s, "  {name:<14}{frames:>12}{:>10}", mib(frames));
    }
    let sum = rows
        .iter()
        .fold(0u64, |sum, (_, frames)| sum.saturating_add(*frames));
    let _ = writeln!(s, "  {:<14}{sum:>12}{:>10}", "total", mib(sum));
    if sum != m.total_frames {
        let _ = writeln!(s, "  (the kernel counts {} frames in all)", m.total_frames);
    }

    let h = &m.kernel_heap;
    let _ = writeln!(s, "\nkernel heap {}", heap_name(h.pid, h.heap_id));
    let rows = [
        (
            "region",
            human_bytes(h.region_bytes),
            format!("(max {})", human_bytes(h.max_bytes)),
        ),
        (
            "used",
            human_bytes(h.used_bytes),
            format!("in {} blocks", h.used_blocks),
        ),
        (
            "free",
            human_bytes(h.free_bytes),
            format!(
                "in {} blocks, largest {}",
                h.free_blocks,
                human_bytes(h.largest_free)
            ),
        ),
        ("overhead", human_bytes(h.overhead_bytes), String::new()),
    ];
    for (name, bytes, note) in rows {
        let line = format!("  {name:<10}{bytes:>10} {note}");
        let _ = writeln!(s, "{}", line.trim_end());
    }

    let c = &m.counters;
    let _ = writeln!(s, "\nevents since boot");
    for [(a, x), (b, y)] in [
        [("page allocs", c.page_allocs), ("page frees", c.page_frees)],
        [("maps", c.maps), ("unmaps", c.unmaps)],
        [("heap allocs", c.heap_allocs), ("heap frees", c.heap_frees)],
        [
            ("heap errors", c.heap_errors),
            ("frame errors", c.frame_errors),
        ],
    ] {
        let _ = writeln!(s, "  {a:<14}{x:>10}    {b:<14}{y:>10}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto::{EventCounters, FrameUsage, HeapStats};

    fn sample() -> MemoryStats {
        MemoryStats {
            ts_us: 1_500_000,
            total_frames: 32_768,
            free_frames: 30_000,
            usage: FrameUsage {
                free: 30_000,
                unusable: 0,
                reserved: 256,
                kernel_image: 512,
                boot_info: 4,
                bitmap: 2,
                kernel_heap: 16,
                kernel_stack: 8,
                page_table: 6,
                process: 1960,
                other: 4,
            },
            kernel_heap: HeapStats {
                pid: 0,
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
            counters: EventCounters {
                page_allocs: 10,
                page_frees: 2,
                maps: 5,
                unmaps: 0,
                heap_allocs: 100,
                heap_frees: 90,
                heap_errors: 1,
                frame_errors: 0,
            },
        }
    }

    #[test]
    fn table_lists_frames_by_owner_in_counts_and_mib_then_heap_and_counters() {
        let expected = "\
memory at t=1.500000s: 32768 frames (128.0MiB), 30000 free (117.2MiB)

frames by owner       frames       MiB
  free                 30000     117.2
  unusable                 0       0.0
  reserved               256       1.0
  kernel image           512       2.0
  boot info                4       0.0
  bitmap                   2       0.0
  kernel heap             16       0.1
  kernel stack             8       0.0
  page table               6       0.0
  process               1960       7.7
  other                    4       0.0
  total                32768     128.0

kernel heap kernel#0
  region       64.0KiB (max 1.0GiB)
  used          1.5KiB in 9 blocks
  free         60.0KiB in 3 blocks, largest 40.0KiB
  overhead        256B

events since boot
  page allocs           10    page frees             2
  maps                   5    unmaps                 0
  heap allocs          100    heap frees            90
  heap errors            1    frame errors           0
";
        assert_eq!(table(&sample()), expected);
    }

    #[test]
    fn table_notes_a_total_that_disagrees_with_the_owner_classes() {
        let mut m = sample();
        m.total_frames += 1;
        let t = table(&m);
        assert!(
            t.contains("  total                32768     128.0\n"),
            "{t}"
        );
        assert!(t.contains("(the kernel counts 32769 frames in all)"), "{t}");
    }
}
