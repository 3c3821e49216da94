//! Who holds a frame, and its 32-bit encoding in the owner table.
//!
//! The table has one `u32` per frame (0.1 % of RAM) so that every used frame
//! can be attributed and the bitmap cross-checked against it. The encoding is
//! stable so that telemetry and gdb can show raw slots.

/// Largest process id [`Owner::Process`] can record.
pub const MAX_PID: u32 = (1 << 31) - 1;

/// Raw slot value of a free frame; zeroed memory is an all-free table.
pub(crate) const RAW_FREE: u32 = 0;

/// Bit set in the raw slot of a process-owned frame; the pid is the rest.
const RAW_PROCESS: u32 = 1 << 31;

/// The holder of a used frame. A free frame has no owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    /// Not RAM: a hole in the memory map or a region it calls unusable.
    Unusable,
    /// RAM set aside by policy, such as the first MiB (BIOS data, real-mode
    /// structures, DMA-able low memory).
    Reserved,
    /// The loaded kernel image.
    KernelImage,
    /// Structures the boot loader handed over (memory map, command line, ...).
    BootInfo,
    /// This allocator's own bitmap and owner table.
    Bitmap,
    /// Backing store of the kernel heap.
    KernelHeap,
    /// A kernel stack.
    KernelStack,
    /// A page-table node (any level).
    PageTable,
    /// Memory of the process with this pid (at most [`MAX_PID`]).
    Process(u32),
    /// Anything else, with a caller-chosen tag.
    Other(u16),
}

impl Owner {
    /// Whether frames of this owner stay used until explicitly released:
    /// [`free_frame`](super::FrameBitmap::free_frame) refuses them, because
    /// freeing the kernel image or the bitmap is always a bug.
    #[must_use]
    pub const fn is_permanent(self) -> bool {
        matches!(
            self,
            Self::Unusable | Self::Reserved | Self::KernelImage | Self::BootInfo | Self::Bitmap
        )
    }

    /// The owner's raw slot value (never 0, which means free), or `None` for
    /// a pid above [`MAX_PID`].
    ///
    /// Layout: bit 31 set means `Process(bits 0..31)`; otherwise the low byte
    /// is a tag (1 = `Unusable` ... 9 = `Other`) and bits 8..24 hold the
    /// `Other` payload; every other value is invalid.
    #[must_use]
    pub const fn to_raw(self) -> Option<u32> {
        Some(match self {
            Self::Unusable => 1,
            Self::Reserved => 2,
            Self::KernelImage => 3,
            Self::BootInfo => 4,
            Self::Bitmap => 5,
            Self::KernelHeap => 6,
            Self::KernelStack => 7,
            Self::PageTable => 8,
            Self::Other(tag) => 9 | (tag as u32) << 8,
            Self::Process(pid) => {
                if pid > MAX_PID {
                    return None;
                }
                RAW_PROCESS | pid
            }
        })
    }

    /// The owner a raw slot value names; `None` for 0 (free) and for values
    /// no owner encodes to (a corrupted slot).
    #[must_use]
    pub const fn from_raw(raw: u32) -> Option<Self> {
        if raw & RAW_PROCESS != 0 {
            return Some(Self::Process(raw & !RAW_PROCESS));
        }
        let tag = raw & 0xff;
        let payload = raw >> 8;
        if tag == 9 {
            return if payload <= u16::MAX as u32 {
                Some(Self::Other(payload as u16))
            } else {
                None
            };
        }
        if payload != 0 {
            return None;
        }
        match tag {
            1 => Some(Self::Unusable),
            2 => Some(Self::Reserved),
            3 => Some(Self::KernelImage),
            4 => Some(Self::BootInfo),
            5 => Some(Self::Bitmap),
            6 => Some(Self::KernelHeap),
            7 => Some(Self::KernelStack),
            8 => Some(Self::PageTable),
            _ => None,
        }
    }
}
