//! Trap entry: one assembly stub per vector pushes a uniform [`TrapFrame`]
//! and calls [`trap_dispatch`], which routes exceptions and IRQs to the
//! [`TrapHandlers`] the kernel registered at boot.
//!
//! Stubs for vectors without a CPU error code push a zero in its place, so
//! every frame has the same layout; the frame is what a debugger sees and
//! what `iretq` resumes, so handlers may edit it.

use core::arch::global_asm;

use spin::Once;

use super::pic;

/// Vectors with an entry stub: the 32 exceptions and 16 PIC IRQs.
pub const NR_STUBS: usize = 48;
pub use probe_proto::names::vector::{BREAKPOINT, DEBUG, DOUBLE_FAULT, PAGE_FAULT};
/// `int 0x80`: a system call from ring 3.
pub const SYSCALL: u8 = sysabi::SYSCALL_VECTOR;

/// RFLAGS trap flag: a #DB after the next instruction (single-step).
pub const RFLAGS_TF: u64 = 1 << 8;
/// RFLAGS interrupt-enable flag.
pub const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS resume flag: suppresses instruction breakpoints for one
/// instruction, so resuming at a hardware breakpoint does not re-fire it.
pub const RFLAGS_RF: u64 = 1 << 16;

/// Registers saved on trap entry, lowest address first.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub struct TrapFrame {
    /// Saved `r15`.
    pub r15: u64,
    /// Saved `r14`.
    pub r14: u64,
    /// Saved `r13`.
    pub r13: u64,
    /// Saved `r12`.
    pub r12: u64,
    /// Saved `r11`.
    pub r11: u64,
    /// Saved `r10`.
    pub r10: u64,
    /// Saved `r9`.
    pub r9: u64,
    /// Saved `r8`.
    pub r8: u64,
    /// Saved `rbp`.
    pub rbp: u64,
    /// Saved `rdi`.
    pub rdi: u64,
    /// Saved `rsi`.
    pub rsi: u64,
    /// Saved `rdx`.
    pub rdx: u64,
    /// Saved `rcx`.
    pub rcx: u64,
    /// Saved `rbx`.
    pub rbx: u64,
    /// Saved `rax`.
    pub rax: u64,
    /// Interrupt vector.
    pub vector: u64,
    /// CPU error code, or 0 for vectors without one.
    pub error_code: u64,
    /// Saved `rip`.
    pub rip: u64,
    /// Saved `cs`.
    pub cs: u64,
    /// Saved `rflags`.
    pub rflags: u64,
    /// Saved `rsp`.
    pub rsp: u64,
    /// Saved `ss`.
    pub ss: u64,
}

/// Bytes of a [`TrapFrame`].
pub const TRAP_FRAME_BYTES: usize = size_of::<TrapFrame>();

impl TrapFrame {
    /// Whether the trap came from ring 3.
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The frame as the bytes it occupies on a stack, to be filled from
    /// memory read elsewhere (the debugger reading a sleeping process's
    /// frame).
    pub fn as_bytes_mut(&mut self) -> &mut [u8; TRAP_FRAME_BYTES] {
        // SAFETY: `TrapFrame` is `repr(C)` with only `u64` fields, so it
        // has no padding and every byte pattern is a valid value; the
        // array has its exact size and borrows it exclusively.
        unsafe { &mut *(self as *mut Self).cast::<[u8; TRAP_FRAME_BYTES]>() }
    }

    /// The frame as the bytes it occupies on a stack.
    pub fn as_bytes(&self) -> &[u8; TRAP_FRAME_BYTES] {
        // SAFETY: as in `as_bytes_mut`, shared instead of exclusive.
        unsafe { &*(self as *const Self).cast::<[u8; TRAP_FRAME_BYTES]>() }
    }
}

