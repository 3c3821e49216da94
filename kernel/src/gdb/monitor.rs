//! `monitor` commands: the kernel's memory introspection as text in gdb.
//!
//! The numbers come from `memory::report`, the same code that answers the
//! telemetry host, so gdb and mmtop never disagree. Commands that take a
//! memory-manager lock refuse to run when the kernel stopped with
//! interrupts off: every such lock is held with interrupts off, so the
//! stopped code might hold it, and taking it again would hang the stub.

use core::fmt::{self, Write};

use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd};

use super::memory;
use super::target::Kernel;
use crate::arch::x86_64::trap::RFLAGS_IF;
use crate::log::LineBuf;
use crate::memory::heap::with_kernel_heap;
use crate::memory::{phys, report};
use crate::mm::frame::{FRAME_SIZE, Frame, PhysAddr};
use crate::mm::heap::BlockState;

/// Heap blocks `monitor heap` lists.
const HEAP_BLOCKS_SHOWN: usize = 16;

const HELP: &str = "\
monitor commands of the in-kernel stub:
  help            this list
  pmm             physical frames: totals and usage by owner
  check           frame-bitmap consistency and a kernel-heap check
  heap            kernel-heap statistics and its first blocks
  whatis ADDR     mapping, frame, owner and heap block of an address
  loglevel N      telemetry log level (0 error .. 3 debug)";

/// Writes one line to gdb's console in a single packet.
fn line(out: &mut ConsoleOutput<'_>, args: fmt::Arguments<'_>) {
    let mut buf = LineBuf::new();
    let _ = buf.write_fmt(args);
    let _ = buf.write_str("\n");
    out.write_raw(buf.as_str().as_bytes());
}

macro_rules! say {
    ($out:expr, $($t:tt)*) => { line($out, format_args!($($t)*)) };
}

/// Parses `0x`-prefixed hex or decimal.
fn parse_number(word: &str) -> Option<u64> {
    match word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => word.parse().ok(),
    }
}

fn kib(frames: u64) -> u64 {
    frames * FRAME_SIZE / 1024
}

fn pmm(out: &mut ConsoleOutput<'_>) {
    let s = report::memory_stats();
    let used = s.total_frames - s.free_frames;
    say!(
        out,
        "frames: {} total ({} KiB), {} free ({} KiB), {} used",
        s.total_frames,
        kib(s.total_frames),
        s.free_frames,
        kib(s.free_frames),
        used
    );
    let u = s.usage;
    for (name, n) in [
        ("free", u.free),
        ("unusable", u.unusable),
        ("reserved", u.reserved),
        ("kernel image", u.kernel_image),
        ("boot info", u.boot_info),
        ("bitmap", u.bitmap),
        ("kernel heap", u.kernel_heap),
        ("kernel stack", u.kernel_stack),
        ("page tables", u.page_table),
        ("processes", u.process),
        ("other", u.other),
    ] {
        say!(out, "  {name:<13} {n:>8} frames {:>9} KiB", kib(n));
    }
}

fn check(out: &mut ConsoleOutput<'_>) {
    let f = report::frame_check();
    say!(
        out,
        "frame bitmap: {} ({} frames; free {} counted / {} recorded; used without owner {}, \
         free with owner {}, invalid owners {}, summary mismatches {}, padding mismatches {})",
        if f.consistent {
            "consistent"
        } else {
            "INCONSISTENT"
        },
        f.nr_frames,
        f.free_counted,
        f.free_recorded,
        f.used_without_owner,
        f.free_with_owner,
        f.invalid_owners,
        f.summary_mismatches,
        f.padding_mismatches
    );
    match with_kernel_heap(|h| report::heap_check(h)) {
        Some(h) if h.ok => say!(
            out,
            "kernel heap: ok ({} blocks, {} used bytes)",
            h.stats.total_blocks,
            h.stats.used_bytes
        ),
        Some(h) => say!(out, "kernel heap: BROKEN: {:?} at {:#x}", h.error, h.addr),
        None => say!(out, "kernel heap: not set up"),
    }
}

