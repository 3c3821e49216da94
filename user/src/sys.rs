//! One safe wrapper per system call of [`sysabi::nr`].
//!
//! Every wrapper passes only pointers to memory it borrows for the call, so
//! the kernel writes nothing the program did not hand over; results come
//! back as `Result<_, Errno>` (an unknown negative value reads as
//! [`Errno::Invalid`]).

use sysabi::{AllocatedIds, Errno, ProgramMemory, decode_return, nr};

use crate::raw::{syscall0, syscall1, syscall2, syscall3, syscall4, syscall6};

/// What [`fork`] returned in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// This is the new process.
    Child,
    /// This is the old process; the child's pid.
    Parent(u64),
}

/// `s` as the (address, length) pair the kernel reads it from.
fn buf<T>(s: &[T]) -> (u64, u64) {
    (s.as_ptr() as u64, s.len() as u64)
}

/// `s` as the (address, length) pair the kernel writes it through.
fn buf_mut<T>(s: &mut [T]) -> (u64, u64) {
    (s.as_mut_ptr() as u64, s.len() as u64)
}

/// A count answered in `rax`.
fn count(ret: i64) -> Result<usize, Errno> {
    decode_return(ret).map(|n| n as usize)
}

/// Ends the process with `code`; never returns.
pub fn exit(code: i64) -> ! {
    // SAFETY: `exit` takes no pointer.
    unsafe { syscall1(nr::EXIT, code as u64) };
    // The kernel never resumes an exited process; should it, give the CPU
    // away for good rather than run on.
    loop {
        let _ = yield_now();
    }
}

/// This process's id.
pub fn getpid() -> Result<u64, Errno> {
    // SAFETY: `getpid` takes no pointer.
    decode_return(unsafe { syscall0(nr::GETPID) })
}

/// Gives the CPU to the next runnable process.
pub fn yield_now() -> Result<(), Errno> {
    // SAFETY: `yield` takes no pointer.
    decode_return(unsafe { syscall0(nr::YIELD) }).map(drop)
}

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) -> Result<(), Errno> {
    // SAFETY: `sleep` takes no pointer.
    decode_return(unsafe { syscall1(nr::SLEEP, ms) }).map(drop)
}

/// Sleeps until the process is killed.
pub fn sleep_forever() -> ! {
    loop {
        let _ = sleep_ms(1000);
    }
}

/// Writes `bytes` (at most [`sysabi::MAX_WRITE_LEN`]) to the kernel log;
/// answers how many were taken.
pub fn write(bytes: &[u8]) -> Result<usize, Errno> {
    let (ptr, len) = buf(bytes);
    // SAFETY: the kernel reads `bytes`, which is borrowed for the call.
    count(unsafe { syscall2(nr::WRITE, ptr, len) })
}

/// Writes `text` to the kernel log.
pub fn print(text: &str) -> Result<usize, Errno> {
    write(text.as_bytes())
}

/// Starts the built-in program `name`; answers its pid.
pub fn spawn(name: &str) -> Result<u64, Errno> {
    let (ptr, len) = buf(name.as_bytes());
    // SAFETY: the kernel reads `name`, which is borrowed for the call.
    decode_return(unsafe { syscall2(nr::SPAWN, ptr, len) })
}

/// Duplicates this process, copy-on-write.
pub fn fork() -> Result<Fork, Errno> {
    // SAFETY: `fork` takes no pointer; the child resumes here with a copy of
    // this address space.
    let pid = decode_return(unsafe { syscall0(nr::FORK) })?;
    Ok(if pid == 0 {
        Fork::Child
    } else {
        Fork::Parent(pid)
    })
}

