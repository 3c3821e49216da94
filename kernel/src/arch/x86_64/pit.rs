//! The 8254 programmable interval timer, channel 0, as the periodic tick.

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
