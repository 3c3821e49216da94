//! The `mmtop` command line: argument parsing and the headless subcommands.

pub mod args;
pub mod check;
pub mod control;
pub mod leaks;
pub mod log;
pub mod ping;
pub mod ps;
pub mod ptdump;
pub mod record;
mod request;
pub mod stats;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::event::{LinkEvent, spawn_link_reader};
use crate::link::{Address, Link, LinkReader, LinkWriter};
use args::{Cli, Command};

/// Success.
pub const EXIT_OK: u8 = 0;
/// A deadline passed (or the link closed) before the goal was reached.
pub const EXIT_TIMEOUT: u8 = 1;
/// The link could not be opened or used; also clap's usage-error status.
pub const EXIT_CONNECT: u8 = 2;
/// The kernel speaks an incompatible protocol version.
pub const EXIT_PROTOCOL: u8 = 3;
/// The kernel answered a check and reports an inconsistency.
pub const EXIT_INCONSISTENT: u8 = 4;
/// `mmtop ps --pid N`: the kernel has no process N.
pub const EXIT_NO_PROCESS: u8 = 5;
/// `mmtop leaks`: the kernel leak scan reported a leak.
pub const EXIT_LEAK: u8 = 6;

/// A subcommand's exit status: `Ok` when it ran to its end, `Err` when it
/// stopped short (having said why on its error stream).
pub type Status = Result<u8, u8>;

/// How often an unanswered Resync is repeated: one that reaches the UART
/// before the kernel has set it up is lost.
const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Entry point of the `mmtop` binary.
pub fn main() -> ExitCode {
    // `mmtop` and `mmtop --connect ADDR` alone open the TUI.
    let cli = Cli::parse_from(crate::ui::default_to_top(std::env::args_os()));
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let (Ok(code) | Err(code)) = match &cli.command {
        Command::Log(args) => log::run(args, &mut out, &mut err),
        Command::Ping(args) => ping::run(args, &mut out, &mut err),
        Command::Check(args) => check::run(args, &mut out, &mut err),
        Command::Stats(args) => stats::run(args, &mut out, &mut err),
        Command::Ps(args) => ps::run(args, &mut out, &mut err),
        Command::Ptdump(args) => ptdump::run(args, &mut out, &mut err),
        Command::Diff(args) => ptdump::diff(args, &mut out, &mut err),
        Command::Loglevel(args) => control::loglevel(args, &mut out, &mut err),
        Command::Events(args) => control::events(args, &mut out, &mut err),
        Command::Leaks(args) => leaks::run(args, &mut out, &mut err),
        Command::Top(args) => crate::ui::run(args, &mut err),
        Command::Record(args) => record::run(args, &mut err),
    };
    ExitCode::from(code)
}

/// Opens the link at `address`; on failure says why on `err`.
fn open_link(address: &Address, err: &mut dyn Write) -> Result<Link, u8> {
    Link::open(address).map_err(|e| {
        let _ = writeln!(err, "mmtop: {e}");
        EXIT_CONNECT
    })
}

/// Starts the thread that reads `reader` into events; on failure says why
/// on `err`.
fn start_reader(reader: LinkReader, err: &mut dyn Write) -> Result<Receiver<LinkEvent>, u8> {
    let (tx, rx) = mpsc::channel();
    spawn_link_reader(reader, tx).map_err(|e| {
        let _ = writeln!(err, "mmtop: cannot start the link reader: {e}");
        EXIT_CONNECT
    })?;
    Ok(rx)
}

/// Opens the live link at `address` that `command` needs (a recording is
/// refused): its writer and the events of its reader. On failure says why
/// on `err`.
fn open_live(
    address: &Address,
    command: &str,
    err: &mut dyn Write,
) -> Result<(LinkWriter, Receiver<LinkEvent>), u8> {
    let (reader, writer) = open_link(address, err)?.split();
    let Some(writer) = writer else {
        let _ = writeln!(
            err,
            "mmtop: {command} needs a live link; {address} is a recording"
        );
        return Err(EXIT_CONNECT);
    };
    Ok((writer, start_reader(reader, err)?))
}

/// What waiting on the link channel gave.
#[expect(
    clippy::large_enum_variant,
    reason = "a transient value around a LinkEvent, matched at once"
)]
enum Received {
    Event(LinkEvent),
    TimedOut,
    /// The reader thread ended without a `Closed` (it panicked).
    ReaderGone,
}

/// Waits for the next link event, up to `deadline` if there is one.
fn recv_until(rx: &Receiver<LinkEvent>, deadline: Option<Instant>) -> Received {
    match deadline {
        None => rx.recv().map_or(Received::ReaderGone, Received::Event),
        Some(deadline) => {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(event) => Received::Event(event),
                Err(RecvTimeoutError::Timeout) => Received::TimedOut,
                Err(RecvTimeoutError::Disconnected) => Received::ReaderGone,
            }
        }
    }
}
