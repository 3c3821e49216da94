//! Throws thousands of random and hostile system calls at the kernel:
//! random and out-of-range call numbers, null, kernel-half, non-canonical,
//! unaligned, read-only and overrunning pointers, huge and overflowing
//! lengths, other processes' and nonexistent ids, mmap with bad flags, a
//! file descriptor, `PROT_WRITE | PROT_EXEC`, frees of garbage and double
//! frees, shed writes out of bounds. The kernel must answer each with an
//! errno (or a harmless success) and never fault.
//!
//! What would legitimately end the fuzzer is left out: `exit`, sleeps
//! longer than a few milliseconds, `munmap` or `mmap(MAP_FIXED)` over its
//! own image, stack or scratch buffer, `spawn` of a real program. `fork`
//! is exercised with a child that exits at once.
//!
//! At the end it prints a count per errno, then exactly
//! `fuzz: calls=N ok=A errors=B` and exits 0 (1 if its own memory was
//! changed behind its back).
#![no_std]
#![no_main]

use core::fmt::Write;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

use sysabi::{Errno, map, nr, prot};
use ulib::io::LineBuf;
use ulib::mapping::PAGE_SIZE;
use ulib::rand::Rng;
use ulib::raw::syscall6;
use ulib::sys::{self, Fork};
use ulib::{println, rt};

ulib::entry!(main);

/// Calls made in all.
const NR_CALLS: u64 = 5000;
/// Calls between two progress lines.
const REPORT_EVERY: u64 = 1000;
/// Calls between two clean-ups of the heaps and sheds the fuzzer made.
const CLEANUP_EVERY: u64 = 500;
/// Pages of the scratch buffer (followed by an unmapped page).
const SCRATCH_PAGES: u64 = 2;
/// Addresses at and above this are left alone by `munmap` and fixed
/// `mmap`: the stack lives up there.
const STACK_ZONE: u64 = 0x7f00_0000_0000;
/// Where fixed mappings and unmaps are aimed when the chosen range would
/// hit the fuzzer itself.
const FAR_ZONE: Range<u64> = 0x1000_0000_0000..0x6000_0000_0000;
/// Printable bytes handed to calls that read a buffer.
static NOISE: [u8; 64] = *b"fuzz noise: the kernel may print this; it is not an error.......";
/// A name no program has, for `spawn`.
static NO_PROGRAM: &[u8] = b"no-such-program";
/// A value in the data segment that no call may change.
static CANARY: AtomicU64 = AtomicU64::new(CANARY_VALUE);
/// The canaries' value.
const CANARY_VALUE: u64 = 0xf022_ca4a_4ee0_0001;

/// What the fuzzer knows about itself.
struct World {
    /// The program image.
    image: Range<u64>,
    /// The scratch buffer, a private mapping followed by a hole.
    scratch: Range<u64>,
    /// Its own pid.
    pid: u64,
    /// Ids of heaps and sheds it made (-1: none yet).
    heap_ids: [i64; 4],
    /// As `heap_ids`, for sheds.
    shed_ids: [i64; 4],
    /// Addresses of heap blocks it allocated (some since freed).
    blocks: [u64; 16],
    /// Where the next block address goes in `blocks`.
    next_block: usize,
}

impl World {
    /// Whether `start..start + len` (pages, saturating) touches the image,
    /// the scratch buffer or the stack zone.
    fn is_protected(&self, start: u64, len: u64) -> bool {
        let start = start & !(PAGE_SIZE - 1);
        let end = start
            .saturating_add(len.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1))
            .max(start + 1);
        let overlaps = |r: &Range<u64>| start < r.end && r.start < end;
        overlaps(&self.image)
            || overlaps(&(self.scratch.start..self.scratch.end + PAGE_SIZE))
            || overlaps(&(STACK_ZONE..u64::MAX))
    }
}

