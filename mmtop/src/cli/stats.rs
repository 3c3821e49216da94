//! `mmtop stats`: ask the kernel for a memory snapshot and print it.

use std::fmt::Write as _;
use std::io::Write;

use probe_proto::{HostMsg, MemoryStats};

use super::args::RequestArgs;
use super::request::{COMMANDS_SINCE, Session};
use super::{EXIT_OK, Status};
use crate::Msg;
use crate::format::{frames_to_bytes, heap_name, human_bytes, human_time, json};

/// Runs `mmtop stats`.
pub fn run(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
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
    use crate::memory_fixture::{STATS_TABLE, memory_stats};

    #[test]
    fn table_lists_frames_by_owner_in_counts_and_mib_then_heap_and_counters() {
        assert_eq!(table(&memory_stats()), STATS_TABLE);
    }

    #[test]
    fn table_notes_a_total_that_disagrees_with_the_owner_classes() {
        let mut m = memory_stats();
        m.total_frames += 1;
        let t = table(&m);
        assert!(
            t.contains("  total                32768     128.0\n"),
            "{t}"
        );
        assert!(t.contains("(the kernel counts 32769 frames in all)"), "{t}");
    }
}
