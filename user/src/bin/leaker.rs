//! A program with a leak: it allocates blocks under keys 1 to 5 and frees
//! them all but every 7th block of key 3, then exits, so the kernel reports
//! exactly those blocks as leaked. Which blocks leak is deterministic.
#![no_std]
#![no_main]

use ulib::{println, sys};

ulib::entry!(main);

/// Heap size in bytes.
const HEAP_SIZE: u64 = 64 * 1024;
/// Keys 1..=NR_KEYS.
const NR_KEYS: u64 = 5;
/// Blocks per key per round.
const BLOCKS_PER_KEY: usize = 10;
/// Rounds before exiting.
const ROUNDS: u64 = 5;
/// The key whose blocks leak.
const LEAKY_KEY: u64 = 3;
/// Every `LEAK_EVERY`th block of the leaky key (counted over all rounds,
/// from 0) is never freed.
const LEAK_EVERY: u64 = 7;
/// Milliseconds between rounds.
const SLEEP_MS: u64 = 100;

/// Block size of `key`: 32 bytes per key step.
const fn block_size(key: u64) -> u64 {
    32 * key
}

fn main() -> i64 {
    let _ = sys::register_program_name("leaker");
    let heap = match sys::allocate_memory(sysabi::ALL_OR_SELF, HEAP_SIZE, 0, -1, -1) {
        Ok(ids) => ids.heap_id,
        Err(e) => {
            println!("leaker: allocate_memory failed: {}", e.name());
            return 1;
        }
    };
    let mut leaky_index = 0u64;
    let mut leaked = 0u64;
    let mut leaked_bytes = 0u64;
    for round in 1..=ROUNDS {
        for key in 1..=NR_KEYS {
            let mut blocks = [0u64; BLOCKS_PER_KEY];
            for block in &mut blocks {
                *block = match sys::heap_alloc(heap, block_size(key), key) {
                    Ok(addr) => addr,
                    Err(e) => {
                        println!("leaker: heap_alloc key={key} failed: {}", e.name());
                        return 1;
                    }
                };
            }
            for &addr in &blocks {
                if key == LEAKY_KEY {
                    let index = leaky_index;
                    leaky_index += 1;
                    if index.is_multiple_of(LEAK_EVERY) {
                        println!(
                            "leaker: leaking key={key} addr={addr:#x} size={}",
                            block_size(key)
                        );
                        leaked += 1;
                        leaked_bytes += block_size(key);
                        continue;
                    }
                }
                if let Err(e) = sys::heap_free(heap, addr) {
                    println!("leaker: heap_free {addr:#x} failed: {}", e.name());
                }
            }
        }
        println!("leaker: round={round} leaked_so_far={leaked}");
        let _ = sys::sleep_ms(SLEEP_MS);
    }
    println!("leaker: leaked keys={LEAKY_KEY} count={leaked} bytes={leaked_bytes}");
    0
}
