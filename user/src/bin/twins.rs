//! Two processes with one program: the same global at the same address,
//! holding a different value in each, for the debugger tests.
//!
//! The process forks; the parent (named `twin-a`) stores [`PARENT`] in
//! [`MARK`], the child (`twin-b`) stores [`CHILD`]. Each then prints
//!
//! ```text
//! twins: twin-a pid=N mark=0x... at=0x...
//! ```
//!
//! and sleeps until the machine stops, so that gdb can read `MARK` in each
//! address space.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use ulib::println;
use ulib::sys::{self, Fork};

ulib::entry!(main);

/// The global each side sets to its own value.
#[unsafe(no_mangle)]
static MARK: AtomicU64 = AtomicU64::new(0);
/// The parent's value.
const PARENT: u64 = 0x7a1e_a000_0000_00a1;
/// The child's value.
const CHILD: u64 = 0x7a1e_b000_0000_00b2;

/// Sets the mark, says so, and waits to be looked at.
fn settle(name: &str, mark: u64) -> ! {
    let _ = sys::register_program_name(name);
    MARK.store(mark, Ordering::SeqCst);
    let pid = sys::getpid().unwrap_or(0);
    println!(
        "twins: {name} pid={pid} mark={:#x} at={:#x}",
        MARK.load(Ordering::SeqCst),
        &raw const MARK as u64
    );
    sys::sleep_forever()
}

fn main() -> i64 {
    match sys::fork() {
        Ok(Fork::Child) => settle("twin-b", CHILD),
        Ok(Fork::Parent(_)) => settle("twin-a", PARENT),
        Err(e) => {
            println!("twins: FAIL fork: {}", e.name());
            1
        }
    }
}
