//! The frame bitmap: a used bit per frame, summary levels above it and an
//! owner slot per frame, all in storage the caller provides.

use core::fmt;
use core::ops::Range;

use super::FrameError;
use super::addr::{Frame, FrameRange, MAX_FRAMES, PhysAddr};
use super::owner::{Owner, OwnerSlot, OwnerSlotCodec, RAW_FREE};
use super::table::{OwnerTable, SlotWidth, decode};

/// Bits per bitmap word.
const WORD_BITS: u64 = u64::BITS as u64;

/// Most levels any bitmap needs: 64^7 = 2^42 covers [`MAX_FRAMES`] = 2^40.
pub const MAX_LEVELS: usize = 7;

/// `Owner::Unusable` as a raw slot, for filling the table.
const RAW_UNUSABLE: OwnerSlot = super::owner::RAW_UNUSABLE;

/// One entry of a boot memory map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First byte.
    pub start: PhysAddr,
    /// Length in bytes.
    pub len_bytes: u64,
    /// Whether the region is RAM free for the kernel to use.
    pub usable: bool,
}

impl MemoryRegion {
    /// A region of usable RAM.
    #[must_use]
    pub const fn usable(start: PhysAddr, len_bytes: u64) -> Self {
        Self {
            start,
            len_bytes,
            usable: true,
        }
    }

    /// A region the kernel must not use (firmware, ACPI, MMIO, bad RAM).
    #[must_use]
    pub const fn unusable(start: PhysAddr, len_bytes: u64) -> Self {
        Self {
            start,
            len_bytes,
            usable: false,
        }
    }

    /// The frames the region decides: only whole frames of usable RAM, but
    /// every frame an unusable region touches.
    #[must_use]
    pub const fn frames(&self) -> FrameRange {
        if self.usable {
            FrameRange::within(self.start, self.len_bytes)
        } else {
            FrameRange::covering(self.start, self.len_bytes)
        }
    }
}

/// Where each level starts in the word storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Levels {
    /// Number of levels, at least 1.
    pub(super) count: usize,
    /// `start[l]..start[l + 1]` are the words of level `l`.
    pub(super) start: [usize; MAX_LEVELS + 1],
}

impl Levels {
    /// The level layout for `nr_frames` (at most [`MAX_FRAMES`]).
    const fn for_frames(nr_frames: u64) -> Self {
        let mut start = [0; MAX_LEVELS + 1];
        let mut count = 0;
        // Even an empty bitmap has one (all-used) word, so the search always
        // has a top word to look at.
        let mut len = nr_frames.div_ceil(WORD_BITS);
        if len == 0 {
            len = 1;
        }
        loop {
            start[count + 1] = start[count] + len as usize;
            count += 1;
            if len == 1 {
                break;
            }
            len = len.div_ceil(WORD_BITS);
        }
        Self { count, start }
    }

    /// Number of words in level `level`.
    pub(super) const fn len(&self, level: usize) -> usize {
        self.start[level + 1] - self.start[level]
    }

    /// Words of all levels together.
    const fn total_words(&self) -> usize {
        self.start[self.count]
    }
}

/// Frames per owner class, from [`FrameBitmap::usage`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Free frames.
    pub free: u64,
    /// [`Owner::Unusable`]: not RAM.
    pub unusable: u64,
    /// [`Owner::Reserved`].
    pub reserved: u64,
    /// [`Owner::KernelImage`].
    pub kernel_image: u64,
    /// [`Owner::BootInfo`].
    pub boot_info: u64,
    /// [`Owner::Bitmap`].
    pub bitmap: u64,
    /// [`Owner::KernelHeap`].
    pub kernel_heap: u64,
    /// [`Owner::KernelStack`].
    pub kernel_stack: u64,
    /// [`Owner::PageTable`].
    pub page_table: u64,
    /// [`Owner::Process`], all pids together.
    pub process: u64,
    /// [`Owner::Other`], all tags together.
    pub other: u64,
    /// Slots holding no valid owner (only after corruption).
    pub invalid: u64,
}

