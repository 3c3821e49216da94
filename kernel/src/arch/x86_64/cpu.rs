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

/// Physical address of the root page table (PML4) in CR3.
pub fn current_page_table() -> u64 {
    x86_64::registers::control::Cr3::read()
        .0
        .start_address()
        .as_u64()
}

/// Loads CR3 with the PML4 at physical address `root`, switching address
/// space and flushing every non-global translation.
///
/// # Safety
///
/// `root` is a frame-aligned PML4 whose kernel half maps the running code,
/// its stack and every kernel datum in use exactly as the current one does.
pub unsafe fn load_page_table(root: u64) {
    use x86_64::structures::paging::PhysFrame;
    let frame = PhysFrame::containing_address(x86_64::PhysAddr::new(root));
    let (_, flags) = x86_64::registers::control::Cr3::read();
    // SAFETY: the caller guarantees the new tables map the kernel as the
    // current ones do, so execution continues at the next instruction.
    unsafe { x86_64::registers::control::Cr3::write(frame, flags) };
}

/// Drops the TLB entry for the page holding `virt` (global ones included).
pub fn invalidate_page(virt: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(virt));
}

/// Turns on UMIP (user-mode instruction prevention) where the CPU has it,
/// so ring 3 cannot read the GDT's, IDT's or TSS's whereabouts with
/// `sgdt`/`sidt`/`sldt`/`str`/`smsw` (they fault instead); whether it is on.
/// QEMU's TCG offers it with `-cpu max`, not with its default `qemu64`.
pub fn enable_umip() -> bool {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // CPUID leaf 7, subleaf 0: structured extended features; ECX bit 2.
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 || core::arch::x86_64::__cpuid_count(7, 0).ecx & (1 << 2) == 0 {
        return false;
    }
    // SAFETY: UMIP only makes five instructions fault in ring 3; the kernel
    // (ring 0) does not depend on ring 3 running them.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION)) };
    true
}

/// Lets page-table entries marked GLOBAL survive CR3 reloads (CR4.PGE).
pub fn enable_global_pages() {
    use x86_64::registers::control::{Cr4, Cr4Flags};
    // SAFETY: PGE only changes which TLB entries a CR3 write drops; setting
    // it also flushes the whole TLB, so no stale entry survives the change.
    unsafe { Cr4::update(|f| f.insert(Cr4Flags::PAGE_GLOBAL)) };
}

/// The frame pointer (rbp) of the function this is inlined into.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads rbp only.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// The return address of the function this is inlined into: where its
/// caller resumes. Needs frame pointers (the kernel is built with them).
#[inline(always)]
pub fn return_address() -> u64 {
    let rbp = frame_pointer();
    // SAFETY: with frame pointers, rbp points at the saved rbp of this
    // frame, and the return address sits right above it, on our stack.
    unsafe { ((rbp + 8) as *const u64).read() }
}

/// The return address one frame further up than [`return_address`]: for
/// entry points reached through a shim (`GlobalAlloc` behind
/// `__rust_alloc`). The saved frame pointer is followed only when it points
/// up the boot stack from this frame; anywhere else the answer is 0.
#[inline(always)]
pub fn caller_return_address() -> u64 {
    let rbp = frame_pointer();
    let (bottom, top) = super::boot::boot_stack();
    if !(bottom..top - 16).contains(&rbp) {
        return 0;
    }
    // SAFETY: rbp points at this frame's saved rbp, inside the boot stack.
    let saved = unsafe { (rbp as *const u64).read() };
    if !(rbp + 16..top - 16).contains(&saved) || !saved.is_multiple_of(8) {
        return 0;
    }
    // SAFETY: `saved` lies in the boot stack above this frame, checked
    // above, so the 8 bytes after it are mapped stack memory.
    unsafe { ((saved + 8) as *const u64).read() }
}

/// The stack pointer (rsp) where this is inlined.
#[inline(always)]
pub fn stack_pointer() -> u64 {
    let rsp: u64;
    // SAFETY: reads rsp only.
    unsafe { asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags)) };
    rsp
}

