//! Two-level segregated size classes: the mapping from a block size to its
//! free list, and the bitmaps that find a non-empty list in O(1).
//!
//! Sizes below [`SMALL_LIMIT`] map linearly, one list per 8-byte size, so
//! every block in a small list has exactly the list's size. Above it, the
//! first level is the power of two (`floor(log2 size)`) and the second level
//! splits each power-of-two range into [`SL_COUNT`] equal slices, so a list
//! holds blocks whose sizes differ by less than 1/32 of their size.
//!
//! A search rounds the request up to the next slice boundary first
//! ([`search_class`]): then any block of the class found is large enough,
//! and the first block of the first non-empty class at or above it is taken
//! without walking a list. That is TLSF's "good fit": the block chosen is at
//! most one slice (under 1/32, about 3%) larger than the best fit among
//! the non-empty classes, and the unused tail is split off and given back,
//! so the rounding costs search precision, never memory.

/// log2 of the number of second-level lists per power of two.
pub(super) const SL_SHIFT: u32 = 5;
/// Second-level lists per first-level class.
pub(super) const SL_COUNT: usize = 1 << SL_SHIFT;
/// Block sizes are multiples of this.
pub(super) const GRAIN_SHIFT: u32 = 3;
/// Sizes below this map linearly (one list per 8 bytes).
pub(super) const SMALL_LIMIT: usize = 1 << (SL_SHIFT + GRAIN_SHIFT);
/// First-level classes: class 0 is the linear range, class `f` holds sizes
/// in `[2^(f+7), 2^(f+8))`.
pub(super) const FL_COUNT: usize = 32;
/// Every block size is below this (the top of the last first-level class).
pub(super) const MAX_BLOCK: usize = 1 << (FL_COUNT as u32 + SL_SHIFT + GRAIN_SHIFT - 1);

/// A free-list index: first level times [`SL_COUNT`] plus second level,
/// so classes order by size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Class(usize);

/// Number of classes.
const NR_CLASSES: usize = FL_COUNT * SL_COUNT;

impl Class {
    /// The class `(fl, sl)`.
    #[cfg(test)]
    pub const fn new(fl: usize, sl: usize) -> Self {
        Self(fl * SL_COUNT + sl)
    }

    /// First level: the power of two (class 0: the linear range).
    #[inline(always)]
    pub fn fl(self) -> usize {
        (self.0 >> SL_SHIFT) & (FL_COUNT - 1)
    }

    /// Second level: the slice of the power of two.
    #[inline(always)]
    pub fn sl(self) -> usize {
        self.0 & (SL_COUNT - 1)
    }

    /// The class after this one, if any.
    pub fn next(self) -> Option<Class> {
        (self.0 + 1 < NR_CLASSES).then_some(Class(self.0 + 1))
    }

    /// The class before this one, if any.
    pub fn prev(self) -> Option<Class> {
        self.0.checked_sub(1).map(Class)
    }
}

/// The class index of `size` rounded down (`round_up` 0) or up
/// (`round_up` the slice width less one) to its slice. With `T` the
/// power of two of `size`, at least `SMALL_LIMIT`'s, the slice is
/// `2^(T - SL_SHIFT)` wide and the index `(T - 8) * SL_COUNT + size /
/// slice`: the linear range (`T == 8`) falls out of the same formula.
#[inline(always)]
fn index(size: usize, round_up: bool) -> usize {
    let log2 = (size | SMALL_LIMIT).ilog2();
    let shift = log2 - SL_SHIFT;
    let up = if round_up { (1 << shift) - 1 } else { 0 };
    ((log2 as usize - (SL_SHIFT + GRAIN_SHIFT) as usize) << SL_SHIFT) + ((size + up) >> shift)
}

/// The class a free block of `size` bytes is filed under.
///
/// `size` must be a multiple of 8 below [`MAX_BLOCK`].
#[inline(always)]
pub(super) fn class_of(size: usize) -> Class {
    debug_assert!(size < MAX_BLOCK && size.is_multiple_of(1 << GRAIN_SHIFT));
    Class(index(size, false) & (NR_CLASSES - 1))
}

/// The lowest class whose every block holds at least `size` bytes, or
/// `None` when no class does.
///
/// `size` must be a multiple of 8 below `2^62`.
#[inline(always)]
pub(super) fn search_class(size: usize) -> Option<Class> {
    debug_assert!(size < 1 << 62 && size.is_multiple_of(1 << GRAIN_SHIFT));
    let index = index(size, true);
    (index < NR_CLASSES).then_some(Class(index))
}

/// The smallest block size filed under `class`.
pub(super) fn class_min(class: Class) -> usize {
    if class.fl() == 0 {
        class.sl() << GRAIN_SHIFT
    } else {
        let log2 = class.fl() as u32 + SL_SHIFT + GRAIN_SHIFT - 1;
        (1 << log2) + (class.sl() << (log2 - SL_SHIFT))
    }
}