/// The physical frame allocator.
///
/// # Layout
///
/// The word storage holds the levels back to back. Level 0 has one bit per
/// frame, set when the frame is used; its bits past the last frame are set
/// too, so they are never found free. Each level above has one bit per word
/// of the level below, set when that word has at least one free frame under
/// it; its bits past the end are clear. The top level is a single word. For
/// 16 GiB (4 Mi frames) that is 65 536 + 1 024 + 16 + 1 words (520 KiB);
/// [`MAX_LEVELS`] levels cover all of x86_64's physical address space. The
/// [`OwnerTable`] beside it has one [`OwnerSlot`] per frame (8 MiB for
/// 16 GiB with 16-bit slots).
///
/// # Cost
///
/// With `L` levels, `ceil(log64(nr_frames))` and at least 1 (4 for 16 GiB,
/// 7 at most):
///
/// | operation | time |
/// | --- | --- |
/// | [`alloc_frame`], [`alloc_page`] | O(L), whatever the fill level |
/// | [`free_frame`], [`free_page`] | O(L) |
/// | [`set_owner`] | O(1) |
/// | [`alloc_contiguous`]`(n, align)` | O((r + 1) · (L + n / 64) + n), `r` = candidate windows rejected before the first fit |
/// | [`free_contiguous`] of `n` frames | O(n) |
/// | [`new`], [`check`], [`usage`], [`frames_owned_by`] | O(`nr_frames`) |
///
/// Allocation takes the lowest free frame, found by descending from the top
/// word and taking the lowest set bit at each level, so it never scans: on
/// 16 GiB it costs the same at 10 % and at 99.9 % full. Lowest first keeps
/// high memory in long runs for contiguous requests, and it is
/// deterministic, so a test or a recorded session sees the same frames again.
///
/// [`alloc_frame`]: Self::alloc_frame
/// [`alloc_page`]: Self::alloc_page
/// [`free_frame`]: Self::free_frame
/// [`free_page`]: Self::free_page
/// [`set_owner`]: Self::set_owner
/// [`alloc_contiguous`]: Self::alloc_contiguous
/// [`free_contiguous`]: Self::free_contiguous
/// [`new`]: Self::new
/// [`check`]: Self::check
/// [`usage`]: Self::usage
/// [`frames_owned_by`]: Self::frames_owned_by
pub struct FrameBitmap<'a> {
    /// All levels, level 0 first (exactly `levels.total_words()` words).
    pub(super) words: &'a mut [u64],
    /// One raw [`Owner`] per frame, [`RAW_FREE`] when free.
    pub(super) owners: OwnerTable<'a>,
    pub(super) nr_frames: u64,
    pub(super) levels: Levels,
    /// Frames whose used bit is clear.
    pub(super) nr_free: u64,
    /// Frames that are RAM (owner not `Unusable`), free or not.
    pub(super) nr_total: u64,
}

impl fmt::Debug for FrameBitmap<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBitmap")
            .field("nr_frames", &self.nr_frames)
            .field("total_frames", &self.nr_total)
            .field("free_frames", &self.nr_free)
            .field("levels", &self.levels.count)
            .finish()
    }
}

impl<'a> FrameBitmap<'a> {
    /// Number of `u64` words [`new`](Self::new) needs for `nr_frames` frames
    /// (all levels; at most `MAX_FRAMES` frames are counted).
    #[must_use]
    pub const fn words_needed(nr_frames: u64) -> usize {
        let nr_frames = if nr_frames > MAX_FRAMES {
            MAX_FRAMES
        } else {
            nr_frames
        };
        Levels::for_frames(nr_frames).total_words()
    }

    /// Number of owner slots [`new`](Self::new) needs: one per frame.
    #[must_use]
    pub const fn owner_slots_needed(nr_frames: u64) -> usize {
        nr_frames as usize
    }

