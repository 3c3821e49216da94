//! A fixed ring-3 workload that allocates hard, for the telemetry's cost:
//! rounds of 64 heap allocations of 16..1040 bytes then their frees, timed
//! with the kernel's clock; prints the time and exits.
#![no_std]
#![no_main]

use ulib::{println, sys};

ulib::entry!(main);

/// Heap size in bytes: room for every block of a round.
const HEAP_SIZE: u64 = 128 * 1024;
/// Blocks per round.
const BLOCKS: usize = 64;
/// Rounds: 20,480 allocations and as many frees.
const ROUNDS: u64 = 320;

fn main() -> i64 {
    let _ = sys::register_program_name("allocbench");
    let heap = match sys::allocate_memory(sysabi::ALL_OR_SELF, HEAP_SIZE, 0, -1, -1) {
        Ok(ids) => ids.heap_id,
        Err(e) => {
            println!("allocbench: allocate_memory failed: {}", e.name());
            return 1;
        }
    };
    let start = sys::uptime().unwrap_or(0);
    let mut blocks = [0u64; BLOCKS];
    let mut failures = 0u64;
    for round in 0..ROUNDS {
        for (i, slot) in blocks.iter_mut().enumerate() {
            let size = 16 + ((round * 7 + i as u64 * 13) % 64) * 16;
            match sys::heap_alloc(heap, size, i as u64 % 8) {
                Ok(addr) => *slot = addr,
                Err(_) => failures += 1,
            }
        }
        for slot in blocks.iter_mut() {
            if *slot != 0 && sys::heap_free(heap, *slot).is_err() {
                failures += 1;
            }
            *slot = 0;
        }
    }
    let us = sys::uptime().unwrap_or(0).saturating_sub(start);
    println!(
        "allocbench: {} pairs in {us} us, {failures} failures",
        ROUNDS * BLOCKS as u64
    );
    0
}
