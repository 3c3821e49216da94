//! Exercises fork and copy-on-write, round after round: a global and an
//! mmap page hold a value, the process forks, parent and child each write
//! their own value and check they see only their own; the child exits and
//! the parent waits for it.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ulib::mapping::Mapping;
use ulib::println;
use ulib::sys::{self, Fork};

ulib::entry!(main);

/// A global in the data segment, copied on write by fork.
static GLOBAL: AtomicU64 = AtomicU64::new(0);
/// Milliseconds between rounds.
const SLEEP_MS: u64 = 500;
/// Rounds between two status lines (a failure is always reported).
const REPORT_EVERY: u64 = 10;
/// Milliseconds each side waits after writing, so the other side writes
/// too before the check.
const SETTLE_MS: u64 = 20;

/// Writes `value` to the global and the page, lets the other side write,
/// then checks both still hold `value`.
fn write_and_check(page: &Mapping, value: u64) -> bool {
    GLOBAL.store(value, Ordering::SeqCst);
    page.write_u64(0, value);
    let _ = sys::sleep_ms(SETTLE_MS);
    GLOBAL.load(Ordering::SeqCst) == value && page.read_u64(0) == value
}

fn main() -> i64 {
    let _ = sys::register_program_name("forker");
    for round in 1u64.. {
        let page = match Mapping::anonymous(1) {
            Ok(page) => page,
            Err(e) => {
                println!("forker: mmap failed: {}", e.name());
                let _ = sys::sleep_ms(SLEEP_MS);
                continue;
            }
        };
        GLOBAL.store(round, Ordering::SeqCst);
        page.write_u64(0, round);
        match sys::fork() {
            Ok(Fork::Child) => {
                let ok = write_and_check(&page, round | 1 << 63);
                if !ok {
                    println!("forker: round={round} child sees the parent's writes");
                }
                sys::exit(if ok { 0 } else { 1 });
            }
            Ok(Fork::Parent(child)) => {
                let ok = write_and_check(&page, round | 1 << 62);
                let child_exit = sys::wait(child as i64);
                let ok = ok
                    && GLOBAL.load(Ordering::SeqCst) == round | 1 << 62
                    && page.read_u64(0) == round | 1 << 62;
                match child_exit {
                    Ok(code) if ok && code == 0 && !round.is_multiple_of(REPORT_EVERY) => {}
                    Ok(code) => println!(
                        "forker: round={round} child={child} child_exit={code} {}",
                        if ok { "ok" } else { "FAIL" }
                    ),
                    Err(e) => println!("forker: round={round} wait failed: {}", e.name()),
                }
            }
            Err(e) => println!("forker: round={round} fork failed: {}", e.name()),
        }
        drop(page);
        let _ = sys::sleep_ms(SLEEP_MS);
    }
    0
}
