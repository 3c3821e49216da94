//! The byte link to the kernel's COM1: addresses and how to open them.

mod address;
mod open;
pub mod recording;

pub use address::{Address, AddressError, DEFAULT_BAUD};
pub use open::{Link, LinkError, LinkReader, LinkWriter};
