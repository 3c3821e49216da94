//! `ulib`: what a ring-3 program of this kernel is written with.
//!
//! - [`raw`]: the `int 0x80` system-call instructions, `syscall0` to
//!   `syscall6`;
//! - [`sys`]: one safe wrapper per call of [`sysabi::nr`], answering
//!   `Result<_, Errno>`;
//! - [`io`]: [`println!`] and [`print!`], formatted into a stack buffer (there is
//!   no allocator) and handed to `write`;
//! - [`rt`]: the [`entry!`] macro that turns `fn main() -> i64` into the
//!   program's `_start`, and the panic handler (message, then exit code
//!   [`rt::PANIC_EXIT_CODE`]);
//! - [`mapping`]: an owned anonymous `mmap` region;
//! - [`rand`]: a xorshift generator for programs that want randomness;
//! - [`probe`]: single loads and stores at chosen addresses, for programs
//!   that exist to fault.
#![no_std]

pub mod io;
pub mod mapping;
pub mod probe;
pub mod rand;
pub mod raw;
pub mod rt;
pub mod sys;

pub use sysabi::{self, Errno};
