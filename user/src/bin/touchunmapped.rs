//! Writes to an address with no mapping: the kernel must kill it. Prints
//! `touchunmapped: start` first.
#![no_std]
#![no_main]

use ulib::{println, probe, sys};

ulib::entry!(main);

/// A user address far from the image, the stack and anything mmap picks.
const UNMAPPED_ADDR: u64 = 0x5000_0000_0000;

fn main() -> i64 {
    let _ = sys::register_program_name("touchunmapped");
    println!("touchunmapped: start");
    // SAFETY: nothing is mapped there; the program means to be killed for
    // this write.
    unsafe { probe::write_u64(UNMAPPED_ADDR, 0xdead_beef) };
    println!("touchunmapped: FAIL wrote {UNMAPPED_ADDR:#x} and survived");
    1
}
