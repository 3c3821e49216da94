//! `mmtop check`: ask the kernel to check its frame bitmap, its kernel heap
//! and (since protocol 1.3) every mapping against the frame allocator.

use std::io::Write;

use probe_proto::names::FindingLine;
use probe_proto::{CheckEnd, CheckFinding, FrameCheck, HeapCheck, HostMsg, KERNEL_PID, Version};
use serde::Serialize;

use super::args::RequestArgs;
use super::request::{COMMANDS_SINCE, Session};
use super::{EXIT_INCONSISTENT, EXIT_OK, Status};
use crate::Msg;
use crate::format::human;

/// The first protocol version whose `Check` also checks the mappings.
const MAPPINGS_SINCE: Version = Version { major: 2, minor: 0 };

/// The `--json` output: the verdict of the mapping check (`consistent` is
/// the verdict of all three checks), its findings, and the bitmap's and
/// kernel heap's results.
#[derive(Debug, Serialize)]
struct Report {
    /// The mapping check's part: absent for a kernel older than 1.3.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    mappings: Option<MappingReport>,
    frame_check: FrameCheck,
    heap_check: HeapCheck,
}

/// The mapping check in the `--json` output.
#[derive(Debug, Serialize)]
struct MappingReport {
    consistent: bool,
    frames: u64,
    spaces: u32,
    mappings: u64,
    duration_us: u64,
    findings: Vec<CheckFinding>,
}

/// Runs `mmtop check`.
pub fn run(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let mut session = Session::open(
        &args.connect.address,
        "check",
        COMMANDS_SINCE,
        args.timeout,
        err,
    )?;
    session.send(&HostMsg::Check, err)?;

    let mut frame_check = None;
    let mut heap_check = None;
    // An older kernel does not check its mappings: nothing to wait for.
    let mut end = (!session.version.at_least(MAPPINGS_SINCE)).then(|| CheckEnd {
        consistent: true,
        ..CheckEnd::default()
    });
    let mut findings = Vec::new();
    let (frame_check, heap_check, end) = loop {
        let waiting_for = match (frame_check, heap_check, end) {
            (Some(f), Some(h), Some(e)) => break (f, h, e),
            (None, None, _) => "FrameCheck and HeapCheck",
            (None, _, _) => "FrameCheck",
            (_, None, _) => "HeapCheck",
            (_, _, None) => "CheckEnd",
        };
        match session.recv(waiting_for, err)? {
            Msg::FrameCheck(c) if frame_check.is_none() => frame_check = Some(c),
            // Only the kernel heap's result answers Check.
            Msg::HeapCheck(c) if heap_check.is_none() && c.pid == KERNEL_PID => {
                heap_check = Some(c)
            }
            Msg::CheckFinding(f) if heap_check.is_some() && end.is_none() => findings.push(f),
            Msg::CheckEnd(e) if heap_check.is_some() && end.is_none() => end = Some(e),
            // Other telemetry keeps flowing; it is not the answer.
            _ => {}
        }
    };

    let text = if args.json {
        // A struct of numbers, bools and unit-like enums always serializes.
        let mappings = (session.version.at_least(MAPPINGS_SINCE)).then(|| MappingReport {
            consistent: frame_check.consistent && heap_check.ok && end.consistent,
            frames: end.frames,
            spaces: end.spaces,
            mappings: end.mappings,
            duration_us: end.duration_us,
            findings: findings.clone(),
        });
        serde_json::to_string(&Report {
            mappings,
            frame_check,
            heap_check,
        })
        .expect("a check report serializes to JSON")
    } else {
        let mut text = format!(
            "{}\n{}",
            human(&Msg::FrameCheck(frame_check)),
            human(&Msg::HeapCheck(heap_check))
        );
        if session.version.at_least(MAPPINGS_SINCE) {
            for f in &findings {
                text.push_str(&format!("\n{}", FindingLine(f)));
            }
            text.push_str(&format!(
                "\nmappings: {} ({} spaces, {} leaves, {} frames, checked in {} us)",
                if end.consistent {
                    "consistent with the frame allocator".to_string()
                } else {
                    format!("{} findings", end.findings)
                },
                end.spaces,
                end.mappings,
                end.frames,
                end.duration_us
            ));
        }
        text
    };
    let _ = writeln!(out, "{text}");

    let mut problems = Vec::new();
    if !frame_check.consistent {
        problems.push("the frame bitmap is inconsistent");
    }
    if !heap_check.ok {
        problems.push("the kernel heap check failed");
    }
    if !end.consistent {
        problems.push("frames and mappings disagree");
    }
    if problems.is_empty() {
        Ok(EXIT_OK)
    } else {
        let _ = writeln!(err, "mmtop: {}", problems.join("; "));
        Ok(EXIT_INCONSISTENT)
    }
}
