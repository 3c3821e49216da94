//! Fragments its heap on purpose: fills it with small blocks, frees every
//! other one, then asks for larger blocks that only fit if free space is
//! coalesced or found between the survivors; holds that state for a while,
//! frees everything, and starts again.
#![no_std]
#![no_main]

use ulib::{println, sys};

ulib::entry!(main);

/// Heap size in bytes.
const HEAP_SIZE: u64 = 64 * 1024;
/// Size of a small block.
const SMALL: u64 = 64;
/// Small blocks per round: about three quarters of the heap, so that the
/// larger sizes that fit in the rest succeed and the largest fails.
const MAX_SMALL: usize = 512;
/// Larger sizes tried once the heap is fragmented.
const LARGE: [u64; 5] = [128, 512, 1024, 4096, 16384];
/// Milliseconds the fragmented heap is kept for observers.
const HOLD_MS: u64 = 500;
/// Milliseconds between rounds.
const SLEEP_MS: u64 = 200;
/// Rounds between two status lines.
const REPORT_EVERY: u64 = 10;

fn main() -> i64 {
    let _ = sys::register_program_name("fragmenter");
    let heap = match sys::allocate_memory(sysabi::ALL_OR_SELF, HEAP_SIZE, 0, -1, -1) {
        Ok(ids) => ids.heap_id,
        Err(e) => {
            println!("fragmenter: allocate_memory failed: {}", e.name());
            return 1;
        }
    };
    let mut small = [0u64; MAX_SMALL];
    let mut large = [0u64; LARGE.len()];
    for round in 1u64.. {
        // Small blocks until the heap is full (or the table is).
        let mut nr_small = 0;
        while nr_small < MAX_SMALL {
            match sys::heap_alloc(heap, SMALL, 1) {
                Ok(addr) => {
                    small[nr_small] = addr;
                    nr_small += 1;
                }
                Err(_) => break,
            }
        }
        // Every other one freed: the heap is now a comb of 64-byte holes.
        for addr in small[..nr_small].iter_mut().step_by(2) {
            let _ = sys::heap_free(heap, *addr);
            *addr = 0;
        }
        let mut large_ok = 0;
        let mut large_failed = 0;
        for (slot, &size) in large.iter_mut().zip(&LARGE) {
            match sys::heap_alloc(heap, size, 2) {
                Ok(addr) => {
                    *slot = addr;
                    large_ok += 1;
                }
                Err(_) => {
                    *slot = 0;
                    large_failed += 1;
                }
            }
        }
        if round == 1 || round.is_multiple_of(REPORT_EVERY) {
            println!(
                "fragmenter: round={round} small={nr_small} large_ok={large_ok} large_failed={large_failed}"
            );
        }
        let _ = sys::sleep_ms(HOLD_MS);
        for &addr in small[..nr_small].iter().chain(&large) {
            if addr != 0 {
                let _ = sys::heap_free(heap, addr);
            }
        }
        let _ = sys::sleep_ms(SLEEP_MS);
    }
    0
}
