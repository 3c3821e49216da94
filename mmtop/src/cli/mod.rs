//! The `mmtop` command line: argument parsing and the headless subcommands.

pub mod args;
pub mod check;
pub mod log;
pub mod ping;
pub mod ps;
pub mod ptdump;
mod request;
pub mod stats;

use std::io;
use std::process::ExitCode;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use clap::Parser;

use crate::event::LinkEvent;
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

/// How often an unanswered Resync is repeated: one that reaches the UART
/// before the kernel has set it up is lost.
const RESYNC_INTERVAL: Duration = Duration::from_secs(1);

/// Entry point of the `mmtop` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    let code = match &cli.command {
        Command::Log(args) => log::run(args, &mut out, &mut err),
        Command::Ping(args) => ping::run(args, &mut out, &mut err),
        Command::Check(args) => check::run(args, &mut out, &mut err),
        Command::Stats(args) => stats::run(args, &mut out, &mut err),
        Command::Ps(args) => ps::run(args, &mut out, &mut err),
        Command::Ptdump(args) => ptdump::run(args, &mut out, &mut err),
        Command::Diff(args) => ptdump::diff(args, &mut out, &mut err),
    };
    ExitCode::from(code)
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
