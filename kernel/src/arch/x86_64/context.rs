//! Switching the CPU from one task's kernel stack to another's.
//!
//! A task that is not running is a kernel stack whose top holds what
//! [`switch_stack`] pushed: the callee-saved registers and a return address.
//! A new task's stack is built to look the same, with [`trap_return`] as the
//! return address and a [`TrapFrame`] above it, so its first switch "returns"
//! into ring 3 through the normal trap exit.
//!
//! [`trap_return`]: super::trap::trap_return_address

use core::arch::global_asm;

use super::trap::{self, TrapFrame};

global_asm!(
    r#"
    .section .text.switch_stack, "ax"
    .global switch_stack
    switch_stack:
        push %rbp
        push %rbx
        push %r12
        push %r13
        push %r14
        push %r15
        mov %rsp, (%rdi)
        mov %rsi, %rsp
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbx
        pop %rbp
        ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    #[link_name = "switch_stack"]
    fn switch_stack_raw(save_rsp: *mut u64, new_rsp: u64);
}

/// Registers [`switch_stack`] saves below its return address.
const SAVED_REGISTERS: usize = 6;

/// What [`switch_stack`] left at a switched-away task's saved stack
/// pointer, lowest address first: the callee-saved registers, then the
/// address the task resumes at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct SwitchFrame {
    /// Saved `r15`.
    pub r15: u64,
    /// Saved `r14`.
    pub r14: u64,
    /// Saved `r13`.
    pub r13: u64,
    /// Saved `r12`.
    pub r12: u64,
    /// Saved `rbx`.
    pub rbx: u64,
    /// Saved `rbp`.
    pub rbp: u64,
    /// Where the task continues when switched back to.
    pub rip: u64,
}

impl SwitchFrame {
    /// Bytes of the frame on the stack.
    pub const SIZE: usize = (SAVED_REGISTERS + 1) * 8;

    /// The frame from its bytes as they lie on the stack.
    pub fn from_bytes(bytes: &[u8; Self::SIZE]) -> Self {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        Self {
            r15: word(0),
            r14: word(1),
            r13: word(2),
            r12: word(3),
            rbx: word(4),
            rbp: word(5),
            rip: word(6),
        }
    }

    /// The task's stack pointer once the switch back has returned.
    pub fn rsp_after(saved_rsp: u64) -> u64 {
        saved_rsp + Self::SIZE as u64
    }
}

/// Where the [`TrapFrame`] of a task's entry from ring 3 lies on its kernel
/// stack whose top is `top`: the CPU pushes it from the 16-byte-aligned
/// TSS stack pointer down, and [`new_task_stack`] lays a new task's first
/// frame at the same place.
pub fn user_frame_at(top: u64) -> u64 {
    // A frame whose size is a multiple of 16 ends exactly at `top` both
    // ways.
    const { assert!(size_of::<TrapFrame>().is_multiple_of(16)) };
    (top - size_of::<TrapFrame>() as u64) & !0xf
}

/// Saves the running task's stack pointer in `*save_rsp` and continues the
/// task whose saved stack pointer is `new_rsp`; returns when some later
/// switch comes back to `*save_rsp`.
///
/// # Safety
///
/// Interrupts are off; `save_rsp` is valid for a write and stays valid until
/// the switch back; `new_rsp` is a stack pointer saved by this function or
/// made by [`new_task_stack`], on a stack that is mapped and not in use.
pub unsafe fn switch_stack(save_rsp: *mut u64, new_rsp: u64) {
    // SAFETY: the caller's contract is the assembly's.
    unsafe { switch_stack_raw(save_rsp, new_rsp) }
}

/// Lays out a new task's kernel stack, whose top is `top`, so that switching
/// to it enters `frame` through the trap exit; returns the stack pointer to
/// switch to.
///
/// # Safety
///
/// `[top - 4096, top)` is mapped, writable and used by nothing else.
pub unsafe fn new_task_stack(top: u64, frame: &TrapFrame) -> u64 {
    let frame_at = user_frame_at(top);
    let ret_at = frame_at - 8;
    let rsp = ret_at - (SAVED_REGISTERS as u64) * 8;
    // SAFETY: all three writes fall in the top page of the stack, which the
    // caller guarantees is ours; the addresses are 8-byte aligned.
    unsafe {
        (frame_at as *mut TrapFrame).write(*frame);
        (ret_at as *mut u64).write(trap::trap_return_address());
        core::ptr::write_bytes(rsp as *mut u64, 0, SAVED_REGISTERS);
    }
    rsp
}