    /// Bytes of storage for `nr_frames` frames with 32-bit owner slots:
    /// bitmap words plus owner table, which the kernel carves out of RAM
    /// before it has an allocator. [`storage_bytes_with`] with
    /// [`SlotWidth::U16`] needs less.
    ///
    /// [`storage_bytes_with`]: Self::storage_bytes_with
    #[must_use]
    pub const fn storage_bytes(nr_frames: u64) -> u64 {
        Self::storage_bytes_with(nr_frames, SlotWidth::U32)
    }

    /// Bytes of storage for `nr_frames` frames with owner slots of `width`.
    #[must_use]
    pub const fn storage_bytes_with(nr_frames: u64, width: SlotWidth) -> u64 {
        Self::words_needed(nr_frames) as u64 * 8
            + Self::owner_slots_needed(nr_frames) as u64 * width.bytes()
    }

    /// Frames needed to cover every usable region of a memory map: one past
    /// the highest whole usable frame (unusable regions above RAM, such as
    /// MMIO, need no bits).
    pub fn span<R: IntoIterator<Item = MemoryRegion>>(regions: R) -> u64 {
        regions
            .into_iter()
            .filter(|r| r.usable)
            .map(|r| r.frames())
            .filter(|f| !f.is_empty())
            .map(|f| f.end().number())
            .max()
            .unwrap_or(0)
            .min(MAX_FRAMES)
    }

    /// Builds the allocator for frames `0..nr_frames` in caller-provided
    /// storage (the kernel places it in RAM and passes `'static` slices).
    ///
    /// Every frame starts used and [`Owner::Unusable`]. Then usable regions
    /// are freed (partial frames at their edges stay unusable), then unusable
    /// regions are marked unusable again (firmware maps may overlap, and the
    /// pessimistic entry is the safe one), then each `reserved` range is
    /// marked used with its owner (later ranges win; frames that are not RAM
    /// stay `Unusable`). Parts of regions or ranges at or past `nr_frames`
    /// are ignored.
    ///
    /// The caller must reserve below 1 MiB, the kernel image, this storage
    /// ([`Owner::Bitmap`]) and the boot structures it still needs.
    ///
    /// # Errors
    /// - [`FrameError::OutOfRange`] if `nr_frames` exceeds [`MAX_FRAMES`];
    /// - [`FrameError::StorageTooSmall`] if `words` is shorter than
    ///   [`words_needed`](Self::words_needed) or `owners` (`&mut [u16]`, or
    ///   `&mut [u32]`: see [`OwnerTable`]) shorter than
    ///   [`owner_slots_needed`](Self::owner_slots_needed);
    /// - [`FrameError::InvalidOwner`] if a reserved range's owner has no
    ///   encoding (a pid above [`MAX_PID`](super::MAX_PID)).
    pub fn new<R, V>(
        nr_frames: u64,
        words: &'a mut [u64],
        owners: impl Into<OwnerTable<'a>>,
        regions: R,
        reserved: V,
    ) -> Result<Self, FrameError>
    where
        R: IntoIterator<Item = MemoryRegion>,
        R::IntoIter: Clone,
        V: IntoIterator<Item = (FrameRange, Owner)>,
    {
        if nr_frames > MAX_FRAMES {
            return Err(FrameError::OutOfRange);
        }
        let levels = Levels::for_frames(nr_frames);
        let nr_slots = Self::owner_slots_needed(nr_frames);
        let owners: OwnerTable<'a> = owners.into();
        if words.len() < levels.total_words() || owners.len() < nr_slots {
            return Err(FrameError::StorageTooSmall);
        }
        let words = &mut words[..levels.total_words()];
        let mut owners = owners.truncate(nr_slots);
        // All used, no summary bit set: a consistent starting state, so the
        // run updates below keep the summaries right as they go.
        words[..levels.len(0)].fill(u64::MAX);
        words[levels.len(0)..].fill(0);
        owners.fill(0..nr_slots, RAW_UNUSABLE);
        let mut bitmap = Self {
            words,
            owners,
            nr_frames,
            levels,
            nr_free: 0,
            nr_total: 0,
        };

        let regions = regions.into_iter();
        for region in regions.clone().filter(|r| r.usable) {
            let run = bitmap.clip(region.frames());
            bitmap.set_run(run.clone(), false);
            bitmap
                .owners
                .fill(run.start as usize..run.end as usize, RAW_FREE);
        }
        for region in regions.filter(|r| !r.usable) {
            let run = bitmap.clip(region.frames());
            bitmap.set_run(run.clone(), true);
            bitmap
                .owners
                .fill(run.start as usize..run.end as usize, RAW_UNUSABLE);
        }
        for (range, owner) in reserved {
            let raw = owner.to_raw().ok_or(FrameError::InvalidOwner)?;
            for idx in bitmap.clip(range) {
                if bitmap.owners.raw(idx as usize) != u32::from(RAW_UNUSABLE) {
                    if !bitmap.bit(idx) {
                        bitmap.mark_used(idx);
                    }
                    bitmap.owners.set(idx as usize, raw);
                }
            }
        }

        let used: u64 = bitmap.words[..levels.len(0)]
            .iter()
            .map(|w| u64::from(w.count_ones()))
            .sum();
        let padding = levels.len(0) as u64 * WORD_BITS - nr_frames;
        bitmap.nr_free = nr_frames - (used - padding);
        let mut nr_total = 0;
        bitmap.owners.for_each(|_, raw| {
            if raw != u32::from(RAW_UNUSABLE) {
                nr_total += 1;
            }
        });
        bitmap.nr_total = nr_total;
        Ok(bitmap)
    }

