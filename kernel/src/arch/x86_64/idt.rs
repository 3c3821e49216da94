//! Interrupt descriptor table: one gate per vector that has an entry stub,
//! and the system-call gate ring 3 may use.

use spin::Once;
use x86_64::instructions::tables::lidt;
use x86_64::structures::DescriptorTablePointer;
use x86_64::{VirtAddr, instructions::segmentation::Segment};

use super::gdt::DOUBLE_FAULT_IST_INDEX;
use super::trap::{self, NR_STUBS};

/// One 16-byte interrupt gate.
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

/// Present, DPL 0, 64-bit interrupt gate (interrupts off on entry).
const INTERRUPT_GATE: u8 = 0x8e;
/// The same with DPL 3: ring 3 may raise it with `int` (system calls).
const USER_INTERRUPT_GATE: u8 = 0xee;

impl Gate {
    fn new(handler: u64, selector: u16, ist: u8) -> Self {
        Self::with_type(handler, selector, ist, INTERRUPT_GATE)
    }

    fn with_type(handler: u64, selector: u16, ist: u8, type_attr: u8) -> Self {
        Self {
            offset_low: handler as u16,
            selector,
            ist,
            type_attr,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static IDT: Once<Idt> = Once::new();

/// Builds the IDT from the trap stubs and loads it.
pub fn init() {
    let cs = x86_64::instructions::segmentation::CS::get_reg().0;
    let idt = IDT.call_once(|| {
        let mut idt = Idt([Gate::default(); 256]);
        for (vector, gate) in idt.0.iter_mut().enumerate().take(NR_STUBS) {
            // IST numbers in a gate are 1-based; 0 means "current stack".
            let ist = if vector == trap::DOUBLE_FAULT as usize {
                DOUBLE_FAULT_IST_INDEX as u8 + 1
            } else {
                0
            };
            *gate = Gate::new(trap::stub_address(vector), cs, ist);
        }
        // Interrupts stay off through a system call, as through any trap:
        // the kernel is not preemptible.
        idt.0[trap::SYSCALL as usize] =
            Gate::with_type(trap::syscall_stub_address(), cs, 0, USER_INTERRUPT_GATE);
        idt
    });
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(idt),
    };
    // SAFETY: the table lives in a static for the rest of the kernel's life
    // and every present gate points at an entry stub of `trap`.
    unsafe { lidt(&ptr) };
}