/// Argument kinds, each with its own hostile values.
#[derive(Clone, Copy)]
enum Arg {
    /// Anything at all.
    Any,
    /// A process id.
    Pid,
    /// A heap id.
    HeapId,
    /// A shed id.
    ShedId,
    /// A pointer the kernel reads.
    In,
    /// A pointer the kernel writes.
    Out,
    /// A byte count.
    Len,
    /// A size or offset.
    Size,
    /// An allocation key.
    Key,
    /// A heap block address.
    Block,
    /// A count of rows.
    Count,
}

/// A pointer argument: a third of the time one of `bad`, else one of
/// `good`.
fn pointer(rng: &mut Rng, bad: &[u64], good: &[u64]) -> u64 {
    if rng.one_in(3) {
        rng.pick(bad)
    } else {
        rng.pick(good)
    }
}

/// A hostile value of `kind`.
fn arg(rng: &mut Rng, world: &World, kind: Arg) -> u64 {
    let s = world.scratch.start;
    let text = world.image.start;
    let noise = NOISE.as_ptr() as u64;
    let random = rng.next_u64();
    let small = rng.below(100_000);
    let heap_id = world.heap_ids[rng.below(4) as usize] as u64;
    let shed_id = world.shed_ids[rng.below(4) as usize] as u64;
    let block = world.blocks[rng.below(16) as usize];
    let bad_ptrs = [
        0,
        1,
        0xfff,
        0xffff_8000_0000_0000,
        0xffff_ffff_8000_0000,
        0x0000_8000_0000_0000,
        0x0000_7fff_ffff_fff8,
        u64::MAX,
        u64::MAX - 7,
    ];
    match kind {
        Arg::Any => match rng.below(4) {
            0 => random,
            1 => rng.below(256),
            2 => rng.pick(&bad_ptrs),
            _ => rng.pick(&[0, 1, u64::MAX, i64::MAX as u64, 1 << 63, 1 << 32]),
        },
        Arg::Pid => rng.pick(&[
            u64::MAX,
            0,
            1,
            2,
            3,
            world.pid,
            world.pid + 1,
            9999,
            1 << 63,
            u64::MAX - 1,
            random,
        ]),
        Arg::HeapId => rng.pick(&[heap_id, u64::MAX, 0, 1, 7, i64::MAX as u64, 1 << 32, random]),
        Arg::ShedId => rng.pick(&[shed_id, u64::MAX, 0, 9, i64::MAX as u64, random]),
        Arg::In => pointer(
            rng,
            &bad_ptrs,
            &[
                noise,
                noise + 1,
                text,
                s,
                s + 1,
                s + PAGE_SIZE - 3,
                world.scratch.end - 1,
                world.scratch.end,
            ],
        ),
        // The image is read-only or in use: the kernel must refuse to write
        // there.
        Arg::Out => pointer(
            rng,
            &bad_ptrs,
            &[
                noise,
                text,
                s,
                s + 1,
                s + 7,
                s + PAGE_SIZE - 3,
                world.scratch.end - 1,
                world.scratch.end,
            ],
        ),
        Arg::Len => rng.pick(&[
            0,
            1,
            7,
            8,
            16,
            100,
            PAGE_SIZE,
            SCRATCH_PAGES * PAGE_SIZE,
            SCRATCH_PAGES * PAGE_SIZE + 1,
            1 << 20,
            1 << 32,
            i64::MAX as u64,
            u64::MAX,
            u64::MAX - 7,
            small % 600,
        ]),
        Arg::Size => rng.pick(&[
            0,
            1,
            16,
            100,
            4096,
            65536,
            1 << 20,
            1 << 31,
            1 << 40,
            i64::MAX as u64,
            u64::MAX,
            u64::MAX - 15,
            small,
            random,
        ]),
        Arg::Key => random % 8,
        Arg::Block => rng.pick(&[
            block,
            block.wrapping_add(8),
            block.wrapping_sub(16),
            0,
            text,
            s,
            0xffff_8000_0000_0000,
            u64::MAX,
            random,
        ]),
        Arg::Count => rng.pick(&[0, 1, 4, 1000, u64::MAX, u64::MAX / 48 + 1, 1 << 32]),
    }
}

