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

/// A free-list index: (first level, second level).
/// Classes order by size: first level, then second level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Class {
    pub fl: usize,
    pub sl: usize,
}

impl Class {
    /// The class after this one, if any.
    pub fn next(self) -> Option<Class> {
        if self.sl + 1 < SL_COUNT {
            Some(Class {
                fl: self.fl,
                sl: self.sl + 1,
            })
        } else if self.fl + 1 < FL_COUNT {
            Some(Class {
                fl: self.fl + 1,
                sl: 0,
            })
        } else {
            None
        }
    }
}

impl Class {
    /// The class before this one, if any.
    pub fn prev(self) -> Option<Class> {
        if self.sl > 0 {
            Some(Class {
                fl: self.fl,
                sl: self.sl - 1,
            })
        } else if self.fl > 0 {
            Some(Class {
                fl: self.fl - 1,
                sl: SL_COUNT - 1,
            })
        } else {
            None
        }
    }
}

/// The class a free block of `size` bytes is filed under.
///
/// `size` must be a multiple of 8 below [`MAX_BLOCK`].
///
/// Branch-free: the linear range is the first level whose power of two
/// is `SMALL_LIMIT / 2`, and it shares the shift of the level above.
#[inline(always)]
pub(super) fn class_of(size: usize) -> Class {
    debug_assert!(size < MAX_BLOCK && size.is_multiple_of(1 << GRAIN_SHIFT));
    let fl = (size | (SMALL_LIMIT / 2)).ilog2() - (SL_SHIFT + GRAIN_SHIFT - 1);
    Class {
        fl: fl as usize & (FL_COUNT - 1),
        sl: (size >> shift_of(size)) & (SL_COUNT - 1),
    }
}

/// log2 of the width of the slice `size` falls in.
#[inline(always)]
fn shift_of(size: usize) -> u32 {
    (size | SMALL_LIMIT).ilog2() - SL_SHIFT
}

/// The lowest class whose every block holds at least `size` bytes, or
/// `None` when no class does.
///
/// `size` must be a multiple of 8.
#[inline(always)]
pub(super) fn search_class(size: usize) -> Option<Class> {
    debug_assert!(size.is_multiple_of(1 << GRAIN_SHIFT));
    let slice = 1usize << shift_of(size);
    let rounded = size.checked_add(slice - 1)? & !(slice - 1);
    (rounded < MAX_BLOCK).then(|| class_of(rounded))
}

