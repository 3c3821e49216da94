//! The kernel leak scan, after Linux's kmemleak: a kernel-heap block that
//! no word of the kernel's data, of a live kernel stack or of a reachable
//! block points into is reported with its size, age, call stack and first
//! bytes.
//!
//! 1. Under the heap's lock, the blocks in use are copied into a work area
//!    (frames of its own, outside the heap and the data the scan reads:
//!    nothing the scan keeps may look like a reference) with their birth time and call stack.
//! 2. The roots are read with interrupts on: the kernel's data and bss
//!    (less the boot stack and the telemetry link's record of addresses),
//!    the running stack from the scan's caller's frame up with the
//!    callee-saved registers, and, under the process table's
//!    lock, the live part of every switched-away task's kernel stack,
//!    where its saved registers and trap frame are.
//! 3. Every block a root points into (interior pointers included) is
//!    scanned in turn, until no new block is reached.
//! 4. Each unreached block at least `min_age_ms` old that is still the
//!    same block (same address, same birth) is a leak. A leak the previous
//!    scan reported too is *confirmed*: two scans in a row is what makes
//!    kmemleak's reports trustworthy, and here they say so themselves.
//!
//! The kernel is not preemptible, so from the idle loop nothing but
//! interrupt handlers runs during a scan. From the debugger (the kernel
//! stopped anywhere) a scan refuses to start if the heap or the process
//! table is held, and reports `Busy`.

use core::sync::atomic::{AtomicBool, Ordering};

use probe_proto::{KernelLeak, LEAK_PREVIEW_BYTES, LEAK_STACK_DEPTH, LeakScanEnd, LeakScanStatus};

use crate::arch::x86_64::{boot, cpu};
use crate::memory::heap::{KernelHeap, try_with_kernel};
use crate::memory::phys::FrameSlice;
use crate::memory::{kstack, virt};
use crate::mm::frame::{FRAME_SIZE, Owner};
use crate::mm::heap::BlockState;
use crate::mm::leak::{Candidate, Marker, StackId};
use crate::mm::paging::VirtAddr;
use crate::telemetry::link;
use crate::{proc, time};

/// Set while a scan runs: the debugger may stop the kernel in one and
/// start another.
static SCANNING: AtomicBool = AtomicBool::new(false);

/// Scans the kernel heap for unreferenced blocks at least `min_age_ms`
/// old, calls `report` for each, and returns the verdict.
#[inline(never)]
pub fn scan(min_age_ms: u32, mut report: impl FnMut(&KernelLeak)) -> LeakScanEnd {
    // The callers' frames, from this one's saved frame pointer up, and the
    // registers they left are roots. The scan's own frames are not: they
    // reuse stack its own earlier steps left stale copies of block
    // addresses in (the heap walk's last block, say).
    let callers = Callers {
        frame: cpu::frame_pointer(),
        registers: cpu::callee_saved_registers(),
    };
    let started = time::uptime_us();
    let mut end = LeakScanEnd {
        min_age_ms,
        ..LeakScanEnd::default()
    };
    if SCANNING.swap(true, Ordering::Acquire) {
        end.status = LeakScanStatus::Busy;
    } else {
        end.status = run(min_age_ms, &callers, &mut report, &mut end);
        SCANNING.store(false, Ordering::Release);
    }
    end.ts_us = time::uptime_us();
    end.duration_us = end.ts_us - started;
    end
}

/// Where the scan's callers keep their state: their stack frames from
/// `frame` up, and the callee-saved registers as they left them.
struct Callers {
    frame: u64,
    registers: [u64; 6],
}

fn run(
    min_age_ms: u32,
    callers: &Callers,
    report: &mut dyn FnMut(&KernelLeak),
    end: &mut LeakScanEnd,
) -> LeakScanStatus {
    // Room for the blocks in use now and a few more allocated before the
    // copy; later ones are younger than the scan and not candidates.
    let Some(in_use) = try_with_kernel(|k| k.heap().stats().used_blocks) else {
        return LeakScanStatus::Busy;
    };
    let room = in_use + 64;
    let work = FrameSlice::<Candidate>::new(room, Owner::KernelHeap)
        .zip(FrameSlice::<u32>::new(room, Owner::KernelHeap));
    let Some((mut candidates, mut gray)) = work else {
        return LeakScanStatus::NoMemory;
    };
    let Some((n, untraced)) = try_with_kernel(|k| copy_candidates(k, &mut candidates)) else {
        return LeakScanStatus::Busy;
    };
    end.blocks = n as u64;
    end.untraced = untraced;
    let mut marker = Marker::new(&mut candidates[..n], &mut gray);
    scan_image(&mut marker);
    marker.scan_words(&callers.registers);
    scan_running_stack(&mut marker, callers.frame);
    let stacks = proc::try_with_settled_table(|t| {
        for (_, saved, top) in t.switched_stacks() {
            scan_range(&mut marker, saved, top);
        }
    });
    if stacks.is_none() {
        return LeakScanStatus::Busy;
    }
    while let Some((start, stop)) = marker.next_gray() {
        scan_range(&mut marker, start, stop);
    }
    end.scanned_bytes = marker.scanned_words() * 8;
    let now_ms = (time::uptime_us() / 1000) as u32;
    for c in candidates[..n].iter() {
        let old = now_ms.wrapping_sub(c.born_ms) >= min_age_ms;
        if c.marked || !old {
            continue;
        }
        if let Some(leak) = try_with_kernel(|k| verdict(k, c, now_ms)).flatten() {
            end.leaks += 1;
            end.confirmed += u32::from(leak.confirmed);
            report(&leak);
        }
    }
    // A block reached this time starts over: only two reports in a row
    // confirm a leak.
    try_with_kernel(|k| {
        if let Some(sites) = k.sites_mut() {
            for c in candidates[..n].iter().filter(|c| c.marked) {
                if let Some(t) = sites.trace_mut(c.start) {
                    t.reported = false;
                }
            }
        }
    });
    LeakScanStatus::Done
}

