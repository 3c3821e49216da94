//! Physical frame allocator.
