//! The kernel as a `gdbstub` target: its processes as threads (see
//! [`threads`](super::threads)), the stopped one's registers the trapped
//! frame, memory checked against the selected thread's page tables,
//! software breakpoints, single-step, hardware breakpoints and watchpoints
//! in the debug registers, and a memory map of what gdb may read.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use gdbstub::common::{Signal, Tid};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::host_info::HostInfoOps;
use gdbstub::target::ext::lldb_register_info_override::LldbRegisterInfoOverrideOps;
use gdbstub::target::ext::memory_map::{MemoryMap, MemoryMapOps};
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::ext::process_info::ProcessInfoOps;
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

use super::debugreg::{DebugRegs, Kind};
use super::threads::{Registers, Thread, Threads, tid_of};
use super::{memory, note};
use crate::arch::x86_64::context::SwitchFrame;
use crate::arch::x86_64::trap::{RFLAGS_TF, TrapFrame};
use crate::arch::x86_64::{cpu, gdt};
use crate::proc::{KERNEL_PID, SavedContext};

/// Software breakpoints the stub can hold at once.
const MAX_SW_BREAKPOINTS: usize = 64;
/// `int3`.
const INT3: u8 = 0xCC;
/// RFLAGS bits gdb may change: CF PF AF ZF SF TF IF DF OF RF AC. The rest
/// (IOPL, NT, VM, ...) stay as trapped.
const WRITABLE_RFLAGS: u64 = 0x5_0FD5;

/// One planted `int3` and the byte it replaced.
#[derive(Debug, Clone, Copy)]
struct Planted {
    addr: u64,
    saved: u8,
}

/// The stopped kernel, as gdb sees it.
pub struct Kernel {
    /// The trapped registers; written back when the kernel resumes.
    pub frame: TrapFrame,
    /// Whether the last resume request was a single step.
    pub stepping: bool,
    /// A single step asked of a thread other than the stopped one, which
    /// cannot run until the scheduler picks it: the stub reports it
    /// stopped at once instead of resuming.
    pub step_refused: Option<Tid>,
    planted: [Option<Planted>; MAX_SW_BREAKPOINTS],
    /// Hardware breakpoints and watchpoints (DR0–DR3).
    pub hw: DebugRegs,
    /// The processes, as threads, at this stop.
    threads: Threads,
    /// The thread gdb selected for registers and memory (`Hg`), kept here
    /// too for the packets the stub answers itself.
    selected: Tid,
    /// The thread and signal of the last stop reply (SIGTRAP for a
    /// debugger's first stop), which LLDB asks for again in `jThreadsInfo`.
    reported: (Tid, Signal),
}

impl Kernel {
    /// No frame yet, nothing planted.
    pub const fn new() -> Self {
        Self {
            frame: TrapFrame {
                r15: 0,
                r14: 0,
                r13: 0,
                r12: 0,
                r11: 0,
                r10: 0,
                r9: 0,
                r8: 0,
                rbp: 0,
                rdi: 0,
                rsi: 0,
                rdx: 0,
                rcx: 0,
                rbx: 0,
                rax: 0,
                vector: 0,
                error_code: 0,
                rip: 0,
                cs: 0,
                rflags: 0,
                rsp: 0,
                ss: 0,
            },
            stepping: false,
            step_refused: None,
            planted: [None; MAX_SW_BREAKPOINTS],
            hw: DebugRegs::new(),
            threads: Threads::new(),
            selected: tid_of(KERNEL_PID),
            reported: (tid_of(KERNEL_PID), Signal::SIGTRAP),
        }
    }

    /// The kernel stopped with `frame`: the threads are read afresh and
    /// the one it stopped in is selected, as gdb will assume.
    pub fn stopped_at(&mut self, frame: &TrapFrame) {
        self.frame = *frame;
        self.threads.capture();
        self.selected = self.stopped_tid();
        // What gdbstub answers `?` with; a reported stop says otherwise.
        self.reported = (self.selected, Signal::SIGTRAP);
    }

    /// The stop reply about to go out names thread `tid` and `signal`.
    pub fn report(&mut self, tid: Tid, signal: Signal) {
        self.reported = (tid, signal);
    }

    /// The thread and signal of the last stop reply.
    pub fn reported(&self) -> (Tid, Signal) {
        self.reported
    }

