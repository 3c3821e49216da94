//! `selftest=mm`: the memory manager under load, with deliberate mistakes.
//!
//! Phases, each announced by a log line `mm: <phase>` so the host can
//! attribute events: frames (single and contiguous, a double free and a
//! free of a reserved frame), paging (an address space with user pages, a
//! kernel scratch mapping), heap (`kmalloc` family, Rust collections,
//! growth, a further heap), errors (an invalid free, a double free, a red
//! zone overflow). Telemetry is drained between batches so no event is
//! dropped. It ends with `mm: done` and checks the frame bitmap and the
//! kernel heap; the kernel then keeps running.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ptr::NonNull;

use probe_proto::KernelMsg;

use crate::arch::x86_64::phys_to_virt;
use crate::introspect::memory as report;
use crate::memory::heap::{
    create_heap, get_heap_stats, kcalloc, kfree, kmalloc, kmalloc_aligned, kmalloc_physical,
    krealloc,
};
use crate::memory::phys;
use crate::memory::virt::{self, AddressSpace, KERNEL_DATA};
use crate::mm::frame::{Frame, FrameError, Owner};
use crate::mm::heap::{HeapError, RED_ZONE_BYTE};
use crate::mm::paging::{PageFlags, VirtAddr};
use crate::telemetry;

/// Owner tag of the frames this scenario takes.
pub const TEST_OWNER: Owner = Owner::Other(1);
/// A free kernel-half range for the scratch mapping (PML4 slot 400).
const SCRATCH: u64 = 0xFFFF_C800_0000_0000;
/// Where the further heap lives (PML4 slot 401).
const EXTRA_HEAP: u64 = 0xFFFF_C880_0000_0000;
/// User address of the test address space's pages.
const USER_BASE: u64 = 0x40_0000;

/// xorshift64*: a seeded workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Counts failures; the scenario goes on after one so the host sees all.
struct Verdict {
    failures: u32,
}

impl Verdict {
    fn expect(&mut self, ok: bool, what: &str) {
        if !ok {
            self.failures += 1;
            kerror!("mm: FAILED: {what}");
        }
    }
}

/// Runs the scenario; returns the number of failed expectations.
pub fn run() -> u32 {
    let mut v = Verdict { failures: 0 };
    let (_, free_before) = phys::counts();
    let tables_before = phys::usage().page_table;
    let heap_before = get_heap_stats().region_bytes;
    phase("frames");
    frames(&mut v);
    phase("paging");
    paging(&mut v);
    phase("heap");
    heap(&mut v);
    phase("errors");
    errors(&mut v);
    let (_, free_after) = phys::counts();
    let heap = get_heap_stats();
    let heap_frames = ((heap.region_bytes - heap_before) / 4096) as u64;
    let new_tables = phys::usage().page_table - tables_before;
    kinfo!(
        "mm: free frames {free_before} before, {free_after} after: kernel heap grew by \
         {heap_frames} frames, {new_tables} kernel page tables made; {} used blocks",
        heap.used_blocks
    );
    v.expect(
        free_before - free_after == heap_frames + new_tables,
        "every frame taken is accounted for",
    );
    v.expect(phys::usage().other == 0, "every test frame returned");
    let frame_check = report::frame_check();
    v.expect(frame_check.consistent, "frame bitmap consistent");
    let heap_ok = crate::memory::heap::with_kernel_heap(|h| h.heap().check().is_ok());
    v.expect(
        heap_ok == Some(true),
        "kernel heap consistent after bad frees",
    );
    telemetry::send_waiting(&KernelMsg::MemoryStats(report::memory_stats()));
    if v.failures == 0 {
        kinfo!("mm: done, all checks passed");
    } else {
        kerror!("mm: done, {} checks FAILED", v.failures);
    }
    telemetry::drain();
    v.failures
}

fn phase(name: &str) {
    telemetry::drain();
    kinfo!("mm: {name}");
}

