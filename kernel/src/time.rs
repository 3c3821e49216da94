//! Uptime: counted by the periodic timer interrupt until the time-stamp
//! counter is calibrated against it at boot, then read from the TSC, so
//! events inside one millisecond get distinct, ordered microseconds.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu;

/// Timer interrupts per second.
pub const TIMER_HZ: u32 = 1000;

/// Timer periods the calibration measures the TSC over.
const CALIBRATION_TICKS: u64 = 20;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// TSC counts per millisecond; 0 until [`calibrate`] ran.
static TSC_PER_MS: AtomicU64 = AtomicU64::new(0);
/// The TSC at the end of the calibration, and the uptime it stood for.
static TSC_BASE: AtomicU64 = AtomicU64::new(0);
static US_BASE: AtomicU64 = AtomicU64::new(0);

/// Called from the timer interrupt.
pub fn tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Microseconds since the timer started: from the TSC once calibrated
/// (it goes on while the kernel is stopped in the debugger), from the timer
/// before.
pub fn uptime_us() -> u64 {
    let per_ms = TSC_PER_MS.load(Ordering::Relaxed);
    if per_ms == 0 {
        return ticks_us();
    }
    let since = cpu::rdtsc().saturating_sub(TSC_BASE.load(Ordering::Relaxed));
    US_BASE.load(Ordering::Relaxed) + since.saturating_mul(1000) / per_ms
}

/// The time-stamp counter's rate in Hz as [`calibrate`] measured it; 0
/// before.
pub fn tsc_hz() -> u64 {
    TSC_PER_MS.load(Ordering::Relaxed) * 1000
}

fn ticks_us() -> u64 {
    TICKS.load(Ordering::Relaxed) * (1_000_000 / u64::from(TIMER_HZ))
}

/// Measures the TSC's rate over [`CALIBRATION_TICKS`] timer periods (the
/// timer must be running, interrupts on) and switches [`uptime_us`] to it,
/// continuing from where the timer's count was. Its rate, in Hz.
pub fn calibrate() -> u64 {
    let wait_tick = |after: u64| {
        while TICKS.load(Ordering::Relaxed) <= after {
            core::hint::spin_loop();
        }
    };
    let start = TICKS.load(Ordering::Relaxed);
    wait_tick(start);
    let (t0, tsc0) = (TICKS.load(Ordering::Relaxed), cpu::rdtsc());
    wait_tick(t0 + CALIBRATION_TICKS - 1);
    let (t1, tsc1) = (TICKS.load(Ordering::Relaxed), cpu::rdtsc());
    let ms = (t1 - t0) * 1000 / u64::from(TIMER_HZ);
    let per_ms = ((tsc1 - tsc0) / ms.max(1)).max(1);
    US_BASE.store(ticks_us(), Ordering::Relaxed);
    TSC_BASE.store(cpu::rdtsc(), Ordering::Relaxed);
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    per_ms * 1000
}
