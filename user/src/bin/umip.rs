//! Tries to read the GDT's address from ring 3 with `sgdt`, for the UMIP
//! test: with UMIP on the instruction faults and the kernel kills the
//! program; without it the program prints what it read.
#![no_std]
#![no_main]

use ulib::println;

ulib::entry!(main);

fn main() -> i64 {
    let mut gdtr = [0u8; 10];
    // SAFETY: `sgdt` stores the 10-byte GDT register (limit, base) at the
    // address given, which is this buffer's; with UMIP it faults instead.
    unsafe {
        core::arch::asm!("sgdt [{}]", in(reg) gdtr.as_mut_ptr(), options(nostack));
    }
    let mut base = [0u8; 8];
    base.copy_from_slice(&gdtr[2..]);
    println!("umip: sgdt gave base={:#x}", u64::from_le_bytes(base));
    0
}