    /// Frames the bitmap covers, `0..nr_frames`, RAM or not.
    #[must_use]
    pub fn nr_frames(&self) -> u64 {
        self.nr_frames
    }

    /// Frames of RAM (usable in the memory map), free or used.
    #[must_use]
    pub fn total_frames(&self) -> u64 {
        self.nr_total
    }

    /// Frames free to allocate.
    #[must_use]
    pub fn free_frames(&self) -> u64 {
        self.nr_free
    }

    /// Frames of RAM in use, reserved ones included.
    #[must_use]
    pub fn used_frames(&self) -> u64 {
        self.nr_total.saturating_sub(self.nr_free)
    }

    /// Number of bitmap levels (level 0 plus summaries).
    #[must_use]
    pub fn nr_levels(&self) -> usize {
        self.levels.count
    }

    /// Level 0: bit `n % 64` of word `n / 64` is set when frame `n` is used
    /// (bits past the last frame are set). For telemetry and gdb, which show
    /// the physical map.
    #[must_use]
    pub fn used_bits(&self) -> &[u64] {
        &self.words[..self.levels.len(0)]
    }

    /// Whether `frame` is used; frames past the end are never free, so they
    /// count as used.
    #[must_use]
    pub fn is_used(&self, frame: Frame) -> bool {
        frame.number() >= self.nr_frames || self.bit(frame.number())
    }

    /// Who holds `frame`: `None` when it is free (or its slot is corrupt,
    /// which [`check`](Self::check) reports); [`Owner::Unusable`] past the end.
    #[must_use]
    pub fn owner(&self, frame: Frame) -> Option<Owner> {
        if frame.number() < self.nr_frames {
            decode(self.owners.raw(frame.number() as usize))
        } else {
            Some(Owner::Unusable)
        }
    }

    /// Allocates the lowest free frame for `owner`, in O(L).
    ///
    /// # Errors
    /// - [`FrameError::OutOfMemory`] if no frame is free;
    /// - [`FrameError::InvalidOwner`] for a pid above [`MAX_PID`](super::MAX_PID);
    /// - [`FrameError::Corrupted`] if the bitmap contradicts itself on the
    ///   way (nothing is handed out and nothing changes; see
    ///   [`check`](Self::check)).
    pub fn alloc_frame(&mut self, owner: Owner) -> Result<Frame, FrameError> {
        let raw = owner.to_raw().ok_or(FrameError::InvalidOwner)?;
        if self.nr_free == 0 {
            return Err(FrameError::OutOfMemory);
        }
        // The counter says a frame is free, so failing to find one means the
        // summaries lie.
        let idx = self.first_free()?.ok_or(FrameError::Corrupted)?;
        // A free bit with an owner is a stray write somewhere: handing the
        // frame out would give it to two holders.
        if self.owners.raw(idx as usize) != u32::from(RAW_FREE) {
            return Err(FrameError::Corrupted);
        }
        self.mark_used(idx);
        self.owners.set(idx as usize, raw);
        self.nr_free -= 1;
        Ok(Frame::from_number(idx))
    }