/// Maps `len` bytes; answers the address.
///
/// Safe because the only mapping it may replace is one at `addr` asked for
/// with [`sysabi::map::FIXED`], and that flag is refused here: a fixed
/// mapping can replace memory the program uses, so it goes through
/// [`mmap_fixed`].
pub fn mmap(addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, Errno> {
    if flags & sysabi::map::FIXED != 0 {
        return Err(Errno::Invalid);
    }
    // SAFETY: without `MAP_FIXED` the kernel maps only where nothing is.
    decode_return(unsafe { syscall6(nr::MMAP, addr, len, prot, flags, u64::MAX, 0) })
}

/// Maps `len` bytes exactly at `addr`, replacing whatever was there.
///
/// # Safety
///
/// Nothing the program still uses may lie in `addr..addr + len`.
pub unsafe fn mmap_fixed(addr: u64, len: u64, prot: u64, flags: u64) -> Result<u64, Errno> {
    let flags = flags | sysabi::map::FIXED;
    // SAFETY: the caller vouches for the range.
    decode_return(unsafe { syscall6(nr::MMAP, addr, len, prot, flags, u64::MAX, 0) })
}

/// Maps `len` zero-filled, private, readable and writable bytes; answers
/// the address.
pub fn mmap_anonymous(len: u64) -> Result<u64, Errno> {
    use sysabi::{map, prot};
    mmap(
        0,
        len,
        prot::READ | prot::WRITE,
        map::PRIVATE | map::ANONYMOUS,
    )
}

/// Unmaps `addr..addr + len`.
///
/// # Safety
///
/// Nothing the program still uses may lie in the range: no reference into
/// it may be used afterwards.
pub unsafe fn munmap(addr: u64, len: u64) -> Result<(), Errno> {
    // SAFETY: the caller vouches for the range.
    decode_return(unsafe { syscall2(nr::MUNMAP, addr, len) }).map(drop)
}

/// Makes a heap of `heap_size` and/or a shed of `shed_size` bytes for
/// `pid` ([`sysabi::ALL_OR_SELF`]: this process); an id of -1 lets the
/// kernel choose.
pub fn allocate_memory(
    pid: i64,
    heap_size: u64,
    shed_size: u64,
    heap_id: i64,
    shed_id: i64,
) -> Result<AllocatedIds, Errno> {
    let mut ids = AllocatedIds {
        heap_id: -1,
        shed_id: -1,
    };
    let out = &raw mut ids;
    // SAFETY: the kernel writes one `AllocatedIds` to `out`, a local that
    // lives across the call.
    let ret = unsafe {
        syscall6(
            nr::ALLOCATE_MEMORY,
            pid as u64,
            heap_size,
            shed_size,
            heap_id as u64,
            shed_id as u64,
            out as u64,
        )
    };
    decode_return(ret).map(|_| ids)
}

/// Allocates `size` bytes tagged `key` in heap `heap_id`; answers the
/// block's address (an address in the heap, read and written through
/// [`heap_read`] and [`heap_write`]).
pub fn heap_alloc(heap_id: i64, size: u64, key: u64) -> Result<u64, Errno> {
    // SAFETY: `heap_alloc` takes no pointer into this program's memory.
    decode_return(unsafe { syscall3(nr::HEAP_ALLOC, heap_id as u64, size, key) })
}

/// Frees the block at `addr` of heap `heap_id`.
pub fn heap_free(heap_id: i64, addr: u64) -> Result<(), Errno> {
    // SAFETY: `heap_free` takes no pointer into this program's memory.
    decode_return(unsafe { syscall2(nr::HEAP_FREE, heap_id as u64, addr) }).map(drop)
}

/// Copies `src` into the block at `addr` of heap `heap_id`; answers the
/// bytes written.
pub fn heap_write(heap_id: i64, addr: u64, src: &[u8]) -> Result<usize, Errno> {
    let (ptr, len) = buf(src);
    // SAFETY: the kernel reads `src`, borrowed for the call.
    count(unsafe { syscall4(nr::HEAP_WRITE, heap_id as u64, addr, ptr, len) })
}

/// Copies from the block at `addr` of heap `heap_id` into `dst`; answers the
/// bytes read.
pub fn heap_read(heap_id: i64, addr: u64, dst: &mut [u8]) -> Result<usize, Errno> {
    let (ptr, len) = buf_mut(dst);
    // SAFETY: the kernel writes at most `dst.len()` bytes to `dst`, borrowed
    // mutably for the call.
    count(unsafe { syscall4(nr::HEAP_READ, heap_id as u64, addr, ptr, len) })
}

/// Copies `src` into shed `shed_id` at `offset`; answers the bytes written.
pub fn shed_write(shed_id: i64, offset: u64, src: &[u8]) -> Result<usize, Errno> {
    let (ptr, len) = buf(src);
    // SAFETY: the kernel reads `src`, borrowed for the call.
    count(unsafe { syscall4(nr::SHED_WRITE, shed_id as u64, offset, ptr, len) })
}

/// Drops every heap and shed of `pid` ([`sysabi::ALL_OR_SELF`]: this
/// process).
///
/// Sheds are mapped into the program: it must not use one afterwards.
pub fn free_memory(pid: i64) -> Result<(), Errno> {
    // SAFETY: `free_memory` takes no pointer.
    decode_return(unsafe { syscall1(nr::FREE_MEMORY, pid as u64) }).map(drop)
}

/// Fills `out` with the memory totals of `pid` (or of every program and the
/// kernel for [`sysabi::ALL_OR_SELF`]); answers how many rows there are.
pub fn check_memory(pid: i64, out: &mut [ProgramMemory]) -> Result<usize, Errno> {
    let (ptr, len) = buf_mut(out);
    // SAFETY: the kernel writes at most `out.len()` rows to `out`, borrowed
    // mutably for the call.
    count(unsafe { syscall3(nr::CHECK_MEMORY, pid as u64, ptr, len) })
}

/// Names this process `name` (at most [`sysabi::MAX_NAME_LEN`] bytes).
pub fn register_program_name(name: &str) -> Result<(), Errno> {
    let (ptr, len) = buf(name.as_bytes());
    // SAFETY: the kernel reads `name`, borrowed for the call.
    decode_return(unsafe { syscall2(nr::REGISTER_PROGRAM_NAME, ptr, len) }).map(drop)
}

/// Copies the name of `pid` into `buf`; answers its length.
pub fn get_program_name(pid: i64, buf: &mut [u8]) -> Result<usize, Errno> {
    let (ptr, len) = buf_mut(buf);
    // SAFETY: the kernel writes at most `buf.len()` bytes to `buf`, borrowed
    // mutably for the call.
    count(unsafe { syscall3(nr::GET_PROGRAM_NAME, pid as u64, ptr, len) })
}

/// Sets the kernel's log level ([`sysabi::log_level`]).
pub fn set_log_level(level: u64) -> Result<(), Errno> {
    // SAFETY: `set_log_level` takes no pointer.
    decode_return(unsafe { syscall1(nr::SET_LOG_LEVEL, level) }).map(drop)
}

/// Waits for child `pid` (-1: any child) to end; answers its exit code
/// ([`sysabi::KILLED_EXIT_CODE`] if the kernel killed it).
///
/// An exit code equal to a negative errno cannot be told from that error:
/// the ABI returns both in `rax`.
pub fn wait(pid: i64) -> Result<i64, Errno> {
    // SAFETY: `wait` takes no pointer.
    let ret = unsafe { syscall1(nr::WAIT, pid as u64) };
    match Errno::from_return(ret) {
        Some(errno) => Err(errno),
        None => Ok(ret),
    }
}

/// Microseconds since boot.
pub fn uptime() -> Result<u64, Errno> {
    // SAFETY: `uptime` takes no pointer.
    decode_return(unsafe { syscall0(nr::UPTIME) })
}
