//! The ring-3 programs built from `user/` and embedded in the kernel image,
//! found by their spawn name.
//!
//! The kernel's build script builds every program of `user/src/bin/` and
//! generates the [`PROGRAMS`] table; each image is a fixed-address ELF64
//! executable at 0x400000 whose segments pass
//! [`ElfFile::parse`](crate::elf::ElfFile::parse) (section headers and
//! debug information are left out; the full files for gdb are in
//! `target/user/NAME.debug`).
#![forbid(unsafe_code)]

include!(concat!(env!("OUT_DIR"), "/programs.rs"));

/// The ELF image of the program called `name`.
pub fn find(name: &str) -> Option<&'static [u8]> {
    PROGRAMS
        .iter()
        .find(|(program, _)| *program == name)
        .map(|&(_, image)| image)
}

/// The names of every embedded program, in name order.
pub fn names() -> impl Iterator<Item = &'static str> {
    PROGRAMS.iter().map(|&(name, _)| name)
}
