//! Two processes with one program: the same global at the same address,
//! holding a different value in each, for the debugger tests.
//!
//! Before forking it takes a heap with one 8-byte block (key [`KEY`]) and
//! prints `twins: block=0x...`; fork copies the heap, so both processes
//! have the block at that address. Then the parent (named `twin-a`) stores
//! [`PARENT`] in [`MARK`], the child (`twin-b`) stores [`CHILD`], and each
//! prints
//!
//! ```text
//! twins: twin-a pid=N mark=0x... at=0x...
//! ```
//!
//! The child then sleeps until the machine stops; the parent stores a
//! count into its block, directly from ring 3, every [`TICK_MS`], for a
//! watchpoint to catch.
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
/// Key of the heap block.
const KEY: u64 = 7;
/// Milliseconds between the parent's stores into its block.
const TICK_MS: u64 = 100;

/// Sets the mark, says so, and waits to be looked at; the parent also
/// counts in its heap block at `block`.
fn settle(name: &str, mark: u64, block: Option<u64>) -> ! {
    let _ = sys::register_program_name(name);
    MARK.store(mark, Ordering::SeqCst);
    let pid = sys::getpid().unwrap_or(0);
    println!(
        "twins: {name} pid={pid} mark={:#x} at={:#x}",
        MARK.load(Ordering::SeqCst),
        &raw const MARK as u64
    );
    let Some(block) = block else {
        sys::sleep_forever()
    };
    for count in 1u64.. {
        let _ = sys::sleep_ms(TICK_MS);
        // SAFETY: `block` is an 8-byte block of this process's own heap,
        // which is mapped readable and writable for it, and nothing else
        // in the program refers to it.
        unsafe { core::ptr::write_volatile(block as *mut u64, count) };
    }
    unreachable!("the count does not run out")
}

fn main() -> i64 {
    let block = sys::allocate_memory(sysabi::ALL_OR_SELF, 4096, 0, -1, -1)
        .and_then(|ids| sys::heap_alloc(ids.heap_id, 8, KEY));
    let block = match block {
        Ok(block) => block,
        Err(e) => {
            println!("twins: FAIL heap: {}", e.name());
            return 1;
        }
    };
    println!("twins: block={block:#x}");
    match sys::fork() {
        Ok(Fork::Child) => settle("twin-b", CHILD, None),
        Ok(Fork::Parent(_)) => settle("twin-a", PARENT, Some(block)),
        Err(e) => {
            println!("twins: FAIL fork: {}", e.name());
            1
        }
    }
}