global_asm!(
    r#"
    .section .text.trap, "ax"
    .balign 16
    trap_common:
        push %rax
        push %rbx
        push %rcx
        push %rdx
        push %rsi
        push %rdi
        push %rbp
        push %r8
        push %r9
        push %r10
        push %r11
        push %r12
        push %r13
        push %r14
        push %r15
        mov %rsp, %rdi
        cld
        call trap_dispatch
    .global trap_return
    trap_return:
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %r11
        pop %r10
        pop %r9
        pop %r8
        pop %rbp
        pop %rdi
        pop %rsi
        pop %rdx
        pop %rcx
        pop %rbx
        pop %rax
        add $16, %rsp
        iretq

    .global trap_stub_syscall
    trap_stub_syscall:
        push $0
        push $0x80
        jmp trap_common
    trap_stub_0:
        push $0
        push $0
        jmp trap_common
    trap_stub_1:
        push $0
        push $1
        jmp trap_common
    trap_stub_2:
        push $0
        push $2
        jmp trap_common
    trap_stub_3:
        push $0
        push $3
        jmp trap_common
    trap_stub_4:
        push $0
        push $4
        jmp trap_common
    trap_stub_5:
        push $0
        push $5
        jmp trap_common
    trap_stub_6:
        push $0
        push $6
        jmp trap_common
    trap_stub_7:
        push $0
        push $7
        jmp trap_common
    trap_stub_8:
        push $8
        jmp trap_common
    trap_stub_9:
        push $0
        push $9
        jmp trap_common
    trap_stub_10:
        push $10
        jmp trap_common
    trap_stub_11:
        push $11
        jmp trap_common
    trap_stub_12:
        push $12
        jmp trap_common
    trap_stub_13:
        push $13
        jmp trap_common
    trap_stub_14:
        push $14
        jmp trap_common
    trap_stub_15:
        push $0
        push $15
        jmp trap_common
    trap_stub_16:
        push $0
        push $16
        jmp trap_common
    trap_stub_17:
        push $17
        jmp trap_common
    trap_stub_18:
        push $0
        push $18
        jmp trap_common
    trap_stub_19:
        push $0
        push $19
        jmp trap_common
    trap_stub_20:
        push $0
        push $20
        jmp trap_common
    trap_stub_21:
        push $21
        jmp trap_common
    trap_stub_22:
        push $0
        push $22
        jmp trap_common
    trap_stub_23:
        push $0
        push $23
        jmp trap_common
    trap_stub_24:
        push $0
        push $24
        jmp trap_common
    trap_stub_25:
        push $0
        push $25
        jmp trap_common
    trap_stub_26:
        push $0
        push $26
        jmp trap_common
    trap_stub_27:
        push $0
        push $27
        jmp trap_common
    trap_stub_28:
        push $0
        push $28
        jmp trap_common
    trap_stub_29:
        push $29
        jmp trap_common
    trap_stub_30:
        push $30
        jmp trap_common
    trap_stub_31:
        push $0
        push $31
        jmp trap_common
    trap_stub_32:
        push $0
        push $32
        jmp trap_common
    trap_stub_33:
        push $0
        push $33
        jmp trap_common
    trap_stub_34:
        push $0
        push $34
        jmp trap_common
    trap_stub_35:
        push $0
        push $35
        jmp trap_common
    trap_stub_36:
        push $0
        push $36
        jmp trap_common
    trap_stub_37:
        push $0
        push $37
        jmp trap_common
    trap_stub_38:
        push $0
        push $38
        jmp trap_common
    trap_stub_39:
        push $0
        push $39
        jmp trap_common
    trap_stub_40:
        push $0
        push $40
        jmp trap_common
    trap_stub_41:
        push $0
        push $41
        jmp trap_common
    trap_stub_42:
        push $0
        push $42
        jmp trap_common
    trap_stub_43:
        push $0
        push $43
        jmp trap_common
    trap_stub_44:
        push $0
        push $44
        jmp trap_common
    trap_stub_45:
        push $0
        push $45
        jmp trap_common
    trap_stub_46:
        push $0
        push $46
        jmp trap_common
    trap_stub_47:
        push $0
        push $47
        jmp trap_common

    .section .rodata.trap_stub_table, "a"
    .balign 8
    .global trap_stub_table
    trap_stub_table:
        .quad trap_stub_0
        .quad trap_stub_1
        .quad trap_stub_2
        .quad trap_stub_3
        .quad trap_stub_4
        .quad trap_stub_5
        .quad trap_stub_6
        .quad trap_stub_7
        .quad trap_stub_8
        .quad trap_stub_9
        .quad trap_stub_10
        .quad trap_stub_11
        .quad trap_stub_12
        .quad trap_stub_13
        .quad trap_stub_14
        .quad trap_stub_15
        .quad trap_stub_16
        .quad trap_stub_17
        .quad trap_stub_18
        .quad trap_stub_19
        .quad trap_stub_20
        .quad trap_stub_21
        .quad trap_stub_22
        .quad trap_stub_23
        .quad trap_stub_24
        .quad trap_stub_25
        .quad trap_stub_26
        .quad trap_stub_27
        .quad trap_stub_28
        .quad trap_stub_29
        .quad trap_stub_30
        .quad trap_stub_31
        .quad trap_stub_32
        .quad trap_stub_33
        .quad trap_stub_34
        .quad trap_stub_35
        .quad trap_stub_36
        .quad trap_stub_37
        .quad trap_stub_38
        .quad trap_stub_39
        .quad trap_stub_40
        .quad trap_stub_41
        .quad trap_stub_42
        .quad trap_stub_43
        .quad trap_stub_44
        .quad trap_stub_45
        .quad trap_stub_46
        .quad trap_stub_47
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// Addresses of the entry stubs, indexed by vector.
    static trap_stub_table: [u64; NR_STUBS];
    /// Entry stub of the system-call vector.
    fn trap_stub_syscall();
    /// The second half of `trap_common`: restores a [`TrapFrame`] from the
    /// stack and `iretq`s. A new task's first switch returns here.
    fn trap_return();
}