/// The heads of all free lists and the two bitmap levels over them.
///
/// A bit is set exactly when its list (or, at the first level, any list of
/// that class) is non-empty. Heads are block addresses, 0 for an empty list.
#[derive(Clone)]
pub(super) struct FreeLists {
    fl_bitmap: u64,
    sl_bitmap: [u32; FL_COUNT],
    heads: [usize; NR_CLASSES],
}

impl FreeLists {
    pub const fn new() -> Self {
        Self {
            fl_bitmap: 0,
            sl_bitmap: [0; FL_COUNT],
            heads: [0; NR_CLASSES],
        }
    }

    #[inline(always)]
    pub fn head(&self, class: Class) -> usize {
        self.heads[class.0 & (NR_CLASSES - 1)]
    }

    /// Sets the head of a list that is not empty (0 empties it) and keeps
    /// both bitmap levels in step.
    #[inline(always)]
    pub fn set_head(&mut self, class: Class, head: usize) {
        self.heads[class.0 & (NR_CLASSES - 1)] = head;
        if head == 0 {
            let fl = class.fl();
            let sl_bits = self.sl_bitmap[fl] & !(1 << class.sl());
            self.sl_bitmap[fl] = sl_bits;
            if sl_bits == 0 {
                self.fl_bitmap &= !(1 << fl);
            }
        }
    }

    /// Makes `head`, a block, the head of `class`'s list.
    #[inline(always)]
    pub fn push_head(&mut self, class: Class, head: usize) {
        debug_assert!(head != 0);
        self.heads[class.0 & (NR_CLASSES - 1)] = head;
        self.sl_bitmap[class.fl()] |= 1 << class.sl();
        self.fl_bitmap |= 1 << class.fl();
    }

    /// The first non-empty class at or above `from`: two bit scans.
    #[inline(always)]
    pub fn first_non_empty(&self, from: Class) -> Option<Class> {
        let fl = from.fl();
        let here = self.sl_bitmap[fl] & (u32::MAX << from.sl());
        if here != 0 {
            return Some(Class((fl << SL_SHIFT) + here.trailing_zeros() as usize));
        }
        let above = self.fl_bitmap & (u64::MAX << (fl + 1));
        if above == 0 {
            return None;
        }
        let fl = above.trailing_zeros() as usize & (FL_COUNT - 1);
        Some(Class(
            (fl << SL_SHIFT) + self.sl_bitmap[fl].trailing_zeros() as usize,
        ))
    }

    /// The highest non-empty class, where the largest free block lives.
    pub fn last_non_empty(&self) -> Option<Class> {
        self.last_non_empty_up_to(Class(NR_CLASSES - 1))
    }

    /// The last non-empty class at or below `to`: two bit scans.
    pub fn last_non_empty_up_to(&self, to: Class) -> Option<Class> {
        let fl = to.fl();
        let here = self.sl_bitmap[fl] & (u32::MAX >> (SL_COUNT - 1 - to.sl()));
        if here != 0 {
            return Some(Class((fl << SL_SHIFT) + 31 - here.leading_zeros() as usize));
        }
        let below = self.fl_bitmap & ((1u64 << fl) - 1);
        if below == 0 {
            return None;
        }
        let fl = 63 - below.leading_zeros() as usize;
        Some(Class(
            (fl << SL_SHIFT) + 31 - self.sl_bitmap[fl].leading_zeros() as usize,
        ))
    }

    /// Whether the bitmaps agree with the heads; the first class where they
    /// do not, if any.
    pub fn bitmap_mismatch(&self) -> Option<Class> {
        for fl in 0..FL_COUNT {
            let fl_bit = self.fl_bitmap & (1 << fl) != 0;
            if fl_bit != (self.sl_bitmap[fl] != 0) {
                return Some(Class(fl << SL_SHIFT));
            }
            for sl in 0..SL_COUNT {
                let sl_bit = self.sl_bitmap[fl] & (1 << sl) != 0;
                let class = Class((fl << SL_SHIFT) + sl);
                if sl_bit != (self.head(class) != 0) {
                    return Some(class);
                }
            }
        }
        None
    }

    /// All classes in increasing size order.
    pub fn classes() -> impl Iterator<Item = Class> {
        (0..NR_CLASSES).map(Class)
    }
}

/// Largest block a bin keeps: blocks of up to 256 bytes, header included
/// (payloads up to 240 bytes), one bin per 8-byte size.
pub(super) const BIN_MAX: usize = 256;
/// Most blocks one bin keeps; a block freed into a full bin is merged.
pub(super) const BIN_CAP: u16 = 64;
const NR_BINS: usize = BIN_MAX / (1 << GRAIN_SHIFT) + 1;

