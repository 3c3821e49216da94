//! `mmtop check`: ask the kernel to check its frame bitmap and kernel heap.

use std::io::Write;

use probe_proto::{FrameCheck, HeapCheck, HostMsg, KERNEL_PID};
use serde::Serialize;

use super::args::RequestArgs;
use super::request::{COMMANDS_SINCE, Session};
use super::{EXIT_INCONSISTENT, EXIT_OK};
use crate::Msg;
use crate::format::human;

/// The `--json` output: both results in one object.
#[derive(Debug, Serialize)]
struct Report {
    frame_check: FrameCheck,
    heap_check: HeapCheck,
}

/// Runs `mmtop check`; returns the exit status.
pub fn run(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    match check(args, out, err) {
        Ok(code) | Err(code) => code,
    }
}

fn check(args: &RequestArgs, out: &mut dyn Write, err: &mut dyn Write) -> Result<u8, u8> {
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
    let (frame_check, heap_check) = loop {
        let waiting_for = match (frame_check, heap_check) {
            (Some(f), Some(h)) => break (f, h),
            (None, None) => "FrameCheck and HeapCheck",
            (None, Some(_)) => "FrameCheck",
            (Some(_), None) => "HeapCheck",
        };
        match session.recv(waiting_for, err)? {
            Msg::FrameCheck(c) if frame_check.is_none() => frame_check = Some(c),
            // Only the kernel heap's result answers Check.
            Msg::HeapCheck(c) if heap_check.is_none() && c.pid == KERNEL_PID => {
                heap_check = Some(c)
            }
            // Other telemetry keeps flowing; it is not the answer.
            _ => {}
        }
    };

    let text = if args.json {
        // A struct of numbers, bools and unit-like enums always serializes.
        serde_json::to_string(&Report {
            frame_check,
            heap_check,
        })
        .expect("a check report serializes to JSON")
    } else {
        format!(
            "{}\n{}",
            human(&Msg::FrameCheck(frame_check)),
            human(&Msg::HeapCheck(heap_check))
        )
    };
    let _ = writeln!(out, "{text}");

    let mut problems = Vec::new();
    if !frame_check.consistent {
        problems.push("the frame bitmap is inconsistent");
    }
    if !heap_check.ok {
        problems.push("the kernel heap check failed");
    }
    if problems.is_empty() {
        Ok(EXIT_OK)
    } else {
        let _ = writeln!(err, "mmtop: {}", problems.join("; "));
        Ok(EXIT_INCONSISTENT)
    }
}
