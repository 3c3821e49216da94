//! Memory management: physical frames, page tables, heaps.
//!
//! Nothing here touches hardware directly, so all of it is tested on the host.

pub mod elf;
mod flag_set;
pub mod frame;
pub mod heap;
pub mod paging;
pub mod vma;
