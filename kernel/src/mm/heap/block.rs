//! Block encoding and its seal: the header words, pad marker and wide tag
//! the module docs lay out, the seals over them, and the [`Heap`] methods
//! that read a header back off the fast paths (padded and wide blocks, the
//! reasons for an error, the walks).
//!
//! How the tag, pad, slack and seal fields are packed is known only here.
//! The allocator and the walks use the word offsets, the `USED` and
//! `PREV_FREE` flags, the size mask, free-list links and footers directly,
//! and these helpers for the rest. Everything here is pure or reads through
//! the region's checked accessors; the allocator's fast paths read the
//! words themselves and check them with the pure functions.
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering};

use super::tlsf::class_of;
use super::{BlockInfo, BlockState, Heap, HeapError};

/// Bytes of header in front of every block.
pub const HEADER_BYTES: usize = 16;
/// Smallest block: a header, a free-list link and a footer.
pub const MIN_BLOCK_BYTES: usize = 32;
/// Extra bytes in front of the payload of a block whose tag has no compact
/// form (an owner beyond `i16` or a key beyond `i32`, sign-extended).
pub const WIDE_TAG_BYTES: usize = 16;
/// Guard bytes after every payload when red zones are on.
pub const RED_ZONE_BYTES: usize = 16;
/// The value red-zone bytes hold.
pub const RED_ZONE_BYTE: u8 = 0xFD;
/// Owner tag of the sentinel block that closes the region.
pub const SENTINEL_OWNER: u32 = u32::MAX;

pub(super) const GRAIN: usize = 8;
pub(super) const HEADER: usize = HEADER_BYTES;
pub(super) const MIN_BLOCK: usize = MIN_BLOCK_BYTES;
/// Largest alignment pad: gaps of [`MIN_BLOCK`] or more become free blocks.
const MAX_PAD: usize = MIN_BLOCK - GRAIN;
/// Largest pad of a wide block.
const MAX_WIDE_PAD: usize = WIDE_TAG_BYTES + MAX_PAD;

// Word offsets inside a block.
pub(super) const TAG: usize = 0;
pub(super) const SIZE: usize = 8;
pub(super) const PREV_LINK: usize = 16;
/// A wide block's key.
const WIDE_KEY: usize = 16;

// The size word.
pub(super) const USED: u64 = 1;
pub(super) const PREV_FREE: u64 = 2;
const WIDE: u64 = 4;
/// In a block that is not used: it is in a bin (see [`Heap`]), free but
/// not merged, and to its neighbours still a used block.
pub(super) const BINNED: u64 = 4;
pub(super) const SIZE_MASK: u64 = ((1 << 39) - 1) & !7;
const PAD_SHIFT: u32 = 39;
const PAD_FIELD: u64 = 7 << PAD_SHIFT;
const SLACK_SHIFT: u32 = 42;
const SLACK_BITS: u64 = 0x3f;
const MAX_SLACK: usize = SLACK_BITS as usize;
/// The seal bits of a used block's size word: its top two bytes.
const USED_SEAL: u64 = !0 << 48;
/// What a used block's seal covers of its size word: everything else but
/// `PREV_FREE`, which neighbours flip.
const USED_DATA: u64 = !USED_SEAL & !PREV_FREE;
/// The seal bits of a free block's size word: its top three bytes.
const FREE_SEAL: u64 = !0 << 40;
/// The seal bits of a used block's tag word: its top two bytes.
const TAG_SEAL: u64 = !0 << 48;

/// The pad marker: this value with the pad length in bits 3..6, and in the
/// high half [`MARKER_HIGH`] or a wide tag's owner.
const PAD_MAGIC: u32 = 0x9AD0_9A80;
const PAD_BITS: u64 = 0x38;
const MARKER_HIGH: u64 = 0x9AD0_9AD0;

/// Who owns an allocation: a tag (process, subsystem) and a key (the
/// caller's return address for the kernel heap, the allocation key for a
/// process's keyed heap). Both are kept with the block; see the module
/// docs for how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockTag {
    /// Owner tag.
    pub owner: u32,
    /// Caller address or key.
    pub key: u64,
}