/// Address of the system-call entry stub.
pub fn syscall_stub_address() -> u64 {
    trap_stub_syscall as *const () as u64
}

/// Address of the trap-return path, where a new task starts.
pub fn trap_return_address() -> u64 {
    trap_return as *const () as u64
}

/// Address of the entry stub of `vector` (< [`NR_STUBS`]).
pub fn stub_address(vector: usize) -> u64 {
    // SAFETY: the table is immutable data emitted by the assembly above with
    // exactly NR_STUBS entries.
    unsafe { trap_stub_table[vector] }
}

/// What the kernel does with a trap, registered once at boot with
/// [`register_handlers`]: `arch` saves the frame and routes it here, and
/// knows nothing of the policy behind these functions.
#[derive(Clone, Copy)]
pub struct TrapHandlers {
    /// `int 0x80` from ring 3.
    pub syscall: fn(&mut TrapFrame),
    /// A CPU exception (vectors 0 to 31).
    pub exception: fn(&mut TrapFrame),
    /// A hardware interrupt (`irq` 0 to 15), before its end of interrupt.
    pub irq: fn(irq: u8, &mut TrapFrame),
    /// The timer interrupt, after its end of interrupt: a task switch here
    /// may not come back soon, so the controller must already be free.
    pub timer_after_eoi: fn(&mut TrapFrame),
}

static HANDLERS: Once<TrapHandlers> = Once::new();

/// Installs the kernel's trap handlers; only the first call counts. Until
/// then an exception halts the machine and interrupts are ignored.
pub fn register_handlers(handlers: TrapHandlers) {
    HANDLERS.call_once(|| handlers);
}

/// Called by `trap_common` with interrupts off and the frame on the stack.
#[unsafe(no_mangle)]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let Some(handlers) = HANDLERS.get() else {
        if frame.vector < u64::from(pic::IRQ_BASE) {
            // A fault before the kernel could say what to do with it.
            super::qemu::exit(super::qemu::ExitCode::Failure);
        }
        return;
    };
    let vector = frame.vector as u8;
    if vector == SYSCALL {
        (handlers.syscall)(frame);
        return;
    }
    if vector < pic::IRQ_BASE {
        (handlers.exception)(frame);
        return;
    }
    let irq = vector - pic::IRQ_BASE;
    (handlers.irq)(irq, frame);
    pic::end_of_interrupt(irq);
    if irq == pic::IRQ_TIMER {
        (handlers.timer_after_eoi)(frame);
    }
}