    /// Every thread of this stop, the stopped one first.
    pub fn threads(&self) -> impl Iterator<Item = &Thread> {
        self.threads.iter()
    }

    /// The thread the kernel stopped in.
    pub fn stopped_tid(&self) -> Tid {
        self.stopped_thread()
            .map_or(tid_of(KERNEL_PID), Thread::tid)
    }

    /// gdb selected `tid` (`Hg`); `None` means any thread, which gdbstub
    /// takes to be the first listed, the stopped one.
    pub fn select(&mut self, tid: Option<Tid>) {
        self.selected = tid.unwrap_or_else(|| self.stopped_tid());
    }

    /// The thread of process `pid` at this stop.
    pub fn thread_of(&self, pid: u32) -> Option<&Thread> {
        self.threads.iter().find(|t| t.pid == Some(pid))
    }

    /// The thread the kernel stopped in. gdb tells the stub which thread
    /// it means only before register and memory accesses (`Hg`), never
    /// before a `monitor` command, so those default to this one.
    pub fn stopped_thread(&self) -> Option<&Thread> {
        self.threads.stopped()
    }

    /// Copies memory at `addr` of the selected thread's address space into
    /// `out` up to the first inaccessible byte; returns how many bytes were
    /// copied. The stub's own `x` reads come here.
    pub fn read_memory(&mut self, addr: u64, out: &mut [u8]) -> usize {
        self.read_in(self.selected, addr, out)
    }

    /// [`read_memory`](Self::read_memory) in thread `tid`'s address space;
    /// nothing for an unknown thread.
    fn read_in(&self, tid: Tid, addr: u64, out: &mut [u8]) -> usize {
        match self.threads.get(tid) {
            Some(t) => memory::read(t.root, addr, out),
            None => 0,
        }
    }

    /// Thread `tid`'s registers: the trapped frame for the stopped one;
    /// for the others, what the scheduler saved, read from their kernel
    /// stacks (which every address space maps). A switched-away kernel
    /// task has only its callee-saved registers, RIP and RSP; the rest
    /// read as 0.
    fn registers_of(&self, tid: Tid) -> Option<TrapFrame> {
        let thread = self.threads.get(tid)?;
        let live = memory::live_root();
        match thread.registers {
            Registers::Trapped => Some(self.frame),
            Registers::Saved(SavedContext::UserFrame(at)) => {
                let mut frame = TrapFrame::default();
                let bytes = frame.as_bytes_mut();
                (memory::read(live, at, bytes) == bytes.len()).then_some(frame)
            }
            Registers::Saved(SavedContext::Switched(rsp)) => {
                let mut bytes = [0u8; SwitchFrame::SIZE];
                if memory::read(live, rsp, &mut bytes) != bytes.len() {
                    return None;
                }
                let saved = SwitchFrame::from_bytes(&bytes);
                let sel = gdt::selectors();
                Some(TrapFrame {
                    r15: saved.r15,
                    r14: saved.r14,
                    r13: saved.r13,
                    r12: saved.r12,
                    rbx: saved.rbx,
                    rbp: saved.rbp,
                    rip: saved.rip,
                    rsp: SwitchFrame::rsp_after(rsp),
                    cs: u64::from(sel.kernel_code.0),
                    ss: u64::from(sel.kernel_data.0),
                    // Switches happen with interrupts off.
                    rflags: 0x2,
                    ..TrapFrame::default()
                })
            }
        }
    }

    /// Whether the stub planted an `int3` at `addr`.
    pub fn planted_at(&self, addr: u64) -> bool {
        self.planted.iter().flatten().any(|p| p.addr == addr)
    }

    /// Puts back every byte a breakpoint replaced, frees the debug
    /// registers and forgets the stepping request: what a session leaves
    /// behind when it ends.
    pub fn forget_session(&mut self) {
        for slot in &mut self.planted {
            if let Some(p) = slot.take()
                && memory::write(memory::live_root(), p.addr, &[p.saved]).is_err()
            {
                note(format_args!(
                    "cannot restore the byte under breakpoint {:#x}",
                    p.addr
                ));
            }
        }
        self.hw.clear();
        self.stepping = false;
        self.frame.rflags &= !RFLAGS_TF;
    }

