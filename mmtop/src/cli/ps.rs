//! `mmtop ps`: ask the kernel for its process listing and print it as a
//! table like `ps`, or as the `checkMemory` object.

use std::fmt::Write as _;
use std::io::{self, Write};

use probe_proto::HostMsg;
use probe_proto::names::VmaFlags;

use super::args::PsArgs;
use super::request::{PROCESSES_SINCE, Session};
use super::{EXIT_NO_PROCESS, EXIT_OK, EXIT_PROTOCOL, Status};
use crate::format::{escape_controls, frames_to_bytes, human_bytes};
use crate::procs::{Listing, ListingBuilder, Program};

/// Runs `mmtop ps`.
pub fn run(args: &PsArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let mut session = Session::open(
        &args.connect.address,
        "ps",
        PROCESSES_SINCE,
        args.timeout,
        err,
    )?;
    let listing = fetch(&mut session, args.process(), err)?;
    let check_memory = listing.check_memory().map_err(|e| {
        let _ = writeln!(err, "mmtop: protocol error: {e}");
        EXIT_PROTOCOL
    })?;
    if let Some(pid) = args.process()
        && listing.programs.is_empty()
    {
        let _ = writeln!(err, "mmtop: no process {pid}");
        return Ok(EXIT_NO_PROCESS);
    }

    let text = if args.json {
        check_memory.to_json() + "\n"
    } else {
        let mut text = table(&listing.programs);
        if args.process().is_some() {
            for program in &listing.programs {
                text.push('\n');
                text.push_str(&details(program));
            }
        }
        text
    };
    if let Err(e) = out.write_all(text.as_bytes()) {
        // `mmtop ps | head` closing early is a normal way to stop.
        if e.kind() != io::ErrorKind::BrokenPipe {
            let _ = writeln!(err, "mmtop: cannot write output: {e}");
        }
    }
    Ok(EXIT_OK)
}

/// Sends `Processes` and receives the listing that answers it; asks once
/// more if the first one is incomplete.
fn fetch(session: &mut Session<'_>, pid: Option<u32>, err: &mut dyn Write) -> Result<Listing, u8> {
    let request = HostMsg::Processes {
        pid: pid.map_or(-1, i64::from),
    };
    let mut attempt = 1;
    loop {
        session.send(&request, err)?;
        let listing = receive(session, pid, err)?;
        match listing.completeness() {
            Ok(()) => return Ok(listing),
            Err(e) if attempt == 1 => {
                let _ = writeln!(
                    err,
                    "mmtop: the process listing is incomplete ({e}); asking again"
                );
                attempt += 1;
            }
            Err(e) => {
                let _ = writeln!(
                    err,
                    "mmtop: the process listing is incomplete again ({e}); giving up"
                );
                return Err(EXIT_PROTOCOL);
            }
        }
    }
}

/// The next listing that can be the answer for `pid`: one for a single pid
/// lists no other process. Other telemetry keeps flowing meanwhile.
fn receive(
    session: &mut Session<'_>,
    pid: Option<u32>,
    err: &mut dyn Write,
) -> Result<Listing, u8> {
    let mut builder = ListingBuilder::new();
    loop {
        let msg = session.recv("ProcessListEnd", err)?;
        if let Some(listing) = builder.push(&msg)
            && pid.is_none_or(|pid| listing.programs.iter().all(|p| p.info.pid == pid))
        {
            return Ok(listing);
        }
    }
}

/// How a column lines up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Align {
    Left,
    Right,
}