    /// Frees `frame` and returns who held it, in O(L).
    ///
    /// # Errors
    /// Each leaves the allocator unchanged:
    /// - [`FrameError::OutOfRange`] if `frame` is past the end;
    /// - [`FrameError::DoubleFree`] if it is already free;
    /// - [`FrameError::Reserved`] if its owner is permanent
    ///   ([`Owner::is_permanent`]: unusable, reserved, kernel image, boot
    ///   info, bitmap);
    /// - [`FrameError::Corrupted`] if its owner slot holds no valid owner.
    pub fn free_frame(&mut self, frame: Frame) -> Result<Owner, FrameError> {
        let owner = self.freeable_owner(frame.number())?;
        self.release(frame.number());
        Ok(owner)
    }

    /// Hands used `frame` over to `owner` and returns who held it, in O(1):
    /// for a frame that outlives its allocator in another holder (a
    /// copy-on-write page left to one process). Giving a frame to the owner
    /// it already has changes nothing and succeeds.
    ///
    /// The frame stays used, so the free and RAM counters do not move;
    /// [`usage`](Self::usage) and [`frames_owned_by`](Self::frames_owned_by)
    /// count the owner slots, so they follow.
    ///
    /// # Errors
    /// Each leaves the allocator unchanged:
    /// - [`FrameError::InvalidOwner`] for a pid above
    ///   [`MAX_PID`](super::MAX_PID) or a permanent `owner`
    ///   ([`Owner::is_permanent`]): a frame handed to one could never be
    ///   freed again, and one handed to [`Owner::Unusable`] would stop
    ///   counting as RAM;
    /// - otherwise those of [`free_frame`](Self::free_frame): the frame is
    ///   past the end, free, held by a permanent owner, or its slot is
    ///   corrupt.
    pub fn set_owner(&mut self, frame: Frame, owner: Owner) -> Result<Owner, FrameError> {
        let raw = owner.to_raw().ok_or(FrameError::InvalidOwner)?;
        if owner.is_permanent() {
            return Err(FrameError::InvalidOwner);
        }
        // The same rules as freeing: only a frame `free_frame` would take
        // back is a frame whose holder may change.
        let previous = self.freeable_owner(frame.number())?;
        self.owners.set(frame.number() as usize, raw);
        Ok(previous)
    }

    /// Allocates a frame for `owner` and returns its address; see
    /// [`alloc_frame`](Self::alloc_frame).
    ///
    /// # Errors
    /// As [`alloc_frame`](Self::alloc_frame).
    pub fn alloc_page(&mut self, owner: Owner) -> Result<PhysAddr, FrameError> {
        self.alloc_frame(owner).map(Frame::start_address)
    }

    /// Frees the frame starting at `addr` and returns who held it; see
    /// [`free_frame`](Self::free_frame).
    ///
    /// # Errors
    /// [`FrameError::Unaligned`] if `addr` is not the start of a frame, and
    /// those of [`free_frame`](Self::free_frame); none changes anything.
    pub fn free_page(&mut self, addr: PhysAddr) -> Result<Owner, FrameError> {
        self.free_frame(Frame::from_start_address(addr)?)
    }

