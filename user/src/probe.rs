//! Single loads and stores at arbitrary addresses, in assembly, for the
//! programs whose job is to fault: the compiler can neither reorder them
//! nor, as it may for a null or out-of-bounds Rust access, turn them into
//! something else.

use core::arch::asm;

/// Loads the `u64` at `addr`.
///
/// # Safety
///
/// `addr` must be readable, or the program must expect the kernel to kill
/// it for the access.
pub unsafe fn read_u64(addr: u64) -> u64 {
    let value: u64;
    // SAFETY: the caller accepts the access and its consequence; the
    // instruction touches nothing but `addr` and `value`'s register.
    unsafe {
        asm!("mov {value}, qword ptr [{addr}]", addr = in(reg) addr, value = lateout(reg) value,
             options(nostack, readonly));
    }
    value
}

/// Stores `value` at `addr`.
///
/// # Safety
///
/// `addr` must be writable memory the program does not otherwise use, or
/// the program must expect the kernel to kill it for the access.
pub unsafe fn write_u64(addr: u64, value: u64) {
    // SAFETY: the caller accepts the access and its consequence.
    unsafe {
        asm!("mov qword ptr [{addr}], {value}", addr = in(reg) addr, value = in(reg) value,
             options(nostack));
    }
}
