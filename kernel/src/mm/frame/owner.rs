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

/// Raw slot value of [`Owner::Unusable`].
pub(crate) const RAW_UNUSABLE: OwnerSlot = 1;

/// Bit set in the raw slot of a process-owned frame; the pid is the rest.
const RAW_PROCESS: OwnerSlot = 1 << 15;

/// Bit set (with bit 15 clear) in the raw slot of an [`Owner::Other`]; the
/// low byte is its tag.
const RAW_OTHER: OwnerSlot = 1 << 14;

/// The holder of a used frame (a free frame has no owner): the protocol's
/// [`FrameOwner`], so the kernel records, reports and prints one type.
pub use probe_proto::FrameOwner as Owner;

/// What the frame allocator needs of an [`Owner`] beyond the protocol: its
/// slot encoding and whether it is permanent.
pub trait OwnerSlotCodec: Sized {
    /// Whether frames of this owner stay used until explicitly released:
    /// [`free_frame`](super::FrameBitmap::free_frame) refuses them, because
    /// freeing the kernel image or the bitmap is always a bug.
    fn is_permanent(&self) -> bool;

    /// The owner's raw slot value (never 0, which means free), or `None` for
    /// a pid above [`MAX_PID`].
    ///
    /// Layout: bit 15 set means `Process(bits 0..15)`; else bit 14 set
    /// means `Other(bits 0..8)` with bits 8..14 clear; else the value is 1
    /// (`Unusable`) to 8 (`PageTable`) in declaration order. Every other
    /// value is invalid.
    fn to_raw(self) -> Option<OwnerSlot>;

    /// The owner a raw slot value names; `None` for 0 (free) and for values
    /// no owner encodes to (a corrupted slot).
    fn from_raw(raw: OwnerSlot) -> Option<Self>;
}

impl OwnerSlotCodec for Owner {
    fn is_permanent(&self) -> bool {
        matches!(
            self,
            Owner::Unusable
                | Owner::Reserved
                | Owner::KernelImage
                | Owner::BootInfo
                | Owner::Bitmap
        )
    }

    fn to_raw(self) -> Option<OwnerSlot> {
        Some(match self {
            Owner::Unusable => RAW_UNUSABLE,
            Owner::Reserved => 2,
            Owner::KernelImage => 3,
            Owner::BootInfo => 4,
            Owner::Bitmap => 5,
            Owner::KernelHeap => 6,
            Owner::KernelStack => 7,
            Owner::PageTable => 8,
            Owner::Other(tag) => RAW_OTHER | tag as OwnerSlot,
            Owner::Process(pid) => {
                if pid > MAX_PID {
                    return None;
                }
                RAW_PROCESS | pid as OwnerSlot
            }
        })
    }

    fn from_raw(raw: OwnerSlot) -> Option<Self> {
        if raw & RAW_PROCESS != 0 {
            return Some(Owner::Process((raw & !RAW_PROCESS) as u32));
        }
        if raw & RAW_OTHER != 0 {
            return if raw & !RAW_OTHER <= u8::MAX as OwnerSlot {
                Some(Owner::Other(raw as u8))
            } else {
                None
            };
        }
        match raw {
            RAW_UNUSABLE => Some(Owner::Unusable),
            2 => Some(Owner::Reserved),
            3 => Some(Owner::KernelImage),
            4 => Some(Owner::BootInfo),
            5 => Some(Owner::Bitmap),
            6 => Some(Owner::KernelHeap),
            7 => Some(Owner::KernelStack),
            8 => Some(Owner::PageTable),
            _ => None,
        }
    }
}
