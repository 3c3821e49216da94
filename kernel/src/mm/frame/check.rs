//! Consistency check of a frame bitmap, and fault injection to prove that
//! the check finds what a stray write would break.

use super::FrameError;
use super::addr::Frame;
use super::bitmap::FrameBitmap;
use super::owner::{Owner, RAW_FREE};
use super::table::decode;

/// How many mismatches a [`CheckReport`] lists individually; the counters
/// cover the rest. Fixed so the check needs no allocation.
pub const MAX_REPORTED: usize = 8;

/// What disagrees at one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchKind {
    /// The used bit is set but the owner slot says free.
    UsedWithoutOwner,
    /// The used bit is clear but the owner slot names an owner.
    FreeWithOwner,
    /// The owner slot holds a value no owner encodes to.
    InvalidOwner {
        /// The slot's value.
        raw: u32,
    },
    /// A summary bit of `level` disagrees with the word it summarises.
    Summary {
        /// Summary level, from 1.
        level: u8,
    },
    /// A bit of `level` past the last frame is wrong (level 0: clear, so the
    /// frame would look allocatable; above: set).
    Padding {
        /// The level, from 0.
        level: u8,
    },
}

/// One mismatch and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// The frame concerned; for a summary or padding bit, the first frame
    /// that bit stands for (possibly past the end).
    pub frame: Frame,
    /// What is wrong there.
    pub kind: MismatchKind,
}

/// Result of [`FrameBitmap::check`]: counts of each kind of disagreement
/// and the first [`MAX_REPORTED`] places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckReport {
    /// Frames the bitmap covers.
    pub nr_frames: u64,
    /// Frames whose used bit is clear.
    pub free_counted: u64,
    /// The free counter.
    pub free_recorded: u64,
    /// Frames whose owner is not `Unusable` (RAM).
    pub total_counted: u64,
    /// The RAM counter.
    pub total_recorded: u64,
    /// Frames used with no owner.
    pub used_without_owner: u64,
    /// Frames free with an owner.
    pub free_with_owner: u64,
    /// Owner slots with an invalid value.
    pub invalid_owners: u64,
    /// Summary bits that disagree with the level below.
    pub summary_mismatches: u64,
    /// Wrong bits past the end of a level.
    pub padding_mismatches: u64,
    first: [Mismatch; MAX_REPORTED],
    nr_first: usize,
}

impl CheckReport {
    fn new(nr_frames: u64, free_recorded: u64, total_recorded: u64) -> Self {
        let filler = Mismatch {
            frame: Frame::from_number(0),
            kind: MismatchKind::UsedWithoutOwner,
        };
        Self {
            nr_frames,
            free_counted: 0,
            free_recorded,
            total_counted: 0,
            total_recorded,
            used_without_owner: 0,
            free_with_owner: 0,
            invalid_owners: 0,
            summary_mismatches: 0,
            padding_mismatches: 0,
            first: [filler; MAX_REPORTED],
            nr_first: 0,
        }
    }

    fn record(&mut self, frame: u64, kind: MismatchKind) {
        let counter = match kind {
            MismatchKind::UsedWithoutOwner => &mut self.used_without_owner,
            MismatchKind::FreeWithOwner => &mut self.free_with_owner,
            MismatchKind::InvalidOwner { .. } => &mut self.invalid_owners,
            MismatchKind::Summary { .. } => &mut self.summary_mismatches,
            MismatchKind::Padding { .. } => &mut self.padding_mismatches,
        };
        *counter += 1;
        if let Some(slot) = self.first.get_mut(self.nr_first) {
            *slot = Mismatch {
                frame: Frame::from_number(frame),
                kind,
            };
            self.nr_first += 1;
        }
    }

    /// Whether bits, summaries, owners and counters all agree.
    #[must_use]
    pub fn is_consistent(&self) -> bool {
        self.nr_mismatches() == 0
    }

    /// All disagreements: per-place mismatches plus one per wrong counter.
    #[must_use]
    pub fn nr_mismatches(&self) -> u64 {
        self.used_without_owner
            + self.free_with_owner
            + self.invalid_owners
            + self.summary_mismatches
            + self.padding_mismatches
            + u64::from(self.free_counted != self.free_recorded)
            + u64::from(self.total_counted != self.total_recorded)
    }

    /// The first [`MAX_REPORTED`] per-place mismatches, lowest level-0
    /// frames first, then padding, then summaries by level.
    #[must_use]
    pub fn mismatches(&self) -> &[Mismatch] {
        &self.first[..self.nr_first]
    }
}

