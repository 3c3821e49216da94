//! The per-process memory API, deterministically, for the QEMU tests.
//!
//! Names itself `memtest`; makes two heaps of 64 KiB and two sheds of
//! 8 KiB (ids chosen by the kernel, then heap 7 and shed 9); allocates 100,
//! 200 and 300 bytes under keys 1, 2, 3 in the first heap, writes and reads
//! them back; writes 16 bytes at offset 0 of the first shed; then prints
//!
//! ```text
//! memtest: heaps=2 sheds=2 heap_size=131072 used=Y shed=16384
//! memtest: ready
//! ```
//!
//! (`Y`: the payload bytes the kernel counts as used) and sleeps forever,
//! so the test can read the kernel's snapshot of it. Any failure prints a
//! `memtest: FAIL` line and exits 1.
#![no_std]
#![no_main]

use sysabi::{ALL_OR_SELF, Errno, ProgramMemory};
use ulib::{println, sys};

ulib::entry!(main);

/// Size of each heap.
const HEAP_SIZE: u64 = 64 * 1024;
/// Size of each shed.
const SHED_SIZE: u64 = 8 * 1024;
/// Explicit id of the second heap.
const HEAP_B: i64 = 7;
/// Explicit id of the second shed.
const SHED_B: i64 = 9;
/// Blocks of the first heap: (size, key).
const BLOCKS: [(u64, u64); 3] = [(100, 1), (200, 2), (300, 3)];

/// Reports a failed step and answers the exit code.
fn fail(step: &str, e: Errno) -> i64 {
    println!("memtest: FAIL {step}: {}", e.name());
    1
}

/// Checks that `step` moved all `want` bytes (it says how many it `did`,
/// "wrote" or "read"); otherwise reports it and answers the exit code.
fn moved_all(step: &str, did: &str, moved: Result<usize, Errno>, want: usize) -> Result<(), i64> {
    match moved {
        Ok(n) if n == want => Ok(()),
        Ok(n) => {
            println!("memtest: FAIL {step} {did} {n} of {want}");
            Err(1)
        }
        Err(e) => Err(fail(step, e)),
    }
}

fn main() -> i64 {
    if let Err(e) = sys::register_program_name("memtest") {
        return fail("register_program_name", e);
    }
    let a = match sys::allocate_memory(ALL_OR_SELF, HEAP_SIZE, SHED_SIZE, -1, -1) {
        Ok(ids) => ids,
        Err(e) => return fail("allocate_memory auto ids", e),
    };
    let b = match sys::allocate_memory(ALL_OR_SELF, HEAP_SIZE, SHED_SIZE, HEAP_B, SHED_B) {
        Ok(ids) => ids,
        Err(e) => return fail("allocate_memory ids 7 and 9", e),
    };
    println!(
        "memtest: ids heap_a={} shed_a={} heap_b={} shed_b={}",
        a.heap_id, a.shed_id, b.heap_id, b.shed_id
    );
    if b.heap_id != HEAP_B || b.shed_id != SHED_B {
        println!("memtest: FAIL explicit ids not kept");
        return 1;
    }

    for (size, key) in BLOCKS {
        let addr = match sys::heap_alloc(a.heap_id, size, key) {
            Ok(addr) => addr,
            Err(e) => return fail("heap_alloc", e),
        };
        let mut data = [0u8; 300];
        let data = &mut data[..size as usize];
        for (i, byte) in data.iter_mut().enumerate() {
            *byte = (key as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
        let wrote = sys::heap_write(a.heap_id, addr, data);
        if let Err(exit) = moved_all("heap_write", "wrote", wrote, data.len()) {
            return exit;
        }
        let mut back = [0u8; 300];
        let back = &mut back[..size as usize];
        let read = sys::heap_read(a.heap_id, addr, back);
        if let Err(exit) = moved_all("heap_read", "read", read, back.len()) {
            return exit;
        }
        if back != data {
            println!("memtest: FAIL block of key {key} read back differently");
            return 1;
        }
    }

    let code = *b"memtest shed 16b";
    let wrote = sys::shed_write(a.shed_id, 0, &code);
    if let Err(exit) = moved_all("shed_write", "wrote", wrote, code.len()) {
        return exit;
    }

    let pid = match sys::getpid() {
        Ok(pid) => pid,
        Err(e) => return fail("getpid", e),
    };
    let mut rows = [ProgramMemory::default(); 4];
    let nr_rows = match sys::check_memory(pid as i64, &mut rows) {
        Ok(n) => n.min(rows.len()),
        Err(e) => return fail("check_memory", e),
    };
    let Some(me) = rows[..nr_rows].iter().find(|row| u64::from(row.pid) == pid) else {
        println!("memtest: FAIL check_memory has no row for pid {pid} ({nr_rows} rows)");
        return 1;
    };
    println!(
        "memtest: heaps={} sheds={} heap_size={} used={} shed={}",
        me.nr_heaps, me.nr_sheds, me.total_heap_size, me.total_heap_used, me.total_shed_size
    );
    println!("memtest: ready");
    sys::sleep_forever()
}
