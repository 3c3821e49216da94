//! Formatted output without an allocator: [`print!`](crate::print) and
//! [`println!`](crate::println) format into a buffer on the stack and hand
//! it to `write` in one call, so a line from one program is never split by
//! another's.

use core::fmt::{self, Write};

use sysabi::MAX_WRITE_LEN;

use crate::sys;

/// A line being formatted: the first [`MAX_WRITE_LEN`] bytes are kept, the
/// rest is dropped and the line ends in `...`.
pub struct LineBuf {
    /// The bytes so far.
    buf: [u8; MAX_WRITE_LEN],
    /// How many of `buf` are used.
    len: usize,
    /// Whether something did not fit.
    truncated: bool,
}

impl LineBuf {
    /// An empty line.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_WRITE_LEN],
            len: 0,
            truncated: false,
        }
    }

    /// The bytes formatted so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Appends `bytes`, dropping what does not fit.
    pub fn push(&mut self, bytes: &[u8]) {
        let room = MAX_WRITE_LEN - self.len;
        let take = bytes.len().min(room);
        self.buf[self.len..self.len + take].copy_from_slice(&bytes[..take]);
        self.len += take;
        self.truncated |= take < bytes.len();
    }

    /// Writes the line to the kernel log, ending it with `newline` if asked.
    pub fn flush(&mut self, newline: bool) {
        let tail: &[u8] = match (self.truncated, newline) {
            (true, true) => b"...\n",
            (true, false) => b"...",
            (false, true) => b"\n",
            (false, false) => b"",
        };
        // Make room for the tail by dropping the end of the text.
        self.len = self.len.min(MAX_WRITE_LEN - tail.len());
        let len = self.len;
        self.buf[len..len + tail.len()].copy_from_slice(tail);
        self.len += tail.len();
        // Nothing sensible is left to do if the log refuses a line.
        let _ = sys::write(self.as_bytes());
        self.len = 0;
        self.truncated = false;
    }
}

impl Default for LineBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

/// Formats `args` and writes them, followed by a newline if `newline`.
/// Used by the macros.
pub fn print_fmt(args: fmt::Arguments<'_>, newline: bool) {
    let mut line = LineBuf::new();
    // `LineBuf` never fails; a `Display` impl that does just ends the text.
    let _ = line.write_fmt(args);
    line.flush(newline);
}

/// Formats and writes to the kernel log, without a newline.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::io::print_fmt(::core::format_args!($($arg)*), false)
    };
}

/// Formats and writes one line to the kernel log (at most
/// [`sysabi::MAX_WRITE_LEN`] bytes; a longer one is cut and ends in `...`).
#[macro_export]
macro_rules! println {
    () => {
        $crate::io::print_fmt(::core::format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::io::print_fmt(::core::format_args!($($arg)*), true)
    };
}
