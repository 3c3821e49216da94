//! A small x86_64 kernel whose memory manager is built to be watched.
//!
//! The pure logic (`mm`, `elf`, `boot_info`, `cmdline`) builds and tests on the
//! host; everything that touches hardware is compiled only for the
//! bare-metal target (`target_os = "none"`).
#![cfg_attr(not(test), no_std)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod boot_info;
pub mod cmdline;
pub mod elf;
pub mod mm;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod drivers;
#[cfg(target_os = "none")]
pub mod gdb;
#[cfg(target_os = "none")]
pub mod introspect;
#[cfg(target_os = "none")]
#[macro_use]
pub mod log;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod proc;
#[cfg(target_os = "none")]
pub mod selftest;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod telemetry;
#[cfg(target_os = "none")]
pub mod time;

#[cfg(target_os = "none")]
mod entry;
