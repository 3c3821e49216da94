//! mmtop: host side of the kernel's telemetry link.
//!
//! The pieces, in the order bytes flow through them:
//!
//! - [`link`]: parse an address (`unix:PATH`, `tcp:HOST:PORT`,
//!   `/dev/ttyX[@BAUD]`, `file:PATH`) and open it as a byte reader plus, for
//!   a live kernel, a writer of host commands.
//! - [`decode`]: frames to owned [`Msg`] values (probe-proto's own
//!   `KernelMsg`, owning its strings), with counters and the protocol-version
//!   check.
//! - [`event`]: a reader thread that turns a link into [`event::LinkEvent`]s
//!   on a channel.
//! - [`format`]: one line per message, human or JSON.
//! - [`procs`]: process listings assembled into programs and the
//!   `checkMemory` object.
//! - [`symbols`]: raw return addresses named from the kernel ELF.
//! - [`cli`]: the `mmtop` command line built from the above.
//! - [`ui`]: the TUI (`mmtop` alone, or `mmtop top`).
#![forbid(unsafe_code)]

pub mod cli;
pub mod decode;
pub mod event;
pub mod format;
pub mod link;
pub mod procs;
pub mod symbols;
pub mod ui;

/// The process-listing fixture the end-to-end tests use too, so unit and
/// end-to-end tests check the same numbers.
#[cfg(test)]
#[path = "../tests/common/procs.rs"]
mod procs_fixture;

/// Likewise the memory snapshot and check results.
#[cfg(test)]
#[path = "../tests/common/memory.rs"]
mod memory_fixture;

pub use decode::{DecodeError, Decoder};
pub use event::{LinkEvent, spawn_reader};
pub use link::{Address, Link, LinkReader, LinkWriter};

/// A kernel message as the host keeps it: the protocol's own type, its
/// strings owned ([`probe_proto::KernelMsg::into_owned`]) so that it outlives
/// the frame it was decoded from.
pub type Msg = probe_proto::KernelMsg<'static>;