/// A range for `munmap` or fixed `mmap` that spares the fuzzer itself.
fn map_range(rng: &mut Rng, world: &World) -> (u64, u64) {
    let far = rng.range(FAR_ZONE.start, FAR_ZONE.end) & !(PAGE_SIZE - 1);
    let random = rng.next_u64();
    let short = rng.below(1 << 24);
    let addr = rng.pick(&[
        0,
        PAGE_SIZE,
        0x1000_0000_0123,
        0xffff_8000_0000_0000,
        0x0000_8000_0000_0000,
        world.image.start,
        world.scratch.start,
        far,
        random,
    ]);
    let len = rng.pick(&[
        0,
        1,
        PAGE_SIZE - 1,
        PAGE_SIZE,
        16 * PAGE_SIZE,
        1 << 30,
        1 << 47,
        u64::MAX,
        u64::MAX - PAGE_SIZE + 1,
        short,
    ]);
    if !world.is_protected(addr, len) {
        return (addr, len);
    }
    loop {
        let addr = rng.range(FAR_ZONE.start, FAR_ZONE.end) & !(PAGE_SIZE - 1);
        let len = rng.below(1 << 30);
        if !world.is_protected(addr, len) {
            return (addr, len);
        }
    }
}

/// One call: its number and arguments, sanitised so that nothing ends the
/// fuzzer; `None` to skip it.
fn choose(rng: &mut Rng, world: &World) -> Option<(u64, [u64; 6])> {
    use Arg::*;
    let number = if rng.one_in(8) {
        // Out of range even if the kernel looked only at the low byte.
        (rng.next_u64() & !0xff) | rng.range(nr::COUNT, 0xff)
    } else {
        rng.below(nr::COUNT)
    };
    let kinds: &[Arg] = match number {
        nr::EXIT | nr::FORK => return None,
        nr::GETPID | nr::YIELD | nr::UPTIME => &[Any, Any, Any],
        nr::SLEEP => return Some((number, [rng.below(3), 0, 0, 0, 0, 0])),
        nr::WRITE => &[In, Len],
        nr::SPAWN => {
            let ptr = if rng.one_in(2) {
                NO_PROGRAM.as_ptr() as u64
            } else {
                arg(rng, world, Any)
            };
            return Some((number, [ptr, arg(rng, world, Len), 0, 0, 0, 0]));
        }
        nr::MMAP => {
            let (addr, len) = map_range(rng, world);
            let random = rng.next_u64();
            let prot = rng.pick(&[
                prot::NONE,
                prot::READ,
                prot::READ | prot::WRITE,
                prot::READ | prot::EXEC,
                prot::WRITE | prot::EXEC,
                prot::READ | prot::WRITE | prot::EXEC,
                8,
                u64::MAX,
                random,
            ]);
            let flags = rng.pick(&[
                map::PRIVATE | map::ANONYMOUS,
                map::SHARED | map::ANONYMOUS,
                map::PRIVATE,
                map::SHARED | map::PRIVATE | map::ANONYMOUS,
                0,
                map::ANONYMOUS,
                map::PRIVATE | map::ANONYMOUS | map::FIXED,
                map::SHARED | map::ANONYMOUS | map::FIXED | 0x4000,
                random & !map::FIXED,
            ]);
            let fd = rng.pick(&[u64::MAX, u64::MAX, 0, 3, random >> 32]);
            let offset = rng.pick(&[0, 0, 1, PAGE_SIZE, u64::MAX - PAGE_SIZE + 1]);
            return Some((number, [addr, len, prot, flags, fd, offset]));
        }
        nr::MUNMAP => {
            let (addr, len) = map_range(rng, world);
            return Some((number, [addr, len, 0, 0, 0, 0]));
        }
        nr::ALLOCATE_MEMORY => &[Pid, Size, Size, HeapId, ShedId, Out],
        nr::HEAP_ALLOC => &[HeapId, Size, Key],
        nr::HEAP_FREE => &[HeapId, Block],
        nr::HEAP_WRITE => &[HeapId, Block, In, Len],
        nr::HEAP_READ => &[HeapId, Block, Out, Len],
        nr::SHED_WRITE => &[ShedId, Size, In, Len],
        nr::FREE_MEMORY => &[Pid],
        nr::CHECK_MEMORY => &[Pid, Out, Count],
        nr::REGISTER_PROGRAM_NAME => &[In, Len],
        nr::GET_PROGRAM_NAME => &[Pid, Out, Len],
        nr::SET_LOG_LEVEL => {
            // Never a valid level: the fuzzer must not flood the log.
            let level = rng.pick(&[4, 5, 255, u64::MAX, 1 << 63, (1 << 32) | 2]);
            return Some((number, [level, 0, 0, 0, 0, 0]));
        }
        nr::WAIT => &[Pid],
        _ => &[Any, Any, Any, Any, Any, Any],
    };
    let mut args = [0u64; 6];
    for (value, &kind) in args.iter_mut().zip(kinds) {
        *value = arg(rng, world, kind);
    }
    // `wait` cannot block: the fuzzer has no child while it fuzzes.
    Some((number, args))
}

