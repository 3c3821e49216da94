//! Page-table steps for the dump tests: an anonymous region is mapped,
//! two of its pages touched, the whole space made copy-on-write by a fork
//! (its writable private pages turn read-only), its first page written
//! again (which gives it a frame of its own), and the region unmapped.
//! After each step it prints
//!
//! ```text
//! ptsteps: step=NAME addr=0x... pid=N
//! ```
//!
//! and holds still for [`HOLD_MS`], so a host can dump the tables between
//! steps. The child of the fork only sleeps.
#![no_std]
#![no_main]

use ulib::mapping::{Mapping, PAGE_SIZE};
use ulib::println;
use ulib::sys::{self, Fork};

ulib::entry!(main);

/// Milliseconds each step holds still.
const HOLD_MS: u64 = 3000;
/// Pages mapped.
const PAGES: u64 = 4;

/// Prints the step and holds.
fn step(name: &str, addr: u64) {
    let pid = sys::getpid().unwrap_or(0);
    println!("ptsteps: step={name} addr={addr:#x} pid={pid}");
    let _ = sys::sleep_ms(HOLD_MS);
}

fn main() -> i64 {
    let _ = sys::register_program_name("ptsteps");
    let map = match Mapping::anonymous(PAGES) {
        Ok(map) => map,
        Err(e) => {
            println!("ptsteps: mmap failed: {}", e.name());
            return 1;
        }
    };
    let addr = map.addr();
    step("mapped", addr);
    map.write_u64(0, 1);
    map.write_u64(PAGE_SIZE, 2);
    step("touched", addr);
    match sys::fork() {
        Ok(Fork::Child) => loop {
            let _ = sys::sleep_ms(60_000);
        },
        Ok(Fork::Parent(_)) => {}
        Err(e) => {
            println!("ptsteps: fork failed: {}", e.name());
            return 1;
        }
    }
    step("protected", addr);
    map.write_u64(0, 3);
    step("written", addr);
    drop(map);
    step("unmapped", addr);
    loop {
        let _ = sys::sleep_ms(60_000);
    }
}