fn frames(v: &mut Verdict) {
    let mut held = Vec::with_capacity(1000);
    for i in 0..1000 {
        match phys::alloc_frame(TEST_OWNER) {
            Ok(f) => held.push(f),
            Err(e) => {
                v.expect(false, "alloc_frame");
                kerror!("alloc_frame #{i}: {e:?}");
                break;
            }
        }
        if i % 200 == 0 {
            telemetry::drain();
        }
    }
    let mut sorted = held.clone();
    sorted.sort_unstable();
    sorted.dedup();
    v.expect(sorted.len() == held.len(), "frames handed out once each");
    let run = phys::alloc_contiguous(64, 16, TEST_OWNER);
    v.expect(
        run.is_ok_and(|r| r.len() == 64 && r.start().number() % 16 == 0),
        "64 contiguous frames aligned to 16",
    );
    telemetry::drain();
    for (i, f) in held.iter().enumerate() {
        v.expect(phys::free_frame(*f) == Ok(TEST_OWNER), "free_frame");
        if i % 200 == 0 {
            telemetry::drain();
        }
    }
    if let Ok(r) = run {
        v.expect(phys::free_contiguous(r).is_ok(), "free_contiguous");
    }
    // Deliberate: a double free and a free of the kernel image.
    let first = held.first().copied().unwrap_or(Frame::from_number(0x400));
    v.expect(
        phys::free_frame(first) == Err(FrameError::DoubleFree),
        "double free of a frame refused",
    );
    let image = phys::kernel_image().start();
    v.expect(
        phys::free_frame(image) == Err(FrameError::Reserved),
        "free of a kernel-image frame refused",
    );
    v.expect(
        phys::free_page(crate::mm::frame::PhysAddr::new(0x1234)) == Err(FrameError::Unaligned),
        "free_page of an unaligned address refused",
    );
}

fn paging(v: &mut Verdict) {
    let tables_before = phys::usage().page_table;
    match AddressSpace::new() {
        Ok(mut space) => {
            let flags = PageFlags::WRITABLE | PageFlags::USER | PageFlags::NO_EXECUTE;
            for i in 0..64 {
                let Ok(frame) = phys::alloc_frame(TEST_OWNER) else {
                    v.expect(false, "frame for a user page");
                    break;
                };
                let va = VirtAddr::new(USER_BASE + i * 4096);
                v.expect(space.map_page(va, frame, flags).is_ok(), "map user page");
                v.expect(
                    space.get_physical_address(va) == Some(frame.start_address()),
                    "user page translates to its frame",
                );
            }
            telemetry::drain();
            for i in 0..32 {
                let va = VirtAddr::new(USER_BASE + i * 4096);
                match space.unmap_page(va) {
                    Ok(frame) => {
                        let _ = phys::free_frame(frame);
                    }
                    Err(_) => v.expect(false, "unmap user page"),
                }
            }
            v.expect(
                space
                    .get_physical_address(VirtAddr::new(USER_BASE))
                    .is_none(),
                "unmapped page no longer translates",
            );
            telemetry::drain();
            // The rest go back with the space.
            let freed = space.destroy(|m| {
                let _ = phys::free_frame(Frame::containing_address(m.phys));
            });
            v.expect(freed == 4, "destroy returns root, PDPT, PD and PT");
        }
        Err(e) => {
            v.expect(false, "create address space");
            kerror!("address space: {e}");
        }
    }
    v.expect(
        phys::usage().page_table == tables_before,
        "every table frame of the space returned",
    );

    // A kernel scratch page: map, write through it, read through the direct
    // map, unmap.
    let va = VirtAddr::new(SCRATCH);
    if let Ok(frame) = phys::alloc_frame(TEST_OWNER) {
        v.expect(
            virt::map_page(va, frame, KERNEL_DATA).is_ok(),
            "map kernel page",
        );
        let p = SCRATCH as *mut u64;
        let alias = phys_to_virt(frame.start_address().as_u64()) as *const u64;
        // SAFETY: `p` was just mapped to `frame`, which this function owns;
        // `alias` is the same frame through the direct map.
        let seen = unsafe {
            p.write_volatile(0x5EED_CAFE);
            alias.read_volatile()
        };
        v.expect(seen == 0x5EED_CAFE, "kernel mapping reaches its frame");
        v.expect(
            virt::flags_of(va).is_some_and(|f| f.contains(PageFlags::NO_EXECUTE)),
            "kernel data page is no-execute",
        );
        v.expect(virt::unmap_page(va) == Ok(frame), "unmap kernel page");
        v.expect(
            virt::get_physical_address(va).is_none(),
            "unmapped kernel page no longer translates",
        );
        v.expect(phys::free_frame(frame).is_ok(), "free scratch frame");
    }
    let wx = virt::audit_wx();
    v.expect(wx.writable_executable == 0, "no writable+executable page");
}