    /// Sets or clears the trap flag in the frame to match the request and
    /// programs the debug registers for the run.
    pub fn prepare_resume(&mut self) {
        self.hw.arm();
        if self.stepping {
            self.frame.rflags |= RFLAGS_TF;
        } else {
            self.frame.rflags &= !RFLAGS_TF;
        }
    }
}

impl Target for Kernel {
    type Arch = X86_64_SSE;
    type Error = &'static str;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    fn support_memory_map(&mut self) -> Option<MemoryMapOps<'_, Self>> {
        Some(self)
    }

    // LLDB's queries, answered in `lldb.rs`.
    fn support_lldb_register_info_override(
        &mut self,
    ) -> Option<LldbRegisterInfoOverrideOps<'_, Self>> {
        Some(self)
    }

    fn support_host_info(&mut self) -> Option<HostInfoOps<'_, Self>> {
        Some(self)
    }

    fn support_process_info(&mut self) -> Option<ProcessInfoOps<'_, Self>> {
        Some(self)
    }

    // Acks stay on: a session may end (detach, idle timeout) while gdb
    // believes otherwise, and a fresh stub always starts in ack mode.
    fn use_no_ack_mode(&self) -> bool {
        false
    }
}

/// gdb's view of `f`.
fn to_gdb(f: &TrapFrame, regs: &mut X86_64CoreRegs) {
    regs.regs = [
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11, f.r12,
        f.r13, f.r14, f.r15,
    ];
    regs.rip = f.rip;
    regs.eflags = f.rflags as u32;
    let [ds, es, fs, gs] = cpu::data_segments();
    regs.segments.cs = f.cs as u32;
    regs.segments.ss = f.ss as u32;
    regs.segments.ds = ds.into();
    regs.segments.es = es.into();
    regs.segments.fs = fs.into();
    regs.segments.gs = gs.into();
}

/// Takes gdb's register values into `f`.
fn from_gdb(regs: &X86_64CoreRegs, f: &mut TrapFrame) {
    [
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11, f.r12,
        f.r13, f.r14, f.r15,
    ] = regs.regs;
    f.rip = regs.rip;
    f.rflags = (f.rflags & !WRITABLE_RFLAGS) | (u64::from(regs.eflags) & WRITABLE_RFLAGS);
    // Segment selectors are the GDT's fixed entries; loading others would
    // fault on resume, so writes to them are ignored.
}

impl MultiThreadBase for Kernel {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let frame = self.registers_of(tid).ok_or(TargetError::NonFatal)?;
        to_gdb(&frame, regs);
        Ok(())
    }

    /// The stopped thread's registers take effect on resume; a sleeping
    /// program's are written into the frame it will return to ring 3 with.
    /// A switched-away kernel task's cannot be changed.
    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let thread = self.threads.get(tid).ok_or(TargetError::NonFatal)?;
        match thread.registers {
            Registers::Trapped => {
                from_gdb(regs, &mut self.frame);
                Ok(())
            }
            Registers::Saved(SavedContext::UserFrame(at)) => {
                let mut frame = self.registers_of(tid).ok_or(TargetError::NonFatal)?;
                from_gdb(regs, &mut frame);
                memory::write(memory::live_root(), at, frame.as_bytes())
                    .map_err(|_| TargetError::NonFatal)
            }
            Registers::Saved(SavedContext::Switched(_)) => Err(TargetError::NonFatal),
        }
    }

    fn read_addrs(
        &mut self,
        start_addr: u64,
        data: &mut [u8],
        tid: Tid,
    ) -> TargetResult<usize, Self> {
        match self.read_in(tid, start_addr, data) {
            0 if !data.is_empty() => Err(TargetError::NonFatal),
            n => Ok(n),
        }
    }

    fn write_addrs(&mut self, start_addr: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let root = self.threads.get(tid).ok_or(TargetError::NonFatal)?.root;
        memory::write(root, start_addr, data).map_err(|_| TargetError::NonFatal)
    }

    fn list_active_threads(
        &mut self,
        thread_is_active: &mut dyn FnMut(Tid),
    ) -> Result<(), Self::Error> {
        self.threads.iter().for_each(|t| thread_is_active(t.tid()));
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

impl ThreadExtraInfo for Kernel {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let mut out = Window {
            out: buf,
            skip: 0,
            filled: 0,
        };
        if let Some(t) = self.threads.get(tid) {
            let _ = t.describe(&mut out);
        }
        Ok(out.filled)
    }
}

