//! A well-behaved program: one heap, blocks allocated under keys, written,
//! read back and freed every round, a short sleep between rounds, forever.
//! It never leaks, so its heap returns to empty after every round.
#![no_std]
#![no_main]

use ulib::rand::Rng;
use ulib::{println, sys};

ulib::entry!(main);

/// Heap size in bytes.
const HEAP_SIZE: u64 = 64 * 1024;
/// Blocks live at once, at most.
const MAX_BLOCKS: usize = 24;
/// Milliseconds between rounds.
const SLEEP_MS: u64 = 50;
/// Rounds between two status lines.
const REPORT_EVERY: u64 = 100;

fn main() -> i64 {
    let _ = sys::register_program_name("worker");
    let heap = match sys::allocate_memory(sysabi::ALL_OR_SELF, HEAP_SIZE, 0, -1, -1) {
        Ok(ids) => ids.heap_id,
        Err(e) => {
            println!("worker: allocate_memory failed: {}", e.name());
            return 1;
        }
    };
    println!("worker: heap={heap} size={HEAP_SIZE}");
    let mut rng = Rng::from_entropy();
    let mut blocks = [(0u64, 0u64); MAX_BLOCKS];
    let mut failures = 0u64;
    for round in 1u64.. {
        let count = rng.range(4, MAX_BLOCKS as u64) as usize;
        let mut live = 0;
        for (i, slot) in blocks.iter_mut().take(count).enumerate() {
            let size = rng.range(16, 2048);
            let key = (round + i as u64) % 16 + 1;
            match sys::heap_alloc(heap, size, key) {
                Ok(addr) => {
                    let pattern = [key as u8; 16];
                    if sys::heap_write(heap, addr, &pattern).is_err() {
                        failures += 1;
                    }
                    *slot = (addr, key);
                    live += 1;
                }
                Err(_) => failures += 1,
            }
        }
        for &(addr, key) in &blocks[..live] {
            let mut back = [0u8; 16];
            if sys::heap_read(heap, addr, &mut back) != Ok(16) || back != [key as u8; 16] {
                failures += 1;
            }
            if sys::heap_free(heap, addr).is_err() {
                failures += 1;
            }
        }
        if round.is_multiple_of(REPORT_EVERY) {
            println!("worker: round={round} failures={failures}");
        }
        let _ = sys::sleep_ms(SLEEP_MS);
    }
    0
}
