//! The kernel's instances of the `mm` allocators, bound to real memory:
//! the physical frame bitmap over the boot memory map.
//!
//! `mm` holds the logic and is tested on the host; this module owns the
//! globals, places their storage in RAM, and is the only place that turns
//! physical addresses into Rust references.

pub mod phys;
