//! Processes as gdb threads.
//!
//! At every stop the process table is read once, without waiting for its
//! lock, into a fixed list: the process the kernel stopped in first (gdb
//! takes the first thread as the one to show), then every other live one
//! by pid. Zombies have no address space left and are not listed.
//!
//! A thread's id is its pid + 1, since gdb reserves 0; `info threads`
//! shows the pid, name and state. Each thread carries the physical
//! address of its top-level page table, so memory is read in the address
//! space of the thread gdb selected, and where its registers are: the
//! trapped frame for the stopped one; for the others, the ring-3 frame
//! their last kernel entry left on their kernel stack, or, for the kernel
//! task, what its last switch saved.
//!
//! If the stop interrupted a holder of the table's lock, or no process was
//! ever started, the list is just the stopped code in the loaded tables.
#![forbid(unsafe_code)]

use core::fmt::Write;
use core::num::NonZeroUsize;

use gdbstub::common::Tid;

use super::memory;
use crate::proc::try_with_table;
use crate::proc::{KERNEL_PID, MAX_PROCESSES, Name, SavedContext, State};

/// Where a thread's registers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registers {
    /// The frame the kernel stopped with.
    Trapped,
    /// Saved by the scheduler while another process runs.
    Saved(SavedContext),
}

/// One process as a gdb thread.
#[derive(Clone, Copy)]
pub struct Thread {
    /// Its pid; `None` when the table could not be read.
    pub pid: Option<u32>,
    name: Name,
    state: State,
    /// Physical address of its top-level page table.
    pub root: u64,
    /// Where its registers are.
    pub registers: Registers,
}

impl Thread {
    /// Its gdb thread id.
    pub fn tid(&self) -> Tid {
        tid_of(self.pid.unwrap_or(KERNEL_PID))
    }

    /// Its process's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The text `info threads` shows beside it, e.g. `pid 3 worker,
    /// sleeping`.
    pub fn describe(&self, out: &mut impl Write) -> core::fmt::Result {
        let Some(pid) = self.pid else {
            return out.write_str("stopped code; process table busy, other processes not shown");
        };
        let state = match (self.registers, self.state) {
            (Registers::Trapped, _) => "running",
            (_, State::Runnable) => "runnable",
            (_, State::Sleeping { .. }) => "sleeping",
            (_, State::Waiting) => "waiting",
            (_, State::Zombie { .. }) => "ended",
        };
        write!(out, "pid {pid} {}, {state}", self.name.as_str())
    }
}

/// The gdb thread id of `pid`.
pub const fn tid_of(pid: u32) -> Tid {
    match NonZeroUsize::new(pid as usize + 1) {
        Some(tid) => tid,
        None => panic!("pid + 1 is never 0"),
    }
}

/// The threads of one stop.
pub struct Threads {
    list: [Option<Thread>; MAX_PROCESSES],
    len: usize,
}

impl Threads {
    /// No stop yet: only the loaded tables, as the stopped code.
    pub const fn new() -> Self {
        Self {
            list: [None; MAX_PROCESSES],
            len: 0,
        }
    }

    /// Reads the threads of the stop that just happened.
    pub fn capture(&mut self) {
        self.len = 0;
        let live = memory::live_root();
        let read = try_with_table(|t| {
            let current = t.current_pid();
            let Some(stopped) = t.iter().find(|p| p.pid == current) else {
                return false;
            };
            self.push(Thread {
                pid: Some(stopped.pid),
                name: stopped.name,
                state: stopped.state,
                root: live,
                registers: Registers::Trapped,
            });
            let others = t
                .iter()
                .filter(|p| p.pid != current && !matches!(p.state, State::Zombie { .. }));
            for p in others {
                self.push(Thread {
                    pid: Some(p.pid),
                    name: p.name,
                    state: p.state,
                    root: p.page_table_root(),
                    registers: Registers::Saved(p.saved_context()),
                });
            }
            true
        });
        match read {
            Some(true) => {}
            // No process was ever started: the kernel alone.
            Some(false) => self.push(Thread {
                pid: Some(KERNEL_PID),
                name: Name::new("kernel").expect("a valid name"),
                state: State::Runnable,
                root: live,
                registers: Registers::Trapped,
            }),
            None => self.push(Thread {
                pid: None,
                name: Name::new("?").expect("a valid name"),
                state: State::Runnable,
                root: live,
                registers: Registers::Trapped,
            }),
        }
    }

    fn push(&mut self, thread: Thread) {
        if let Some(slot) = self.list.get_mut(self.len) {
            *slot = Some(thread);
            self.len += 1;
        }
    }

    /// Every thread, the stopped one first.
    pub fn iter(&self) -> impl Iterator<Item = &Thread> {
        self.list[..self.len].iter().flatten()
    }

    /// The thread with id `tid`.
    pub fn get(&self, tid: Tid) -> Option<&Thread> {
        self.iter().find(|t| t.tid() == tid)
    }

    /// The thread the kernel stopped in.
    pub fn stopped(&self) -> Option<&Thread> {
        self.iter().next()
    }
}
