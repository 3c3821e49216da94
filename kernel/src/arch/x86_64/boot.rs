//! PVH entry: QEMU jumps here in 32-bit protected mode with paging off and
//! `ebx` pointing at the `hvm_start_info` structure.
//!
//! The stub builds boot page tables that map the first 4 GiB three times
//! (identity, the direct map at [`PHYS_OFFSET`](super::PHYS_OFFSET), and the
//! kernel image at -2 GiB), enables long mode with NX, and jumps to
//! `kernel_main` (in `entry`) in the higher half on the boot stack.
//! The identity map is dropped once Rust code runs, leaving page 0 unmapped.

use core::arch::global_asm;

/// Size of the boot (and later idle) stack. Debug builds move large
/// values (a heap's free-list table is 8 KiB) through several frames.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;

/// Bytes left unmapped right below the boot stack, so an overflow faults
/// instead of overwriting the statics below it.
pub const STACK_GUARD_SIZE: usize = 4096;

unsafe extern "C" {
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// Virtual address of the boot stack's guard page.
pub fn stack_guard_page() -> u64 {
    &raw const boot_stack_guard as u64
}

/// `(lowest, one past highest)` virtual address of the boot stack.
pub fn boot_stack() -> (u64, u64) {
    (
        &raw const boot_stack_bottom as u64,
        &raw const boot_stack_top as u64,
    )
}

global_asm!(
    r#"
    /* The PVH note QEMU looks for: XEN_ELFNOTE_PHYS32_ENTRY (18), 8-byte value. */
    .section .note.pvh, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

    .section .boot.data, "aw"
    .balign 4096
    boot_pml4:
        .quad boot_pdpt_low + 0x3
        .fill 255, 8, 0
        .quad boot_pdpt_low + 0x3          /* 256: direct map of physical memory */
        .fill 254, 8, 0
        .quad boot_pdpt_high + 0x3         /* 511: kernel image at -2 GiB */
    boot_pdpt_low:
        .quad boot_pd + 0x3
        .quad boot_pd + 0x1000 + 0x3
        .quad boot_pd + 0x2000 + 0x3
        .quad boot_pd + 0x3000 + 0x3
        .fill 508, 8, 0
    boot_pdpt_high:
        .fill 510, 8, 0
        .quad boot_pd + 0x3
        .quad boot_pd + 0x1000 + 0x3
    boot_pd:                               /* 2048 x 2 MiB, filled by the stub */
        .fill 2048, 8, 0
    boot_gdt:
        .quad 0
        .quad 0x00af9a000000ffff           /* 0x08: 64-bit code */
        .quad 0x00cf92000000ffff           /* 0x10: data */
    boot_gdt_end:
    boot_gdt_ptr:
        .word boot_gdt_end - boot_gdt - 1
        .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global pvh_start32
    pvh_start32:
        cli
        cld
        mov %ebx, %edi                     /* hvm_start_info, for kernel_main */

        xor %ecx, %ecx                     /* boot_pd[i] = i * 2 MiB | PS | RW | P */
    1:  mov %ecx, %eax
        shl $21, %eax
        or $0x83, %eax
        mov %eax, boot_pd(,%ecx,8)
        movl $0, boot_pd+4(,%ecx,8)
        inc %ecx
        cmp $2048, %ecx
        jb 1b

        mov %cr4, %eax                     /* PAE */
        or $(1 << 5), %eax
        mov %eax, %cr4
        mov $boot_pml4, %eax
        mov %eax, %cr3
        mov $0xc0000080, %ecx              /* EFER: long mode + NX */
        rdmsr
        or $((1 << 8) | (1 << 11)), %eax
        wrmsr
        mov %cr0, %eax                     /* paging + write-protect in ring 0 */
        or $((1 << 31) | (1 << 16)), %eax
        mov %eax, %cr0

        lgdt boot_gdt_ptr
        ljmp $0x08, $pvh_start64

    .code64
    pvh_start64:
        mov $0x10, %ax
        mov %ax, %ds
        mov %ax, %es
        mov %ax, %ss
        xor %ax, %ax
        mov %ax, %fs
        mov %ax, %gs
        mov %edi, %edi                     /* zero-extend the start-info address */
        movabs $boot_stack_top, %rsp
        xor %ebp, %ebp
        movabs $kernel_main, %rax
        call *%rax
    2:  hlt
        jmp 2b

    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .global boot_stack_guard
    boot_stack_guard:
        .skip {guard_size}
    .global boot_stack_bottom
    boot_stack_bottom:
        .skip {stack_size}
    .global boot_stack_top
    boot_stack_top:
    "#,
    stack_size = const BOOT_STACK_SIZE,
    guard_size = const STACK_GUARD_SIZE,
    options(att_syntax)
);
