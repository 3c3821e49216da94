//! Named scenarios chosen with `selftest=NAME` on the command line; the
//! integration tests boot into them and check what the kernel reports.

use crate::arch::{cpu, qemu};

/// Runs scenario `name`. Scenarios that finish exit QEMU with success.
pub fn run(name: &str) {
    kinfo!("selftest {name}");
    match name {
        // Reads the null guard page from kernel code: must be reported as a
        // page fault at address 0 and end QEMU with the failure status.
        "null-read" => {
            let p = core::hint::black_box(0usize) as *const u64;
            // SAFETY: deliberately unsound: the point is the fault.
            let v = unsafe { p.read_volatile() };
            kerror!("null read returned {v:#x}: the guard page is missing");
        }
        "panic" => panic!("selftest panic requested"),
        "breakpoint" => {
            cpu::breakpoint();
            kinfo!("resumed after breakpoint");
            qemu::exit(qemu::ExitCode::Success);
        }
        "exit" => qemu::exit(qemu::ExitCode::Success),
        _ => kerror!("unknown selftest {name:?}; running normally"),
    }
}
