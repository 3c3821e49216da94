//! Processes: ring-3 programs with their own address spaces, kernel stacks,
//! keyed heaps and sheds, run by a preemptive round-robin scheduler.
//!
//! The process table maps pids to boxed [`Process`]es; pid 0 is the kernel
//! itself (the boot thread, which runs the idle loop and owns the kernel
//! heap), so `check_memory(-1)` and `ps` list it as a program. A process
//! that ends becomes a zombie until its parent `wait`s for it (or, for
//! children of the kernel, until the idle loop reaps it); everything it
//! held but its kernel stack is returned at once.

pub mod frames;
pub mod heaps;
pub mod mm_struct;
mod programs;
pub mod sched;
pub mod syscall;
pub mod workload;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt::Write;
use core::sync::atomic::{AtomicU32, Ordering};

use probe_proto::names::{PageFaultSentence, event_class};
use probe_proto::{ExitReason, FaultResolution, KernelMsg, PageFault, ProcessEvent, ProcessExit};
use sysabi::{Errno, MAX_NAME_LEN, ProgramMemory};

use crate::arch::x86_64::context::{new_task_stack, user_frame_at};
use crate::arch::x86_64::gdt;
use crate::arch::x86_64::trap::{RFLAGS_IF, TrapFrame};
use crate::elf::ElfFile;
use crate::log::LineBuf;
use crate::memory::events;
use crate::memory::kstack::{self, KernelStack};
use crate::sync::IrqMutex;
use crate::time;

use heaps::{Leaks, ProcMemory};
use mm_struct::{Access, MmStruct};

pub use probe_proto::KERNEL_PID;
/// Most processes alive (zombies included) at once, the kernel included.
pub const MAX_PROCESSES: usize = 128;
/// Highest pid handed out before wrapping around.
const MAX_PID: u32 = crate::mm::frame::MAX_PID;

/// Scheduling state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Running or ready to run.
    Runnable,
    /// Asleep until this uptime.
    Sleeping {
        /// Microseconds since boot.
        until_us: u64,
    },
    /// In `wait`, until a child ends.
    Waiting,
    /// Ended with this `wait` status, not yet reaped.
    Zombie {
        /// Exit code, or [`sysabi::KILLED_EXIT_CODE`].
        code: i64,
    },
}

/// A program name: at most [`MAX_NAME_LEN`] bytes of UTF-8.
#[derive(Clone, Copy)]
pub struct Name {
    buf: [u8; MAX_NAME_LEN],
    len: usize,
}

impl Name {
    /// `name`, if it is 1..=32 bytes of printable ASCII-or-UTF-8 text.
    pub fn new(name: &str) -> Option<Self> {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return None;
        }
        let mut buf = [0; MAX_NAME_LEN];
        buf[..name.len()].copy_from_slice(name.as_bytes());
        Some(Self {
            buf,
            len: name.len(),
        })
    }

    /// The default name of `pid`: `Program-{pid}`.
    pub fn default_for(pid: u32) -> Self {
        let mut line = LineBuf::new();
        let _ = write!(line, "Program-{pid}");
        Self::new(line.as_str()).expect("a default name is short and printable")
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// One process.
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Parent's pid (0: the kernel).
    pub parent: u32,
    /// Registered program name.
    pub name: Name,
    /// The built-in program it runs.
    pub image: &'static str,
    /// Scheduling state.
    pub state: State,
    /// Its memory; `None` for the kernel and for a process that ended.
    pub mm: Option<MmStruct>,
    /// Its heaps and sheds.
    pub memory: ProcMemory,
    /// Its kernel stack; `None` for the kernel (the boot stack).
    kstack: Option<KernelStack>,
    /// Stack pointer saved by the last switch away from it.
    saved_rsp: u64,
    /// Most verbose kernel diagnostics about this process (0..=3).
    pub log_level: u8,
}

