//! The kernel as a `gdbstub` target: one thread whose registers are the
//! trapped frame, memory checked against the page tables, software
//! breakpoints, single-step, and hardware breakpoints and watchpoints in the
//! debug registers, and a memory map of what gdb may read.

use core::fmt::{self, Write};

use gdbstub::common::Signal;
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::memory_map::{MemoryMap, MemoryMapOps};
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

use super::debugreg::{DebugRegs, Kind};
use super::{memory, note};
use crate::arch::x86_64::cpu;
use crate::arch::x86_64::trap::{RFLAGS_TF, TrapFrame};

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
    planted: [Option<Planted>; MAX_SW_BREAKPOINTS],
    /// Hardware breakpoints and watchpoints (DR0–DR3).
    pub hw: DebugRegs,
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
            planted: [None; MAX_SW_BREAKPOINTS],
            hw: DebugRegs::new(),
        }
    }

    /// Copies memory at `addr` into `out` up to the first inaccessible
    /// byte; returns how many bytes were copied. Every read gdb makes
    /// (`m` through gdbstub, `x` through the stub) comes here.
    pub fn read_memory(&mut self, addr: u64, out: &mut [u8]) -> usize {
        memory::read(addr, out)
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
                && memory::write(p.addr, &[p.saved]).is_err()
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
        BaseOps::SingleThread(self)
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

    // Acks stay on: a session may end (detach, idle timeout) while gdb
    // believes otherwise, and a fresh stub always starts in ack mode.
    fn use_no_ack_mode(&self) -> bool {
        false
    }
}

impl SingleThreadBase for Kernel {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        let f = &self.frame;
        regs.regs = [
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15,
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
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        let f = &mut self.frame;
        [
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15,
        ] = regs.regs;
        f.rip = regs.rip;
        f.rflags = (f.rflags & !WRITABLE_RFLAGS) | (u64::from(regs.eflags) & WRITABLE_RFLAGS);
        // Segment selectors are the kernel's fixed GDT entries; loading
        // others would fault on resume, so writes to them are ignored.
        Ok(())
    }

    fn read_addrs(&mut self, start_addr: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        match self.read_memory(start_addr, data) {
            0 if !data.is_empty() => Err(TargetError::NonFatal),
            n => Ok(n),
        }
    }

    fn write_addrs(&mut self, start_addr: u64, data: &[u8]) -> TargetResult<(), Self> {
        memory::write(start_addr, data).map_err(|_| TargetError::NonFatal)
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for Kernel {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.stepping = false;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for Kernel {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.stepping = true;
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

impl SwBreakpoint for Kernel {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.planted_at(addr) {
            return Ok(true);
        }
        let Some(slot) = self.planted.iter_mut().find(|p| p.is_none()) else {
            return Ok(false);
        };
        let mut saved = [0u8];
        if memory::read(addr, &mut saved) != 1 || memory::write(addr, &[INT3]).is_err() {
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
        Ok(memory::write(p.addr, &[p.saved]).is_ok())
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
