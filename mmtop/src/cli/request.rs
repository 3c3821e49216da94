//! What `mmtop check`, `stats` and `ps` share: open a live link, resync
//! until the kernel says Hello, make sure it knows the command, then wait for
//! the messages that answer it.

use std::io::Write;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use probe_proto::{HostMsg, Version, features};

use super::{
    EXIT_CONNECT, EXIT_PROTOCOL, EXIT_TIMEOUT, RESYNC_INTERVAL, Received, open_live, recv_until,
};
use crate::Msg;
use crate::decode::DecodeError;
use crate::event::LinkEvent;
use crate::link::{Address, LinkWriter};

/// The first protocol version with `Snapshot`, `Check` and `HeapWalk` (1.1 before 2.0).
/// (2.0 restarted the minor count: every command of 1.x is in 2.0, and a
/// 1.x kernel is refused before any command is sent.)
pub const COMMANDS_SINCE: Version = Version { major: 2, minor: 0 };

/// The first protocol version with `Processes`.
pub const PROCESSES_SINCE: Version = Version { major: 2, minor: 0 };

/// A live link whose kernel has said Hello and accepts the commands of the
/// version a subcommand needs.
pub struct Session<'a> {
    address: &'a Address,
    writer: LinkWriter,
    rx: Receiver<LinkEvent>,
    started: Instant,
    deadline: Instant,
    /// The protocol version the kernel said Hello with.
    pub version: Version,
    /// That Hello, for a symbolizer to confirm its ELF with.
    pub hello: Option<Msg>,
}

impl<'a> Session<'a> {
    /// Connects to `address` and resyncs until Hello, all before `timeout`
    /// has passed; the kernel must speak `since` or later. `command` names
    /// the subcommand in messages. On failure the reason is on `err` and the
    /// exit status is returned.
    pub fn open(
        address: &'a Address,
        command: &str,
        since: Version,
        timeout: Duration,
        err: &mut dyn Write,
    ) -> Result<Self, u8> {
        let started = Instant::now();
        let (writer, rx) = open_live(address, command, err)?;
        let mut session = Session {
            address,
            writer,
            rx,
            started,
            deadline: started + timeout,
            version: Version { major: 0, minor: 0 },
            hello: None,
        };
        session.resync(command, since, err)?;
        Ok(session)
    }

    /// Sends Resync (with its leading 0x00) until a Hello arrives, as
    /// `mmtop log` does, and checks that the kernel can serve `command`.
    fn resync(&mut self, command: &str, since: Version, err: &mut dyn Write) -> Result<(), u8> {
        loop {
            self.send(&HostMsg::Resync, err)?;
            let next_resync = Instant::now() + RESYNC_INTERVAL;
            let hello = loop {
                match self.next(Some(next_resync), "Hello", err)? {
                    Some(Msg::Hello(h)) => break Some(h),
                    Some(_) => {}
                    None => break None, // Time to repeat the Resync.
                }
            };
            let Some(hello) = hello else { continue };
            // The decoder has refused another major version already.
            if !hello.version.at_least(since) {
                let _ = writeln!(
                    err,
                    "mmtop: kernel speaks protocol {}.{}; {command} needs {}.{} or later",
                    hello.version.major, hello.version.minor, since.major, since.minor
                );
                return Err(EXIT_PROTOCOL);
            }
            self.version = hello.version;
            self.hello = Some(Msg::Hello(hello.clone()));
            if hello.features & features::HOST_COMMANDS == 0 {
                let _ = writeln!(
                    err,
                    "mmtop: the kernel at {} does not accept commands (no host-commands feature)",
                    self.address
                );
                return Err(EXIT_PROTOCOL);
            }
            return Ok(());
        }
    }

    /// Sends one command.
    pub fn send(&mut self, msg: &HostMsg, err: &mut dyn Write) -> Result<(), u8> {
        self.writer.send(msg).map_err(|e| {
            let _ = writeln!(err, "mmtop: cannot send {msg:?} to {}: {e}", self.address);
            EXIT_CONNECT
        })
    }

    /// The next message, waiting until the session's deadline.
    /// `waiting_for` names what is missing, for the timeout message.
    pub fn recv(&mut self, waiting_for: &str, err: &mut dyn Write) -> Result<Msg, u8> {
        loop {
            if let Some(msg) = self.next(None, waiting_for, err)? {
                return Ok(msg);
            }
        }
    }

    /// The next message; `Ok(None)` when `wake` (earlier than the deadline)
    /// comes first. Bad frames are reported on `err` and skipped.
    fn next(
        &mut self,
        wake: Option<Instant>,
        waiting_for: &str,
        err: &mut dyn Write,
    ) -> Result<Option<Msg>, u8> {
        let until = wake.map_or(self.deadline, |w| w.min(self.deadline));
        loop {
            match recv_until(&self.rx, Some(until)) {
                Received::Event(LinkEvent::Msg(msg)) => return Ok(Some(msg)),
                Received::Event(LinkEvent::Error(
                    e @ (DecodeError::BadFrame(_) | DecodeError::EventsSkipped { .. }),
                )) => {
                    let _ = writeln!(err, "mmtop: {e}");
                }
                Received::Event(LinkEvent::Error(e @ DecodeError::Incompatible { .. })) => {
                    let _ = writeln!(err, "mmtop: {e}");
                    return Err(EXIT_PROTOCOL);
                }
                Received::Event(LinkEvent::Closed { .. }) | Received::ReaderGone => {
                    let _ = writeln!(err, "mmtop: link closed before {waiting_for} arrived");
                    return Err(EXIT_TIMEOUT);
                }
                Received::TimedOut if Instant::now() < self.deadline => return Ok(None),
                Received::TimedOut => {
                    let _ = writeln!(
                        err,
                        "mmtop: no {waiting_for} from {} within {:.1?}",
                        self.address,
                        self.deadline - self.started
                    );
                    return Err(EXIT_TIMEOUT);
                }
            }
        }
    }
}
