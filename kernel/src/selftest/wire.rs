//! `selftest=wire`: what one memory event costs the kernel, in TSC cycles
//! around the emit path (counting, encoding into the open batch, and the
//! batch's flush to the ring when it fills), median and 99th percentile,
//! logged for the bench. The events are synthetic kernel-heap allocations
//! and frees of heap 99 (no real heap), sent like any other.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::ptr::NonNull;

use crate::arch::cpu;
use crate::memory::events;
use crate::telemetry;

/// Events timed.
const EVENTS: usize = 20_000;
/// Events between two drains of the ring, so that none is dropped for
/// want of room (a drop is cheaper than a send and would flatter the
/// figure).
const CHUNK: usize = 1_000;

/// Times `EVENTS` emits; logs the median and 99th percentile.
pub fn run() {
    let mut cycles: Vec<u64> = Vec::with_capacity(EVENTS);
    let base = 0xffff_8000_0100_0000usize;
    let caller = run as fn() as usize as u64;
    for chunk in 0..EVENTS / CHUNK {
        telemetry::drain();
        for i in 0..CHUNK {
            let n = chunk * CHUNK + i;
            let addr = base + (n % 64) * 64;
            let ptr = NonNull::new(addr as *mut u8).expect("nonzero");
            let t0 = cpu::rdtsc();
            if n.is_multiple_of(2) {
                events::heap_alloc(0, 99, ptr, 48, 16, caller, caller);
            } else {
                events::heap_free(0, 99, ptr, 48, caller);
            }
            cycles.push(cpu::rdtsc().wrapping_sub(t0));
        }
    }
    telemetry::drain();
    cycles.sort_unstable();
    let median = cycles[EVENTS / 2];
    let p99 = cycles[EVENTS * 99 / 100];
    kinfo!(
        "wire: emit cycles median {median} p99 {p99} over {EVENTS} events (memevents {})",
        if events::sends(probe_proto::names::event_class::HEAP) {
            "on"
        } else {
            "off"
        }
    );
}
