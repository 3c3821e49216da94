//! `mmtop record`: save the kernel's byte stream with host timestamps.
//!
//! The file is the container of [`crate::link::recording`]: the magic line
//! `mmtop-rec 1\n`, then records of (u64 LE microseconds since the kernel's
//! Hello, u32 LE length, the bytes read), the kernel's frames unchanged. A
//! Resync is sent first (and repeated until the Hello it asks for arrives),
//! and the recording starts at that Hello's frame, so a replay begins with
//! the kernel's Hello and memory map like a fresh connection.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use probe_proto::HostMsg;

use super::args::RecordArgs;
use super::{
    EXIT_CONNECT, EXIT_OK, EXIT_PROTOCOL, EXIT_TIMEOUT, RESYNC_INTERVAL, Status, open_link,
};
use crate::Msg;
use crate::decode::{DecodeError, Decoder};
use crate::link::recording::RecordWriter;

/// What the thread reading the link hands over.
enum Chunk {
    Bytes(Instant, Vec<u8>),
    End(Option<io::Error>),
}

/// Runs `mmtop record`: diagnostics and the summary go to `err`.
pub fn run(args: &RecordArgs, err: &mut dyn Write) -> Status {
    let started = Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let address = &args.connect.address;
    let (mut reader, writer) = open_link(address, err)?.split();
    let Some(mut writer) = writer else {
        let _ = writeln!(
            err,
            "mmtop: record needs a live link; {address} is a recording"
        );
        return Err(EXIT_CONNECT);
    };
    let file = File::create(&args.output).map_err(|e| {
        let _ = writeln!(err, "mmtop: cannot create {}: {e}", args.output.display());
        EXIT_CONNECT
    })?;
    let write_err = |err: &mut dyn Write, e: io::Error| {
        let _ = writeln!(err, "mmtop: cannot write {}: {e}", args.output.display());
        EXIT_CONNECT
    };
    let mut out = RecordWriter::new(BufWriter::new(file)).map_err(|e| write_err(err, e))?;

    let send_resync = |w: &mut crate::link::LinkWriter, err: &mut dyn Write| {
        w.send(&HostMsg::Resync).map_err(|e| {
            let _ = writeln!(err, "mmtop: cannot send resync to {address}: {e}");
            EXIT_CONNECT
        })
    };
    send_resync(&mut writer, err)?;

    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("mmtop-record-reader".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        if tx
                            .send(Chunk::Bytes(Instant::now(), buf[..n].to_vec()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Err(e) if is_transient(&e) => {}
                    Err(e) => break Err(e),
                }
            }
            .map_or_else(
                |e| tx.send(Chunk::End(Some(e))),
                |()| tx.send(Chunk::End(None)),
            )
            .unwrap_or(());
        })
        .map_err(|e| {
            let _ = writeln!(err, "mmtop: cannot start the link reader: {e}");
            EXIT_CONNECT
        })?;

    let mut decoder = Decoder::joining();
    // Before the Hello: the bytes of the frame being received.
    let mut before_hello: Option<Vec<u8>> = Some(Vec::new());
    let mut origin = started;
    let mut messages = 0u64;
    let mut bytes_written = 0u64;
    let mut next_resync = Instant::now() + RESYNC_INTERVAL;
    let summary = |err: &mut dyn Write, messages: u64, bytes: u64| {
        let _ = writeln!(
            err,
            "mmtop: recorded {messages} messages ({bytes} bytes) to {}",
            args.output.display()
        );
    };
    if args.count == Some(0) {
        out.into_inner().map_err(|e| write_err(err, e))?;
        summary(err, 0, 0);
        return Ok(EXIT_OK);
    }
    loop {
        let wake = match (before_hello.is_some(), deadline) {
            (true, Some(d)) => Some(d.min(next_resync)),
            (true, None) => Some(next_resync),
            (false, d) => d,
        };
        let received = match wake {
            Some(w) => rx.recv_timeout(w.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        let chunk = match received {
            Ok(c) => c,
            Err(RecvTimeoutError::Timeout) if deadline.is_none_or(|d| Instant::now() < d) => {
                send_resync(&mut writer, err)?;
                next_resync = Instant::now() + RESYNC_INTERVAL;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                out.into_inner().map_err(|e| write_err(err, e))?;
                summary(err, messages, bytes_written);
                return match (args.count, before_hello.is_some()) {
                    (_, true) => {
                        let _ = writeln!(err, "mmtop: no Hello from {address} before the timeout");
                        Err(EXIT_TIMEOUT)
                    }
                    (Some(count), false) => {
                        let _ = writeln!(err, "mmtop: timed out: {messages} of {count} messages");
                        Err(EXIT_TIMEOUT)
                    }
                    (None, false) => Ok(EXIT_OK),
                };
            }
            Err(RecvTimeoutError::Disconnected) => Chunk::End(None),
        };
        let (at, bytes) = match chunk {
            Chunk::Bytes(at, bytes) => (at, bytes),
            Chunk::End(error) => {
                out.into_inner().map_err(|e| write_err(err, e))?;
                let reason = error.map(|e| format!(": {e}")).unwrap_or_default();
                let _ = writeln!(err, "mmtop: link closed{reason}");
                summary(err, messages, bytes_written);
                return match args.count {
                    Some(count) => {
                        let _ = writeln!(
                            err,
                            "mmtop: {address} ended after {messages} of {count} messages"
                        );
                        Err(EXIT_TIMEOUT)
                    }
                    None => Ok(EXIT_OK),
                };
            }
        };
        // The part of `bytes` to record, and how many messages end in it
        // (stopping at --count, in which case the record ends there too).
        let mut start = 0;
        let mut end = bytes.len();
        for (i, &b) in bytes.iter().enumerate() {
            let Some(results) = decoder.push(b) else {
                if let Some(frame) = before_hello.as_mut() {
                    frame.push(b);
                }
                continue;
            };
            if let Some(frame) = before_hello.as_mut() {
                frame.push(b);
                match results.first() {
                    Some(Ok(Msg::Hello(_))) => {
                        // The Hello's frame starts the recording.
                        origin = at;
                        let head = std::mem::take(frame);
                        before_hello = None;
                        bytes_written += head.len() as u64;
                        out.write(0, &head).map_err(|e| write_err(err, e))?;
                        start = i + 1;
                    }
                    Some(Err(DecodeError::Incompatible { .. })) => {}
                    _ => {
                        frame.clear();
                        continue;
                    }
                }
            }
            // A frame of events counts them all; the recording ends after
            // the frame that reaches --count.
            for result in results {
                match result {
                    Ok(_) => messages += 1,
                    Err(e @ DecodeError::Incompatible { .. }) => {
                        let _ = writeln!(err, "mmtop: {e}");
                        let _ = out.into_inner();
                        return Err(EXIT_PROTOCOL);
                    }
                    Err(e) => {
                        let _ = writeln!(err, "mmtop: {e} (recorded as it came)");
                    }
                }
            }
            if args.count.is_some_and(|c| messages >= c) {
                end = i + 1;
                break;
            }
        }
        if before_hello.is_none() && start < end {
            let t_us = u64::try_from(at.duration_since(origin).as_micros()).unwrap_or(u64::MAX);
            out.write(t_us, &bytes[start..end])
                .map_err(|e| write_err(err, e))?;
            bytes_written += (end - start) as u64;
        }
        if args.count.is_some_and(|c| messages >= c) {
            out.into_inner().map_err(|e| write_err(err, e))?;
            summary(err, messages, bytes_written);
            return Ok(EXIT_OK);
        }
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}