fn heap(v: &mut Verdict) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // kmalloc / krealloc / kfree, random sizes, filling and checking bytes.
    let mut live: Vec<(NonNull<u8>, usize, u8)> = Vec::with_capacity(512);
    for op in 0..4000u32 {
        if live.len() < 400 && (live.is_empty() || rng.below(3) != 0) {
            let cap = if rng.below(16) == 0 { 16384 } else { 256 };
            let size = 1 + rng.below(cap) as usize;
            let Some(p) = kmalloc(size) else {
                v.expect(false, "kmalloc");
                continue;
            };
            let fill = op as u8;
            // SAFETY: `p` is a fresh block of `size` bytes.
            unsafe { p.as_ptr().write_bytes(fill, size) };
            live.push((p, size, fill));
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let (p, size, fill) = live.swap_remove(i);
            // SAFETY: the block is live and `size` bytes long.
            let intact = unsafe { core::slice::from_raw_parts(p.as_ptr(), size) }
                .iter()
                .all(|&b| b == fill);
            v.expect(intact, "block contents intact");
            if rng.below(4) == 0 {
                let new_size = 1 + rng.below(1024) as usize;
                match krealloc(p, new_size) {
                    Ok(q) => {
                        let keep = size.min(new_size);
                        // SAFETY: `q` holds `new_size` bytes; the first
                        // `keep` were copied from the old block.
                        let kept = unsafe { core::slice::from_raw_parts(q.as_ptr(), keep) }
                            .iter()
                            .all(|&b| b == fill);
                        v.expect(kept, "krealloc keeps contents");
                        // SAFETY: as above.
                        unsafe { q.as_ptr().write_bytes(fill, new_size) };
                        live.push((q, new_size, fill));
                    }
                    Err(_) => v.expect(false, "krealloc"),
                }
            } else {
                v.expect(kfree(p).is_ok(), "kfree");
            }
        }
        if op % 250 == 0 {
            telemetry::drain();
        }
    }
    for (p, _, _) in live.drain(..) {
        v.expect(kfree(p).is_ok(), "kfree at the end");
    }
    telemetry::drain();

    // Alignment, zeroing, physical addresses.
    for shift in 4..13 {
        let align = 1usize << shift;
        let p = kmalloc_aligned(100, align);
        v.expect(
            p.is_some_and(|p| p.addr().get().is_multiple_of(align)),
            "kmalloc_aligned honours alignment",
        );
        if let Some(p) = p {
            v.expect(kfree(p).is_ok(), "kfree aligned");
        }
    }
    if let Some(p) = kcalloc(100, 33) {
        // SAFETY: kcalloc handed out 3300 bytes.
        let zero = unsafe { core::slice::from_raw_parts(p.as_ptr(), 3300) }
            .iter()
            .all(|&b| b == 0);
        v.expect(zero, "kcalloc zeroes");
        v.expect(kfree(p).is_ok(), "kfree kcalloc");
    } else {
        v.expect(false, "kcalloc");
    }
    v.expect(kcalloc(usize::MAX, 2).is_none(), "kcalloc overflow refused");
    if let Some((p, pa)) = kmalloc_physical(4096) {
        let expect = virt::get_physical_address(VirtAddr::new(p.addr().get() as u64));
        v.expect(
            expect == Some(pa) && pa.as_u64().is_multiple_of(4096),
            "kmalloc_physical gives the block's frame",
        );
        v.expect(kfree(p).is_ok(), "kfree physical");
    } else {
        v.expect(false, "kmalloc_physical");
    }
    telemetry::drain();

    // Rust collections through GlobalAlloc, enough to grow the heap.
    let region_before = get_heap_stats().region_bytes;
    {
        let mut boxes: Vec<Box<[u64]>> = Vec::new();
        for i in 0..200u64 {
            boxes.push(alloc::vec![i; 1 + (i as usize * 37) % 1500].into_boxed_slice());
            if i % 50 == 0 {
                telemetry::drain();
            }
        }
        let mut map = BTreeMap::new();
        for i in 0..300u64 {
            map.insert(i.wrapping_mul(0x9E37_79B9), i);
        }
        v.expect(map.len() == 300, "BTreeMap through the kernel heap");
        v.expect(
            boxes
                .iter()
                .enumerate()
                .all(|(i, b)| b.iter().all(|&x| x == i as u64)),
            "boxed slices intact",
        );
        telemetry::drain();
    }
    telemetry::drain();
    v.expect(
        get_heap_stats().region_bytes > region_before,
        "the kernel heap grew from the frame allocator",
    );

    // A further heap, read-only to everything but its own calls.
    match create_heap(
        EXTRA_HEAP,
        EXTRA_HEAP + 16384,
        EXTRA_HEAP + (1 << 20),
        true,
        true,
    ) {
        Ok(mut h) => {
            let mut blocks = Vec::new();
            for i in 0..64 {
                match h.alloc(256 + i * 8, 16, 0xABC0 + i as u64, true, 0) {
                    Ok(p) => blocks.push(p),
                    Err(_) => v.expect(false, "alloc in the further heap"),
                }
            }
            v.expect(
                h.stats().region_bytes > 16384,
                "the further heap grew past its first pages",
            );
            v.expect(
                virt::flags_of(VirtAddr::new(EXTRA_HEAP))
                    .is_some_and(|f| !f.contains(PageFlags::WRITABLE)),
                "read-only heap pages are mapped read-only",
            );
            for p in blocks {
                v.expect(h.free(p, 0).is_ok(), "free in the further heap");
            }
            v.expect(h.heap().check().is_ok(), "further heap consistent");
        }
        Err(e) => {
            v.expect(false, "create_heap");
            kerror!("create_heap: {e:?}");
        }
    }
    telemetry::drain();
}

