//! Block encoding and its seal: the header words, pad marker and wide tag
//! the module docs lay out, the seal over them, and the [`Heap`] methods
//! that read a header back (checking its seal and sizes and, for a free
//! block, its list links) or write one.
//!
//! How the tag, pad, slack and seal fields are packed is known only here.
//! The allocator and the walks use the word offsets, the `USED` and
//! `PREV_FREE` flags, the size mask, free-list links and footers directly,
//! and these helpers for the rest.
#![forbid(unsafe_code)]

use core::num::NonZeroUsize;

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
pub(super) const SIZE_MASK: u64 = ((1 << 39) - 1) & !7;
const PAD_SHIFT: u32 = 39;
const PAD_FIELD: u64 = 7 << PAD_SHIFT;
const SLACK_SHIFT: u32 = 42;
const SLACK_BITS: u64 = 0x7f;
const MAX_SLACK: usize = SLACK_BITS as usize;
/// The seal bits of a used block's size word.
const USED_SEAL: u64 = !0 << 49;
/// The seal bits of a free block's size word.
const FREE_SEAL: u64 = !0 << 39;
/// The seal bits of a used block's tag word.
const TAG_SEAL: u64 = !0 << 48;

/// The pad marker: this value with the pad length in bits 3..6, and in the
/// high half [`MARKER_HIGH`] or a wide tag's owner.
const PAD_MAGIC: u32 = 0x9AD0_9A80;
const PAD_BITS: u64 = 0x38;
const MARKER_HIGH: u64 = 0x9AD0_9AD0;

const SEAL_SEED: u64 = 0x6b65_726e_656c_6870;

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
    /// What a free block's seal covers in place of a tag.
    const NONE: Self = Self {
        word: 0,
        wide: false,
        key: 0,
        owner: 0,
    };

    #[inline(always)]
    pub(super) fn of(tag: BlockTag) -> Self {
        let owner_fits = i32::from(tag.owner as i16) == tag.owner as i32;
        let key_fits = i64::from(tag.key as i32) == tag.key as i64;
        if owner_fits && key_fits {
            Self::compact(u64::from(tag.owner & 0xffff) | (tag.key & 0xffff_ffff) << 16)
        } else {
            Self {
                word: 0,
                wide: true,
                key: tag.key,
                owner: u64::from(tag.owner),
            }
        }
    }

    #[inline(always)]
    const fn compact(word: u64) -> Self {
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
    pub(super) at: NonZeroUsize,
    pub(super) word: u64,
}