/// A deliberate inconsistency, for [`FrameBitmap::inject_corruption`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Corruption {
    /// Flip level-0 bit `n`: frame `n`, or a padding bit past the end.
    FlipUsedBit(u64),
    /// Overwrite a frame's owner slot with a raw value.
    SetOwnerRaw {
        /// The frame.
        frame: Frame,
        /// The value to write (see [`Owner::to_raw`]); above `u16::MAX`
        /// only fits 32-bit slots.
        raw: u32,
    },
    /// Flip bit `bit` of summary level `level` (from 1).
    FlipSummaryBit {
        /// Summary level.
        level: usize,
        /// Bit number in that level.
        bit: u64,
    },
    /// Add `delta` to the free counter (wrapping).
    SkewFreeCount(i64),
    /// Add `delta` to the RAM counter (wrapping).
    SkewTotalCount(i64),
}

impl FrameBitmap<'_> {
    /// Cross-checks everything the allocator keeps, in O(`nr_frames`) and
    /// without allocating: each used bit against its owner slot (used <=>
    /// owner present, slot valid), each summary bit against the word below,
    /// the bits past the end, and both counters against a recount.
    #[must_use]
    pub fn check(&self) -> CheckReport {
        let mut report = CheckReport::new(self.nr_frames, self.nr_free, self.nr_total);
        self.owners.for_each(|idx, raw| {
            let idx = idx as u64;
            let used = self.bit(idx);
            if !used {
                report.free_counted += 1;
            }
            match decode(raw) {
                Some(owner) => {
                    if owner != Owner::Unusable {
                        report.total_counted += 1;
                    }
                    if !used {
                        report.record(idx, MismatchKind::FreeWithOwner);
                    }
                }
                None if raw == u32::from(RAW_FREE) => {
                    report.total_counted += 1;
                    if used {
                        report.record(idx, MismatchKind::UsedWithoutOwner);
                    }
                }
                None => {
                    report.total_counted += 1;
                    report.record(idx, MismatchKind::InvalidOwner { raw });
                }
            }
        });

        let level0_bits = self.levels.len(0) as u64 * 64;
        for idx in self.nr_frames..level0_bits {
            if !self.bit(idx) {
                report.record(idx, MismatchKind::Padding { level: 0 });
            }
        }

        for level in 1..self.levels.count {
            let children = self.levels.len(level - 1);
            let frames_per_bit_shift = 6 * level as u32;
            for bit in 0..self.levels.len(level) * 64 {
                let word = self.words[self.levels.start[level] + bit / 64];
                let set = word & (1 << (bit % 64)) != 0;
                let first_frame = (bit as u64) << frames_per_bit_shift;
                if bit < children {
                    let has_free = self.free_bits(level - 1, bit).is_some_and(|w| w != 0);
                    if set != has_free {
                        report.record(first_frame, MismatchKind::Summary { level: level as u8 });
                    }
                } else if set {
                    report.record(first_frame, MismatchKind::Padding { level: level as u8 });
                }
            }
        }
        report
    }

    /// Breaks an invariant on purpose, the way a stray write would, so that
    /// tests (and the kernel's self-test) can show [`check`](Self::check)
    /// catches it. The allocator stays memory-safe afterwards and never
    /// hands out a frame it sees as used, but may answer
    /// [`FrameError::Corrupted`].
    ///
    /// # Errors
    /// [`FrameError::OutOfRange`] if the bit, slot or level does not exist;
    /// then nothing changes.
    pub fn inject_corruption(&mut self, corruption: Corruption) -> Result<(), FrameError> {
        match corruption {
            Corruption::FlipUsedBit(bit) => {
                let word = usize::try_from(bit / 64).map_err(|_| FrameError::OutOfRange)?;
                if word >= self.levels.len(0) {
                    return Err(FrameError::OutOfRange);
                }
                self.words[word] ^= 1 << (bit % 64);
            }
            Corruption::SetOwnerRaw { frame, raw } => {
                if frame.number() >= self.nr_frames {
                    return Err(FrameError::OutOfRange);
                }
                if !self.owners.set_any(frame.number() as usize, raw) {
                    return Err(FrameError::OutOfRange);
                }
            }
            Corruption::FlipSummaryBit { level, bit } => {
                if level == 0 || level >= self.levels.count {
                    return Err(FrameError::OutOfRange);
                }
                let word = usize::try_from(bit / 64).map_err(|_| FrameError::OutOfRange)?;
                if word >= self.levels.len(level) {
                    return Err(FrameError::OutOfRange);
                }
                self.words[self.levels.start[level] + word] ^= 1 << (bit % 64);
            }
            Corruption::SkewFreeCount(delta) => {
                self.nr_free = self.nr_free.wrapping_add_signed(delta);
            }
            Corruption::SkewTotalCount(delta) => {
                self.nr_total = self.nr_total.wrapping_add_signed(delta);
            }
        }
        Ok(())
    }
}
