//! `selftest=kleak`: blocks the kernel leak scan must report, and blocks
//! it must not.
//!
//! Leaked (each logged `leaked: addr=0x... size=N`): boxes of distinct
//! sizes from distinct call sites whose pointers are dropped, a `kmalloc`
//! block, and a pair of blocks that point only at each other (a cycle
//! nothing else reaches). Kept (each logged `kept: addr=0x... size=N`): a
//! block held by a static, one held only by that block, one held only
//! through a pointer into its middle, and a `Vec` in a static.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::hint::black_box;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::memory::heap::kmalloc;
use crate::sync::IrqMutex;

/// The root block's address: the only reference to it.
static ROOT: AtomicUsize = AtomicUsize::new(0);
/// A vector whose buffer must stay reachable through the static.
static KEPT_VEC: IrqMutex<Vec<u64>> = IrqMutex::new(Vec::new());

/// The kept block a static points to; it holds the others' addresses.
struct Root {
    /// The start of a block nothing else references.
    child: usize,
    /// 40 bytes into a block nothing else references.
    interior: usize,
    _pad: [u64; 3],
}

fn leaked(addr: usize, size: usize) {
    kinfo!("leaked: addr={addr:#x} size={size}");
}

fn kept(addr: usize, size: usize) {
    kinfo!("kept: addr={addr:#x} size={size}");
}

/// Allocates `N` bytes here and forgets the pointer.
#[inline(never)]
fn leak_box<const N: usize>() {
    let p = Box::into_raw(Box::new([0x5au8; N]));
    leaked(p.addr(), N);
    black_box(p);
}

#[inline(never)]
fn leak_from_a() {
    leak_box::<24>();
}

#[inline(never)]
fn leak_from_b() {
    leak_box::<56>();
    leak_box::<88>();
}

#[inline(never)]
fn leak_kmalloc() {
    if let Some(p) = kmalloc(152) {
        leaked(p.addr().get(), 152);
    }
}

/// Two blocks pointing at each other and at nothing else.
#[inline(never)]
fn leak_cycle() {
    let mut a = Box::new([0usize; 33]);
    let mut b = Box::new([0usize; 41]);
    a[0] = b.as_ptr().addr();
    b[0] = a.as_ptr().addr();
    let (a, b) = (Box::into_raw(a), Box::into_raw(b));
    leaked(a.addr(), 33 * 8);
    leaked(b.addr(), 41 * 8);
    black_box((a, b));
}

#[inline(never)]
fn keep() {
    let child = Box::into_raw(Box::new([7u64; 9]));
    let middle = Box::into_raw(Box::new([9u64; 13]));
    let root = Box::new(Root {
        child: child.addr(),
        interior: middle.addr() + 40,
        _pad: [0; 3],
    });
    kept(root.child, 72);
    kept(root.interior - 40, 104);
    let root = Box::into_raw(root);
    kept(root.addr(), size_of::<Root>());
    ROOT.store(root.addr(), Ordering::Relaxed);
    KEPT_VEC.with(|v| {
        v.extend(0..17u64);
        kept(v.as_ptr().addr(), v.capacity() * 8);
    });
}

/// Runs `f` 64 KiB further down the stack than its caller. The frames
/// that allocate keep the leaked addresses in slots nothing clears; down
/// there no frame the later scan runs in (from the idle loop, shallower)
/// can reuse those slots without writing them, and the scan reads only
/// from its own stack pointer up.
#[inline(never)]
fn deep(f: impl FnOnce()) {
    let pad = black_box([0u8; 64 * 1024]);
    f();
    black_box(&pad);
}

/// Makes the leaks and the kept blocks.
pub fn run() {
    deep(|| {
        keep();
        leak_from_a();
        leak_from_b();
        leak_cycle();
        // Last, so its address is the one the event stream reported last
        // (and keeps to predict the next): a record, not a reference.
        leak_kmalloc();
    });
    kinfo!("kleak: leaks made; scan with `mmtop leaks --scan`");
}

/// Bytes of one block of the load's list.
const LOAD_NODE_WORDS: usize = 127;
/// Blocks in the load's list: 4 MiB with their links.
const LOAD_NODES: usize = 4096;
/// `kmalloc`/`kfree` pairs timed.
const TIMED_OPS: usize = 100_000;

/// One block of the load: a link and words that look like data.
struct Node {
    _next: Option<Box<Node>>,
    _words: [u64; LOAD_NODE_WORDS],
}

/// The head of the load's list, so all of it stays reachable.
static LOAD: IrqMutex<Option<Box<Node>>> = IrqMutex::new(None);

/// `selftest=kleak-load`: 4 MiB of reachable blocks in a list (each found
/// only through the one before it) for the scan to walk, and the time of
/// [`TIMED_OPS`] `kmalloc`/`kfree` pairs, logged as `kleak-load: N
/// kmalloc/kfree pairs in US us (call sites on|off)`, for the benchmark
/// to compare with `callsites=0`.
pub fn load() {
    let mut head: Option<Box<Node>> = None;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..LOAD_NODES {
        let mut words = [0u64; LOAD_NODE_WORDS];
        for w in &mut words {
            // xorshift: data, not addresses.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *w = x;
        }
        head = Some(Box::new(Node {
            _next: head,
            _words: words,
        }));
    }
    LOAD.with(|l| *l = head);
    let live = crate::memory::heap::get_used_memory();
    // A working set of 64 blocks, one replaced each step.
    let mut slots = [None; 64];
    let start = crate::time::uptime_us();
    for i in 0..TIMED_OPS {
        let slot = &mut slots[(i * 7) % 64];
        if let Some(p) = slot.take() {
            let _ = crate::memory::heap::kfree(p);
        }
        *slot = kmalloc(16 + (i % 16) * 24);
    }
    let us = crate::time::uptime_us() - start;
    for p in slots.into_iter().flatten() {
        let _ = crate::memory::heap::kfree(p);
    }
    let on = if crate::memory::call_sites::enabled() {
        "on"
    } else {
        "off"
    };
    kinfo!("kleak-load: {TIMED_OPS} kmalloc/kfree pairs in {us} us (call sites {on})");
    kinfo!("kleak-load: ready, {live} bytes live in the kernel heap");
}