/// Fills `out` with the return addresses of the frames above the function
/// this is inlined into, innermost first, by following saved frame
/// pointers; returns how many it found. `stack` is the `(bottom, top)` of
/// the stack the caller runs on: the walk stops at the first frame pointer
/// that leaves it, is misaligned or does not move up, so a frame without
/// one ends the trace early rather than reading elsewhere.
#[inline(always)]
pub fn backtrace(stack: (u64, u64), out: &mut [u64]) -> usize {
    let (bottom, top) = stack;
    let mut rbp = frame_pointer();
    let mut n = 0;
    while n < out.len() && rbp >= bottom && rbp.saturating_add(16) <= top && rbp.is_multiple_of(8) {
        // SAFETY: `rbp..rbp + 16` lies in the caller's stack, checked just
        // above, and stacks stay mapped while code runs on them.
        let (saved, ret) =
            unsafe { ((rbp as *const u64).read(), ((rbp + 8) as *const u64).read()) };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if saved <= rbp {
            break;
        }
        rbp = saved;
    }
    n
}

/// The callee-saved registers (rbx, rbp, r12..r15) as they are where this
/// is inlined: for a scan that must see pointers a caller keeps only in a
/// register.
#[inline(always)]
pub fn callee_saved_registers() -> [u64; 6] {
    let mut regs = [0u64; 6];
    // SAFETY: stores six registers into `regs`, which is 48 bytes and
    // writable; no register or flag is changed.
    unsafe {
        asm!(
            "mov [{p}], rbx", "mov [{p} + 8], rbp", "mov [{p} + 16], r12",
            "mov [{p} + 24], r13", "mov [{p} + 32], r14", "mov [{p} + 40], r15",
            p = in(reg) regs.as_mut_ptr(),
            options(nostack, preserves_flags)
        )
    };
    regs
}

/// Runs `f` with interrupts off and supervisor write protection (CR0.WP)
/// lifted, so the kernel may write pages mapped read-only: how a read-only
/// heap's owner updates it while every other write to it faults.
pub fn with_write_protect_off<R>(f: impl FnOnce() -> R) -> R {
    use x86_64::registers::control::{Cr0, Cr0Flags};
    without_interrupts(|| {
        let before = Cr0::read();
        // SAFETY: clearing WP only lets ring 0 write read-only pages; with
        // interrupts off, nothing but `f` runs until it is restored.
        unsafe { Cr0::write(before - Cr0Flags::WRITE_PROTECT) };
        let result = f();
        // SAFETY: restores the previous value.
        unsafe { Cr0::write(before) };
        result
    })
}

/// The data segment selectors `[ds, es, fs, gs]` (the kernel never changes
/// them after boot, so they are what any trapped kernel code ran with).
pub fn data_segments() -> [u16; 4] {
    use x86_64::instructions::segmentation::{DS, ES, FS, GS, Segment};
    [
        DS::get_reg().0,
        ES::get_reg().0,
        FS::get_reg().0,
        GS::get_reg().0,
    ]
}

/// Reads DR6: why the last debug exception (#DB) fired.
pub fn read_debug_status() -> u64 {
    x86_64::registers::debug::Dr6::read_raw()
}

/// Clears DR6's sticky status bits, as a #DB handler must.
pub fn clear_debug_status() {
    // SAFETY: writing DR6 only resets the debug status bits; 0xFFFF0FF0 is
    // the architectural "nothing happened" value (reserved bits set).
    unsafe {
        asm!("mov dr6, {}", in(reg) 0xFFFF_0FF0u64, options(nomem, nostack, preserves_flags))
    };
}

/// Programs the four hardware breakpoint address registers and DR7, which
/// enables them: `addrs[i]` goes to DRi.
pub fn set_debug_registers(addrs: [u64; 4], dr7: u64) {
    use x86_64::registers::debug::{DebugAddressRegister, Dr0, Dr1, Dr2, Dr3, Dr7};
    Dr7::write_raw(0);
    Dr0::write(addrs[0]);
    Dr1::write(addrs[1]);
    Dr2::write(addrs[2]);
    Dr3::write(addrs[3]);
    Dr7::write_raw(dr7);
}