impl BlockTag {
    /// A tag for `owner` with `key`.
    pub const fn new(owner: u32, key: u64) -> Self {
        Self { owner, key }
    }
}

/// A tag as a block keeps it: the compact form (the tag word below its
/// seal), or for a wide tag the key and owner kept outside the header.
#[derive(Clone, Copy, Debug)]
pub(super) struct Stored {
    /// Bits 0..48 of the tag word; 0 when wide.
    word: u64,
    wide: bool,
    /// Wide only, else 0.
    key: u64,
    /// Wide only, else 0.
    owner: u64,
}

impl Stored {
    #[inline(always)]
    pub(super) fn of(tag: BlockTag) -> Self {
        match Self::compact_word(tag) {
            Some(word) => Self::compact(word),
            None => Self::wide(tag),
        }
    }

    /// The tag word's data for `tag`, if it has a compact form.
    #[inline(always)]
    pub(super) fn compact_word(tag: BlockTag) -> Option<u64> {
        let owner_fits = i32::from(tag.owner as i16) == tag.owner as i32;
        let key_fits = i64::from(tag.key as i32) == tag.key as i64;
        (owner_fits && key_fits)
            .then(|| u64::from(tag.owner & 0xffff) | (tag.key & 0xffff_ffff) << 16)
    }

    /// `tag` kept outside the header.
    pub(super) fn wide(tag: BlockTag) -> Self {
        Self {
            word: 0,
            wide: true,
            key: tag.key,
            owner: u64::from(tag.owner),
        }
    }

    #[inline(always)]
    pub(super) const fn compact(word: u64) -> Self {
        Self {
            word,
            wide: false,
            key: 0,
            owner: 0,
        }
    }

    pub(super) fn tag(&self) -> BlockTag {
        if self.wide {
            BlockTag::new(self.owner as u32, self.key)
        } else {
            BlockTag::new(
                i32::from(self.word as i16) as u32,
                i64::from((self.word >> 16) as i32) as u64,
            )
        }
    }

    /// Bytes from a block's start to the earliest payload.
    #[inline(always)]
    pub(super) fn lead(&self) -> usize {
        if self.wide {
            HEADER + WIDE_TAG_BYTES
        } else {
            HEADER
        }
    }

    /// The key a wide block keeps after its header; `None` if compact.
    #[inline(always)]
    pub(super) fn wide_key(&self) -> Option<u64> {
        self.wide.then_some(self.key)
    }

    /// The high half of a pad marker.
    #[inline(always)]
    fn marker_high(&self) -> u64 {
        if self.wide { self.owner } else { MARKER_HIGH }
    }
}

/// A used block, validated: its address and size word, which has all the
/// rest. Two words, so it travels in registers.
#[derive(Clone, Copy, Debug)]
pub(super) struct UsedBlock {
    pub(super) at: usize,
    pub(super) word: u64,
}

impl UsedBlock {
    #[inline(always)]
    pub(super) fn addr(&self) -> usize {
        self.at
    }

    #[inline(always)]
    pub(super) fn size(&self) -> usize {
        (self.word & SIZE_MASK) as usize
    }

    #[inline(always)]
    pub(super) fn pad(&self) -> usize {
        ((self.word >> PAD_SHIFT) & 7) as usize * GRAIN
    }

    #[inline(always)]
    pub(super) fn requested(&self) -> usize {
        self.size() - HEADER - self.pad() - ((self.word >> SLACK_SHIFT) & SLACK_BITS) as usize
    }

    #[inline(always)]
    pub(super) fn prev_free(&self) -> bool {
        self.word & PREV_FREE != 0
    }

    #[inline(always)]
    pub(super) fn wide(&self) -> bool {
        self.word & WIDE != 0
    }

    #[inline(always)]
    pub(super) fn payload(&self) -> usize {
        self.addr() + HEADER + self.pad()
    }
}

/// A free block whose header and list links were validated.
#[derive(Clone, Copy, Debug)]
pub(super) struct FreeBlock {
    pub(super) addr: usize,
    pub(super) size: usize,
}

