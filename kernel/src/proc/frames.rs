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

/// Users of each shared frame (always at least 2 while present).
static SHARED: IrqMutex<BTreeMap<u64, u32>> = IrqMutex::new(BTreeMap::new());

/// One more address space maps `frame`.
pub fn share(frame: Frame) {
    SHARED.with(|t| *t.entry(frame.number()).or_insert(1) += 1);
}

/// How many address spaces map `frame`.
pub fn users(frame: Frame) -> u32 {
    SHARED.with(|t| t.get(&frame.number()).copied().unwrap_or(1))
}

/// One address space stopped mapping `frame`; the last one frees it.
/// Returns whether the frame went back to the frame allocator.
pub fn release(frame: Frame) -> bool {
    let last = SHARED.with(|t| match t.get_mut(&frame.number()) {
        Some(n) if *n > 2 => {
            *n -= 1;
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
