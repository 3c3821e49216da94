//! Reference counts of user frames mapped in more than one address space
//! (copy-on-write after `fork`, `MAP_SHARED` mappings).
//!
//! A frame absent from the table has exactly one user; only shared frames
//! are recorded, so the table stays as small as the sharing.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use crate::memory::phys;
use crate::mm::frame::Frame;
use crate::sync::IrqMutex;

/// A shared frame's users (always at least 2 while present), and the
/// mappings of it the consistency check has met so far.
#[derive(Debug, Clone, Copy)]
struct Shared {
    users: u32,
    seen: u32,
}

static SHARED: IrqMutex<BTreeMap<u64, Shared>> = IrqMutex::new(BTreeMap::new());

/// One more address space maps `frame`.
pub fn share(frame: Frame) {
    SHARED.with(|t| {
        t.entry(frame.number())
            .or_insert(Shared { users: 1, seen: 0 })
            .users += 1
    });
}

/// How many address spaces map `frame`.
pub fn users(frame: Frame) -> u32 {
    SHARED.with(|t| t.get(&frame.number()).map_or(1, |s| s.users))
}

/// Starts a census of the mappings of shared frames: every count is zeroed.
pub fn begin_census() {
    SHARED.with(|t| t.values_mut().for_each(|s| s.seen = 0));
}

/// Counts one mapping of `frame` met by the census; whether it is shared.
pub fn note_mapping(frame: Frame) -> bool {
    SHARED.with(|t| match t.get_mut(&frame.number()) {
        Some(s) => {
            s.seen += 1;
            true
        }
        None => false,
    })
}

/// Calls `f(frame number, users recorded, mappings met)` for every shared
/// frame whose count and census disagree.
pub fn census_mismatches(mut f: impl FnMut(u64, u32, u32)) {
    SHARED.with(|t| {
        for (&frame, s) in t.iter() {
            if s.users != s.seen {
                f(frame, s.users, s.seen);
            }
        }
    })
}

/// One address space stopped mapping `frame`; the last one frees it.
/// Returns whether the frame went back to the frame allocator.
pub fn release(frame: Frame) -> bool {
    let last = SHARED.with(|t| match t.get_mut(&frame.number()) {
        Some(s) if s.users > 2 => {
            s.users -= 1;
            false
        }
        Some(_) => {
            t.remove(&frame.number());
            false
        }
        None => true,
    });
    if last && let Err(e) = phys::free_frame(frame) {
        kerror!(
            "user frame {:#x} could not be freed: {e:?}",
            frame.start_address().as_u64()
        );
    }
    last
}

/// Frames currently shared.
pub fn shared_frames() -> usize {
    SHARED.with(|t| t.len())
}