/// Rows under headers, columns two spaces apart, each as wide as its widest
/// cell, no trailing spaces; every line is indented by `indent`.
fn render(indent: &str, headers: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([headers[i].0.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let header: Vec<String> = headers.iter().map(|(h, _)| (*h).to_owned()).collect();
    let mut s = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = indent.to_owned();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let pad = widths[i] - cell.chars().count();
            match headers[i].1 {
                Align::Left => {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
                Align::Right => {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                }
            }
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
    s
}

/// A titled part of [`details`]: its rows under `headers`, indented, or
/// `none`.
fn section(
    title: &str,
    headers: &[(&str, Align)],
    rows: impl Iterator<Item = Vec<String>>,
) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let body = if rows.is_empty() {
        "  none\n".to_owned()
    } else {
        render("  ", headers, &rows)
    };
    format!("\n{title}\n{body}")
}

/// One row per program, like `ps`. Sizes are human-readable; RSS is in KiB
/// as `ps` gives it.
pub fn table(programs: &[Program]) -> String {
    use Align::{Left, Right};
    let headers = [
        ("PID", Right),
        ("NAME", Left),
        ("STATE", Left),
        ("HEAPS", Right),
        ("HEAP SIZE", Right),
        ("USED", Right),
        ("FREE", Right),
        ("SHEDS", Right),
        ("SHED SIZE", Right),
        ("RSS", Right),
        ("VMAS", Right),
    ];
    let rows: Vec<Vec<String>> = programs
        .iter()
        .map(|p| {
            let i = &p.info;
            vec![
                i.pid.to_string(),
                escape_controls(&i.name),
                i.state.name().to_owned(),
                p.heaps.len().to_string(),
                human_bytes(i.total_heap_size),
                human_bytes(i.total_heap_used),
                human_bytes(i.total_heap_free),
                p.sheds.len().to_string(),
                human_bytes(i.total_shed_size),
                (p.resident_bytes() / 1024).to_string(),
                p.vmas.len().to_string(),
            ]
        })
        .collect();
    render("", &headers, &rows)
}

/// One program in full: a summary line, its heaps, its sheds, and its VMAs
/// like `/proc/PID/maps`.
pub fn details(p: &Program) -> String {
    use Align::{Left, Right};
    let i = &p.info;
    let mut s = format!(
        "pid {} {} (parent {}): {} resident ({} frames), {} page-table frames\n",
        i.pid,
        escape_controls(&i.name),
        i.parent,
        human_bytes(p.resident_bytes()),
        i.resident_frames,
        i.page_table_frames,
    );

    s.push_str(&section(
        "heaps",
        &[
            ("ID", Right),
            ("START", Left),
            ("SIZE", Right),
            ("USED", Right),
            ("FREE", Right),
            ("USED BLOCKS", Right),
            ("LARGEST FREE", Right),
        ],
        p.heaps.iter().map(|h| {
            vec![
                h.heap_id.to_string(),
                format!("{:#x}", h.start),
                human_bytes(h.heap_size),
                human_bytes(h.heap_used),
                human_bytes(h.heap_free),
                h.used_blocks.to_string(),
                human_bytes(h.largest_free),
            ]
        }),
    ));
    s.push_str(&section(
        "sheds",
        &[("ID", Right), ("START", Left), ("SIZE", Right)],
        p.sheds.iter().map(|sh| {
            vec![
                sh.shed_id.to_string(),
                format!("{:#x}", sh.start),
                human_bytes(sh.shed_size),
            ]
        }),
    ));
    s.push_str(&section(
        "maps",
        &[
            ("ADDRESS", Left),
            ("PERMS", Left),
            ("KIND", Left),
            ("RESIDENT", Right),
        ],
        p.vmas.iter().map(|v| {
            vec![
                format!("{:08x}-{:08x}", v.start, v.end),
                VmaFlags(v.flags).to_string(),
                v.kind.name().to_owned(),
                human_bytes(frames_to_bytes(v.resident_pages)),
            ]
        }),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procs_fixture::*;

    fn listing(msgs: &[probe_proto::KernelMsg<'_>]) -> Listing {
        let mut b = ListingBuilder::new();
        let mut got: Vec<Listing> = msgs
            .iter()
            .filter_map(|m| b.push(&m.clone().into_owned()))
            .collect();
        assert_eq!(got.len(), 1);
        got.remove(0)
    }

    #[test]
    fn table_has_one_row_per_program_with_human_sizes_and_rss_in_kib() {
        assert_eq!(table(&listing(&full_listing()).programs), PS_TABLE);
    }

    #[test]
    fn details_list_heaps_sheds_and_maps() {
        let l = listing(&memtest_listing());
        assert_eq!(details(&l.programs[0]), MEMTEST_DETAILS);
    }

    #[test]
    fn details_say_none_for_empty_parts() {
        let l = listing(&full_listing());
        let d = details(&l.programs[0]);
        assert!(
            d.starts_with(
                "pid 0 kernel (parent 0): 64.0KiB resident (16 frames), 263 page-table frames\n"
            ),
            "{d}"
        );
        assert!(d.contains("\nsheds\n  none\n\nmaps\n  none\n"), "{d}");
    }

    #[test]
    fn names_with_control_characters_stay_on_one_line() {
        let msgs = memtest_listing_with(|info| info.name = "evil\n\x1b[2Jname".into());
        let t = table(&listing(&msgs).programs);
        assert_eq!(t.lines().count(), 2, "{t}");
        assert!(t.contains("evil\\n\\u{1b}[2Jname"), "{t}");
    }
}
