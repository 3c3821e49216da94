//! Property tests of the frame allocator against a model.