/// Where the debugger finds the registers of a process that is not the
/// one the kernel stopped in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SavedContext {
    /// A program: its ring-3 registers, in the [`TrapFrame`] its last entry
    /// into the kernel left at this address (the top of its kernel stack).
    UserFrame(u64),
    /// The kernel task, switched away: the stack pointer its last
    /// switch saved (see `context::SwitchFrame`).
    Switched(u64),
}

impl Process {
    fn new(pid: u32, parent: u32, image: &'static str) -> Self {
        Self {
            pid,
            parent,
            name: Name::default_for(pid),
            image,
            state: State::Runnable,
            mm: None,
            memory: ProcMemory::default(),
            kstack: None,
            saved_rsp: 0,
            log_level: crate::cmdline::DEFAULT_LOGLEVEL,
        }
    }
}

impl Process {
    /// Where its registers are while another process runs.
    pub fn saved_context(&self) -> SavedContext {
        match &self.kstack {
            Some(stack) => SavedContext::UserFrame(user_frame_at(stack.top())),
            None => SavedContext::Switched(self.saved_rsp),
        }
    }

    /// Physical address of the top-level page table it runs in: its own,
    /// or the kernel's for the kernel and a process that ended.
    pub fn page_table_root(&self) -> u64 {
        let root = match &self.mm {
            Some(mm) => mm.space().root(),
            None => crate::memory::virt::kernel_root(),
        };
        root.start_address().as_u64()
    }
}

/// Every process, and which one runs.
pub struct Table {
    procs: BTreeMap<u32, Box<Process>>,
    current: u32,
    last_pid: u32,
}

impl Table {
    const fn new() -> Self {
        Self {
            procs: BTreeMap::new(),
            current: KERNEL_PID,
            last_pid: KERNEL_PID,
        }
    }

    /// Pid of the running process.
    pub fn current_pid(&self) -> u32 {
        self.current
    }

    /// `(pid, saved stack pointer, top)` of the kernel stack of every
    /// process switched away (all but the running one), the kernel task's
    /// boot stack included: the live part of each is `[saved, top)`.
    pub fn switched_stacks(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        let boot_top = crate::arch::x86_64::boot::boot_stack().1;
        self.procs
            .values()
            .filter(|p| p.pid != self.current)
            .filter_map(move |p| {
                let top = match &p.kstack {
                    Some(stack) => stack.top(),
                    None if p.pid == KERNEL_PID => boot_top,
                    None => return None,
                };
                (p.saved_rsp != 0 && p.saved_rsp < top).then_some((p.pid, p.saved_rsp, top))
            })
    }

    /// The running process.
    pub fn current(&mut self) -> &mut Process {
        let pid = self.current;
        self.procs
            .get_mut(&pid)
            .expect("the running process is in the table")
    }

    /// Process `pid`.
    pub fn get(&mut self, pid: u32) -> Option<&mut Process> {
        self.procs.get_mut(&pid).map(|b| &mut **b)
    }

    /// Whether process `pid` is in the table.
    pub fn contains(&self, pid: u32) -> bool {
        self.procs.contains_key(&pid)
    }

    /// Every process, by pid.
    pub fn iter(&self) -> impl Iterator<Item = &Process> {
        self.procs.values().map(|b| &**b)
    }

    fn next_pid(&mut self) -> Result<u32, Errno> {
        if self.procs.len() >= MAX_PROCESSES {
            return Err(Errno::TooMany);
        }
        let mut pid = self.last_pid;
        loop {
            pid = if pid >= MAX_PID { 1 } else { pid + 1 };
            if !self.procs.contains_key(&pid) {
                self.last_pid = pid;
                return Ok(pid);
            }
        }
    }
}

static TABLE: IrqMutex<Table> = IrqMutex::new(Table::new());

/// Runs `f` on the process table.
/// Processes whose memory is in flight: between reserving a pid and putting
/// the process in the table (spawn, fork), and between taking an exiting
/// process's address space out of the table and giving its last frame back.
/// Begun with the table's lock held, so a reader holding it sees either none
/// or a count that stays until it lets go.
static IN_TRANSIT: AtomicU32 = AtomicU32::new(0);

