//! `mmtop log`: print every decoded message, one per line.

use std::io::{self, Write};
use std::sync::mpsc;
use std::time::Instant;

use probe_proto::HostMsg;

use super::args::LogArgs;
use super::{
    EXIT_CONNECT, EXIT_OK, EXIT_PROTOCOL, EXIT_TIMEOUT, RESYNC_INTERVAL, Received, recv_until,
};
use crate::Msg;
use crate::decode::DecodeError;
use crate::event::{LinkEvent, spawn_reader};
use crate::format::Format;
use crate::link::Link;

/// Runs `mmtop log`: messages go to `out`, diagnostics to `err`. Returns the
/// exit status.
pub fn run(args: &LogArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let started = Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let address = &args.connect.address;
    let format = if args.json {
        Format::Json
    } else {
        Format::Human
    };

    let link = match Link::open(address) {
        Ok(link) => link,
        Err(e) => {
            let _ = writeln!(err, "mmtop: {e}");
            return EXIT_CONNECT;
        }
    };
    let (reader, writer) = link.split();
    // Held until we return: some links end when their last handle closes.
    let mut writer = match writer {
        // Bytes sent before we connected are gone; a resync makes the kernel
        // repeat its Hello and memory map so a late client sees them.
        Some(mut w) if !args.no_resync => match w.send(&HostMsg::Resync) {
            Ok(()) => Some(w),
            Err(e) => {
                let _ = writeln!(err, "mmtop: cannot send resync to {address}: {e}");
                return EXIT_CONNECT;
            }
        },
        w => w,
    };

    let (tx, rx) = mpsc::channel();
    if let Err(e) = spawn_reader(reader, tx) {
        let _ = writeln!(err, "mmtop: cannot start the link reader: {e}");
        return EXIT_CONNECT;
    }

    let mut printed = 0u64;
    if args.count == Some(0) {
        return EXIT_OK;
    }
    // A Resync that reaches the UART before the kernel has set it up is
    // lost, so repeat it until the Hello it asks for arrives.
    let mut awaiting_hello = writer.is_some() && !args.no_resync;
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
                    return EXIT_CONNECT;
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
                        EXIT_TIMEOUT
                    }
                    None => {
                        let _ = writeln!(
                            err,
                            "mmtop: stopped after {waited:.1?} ({printed} messages)"
                        );
                        EXIT_OK
                    }
                };
            }
            Received::ReaderGone => {
                let _ = writeln!(err, "mmtop: the link reader stopped unexpectedly");
                return EXIT_CONNECT;
            }
        };
        match event {
            LinkEvent::Msg(msg) => {
                if matches!(msg, Msg::Hello(_)) {
                    awaiting_hello = false;
                }
                if let Err(e) = writeln!(out, "{}", format.line(&msg)) {
                    // `mmtop log | head` closing early is a normal way to stop.
                    if e.kind() != io::ErrorKind::BrokenPipe {
                        let _ = writeln!(err, "mmtop: cannot write output: {e}");
                    }
                    return EXIT_OK;
                }
                printed += 1;
                if args.count == Some(printed) {
                    return EXIT_OK;
                }
            }
            LinkEvent::Error(e @ DecodeError::BadFrame(_)) => {
                let _ = writeln!(err, "mmtop: {e}");
            }
            LinkEvent::Error(e @ DecodeError::Incompatible { .. }) => {
                let _ = writeln!(err, "mmtop: {e}");
                return EXIT_PROTOCOL;
            }
            LinkEvent::Closed { stats, error } => {
                let reason = error.map(|e| format!(": {e}")).unwrap_or_default();
                let _ = writeln!(
                    err,
                    "mmtop: link closed{reason} ({} frames, {} bad)",
                    stats.frames,
                    stats.bad()
                );
                return EXIT_OK;
            }
        }
    }
}