/// Bins: for each small block size, a LIFO list of blocks freed without
/// merging, for the next allocation of exactly that size to take back in
/// a few instructions. Heads are block addresses, 0 for an empty bin; each
/// binned block's first word links to the next.
#[derive(Clone)]
pub(super) struct Bins {
    heads: [usize; NR_BINS],
    counts: [u16; NR_BINS],
    /// Blocks in all bins.
    nr: usize,
}

impl Bins {
    pub const fn new() -> Self {
        Self {
            heads: [0; NR_BINS],
            counts: [0; NR_BINS],
            nr: 0,
        }
    }

    /// The bin of blocks of `size` bytes (at most [`BIN_MAX`]).
    #[inline(always)]
    fn bin(size: usize) -> usize {
        debug_assert!(size <= BIN_MAX);
        (size >> GRAIN_SHIFT) % NR_BINS
    }

    /// The first block of the bin for `size`, 0 if empty.
    #[inline(always)]
    pub fn head(&self, size: usize) -> usize {
        self.heads[Self::bin(size)]
    }

    /// Whether the bin for `size` has room for one more block.
    #[inline(always)]
    pub fn has_room(&self, size: usize) -> bool {
        self.counts[Self::bin(size)] < BIN_CAP
    }

    /// Makes `addr`, a block of `size` bytes, the bin's first.
    #[inline(always)]
    pub fn push(&mut self, size: usize, addr: usize) {
        let bin = Self::bin(size);
        self.heads[bin] = addr;
        self.counts[bin] += 1;
        self.nr += 1;
    }

    /// Takes the bin's first block out, `next` becoming the first.
    #[inline(always)]
    pub fn pop(&mut self, size: usize, next: usize) {
        let bin = Self::bin(size);
        self.heads[bin] = next;
        self.counts[bin] -= 1;
        self.nr -= 1;
    }

    /// Blocks in all bins.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.nr
    }

    /// Blocks in the bin for `size`.
    pub fn count(&self, size: usize) -> usize {
        usize::from(self.counts[Self::bin(size)])
    }

    /// The block sizes with a bin, smallest first.
    pub fn sizes() -> impl DoubleEndedIterator<Item = usize> {
        (4..NR_BINS).map(|bin| bin << GRAIN_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sizes_map_one_list_per_grain() {
        assert_eq!(class_of(40), Class::new(0, 5));
        assert_eq!(class_of(248), Class::new(0, 31));
        assert_eq!(search_class(48), Some(Class::new(0, 6)));
    }

    #[test]
    fn large_sizes_split_each_power_of_two_in_32() {
        assert_eq!(class_of(256), Class::new(1, 0));
        assert_eq!(class_of(256 + 8), Class::new(1, 1));
        assert_eq!(class_of(4096), Class::new(5, 0));
        assert_eq!(class_of(4096 + 120), Class::new(5, 0));
        assert_eq!(class_of(4096 + 128), Class::new(5, 1));
        assert_eq!(class_of(MAX_BLOCK - 8).fl(), FL_COUNT - 1);
    }

    #[test]
    fn class_min_is_the_inverse_of_class_of_at_boundaries() {
        for class in FreeLists::classes().filter(|c| c.fl() > 0 || c.sl() > 0) {
            let min = class_min(class);
            assert_eq!(class_of(min), class, "{min}");
        }
    }

    #[test]
    fn search_rounds_up_so_every_block_of_the_class_fits() {
        for size in (8..1 << 20).step_by(8) {
            let class = search_class(size).unwrap();
            assert!(class_min(class) >= size, "{size}");
            // and it is the lowest such class: the class below may hold a
            // smaller block
            let floor = class_of(size);
            assert!(class == floor || class_min(floor) < size, "{size}");
        }
        assert_eq!(search_class(MAX_BLOCK), None);
    }

    #[test]
    fn bitmaps_find_the_first_non_empty_class_at_or_above() {
        let mut lists = FreeLists::new();
        assert_eq!(lists.first_non_empty(class_of(64)), None);
        lists.push_head(class_of(4096), 0x1000);
        lists.push_head(class_of(1 << 30), 0x2000);
        assert_eq!(lists.first_non_empty(class_of(64)), Some(class_of(4096)));
        assert_eq!(lists.first_non_empty(class_of(4096)), Some(class_of(4096)));
        assert_eq!(
            lists.first_non_empty(class_of(4096 + 128)),
            Some(class_of(1 << 30))
        );
        assert_eq!(lists.last_non_empty(), Some(class_of(1 << 30)));
        assert_eq!(
            lists.last_non_empty_up_to(class_of((1 << 30) - 8)),
            Some(class_of(4096))
        );
        assert_eq!(lists.last_non_empty_up_to(class_of(4088)), None);
        lists.set_head(class_of(1 << 30), 0);
        assert_eq!(lists.first_non_empty(class_of(8192)), None);
        assert_eq!(lists.bitmap_mismatch(), None);
    }
}
