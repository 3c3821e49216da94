//! The kernel binary: everything lives in the library; this file only exists
//! so the linker has an executable to produce.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
use kernel as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the kernel runs on x86_64-unknown-none only: build it with `make kernel`");
    std::process::exit(2);
}
