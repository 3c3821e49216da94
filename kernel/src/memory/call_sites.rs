//! Who allocated each live kernel-heap block, and when: the records the
//! kernel leak scan (`introspect::kleak`) reports from.
//!
//! The stack depot and the trace table live in frames reached through the
//! direct map, not in the kernel's data: the scan reads data and bss as
//! roots, and a table of every block's address there would make every
//! block look referenced. Both are fixed in size; a stack or block that
//! does not fit is counted, and the scan still finds such a block, only
//! without its call site.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::x86_64::cpu;
use crate::memory::kstack;
use crate::memory::phys::FrameSlice;
use crate::mm::frame::Owner;
use crate::mm::leak::{CallStack, STACK_DEPTH, StackDepot, StackId, Trace, TraceTable};
use crate::time;

/// Distinct call stacks kept (64 bytes each).
const DEPOT_STACKS: usize = 2048;
/// Slots of the depot's hash index.
const DEPOT_INDEX: usize = 4096;
/// Slots of the trace table (16 bytes each); 7/8 of them can be used.
const TRACE_SLOTS: usize = 16384;

/// Whether allocations record their call site (`callsites=`).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns call-site recording on or off for blocks allocated from now on.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether allocations record their call site.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The call stack of the code running now, up from the function this is
/// inlined into; empty (all zero) when recording is off or the stack is
/// not one the kernel knows.
#[inline(always)]
pub fn capture() -> CallStack {
    let mut stack = [0; STACK_DEPTH];
    if enabled()
        && let Some(bounds) = current_stack()
    {
        cpu::backtrace(bounds, &mut stack);
    }
    stack
}

/// `(bottom, top)` of the stack the CPU runs on: the boot stack or a
/// process's kernel stack.
fn current_stack() -> Option<(u64, u64)> {
    kstack::stack_containing(cpu::stack_pointer())
}

/// Traces of the kernel heap's live blocks and the stacks they name.
pub struct CallSites {
    depot: StackDepot<'static>,
    traces: TraceTable<&'static mut [Trace]>,
}

impl CallSites {
    /// Sets the tables aside (392 KiB, never freed); `None`
    /// without frames.
    pub fn new() -> Option<Self> {
        let stacks = FrameSlice::<CallStack>::new(DEPOT_STACKS, Owner::KernelHeap)?.leak();
        let index = FrameSlice::<u16>::new(DEPOT_INDEX, Owner::KernelHeap)?.leak();
        let slots = FrameSlice::<Trace>::new(TRACE_SLOTS, Owner::KernelHeap)?.leak();
        Some(Self {
            depot: StackDepot::new(stacks, index),
            traces: TraceTable::new(slots),
        })
    }

    /// Records that the block at `addr` was just allocated from `stack`
    /// (all zero: unknown).
    pub fn record(&mut self, addr: u64, stack: &CallStack) {
        let id = if stack[0] == 0 {
            StackId::NONE
        } else {
            self.depot.intern(stack)
        };
        let born_ms = (time::uptime_us() / 1000) as u32;
        // A full table leaves the block untraced: the scan still reads
        // it, and counts it in `LeakScanEnd::untraced`.
        let _ = self.traces.insert(Trace::new(addr, born_ms, id));
    }

    /// Forgets the block at `addr` (freed).
    pub fn forget(&mut self, addr: u64) {
        self.traces.remove(addr);
    }

    /// The trace of the live block at `addr`.
    pub fn trace(&self, addr: u64) -> Option<&Trace> {
        self.traces.get(addr)
    }

    /// The trace of the live block at `addr`, to mark it reported.
    pub fn trace_mut(&mut self, addr: u64) -> Option<&mut Trace> {
        self.traces.get_mut(addr)
    }

    /// The call stack named `id`.
    pub fn stack(&self, id: StackId) -> Option<&CallStack> {
        self.depot.get(id)
    }
}