/// One process in flight, for as long as this lives.
struct Transit;

impl Transit {
    /// Call with the table's lock held.
    fn begin() -> Self {
        IN_TRANSIT.fetch_add(1, Ordering::Relaxed);
        Transit
    }
}

impl Drop for Transit {
    fn drop(&mut self) {
        IN_TRANSIT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `f` on the process table when no process's memory is in flight, so
/// every frame a process holds is reachable from the table; `None` if one
/// is (retry a moment later).
pub fn with_settled_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE.with(|t| (IN_TRANSIT.load(Ordering::Relaxed) == 0).then(|| f(t)))
}

/// Runs `f` on the settled process table (see [`with_settled_table`])
/// unless someone holds it: `None` when it is held or unsettled.
pub fn try_with_settled_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE
        .try_with(|t| (IN_TRANSIT.load(Ordering::Relaxed) == 0).then(|| f(t)))
        .flatten()
}

/// Runs `f` on the process table unless someone holds it: the debugger may
/// have stopped the kernel inside the table's lock.
pub fn try_with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE.try_with(f)
}

/// Runs `f` on the process table.
pub fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    TABLE.with(f)
}

/// Pid of the running process.
pub fn current_pid() -> u32 {
    TABLE.with(|t| t.current_pid())
}

/// The kernel as a program (pid 0): no address space of its own, the
/// kernel heap as its heap.
pub(crate) fn kernel_process() -> Process {
    let mut kernel = Process::new(KERNEL_PID, KERNEL_PID, "kernel");
    kernel.name = Name::new("kernel").expect("a valid name");
    kernel
}

/// Puts the kernel in the table as pid 0 and prepares the kernel-stack
/// area; before this no program can start. A kernel that runs none never
/// calls it, and lists only itself.
pub fn init() {
    if let Err(e) = kstack::init() {
        panic!("kernel stack area: {e:?}");
    }
    TABLE.with(|t| {
        t.procs.insert(KERNEL_PID, Box::new(kernel_process()));
    });
}

/// Whether [`init`] ran.
fn initialized() -> bool {
    TABLE.with(|t| t.procs.contains_key(&KERNEL_PID))
}

fn spawn_event(pid: u32, parent: u32, name: &str) {
    events::send_if(
        event_class::PROCESS,
        &KernelMsg::ProcessSpawn(ProcessEvent {
            ts_us: time::uptime_us(),
            pid,
            parent,
            name: name.into(),
        }),
    );
}

/// The first frame of a ring-3 program entering at `entry`.
fn user_frame(entry: u64, stack: u64, pid: u32) -> TrapFrame {
    let sel = gdt::selectors();
    TrapFrame {
        rip: entry,
        cs: u64::from(sel.user_code.0),
        rflags: RFLAGS_IF | 0x2,
        rsp: stack,
        ss: u64::from(sel.user_data.0),
        rdi: u64::from(pid),
        ..TrapFrame::default()
    }
}

/// Makes the process's kernel stack and lays `frame` on it.
fn start_task(p: &mut Process, frame: &TrapFrame) -> Result<(), Errno> {
    let stack = kstack::allocate_kernel_stack().map_err(|_| Errno::NoMemory)?;
    // SAFETY: the stack was just mapped and nothing else uses it.
    p.saved_rsp = unsafe { new_task_stack(stack.top(), frame) };
    p.kstack = Some(stack);
    Ok(())
}

