//! Introspection: every answer the host or the debugger can ask for
//! (statistics, checks, heap walks, the process listing, leaks by key,
//! the kernel leak scan and the physical map by owner),
//! computed once here and returned as `probe-proto` values.
//!
//! This is the layer above `memory` and `proc`: it reads both and changes
//! neither. The telemetry server (`telemetry::server`) sends its answers
//! over COM1; gdb's `monitor` renders the same values as text. A new report
//! goes here first, then one line in each of them.
#![deny(unsafe_code)]

pub mod check;
pub mod heap_walk;
pub mod kleak;
pub mod memory;
pub mod owner_map;
pub mod processes;
pub mod ptdump;
pub mod whatis;
