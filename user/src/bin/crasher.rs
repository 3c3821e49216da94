//! Runs for a few rounds, then reads address 0: the kernel must kill it
//! with a report and carry on.
#![no_std]
#![no_main]

use ulib::{println, probe, sys};

ulib::entry!(main);

/// Rounds before the crash.
const ROUNDS: u64 = 5;
/// Milliseconds per round.
const SLEEP_MS: u64 = 200;

fn main() -> i64 {
    let _ = sys::register_program_name("crasher");
    for round in 1..=ROUNDS {
        println!("crasher: round={round} of {ROUNDS}");
        let _ = sys::sleep_ms(SLEEP_MS);
    }
    println!("crasher: reading address 0");
    // SAFETY: the page at 0 is never mapped; the program means to be killed
    // for this read.
    let value = unsafe { probe::read_u64(0) };
    println!("crasher: FAIL read {value:#x} at address 0 and survived");
    1
}
