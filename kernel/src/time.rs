//! Uptime: read from the time-stamp counter, calibrated against the PIT at
//! boot (before the first `Hello`, which carries its rate), so events
//! inside one millisecond get distinct, ordered microseconds. Before that,
//! and should calibration not have run, the periodic timer's count.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::cpu;
use crate::arch::x86_64::pit;

/// Timer interrupts per second.
pub const TIMER_HZ: u32 = 1000;

/// Milliseconds of PIT counting one calibration run measures the TSC over.
const CALIBRATION_MS: u32 = 10;
/// Runs of the calibration, the lowest counting.
const CALIBRATION_RUNS: usize = 3;

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

/// Measures the TSC's rate against the PIT (counts of its channel 2,
/// polled, so neither interrupts nor a busy host's late ticks enter into
/// it) and switches [`uptime_us`] to the TSC, continuing from where the
/// timer's count was. Its rate, in Hz.
pub fn calibrate() -> u64 {
    // A measurement can only come out high (the end noticed late, when
    // the CPU did not run): the lowest of a few is the closest.
    let hz = (0..CALIBRATION_RUNS)
        .map(|_| pit::measure_tsc_hz(CALIBRATION_MS))
        .min()
        .unwrap_or(0)
        .max(1000);
    let per_ms = hz / 1000;
    US_BASE.store(ticks_us(), Ordering::Relaxed);
    TSC_BASE.store(cpu::rdtsc(), Ordering::Relaxed);
    TSC_PER_MS.store(per_ms, Ordering::Relaxed);
    per_ms * 1000
}
