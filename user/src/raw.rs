//! The system-call instructions: `int 0x80` with the number in `rax`, the
//! arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`, the result in `rax`
//! (negative: `-errno`). The kernel preserves every other register.
//!
//! These are `unsafe`: with pointer arguments the kernel writes wherever it
//! is told to in this process's memory. [`sys`](crate::sys) wraps each call
//! safely.

use core::arch::asm;

/// Calls `nr` with no arguments.
///
/// # Safety
///
/// The call must not write memory the program still uses for something
/// else, nor unmap it (see the module docs).
#[inline(always)]
pub unsafe fn syscall0(nr: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller vouches for the call's effect on memory. `int 0x80`
    // switches to the kernel stack, so the user stack is not touched, and
    // the kernel preserves every register but `rax`.
    unsafe {
        asm!("int 0x80", inlateout("rax") nr as i64 => ret, options(nostack));
    }
    ret
}

/// Calls `nr` with one argument.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(nr: u64, a1: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!("int 0x80", inlateout("rax") nr as i64 => ret, in("rdi") a1, options(nostack));
    }
    ret
}

/// Calls `nr` with two arguments.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(nr: u64, a1: u64, a2: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            options(nostack),
        );
    }
    ret
}

/// Calls `nr` with three arguments.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(nr: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            options(nostack),
        );
    }
    ret
}

/// Calls `nr` with four arguments.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            options(nostack),
        );
    }
    ret
}

/// Calls `nr` with five arguments.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            options(nostack),
        );
    }
    ret
}

/// Calls `nr` with six arguments.
///
/// # Safety
///
/// As [`syscall0`].
#[inline(always)]
pub unsafe fn syscall6(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64) -> i64 {
    let ret: i64;
    // SAFETY: as in `syscall0`.
    unsafe {
        asm!(
            "int 0x80",
            inlateout("rax") nr as i64 => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            options(nostack),
        );
    }
    ret
}