fn errors(v: &mut Verdict) {
    let Some(p) = kmalloc(64) else {
        v.expect(false, "kmalloc for the error cases");
        return;
    };
    // The payload's old contents would otherwise decide what the heap
    // reads where it looks for a header in front of an interior pointer.
    // SAFETY: the 64 bytes were just handed out by kmalloc.
    unsafe { p.as_ptr().write_bytes(0, 64) };
    // Invalid: a pointer into the middle of a live block.
    // SAFETY: 8 bytes into a 64-byte block: in bounds.
    let inside = unsafe { p.add(8) };
    v.expect(
        matches!(kfree(inside), Err(HeapError::InvalidPointer { .. })),
        "invalid free reported",
    );
    v.expect(kfree(p).is_ok(), "the block itself frees");
    v.expect(
        matches!(kfree(p), Err(HeapError::DoubleFree { .. })),
        "double free reported",
    );
    telemetry::drain();
    // Overflow into the red zone: reported at free, the block stays; once
    // the guard byte is put back, it frees normally.
    let red_zones = crate::memory::heap::with_kernel_heap(|h| h.heap().red_zones());
    if red_zones == Some(true)
        && let Some(q) = kmalloc(40)
    {
        // SAFETY: deliberately one byte past the 40 requested, inside the
        // red zone the heap keeps after every block: heap memory, mapped.
        unsafe { q.as_ptr().add(40).write_volatile(0) };
        v.expect(
            matches!(kfree(q), Err(HeapError::RedZoneOverflow { offset: 40, .. })),
            "red-zone overflow reported",
        );
        // SAFETY: as above: restores the guard byte.
        unsafe { q.as_ptr().add(40).write_volatile(RED_ZONE_BYTE) };
        v.expect(kfree(q).is_ok(), "repaired block frees");
    }
    telemetry::drain();
}

