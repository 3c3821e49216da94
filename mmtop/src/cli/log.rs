//! `mmtop log`: print every decoded message, one per line.

use std::io::{self, Write};
use std::time::Instant;

use probe_proto::HostMsg;

use super::args::LogArgs;
use super::{
    EXIT_CONNECT, EXIT_OK, EXIT_PROTOCOL, EXIT_TIMEOUT, RESYNC_INTERVAL, Received, Status,
    recv_until, start_reader,
};
use crate::Msg;
use crate::decode::DecodeError;
use crate::event::LinkEvent;
use crate::format::Format;
use crate::link::Link;
use crate::link::recording::{ReplayControl, ReplayOptions};
use crate::procs::is_listing;
use crate::symbols::Symbolizer;

/// Runs `mmtop log`: messages go to `out`, diagnostics to `err`.
pub fn run(args: &LogArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let started = Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let address = &args.connect.address;
    let format = if args.json {
        Format::Json
    } else {
        Format::Human
    };

    let mut symbols = Symbolizer::new(args.elf.as_deref());

    // A recording: as fast as it reads unless --speed; --at skips.
    let replay = ReplayOptions {
        at: args.replay.at.unwrap_or_default(),
        skip_before: true,
        control: args.replay.speed.map(|s| ReplayControl::new(Some(s))),
    };
    let (reader, writer) = Link::open_with(address, &replay)
        .map_err(|e| {
            let _ = writeln!(err, "mmtop: {e}");
            EXIT_CONNECT
        })?
        .split();
    // Held until we return: some links end when their last handle closes.
    let mut writer = match writer {
        // Bytes sent before we connected are gone; a resync makes the kernel
        // repeat its Hello and memory map so a late client sees them.
        Some(mut w) if !args.no_resync => match w.send(&HostMsg::Resync) {
            Ok(()) => Some(w),
            Err(e) => {
                let _ = writeln!(err, "mmtop: cannot send resync to {address}: {e}");
                return Err(EXIT_CONNECT);
            }
        },
        w => w,
    };
    let rx = start_reader(reader, err)?;

    let mut printed = 0u64;
    if args.count == Some(0) {
        return Ok(EXIT_OK);
    }
    // A Resync that reaches the UART before the kernel has set it up is
    // lost, so repeat it until the Hello it asks for arrives.
    let mut awaiting_hello = writer.is_some() && !args.no_resync;
    // Programs that started before we attached are named only by a
    // listing: asked for once after the Hello when there are symbols to
    // give, and read for their names, not printed.
    let mut naming = false;
    let mut next_resync = Instant::now() + RESYNC_INTERVAL;
    loop {
        let wake = match (awaiting_hello, deadline) {
            (true, Some(d)) => Some(d.min(next_resync)),
            (true, None) => Some(next_resync),
            (false, d) => d,
        };
        let event = match recv_until(&rx, wake) {
            Received::Event(event) => event,
            Received::TimedOut if deadline.is_none_or(|d| Instant::now() < d) => {
                if let Some(Err(e)) = writer.as_mut().map(|w| w.send(&HostMsg::Resync)) {
                    let _ = writeln!(err, "mmtop: cannot send resync to {address}: {e}");
                    return Err(EXIT_CONNECT);
                }
                next_resync = Instant::now() + RESYNC_INTERVAL;
                continue;
            }
            Received::TimedOut => {
                let waited = started.elapsed();
                return match args.count {
                    Some(count) => {
                        let _ = writeln!(
                            err,
                            "mmtop: timed out after {waited:.1?}: {printed} of {count} messages"
                        );
                        Err(EXIT_TIMEOUT)
                    }
                    None => {
                        let _ = writeln!(
                            err,
                            "mmtop: stopped after {waited:.1?} ({printed} messages)"
                        );
                        Ok(EXIT_OK)
                    }
                };
            }
            Received::ReaderGone => {
                let _ = writeln!(err, "mmtop: the link reader stopped unexpectedly");
                return Err(EXIT_CONNECT);
            }
        };
        match event {
            LinkEvent::Msg(msg) => {
                symbols.observe(&msg, err);
                if matches!(msg, Msg::Hello(_)) && std::mem::take(&mut awaiting_hello) {
                    let listing = HostMsg::Processes { pid: -1 };
                    naming = symbols.is_confirmed()
                        && writer.as_mut().is_some_and(|w| w.send(&listing).is_ok());
                }
                if naming && is_listing(&msg) {
                    naming = !matches!(msg, Msg::ProcessListEnd(_));
                    continue;
                }
                let notes = symbols.annotate(&msg);
                if let Err(e) = writeln!(out, "{}", format.annotated_line(&msg, &notes)) {
                    // `mmtop log | head` closing early is a normal way to stop.
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        let _ = writeln!(err, "mmtop: cannot write output: {e}");
                    }
                    return Ok(EXIT_OK);
                }
                printed += 1;
                if args.count == Some(printed) {
                    return Ok(EXIT_OK);
                }
            }
            LinkEvent::Error(
                e @ (DecodeError::BadFrame(_) | DecodeError::EventsSkipped { .. }),
            ) => {
                let _ = writeln!(err, "mmtop: {e}");
            }
            LinkEvent::Error(e @ DecodeError::Incompatible { .. }) => {
                let _ = writeln!(err, "mmtop: {e}");
                return Err(EXIT_PROTOCOL);
            }
            LinkEvent::Closed { stats, error } => {
                let reason = error.map(|e| format!(": {e}")).unwrap_or_default();
                let _ = writeln!(
                    err,
                    "mmtop: link closed{reason} ({} frames, {} bad)",
                    stats.frames,
                    stats.bad()
                );
                // The end came before the messages asked for.
                if let Some(count) = args.count {
                    let _ = writeln!(
                        err,
                        "mmtop: {address} ended after {printed} of {count} messages"
                    );
                    return Err(EXIT_TIMEOUT);
                }
                return Ok(EXIT_OK);
            }
        }
    }
}
