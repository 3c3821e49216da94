//! The pure parts of the kernel leak scan (kmemleak's design): who
//! allocated each kernel-heap block and when, and the conservative marking
//! that finds the blocks nothing points to any more.
//!
//! - [`StackDepot`] interns call stacks: each distinct stack is kept once
//!   and a block names it by a 16-bit [`StackId`], as Linux's stack depot
//!   does, so recording a stack per block costs two bytes, not 64.
//! - [`TraceTable`] maps a live block's payload address to its [`Trace`]
//!   (stack, birth time, whether the last scan reported it). It sits beside
//!   the heap rather than in each block's header, so the allocator and its
//!   block layout are the same for every heap, traced or not.
//! - [`Marker`] marks the blocks reachable from the words it is shown:
//!   every aligned word that points into a block's payload (interior
//!   pointers included) marks it, and a marked block's own words are
//!   scanned in turn.
//!
//! Everything works on slices its owner supplies, so it allocates nothing
//! (the kernel gives it frames through the direct map) and is tested on the
//! host.
#![forbid(unsafe_code)]

mod depot;
mod mark;
mod traces;

#[cfg(test)]
mod tests;

pub use depot::{CallStack, STACK_DEPTH, StackDepot, StackId};
pub use mark::{Candidate, Marker};
pub use traces::{Trace, TraceTable, TraceTableFull};