/// Starts the built-in program `name` as a child of `parent`.
pub fn spawn(name: &str, parent: u32) -> Result<u32, Errno> {
    if !initialized() {
        return Err(Errno::NoSys);
    }
    let image_name = programs::names().find(|n| *n == name).ok_or(Errno::NoEnt)?;
    let image = programs::find(image_name).ok_or(Errno::NoEnt)?;
    let elf = ElfFile::parse(image).map_err(|e| {
        kerror!("program {name}: bad image: {e:?}");
        Errno::Invalid
    })?;
    let (pid, _transit) = TABLE.with(|t| t.next_pid().map(|pid| (pid, Transit::begin())))?;
    let mut p = Box::new(Process::new(pid, parent, image_name));
    let mut mm = MmStruct::create(pid)?;
    let started = mm
        .load_program(&elf)
        .and_then(|entry| start_task(&mut p, &user_frame(entry, mm.stack_top, pid)));
    if let Err(e) = started {
        mm.destroy();
        return Err(e);
    }
    p.mm = Some(mm);
    let name = p.name;
    TABLE.with(|t| t.procs.insert(pid, p));
    spawn_event(pid, parent, name.as_str());
    kinfo!("spawned {image_name} as pid {pid} (parent {parent})");
    Ok(pid)
}

/// `fork` of the running process, whose trap frame is `frame`: the child
/// resumes from the same system call with 0 in `rax`.
pub fn fork(frame: &TrapFrame) -> Result<u32, Errno> {
    let (child, _transit) = TABLE.with(|t| -> Result<(Box<Process>, Transit), Errno> {
        let pid = t.next_pid()?;
        let transit = Transit::begin();
        let parent = t.current();
        let mm = parent.mm.as_mut().ok_or(Errno::Invalid)?;
        let child_mm = mm.fork(pid)?;
        let mut child = Box::new(Process::new(pid, parent.pid, parent.image));
        child.name = parent.name;
        child.log_level = parent.log_level;
        child.memory = parent.memory.duplicate();
        child.mm = Some(child_mm);
        Ok((child, transit))
    })?;
    let mut child = child;
    let mut child_frame = *frame;
    child_frame.rax = 0;
    if let Err(e) = start_task(&mut child, &child_frame) {
        if let Some(mm) = child.mm.take() {
            mm.destroy();
        }
        return Err(e);
    }
    let (pid, parent, name) = (child.pid, child.parent, child.name);
    TABLE.with(|t| t.procs.insert(pid, child));
    spawn_event(pid, parent, name.as_str());
    Ok(pid)
}

/// Ends the running process: reports its leaks, returns all its memory,
/// leaves a zombie for its parent and switches away for good.
pub fn exit_current(reason: ExitReason) -> ! {
    let (pid, mm, mut memory, transit) = TABLE.with(|t| {
        let p = t.current();
        let transit = Transit::begin();
        (p.pid, p.mm.take(), core::mem::take(&mut p.memory), transit)
    });
    assert!(pid != KERNEL_PID, "the kernel cannot exit");
    let mut leaks = Leaks::default();
    let mut frames_freed = 0;
    if let Some(mm) = mm {
        leaks = memory.report_leaks(&mm, pid);
        // Heap pages go with the address space; the bookkeeping is dropped.
        drop(core::mem::take(&mut memory));
        frames_freed = mm.destroy().0;
    }
    drop(transit);
    let code = match reason {
        ExitReason::Exited(code) => code,
        ExitReason::Killed { .. } => sysabi::KILLED_EXIT_CODE,
    };
    TABLE.with(|t| {
        t.current().state = State::Zombie { code };
        let parent = t.current().parent;
        for p in t.procs.values_mut() {
            if p.parent == pid && p.pid != pid {
                p.parent = KERNEL_PID;
            }
        }
        if let Some(p) = t.get(parent)
            && p.state == State::Waiting
        {
            p.state = State::Runnable;
        }
    });
    events::send_if(
        event_class::PROCESS,
        &KernelMsg::ProcessExit(ProcessExit {
            ts_us: time::uptime_us(),
            pid,
            reason,
            leaked_blocks: leaks.blocks,
            leaked_bytes: leaks.bytes,
            frames_freed,
        }),
    );
    kinfo!(
        "pid {pid} ended ({reason:?}): {frames_freed} frames freed, {} blocks ({} bytes) leaked",
        leaks.blocks,
        leaks.bytes
    );
    loop {
        sched::schedule();
    }
}

