//! The physical memory map by owner, run-length encoded: who holds each
//! frame, as runs of consecutive frames with one owner (or free), so a
//! host can draw the whole of RAM from a few hundred messages rather than
//! one per frame.
//!
//! Runs are computed a batch at a time, each batch under one hold of the
//! frame allocator's lock, so an allocation never waits behind the UART
//! draining a large map. The map is therefore not one atomic picture: a
//! frame may change hands between two batches, as between two snapshots.

use probe_proto::{FrameOwner, OwnerRun};

use crate::memory::phys;
use crate::mm::frame::Frame;

/// What one batch covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Runs written to the caller's buffer.
    pub runs: usize,
    /// The frame after the last one the runs cover.
    pub next_frame: u64,
}

/// Frames the allocator covers, RAM or not: the map's extent.
pub fn total_frames() -> u64 {
    phys::read(|pmm| pmm.nr_frames())
}

/// The frames the map covers: `first_frame` and up to `nr_frames` after
/// it, clamped to the frames the allocator knows; `(start, end)`.
pub fn bounds(first_frame: u64, nr_frames: u64) -> (u64, u64) {
    let total = total_frames();
    let start = first_frame.min(total);
    (start, start.saturating_add(nr_frames).min(total))
}

/// Fills `out` with the runs from frame `from` up to `end` (exclusive), as
/// many as `out` holds, under one hold of the allocator's lock.
pub fn runs(from: u64, end: u64, out: &mut [OwnerRun]) -> Batch {
    phys::read(|pmm| {
        let owner_of = |n: u64| -> Option<FrameOwner> {
            let frame = Frame::from_number(n);
            if pmm.is_used(frame) {
                // A used frame without a recorded owner is a finding of the
                // check; here it reads as `Other(0)`, as a free of it would.
                Some(pmm.owner(frame).unwrap_or(FrameOwner::Other(0)))
            } else {
                None
            }
        };
        let mut frame = from;
        let mut n = 0;
        while frame < end && n < out.len() {
            let owner = owner_of(frame);
            let start = frame;
            frame += 1;
            while frame < end && owner_of(frame) == owner {
                frame += 1;
            }
            out[n] = OwnerRun {
                owner,
                frames: frame - start,
            };
            n += 1;
        }
        Batch {
            runs: n,
            next_frame: frame,
        }
    })
}
