//! Recurses 50 frames deep with 4 KiB of locals each (about 200 KiB of
//! stack), so the kernel must grow the stack on demand; prints
//! `stacktest: depth=50 ok` and exits 0.
#![no_std]
#![no_main]

use core::hint::black_box;

use ulib::{println, sys};

ulib::entry!(main);

/// Frames to recurse through.
const DEPTH: usize = 50;
/// Bytes of locals per frame.
const FRAME_BYTES: usize = 4096;

/// Fills a 4 KiB local with `depth`, recurses, then checks the local was
/// untouched by the deeper frames; answers the sum of every frame's bytes.
#[inline(never)]
fn recurse(depth: usize) -> u64 {
    let mut frame = [0u8; FRAME_BYTES];
    frame.fill(depth as u8);
    let frame = black_box(&mut frame);
    let deeper = if depth < DEPTH { recurse(depth + 1) } else { 0 };
    assert!(
        frame.iter().all(|&b| b == depth as u8),
        "frame {depth} was overwritten"
    );
    deeper + frame.iter().map(|&b| u64::from(b)).sum::<u64>()
}

fn main() -> i64 {
    let _ = sys::register_program_name("stacktest");
    let sum = recurse(1);
    let expected: u64 = (1..=DEPTH as u64).map(|d| d * FRAME_BYTES as u64).sum();
    if sum != expected {
        println!("stacktest: FAIL sum={sum} expected={expected}");
        return 1;
    }
    println!("stacktest: depth={DEPTH} ok");
    0
}
