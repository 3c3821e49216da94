//! Reads the first byte of the kernel's direct map from ring 3: the kernel
//! must kill it. Prints `touchkernel: start` first.
#![no_std]
#![no_main]

use ulib::{println, probe, sys};

ulib::entry!(main);

/// The start of the kernel half, where the direct map of RAM begins.
const KERNEL_ADDR: u64 = 0xffff_8000_0000_0000;

fn main() -> i64 {
    let _ = sys::register_program_name("touchkernel");
    println!("touchkernel: start");
    // SAFETY: a supervisor page; the program means to be killed for this
    // read.
    let value = unsafe { probe::read_u64(KERNEL_ADDR) };
    println!("touchkernel: FAIL read {value:#x} at {KERNEL_ADDR:#x} and survived");
    1
}