/// Every process runs on `continue`; only the thread the kernel stopped in
/// can single-step (the others are not running).
impl MultiThreadResume for Kernel {
    fn resume(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        self.stepping = false;
        self.step_refused = None;
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        _tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSingleStep for Kernel {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if tid == self.stopped_tid() {
            self.stepping = true;
        } else {
            self.step_refused = Some(tid);
        }
        Ok(())
    }
}

/// `set scheduler-locking on` is accepted so that gdb can step: a step
/// runs one instruction of the stopped thread and nothing else. A
/// `continue` still runs every process; the scheduler is not frozen.
impl MultiThreadSchedulerLocking for Kernel {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl Breakpoints for Kernel {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl HwBreakpoint for Kernel {
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw.add(addr, 1, Kind::Exec))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw.remove(addr, 1, Kind::Exec))
    }
}

impl HwWatchpoint for Kernel {
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.hw.add(addr, len, Kind::Data(kind)))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.hw.remove(addr, len, Kind::Data(kind)))
    }
}

/// Software breakpoints go in kernel code only, which every address space
/// shares. A program's code may be shared copy-on-write with its parent or
/// child, and its frames go away with it, so an `int3` planted there could
/// outlive its process or hit another; gdb says it cannot insert one, and
/// `hbreak` (which matches the address in whichever process runs) works
/// instead.
impl SwBreakpoint for Kernel {
    /// Only in kernel text: an `int3` written into data (a counter, the
    /// direct map's alias of a user frame or a page table) would corrupt
    /// it, and a program's code may be shared copy-on-write.
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let [(text_start, text_end), _, _] = crate::memory::virt::image_sections();
        if !(text_start..text_end).contains(&addr) {
            return Ok(false);
        }
        if self.planted_at(addr) {
            return Ok(true);
        }
        let live = memory::live_root();
        let Some(slot) = self.planted.iter_mut().find(|p| p.is_none()) else {
            return Ok(false);
        };
        let mut saved = [0u8];
        if memory::read(live, addr, &mut saved) != 1 || memory::write(live, addr, &[INT3]).is_err()
        {
            return Ok(false);
        }
        *slot = Some(Planted {
            addr,
            saved: saved[0],
        });
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some(slot) = self
            .planted
            .iter_mut()
            .find(|p| p.is_some_and(|p| p.addr == addr))
        else {
            return Ok(false);
        };
        let Some(p) = slot.take() else {
            return Ok(false);
        };
        Ok(memory::write(memory::live_root(), p.addr, &[p.saved]).is_ok())
    }
}

/// What [`MemoryMap::memory_map_xml`] writes before the regions.
const MAP_HEAD: &str = concat!(
    r#"<?xml version="1.0"?>"#,
    r#"<!DOCTYPE memory-map PUBLIC "+//IDN gnu.org//DTD GDB Memory Map V1.0//EN" "#,
    r#""http://sourceware.org/gdb/gdb-memory-map.dtd">"#,
    "<memory-map>\n",
);

/// A `fmt::Write` that keeps only the bytes at `offset..` of what is
/// written, as many as fit in `out`: gdb reads the map in pieces, and each
/// piece is formatted afresh with no buffer for the whole.
struct Window<'a> {
    out: &'a mut [u8],
    /// Bytes still to skip before `out` starts filling.
    skip: u64,
    filled: usize,
}

impl Write for Window<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut bytes = s.as_bytes();
        let skipped = self.skip.min(bytes.len() as u64);
        self.skip -= skipped;
        bytes = &bytes[skipped as usize..];
        let n = bytes.len().min(self.out.len() - self.filled);
        self.out[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
        self.filled += n;
        Ok(())
    }
}

impl MemoryMap for Kernel {
    /// Every region of [`memory::regions`] as `ram`.
    fn memory_map_xml(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        let room = length.min(buf.len());
        let mut out = Window {
            out: &mut buf[..room],
            skip: offset,
            filled: 0,
        };
        let _ = out.write_str(MAP_HEAD);
        memory::regions(|start, length| {
            let _ = writeln!(
                out,
                r#"<memory type="ram" start="{start:#x}" length="{length:#x}"/>"#
            );
        });
        let _ = out.write_str("</memory-map>\n");
        Ok(out.filled)
    }
}
