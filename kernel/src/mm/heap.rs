//! Best-fit heap allocator.
