//! Memory events on the telemetry link, and the counters behind
//! `MemoryStats`.
//!
//! Each event is encoded on the stack and queued in the telemetry ring, so
//! emitting one never allocates and never waits for the UART; a frame that
//! does not fit is counted as dropped by the link. The counters count every
//! operation whether or not its event went out (or events are switched off
//! with `memevents=0`), so a host can tell what it missed.
#![forbid(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use probe_proto::names::event_class;
use probe_proto::{
    EventCounters, FrameErrorEvent, FrameErrorKind, HeapErrorEvent, HeapErrorKind, HeapEvent,
    KernelMsg, MapEvent, PageEvent,
};

use crate::mm::frame::{Frame, FrameError, Owner, PhysAddr};
use crate::mm::heap::HeapError;
use crate::mm::paging::{Mapping, PageFlags, PageSize, VirtAddr};
use crate::telemetry;

/// The classes of events sent (`names::event_class` bits).
static CLASSES: AtomicU32 = AtomicU32::new(event_class::ALL);

struct Counters {
    page_allocs: AtomicU64,
    page_frees: AtomicU64,
    maps: AtomicU64,
    unmaps: AtomicU64,
    heap_allocs: AtomicU64,
    heap_frees: AtomicU64,
    heap_errors: AtomicU64,
    frame_errors: AtomicU64,
}

static COUNTERS: Counters = Counters {
    page_allocs: AtomicU64::new(0),
    page_frees: AtomicU64::new(0),
    maps: AtomicU64::new(0),
    unmaps: AtomicU64::new(0),
    heap_allocs: AtomicU64::new(0),
    heap_frees: AtomicU64::new(0),
    heap_errors: AtomicU64::new(0),
    frame_errors: AtomicU64::new(0),
};

/// Switches the memory events (page, map and heap) on or off, as
/// `memevents=` does; the counters always count.
pub fn set_enabled(on: bool) {
    let memory = event_class::PAGE | event_class::MAP | event_class::HEAP;
    if on {
        CLASSES.fetch_or(memory, Relaxed);
    } else {
        CLASSES.fetch_and(!memory, Relaxed);
    }
}

/// Chooses the classes of events sent (the host's `SetEvents`).
pub fn set_classes(classes: u32) {
    CLASSES.store(classes & event_class::ALL, Relaxed);
}

/// The classes of events sent.
pub fn classes() -> u32 {
    CLASSES.load(Relaxed)
}

/// Sends `msg`, an event of `class`, if that class is on.
pub fn send_if(class: u32, msg: &KernelMsg<'_>) {
    if sends(class) {
        telemetry::send(msg);
    }
}

/// Whether events of `class` are sent.
pub fn sends(class: u32) -> bool {
    classes() & class != 0
}

/// Counters since boot.
pub fn counters() -> EventCounters {
    let c = &COUNTERS;
    EventCounters {
        page_allocs: c.page_allocs.load(Relaxed),
        page_frees: c.page_frees.load(Relaxed),
        maps: c.maps.load(Relaxed),
        unmaps: c.unmaps.load(Relaxed),
        heap_allocs: c.heap_allocs.load(Relaxed),
        heap_frees: c.heap_frees.load(Relaxed),
        heap_errors: c.heap_errors.load(Relaxed),
        frame_errors: c.frame_errors.load(Relaxed),
    }
}

fn emit(counter: &AtomicU64, class: u32, msg: impl FnOnce(u64) -> KernelMsg<'static>) {
    counter.fetch_add(1, Relaxed);
    if sends(class) {
        telemetry::send_event(msg);
    }
}

/// The wire name of a heap error, and the address it names.
pub fn heap_error_kind(e: &HeapError) -> (HeapErrorKind, u64) {
    match *e {
        HeapError::OutOfMemory => (HeapErrorKind::OutOfMemory, 0),
        HeapError::InvalidLayout => (HeapErrorKind::InvalidLayout, 0),
        HeapError::InvalidRegion => (HeapErrorKind::Inconsistent, 0),
        HeapError::InvalidPointer { addr } => (HeapErrorKind::InvalidPointer, addr as u64),
        HeapError::DoubleFree { addr } => (HeapErrorKind::DoubleFree, addr as u64),
        HeapError::CorruptHeader { addr } => (HeapErrorKind::CorruptHeader, addr as u64),
        HeapError::RedZoneOverflow { addr, offset } => (
            HeapErrorKind::RedZoneOverflow {
                offset: offset as u32,
            },
            addr as u64,
        ),
        HeapError::Inconsistent { addr, .. } => (HeapErrorKind::Inconsistent, addr as u64),
    }
}