impl UsedBlock {
    #[inline(always)]
    pub(super) fn addr(&self) -> usize {
        self.at.get()
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

/// The seal of a block at `addr` with size word `size_word` (its seal bits
/// and `PREV_FREE` clear) and tag `stored`: the fields rotated apart so
/// that equal changes to two of them do not cancel, and multiplied by an
/// odd constant. The seals are the product's high bits, which depend on
/// every input bit; a change to input bit `j` always changes product bit
/// `j`, so a change anywhere in bits 49..64 is always caught.
#[inline(always)]
fn mix(addr: usize, size_word: u64, stored: &Stored) -> u64 {
    let x = (addr as u64).rotate_left(29)
        ^ size_word
        ^ stored.word.rotate_left(11)
        ^ stored.key.rotate_left(43)
        ^ (stored.owner << 19)
        ^ SEAL_SEED;
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A free block's size word (without `PREV_FREE`).
#[inline(always)]
pub(super) fn free_word(addr: usize, size: usize) -> u64 {
    size as u64 | (mix(addr, size as u64, &Stored::NONE) & FREE_SEAL)
}

/// A used block's tag word and size word (without `PREV_FREE`).
#[inline(always)]
fn used_words(addr: usize, size: usize, pad: usize, slack: usize, stored: &Stored) -> (u64, u64) {
    debug_assert!(slack <= MAX_SLACK && pad / GRAIN <= 7);
    let size_word = size as u64
        | USED
        | if stored.wide { WIDE } else { 0 }
        | ((pad / GRAIN) as u64) << PAD_SHIFT
        | (slack as u64) << SLACK_SHIFT;
    let h = mix(addr, size_word, stored);
    (
        stored.word | ((h << 15) & TAG_SEAL),
        size_word | (h & USED_SEAL),
    )
}

/// Whether a used block's words carry the seal they should.
#[inline(always)]
fn used_seal_ok(addr: usize, size_word: u64, tag_word: u64, stored: &Stored) -> bool {
    let h = mix(addr, size_word & !(USED_SEAL | PREV_FREE), stored);
    ((size_word ^ h) & USED_SEAL) | ((tag_word ^ (h << 15)) & TAG_SEAL) == 0
}

/// The sentinel's tag word and size word (without `PREV_FREE`).
fn sentinel_words(addr: usize) -> (u64, u64) {
    used_words(
        addr,
        HEADER,
        0,
        0,
        &Stored::of(BlockTag::new(SENTINEL_OWNER, 0)),
    )
}

// Reading headers: validation only, no writes.
impl Heap {
    /// Whether `addr` could be a block header other than the sentinel.
    #[inline(always)]
    pub(super) fn is_block_addr(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.first) < self.sentinel - self.first && addr.is_multiple_of(GRAIN)
    }

    /// The free block at `addr` with words `next` and `size_word`, after
    /// checking its header and links.
    #[inline(always)]
    pub(super) fn free_block(&self, addr: usize, next: u64, size_word: u64) -> Option<FreeBlock> {
        let size = (size_word & SIZE_MASK) as usize;
        if size_word & !PREV_FREE != free_word(addr, size)
            || size < MIN_BLOCK
            || size > self.sentinel - addr
        {
            return None;
        }
        let next = next as usize;
        let prev = self.mem.read(addr + PREV_LINK) as usize;
        // without branches (0 is no block address)
        let heads = self.lists.head(class_of(size)) == addr;
        let linked = ((next == 0) | self.is_block_addr(next))
            & ((prev == 0 && heads) | self.is_block_addr(prev));
        linked.then_some(FreeBlock { addr, size })
    }

    /// The free block at `addr`, if its header says it is one and it
    /// validates.
    #[inline(always)]
    pub(super) fn free_block_at(&self, addr: usize) -> Option<FreeBlock> {
        let [next, size_word] = self.mem.read_words(addr);
        self.free_block(addr, next, size_word)
    }

    /// The head of a free list, after checking its header and next link
    /// (it has no previous one).
    #[inline(always)]
    pub(super) fn list_head(&self, addr: usize) -> Option<FreeBlock> {
        let [next, size_word] = self.mem.read_words(addr);
        let size = (size_word & SIZE_MASK) as usize;
        let next = next as usize;
        let valid = size_word & !PREV_FREE == free_word(addr, size)
            && size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && ((next == 0) | self.is_block_addr(next));
        valid.then_some(FreeBlock { addr, size })
    }

    /// The free block just below `addr`, found through its footer.
    #[inline(always)]
    pub(super) fn free_below(&self, addr: usize) -> Option<FreeBlock> {
        let size = self.mem.read(addr - 8) as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            return None;
        }
        self.free_block_at(addr - size).filter(|b| b.size == size)
    }

    /// The used block whose payload is at `p`, after checking its header.
    #[inline(always)]
    pub(super) fn used_block(&self, p: usize) -> Result<UsedBlock, HeapError> {
        match self.try_used_block(p) {
            Some(block) => Ok(block),
            None => Err(self.used_block_error(p)),
        }
    }

    /// The fast path of [`Heap::used_block`]: `None` for anything amiss.
    #[inline(always)]
    fn try_used_block(&self, p: usize) -> Option<UsedBlock> {
        if !p.is_multiple_of(GRAIN) || p < self.first + HEADER || p >= self.sentinel {
            return None;
        }
        let addr = p - HEADER;
        let [tag_word, word] = self.mem.read_words(addr);
        if word & (USED | WIDE | PAD_FIELD) != USED {
            return self.try_padded_block(p, word);
        }
        // the size word of a block without pad
        let stored = Stored::compact(tag_word & !TAG_SEAL);
        self.validate_used(addr, word, tag_word, 0, &stored)
    }

    /// [`Heap::try_used_block`] for a payload behind a pad: `marker` is the
    /// word below it.
    #[inline(never)]
    fn try_padded_block(&self, p: usize, marker: u64) -> Option<UsedBlock> {
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
        self.validate_used(addr, size_word, tag_word, pad, &stored)
    }

    /// Checks a used block's seal and sizes.
    #[inline(always)]
    fn validate_used(
        &self,
        addr: usize,
        size_word: u64,
        tag_word: u64,
        pad: usize,
        stored: &Stored,
    ) -> Option<UsedBlock> {
        let size = (size_word & SIZE_MASK) as usize;
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        let valid = used_seal_ok(addr, size_word, tag_word, stored)
            && size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && HEADER + pad + slack <= size;
        if !valid {
            return None;
        }
        Some(UsedBlock {
            at: NonZeroUsize::new(addr)?,
            word: size_word,
        })
    }

    /// The tag of a validated used block.
    #[inline(always)]
    pub(super) fn stored_of(&self, block: &UsedBlock) -> Stored {
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
        let size = self.mem.read(addr - 8) as usize;
        if size < MIN_BLOCK || size > addr - self.first {
            HeapError::CorruptHeader { addr }
        } else {
            HeapError::CorruptHeader { addr: addr - size }
        }
    }

    /// Why [`Heap::try_used_block`] rejected `p`.
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
        let slack = ((size_word >> SLACK_SHIFT) & SLACK_BITS) as usize;
        let size = (size_word & SIZE_MASK) as usize;
        let plausible = size >= MIN_BLOCK
            && size <= self.sentinel - addr
            && ((size_word >> PAD_SHIFT) & 7) as usize * GRAIN == pad
            && HEADER + pad + slack <= size;
        if plausible {
            HeapError::CorruptHeader { addr }
        } else {
            invalid
        }
    }