    /// Allocates the lowest run of `nr_frames` free frames whose first frame
    /// number is a multiple of `align_frames` (a power of two), for DMA
    /// buffers and large pages.
    ///
    /// # Errors
    /// - [`FrameError::InvalidRequest`] if `nr_frames` is 0 or `align_frames`
    ///   is not a power of two;
    /// - [`FrameError::OutOfMemory`] if no such run exists;
    /// - [`FrameError::InvalidOwner`], [`FrameError::Corrupted`] as for
    ///   [`alloc_frame`](Self::alloc_frame).
    pub fn alloc_contiguous(
        &mut self,
        nr_frames: u64,
        align_frames: u64,
        owner: Owner,
    ) -> Result<FrameRange, FrameError> {
        let raw = owner.to_raw().ok_or(FrameError::InvalidOwner)?;
        if nr_frames == 0 || !align_frames.is_power_of_two() {
            return Err(FrameError::InvalidRequest);
        }
        if nr_frames > self.nr_free {
            return Err(FrameError::OutOfMemory);
        }
        let mut from = 0;
        let run = loop {
            let free = self.next_free(from)?.ok_or(FrameError::OutOfMemory)?;
            let start = free
                .checked_next_multiple_of(align_frames)
                .ok_or(FrameError::OutOfMemory)?;
            let end = start
                .checked_add(nr_frames)
                .ok_or(FrameError::OutOfMemory)?;
            if end > self.nr_frames {
                return Err(FrameError::OutOfMemory);
            }
            // Restart just past the first obstacle: `from` grows every time,
            // and the summary skips the used stretch that follows it.
            match self.first_used_in(start..end) {
                None => break start..end,
                Some(used) => from = used + 1,
            }
        };
        let slots = run.start as usize..run.end as usize;
        if !self.owners.all_equal(slots.clone(), RAW_FREE) {
            return Err(FrameError::Corrupted);
        }
        self.owners.fill(slots, raw);
        self.set_run(run.clone(), true);
        self.nr_free -= nr_frames;
        Ok(FrameRange::new(
            Frame::from_number(run.start),
            Frame::from_number(run.end),
        ))
    }

    /// Frees every frame of `range` (typically one [`alloc_contiguous`]
    /// gave).
    ///
    /// # Errors
    /// [`FrameError::OutOfRange`] if `range` goes past the end, else those
    /// of [`free_frame`](Self::free_frame) for the first frame that cannot be
    /// freed; then nothing at all is freed.
    ///
    /// [`alloc_contiguous`]: Self::alloc_contiguous
    pub fn free_contiguous(&mut self, range: FrameRange) -> Result<(), FrameError> {
        if range.end().number() > self.nr_frames {
            return Err(FrameError::OutOfRange);
        }
        for idx in range.numbers() {
            self.freeable_owner(idx)?;
        }
        let run = range.numbers();
        self.owners
            .fill(run.start as usize..run.end as usize, RAW_FREE);
        self.set_run(run, false);
        self.nr_free = self.nr_free.saturating_add(range.len());
        Ok(())
    }

    /// Frees the frames of `range` held by the permanent `owner` and returns
    /// how many: how the kernel gives back boot structures once parsed.
    /// Frames of `range` with another owner are left alone.
    ///
    /// # Errors
    /// [`FrameError::OutOfRange`] if `range` goes past the end, and
    /// [`FrameError::InvalidOwner`] for [`Owner::Unusable`] (not RAM, never
    /// released) or an owner with no encoding; then nothing changes.
    pub fn release_reserved(&mut self, range: FrameRange, owner: Owner) -> Result<u64, FrameError> {
        let raw = owner.to_raw().ok_or(FrameError::InvalidOwner)?;
        if owner == Owner::Unusable {
            return Err(FrameError::InvalidOwner);
        }
        if range.end().number() > self.nr_frames {
            return Err(FrameError::OutOfRange);
        }
        let mut released = 0;
        for idx in range.numbers() {
            if self.owners.raw(idx as usize) == u32::from(raw) && self.bit(idx) {
                self.release(idx);
                released += 1;
            }
        }
        Ok(released)
    }