/// Tallies of results.
#[derive(Default)]
struct Tally {
    /// Calls made.
    calls: u64,
    /// Calls that succeeded.
    ok: u64,
    /// Calls that failed.
    errors: u64,
    /// Failures per errno, in the order of [`Errno::ALL`].
    per_errno: [u64; Errno::ALL.len()],
    /// Failures with a value that is no errno.
    unknown: u64,
    /// Out-of-range call numbers not answered with `ENOSYS`.
    nosys_mismatch: u64,
}

impl Tally {
    /// Counts one result.
    fn add(&mut self, ret: i64) {
        self.calls += 1;
        if ret >= 0 {
            self.ok += 1;
            return;
        }
        self.errors += 1;
        match Errno::ALL.iter().position(|e| e.as_return() == ret) {
            Some(i) => self.per_errno[i] += 1,
            None => self.unknown += 1,
        }
    }
}

fn main() -> i64 {
    let _ = sys::register_program_name("fuzzer");
    let mut stack_canary = [CANARY_VALUE; 4];
    let stack_canary = core::hint::black_box(&mut stack_canary);
    let scratch = match sys::mmap_anonymous((SCRATCH_PAGES + 1) * PAGE_SIZE) {
        Ok(addr) => addr,
        Err(e) => {
            println!("fuzz: FAIL scratch mmap: {}", e.name());
            return 1;
        }
    };
    let scratch_end = scratch + SCRATCH_PAGES * PAGE_SIZE;
    // SAFETY: the page after the scratch buffer was mapped just now for
    // this purpose; nothing refers to it.
    if unsafe { sys::munmap(scratch_end, PAGE_SIZE) }.is_err() {
        println!("fuzz: FAIL could not open the hole after the scratch buffer");
        return 1;
    }
    let mut world = World {
        image: rt::image_range(),
        scratch: scratch..scratch_end,
        pid: sys::getpid().unwrap_or(0),
        heap_ids: [-1; 4],
        shed_ids: [-1; 4],
        blocks: [0; 16],
        next_block: 0,
    };
    let mut rng = Rng::from_entropy();
    let mut tally = Tally::default();
    refill_ids(&mut world, &mut tally);
    println!(
        "fuzz: start pid={} image={:#x}..{:#x} scratch={:#x}..{:#x}",
        world.pid, world.image.start, world.image.end, world.scratch.start, world.scratch.end
    );
    let mut made = 0u64;
    while made < NR_CALLS {
        if rng.one_in(500) {
            // fork with a child that leaves at once.
            made += 1;
            match sys::fork() {
                Ok(Fork::Child) => sys::exit(0),
                Ok(Fork::Parent(child)) => {
                    tally.add(0);
                    let _ = sys::wait(child as i64);
                }
                Err(e) => tally.add(e.as_return()),
            }
            continue;
        }
        let Some((number, a)) = choose(&mut rng, &world) else {
            continue;
        };
        made += 1;
        // SAFETY: `choose` sanitised the call: no exit, no long sleep, no
        // spawn of a real program, no unmap or fixed map over the image,
        // the stack or the scratch buffer; every pointer the kernel may
        // write through is the scratch buffer, the image (which the kernel
        // must refuse) or not user memory at all.
        let ret = unsafe { syscall6(number, a[0], a[1], a[2], a[3], a[4], a[5]) };
        tally.add(ret);
        if number >= nr::COUNT && ret != Errno::NoSys.as_return() {
            tally.nosys_mismatch += 1;
        }
        if ret >= 0 {
            match number {
                nr::MMAP if !world.is_protected(ret as u64, a[1]) => {
                    // SAFETY: the kernel just mapped this range for the
                    // fuzzer, which never uses it.
                    let _ = unsafe { sys::munmap(ret as u64, a[1]) };
                }
                nr::HEAP_ALLOC => {
                    world.blocks[world.next_block] = ret as u64;
                    world.next_block = (world.next_block + 1) % world.blocks.len();
                }
                _ => {}
            }
        }
        if made.is_multiple_of(CLEANUP_EVERY) {
            refill_ids(&mut world, &mut tally);
        }
        if made.is_multiple_of(REPORT_EVERY) {
            println!(
                "fuzz: progress calls={} ok={} errors={}",
                tally.calls, tally.ok, tally.errors
            );
        }
    }
    let _ = sys::free_memory(sysabi::ALL_OR_SELF);
    let _ = sys::register_program_name("fuzzer");

    let mut line = LineBuf::new();
    line.push(b"fuzz: errnos");
    // `LineBuf` never fails.
    for (e, &count) in Errno::ALL.iter().zip(&tally.per_errno) {
        if count > 0 {
            let _ = write!(line, " {}={count}", e.name());
        }
    }
    let _ = write!(
        line,
        " unknown={} nosys_mismatch={}",
        tally.unknown, tally.nosys_mismatch
    );
    line.flush(true);
    let canaries_ok = CANARY.load(Ordering::SeqCst) == CANARY_VALUE
        && stack_canary.iter().all(|&c| c == CANARY_VALUE);
    if !canaries_ok {
        println!("fuzz: FAIL a canary changed: the kernel wrote where it must not");
    }
    println!(
        "fuzz: calls={} ok={} errors={}",
        tally.calls, tally.ok, tally.errors
    );
    if canaries_ok { 0 } else { 1 }
}

