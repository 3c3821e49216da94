//! A small x86_64 kernel whose memory manager is built to be watched.
//!
//! The pure logic (`mm`, command-line parsing) builds and tests on the host;
//! everything that touches hardware lives under `arch` and `drivers` and is
//! compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]

pub mod mm;
