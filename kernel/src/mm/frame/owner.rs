//! Who holds a frame, and its 16-bit encoding in the owner table.
//!
//! Every used frame records its owner so that it can be attributed and the
//! bitmap cross-checked against it. The encoding fits 16 bits, so the table
//! costs 0.05 % of RAM (8 MiB for 16 GiB) with `u16` slots; it still holds
//! every pid up to Linux's default `pid_max`. The encoding is stable so that
//! telemetry and gdb can show raw slots.

/// One entry of the owner table: an [`Owner`] encoded by [`Owner::to_raw`],
/// or 0 for a free frame.
pub type OwnerSlot = u16;

/// Largest process id [`Owner::Process`] can record.
pub const MAX_PID: u32 = (1 << 15) - 1;

/// Raw slot value of a free frame; zeroed memory is an all-free table.
pub(crate) const RAW_FREE: OwnerSlot = 0;

/// Bit set in the raw slot of a process-owned frame; the pid is the rest.
const RAW_PROCESS: OwnerSlot = 1 << 15;

/// Bit set (with bit 15 clear) in the raw slot of an [`Owner::Other`]; the
/// low byte is its tag.
const RAW_OTHER: OwnerSlot = 1 << 14;

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
    Other(u8),
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
    /// Layout: bit 15 set means `Process(bits 0..15)`; else bit 14 set
    /// means `Other(bits 0..8)` with bits 8..14 clear; else the value is 1
    /// (`Unusable`) to 8 (`PageTable`) in declaration order. Every other
    /// value is invalid.
    #[must_use]
    pub const fn to_raw(self) -> Option<OwnerSlot> {
        Some(match self {
            Self::Unusable => 1,
            Self::Reserved => 2,
            Self::KernelImage => 3,
            Self::BootInfo => 4,
            Self::Bitmap => 5,
            Self::KernelHeap => 6,
            Self::KernelStack => 7,
            Self::PageTable => 8,
            Self::Other(tag) => RAW_OTHER | tag as OwnerSlot,
            Self::Process(pid) => {
                if pid > MAX_PID {
                    return None;
                }
                RAW_PROCESS | pid as OwnerSlot
            }
        })
    }

    /// The owner a raw slot value names; `None` for 0 (free) and for values
    /// no owner encodes to (a corrupted slot).
    #[must_use]
    pub const fn from_raw(raw: OwnerSlot) -> Option<Self> {
        if raw & RAW_PROCESS != 0 {
            return Some(Self::Process((raw & !RAW_PROCESS) as u32));
        }
        if raw & RAW_OTHER != 0 {
            return if raw & !RAW_OTHER <= u8::MAX as OwnerSlot {
                Some(Self::Other(raw as u8))
            } else {
                None
            };
        }
        match raw {
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
