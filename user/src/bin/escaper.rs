//! Writes a line with a terminal escape sequence and a bell in it, for the
//! test that the kernel logs a program's bytes escaped, never raw.
#![no_std]
#![no_main]

use ulib::sys;

ulib::entry!(main);

fn main() -> i64 {
    let _ = sys::print("escaper: \u{1b}[31mred\u{7}\n");
    0
}