fn heap(out: &mut ConsoleOutput<'_>) {
    let h = report::memory_stats().kernel_heap;
    say!(
        out,
        "kernel heap: region {} of max {} bytes; used {} free {} overhead {}",
        h.region_bytes,
        h.max_bytes,
        h.used_bytes,
        h.free_bytes,
        h.overhead_bytes
    );
    say!(
        out,
        "blocks: {} ({} used, {} free), largest free {}",
        h.total_blocks,
        h.used_blocks,
        h.free_blocks,
        h.largest_free
    );
    with_kernel_heap(|heap| {
        for block in heap.heap().walk().take(HEAP_BLOCKS_SHOWN) {
            match block {
                Ok(b) if b.state == BlockState::Used => say!(
                    out,
                    "  {:#x} used {:>8} bytes  caller {:#x}",
                    b.payload,
                    b.requested,
                    b.tag.key
                ),
                Ok(b) => say!(out, "  {:#x} free {:>8} bytes", b.payload, b.size),
                Err(e) => {
                    say!(out, "  walk stopped: {e}");
                    break;
                }
            }
        }
        if heap.stats().total_blocks > HEAP_BLOCKS_SHOWN {
            say!(out, "  ...");
        }
    });
}

fn whatis(out: &mut ConsoleOutput<'_>, addr: u64) {
    let Some(m) = memory::mapping(addr) else {
        say!(out, "{addr:#x}: not mapped in the current address space");
        return;
    };
    let phys = m.phys.as_u64() + (addr - m.virt.as_u64());
    say!(
        out,
        "{addr:#x}: mapped by a {:?} page at {:#x} -> {:#x}, {:?}",
        m.size,
        m.virt.as_u64(),
        m.phys.as_u64(),
        m.flags
    );
    let frame = Frame::containing_address(PhysAddr::new(phys));
    match phys::owner(frame) {
        Some(owner) => say!(
            out,
            "physical {phys:#x}: frame {}, owned by {owner:?}",
            frame.number()
        ),
        None => say!(out, "physical {phys:#x}: frame {}, free", frame.number()),
    }
    let found = with_kernel_heap(|heap| {
        if !(heap.heap().start() as u64..heap.heap().end() as u64).contains(&addr) {
            return false;
        }
        for b in heap.heap().walk().flatten() {
            if (b.addr as u64..(b.addr + b.size) as u64).contains(&addr) {
                match b.state {
                    BlockState::Used => say!(
                        out,
                        "kernel heap block {:#x}: {} bytes used, offset {} into the payload, \
                         allocated from {:#x}",
                        b.payload,
                        b.requested,
                        addr as i64 - b.payload as i64,
                        b.tag.key
                    ),
                    BlockState::Free => say!(out, "kernel heap: free block {:#x}", b.addr),
                }
                return true;
            }
        }
        say!(out, "inside the kernel heap region, in no block");
        true
    });
    if found != Some(true) {
        say!(out, "not in the kernel heap");
    }
}

impl MonitorCmd for Kernel {
    fn handle_monitor_cmd(
        &mut self,
        cmd: &[u8],
        mut out: ConsoleOutput<'_>,
    ) -> Result<(), Self::Error> {
        let out = &mut out;
        let cmd = core::str::from_utf8(cmd).unwrap_or("");
        let mut words = cmd.split_ascii_whitespace();
        let name = words.next().unwrap_or("help");
        let needs_locks = matches!(name, "pmm" | "check" | "heap" | "whatis");
        if needs_locks && self.frame.rflags & RFLAGS_IF == 0 {
            say!(
                out,
                "the kernel stopped with interrupts off, maybe holding a memory-manager lock; \
                 `monitor {name}` could hang it. Continue to a point with interrupts on."
            );
            return Ok(());
        }
        match (name, words.next()) {
            ("help", _) => {
                for l in HELP.lines() {
                    say!(out, "{l}");
                }
            }
            ("pmm", _) => pmm(out),
            ("check", _) => check(out),
            ("heap", _) => heap(out),
            ("whatis", Some(word)) => match parse_number(word) {
                Some(addr) => whatis(out, addr),
                None => say!(out, "whatis: {word:?} is not an address"),
            },
            ("loglevel", Some(word)) => match word.parse::<u8>() {
                Ok(level @ 0..=3) => {
                    crate::log::set_level(level);
                    say!(out, "log level {level}");
                }
                _ => say!(out, "loglevel: 0 (error) .. 3 (debug)"),
            },
            _ => say!(
                out,
                "unknown or incomplete command {cmd:?}; try `monitor help`"
            ),
        }
        Ok(())
    }
}
