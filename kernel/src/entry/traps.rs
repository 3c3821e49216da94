//! What the kernel does with each trap once `arch` has saved the frame:
//! the [`TrapHandlers`] that `kernel_main` registers at boot. This is the
//! top of the kernel, so it may call any layer; `arch` only calls it back
//! through the registered table.
#![forbid(unsafe_code)]

use core::fmt::Write;

use probe_proto::names::{PageFaultSentence, exception_name};
use probe_proto::{Exception, KernelMsg};

use crate::arch::cpu;
use crate::arch::x86_64::pic;
use crate::arch::x86_64::trap::{self, TrapFrame, TrapHandlers};
use crate::{gdb, log::LineBuf, proc, telemetry, time};

/// The kernel's trap policy, for `arch` to call.
pub const HANDLERS: TrapHandlers = TrapHandlers {
    syscall,
    exception,
    irq,
    timer_after_eoi,
};

/// A hardware interrupt: the timer, the telemetry link (COM1) or the
/// debugger's link (COM2, where a packet stops the kernel).
fn irq(irq: u8, frame: &mut TrapFrame) {
    match irq {
        pic::IRQ_TIMER => {
            time::tick();
            telemetry::pump();
        }
        pic::IRQ_COM1 => telemetry::on_interrupt(),
        pic::IRQ_COM2 => gdb::on_com2_interrupt(frame),
        // 7 and 15 may be spurious; the rest are masked.
        _ => {}
    }
}

/// After the timer's end of interrupt: ring 3 may be preempted.
fn timer_after_eoi(frame: &mut TrapFrame) {
    proc::sched::on_timer(frame);
}

/// `int 0x80` from ring 3.
fn syscall(frame: &mut TrapFrame) {
    if !frame.from_user() {
        // Only ring 3 makes system calls; the gate is reachable from ring 0
        // only by a kernel bug.
        panic!("system call from ring 0 at rip {:#x}", frame.rip);
    }
    proc::syscall::dispatch(frame);
}

/// A CPU exception. With a debugger attached, breakpoints and debug
/// exceptions go to it; without one, breakpoints are logged and resumed.
/// A page fault in ring 3 goes to the process's memory manager; any other
/// exception in ring 3 kills the process with a report. Anything else in
/// the kernel is fatal: it is reported over telemetry, shown to an attached
/// debugger, then the kernel panics.
fn exception(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector == trap::BREAKPOINT {
        if !gdb::on_breakpoint(frame) {
            if frame.from_user() {
                user_exception(frame, vector, 0);
            }
            kinfo!("breakpoint at {:#x}", frame.rip - 1);
        }
        return;
    }
    if vector == trap::DEBUG && gdb::on_debug(frame) {
        return;
    }
    let cr2 = if vector == trap::PAGE_FAULT {
        cpu::read_cr2()
    } else {
        0
    };
    if frame.from_user() {
        if vector == trap::PAGE_FAULT {
            proc::on_user_page_fault(frame, cr2);
            return;
        }
        user_exception(frame, vector, cr2);
    }
    telemetry::send_emergency(&exception_msg(frame, vector, cr2));
    gdb::on_fault(frame);
    let mut why = LineBuf::new();
    if vector == trap::DOUBLE_FAULT
        && let Some(overflow) = stack_overflow(frame.rsp)
    {
        let _ = write!(
            why,
            "kernel stack overflow: {} ran off its stack {:#x}-{:#x} into the guard page at {:#x} \
             (rsp {:#x}, rip {:#x})",
            overflow.task.as_str(),
            overflow.bottom,
            overflow.top,
            overflow.bottom - GUARD_BYTES,
            frame.rsp,
            frame.rip
        );
        panic!("{}", why.as_str());
    }
    let name = exception_name(vector);
    let _ = write!(why, "unhandled {name} (#{vector}) at rip {:#x}", frame.rip);
    if vector == trap::PAGE_FAULT {
        let error_code = frame.error_code;
        let _ = write!(
            why,
            ": {}",
            PageFaultSentence {
                error_code,
                addr: cr2
            }
        );
    } else if frame.error_code != 0 {
        let _ = write!(why, ", error code {:#x}", frame.error_code);
    }
    panic!("{}", why.as_str());
}

/// An exception caused by ring 3 that only the process can answer for: it
/// is reported and the process killed.
fn user_exception(frame: &TrapFrame, vector: u8, cr2: u64) -> ! {
    telemetry::send(&exception_msg(frame, vector, cr2));
    let name = exception_name(vector);
    let mut why = LineBuf::new();
    let _ = write!(
        why,
        "{name} (#{vector}) at rip {:#x}, error code {:#x}",
        frame.rip, frame.error_code
    );
    proc::kill_current(vector, why.as_str())
}

/// Bytes of a stack's guard page.
const GUARD_BYTES: u64 = 4096;

/// A stack that overflowed into its guard page.
struct Overflow {
    /// Who ran on it: `the boot task` or `pid N (NAME)`.
    task: LineBuf,
    bottom: u64,
    top: u64,
}

/// Whether a double fault with the stack pointer at `rsp` is a kernel
/// stack overflow: `rsp` in a guard page, or within a few pushes above it
/// (the push that faulted may not have moved it). Which stack, and whose.
fn stack_overflow(rsp: u64) -> Option<Overflow> {
    let near = |bottom: u64| (bottom - GUARD_BYTES..bottom + 64).contains(&rsp);
    let (bottom, top) = crate::arch::x86_64::boot::boot_stack();
    let mut task = LineBuf::new();
    if near(bottom) {
        let _ = write!(task, "the boot task");
        return Some(Overflow { task, bottom, top });
    }
    let (bottom, top) = crate::memory::kstack::stack_guarded_by(rsp)
        .or_else(|| crate::memory::kstack::stack_guarded_by(rsp.wrapping_sub(64)))?;
    // The table may be held by the code that overflowed: only try it.
    match proc::try_with_table(|t| {
        let p = t.current();
        let _ = write!(task, "pid {} ({})", p.pid, p.name.as_str());
    }) {
        Some(()) => {}
        None => {
            let _ = write!(task, "a process (table busy)");
        }
    }
    Some(Overflow { task, bottom, top })
}

/// The report of an exception, as the host receives it.
fn exception_msg(frame: &TrapFrame, vector: u8, cr2: u64) -> KernelMsg<'static> {
    KernelMsg::Exception(Exception {
        ts_us: time::uptime_us(),
        vector,
        error_code: frame.error_code,
        cr2,
        rip: frame.rip,
        rsp: frame.rsp,
    })
}
