//! Physical addresses, 4 KiB frames and half-open frame ranges.
//!
//! These are plain value types with no knowledge of the allocator, so the
//! paging code can use them too (they may move to `mm::addr` later).

use core::fmt;
use core::ops::Range;

use super::FrameError;

/// Size of a physical frame (and of a small page) in bytes.
pub const FRAME_SIZE: u64 = 1 << FRAME_SHIFT;

/// `log2(FRAME_SIZE)`: a frame number is an address shifted right by this.
pub const FRAME_SHIFT: u32 = 12;

/// One past the highest frame number x86_64 can address: physical addresses
/// have at most 52 bits, so frame numbers have at most 40.
pub const MAX_FRAMES: u64 = 1 << (52 - FRAME_SHIFT);

/// A physical memory address.
///
/// Any `u64` is accepted: whether an address names real RAM is the frame
/// allocator's question, not this type's.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// The address `addr`.
    #[must_use]
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// The address as a number.
    #[must_use]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the address is a multiple of `align` (a power of two).
    #[must_use]
    pub const fn is_aligned(self, align: u64) -> bool {
        self.0 & align.wrapping_sub(1) == 0
    }

    /// Whether the address is the first byte of a frame.
    #[must_use]
    pub const fn is_frame_aligned(self) -> bool {
        self.is_aligned(FRAME_SIZE)
    }

    /// The largest multiple of `align` (a power of two) not above the address.
    #[must_use]
    pub const fn align_down(self, align: u64) -> Self {
        Self(self.0 & !align.wrapping_sub(1))
    }

    /// The smallest multiple of `align` (a power of two) not below the
    /// address, or `None` if that does not fit in 64 bits.
    #[must_use]
    pub const fn align_up(self, align: u64) -> Option<Self> {
        match self.0.checked_add(align.wrapping_sub(1)) {
            Some(sum) => Some(Self(sum & !align.wrapping_sub(1))),
            None => None,
        }
    }

    /// Offset of the address inside its frame.
    #[must_use]
    pub const fn frame_offset(self) -> u64 {
        self.0 & (FRAME_SIZE - 1)
    }

    /// `self + bytes`, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, bytes: u64) -> Option<Self> {
        match self.0.checked_add(bytes) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }
}

impl From<PhysAddr> for u64 {
    fn from(addr: PhysAddr) -> Self {
        addr.0
    }
}

impl fmt::Debug for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhysAddr({:#x})", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

/// A 4 KiB physical frame, named by its number (`address / FRAME_SIZE`).
///
/// Numbers at or above [`MAX_FRAMES`] have no x86_64 address; the allocator
/// never hands them out.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Frame(u64);

impl Frame {
    /// The frame with number `number`.
    #[must_use]
    pub const fn from_number(number: u64) -> Self {
        Self(number)
    }

    /// The frame's number: its start address divided by [`FRAME_SIZE`].
    #[must_use]
    pub const fn number(self) -> u64 {
        self.0
    }

    /// The frame that holds the byte at `addr`.
    #[must_use]
    pub const fn containing_address(addr: PhysAddr) -> Self {
        Self(addr.as_u64() >> FRAME_SHIFT)
    }

    /// The frame that starts at `addr`.
    ///
    /// # Errors
    /// [`FrameError::Unaligned`] if `addr` is not a multiple of [`FRAME_SIZE`].
    pub const fn from_start_address(addr: PhysAddr) -> Result<Self, FrameError> {
        if addr.is_frame_aligned() {
            Ok(Self::containing_address(addr))
        } else {
            Err(FrameError::Unaligned)
        }
    }

    /// The address of the frame's first byte.
    #[must_use]
    pub const fn start_address(self) -> PhysAddr {
        PhysAddr(self.0 << FRAME_SHIFT)
    }

    /// The frame `count` frames further on, or `None` on overflow.
    #[must_use]
    pub const fn checked_add(self, count: u64) -> Option<Self> {
        match self.0.checked_add(count) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame({:#x})", self.0 << FRAME_SHIFT)
    }
}

/// The frames `start..end` (end excluded).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameRange {
    start: Frame,
    end: Frame,
}

impl FrameRange {
    /// The frames from `start` up to, not including, `end`; an `end` before
    /// `start` gives an empty range at `start`.
    #[must_use]
    pub const fn new(start: Frame, end: Frame) -> Self {
        let end = if end.0 < start.0 { start } else { end };
        Self { start, end }
    }

    /// `nr_frames` frames from `start` (clipped at `u64::MAX`).
    #[must_use]
    pub const fn from_count(start: Frame, nr_frames: u64) -> Self {
        Self {
            start,
            end: Frame(start.0.saturating_add(nr_frames)),
        }
    }

    /// The smallest range holding every byte of `start..start + len_bytes`:
    /// the right shape for something that must not be handed out, such as a
    /// kernel image that ends mid-frame.
    #[must_use]
    pub const fn covering(start: PhysAddr, len_bytes: u64) -> Self {
        if len_bytes == 0 {
            return Self::new(
                Frame::containing_address(start),
                Frame::containing_address(start),
            );
        }
        let last = start.as_u64().saturating_add(len_bytes - 1);
        Self::new(
            Frame::containing_address(start),
            Frame((last >> FRAME_SHIFT).saturating_add(1)),
        )
    }

    /// The largest range of whole frames inside `start..start + len_bytes`:
    /// the right shape for RAM a memory map reports, since a partial frame
    /// cannot be handed out.
    #[must_use]
    pub const fn within(start: PhysAddr, len_bytes: u64) -> Self {
        let end = start.as_u64().saturating_add(len_bytes);
        let first = match start.align_up(FRAME_SIZE) {
            Some(a) => a.as_u64() >> FRAME_SHIFT,
            None => u64::MAX,
        };
        Self::new(Frame(first), Frame(end >> FRAME_SHIFT))
    }

    /// The first frame.
    #[must_use]
    pub const fn start(&self) -> Frame {
        self.start
    }

    /// The frame just past the last one.
    #[must_use]
    pub const fn end(&self) -> Frame {
        self.end
    }

    /// Number of frames in the range.
    #[must_use]
    pub const fn len(&self) -> u64 {
        self.end.0 - self.start.0
    }

    /// Whether the range holds no frame.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.end.0 == self.start.0
    }

    /// Whether `frame` is in the range.
    #[must_use]
    pub const fn contains(&self, frame: Frame) -> bool {
        self.start.0 <= frame.0 && frame.0 < self.end.0
    }

    /// Address of the first byte.
    #[must_use]
    pub const fn start_address(&self) -> PhysAddr {
        self.start.start_address()
    }

    /// Size of the range in bytes (saturating).
    #[must_use]
    pub const fn size_bytes(&self) -> u64 {
        self.len().saturating_mul(FRAME_SIZE)
    }

    /// The frame numbers, as a range of `u64`.
    #[must_use]
    pub const fn numbers(&self) -> Range<u64> {
        self.start.0..self.end.0
    }

    /// The frames, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = Frame> + use<> {
        self.numbers().map(Frame)
    }
}

impl fmt::Debug for FrameRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FrameRange({:#x}..{:#x}, {} frames)",
            self.start.0 << FRAME_SHIFT,
            self.end.0 << FRAME_SHIFT,
            self.len()
        )
    }
}