/// The smallest block size filed under `class`.
pub(super) fn class_min(class: Class) -> usize {
    if class.fl == 0 {
        class.sl << GRAIN_SHIFT
    } else {
        let log2 = class.fl as u32 + SL_SHIFT + GRAIN_SHIFT - 1;
        (1 << log2) + (class.sl << (log2 - SL_SHIFT))
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
    heads: [[usize; SL_COUNT]; FL_COUNT],
}

impl FreeLists {
    pub const fn new() -> Self {
        Self {
            fl_bitmap: 0,
            sl_bitmap: [0; FL_COUNT],
            heads: [[0; SL_COUNT]; FL_COUNT],
        }
    }

    #[inline(always)]
    pub fn head(&self, class: Class) -> usize {
        self.heads[class.fl & (FL_COUNT - 1)][class.sl & (SL_COUNT - 1)]
    }

    /// Sets the head of a list and keeps both bitmap levels in step.
    #[inline(always)]
    pub fn set_head(&mut self, class: Class, head: usize) {
        let (fl, sl) = (class.fl & (FL_COUNT - 1), class.sl & (SL_COUNT - 1));
        self.heads[fl][sl] = head;
        let bit = 1 << sl;
        let sl_bits = (self.sl_bitmap[fl] & !bit) | if head != 0 { bit } else { 0 };
        self.sl_bitmap[fl] = sl_bits;
        let fl_bit = 1 << fl;
        self.fl_bitmap = (self.fl_bitmap & !fl_bit) | if sl_bits != 0 { fl_bit } else { 0 };
    }

    /// Makes `head`, a block, the head of `class`'s list.
    #[inline(always)]
    pub fn push_head(&mut self, class: Class, head: usize) {
        debug_assert!(head != 0);
        let (fl, sl) = (class.fl & (FL_COUNT - 1), class.sl & (SL_COUNT - 1));
        self.heads[fl][sl] = head;
        self.sl_bitmap[fl] |= 1 << sl;
        self.fl_bitmap |= 1 << fl;
    }

    /// The first non-empty class at or above `from`: two bit scans.
    #[inline(always)]
    pub fn first_non_empty(&self, from: Class) -> Option<Class> {
        let here = self.sl_bitmap[from.fl & (FL_COUNT - 1)] & (u32::MAX << (from.sl & 31));
        if here != 0 {
            return Some(Class {
                fl: from.fl,
                sl: here.trailing_zeros() as usize,
            });
        }
        let above = self.fl_bitmap & (u64::MAX << (from.fl + 1));
        if above == 0 {
            return None;
        }
        let fl = above.trailing_zeros() as usize & (FL_COUNT - 1);
        Some(Class {
            fl,
            sl: self.sl_bitmap[fl].trailing_zeros() as usize,
        })
    }

    /// The highest non-empty class, where the largest free block lives.
    pub fn last_non_empty(&self) -> Option<Class> {
        self.last_non_empty_up_to(Class {
            fl: FL_COUNT - 1,
            sl: SL_COUNT - 1,
        })
    }

    /// The last non-empty class at or below `to`: two bit scans.
    pub fn last_non_empty_up_to(&self, to: Class) -> Option<Class> {
        let here = self.sl_bitmap[to.fl] & (u32::MAX >> (SL_COUNT - 1 - to.sl));
        if here != 0 {
            return Some(Class {
                fl: to.fl,
                sl: 31 - here.leading_zeros() as usize,
            });
        }
        let below = self.fl_bitmap & ((1u64 << to.fl) - 1);
        if below == 0 {
            return None;
        }
        let fl = 63 - below.leading_zeros() as usize;
        Some(Class {
            fl,
            sl: 31 - self.sl_bitmap[fl].leading_zeros() as usize,
        })
    }

    /// Whether the bitmaps agree with the heads; the first class where they
    /// do not, if any.
    pub fn bitmap_mismatch(&self) -> Option<Class> {
        for fl in 0..FL_COUNT {
            let fl_bit = self.fl_bitmap & (1 << fl) != 0;
            if fl_bit != (self.sl_bitmap[fl] != 0) {
                return Some(Class { fl, sl: 0 });
            }
            for sl in 0..SL_COUNT {
                let sl_bit = self.sl_bitmap[fl] & (1 << sl) != 0;
                if sl_bit != (self.heads[fl][sl] != 0) {
                    return Some(Class { fl, sl });
                }
            }
        }
        None
    }

    /// All classes in increasing size order.
    pub fn classes() -> impl Iterator<Item = Class> {
        (0..FL_COUNT).flat_map(|fl| (0..SL_COUNT).map(move |sl| Class { fl, sl }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_sizes_map_one_list_per_grain() {
        assert_eq!(class_of(40), Class { fl: 0, sl: 5 });
        assert_eq!(class_of(248), Class { fl: 0, sl: 31 });
        assert_eq!(search_class(48), Some(Class { fl: 0, sl: 6 }));
    }

    #[test]
    fn large_sizes_split_each_power_of_two_in_32() {
        assert_eq!(class_of(256), Class { fl: 1, sl: 0 });
        assert_eq!(class_of(256 + 8), Class { fl: 1, sl: 1 });
        assert_eq!(class_of(4096), Class { fl: 5, sl: 0 });
        assert_eq!(class_of(4096 + 120), Class { fl: 5, sl: 0 });
        assert_eq!(class_of(4096 + 128), Class { fl: 5, sl: 1 });
        assert_eq!(class_of(MAX_BLOCK - 8).fl, FL_COUNT - 1);
    }

    #[test]
    fn class_min_is_the_inverse_of_class_of_at_boundaries() {
        for class in FreeLists::classes().filter(|c| c.fl > 0 || c.sl > 0) {
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
        lists.set_head(class_of(4096), 0x1000);
        lists.set_head(class_of(1 << 30), 0x2000);
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
