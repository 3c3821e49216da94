//! Kernel stacks for processes: each in its own slot of a reserved
//! kernel-half range, with the page below it left unmapped so an overflow
//! faults (and is reported as a double fault) instead of overwriting
//! whatever lies below.
#![forbid(unsafe_code)]

use crate::memory::phys;
use crate::memory::virt::{self, KERNEL_DATA};
use crate::mm::frame::{FRAME_SIZE, Owner};
use crate::mm::paging::VirtAddr;
use crate::sync::IrqMutex;

/// Where the stack slots start: PML4 slot 416, away from the heap (384).
const STACKS_START: u64 = 0xFFFF_D000_0000_0000;
/// Bytes of one kernel stack. Debug builds move large values through the
/// stack (a heap's bookkeeping is 8 KiB), so this is the boot stack's size.
pub const KERNEL_STACK_SIZE: u64 = 256 * 1024;
/// Distance between slots: the stack, its guard page, and room to spare.
const SLOT_STRIDE: u64 = 512 * 1024;
/// Slots, hence the most processes alive at once.
pub const MAX_KERNEL_STACKS: usize = 256;

/// The virtual range of all stack slots.
pub fn area() -> (u64, u64) {
    (
        STACKS_START,
        STACKS_START + MAX_KERNEL_STACKS as u64 * SLOT_STRIDE,
    )
}

/// One mapped kernel stack; give it back with [`free_kernel_stack`].
#[derive(Debug)]
pub struct KernelStack {
    slot: usize,
}

impl KernelStack {
    /// Lowest mapped address.
    pub fn bottom(&self) -> u64 {
        self.top() - KERNEL_STACK_SIZE
    }

    /// One past the highest address: the initial stack pointer.
    pub fn top(&self) -> u64 {
        STACKS_START + (self.slot as u64 + 1) * SLOT_STRIDE
    }

    /// The unmapped page right below the stack.
    pub fn guard_page(&self) -> u64 {
        self.bottom() - FRAME_SIZE
    }
}

static SLOTS: IrqMutex<[u64; MAX_KERNEL_STACKS / 64]> = IrqMutex::new([0; MAX_KERNEL_STACKS / 64]);

/// Makes the page tables of the whole stack area now, by mapping and
/// unmapping one page per 2 MiB: tables outlive their last mapping, so
/// creating and freeing stacks later never changes the page-table count,
/// and a host comparing frame counts before and after some processes ran
/// sees exactly what they took and gave back.
pub fn init() -> Result<(), KernelStackError> {
    const TABLE_SPAN: u64 = 2 << 20;
    let end = STACKS_START + MAX_KERNEL_STACKS as u64 * SLOT_STRIDE;
    let frame = phys::alloc_frame(Owner::KernelStack).map_err(|_| KernelStackError::OutOfMemory)?;
    let mut result = Ok(());
    for va in (STACKS_START..end).step_by(TABLE_SPAN as usize) {
        if virt::map_page(VirtAddr::new(va), frame, KERNEL_DATA).is_err() {
            result = Err(KernelStackError::OutOfMemory);
            break;
        }
        let _ = virt::unmap_page(VirtAddr::new(va));
    }
    let _ = phys::free_frame(frame);
    result
}

/// Why a stack could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelStackError {
    /// Every slot is taken.
    NoSlot,
    /// No frames.
    OutOfMemory,
}

/// Maps a fresh kernel stack with an unmapped guard page below it.
pub fn allocate_kernel_stack() -> Result<KernelStack, KernelStackError> {
    let slot = SLOTS
        .with(|bits| {
            let (word, bit) = bits
                .iter()
                .enumerate()
                .find_map(|(i, w)| (*w != u64::MAX).then(|| (i, w.trailing_ones() as usize)))?;
            bits[word] |= 1 << bit;
            Some(word * 64 + bit)
        })
        .ok_or(KernelStackError::NoSlot)?;
    let stack = KernelStack { slot };
    for va in (stack.bottom()..stack.top()).step_by(FRAME_SIZE as usize) {
        let mapped = phys::alloc_frame(Owner::KernelStack)
            .ok()
            .and_then(
                |frame| match virt::map_page(VirtAddr::new(va), frame, KERNEL_DATA) {
                    Ok(()) => Some(()),
                    Err(_) => {
                        let _ = phys::free_frame(frame);
                        None
                    }
                },
            );
        if mapped.is_none() {
            unmap(stack.bottom(), va);
            release_slot(slot);
            return Err(KernelStackError::OutOfMemory);
        }
    }
    Ok(stack)
}

/// Unmaps a kernel stack and returns its frames. It must not be the stack
/// the CPU is running on.
pub fn free_kernel_stack(stack: KernelStack) {
    unmap(stack.bottom(), stack.top());
    release_slot(stack.slot);
}

fn unmap(start: u64, end: u64) {
    for va in (start..end).step_by(FRAME_SIZE as usize) {
        if let Ok(frame) = virt::unmap_page(VirtAddr::new(va)) {
            let _ = phys::free_frame(frame);
        }
    }
}

fn release_slot(slot: usize) {
    SLOTS.with(|bits| bits[slot / 64] &= !(1 << (slot % 64)));
}

/// The stack `(bottom, top)` of the slot whose guard page holds `addr`.
pub fn stack_guarded_by(addr: u64) -> Option<(u64, u64)> {
    if !is_guard_page(addr) {
        return None;
    }
    let slot = (addr - STACKS_START) / SLOT_STRIDE;
    let top = STACKS_START + (slot + 1) * SLOT_STRIDE;
    Some((top - KERNEL_STACK_SIZE, top))
}

/// The kernel stack `(bottom, top)` that holds `addr`: the boot stack (the
/// kernel task's) or a process's slot (mapped or not: the caller knows it
/// runs there).
pub fn stack_containing(addr: u64) -> Option<(u64, u64)> {
    let (bottom, top) = crate::arch::x86_64::boot::boot_stack();
    if (bottom..top).contains(&addr) {
        return Some((bottom, top));
    }
    let end = STACKS_START + MAX_KERNEL_STACKS as u64 * SLOT_STRIDE;
    if !(STACKS_START..end).contains(&addr) || is_guard_page(addr) {
        return None;
    }
    let top = STACKS_START + ((addr - STACKS_START) / SLOT_STRIDE + 1) * SLOT_STRIDE;
    Some((top - KERNEL_STACK_SIZE, top))
}

/// Whether `addr` lies in the guard page of some kernel stack slot.
pub fn is_guard_page(addr: u64) -> bool {
    let end = STACKS_START + MAX_KERNEL_STACKS as u64 * SLOT_STRIDE;
    if !(STACKS_START..end).contains(&addr) {
        return false;
    }
    let within = (addr - STACKS_START) % SLOT_STRIDE;
    within < SLOT_STRIDE - KERNEL_STACK_SIZE
}
