//! Small safe wrappers over privileged CPU instructions and registers.

use core::arch::asm;

/// Enables maskable interrupts.
pub fn enable_interrupts() {
    x86_64::instructions::interrupts::enable();
}

/// Runs `f` with maskable interrupts disabled, restoring the previous state.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    x86_64::instructions::interrupts::without_interrupts(f)
}

/// Waits for the next interrupt with interrupts enabled, atomically, so a
/// wake-up cannot slip between the check and the halt.
pub fn enable_interrupts_and_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Stops this CPU for good.
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The faulting linear address of the last page fault.
pub fn read_cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Removes the boot stub's identity map (PML4 slot 0) so that low virtual
/// addresses, page 0 above all, fault.
pub fn drop_identity_map() {
    let (frame, _) = x86_64::registers::control::Cr3::read();
    let pml4 = (super::PHYS_OFFSET + frame.start_address().as_u64()) as *mut u64;
    // SAFETY:
    // 1. CR3 holds the boot PML4, whose frame is mapped at PHYS_OFFSET;
    // 2. entry 0 is the identity map, which no code or data in use lies in
    //    any more: the kernel runs in the higher half on a higher-half stack;
    // 3. the CR3 reload below flushes every non-global translation.
    unsafe {
        pml4.write_volatile(0);
        let (frame, flags) = x86_64::registers::control::Cr3::read();
        x86_64::registers::control::Cr3::write(frame, flags);
    }
}

/// Reads the time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads a counter; it has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Executes `int3`, entering the breakpoint handler.
pub fn breakpoint() {
    // SAFETY: int3 traps to our IDT's breakpoint handler and returns.
    unsafe { asm!("int3", options(nomem, nostack)) };
}