/// Removes a zombie and frees its kernel stack; returns its status. Never
/// the running process.
fn reap(t: &mut Table, pid: u32) -> Option<i64> {
    let State::Zombie { code } = t.procs.get(&pid)?.state else {
        return None;
    };
    if pid == t.current {
        return None;
    }
    let p = t.procs.remove(&pid)?;
    if let Some(stack) = p.kstack {
        kstack::free_kernel_stack(stack);
    }
    Some(code)
}

/// `wait(pid)` (-1: any child) for the running process.
pub fn wait(pid: i64) -> Result<(u32, i64), Errno> {
    loop {
        let found = TABLE.with(|t| {
            let me = t.current;
            let children: Vec<(u32, State)> = t
                .iter()
                .filter(|p| p.parent == me && p.pid != me && (pid < 0 || i64::from(p.pid) == pid))
                .map(|p| (p.pid, p.state))
                .collect();
            if children.is_empty() {
                return Some(Err(Errno::NoChild));
            }
            for (child, state) in children {
                if matches!(state, State::Zombie { .. }) {
                    return reap(t, child).map(|code| Ok((child, code)));
                }
            }
            t.current().state = State::Waiting;
            None
        });
        match found {
            Some(result) => return result,
            None => sched::schedule(),
        }
    }
}

/// Reaps zombies nobody will wait for (children of the kernel); returns
/// the images of those reaped.
pub fn reap_orphans() -> Vec<&'static str> {
    TABLE.with(|t| {
        let zombies: Vec<(u32, &'static str)> = t
            .iter()
            .filter(|p| p.parent == KERNEL_PID && matches!(p.state, State::Zombie { .. }))
            .map(|p| (p.pid, p.image))
            .collect();
        zombies
            .into_iter()
            .filter_map(|(pid, image)| reap(t, pid).map(|_| image))
            .collect()
    })
}

/// A page fault in ring 3: resolved (demand paging, copy-on-write, stack
/// growth) or the process is killed with a report.
pub fn on_user_page_fault(frame: &TrapFrame, cr2: u64) {
    let access = Access::from_error_code(frame.error_code);
    let (pid, outcome, vma) = TABLE.with(|t| {
        let p = t.current();
        let Some(mm) = p.mm.as_mut() else {
            return (p.pid, Err(mm_struct::FaultError::NoVma), None);
        };
        let outcome = if frame.error_code & (1 << 3) != 0 {
            Err(mm_struct::FaultError::Protection)
        } else {
            mm.resolve(cr2, access)
        };
        (p.pid, outcome, mm.vma_near(cr2))
    });
    let resolution = outcome.unwrap_or(FaultResolution::Killed);
    events::send_if(
        event_class::FAULT,
        &KernelMsg::PageFault(PageFault {
            ts_us: time::uptime_us(),
            pid,
            addr: cr2,
            error_code: frame.error_code,
            rip: frame.rip,
            resolution,
            vma_start: vma.map_or(0, |v| v.start().as_u64()),
            vma_end: vma.map_or(0, |v| v.end().as_u64()),
            vma_flags: vma.map_or(0, |v| v.flags().wire_bits()),
        }),
    );
    if let Err(why) = outcome {
        let mut line = LineBuf::new();
        let error_code = frame.error_code;
        let _ = write!(
            line,
            "{}",
            PageFaultSentence {
                error_code,
                addr: cr2
            }
        );
        let _ = write!(line, " at rip {:#x} ({why:?})", frame.rip);
        match vma {
            Some(v) => {
                let _ = write!(
                    line,
                    "; nearest VMA {:#x}-{:#x} {} {}",
                    v.start().as_u64(),
                    v.end().as_u64(),
                    v.flags(),
                    v.kind()
                );
            }
            None => {
                let _ = write!(line, "; no VMA");
            }
        }
        kill_current(14, line.as_str());
    }
}

