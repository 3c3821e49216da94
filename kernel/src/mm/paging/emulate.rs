//! An emulated machine for host tests: RAM in a vector and a table-frame
//! allocator that counts and checks every frame it hands out.
//!
//! RAM is made of `Cell`s and `PhysMem` is implemented for `&Ram`, so
//! several `PageTable`s can edit the same RAM at once, as address spaces do
//! over the kernel's direct map.

use std::cell::Cell;
use std::collections::BTreeSet;

use super::{PhysMem, TableFrames};
use crate::mm::frame::{FRAME_SIZE, Frame, PhysAddr};

/// What a frame holds while nobody owns it, so a walker that forgets to
/// zero a new table, or reads a freed one, sees garbage rather than zeros.
pub const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

const WORDS_PER_FRAME: usize = (FRAME_SIZE / 8) as usize;

/// Emulated physical memory of a fixed number of frames.
pub struct Ram {
    words: Vec<Cell<u64>>,
}

impl Ram {
    /// `nr_frames` frames, all poisoned.
    pub fn new(nr_frames: u64) -> Self {
        Self {
            words: vec![Cell::new(POISON); nr_frames as usize * WORDS_PER_FRAME],
        }
    }

    pub fn nr_frames(&self) -> u64 {
        (self.words.len() / WORDS_PER_FRAME) as u64
    }

    fn word(&self, pa: PhysAddr) -> &Cell<u64> {
        assert!(pa.is_aligned(8), "unaligned access at {pa:?}");
        self.words
            .get((pa.as_u64() / 8) as usize)
            .unwrap_or_else(|| panic!("access outside emulated RAM at {pa:?}"))
    }

    /// Fills `frame` with [`POISON`].
    pub fn poison(&self, frame: Frame) {
        self.fill(frame, POISON);
    }

    fn fill(&self, frame: Frame, value: u64) {
        let first = frame.number() as usize * WORDS_PER_FRAME;
        for word in &self.words[first..first + WORDS_PER_FRAME] {
            word.set(value);
        }
    }
}

impl PhysMem for &Ram {
    fn read_u64(&self, pa: PhysAddr) -> u64 {
        self.word(pa).get()
    }

    fn write_u64(&mut self, pa: PhysAddr, value: u64) {
        self.word(pa).set(value);
    }

    fn zero_frame(&mut self, frame: Frame) {
        self.fill(frame, 0);
    }
}

/// Hands out the frames of a [`Ram`] (never frame 0, so a zeroed entry can
/// never look like a table), poisons them both ways, and panics on a double
/// or foreign free.
pub struct Tables<'r> {
    ram: &'r Ram,
    free: Vec<Frame>,
    live: BTreeSet<Frame>,
    /// How many more allocations succeed; `None` is no limit.
    pub budget: Option<u64>,
    pub nr_allocs: u64,
    pub nr_frees: u64,
}

impl<'r> Tables<'r> {
    pub fn new(ram: &'r Ram) -> Self {
        Self {
            ram,
            free: (1..ram.nr_frames()).rev().map(Frame::from_number).collect(),
            live: BTreeSet::new(),
            budget: None,
            nr_allocs: 0,
            nr_frees: 0,
        }
    }

    /// Frames handed out and not yet returned.
    pub fn live(&self) -> &BTreeSet<Frame> {
        &self.live
    }
}

impl TableFrames for Tables<'_> {
    fn alloc_table(&mut self) -> Option<Frame> {
        if let Some(budget) = &mut self.budget {
            *budget = budget.checked_sub(1)?;
        }
        let frame = self.free.pop()?;
        self.ram.poison(frame);
        self.live.insert(frame);
        self.nr_allocs += 1;
        Some(frame)
    }

    fn free_table(&mut self, frame: Frame) {
        assert!(self.live.remove(&frame), "freed {frame:?}, not live");
        self.ram.poison(frame);
        self.free.push(frame);
        self.nr_frees += 1;
    }
}
