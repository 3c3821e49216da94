//! Unit tests of the frame allocator.