/// Kills the running process after an exception it caused.
pub fn kill_current(vector: u8, why: &str) -> ! {
    let (pid, name) = TABLE.with(|t| {
        let p = t.current();
        (p.pid, p.name)
    });
    kwarn!("killed pid {pid} ({}): {why}", name.as_str());
    exit_current(ExitReason::Killed { vector })
}

/// `allocate_memory` for `pid`.
pub fn allocate_memory(
    pid: u32,
    heap_size: u64,
    shed_size: u64,
    heap_id: Option<u32>,
    shed_id: Option<u32>,
) -> Result<(Option<u32>, Option<u32>), Errno> {
    TABLE.with(|t| {
        let p = t.get(pid).ok_or(Errno::NoProcess)?;
        let mm = p.mm.as_mut().ok_or(Errno::NoProcess)?;
        p.memory
            .allocate(mm, pid, heap_size, shed_size, heap_id, shed_id)
    })
}

/// `free_memory` for `pid`: every heap and shed goes, leaks are reported.
pub fn free_memory(pid: u32) -> Result<Leaks, Errno> {
    TABLE.with(|t| {
        let p = t.get(pid).ok_or(Errno::NoProcess)?;
        let mm = p.mm.as_mut().ok_or(Errno::NoProcess)?;
        Ok(p.memory.free_all(mm, pid))
    })
}

/// The kernel's row: its heap.
fn kernel_row() -> ProgramMemory {
    let s = crate::memory::heap::get_heap_stats();
    let size = s.region_bytes as u64;
    let used = s.used_bytes as u64;
    ProgramMemory {
        pid: KERNEL_PID,
        nr_heaps: 1,
        total_heap_size: size,
        total_heap_used: used,
        total_heap_free: size - used,
        ..ProgramMemory::default()
    }
}

/// `check_memory(pid)`, or of every program and the kernel for -1.
pub fn check_memory(pid: i64) -> Result<Vec<ProgramMemory>, Errno> {
    TABLE.with(|t| {
        let mut rows: Vec<ProgramMemory> = Vec::new();
        if !t.procs.contains_key(&KERNEL_PID) && pid <= 0 {
            rows.push(kernel_row());
        }
        rows.extend(
            t.iter()
                .filter(|p| pid < 0 || i64::from(p.pid) == pid)
                .filter(|p| !matches!(p.state, State::Zombie { .. }))
                .map(|p| {
                    if p.pid == KERNEL_PID {
                        kernel_row()
                    } else {
                        p.memory.summary(p.pid)
                    }
                }),
        );
        if rows.is_empty() && pid >= 0 {
            return Err(Errno::NoProcess);
        }
        Ok(rows)
    })
}

/// `register_program_name` for `pid`.
pub fn register_program_name(pid: u32, name: &str) -> Result<(), Errno> {
    let name = Name::new(name).ok_or(Errno::Invalid)?;
    let parent = TABLE.with(|t| -> Result<u32, Errno> {
        let p = t.get(pid).ok_or(Errno::NoProcess)?;
        p.name = name;
        Ok(p.parent)
    })?;
    events::send_if(
        event_class::PROCESS,
        &KernelMsg::ProcessRename(ProcessEvent {
            ts_us: time::uptime_us(),
            pid,
            parent,
            name: name.as_str().into(),
        }),
    );
    Ok(())
}

/// `get_program_name` of `pid`.
pub fn get_program_name(pid: u32) -> Result<Name, Errno> {
    TABLE.with(|t| t.get(pid).map(|p| p.name).ok_or(Errno::NoProcess))
}

/// `set_log_level` for `pid`: how much the kernel logs about it.
pub fn set_log_level(pid: u32, level: u64) -> Result<(), Errno> {
    if level > 3 {
        return Err(Errno::Invalid);
    }
    TABLE.with(|t| {
        t.get(pid).ok_or(Errno::NoProcess)?.log_level = level as u8;
        Ok(())
    })
}

/// Names of the built-in programs.
pub fn program_names() -> impl Iterator<Item = &'static str> {
    programs::names()
}