    /// Frames per owner class, in O(`nr_frames`).
    #[must_use]
    pub fn usage(&self) -> Usage {
        let mut usage = Usage::default();
        self.owners.for_each(|_, raw| {
            let count = match decode(raw) {
                None if raw == u32::from(RAW_FREE) => &mut usage.free,
                None => &mut usage.invalid,
                Some(Owner::Unusable) => &mut usage.unusable,
                Some(Owner::Reserved) => &mut usage.reserved,
                Some(Owner::KernelImage) => &mut usage.kernel_image,
                Some(Owner::BootInfo) => &mut usage.boot_info,
                Some(Owner::Bitmap) => &mut usage.bitmap,
                Some(Owner::KernelHeap) => &mut usage.kernel_heap,
                Some(Owner::KernelStack) => &mut usage.kernel_stack,
                Some(Owner::PageTable) => &mut usage.page_table,
                Some(Owner::Process(_)) => &mut usage.process,
                Some(Owner::Other(_)) => &mut usage.other,
            };
            *count += 1;
        });
        usage
    }

    /// Frames held by exactly `owner` (one pid, one tag), in O(`nr_frames`).
    #[must_use]
    pub fn frames_owned_by(&self, owner: Owner) -> u64 {
        match owner.to_raw() {
            Some(raw) => {
                let mut count = 0;
                self.owners.for_each(|_, slot| {
                    if slot == u32::from(raw) {
                        count += 1;
                    }
                });
                count
            }
            None => 0,
        }
    }

    // ---- internals -------------------------------------------------------

    /// The owner of used frame `idx` if `free_frame` may free it.
    fn freeable_owner(&self, idx: u64) -> Result<Owner, FrameError> {
        if idx >= self.nr_frames {
            return Err(FrameError::OutOfRange);
        }
        if !self.bit(idx) {
            return Err(FrameError::DoubleFree);
        }
        let owner = decode(self.owners.raw(idx as usize)).ok_or(FrameError::Corrupted)?;
        if owner.is_permanent() {
            return Err(FrameError::Reserved);
        }
        Ok(owner)
    }

    /// Marks used frame `idx` free, owner and counter included.
    fn release(&mut self, idx: u64) {
        self.mark_free(idx);
        self.owners.set(idx as usize, RAW_FREE);
        self.nr_free = self.nr_free.saturating_add(1);
    }

    /// `range` cut to the frames the bitmap covers.
    fn clip(&self, range: FrameRange) -> Range<u64> {
        let end = range.end().number().min(self.nr_frames);
        range.start().number().min(end)..end
    }

    /// Level-0 bit of frame `idx` (in range).
    pub(super) fn bit(&self, idx: u64) -> bool {
        self.words[(idx / WORD_BITS) as usize] & (1 << (idx % WORD_BITS)) != 0
    }

    /// Word `idx` of `level` with set bits meaning "free below": level 0 is
    /// inverted. `None` past the level's end.
    pub(super) fn free_bits(&self, level: usize, idx: usize) -> Option<u64> {
        if idx >= self.levels.len(level) {
            return None;
        }
        let word = self.words[self.levels.start[level] + idx];
        Some(if level == 0 { !word } else { word })
    }

    /// The lowest free frame, straight down from the top word.
    fn first_free(&self) -> Result<Option<u64>, FrameError> {
        let top = self.levels.count - 1;
        let mut pos = 0;
        for level in (0..=top).rev() {
            let bits = self.free_bits(level, pos).ok_or(FrameError::Corrupted)?;
            if bits == 0 {
                // An empty top word is a full bitmap; an empty word below a
                // set summary bit is a lie.
                return if level == top {
                    Ok(None)
                } else {
                    Err(FrameError::Corrupted)
                };
            }
            pos = pos * WORD_BITS as usize + bits.trailing_zeros() as usize;
        }
        if pos as u64 >= self.nr_frames {
            return Err(FrameError::Corrupted);
        }
        Ok(Some(pos as u64))
    }