/// Smallest block holding `body` bytes after a pad of `pad` bytes: like a
/// [`Request`](super::allocator::Request)'s span, the payload and what
/// follows it take at least `MIN_BLOCK - HEADER` bytes, so a payload never
/// ends its block empty.
#[inline(always)]
pub(super) fn block_size(pad: usize, body: usize) -> usize {
    HEADER + pad + body.next_multiple_of(GRAIN).max(MIN_BLOCK - HEADER)
}

/// The odd multiplier of the seals. Every change confined to one byte of
/// a multiplier's input moves the product by `d * SEAL_MUL << 8b` for some
/// `d` in `±1..=±255` and byte `b`; for this constant those moves all have
/// a top 32 bits neither all zeros nor all ones (checked by a test), so
/// they always change the product's top 24 and top 32 bits, which the seals
/// are cut from.
pub(super) const SEAL_MUL: u64 = 0x9E37_79B9_7F4A_7C15;

/// Separates free blocks' seals from used blocks'.
const FREE_TWEAK: u64 = 0x6672_6565_626c_6f6b;

/// The per-heap keys of the seals: a used block's and a free block's.
pub(super) fn seal_keys(secret: u64) -> (u64, u64) {
    (secret, secret ^ FREE_TWEAK)
}

/// A heap's secret: a mix of where its region lies and a counter, so that
/// two heaps (or one made again at the same place) seal differently.
pub(super) fn new_secret(start: usize, max: usize) -> u64 {
    static NONCE: AtomicU64 = AtomicU64::new(0x243f_6a88_85a3_08d3);
    let nonce = NONCE.fetch_add(SEAL_MUL, Ordering::Relaxed);
    let mut x = nonce ^ (start as u64).rotate_left(17) ^ (max as u64).rotate_left(41);
    // SplitMix64's finalizer
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The product a used block's seal is cut from: its address, its size
/// word's data (`PREV_FREE` and the seal clear) and its tag, each field
/// shifted by whole bytes so that a change to one byte of the header is a
/// change to one byte of the input, and the heap's key.
#[inline(always)]
pub(super) fn used_hash(key: u64, addr: usize, size_data: u64, stored: &Stored) -> u64 {
    let x = size_data
        ^ (stored.word << 16)
        ^ stored.key.rotate_left(24)
        ^ (stored.owner << 8)
        ^ addr as u64
        ^ key;
    x.wrapping_mul(SEAL_MUL)
}

/// Whether a used block's words carry the seal they should: the top 16
/// bits of each word against the top 32 bits of [`used_hash`].
#[inline(always)]
pub(super) fn used_seal_ok(
    key: u64,
    addr: usize,
    size_word: u64,
    tag_word: u64,
    stored: &Stored,
) -> bool {
    let h = used_hash(key, addr, size_word & USED_DATA, stored);
    ((h ^ size_word) | ((h << 16) ^ tag_word)) >> 48 == 0
}

/// [`used_seal_ok`] for a compact block, whose tag is its tag word's data:
/// one multiply, one compare.
#[inline(always)]
pub(super) fn compact_seal_ok(key: u64, addr: usize, size_word: u64, tag_word: u64) -> bool {
    let x = (size_word & USED_DATA) ^ (tag_word << 16) ^ addr as u64 ^ key;
    let h = x.wrapping_mul(SEAL_MUL);
    ((h ^ size_word) | ((h << 16) ^ tag_word)) >> 48 == 0
}

/// A size word of a block that is not used (without `PREV_FREE`): its
/// data (the size, and `BINNED` or not), and a seal over the data, the
/// address and the heap's free key.
#[inline(always)]
fn unused_word(free_key: u64, addr: usize, data: u64) -> u64 {
    let h = (data ^ addr as u64 ^ free_key).wrapping_mul(SEAL_MUL);
    data | (h & FREE_SEAL)
}

/// A free block's size word (without `PREV_FREE`).
#[inline(always)]
pub(super) fn free_word(free_key: u64, addr: usize, size: usize) -> u64 {
    unused_word(free_key, addr, size as u64)
}

/// The size of the free block at `addr` whose size word is `size_word`,
/// if the word is a valid free header there (any `PREV_FREE`).
#[inline(always)]
pub(super) fn free_size(free_key: u64, addr: usize, size_word: u64) -> Option<usize> {
    let size = (size_word & SIZE_MASK) as usize;
    (size_word & !PREV_FREE == free_word(free_key, addr, size)).then_some(size)
}

/// A binned block's size word (without `PREV_FREE`).
#[inline(always)]
pub(super) fn binned_word(free_key: u64, addr: usize, size: usize) -> u64 {
    unused_word(free_key, addr, size as u64 | BINNED)
}

/// The size of the binned block at `addr` whose size word is `size_word`,
/// if the word is a valid binned header there (any `PREV_FREE`).
#[inline(always)]
pub(super) fn binned_size(free_key: u64, addr: usize, size_word: u64) -> Option<usize> {
    let size = (size_word & SIZE_MASK) as usize;
    (size_word & !PREV_FREE == binned_word(free_key, addr, size)).then_some(size)
}

/// A used block's tag word and size word (without `PREV_FREE`).
#[inline(always)]
pub(super) fn used_words(
    key: u64,
    addr: usize,
    size: usize,
    pad: usize,
    slack: usize,
    stored: &Stored,
) -> [u64; 2] {
    debug_assert!(slack <= MAX_SLACK && pad / GRAIN <= 7);
    let size_word = size as u64
        | USED
        | if stored.wide { WIDE } else { 0 }
        | ((pad / GRAIN) as u64) << PAD_SHIFT
        | (slack as u64) << SLACK_SHIFT;
    let h = used_hash(key, addr, size_word, stored);
    [
        stored.word | ((h << 16) & TAG_SEAL),
        size_word | (h & USED_SEAL),
    ]
}

/// The pad marker of a used block with pad `pad` (see the module docs).
#[inline(always)]
pub(super) fn pad_marker(pad: usize, stored: &Stored) -> u64 {
    stored.marker_high() << 32 | u64::from(PAD_MAGIC) | pad as u64
}

/// The sentinel's tag word and size word (without `PREV_FREE`).
fn sentinel_words(key: u64, addr: usize) -> [u64; 2] {
    used_words(
        key,
        addr,
        HEADER,
        0,
        0,
        &Stored::of(BlockTag::new(SENTINEL_OWNER, 0)),
    )
}

/// Whether a used size word has neither pad nor wide tag: its payload
/// follows the header.
#[inline(always)]
pub(super) fn plain_used(size_word: u64) -> bool {
    size_word & (USED | WIDE | PAD_FIELD) == USED
}

/// The pad of a compact block whose pad marker is `word`, if it is one.
#[inline(always)]
pub(super) fn compact_marker_pad(word: u64) -> Option<usize> {
    let pad = (word & PAD_BITS) as usize;
    let marker = word & !PAD_BITS == MARKER_HIGH << 32 | u64::from(PAD_MAGIC);
    (marker && pad != 0 && pad <= MAX_PAD).then_some(pad)
}

/// Whether a used size word has a compact tag and a pad of `pad` bytes.
#[inline(always)]
pub(super) fn padded_used(size_word: u64, pad: usize) -> bool {
    size_word & (USED | WIDE | PAD_FIELD) == USED | ((pad / GRAIN) as u64) << PAD_SHIFT
}

/// Whether a used block of `size` bytes with this size word's pad and
/// slack is well-formed: large enough for its header, pad and slack.
#[inline(always)]
pub(super) fn used_fits(size_word: u64, size: usize) -> bool {
    let pad = ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN;
    let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
    size >= MIN_BLOCK && HEADER + pad + slack <= size
}

// Reading headers: validation only, no writes. These read through the
// region's checked accessors: they are off the allocator's fast paths.
impl Heap {
    /// Whether `addr` could be a block header other than the sentinel: an
    /// 8-aligned address in `[first, sentinel)`.
    #[inline(always)]
    pub(super) fn is_block_addr(&self, addr: usize) -> bool {
        // the rotation moves a misalignment into the top bits
        addr.wrapping_sub(self.first)
            .rotate_right(GRAIN.trailing_zeros())
            < self.nr_grains
    }

    /// The free block at `addr`, if its header says it is one and it and
    /// its links validate (checked reads; the walks and slow paths).
    pub(super) fn free_block_at(&self, addr: usize) -> Option<FreeBlock> {
        let size = free_size(self.free_key, addr, self.mem.read(addr + SIZE))?;
        if size < MIN_BLOCK || size > self.sentinel - addr {
            return None;
        }
        let [next, _, prev] = self.mem.read_words(addr);
        let (next, prev) = (next as usize, prev as usize);
        let heads = self.lists.head(class_of(size)) == addr;
        let linked = (next == 0 || self.is_block_addr(next))
            && ((prev == 0 && heads) || self.is_block_addr(prev));
        linked.then_some(FreeBlock { addr, size })
    }

    /// The used block whose payload is at `p` when its header is not right
    /// in front of it (a pad or a wide tag between them), or the error for
    /// `p`.
    #[cold]
    #[inline(never)]
    pub(super) fn used_block_slow(&self, p: usize) -> Result<UsedBlock, HeapError> {
        self.try_padded_block(p)
            .ok_or_else(|| self.used_block_error(p))
    }

    /// The used block whose payload, behind a pad, is at `p`.
    fn try_padded_block(&self, p: usize) -> Option<UsedBlock> {
        if self.sentinel == 0
            || !p.is_multiple_of(GRAIN)
            || p < self.first + HEADER
            || p >= self.sentinel
        {
            return None;
        }
        let marker = self.mem.read(p - 8);
        let pad = (marker & PAD_BITS) as usize;
        if (marker as u32) & !(PAD_BITS as u32) != PAD_MAGIC
            || pad == 0
            || p - self.first < HEADER + pad
        {
            return None;
        }
        let addr = p - HEADER - pad;
        let [tag_word, size_word] = self.mem.read_words(addr);
        if size_word & USED == 0 || size_word & PAD_FIELD != ((pad / GRAIN) as u64) << PAD_SHIFT {
            return None;
        }
        let stored = if size_word & WIDE != 0 {
            if pad < WIDE_TAG_BYTES || tag_word & !TAG_SEAL != 0 {
                return None;
            }
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(addr + WIDE_KEY),
                owner: marker >> 32,
            }
        } else {
            if pad > MAX_PAD || marker >> 32 != MARKER_HIGH {
                return None;
            }
            Stored::compact(tag_word & !TAG_SEAL)
        };
        let size = (size_word & SIZE_MASK) as usize;
        let valid = used_seal_ok(self.seal_key, addr, size_word, tag_word, &stored)
            && used_fits(size_word, size)
            && size <= self.sentinel - addr;
        valid.then_some(UsedBlock {
            at: addr,
            word: size_word,
        })
    }

    /// The tag of a validated used block.
    #[inline(always)]
    pub(super) fn stored_of(&self, block: &UsedBlock) -> Stored {
        match self.compact_tag_of(block) {
            Some(stored) => stored,
            None => self.wide_tag_of(block),
        }
    }

    /// The compact tag of a validated used block, `None` if it is wide.
    #[inline(always)]
    pub(super) fn compact_tag_of(&self, block: &UsedBlock) -> Option<Stored> {
        (!block.wide()).then(|| Stored::compact(self.mem.read(block.addr() + TAG) & !TAG_SEAL))
    }

    /// The tag of a validated used block (compact or wide, read in full).
    #[inline(never)]
    pub(super) fn wide_tag_of(&self, block: &UsedBlock) -> Stored {
        if block.wide() {
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(block.addr() + WIDE_KEY),
                owner: self.mem.read(block.payload() - 8) >> 32,
            }
        } else {
            Stored::compact(self.mem.read(block.addr() + TAG) & !TAG_SEAL)
        }
    }

    /// The error for a free block below `addr` that fails validation.
    #[cold]
    pub(super) fn corrupt_below(&self, addr: usize) -> HeapError {
        if addr - self.first < MIN_BLOCK {
            return HeapError::CorruptHeader { addr };
        }
        let size = self.mem.read(addr - 8) as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            HeapError::CorruptHeader { addr }
        } else {
            HeapError::CorruptHeader { addr: addr - size }
        }
    }

    /// Why `p` is not the payload of a valid used block.
    #[cold]
    #[inline(never)]
    fn used_block_error(&self, p: usize) -> HeapError {
        let invalid = HeapError::InvalidPointer { addr: p };
        if self.sentinel == 0
            || !p.is_multiple_of(GRAIN)
            || p < self.first + HEADER
            || p >= self.sentinel
        {
            return invalid;
        }
        let word = self.mem.read(p - 8);
        let pad = if word & USED != 0 {
            0
        } else if (word as u32) & !(PAD_BITS as u32) == PAD_MAGIC {
            let pad = (word & PAD_BITS) as usize;
            if pad == 0 || p - self.first < HEADER + pad {
                return invalid;
            }
            pad
        } else {
            return self.classify_unused(p);
        };
        let addr = p - HEADER - pad;
        let size_word = self.mem.read(addr + SIZE);
        if size_word & USED == 0 {
            return self.classify_unused(p);
        }
        let size = (size_word & SIZE_MASK) as usize;
        let plausible = size <= self.sentinel - addr
            && ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN == pad
            && used_fits(size_word, size);
        if plausible {
            HeapError::CorruptHeader { addr }
        } else {
            invalid
        }
    }

    /// Why `p` has no used header in front of it: a free header there (or
    /// where a pad marker, since overwritten by a free-list link, would have
    /// led), or the retired header a block leaves when it merges into the
    /// free block below it, means `p` was freed already.
    #[cold]
    fn classify_unused(&self, p: usize) -> HeapError {
        for pad in (0..=MAX_WIDE_PAD).step_by(GRAIN) {
            let Some(addr) = p.checked_sub(HEADER + pad) else {
                break;
            };
            if addr < self.first {
                break;
            }
            let [tag_word, size_word] = self.mem.read_words(addr);
            let size = (size_word & SIZE_MASK) as usize;
            let freed = free_size(self.free_key, addr, size_word).is_some()
                || binned_size(self.free_key, addr, size_word).is_some()
                || self.retired(addr, size_word, tag_word);
            if freed && size > HEADER + pad && size <= self.sentinel - addr {
                return HeapError::DoubleFree { addr: p };
            }
        }
        HeapError::InvalidPointer { addr: p }
    }

    /// Whether the header at `addr` is one a block left behind when it was
    /// freed into the free block below it: its used header with `USED`
    /// cleared (see `Heap::release`).
    fn retired(&self, addr: usize, size_word: u64, tag_word: u64) -> bool {
        if size_word & USED != 0 || addr + HEADER > self.sentinel {
            return false;
        }
        let size_word = size_word | USED;
        let stored = if size_word & WIDE != 0 {
            let pad = ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN;
            let marker_at = addr + HEADER + pad - 8;
            if pad < WIDE_TAG_BYTES || marker_at + 8 > self.sentinel {
                return false;
            }
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(addr + WIDE_KEY),
                owner: self.mem.read(marker_at) >> 32,
            }
        } else {
            Stored::compact(tag_word & !TAG_SEAL)
        };
        used_seal_ok(self.seal_key, addr, size_word, tag_word, &stored)
    }

    /// Decodes and validates the header at `addr` for a walk.
    pub(super) fn block_info(&self, addr: usize) -> Result<BlockInfo, HeapError> {
        let corrupt = HeapError::CorruptHeader { addr };
        let size_word = self.mem.read(addr + SIZE);
        let size = (size_word & SIZE_MASK) as usize;
        if size < MIN_BLOCK || size > self.sentinel - addr {
            return Err(corrupt);
        }
        if size_word & USED == 0 {
            let free = free_size(self.free_key, addr, size_word).is_some()
                || binned_size(self.free_key, addr, size_word).is_some();
            if !free {
                return Err(corrupt);
            }
            return Ok(BlockInfo {
                addr,
                size,
                state: BlockState::Free,
                payload: addr + HEADER,
                requested: 0,
                tag: BlockTag::default(),
            });
        }
        let pad = ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN;
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        if !used_fits(size_word, size) {
            return Err(corrupt);
        }
        let tag_word = self.mem.read(addr + TAG);
        let payload = addr + HEADER + pad;
        let stored = if size_word & WIDE != 0 {
            if pad < WIDE_TAG_BYTES {
                return Err(corrupt);
            }
            Stored {
                word: 0,
                wide: true,
                key: self.mem.read(addr + WIDE_KEY),
                owner: self.mem.read(payload - 8) >> 32,
            }
        } else {
            if pad > MAX_PAD {
                return Err(corrupt);
            }
            Stored::compact(tag_word & !TAG_SEAL)
        };
        if (stored.wide && tag_word & !TAG_SEAL != 0)
            || !used_seal_ok(self.seal_key, addr, size_word, tag_word, &stored)
        {
            return Err(corrupt);
        }
        Ok(BlockInfo {
            addr,
            size,
            state: BlockState::Used,
            payload,
            requested: size - HEADER - pad - slack,
            tag: stored.tag(),
        })
    }

    #[inline(always)]
    pub(super) fn check_red_zone(&self, block: &UsedBlock) -> Result<(), HeapError> {
        if self.red_zone == 0 {
            return Ok(());
        }
        self.check_red_zone_bytes(block)
    }

    #[inline(never)]
    fn check_red_zone_bytes(&self, block: &UsedBlock) -> Result<(), HeapError> {
        let from = block.payload() + block.requested();
        let len = block.addr() + block.size() - from;
        match self.mem.first_mismatch(from, len, RED_ZONE_BYTE) {
            None => Ok(()),
            Some(at) => Err(HeapError::RedZoneOverflow {
                addr: block.payload(),
                offset: block.requested() + at,
            }),
        }
    }

    pub(super) fn check_sentinel(&self) -> Result<(), HeapError> {
        let addr = self.sentinel;
        let [tag_word, size_word] = sentinel_words(self.seal_key, addr);
        if self.mem.read(addr + SIZE) & !PREV_FREE != size_word
            || self.mem.read(addr + TAG) != tag_word
        {
            return Err(HeapError::CorruptHeader { addr });
        }
        Ok(())
    }
}

