//! The kernel's instances of the `mm` allocators, bound to real memory:
//! the physical frame bitmap over the boot memory map ([`phys`]), the
//! kernel's page tables and address spaces ([`virt`]), the kernel heap and
//! further heaps ([`heap`]), and the telemetry they produce ([`events`],
//! [`report`]).
//!
//! `mm` holds the logic and is tested on the host; this module owns the
//! globals, places their storage in RAM, and is the only place that turns
//! physical addresses into Rust references.

pub mod events;
pub mod heap;
pub mod kstack;
pub mod phys;
pub mod virt;
