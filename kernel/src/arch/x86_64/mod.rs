//! x86_64 hardware layer: boot stub, descriptor tables, traps, interrupt
//! controller, timer, port I/O and QEMU's exit device.
//!
//! Everything that needs `unsafe` to talk to the CPU lives below this module,
//! behind small safe functions.

pub mod boot;
pub mod context;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod pic;
pub mod pit;
pub mod pvh;
pub mod qemu;
pub mod trap;

/// Virtual address at which all physical memory is mapped (PML4 slot 256).
pub const PHYS_OFFSET: u64 = 0xFFFF_8000_0000_0000;

/// Offset between the kernel image's virtual and physical addresses (the
/// linker script's `KERNEL_VMA_OFFSET`: the image runs at -2 GiB).
pub const KERNEL_VMA_OFFSET: u64 = 0xFFFF_FFFF_8000_0000;

/// How much physical memory the boot page tables map at [`PHYS_OFFSET`].
pub const BOOT_DIRECT_MAP_BYTES: u64 = 4 << 30;

/// Virtual address of physical address `pa` in the direct map.
pub fn phys_to_virt(pa: u64) -> u64 {
    PHYS_OFFSET + pa
}

/// Brings the CPU from the boot stub's state to a full kernel environment:
/// own GDT and TSS, IDT, interrupt controller and timer, identity map gone.
pub fn init(timer_hz: u32) {
    gdt::init();
    idt::init();
    cpu::drop_identity_map();
    pic::init();
    pit::init(timer_hz);
}
