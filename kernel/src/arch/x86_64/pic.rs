//! The legacy 8259 interrupt controllers, remapped to vectors 32..48.

use x86_64::instructions::port::Port;

/// First vector of the primary PIC.
pub const IRQ_BASE: u8 = 32;
/// IRQ lines the kernel uses.
pub const IRQ_TIMER: u8 = 0;
/// COM2 (0x2F8).
pub const IRQ_COM2: u8 = 3;
/// COM1 (0x3F8).
pub const IRQ_COM1: u8 = 4;

const PIC1_CMD: u16 = 0x20;
const PIC1_DATA: u16 = 0x21;
const PIC2_CMD: u16 = 0xa0;
const PIC2_DATA: u16 = 0xa1;

fn outb(port: u16, value: u8) {
    // SAFETY: the ports written here are the two PICs' command and data
    // registers, which only affect interrupt delivery.
    unsafe { Port::<u8>::new(port).write(value) };
}

/// Remaps both PICs and unmasks the timer and both serial ports.
pub fn init() {
    outb(PIC1_CMD, 0x11); // ICW1: init, expect ICW4
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, IRQ_BASE); // ICW2: vector offsets
    outb(PIC2_DATA, IRQ_BASE + 8);
    outb(PIC1_DATA, 4); // ICW3: secondary on IRQ2
    outb(PIC2_DATA, 2);
    outb(PIC1_DATA, 0x01); // ICW4: 8086 mode
    outb(PIC2_DATA, 0x01);
    let unmasked = (1 << IRQ_TIMER) | (1 << IRQ_COM2) | (1 << IRQ_COM1);
    outb(PIC1_DATA, !unmasked);
    outb(PIC2_DATA, 0xff);
}

/// Acknowledges the interrupt on `irq` so the PIC delivers the next one.
pub fn end_of_interrupt(irq: u8) {
    if irq >= 8 {
        outb(PIC2_CMD, 0x20);
    }
    outb(PIC1_CMD, 0x20);
}