/// `selftest=oom`: takes every free frame, checks that each allocator
/// refuses cleanly while memory is exhausted, gives everything back and
/// checks the books. Events flood the link on purpose: what does not fit is
/// counted as dropped. Ends with `oom: done`.
pub fn oom() -> u32 {
    let mut v = Verdict { failures: 0 };
    let (_, free_before) = phys::counts();
    // The frames are kept in a chain through their own first word (via the
    // direct map), so the bookkeeping needs no memory of its own.
    let mut head: Option<Frame> = None;
    let mut taken = 0u64;
    while let Ok(frame) = phys::alloc_frame(TEST_OWNER) {
        let link = phys_to_virt(frame.start_address().as_u64()) as *mut u64;
        let next = head.map_or(u64::MAX, |f| f.number());
        // SAFETY: `frame` was just handed to this function; its direct-map
        // page is mapped and nothing else uses it.
        unsafe { link.write(next) };
        head = Some(frame);
        taken += 1;
    }
    kinfo!("oom: took {taken} frames of {free_before} free");
    v.expect(taken == free_before, "every free frame could be taken");
    v.expect(phys::counts().1 == 0, "no frame left");
    v.expect(
        phys::alloc_frame(TEST_OWNER) == Err(FrameError::OutOfMemory),
        "frame allocator refuses when empty",
    );
    v.expect(
        phys::alloc_contiguous(2, 1, TEST_OWNER).is_err(),
        "contiguous allocation refuses when empty",
    );
    v.expect(
        AddressSpace::new().is_err(),
        "no address space without frames",
    );
    let big = get_heap_stats().region_bytes * 2;
    v.expect(kmalloc(big).is_none(), "kmalloc beyond the heap refuses");
    v.expect(
        virt::map_page(
            VirtAddr::new(SCRATCH + (1 << 30)),
            Frame::from_number(0x100),
            KERNEL_DATA,
        )
        .is_err(),
        "mapping that needs a new table refuses",
    );
    // Give everything back.
    let mut returned = 0u64;
    while let Some(frame) = head {
        let link = phys_to_virt(frame.start_address().as_u64()) as *const u64;
        // SAFETY: written above when the frame was taken; still ours.
        let next = unsafe { link.read() };
        v.expect(
            phys::free_frame(frame) == Ok(TEST_OWNER),
            "free a taken frame",
        );
        returned += 1;
        head = (next != u64::MAX).then(|| Frame::from_number(next));
    }
    v.expect(returned == taken, "every taken frame returned");
    let (_, free_after) = phys::counts();
    v.expect(free_after == free_before, "free count back where it was");
    v.expect(report::frame_check().consistent, "frame bitmap consistent");
    v.expect(
        kmalloc(64).is_some_and(|p| kfree(p).is_ok()),
        "the heap works again",
    );
    if v.failures == 0 {
        kinfo!("oom: done, all checks passed");
    } else {
        kerror!("oom: done, {} checks FAILED", v.failures);
    }
    v.failures
}