    /// Why `p` has no used header in front of it: a free header there (or
    /// where a pad marker, since overwritten by a free-list link, would have
    /// led) means `p` was freed already.
    #[cold]
    fn classify_unused(&self, p: usize) -> HeapError {
        for pad in (0..=MAX_WIDE_PAD).step_by(GRAIN) {
            let Some(addr) = p.checked_sub(HEADER + pad) else {
                break;
            };
            if addr < self.first {
                break;
            }
            let size_word = self.mem.read(addr + SIZE);
            let size = (size_word & SIZE_MASK) as usize;
            if size_word & !PREV_FREE == free_word(addr, size)
                && size > HEADER + pad
                && size <= self.sentinel - addr
            {
                return HeapError::DoubleFree { addr: p };
            }
        }
        HeapError::InvalidPointer { addr: p }
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
            if size_word & !PREV_FREE != free_word(addr, size) {
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
        if HEADER + pad + slack > size {
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
            || !used_seal_ok(addr, size_word, tag_word, &stored)
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
        let (tag_word, size_word) = sentinel_words(addr);
        if self.mem.read(addr + SIZE) & !PREV_FREE != size_word
            || self.mem.read(addr + TAG) != tag_word
        {
            return Err(HeapError::CorruptHeader { addr });
        }
        Ok(())
    }
}

// Writing headers. Callers have validated everything these rely on.
impl Heap {
    pub(super) fn write_sentinel(&mut self, addr: usize, prev_free: bool) {
        let (tag_word, size_word) = sentinel_words(addr);
        self.mem.write(addr + TAG, tag_word);
        self.mem.write(
            addr + SIZE,
            size_word | if prev_free { PREV_FREE } else { 0 },
        );
    }

    /// Writes a used block's header, pad marker, wide tag and red zone.
    #[inline(always)]
    pub(super) fn write_used(
        &mut self,
        addr: usize,
        size: usize,
        prev_free: bool,
        pad: usize,
        requested: usize,
        stored: &Stored,
    ) {
        let slack = size - HEADER - pad - requested;
        let (tag_word, size_word) = used_words(addr, size, pad, slack, stored);
        let size_word = size_word | if prev_free { PREV_FREE } else { 0 };
        let payload = addr + HEADER + pad;
        // the pad marker, without a branch: with no pad it lands on the size
        // word, written next
        let marker = stored.marker_high() << 32 | u64::from(PAD_MAGIC) | pad as u64;
        self.mem
            .write(if pad != 0 { payload - 8 } else { addr + SIZE }, marker);
        if stored.wide {
            self.mem.write(addr + WIDE_KEY, stored.key);
        }
        self.mem.write_words(addr, [tag_word, size_word]);
        if self.red_zone != 0 {
            self.mem.fill(payload + requested, slack, RED_ZONE_BYTE);
        }
    }

    #[inline(always)]
    pub(super) fn set_prev_free(&mut self, addr: usize, prev_free: bool) {
        let size_word = self.mem.read(addr + SIZE);
        let size_word = if prev_free {
            size_word | PREV_FREE
        } else {
            size_word & !PREV_FREE
        };
        self.mem.write(addr + SIZE, size_word);
    }
}
