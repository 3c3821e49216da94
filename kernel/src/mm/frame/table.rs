//! The owner table: one slot per frame, in caller-provided storage of 16-bit
//! or 32-bit slots holding the same encoding.
//!
//! 16-bit slots are the better choice: every allocation and free touches the
//! table at a random place, and half the footprint (8 MiB rather than 16 MiB
//! for 16 GiB) roughly halves the time an operation spends in cache and TLB
//! misses. 32-bit slots are still accepted, for storage laid out that way.

use core::fmt;
use core::ops::Range;

use super::owner::{Owner, OwnerSlot, OwnerSlotCodec};

/// Width of the slots of an [`OwnerTable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotWidth {
    /// `u16` slots: the recommended layout.
    U16,
    /// `u32` slots: same values, twice the memory.
    U32,
}

impl SlotWidth {
    /// Bytes per slot.
    #[must_use]
    pub const fn bytes(self) -> u64 {
        match self {
            Self::U16 => 2,
            Self::U32 => 4,
        }
    }
}

/// The owner table given to [`FrameBitmap::new`](super::FrameBitmap::new):
/// built from `&mut [u16]` (recommended) or `&mut [u32]` with `.into()`.
pub enum OwnerTable<'a> {
    /// One [`OwnerSlot`] per frame.
    U16(&'a mut [u16]),
    /// One [`OwnerSlot`] per frame, zero-extended.
    U32(&'a mut [u32]),
}

/// Width and length only: millions of slots are no use in a log line.
impl fmt::Debug for OwnerTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerTable")
            .field("width", &self.width())
            .field("len", &self.len())
            .finish()
    }
}

impl<'a> From<&'a mut [u16]> for OwnerTable<'a> {
    fn from(slots: &'a mut [u16]) -> Self {
        Self::U16(slots)
    }
}

impl<'a> From<&'a mut [u32]> for OwnerTable<'a> {
    fn from(slots: &'a mut [u32]) -> Self {
        Self::U32(slots)
    }
}

impl<'a> OwnerTable<'a> {
    /// Number of slots.
    #[must_use]
    pub fn len(&self) -> usize {
        match self {
            Self::U16(slots) => slots.len(),
            Self::U32(slots) => slots.len(),
        }
    }

    /// Whether the table has no slot.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The width of the slots.
    #[must_use]
    pub fn width(&self) -> SlotWidth {
        match self {
            Self::U16(_) => SlotWidth::U16,
            Self::U32(_) => SlotWidth::U32,
        }
    }

    /// The first `len` slots (at most `self.len()`).
    pub(super) fn truncate(self, len: usize) -> Self {
        match self {
            Self::U16(slots) => Self::U16(&mut slots[..len]),
            Self::U32(slots) => Self::U32(&mut slots[..len]),
        }
    }

    /// Slot `idx` (in range), widened: a 32-bit slot may hold a value no
    /// 16-bit encoding produces, which is then corrupt.
    pub(super) fn raw(&self, idx: usize) -> u32 {
        match self {
            Self::U16(slots) => u32::from(slots[idx]),
            Self::U32(slots) => slots[idx],
        }
    }

    /// Writes an encoded owner into slot `idx` (in range).
    pub(super) fn set(&mut self, idx: usize, raw: OwnerSlot) {
        match self {
            Self::U16(slots) => slots[idx] = raw,
            Self::U32(slots) => slots[idx] = u32::from(raw),
        }
    }

    /// Writes any value into slot `idx`, for fault injection; `false` if the
    /// slot is too narrow for it.
    pub(super) fn set_any(&mut self, idx: usize, raw: u32) -> bool {
        match self {
            Self::U16(slots) => match u16::try_from(raw) {
                Ok(raw) => {
                    slots[idx] = raw;
                    true
                }
                Err(_) => false,
            },
            Self::U32(slots) => {
                slots[idx] = raw;
                true
            }
        }
    }

    /// Writes `raw` into every slot of `range` (in range).
    pub(super) fn fill(&mut self, range: Range<usize>, raw: OwnerSlot) {
        match self {
            Self::U16(slots) => slots[range].fill(raw),
            Self::U32(slots) => slots[range].fill(u32::from(raw)),
        }
    }

    /// Whether every slot of `range` (in range) equals `raw`.
    pub(super) fn all_equal(&self, range: Range<usize>, raw: OwnerSlot) -> bool {
        match self {
            Self::U16(slots) => slots[range].iter().all(|&slot| slot == raw),
            Self::U32(slots) => slots[range].iter().all(|&slot| slot == u32::from(raw)),
        }
    }

    /// Every slot, widened: for tests that compare whole states.
    #[cfg(test)]
    pub(super) fn to_vec(&self) -> Vec<u32> {
        let mut all = Vec::with_capacity(self.len());
        self.for_each(|_, raw| all.push(raw));
        all
    }

    /// Calls `f(idx, raw)` for every slot in order, choosing the width once.
    pub(super) fn for_each(&self, mut f: impl FnMut(usize, u32)) {
        match self {
            Self::U16(slots) => slots
                .iter()
                .enumerate()
                .for_each(|(i, &raw)| f(i, u32::from(raw))),
            Self::U32(slots) => slots.iter().enumerate().for_each(|(i, &raw)| f(i, raw)),
        }
    }
}

/// The owner a widened slot value names; `None` for free and for corrupt
/// values.
pub(super) fn decode(raw: u32) -> Option<Owner> {
    OwnerSlot::try_from(raw).ok().and_then(Owner::from_raw)
}
