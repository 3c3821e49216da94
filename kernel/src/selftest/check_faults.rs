//! `selftest=check-faults`: once a program shares a frame copy-on-write,
//! three faults the mapping check must find are injected into the running
//! system, each logged as `injected: KIND phys=0x...`:
//!
//! - `mapped-but-free`: the used bit of a frame a process maps is cleared
//!   (a frame whose 64-frame word is otherwise full, so the allocator, which
//!   searches through the summaries, never hands it out again);
//! - `leaked-frame`: a frame is charged to a live process that maps it
//!   nowhere;
//! - `share-count`: a shared frame's count is raised by one.
#![forbid(unsafe_code)]

use crate::memory::phys;
use crate::mm::frame::{Corruption, Frame, Owner};
use crate::mm::paging::{USER_HALF_END, VirtAddr};
use crate::proc::{self, frames};

/// Whether every frame of `frame`'s 64-frame bitmap word is used.
fn word_full(frame: Frame) -> bool {
    let first = frame.number() & !63;
    phys::with_frames(|pmm, _| (first..first + 64).all(|n| pmm.is_used(Frame::from_number(n))))
}

/// A process's private mapped frame and a shared frame, if there are both.
fn victims() -> Option<(u32, Frame, Frame)> {
    proc::with_table(|t| {
        let mut private: Option<(u32, Frame)> = None;
        let mut shared = None;
        for p in t.iter() {
            let Some(mm) = p.mm.as_ref() else { continue };
            for leaf in mm.space().tables().leaves(..VirtAddr::new(USER_HALF_END)) {
                let frame = Frame::containing_address(leaf.mapping.phys);
                if frames::users(frame) > 1 {
                    shared.get_or_insert(frame);
                } else if private.is_none() && word_full(frame) {
                    private = Some((p.pid, frame));
                }
            }
        }
        let (pid, private) = private?;
        Some((pid, private, shared?))
    })
}

/// Injects the faults if a shared frame exists yet; whether it did.
pub fn inject() -> bool {
    let Some((pid, private, shared)) = victims() else {
        return false;
    };
    let addr = |f: Frame| f.start_address().as_u64();
    match phys::alloc_frame(Owner::Process(pid)) {
        Ok(frame) => kwarn!("injected: leaked-frame phys={:#x} pid={pid}", addr(frame)),
        Err(e) => kerror!("could not charge a frame to pid {pid}: {e:?}"),
    }
    match phys::inject_corruption(Corruption::FlipUsedBit(private.number())) {
        Ok(()) => kwarn!(
            "injected: mapped-but-free phys={:#x} pid={pid}",
            addr(private)
        ),
        Err(e) => kerror!(
            "could not clear the used bit of {:#x}: {e:?}",
            addr(private)
        ),
    }
    frames::share(shared);
    kwarn!("injected: share-count phys={:#x}", addr(shared));
    true
}
