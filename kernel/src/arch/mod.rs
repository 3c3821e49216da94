//! Architecture support; x86_64 is the only one.

pub mod x86_64;

pub use self::x86_64::{cpu, qemu};
