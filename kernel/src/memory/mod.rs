//! The kernel's instances of the `mm` allocators, bound to real memory:
//! the physical frame bitmap over the boot memory map ([`phys`]), the
//! kernel's page tables and address spaces ([`virt`]), the kernel heap and
//! further heaps ([`heap`]) with the call sites of the kernel heap's
//! blocks ([`call_sites`]), kernel stacks ([`kstack`]), and the events
//! they produce ([`events`]).
//!
//! `mm` holds the pure allocators and data structures, tested on the host
//! over emulated memory; this module (layer 3) owns their live instances:
//! the globals, their storage in RAM, and the events they report. Of it,
//! [`direct_map`] alone turns a physical address into a pointer or a
//! reference. It imports `mm`, `arch`, `sync` and the telemetry link, never
//! `proc` or anything above.

pub mod call_sites;
pub mod direct_map;
pub mod events;
pub mod heap;
pub mod kstack;
pub mod phys;
pub mod virt;