/// Copies the used blocks into `out` in address order; how many, and how
/// many of them have no call-site record.
fn copy_candidates(k: &KernelHeap, out: &mut [Candidate]) -> (usize, u64) {
    let mut n = 0;
    let mut untraced = 0;
    // A damaged header ends the walk: the heap check reports it.
    for b in k.heap().heap().walk().map_while(Result::ok) {
        if b.state != BlockState::Used || n == out.len() {
            continue;
        }
        let start = b.payload as u64;
        let trace = k.sites().and_then(|s| s.trace(start));
        untraced += u64::from(trace.is_none());
        out[n] = Candidate {
            start,
            end: start + b.requested as u64,
            born_ms: trace.map_or(0, |t| t.born_ms),
            stack: trace.map_or(StackId::NONE.0, |t| t.stack),
            marked: false,
        };
        n += 1;
    }
    (n, untraced)
}

/// The report for unreached candidate `c`, if it is still the block the
/// scan saw; marks it reported.
fn verdict(k: &mut KernelHeap, c: &Candidate, now_ms: u32) -> Option<KernelLeak> {
    let ptr = core::ptr::NonNull::new(c.start as *mut u8)?;
    let block = k.heap().heap().block_of(ptr).ok()?;
    if block.requested as u64 != c.end - c.start {
        return None;
    }
    let mut leak = KernelLeak {
        addr: c.start,
        size: c.end - c.start,
        age_ms: u64::from(now_ms.wrapping_sub(c.born_ms)),
        ..KernelLeak::default()
    };
    if let Some(sites) = k.sites_mut() {
        let trace = sites.trace_mut(c.start)?;
        if trace.born_ms != c.born_ms {
            return None;
        }
        leak.confirmed = trace.reported;
        trace.reported = true;
        if let Some(stack) = sites.stack(StackId(c.stack)) {
            leak.stack.copy_from_slice(&stack[..LEAK_STACK_DEPTH]);
        }
    }
    let shown = (leak.size as usize).min(LEAK_PREVIEW_BYTES);
    read_bytes(c.start, &mut leak.first_bytes[..shown]);
    Some(leak)
}

/// The kernel's data and bss, without the boot stack (its guard page is
/// unmapped and its dead part holds stale pointers; its live part is read
/// as a stack) and without the telemetry link's state (the addresses it
/// last reported, kept to predict the next, are not references).
fn scan_image(marker: &mut Marker<'_>) {
    let (data, data_end) = virt::image_sections()[2];
    let mut skip = [
        (boot::stack_guard_page(), boot::boot_stack().1),
        link::footprint(),
    ];
    skip.sort_unstable();
    let mut from = data;
    for (skip_start, skip_end) in skip.into_iter().chain([(data_end, data_end)]) {
        scan_mapped(marker, from, skip_start.clamp(from, data_end));
        from = from.max(skip_end.min(data_end));
    }
}

/// [`scan_range`] over `[start, end)` page by page, skipping any page that
/// is not mapped.
fn scan_mapped(marker: &mut Marker<'_>, start: u64, end: u64) {
    let mut at = start;
    while at < end {
        let next = ((at & !(FRAME_SIZE - 1)) + FRAME_SIZE).min(end);
        if virt::get_physical_address(VirtAddr::new(at)).is_some() {
            scan_range(marker, at, next);
        }
        at = next;
    }
}

/// The stack the scan runs on, from `from` to its top.
fn scan_running_stack(marker: &mut Marker<'_>, from: u64) {
    if let Some((_, top)) = kstack::stack_containing(from) {
        scan_range(marker, from, top);
    }
}

/// Shows `marker` every aligned word of `[start, end)`, which the scan
/// knows to be mapped: the kernel's data, a live stack, or a block inside
/// the kernel heap's region (which never shrinks). The loop is the scan's
/// hot path: one load and a range test a word, the search only for words
/// that land in the heap.
#[allow(unsafe_code)]
fn scan_range(marker: &mut Marker<'_>, start: u64, end: u64) {
    let (lo, hi) = marker.bounds();
    let mut at = start.next_multiple_of(8) as *const u64;
    let stop = (end & !7) as *const u64;
    let words = (stop as u64).saturating_sub(at as u64) / 8;
    while at < stop {
        // SAFETY: mapped kernel memory, per the callers; volatile because
        // interrupt handlers may write it meanwhile, and a torn or stale
        // word only makes the scan conservative.
        let w = unsafe { at.read_volatile() };
        if w >= lo && w < hi {
            marker.mark(w);
        }
        // SAFETY: stays within `[start, end)` or one past it.
        at = unsafe { at.add(1) };
    }
    marker.add_scanned(words);
}

/// Reads `out.len()` bytes of a kernel-heap block at `addr`.
#[allow(unsafe_code)]
fn read_bytes(addr: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        // SAFETY: the block's payload, inside the kernel heap's mapped
        // region, checked by the caller under the heap's lock.
        *b = unsafe { ((addr + i as u64) as *const u8).read_volatile() };
    }
}
