//! The 8254 programmable interval timer: channel 0 as the periodic tick,
//! channel 2 as a one-shot stopwatch to measure the TSC against.

use x86_64::instructions::port::Port;

/// The PIT's input clock.
const PIT_HZ: u32 = 1_193_182;

/// Programs channel 0 as a rate generator firing `hz` times a second.
pub fn init(hz: u32) {
    let divisor = (PIT_HZ / hz).clamp(1, u16::MAX as u32) as u16;
    // SAFETY: ports 0x43 and 0x40 are the PIT's mode and channel-0 data
    // registers; programming them only changes the timer interrupt rate.
    unsafe {
        Port::<u8>::new(0x43).write(0x34); // channel 0, lo/hi byte, mode 2
        Port::<u8>::new(0x40).write(divisor as u8);
        Port::<u8>::new(0x40).write((divisor >> 8) as u8);
    }
}

/// Reads channel 0's current count (it counts down from the divisor once
/// per period): a clock for code that runs with interrupts off.
pub fn read_counter() -> u16 {
    // SAFETY: writing the latch command (channel 0, counter latch) to the
    // mode port and reading the two latched bytes from channel 0 has no
    // effect on the count or the interrupt rate.
    unsafe {
        Port::<u8>::new(0x43).write(0x00);
        let low = Port::<u8>::new(0x40).read();
        let high = Port::<u8>::new(0x40).read();
        u16::from_le_bytes([low, high])
    }
}

/// The time-stamp counter's rate in Hz, measured against channel 2 counting
/// down `ms` milliseconds (at most 54) once, as Linux's PIT calibration
/// does. Polling the channel's output needs no interrupt, so a late or
/// lost timer tick (a busy host delays them under emulation) cannot skew
/// it: both clocks keep running whenever the CPU does not.
pub fn measure_tsc_hz(ms: u32) -> u64 {
    let count = (PIT_HZ / 1000 * ms.clamp(1, 54)) as u16;
    // SAFETY: port 0x61 bit 0 gates channel 2 and bit 1 drives the speaker
    // (kept off); ports 0x43 and 0x42 program channel 2, which nothing
    // else uses. Reading bit 5 of port 0x61 (channel 2's output) has no
    // effect.
    unsafe {
        let mut control = Port::<u8>::new(0x61);
        let gate = control.read();
        control.write((gate & !0x02) | 0x01);
        Port::<u8>::new(0x43).write(0xB0); // channel 2, lo/hi byte, mode 0
        Port::<u8>::new(0x42).write(count as u8);
        Port::<u8>::new(0x42).write((count >> 8) as u8);
        let start = super::cpu::rdtsc();
        while control.read() & 0x20 == 0 {
            core::hint::spin_loop();
        }
        let end = super::cpu::rdtsc();
        control.write(gate);
        (end - start) * u64::from(PIT_HZ) / u64::from(count)
    }
}
