//! Named scenarios chosen with `selftest=NAME` on the command line; the
//! integration tests boot into them and check what the kernel reports.

pub mod check_faults;
mod kleak;
mod mm;
mod wire;

use crate::arch::{cpu, qemu};
use crate::telemetry;

/// A byte of `ret` in writable data, for `exec-data`.
static DATA_RET: [u8; 1] = [0xC3];

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

/// Ends QEMU with success once what the scenario sent has left COM1.
fn exit_success() -> ! {
    telemetry::flush_before_exit();
    qemu::exit(qemu::ExitCode::Success)
}

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
            exit_success();
        }
        "exit" => exit_success(),
        // The memory manager under load; the kernel keeps running after it.
        "mm" => {
            mm::run();
        }
        // Memory exhausted and given back; the kernel keeps running.
        "oom" => {
            mm::oom();
        }
        // Skews the free-frame counter and keeps running: the host's check
        // must report the bitmap inconsistent.
        "corrupt-bitmap" => {
            let skew = crate::mm::frame::Corruption::SkewFreeCount(1);
            match crate::memory::phys::inject_corruption(skew) {
                Ok(()) => kwarn!("free-frame counter skewed by one on purpose"),
                Err(e) => kerror!("could not corrupt the bitmap: {e:?}"),
            }
        }
        // Writes to kernel text: must fault (text is read-only).
        "write-text" => {
            let p = core::hint::black_box(run as fn(&str)) as *mut u8;
            // SAFETY: deliberately unsound: the point is the fault.
            unsafe { p.write_volatile(0xCC) };
            kerror!("wrote to kernel text: W^X is broken");
        }
        // Jumps into data: must fault (data is no-execute).
        "exec-data" => {
            let p = core::hint::black_box(DATA_RET.as_ptr());
            // SAFETY: deliberately unsound: the point is the fault.
            let f: extern "C" fn() = unsafe { core::mem::transmute(p) };
            f();
            kerror!("executed data: NX is broken");
        }
        // Overflows the boot stack into its guard page.
        "stack-overflow" => {
            let n = recurse(0);
            kerror!("recursion returned {n}: the stack guard is missing");
        }
        // Blocks the kernel leak scan must report, and blocks it must not.
        "kleak" => kleak::run(),
        // The cost of one memory event, logged; the kernel keeps running.
        "wire" => wire::run(),
        // Megabytes for the leak scan to walk; the cost of call sites.
        "kleak-load" => kleak::load(),
        "check-faults" => kinfo!("faults are injected once a program shares a frame"),
        _ => kerror!("unknown selftest {name:?}; running normally"),
    }
}
