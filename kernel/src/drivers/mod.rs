//! Device drivers: the two serial ports.

pub mod serial;
