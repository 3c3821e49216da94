//! QEMU's `isa-debug-exit` device: lets the kernel end the emulator with a
//! status a test can check. QEMU exits with `(value << 1) | 1`.

use x86_64::instructions::port::Port;

/// I/O port of `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
const DEBUG_EXIT_PORT: u16 = 0xf4;

/// The outcome the kernel reports to QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU exits with status 33.
    Success = 0x10,
    /// QEMU exits with status 35.
    Failure = 0x11,
}

/// Ends QEMU with `code`; if there is no exit device, halts instead.
pub fn exit(code: ExitCode) -> ! {
    let mut port = Port::<u32>::new(DEBUG_EXIT_PORT);
    // SAFETY: writing to 0xf4 has no effect on a machine without the exit
    // device; with it, QEMU terminates here.
    unsafe { port.write(code as u32) };
    super::cpu::halt_forever()
}

/// Port of QEMU's debug console (`-debugcon`), a write-only byte sink.
const DEBUGCON_PORT: u16 = 0xe9;

/// Writes bytes to QEMU's debug console; a no-op without one.
pub fn debugcon_write(bytes: &[u8]) {
    let mut port = Port::<u8>::new(DEBUGCON_PORT);
    for &b in bytes {
        // SAFETY: port 0xe9 is QEMU's debug console or unused; writing to it
        // touches no memory.
        unsafe { port.write(b) };
    }
}
