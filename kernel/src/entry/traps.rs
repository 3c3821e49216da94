//! What the kernel does with each trap once `arch` has saved the frame.

use core::fmt::Write;

use probe_proto::{Exception, KernelMsg};

use crate::arch::x86_64::trap::{self, TrapFrame};
use crate::arch::{cpu, qemu};
use crate::{gdb, log::LineBuf, proc, telemetry, time};

/// Timer interrupt.
pub fn timer_tick() {
    time::tick();
    telemetry::pump();
}

/// After the timer's end of interrupt: ring 3 may be preempted.
pub fn timer_preempt(frame: &TrapFrame) {
    proc::sched::on_timer(frame);
}

/// `int 0x80` from ring 3.
pub fn syscall(frame: &mut TrapFrame) {
    if !frame.from_user() {
        // Only ring 3 makes system calls; the gate is reachable from ring 0
        // only by a kernel bug.
        panic!("system call from ring 0 at rip {:#x}", frame.rip);
    }
    proc::syscall::dispatch(frame);
}

/// COM1 interrupt: telemetry link.
pub fn com1_interrupt() {
    telemetry::on_interrupt();
}

/// COM2 interrupt: GDB link; a debugger's packet stops the kernel here.
pub fn com2_interrupt(frame: &mut TrapFrame) {
    gdb::on_com2_interrupt(frame);
}

/// Names of the CPU exceptions, by vector.
const EXCEPTION_NAMES: [&str; 32] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 floating point",
    "alignment check",
    "machine check",
    "SIMD floating point",
    "virtualization",
    "control protection",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection",
    "VMM communication",
    "security",
    "reserved",
];

/// A CPU exception. With a debugger attached, breakpoints and debug
/// exceptions go to it; without one, breakpoints are logged and resumed.
/// A page fault in ring 3 goes to the process's memory manager; any other
/// exception in ring 3 kills the process with a report. Anything else in
/// the kernel is fatal: it is reported over telemetry, shown to an attached
/// debugger, then the kernel panics.
pub fn exception(frame: &mut TrapFrame) {
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
    telemetry::send_emergency(&KernelMsg::Exception(Exception {
        ts_us: time::uptime_us(),
        vector,
        error_code: frame.error_code,
        cr2,
        rip: frame.rip,
        rsp: frame.rsp,
    }));
    gdb::on_fault(frame);
    let mut why = LineBuf::new();
    let name = EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("unknown");
    let _ = write!(why, "unhandled {name} (#{vector}) at rip {:#x}", frame.rip);
    if vector == trap::PAGE_FAULT {
        let _ = write!(why, ": ");
        let _ = describe_page_fault(&mut why, frame.error_code, cr2);
    } else if frame.error_code != 0 {
        let _ = write!(why, ", error code {:#x}", frame.error_code);
    }
    panic!("{}", why.as_str());
}

/// An exception caused by ring 3 that only the process can answer for: it
/// is reported and the process killed.
fn user_exception(frame: &TrapFrame, vector: u8, cr2: u64) -> ! {
    telemetry::send(&KernelMsg::Exception(Exception {
        ts_us: time::uptime_us(),
        vector,
        error_code: frame.error_code,
        cr2,
        rip: frame.rip,
        rsp: frame.rsp,
    }));
    let name = EXCEPTION_NAMES
        .get(vector as usize)
        .copied()
        .unwrap_or("unknown");
    let mut why = LineBuf::new();
    let _ = write!(
        why,
        "{name} (#{vector}) at rip {:#x}, error code {:#x}",
        frame.rip, frame.error_code
    );
    proc::kill_current(vector, why.as_str())
}

/// Spells out a page-fault error code: "write to non-present page 0x0 in
/// kernel mode".
pub fn describe_page_fault(out: &mut impl Write, error_code: u64, cr2: u64) -> core::fmt::Result {
    let access = if error_code & (1 << 4) != 0 {
        "instruction fetch from"
    } else if error_code & (1 << 1) != 0 {
        "write to"
    } else {
        "read of"
    };
    let cause = if error_code & 1 != 0 {
        "protection violation on"
    } else {
        "non-present"
    };
    let mode = if error_code & (1 << 2) != 0 {
        "user"
    } else {
        "kernel"
    };
    write!(out, "{access} {cause} page {cr2:#x} in {mode} mode")?;
    if error_code & (1 << 3) != 0 {
        write!(out, " (reserved bit set)")?;
    }
    Ok(())
}

/// Ends the machine after a fatal error.
pub fn fatal_exit() -> ! {
    qemu::exit(qemu::ExitCode::Failure)
}
