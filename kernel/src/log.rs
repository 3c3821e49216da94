//! Kernel logging: every line goes to QEMU's debug console (port 0xE9) and,
//! when its level is enabled by `loglevel=`, to the sink registered at boot
//! (the telemetry link, which sends it as `Log`). The log sits low, so it
//! names nothing above it: the sink is a function handed to it.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use probe_proto::LogLevel;
use spin::Once;

use crate::arch::qemu;

static LOGLEVEL: AtomicU8 = AtomicU8::new(crate::cmdline::DEFAULT_LOGLEVEL);

/// Where enabled lines go besides the debug console.
static SINK: Once<fn(LogLevel, &str)> = Once::new();

/// Sends every line at an enabled level to `sink` as well; only the first
/// call counts.
pub fn set_sink(sink: fn(LogLevel, &str)) {
    SINK.call_once(|| sink);
}

/// The most verbose level sent over telemetry.
pub fn level() -> u8 {
    LOGLEVEL.load(Ordering::Relaxed)
}

/// Sets the most verbose level sent over telemetry (0 error .. 3 debug).
pub fn set_level(level: u8) {
    LOGLEVEL.store(level.min(3), Ordering::Relaxed);
}

/// Longest log line; longer ones are cut.
const MAX_LINE: usize = 256;

/// A fixed buffer that `write!` fills, cutting what does not fit at a
/// character boundary.
pub struct LineBuf {
    buf: [u8; MAX_LINE],
    len: usize,
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_LINE],
            len: 0,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_LINE - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Logs one line; use the `kinfo!`-style macros.
pub fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    let mut line = LineBuf::new();
    let _ = line.write_fmt(args);
    let tag: &[u8] = match level {
        LogLevel::Error => b"[E] ",
        LogLevel::Warn => b"[W] ",
        LogLevel::Info => b"[I] ",
        LogLevel::Debug => b"[D] ",
    };
    qemu::debugcon_write(tag);
    qemu::debugcon_write(line.as_str().as_bytes());
    qemu::debugcon_write(b"\n");
    if level as u8 <= LOGLEVEL.load(Ordering::Relaxed)
        && let Some(sink) = SINK.get()
    {
        sink(level, line.as_str());
    }
}

/// Logs at error level.
#[macro_export]
macro_rules! kerror { ($($t:tt)*) => { $crate::log::log(probe_proto::LogLevel::Error, format_args!($($t)*)) } }
/// Logs at warning level.
#[macro_export]
macro_rules! kwarn { ($($t:tt)*) => { $crate::log::log(probe_proto::LogLevel::Warn, format_args!($($t)*)) } }
/// Logs at info level.
#[macro_export]
macro_rules! kinfo { ($($t:tt)*) => { $crate::log::log(probe_proto::LogLevel::Info, format_args!($($t)*)) } }
/// Logs at debug level.
#[macro_export]
macro_rules! kdebug { ($($t:tt)*) => { $crate::log::log(probe_proto::LogLevel::Debug, format_args!($($t)*)) } }
