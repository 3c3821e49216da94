//! Uptime, counted by the periodic timer interrupt.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

/// Timer interrupts per second.
pub const TIMER_HZ: u32 = 1000;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Microseconds since the timer started.
pub fn uptime_us() -> u64 {
    TICKS.load(Ordering::Relaxed) * (1_000_000 / TIMER_HZ as u64)
}
