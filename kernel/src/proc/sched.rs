//! The scheduler: round robin over runnable processes, the kernel's idle
//! task among them, preempting ring 3 on the timer.
//!
//! The kernel itself is not preemptible: traps and system calls run with
//! interrupts off, and a switch happens only where kernel code asks for one
//! ([`schedule`]) or when the timer interrupts ring 3.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::arch::cpu;
use crate::arch::x86_64::context::switch_stack;
use crate::arch::x86_64::gdt;
use crate::arch::x86_64::trap::TrapFrame;
use crate::memory::virt;
use crate::time;

use super::{KERNEL_PID, State, TABLE};

/// Timer ticks a process runs before the next one gets the CPU.
pub const TIME_SLICE_TICKS: u32 = 10;

static SLICE_LEFT: AtomicU32 = AtomicU32::new(TIME_SLICE_TICKS);

/// Timer tick: a process in ring 3 that used up its slice yields.
pub fn on_timer(frame: &TrapFrame) {
    if !frame.from_user() {
        return;
    }
    if SLICE_LEFT.fetch_sub(1, Ordering::Relaxed) <= 1 {
        schedule();
    }
}

/// Switches to the next runnable process, if there is another; returns
/// when this one is picked again. Call with interrupts off and no lock held.
pub fn schedule() {
    let switch = TABLE.with(|t| {
        let now = time::uptime_us();
        for p in t.procs.values_mut() {
            if let State::Sleeping { until_us } = p.state
                && until_us <= now
            {
                p.state = State::Runnable;
            }
        }
        let cur = t.current;
        let next = t
            .procs
            .range(cur + 1..)
            .chain(t.procs.range(..=cur))
            .find(|(_, p)| p.state == State::Runnable)
            .map(|(&pid, _)| pid)?;
        if next == cur {
            return None;
        }
        let new = t.procs.get(&next)?;
        let new_rsp = new.saved_rsp;
        match (&new.mm, &new.kstack) {
            (Some(mm), Some(stack)) => {
                gdt::set_kernel_stack(stack.top());
                mm.space().switch_to();
            }
            // The kernel task runs on the boot stack in the kernel's tables.
            _ => {
                // SAFETY: the kernel's own tables map the kernel as every
                // address space does.
                unsafe { cpu::load_page_table(virt::kernel_root().start_address().as_u64()) }
            }
        }
        let old = t.procs.get_mut(&cur)?;
        let save: *mut u64 = &mut old.saved_rsp;
        t.current = next;
        Some((save, new_rsp))
    });
    if let Some((save, new_rsp)) = switch {
        SLICE_LEFT.store(TIME_SLICE_TICKS, Ordering::Relaxed);
        // SAFETY: interrupts are off (callers run in trap context or
        // disable them); `save` points into the old process's box, which
        // stays in the table at least until another process reaps it, after
        // this switch; `new_rsp` was saved by the new process's last switch
        // or laid out by `new_task_stack`, on its mapped kernel stack.
        unsafe { switch_stack(save, new_rsp) };
    }
}

/// Puts the running process to sleep for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let until_us = time::uptime_us().saturating_add(ms.saturating_mul(1000));
    TABLE.with(|t| t.current().state = State::Sleeping { until_us });
    schedule();
}

/// Whether any process other than the kernel can run now.
pub fn others_runnable() -> bool {
    let now = time::uptime_us();
    TABLE.with(|t| {
        t.iter().any(|p| {
            p.pid != KERNEL_PID
                && match p.state {
                    State::Runnable => true,
                    State::Sleeping { until_us } => until_us <= now,
                    _ => false,
                }
        })
    })
}

/// The idle task's turn is over: let the processes run.
pub fn yield_from_idle() {
    cpu::without_interrupts(schedule);
}