    /// The lowest free frame at or after `from`, in O(L): up the levels
    /// until a word has a free bit right of the position, then down.
    fn next_free(&self, from: u64) -> Result<Option<u64>, FrameError> {
        if from >= self.nr_frames {
            return Ok(None);
        }
        let mut level = 0;
        let mut pos = from as usize;
        loop {
            if level == self.levels.count {
                return Ok(None);
            }
            let idx = pos / WORD_BITS as usize;
            let Some(bits) = self.free_bits(level, idx) else {
                return Ok(None);
            };
            let bits = bits & (u64::MAX << (pos % WORD_BITS as usize));
            if bits != 0 {
                pos = idx * WORD_BITS as usize + bits.trailing_zeros() as usize;
                break;
            }
            pos = idx + 1;
            level += 1;
        }
        while level > 0 {
            level -= 1;
            let bits = self.free_bits(level, pos).ok_or(FrameError::Corrupted)?;
            if bits == 0 {
                return Err(FrameError::Corrupted);
            }
            pos = pos * WORD_BITS as usize + bits.trailing_zeros() as usize;
        }
        if pos as u64 >= self.nr_frames {
            return Err(FrameError::Corrupted);
        }
        Ok(Some(pos as u64))
    }

    /// The first used frame in `run` (inside the bitmap), a word at a time.
    fn first_used_in(&self, run: Range<u64>) -> Option<u64> {
        let mut pos = run.start;
        while pos < run.end {
            let word = pos / WORD_BITS;
            let lo = pos % WORD_BITS;
            let hi = (run.end - word * WORD_BITS).min(WORD_BITS);
            let used = self.words[word as usize] & bit_mask(lo, hi);
            if used != 0 {
                return Some(word * WORD_BITS + u64::from(used.trailing_zeros()));
            }
            pos = word * WORD_BITS + hi;
        }
        None
    }

    /// Sets the used bit of free frame `idx`, clearing summary bits that no
    /// longer have anything free below them.
    fn mark_used(&mut self, idx: u64) {
        let word = (idx / WORD_BITS) as usize;
        self.words[word] |= 1 << (idx % WORD_BITS);
        if self.words[word] == u64::MAX {
            self.summary_clear(word);
        }
    }

    /// Clears the used bit of used frame `idx`, setting summary bits that
    /// now have something free below them.
    fn mark_free(&mut self, idx: u64) {
        let word = (idx / WORD_BITS) as usize;
        let was_full = self.words[word] == u64::MAX;
        self.words[word] &= !(1 << (idx % WORD_BITS));
        if was_full {
            self.summary_set(word);
        }
    }

    /// Sets (`used`) or clears every level-0 bit of `run`, a word at a time,
    /// and keeps the summaries right. Bits already in that state are fine.
    fn set_run(&mut self, run: Range<u64>, used: bool) {
        let mut pos = run.start;
        while pos < run.end {
            let word = (pos / WORD_BITS) as usize;
            let lo = pos % WORD_BITS;
            let hi = (run.end - word as u64 * WORD_BITS).min(WORD_BITS);
            let before = self.words[word];
            let after = if used {
                before | bit_mask(lo, hi)
            } else {
                before & !bit_mask(lo, hi)
            };
            self.words[word] = after;
            if before != u64::MAX && after == u64::MAX {
                self.summary_clear(word);
            } else if before == u64::MAX && after != u64::MAX {
                self.summary_set(word);
            }
            pos = word as u64 * WORD_BITS + hi;
        }
    }

    /// Word `child` of level 0 has become full: clear its bit in level 1,
    /// and upwards while words become empty.
    fn summary_clear(&mut self, mut child: usize) {
        for level in 1..self.levels.count {
            let at = self.levels.start[level] + child / WORD_BITS as usize;
            self.words[at] &= !(1 << (child % WORD_BITS as usize));
            if self.words[at] != 0 {
                return;
            }
            child /= WORD_BITS as usize;
        }
    }

    /// Word `child` of level 0 has gained a free frame: set its bit in
    /// level 1, and upwards while words were empty.
    fn summary_set(&mut self, mut child: usize) {
        for level in 1..self.levels.count {
            let at = self.levels.start[level] + child / WORD_BITS as usize;
            let was_empty = self.words[at] == 0;
            self.words[at] |= 1 << (child % WORD_BITS as usize);
            if !was_empty {
                return;
            }
            child /= WORD_BITS as usize;
        }
    }
}

/// Bits `lo..hi` of a word (`lo < hi <= 64`).
const fn bit_mask(lo: u64, hi: u64) -> u64 {
    (u64::MAX >> (WORD_BITS - (hi - lo))) << lo
}