fn frame_error_kind(e: FrameError) -> FrameErrorKind {
    match e {
        FrameError::DoubleFree => FrameErrorKind::DoubleFree,
        FrameError::Reserved => FrameErrorKind::Reserved,
        FrameError::OutOfRange => FrameErrorKind::OutOfRange,
        FrameError::Unaligned => FrameErrorKind::Unaligned,
        FrameError::OutOfMemory => FrameErrorKind::OutOfMemory,
        FrameError::InvalidRequest => FrameErrorKind::InvalidRequest,
        FrameError::InvalidOwner | FrameError::StorageTooSmall | FrameError::Corrupted => {
            FrameErrorKind::Other
        }
    }
}

fn page_event(first: Frame, count: u64, owner: Owner, caller: u64, ts_us: u64) -> PageEvent {
    PageEvent {
        ts_us,
        addr: first.start_address().as_u64(),
        count: count as u32,
        owner,
        caller,
    }
}

/// `count` frames from `first` handed to `owner`.
pub fn page_alloc(first: Frame, count: u64, owner: Owner, caller: u64) {
    emit(&COUNTERS.page_allocs, event_class::PAGE, |ts| {
        KernelMsg::PageAlloc(page_event(first, count, owner, caller, ts))
    });
}

/// `count` frames from `first`, held by `owner`, returned.
pub fn page_free(first: Frame, count: u64, owner: Owner, caller: u64) {
    emit(&COUNTERS.page_frees, event_class::PAGE, |ts| {
        KernelMsg::PageFree(page_event(first, count, owner, caller, ts))
    });
}

/// A frame-allocator call refused.
pub fn frame_error(e: FrameError, addr: PhysAddr, count: u64, caller: u64) {
    emit(&COUNTERS.frame_errors, event_class::PAGE, |ts_us| {
        KernelMsg::FrameError(FrameErrorEvent {
            ts_us,
            kind: frame_error_kind(e),
            addr: addr.as_u64(),
            count: count as u32,
            caller,
        })
    });
}

/// A 4 KiB page mapped in the space rooted at `root`.
pub fn map(root: Frame, virt: VirtAddr, phys: PhysAddr, flags: PageFlags, caller: u64) {
    emit(&COUNTERS.maps, event_class::MAP, |ts_us| {
        KernelMsg::Map(MapEvent {
            ts_us,
            space: root.start_address().as_u64(),
            virt: virt.as_u64(),
            phys: phys.as_u64(),
            size: PageSize::Size4KiB.bytes(),
            flags: (flags | PageFlags::PRESENT).bits(),
            caller,
        })
    });
}

/// A page unmapped from the space rooted at `root`.
pub fn unmap(root: Frame, mapping: &Mapping, caller: u64) {
    emit(&COUNTERS.unmaps, event_class::MAP, |ts_us| {
        KernelMsg::Unmap(MapEvent {
            ts_us,
            space: root.start_address().as_u64(),
            virt: mapping.virt.as_u64(),
            phys: mapping.phys.as_u64(),
            size: mapping.size.bytes(),
            flags: mapping.flags.bits(),
            caller,
        })
    });
}

/// A heap block handed out.
pub fn heap_alloc(
    pid: u32,
    heap_id: u32,
    ptr: NonNull<u8>,
    size: usize,
    align: usize,
    key: u64,
    caller: u64,
) {
    emit(&COUNTERS.heap_allocs, event_class::HEAP, |ts_us| {
        KernelMsg::HeapAlloc(HeapEvent {
            ts_us,
            pid,
            heap_id,
            addr: ptr.addr().get() as u64,
            size: size as u64,
            align: align as u32,
            key,
            caller,
        })
    });
}

/// A heap block taken back.
pub fn heap_free(pid: u32, heap_id: u32, ptr: NonNull<u8>, size: usize, caller: u64) {
    emit(&COUNTERS.heap_frees, event_class::HEAP, |ts_us| {
        KernelMsg::HeapFree(HeapEvent {
            ts_us,
            pid,
            heap_id,
            addr: ptr.addr().get() as u64,
            size: size as u64,
            align: 0,
            key: 0,
            caller,
        })
    });
}

/// A heap call refused, or damage found.
pub fn heap_error(pid: u32, heap_id: u32, e: &HeapError, size: usize, caller: u64) {
    let (kind, addr) = heap_error_kind(e);
    emit(&COUNTERS.heap_errors, event_class::HEAP, |ts_us| {
        KernelMsg::HeapError(HeapErrorEvent {
            ts_us,
            pid,
            heap_id,
            kind,
            addr,
            size: size as u64,
            caller,
        })
    });
}