// Writing headers off the fast paths. Callers have validated everything
// these rely on.
impl Heap {
    pub(super) fn write_sentinel(&mut self, addr: usize, prev_free: bool) {
        let [tag_word, size_word] = sentinel_words(self.seal_key, addr);
        self.mem.write(addr + TAG, tag_word);
        self.mem.write(
            addr + SIZE,
            size_word | if prev_free { PREV_FREE } else { 0 },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the seals' claim to catch every one-byte change rests on.
    #[test]
    fn seal_multiplier_spreads_every_byte_change() {
        let bound = 1u64 << 32;
        for d in (1..=255i64).flat_map(|d| [d, -d]) {
            for byte in 0..8 {
                let moved = (d as u64).wrapping_mul(SEAL_MUL) << (8 * byte);
                assert!(
                    (bound..=bound.wrapping_neg()).contains(&moved),
                    "d {d} byte {byte}: {moved:#x}"
                );
            }
        }
    }

    #[test]
    fn every_one_byte_change_of_a_header_breaks_its_seal() {
        let key = new_secret(0x1000, 0x2000);
        let (key, free_key) = seal_keys(key);
        let addr = 0xffff_c000_0000_1230;
        let stored = Stored::of(BlockTag::new(3, 0xffff_ffff_8010_2345));
        let used = used_words(key, addr, 4096, 8, 21, &stored);
        let free = free_word(free_key, addr, 4096);
        for byte in 0..16 {
            for xor in 1..=255u8 {
                let mut words = used;
                words[byte / 8] ^= u64::from(xor) << (8 * (byte % 8));
                let prev_free_only = byte == 8 && u64::from(xor) == PREV_FREE;
                let ok = compact_seal_ok(key, addr, words[1], words[0]);
                assert_eq!(ok, prev_free_only, "used byte {byte} ^ {xor:#x}");
                let stored = Stored::compact(words[0] & !TAG_SEAL);
                let general = used_seal_ok(key, addr, words[1], words[0], &stored);
                assert_eq!(general, ok, "used byte {byte} ^ {xor:#x}");
                if byte >= 8 {
                    let word = free ^ u64::from(xor) << (8 * (byte % 8));
                    assert_eq!(
                        free_size(free_key, addr, word).is_some(),
                        prev_free_only,
                        "free byte {byte} ^ {xor:#x}"
                    );
                }
            }
        }
    }
}
