//! Copy-on-write after fork, deterministically, for the QEMU tests.
//!
//! A global and an mmap page filled with a pattern are set up; the process
//! forks; each side writes its own value to the global and to the first
//! word of the page (the parent first), waits for the other side to have
//! written too, and checks it sees only its own values and the original
//! pattern everywhere else. Output:
//!
//! ```text
//! cowtest: parent ok
//! cowtest: child ok
//! cowtest: done child_exit=0
//! ```
//!
//! (the first two in either order). A side that sees something else prints
//! `cowtest: child FAIL ...` / `cowtest: parent FAIL ...`; the program
//! exits 0 only if both sides were right.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ulib::mapping::{Mapping, PAGE_SIZE};
use ulib::println;
use ulib::sys::{self, Fork};

ulib::entry!(main);

/// The global both sides write.
static GLOBAL: AtomicU64 = AtomicU64::new(0);
/// Value of the global and of page word 0 before the fork.
const ORIGINAL: u64 = 0x0c0f_0000_0000_0001;
/// The child's value.
const CHILD: u64 = 0xc41d_0000_0000_0002;
/// The parent's value.
const PARENT: u64 = 0x9a2e_0000_0000_0003;
/// Milliseconds each side waits after writing, so that the other side
/// has written before the check.
const SETTLE_MS: u64 = 50;

/// The pattern word at byte `offset` of the page.
fn pattern(offset: u64) -> u64 {
    0x5a5a_0000_0000_0000 | offset
}

/// Writes `value`, lets the other side write, and checks what this side
/// sees; answers a description of the first mismatch.
fn write_and_check(page: &Mapping, value: u64) -> Result<(), (&'static str, u64, u64)> {
    GLOBAL.store(value, Ordering::SeqCst);
    page.write_u64(0, value);
    let _ = sys::sleep_ms(SETTLE_MS);
    check(page, value)
}

/// Checks the global and word 0 hold `value` and the rest of the page the
/// pattern.
fn check(page: &Mapping, value: u64) -> Result<(), (&'static str, u64, u64)> {
    let global = GLOBAL.load(Ordering::SeqCst);
    if global != value {
        return Err(("global", global, value));
    }
    let word = page.read_u64(0);
    if word != value {
        return Err(("page word 0", word, value));
    }
    for offset in (8..PAGE_SIZE).step_by(8) {
        let word = page.read_u64(offset);
        if word != pattern(offset) {
            return Err(("page pattern", word, pattern(offset)));
        }
    }
    Ok(())
}

fn main() -> i64 {
    let _ = sys::register_program_name("cowtest");
    let page = match Mapping::anonymous(1) {
        Ok(page) => page,
        Err(e) => {
            println!("cowtest: FAIL mmap: {}", e.name());
            return 1;
        }
    };
    GLOBAL.store(ORIGINAL, Ordering::SeqCst);
    page.write_u64(0, ORIGINAL);
    for offset in (8..PAGE_SIZE).step_by(8) {
        page.write_u64(offset, pattern(offset));
    }
    match sys::fork() {
        Err(e) => {
            println!("cowtest: FAIL fork: {}", e.name());
            1
        }
        // The child lets the parent write first: the parent then copies
        // each page and the child, left its only user, takes the frame
        // over in place, whichever side the scheduler runs first after
        // the fork.
        Ok(Fork::Child) => {
            let _ = sys::sleep_ms(SETTLE_MS);
            match write_and_check(&page, CHILD) {
                Ok(()) => {
                    println!("cowtest: child ok");
                    0
                }
                Err((what, found, expected)) => {
                    println!("cowtest: child FAIL {what}: {found:#x} != {expected:#x}");
                    1
                }
            }
        }
        Ok(Fork::Parent(child)) => {
            let parent_ok = match write_and_check(&page, PARENT) {
                Ok(()) => true,
                Err((what, found, expected)) => {
                    println!("cowtest: parent FAIL {what}: {found:#x} != {expected:#x}");
                    false
                }
            };
            let child_exit = sys::wait(child as i64);
            // Once the child is gone, its writes must still not show here.
            let parent_ok = parent_ok
                && match check(&page, PARENT) {
                    Ok(()) => true,
                    Err((what, found, expected)) => {
                        println!(
                            "cowtest: parent FAIL after wait {what}: {found:#x} != {expected:#x}"
                        );
                        false
                    }
                };
            if parent_ok {
                println!("cowtest: parent ok");
            }
            match child_exit {
                Ok(code) => {
                    println!("cowtest: done child_exit={code}");
                    if parent_ok && code == 0 { 0 } else { 1 }
                }
                Err(e) => {
                    println!("cowtest: FAIL wait: {}", e.name());
                    1
                }
            }
        }
    }
}
