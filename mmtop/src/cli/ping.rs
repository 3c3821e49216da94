//! `mmtop ping`: one round trip to the kernel.

use std::io::Write;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use probe_proto::HostMsg;

use super::args::PingArgs;
use super::{
    EXIT_CONNECT, EXIT_OK, EXIT_PROTOCOL, EXIT_TIMEOUT, Received, Status, open_live, recv_until,
};
use crate::Msg;
use crate::decode::DecodeError;
use crate::event::LinkEvent;
use crate::format::human_time;

/// Runs `mmtop ping`.
pub fn run(args: &PingArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let address = &args.connect.address;
    let (mut writer, rx) = open_live(address, "ping", err)?;

    // A fresh nonce per run, so a pong left over from an earlier ping on
    // the same link is not mistaken for ours.
    let nonce = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id();
    let sent = Instant::now();
    if let Err(e) = writer.send(&HostMsg::Ping { nonce }) {
        let _ = writeln!(err, "mmtop: cannot send ping to {address}: {e}");
        return Err(EXIT_CONNECT);
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
                return Ok(EXIT_OK);
            }
            // Telemetry keeps flowing while we wait; it is not ours to print.
            Received::Event(
                LinkEvent::Msg(_)
                | LinkEvent::Error(DecodeError::BadFrame(_) | DecodeError::EventsSkipped { .. }),
            ) => {}
            Received::Event(LinkEvent::Error(e @ DecodeError::Incompatible { .. })) => {
                let _ = writeln!(err, "mmtop: {e}");
                return Err(EXIT_PROTOCOL);
            }
            Received::Event(LinkEvent::Closed { .. }) | Received::ReaderGone => {
                let _ = writeln!(err, "mmtop: link closed before the pong arrived");
                return Err(EXIT_TIMEOUT);
            }
            Received::TimedOut => {
                let _ = writeln!(
                    err,
                    "mmtop: no pong from {address} within {:.1?}",
                    args.timeout
                );
                return Err(EXIT_TIMEOUT);
            }
        }
    }
}
