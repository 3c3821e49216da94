//! The pure memory-manager logic (layer 2): the frame bitmap and its owner
//! table ([`frame`]), the 4-level page-table walker ([`paging`]), the heap
//! allocator shared by the kernel heap and process heaps ([`heap`]) and the
//! VMA set ([`vma`]), and the call-site tables and marking of the kernel
//! leak scan ([`leak`]).
//!
//! Nothing here touches hardware or names a global: memory is reached
//! through traits (`PhysMem`) or handed in as slices, so all of it is
//! tested on the host over emulated memory. The live instances bound to
//! real RAM are in `memory` (layer 3).

mod flag_set;
pub mod frame;
pub mod heap;
pub mod leak;
pub mod paging;
pub mod vma;