/// Drops every heap and shed the fuzzer made, then makes a fresh heap and
/// shed with known ids, so later calls also hit valid ids and blocks.
fn refill_ids(world: &mut World, tally: &mut Tally) {
    // Blocks it still knows of are freed first, so that the kernel reports
    // as leaks only what the fuzzing itself left.
    for &addr in world.blocks.iter().filter(|&&addr| addr != 0) {
        for &id in &world.heap_ids {
            if id >= 0 && sys::heap_free(id, addr).is_ok() {
                break;
            }
        }
    }
    tally.add(match sys::free_memory(sysabi::ALL_OR_SELF) {
        Ok(()) => 0,
        Err(e) => e.as_return(),
    });
    world.blocks = [0; 16];
    match sys::allocate_memory(sysabi::ALL_OR_SELF, 16 * 1024, 4096, -1, -1) {
        Ok(ids) => {
            tally.add(0);
            world.heap_ids = [ids.heap_id; 4];
            world.shed_ids = [ids.shed_id; 4];
            world.heap_ids[3] = -1;
            world.shed_ids[3] = -1;
            for slot in 0..4 {
                if let Ok(addr) = sys::heap_alloc(ids.heap_id, 32 + 32 * slot, slot) {
                    world.blocks[slot as usize] = addr;
                }
            }
        }
        Err(e) => tally.add(e.as_return()),
    }
}
