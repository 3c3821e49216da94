//! Call stacks kept once each, named by a small id.

/// Return addresses kept per stack, as many as a leak report carries.
/// The allocator's own frames come first (`GlobalAlloc::alloc`,
/// `__rust_alloc`, `Box::new`...; the precompiled `alloc` crate's have no
/// frame pointers and drop out of the walk), then the call site and its
/// callers.
pub const STACK_DEPTH: usize = probe_proto::LEAK_STACK_DEPTH;

/// Return addresses, innermost first; unused slots are 0.
pub type CallStack = [u64; STACK_DEPTH];

/// A stack's index in its [`StackDepot`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackId(pub u16);

impl StackId {
    /// No stack: the depot was full or the walk found no frame.
    pub const NONE: StackId = StackId(u16::MAX);
}

/// Distinct call stacks, each stored once, found again by hash.
#[derive(Debug)]
pub struct StackDepot<'a> {
    stacks: &'a mut [CallStack],
    /// Open-addressed hash index: 0 is empty, else a stack's index + 1.
    index: &'a mut [u16],
    len: usize,
    refused: u64,
}

/// A 64-bit mix of the stack's words (FxHash's multiply-rotate).
fn hash(stack: &CallStack) -> u64 {
    let mut h = 0u64;
    for &w in stack {
        h = (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    h
}

impl<'a> StackDepot<'a> {
    /// A depot keeping up to `stacks.len()` stacks (at most `u16::MAX`),
    /// indexed through `index`, whose length must be a power of two larger
    /// than the number of stacks. Both slices are cleared.
    pub fn new(stacks: &'a mut [CallStack], index: &'a mut [u16]) -> Self {
        assert!(index.len().is_power_of_two() && index.len() > stacks.len());
        let keep = stacks.len().min(usize::from(u16::MAX));
        index.fill(0);
        Self {
            stacks: &mut stacks[..keep],
            index,
            len: 0,
            refused: 0,
        }
    }

    /// The id of `stack`, storing it if it is new; [`StackId::NONE`] when
    /// it is new and the depot is full (counted in [`Self::refused`]).
    pub fn intern(&mut self, stack: &CallStack) -> StackId {
        let mask = self.index.len() - 1;
        let mut slot = hash(stack) as usize & mask;
        loop {
            match self.index[slot] {
                0 => break,
                n if self.stacks[usize::from(n - 1)] == *stack => return StackId(n - 1),
                _ => slot = (slot + 1) & mask,
            }
        }
        if self.len == self.stacks.len() {
            self.refused += 1;
            return StackId::NONE;
        }
        self.stacks[self.len] = *stack;
        self.len += 1;
        self.index[slot] = self.len as u16;
        StackId(self.len as u16 - 1)
    }

    /// The stack named `id`.
    pub fn get(&self, id: StackId) -> Option<&CallStack> {
        self.stacks[..self.len].get(usize::from(id.0))
    }

    /// Distinct stacks stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no stack is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// New stacks turned away because the depot was full.
    pub fn refused(&self) -> u64 {
        self.refused
    }
}
