//! `mmtop ping`: one round trip to the kernel.

use std::io::Write;
use std::sync::mpsc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use probe_proto::HostMsg;

use super::args::PingArgs;
use super::{EXIT_CONNECT, EXIT_OK, EXIT_PROTOCOL, EXIT_TIMEOUT, Received, recv_until};
use crate::Msg;
use crate::decode::DecodeError;
use crate::event::{LinkEvent, spawn_reader};
use crate::format::human_time;
use crate::link::Link;

/// Runs `mmtop ping`; returns the exit status.
pub fn run(args: &PingArgs, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let address = &args.connect.address;
    let link = match Link::open(address) {
        Ok(link) => link,
        Err(e) => {
            let _ = writeln!(err, "mmtop: {e}");
            return EXIT_CONNECT;
        }
    };
    let (reader, writer) = link.split();
    let Some(mut writer) = writer else {
        let _ = writeln!(
            err,
            "mmtop: ping needs a live link; {address} is a recording"
        );
        return EXIT_CONNECT;
    };
    let (tx, rx) = mpsc::channel();
    if let Err(e) = spawn_reader(reader, tx) {
        let _ = writeln!(err, "mmtop: cannot start the link reader: {e}");
        return EXIT_CONNECT;
    }

    // A fresh nonce per run, so a pong left over from an earlier ping on
    // the same link is not mistaken for ours.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let sent = Instant::now();
    if let Err(e) = writer.send(&HostMsg::Ping { nonce }) {
        let _ = writeln!(err, "mmtop: cannot send ping to {address}: {e}");
        return EXIT_CONNECT;
    }
    let deadline = sent + args.timeout;
    loop {
        match recv_until(&rx, Some(deadline)) {
            Received::Event(LinkEvent::Msg(Msg::Pong(pong))) if pong.nonce == nonce => {
                let rtt = sent.elapsed();
                let _ = writeln!(
                    out,
                    "pong from {address}: nonce={nonce} rtt={:.3}ms kernel_t={}",
                    rtt.as_secs_f64() * 1e3,
                    human_time(pong.ts_us)
                );
                return EXIT_OK;
            }
            // Telemetry keeps flowing while we wait; it is not ours to print.
            Received::Event(LinkEvent::Msg(_) | LinkEvent::Error(DecodeError::BadFrame(_))) => {}
            Received::Event(LinkEvent::Error(e @ DecodeError::Incompatible { .. })) => {
                let _ = writeln!(err, "mmtop: {e}");
                return EXIT_PROTOCOL;
            }
            Received::Event(LinkEvent::Closed { .. }) | Received::ReaderGone => {
                let _ = writeln!(err, "mmtop: link closed before the pong arrived");
                return EXIT_TIMEOUT;
            }
            Received::TimedOut => {
                let _ = writeln!(
                    err,
                    "mmtop: no pong from {address} within {:.1?}",
                    args.timeout
                );
                return EXIT_TIMEOUT;
            }
        }
    }
}
