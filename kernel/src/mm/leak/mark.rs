//! Conservative marking: which blocks some word still points into.

/// A block the scan may find unreferenced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Candidate {
    /// First payload byte.
    pub start: u64,
    /// One past the last payload byte (the bytes requested).
    pub end: u64,
    /// Milliseconds since boot when it was allocated.
    pub born_ms: u32,
    /// Its call stack's id in the depot.
    pub stack: u16,
    /// Whether a reference to it was found.
    pub marked: bool,
}

/// Marks the [`Candidate`]s that the words shown to it point into, and
/// hands back each newly marked block once so its owner can show it that
/// block's words too (the gray list of a tri-colour mark).
#[derive(Debug)]
pub struct Marker<'a> {
    /// Sorted by `start`, not overlapping.
    blocks: &'a mut [Candidate],
    /// Indices of marked blocks whose words are still to be scanned.
    gray: &'a mut [u32],
    gray_len: usize,
    /// Everything outside `[lo, hi)` points into no block.
    lo: u64,
    hi: u64,
    scanned_words: u64,
}

impl<'a> Marker<'a> {
    /// A marker over `blocks` (sorted by address, none marked) with room
    /// for every block in `gray` (its length at least `blocks.len()`).
    pub fn new(blocks: &'a mut [Candidate], gray: &'a mut [u32]) -> Self {
        assert!(gray.len() >= blocks.len());
        debug_assert!(blocks.windows(2).all(|w| w[0].end <= w[1].start));
        let lo = blocks.first().map_or(0, |b| b.start);
        let hi = blocks.last().map_or(0, |b| b.end);
        Self {
            blocks,
            gray,
            gray_len: 0,
            lo,
            hi,
            scanned_words: 0,
        }
    }

    /// Treats `word` as a possible reference.
    #[inline]
    pub fn scan_word(&mut self, word: u64) {
        self.scanned_words += 1;
        if word >= self.lo && word < self.hi {
            self.mark(word);
        }
    }

    /// `[lo, hi)`: no word outside it points into a block. A caller that
    /// reads memory itself tests this first and calls [`Self::mark`] only
    /// for the words inside (the few that may be pointers), then counts
    /// the words with [`Self::add_scanned`].
    pub fn bounds(&self) -> (u64, u64) {
        (self.lo, self.hi)
    }

    /// Counts `words` read by a caller that tested [`Self::bounds`] itself.
    pub fn add_scanned(&mut self, words: u64) {
        self.scanned_words += words;
    }

    /// Marks the block `word` points into, if any (see [`Self::bounds`]).
    pub fn mark(&mut self, word: u64) {
        // The last block starting at or below `word`.
        let i = self.blocks.partition_point(|b| b.start <= word);
        let Some(i) = i.checked_sub(1) else { return };
        let block = &mut self.blocks[i];
        if word < block.end && !block.marked {
            block.marked = true;
            self.gray[self.gray_len] = i as u32;
            self.gray_len += 1;
        }
    }

    /// Treats each of `words` as a possible reference.
    pub fn scan_words(&mut self, words: &[u64]) {
        for &w in words {
            self.scan_word(w);
        }
    }

    /// The payload `[start, end)` of a marked block whose words have not
    /// been scanned yet; each block comes out once.
    pub fn next_gray(&mut self) -> Option<(u64, u64)> {
        self.gray_len = self.gray_len.checked_sub(1)?;
        let block = &self.blocks[self.gray[self.gray_len] as usize];
        Some((block.start, block.end))
    }

    /// Words scanned so far.
    pub fn scanned_words(&self) -> u64 {
        self.scanned_words
    }

    /// The blocks, marked or not.
    pub fn blocks(&self) -> &[Candidate] {
        self.blocks
    }
}
