//! The system-call instructions: `int 0x80` with the number in `rax`, the
//! arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`, the result in `rax`
//! (negative: `-errno`). The kernel preserves every other register.
//!
//! These are `unsafe`: with pointer arguments the kernel writes wherever it
//! is told to in this process's memory. [`sys`](crate::sys) wraps each call
//! safely.

use core::arch::asm;

/// Defines `$name(nr, args...)`: `int 0x80` with `nr` in `rax` and each
/// argument in its register.
macro_rules! syscall {
    ($(#[$doc:meta])* $name:ident($($arg:ident in $reg:tt),*)) => {
        $(#[$doc])*
        ///
        /// # Safety
        ///
        /// The call must not write memory the program still uses for
        /// something else, nor unmap it (see the module docs).
        #[inline(always)]
        pub unsafe fn $name(nr: u64 $(, $arg: u64)*) -> i64 {
            let ret: i64;
            // SAFETY: the caller vouches for the call's effect on memory.
            // `int 0x80` switches to the kernel stack, so the user stack is
            // not touched, and the kernel preserves every register but `rax`.
            unsafe {
                asm!(
                    "int 0x80",
                    inlateout("rax") nr as i64 => ret,
                    $(in($reg) $arg,)*
                    options(nostack),
                );
            }
            ret
        }
    };
}

syscall!(
    /// Calls `nr` with no arguments.
    syscall0()
);
syscall!(
    /// Calls `nr` with one argument.
    syscall1(a1 in "rdi")
);
syscall!(
    /// Calls `nr` with two arguments.
    syscall2(a1 in "rdi", a2 in "rsi")
);
syscall!(
    /// Calls `nr` with three arguments.
    syscall3(a1 in "rdi", a2 in "rsi", a3 in "rdx")
);
syscall!(
    /// Calls `nr` with four arguments.
    syscall4(a1 in "rdi", a2 in "rsi", a3 in "rdx", a4 in "r10")
);
syscall!(
    /// Calls `nr` with five arguments.
    syscall5(a1 in "rdi", a2 in "rsi", a3 in "rdx", a4 in "r10", a5 in "r8")
);
syscall!(
    /// Calls `nr` with six arguments.
    syscall6(a1 in "rdi", a2 in "rsi", a3 in "rdx", a4 in "r10", a5 in "r8", a6 in "r9")
);
