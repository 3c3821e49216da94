//! Global descriptor table and task-state segment.
//!
//! The TSS gives the double-fault handler its own stack (IST1), so a kernel
//! stack overflow is reported instead of triple-faulting the machine.

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
    tss: SegmentSelector,
}

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

/// Loads the GDT and TSS and reloads every segment register.
pub fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        let base = DOUBLE_FAULT_STACK.0.get().cast::<u8>();
        let top = VirtAddr::from_ptr(base.wrapping_add(DOUBLE_FAULT_STACK_SIZE));
        tss.interrupt_stack_table[DOUBLE_FAULT_IST_INDEX as usize] = top;
        tss
    });
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        let tss = gdt.append(Descriptor::tss_segment(tss));
        (
            gdt,
            Selectors {
                kernel_code,
                kernel_data,
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
