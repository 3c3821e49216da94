//! The in-kernel GDB remote stub on COM2, KGDB-style, built on `gdbstub`.
//!
//! `gdb kernel.elf -ex 'target remote HOST:PORT'` (or `lldb kernel.elf -o
//! 'gdb-remote HOST:PORT'`) attaches at any time:
//! the first packet stops the kernel (COM2 interrupt) and gdb sees the
//! interrupted code. Processes are gdb threads; memory is read in the
//! address space of the selected one. Breakpoints (software and hardware), watchpoints,
//! single-steps and, while gdb is attached, fatal faults stop it too.
//! Registers are the trapped frame; memory goes through the page tables, so
//! a bad address is an error, never a fault.
//! Without a debugger, traps are handled as if the stub were not there.
//!
//! - [`conn`]: the byte link (COM2) as a `gdbstub` connection;
//! - [`session`]: the state machine, trap entries and the stop loop;
//! - [`target`]: registers, resume and breakpoints;
//! - [`threads`]: processes as threads, read at every stop;
//! - [`debugreg`]: hardware breakpoints and watchpoints (DR0–DR7);
//! - [`memory`]: page-table-checked memory access;
//! - [`lldb`]: LLDB's queries (register layout, triple, thread names);
//! - [`monitor`]: `monitor` commands (`help`, `pmm`, `check`, `heap`,
//!   `whatis`, `loglevel`).

mod conn;
mod debugreg;
mod lldb;
mod memory;
mod monitor;
mod session;
mod target;
mod threads;

use core::fmt;

pub use session::{on_breakpoint, on_com2_interrupt, on_debug, on_fault};

use crate::arch::qemu;
use crate::log::LineBuf;

/// Opens COM2 and sets how long a stopped kernel waits for a debugger that
/// went silent (0: forever).
pub fn init(idle_timeout_s: u32) {
    session::set_idle_timeout_s(idle_timeout_s);
    conn::open();
}

/// A line on the debug console only. The stub never logs through
/// telemetry: it may have stopped the kernel inside the telemetry code,
/// with its lock held.
fn note(args: fmt::Arguments<'_>) {
    use core::fmt::Write;
    let mut line = LineBuf::new();
    let _ = writeln!(line, "[gdb] {args}");
    qemu::debugcon_write(line.as_str().as_bytes());
}
