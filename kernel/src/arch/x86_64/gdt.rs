//! Global descriptor table and task-state segment.
//!
//! The GDT holds the kernel's and ring 3's code and data segments. The TSS
//! gives the double-fault handler its own stack (IST1), so a kernel stack
//! overflow is reported instead of triple-faulting the machine, and names
//! the kernel stack a trap from ring 3 lands on (`rsp0`), which the
//! scheduler sets to the running process's kernel stack.

use core::cell::UnsafeCell;
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;

use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

/// IST slot (index into `interrupt_stack_table`) of the double-fault stack.
pub const DOUBLE_FAULT_IST_INDEX: u16 = 0;

/// Room for the fault report and the panic path of a debug build.
const DOUBLE_FAULT_STACK_SIZE: usize = 64 * 1024;

/// The double-fault stack; only the CPU writes to it, through the TSS. The
/// `UnsafeCell` places it in writable memory: a plain immutable static would
/// land in read-only `.rodata`, and the first push would fault again.
#[repr(align(16))]
struct IstStack(UnsafeCell<[u8; DOUBLE_FAULT_STACK_SIZE]>);
// SAFETY: Rust code never reads or writes the stack; only the CPU does, on
// one CPU, while handling a double fault.
unsafe impl Sync for IstStack {}
static DOUBLE_FAULT_STACK: IstStack = IstStack(UnsafeCell::new([0; DOUBLE_FAULT_STACK_SIZE]));

/// Segment selectors of the kernel's GDT.
pub struct Selectors {
    /// Ring-0 code.
    pub kernel_code: SegmentSelector,
    /// Ring-0 data.
    pub kernel_data: SegmentSelector,
    /// Ring-3 data (RPL 3).
    pub user_data: SegmentSelector,
    /// Ring-3 code (RPL 3).
    pub user_code: SegmentSelector,
    tss: SegmentSelector,
}

/// The TSS; the CPU reads it on every trap from ring 3 and Rust writes only
/// its `rsp0`, through [`set_kernel_stack`].
struct TssCell(UnsafeCell<TaskStateSegment>);
// SAFETY: one CPU; `rsp0` is written with interrupts off (the scheduler
// runs in trap context), and nothing else is written after `init`.
unsafe impl Sync for TssCell {}
static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    let base = DOUBLE_FAULT_STACK.0.get().cast::<u8>();
    let top = VirtAddr::from_ptr(base.wrapping_add(DOUBLE_FAULT_STACK_SIZE));
    // SAFETY: before the TSS is loaded nothing else reads or writes it.
    let tss: &'static TaskStateSegment = unsafe {
        (*TSS.0.get()).interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = top;
        &*TSS.0.get()
    };
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let user_data = gdt.append(Descriptor::user_data_segment());
        let user_code = gdt.append(Descriptor::user_code_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (
            gdt,
            Selectors {
                kernel_code,
                kernel_data,
                user_data,
                user_code,
                tss,
            },
        )
    });
    gdt.load();
    // SAFETY: the selectors index descriptors of the GDT just loaded, which
    // lives for the rest of the kernel's life in a static.
    unsafe {
        CS::set_reg(sel.kernel_code);
        SS::set_reg(sel.kernel_data);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        load_tss(sel.tss);
    }
}

/// The selectors of the loaded GDT.
pub fn selectors() -> &'static Selectors {
    &GDT.get().expect("GDT used before init").1
}

/// Sets the stack the CPU switches to on a trap from ring 3: the top of the
/// running process's kernel stack.
pub fn set_kernel_stack(top: u64) {
    crate::arch::cpu::without_interrupts(|| {
        // SAFETY: one CPU with interrupts off: no trap reads the TSS while
        // this single aligned field is written.
        unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new(top) };
    });
}
