//! Live blocks' traces, by payload address.

use super::StackId;

/// What is known of one live block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Trace {
    /// The block's payload address; 0 marks an empty slot.
    pub addr: u64,
    /// Milliseconds since boot when it was allocated.
    pub born_ms: u32,
    /// Its allocation's call stack ([`StackId::NONE`] if unknown).
    pub stack: u16,
    /// Whether the last scan reported it as a leak: a second report
    /// confirms it.
    pub reported: bool,
}

impl Trace {
    /// A trace of the block at `addr` born at `born_ms` from `stack`.
    pub fn new(addr: u64, born_ms: u32, stack: StackId) -> Self {
        Self {
            addr,
            born_ms,
            stack: stack.0,
            reported: false,
        }
    }

    /// The call stack's id.
    pub fn stack_id(&self) -> StackId {
        StackId(self.stack)
    }
}

/// The table is as full as it is allowed to get (7/8 of its slots, to
/// keep probes short); the block goes untraced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceTableFull;

/// An open-addressed (linear probing) map from payload address to
/// [`Trace`], over slots (`S`: a slice, or storage that owns one) whose
/// number is a power of two. Deletion shifts later entries back, so there
/// are no tombstones and lookups stay short however many blocks come and
/// go.
#[derive(Debug)]
pub struct TraceTable<S> {
    slots: S,
    len: usize,
}

/// Fibonacci hashing of a 16-aligned address.
fn home(addr: u64, mask: usize) -> usize {
    ((addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & mask
}

impl<S: AsRef<[Trace]> + AsMut<[Trace]>> TraceTable<S> {
    /// An empty table over `slots` (cleared; length a power of two).
    pub fn new(mut slots: S) -> Self {
        assert!(slots.as_ref().len().is_power_of_two());
        slots.as_mut().fill(Trace::default());
        Self { slots, len: 0 }
    }

    /// A copy of `other`'s entries over `slots` (of the same length).
    pub fn copy_of<T: AsRef<[Trace]> + AsMut<[Trace]>>(
        mut slots: S,
        other: &TraceTable<T>,
    ) -> Self {
        slots.as_mut().copy_from_slice(other.slots.as_ref());
        Self {
            slots,
            len: other.len,
        }
    }

    fn mask(&self) -> usize {
        self.slots.as_ref().len() - 1
    }

    /// The slot holding `addr`, if any.
    fn find(&self, addr: u64) -> Option<usize> {
        let mask = self.mask();
        let mut slot = home(addr, mask);
        loop {
            match self.slots.as_ref()[slot].addr {
                0 => return None,
                a if a == addr => return Some(slot),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Records `trace` (replacing one at the same address).
    pub fn insert(&mut self, trace: Trace) -> Result<(), TraceTableFull> {
        debug_assert_ne!(trace.addr, 0);
        let mask = self.mask();
        let mut slot = home(trace.addr, mask);
        // One probe: the entry for this address or the empty slot that
        // ends its run.
        loop {
            match self.slots.as_ref()[slot].addr {
                0 => break,
                a if a == trace.addr => {
                    self.slots.as_mut()[slot] = trace;
                    return Ok(());
                }
                _ => slot = (slot + 1) & mask,
            }
        }
        if self.len >= self.slots.as_ref().len() / 8 * 7 {
            return Err(TraceTableFull);
        }
        self.slots.as_mut()[slot] = trace;
        self.len += 1;
        Ok(())
    }

    /// The trace of the block at `addr`.
    pub fn get(&self, addr: u64) -> Option<&Trace> {
        self.find(addr).map(|slot| &self.slots.as_ref()[slot])
    }

    /// The trace of the block at `addr`, to update.
    pub fn get_mut(&mut self, addr: u64) -> Option<&mut Trace> {
        self.find(addr).map(|slot| &mut self.slots.as_mut()[slot])
    }

    /// Forgets the block at `addr`, returning its trace.
    pub fn remove(&mut self, addr: u64) -> Option<Trace> {
        let mask = self.mask();
        let mut hole = self.find(addr)?;
        let slots = self.slots.as_mut();
        let gone = slots[hole];
        slots[hole] = Trace::default();
        self.len -= 1;
        // Shift back every later entry of the run that the hole now
        // separates from its home slot.
        let mut slot = (hole + 1) & mask;
        while slots[slot].addr != 0 {
            let want = home(slots[slot].addr, mask);
            // Whether `want` lies cyclically in (hole, slot]: then the
            // entry is reachable without passing the hole and stays.
            let stays = if hole <= slot {
                hole < want && want <= slot
            } else {
                hole < want || want <= slot
            };
            if !stays {
                slots[hole] = slots[slot];
                slots[slot] = Trace::default();
                hole = slot;
            }
            slot = (slot + 1) & mask;
        }
        Some(gone)
    }

    /// Blocks traced.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no block is traced.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in all.
    pub fn capacity(&self) -> usize {
        self.slots.as_ref().len()
    }
}
