//! The system-call ABI shared by the kernel and its ring-3 programs.
//!
//! # Calling convention
//!
//! A program enters the kernel with `int 0x80`: `rax` holds the call number
//! ([`nr`]), `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` the arguments in order.
//! The kernel answers in `rax`: a value `>= 0` on success, or `-errno`
//! ([`Errno`]) on failure. Every other register is preserved.
//!
//! Pointers passed in are checked against the caller's VMAs before the
//! kernel touches them; a bad one is answered with [`Errno::Fault`], never
//! with a kernel fault.
//!
//! This crate is `no_std`, has no dependencies and no `unsafe`.
#![no_std]
#![forbid(unsafe_code)]

/// The `int` vector of system calls.
pub const SYSCALL_VECTOR: u8 = 0x80;

/// System-call numbers.
pub mod nr {
    /// `exit(code) -> !`.
    pub const EXIT: u64 = 0;
    /// `getpid() -> pid`.
    pub const GETPID: u64 = 1;
    /// `yield() -> 0`: give the CPU to the next runnable process.
    pub const YIELD: u64 = 2;
    /// `sleep(ms) -> 0`.
    pub const SLEEP: u64 = 3;
    /// `write(ptr, len) -> len`: a line (or part of one) to the kernel log.
    pub const WRITE: u64 = 4;
    /// `spawn(name_ptr, name_len) -> pid`: start a built-in program by name.
    pub const SPAWN: u64 = 5;
    /// `fork() -> child pid in the parent, 0 in the child`; copy-on-write.
    pub const FORK: u64 = 6;
    /// `mmap(addr, len, prot, flags, fd, offset) -> addr`.
    pub const MMAP: u64 = 7;
    /// `munmap(addr, len) -> 0`.
    pub const MUNMAP: u64 = 8;
    /// `allocate_memory(pid, heap_size, shed_size, heap_id, shed_id, out) -> 0`:
    /// makes a heap and/or a shed; ids of -1 are chosen by the kernel; the
    /// ids made are written to `out` ([`AllocatedIds`](crate::AllocatedIds)).
    pub const ALLOCATE_MEMORY: u64 = 9;
    /// `heap_alloc(heap_id, size, key) -> addr`.
    pub const HEAP_ALLOC: u64 = 10;
    /// `heap_free(heap_id, addr) -> 0`.
    pub const HEAP_FREE: u64 = 11;
    /// `heap_write(heap_id, addr, src, len) -> len`: into an allocated block,
    /// never past its end.
    pub const HEAP_WRITE: u64 = 12;
    /// `heap_read(heap_id, addr, dst, len) -> len`: from an allocated block.
    pub const HEAP_READ: u64 = 13;
    /// `shed_write(shed_id, offset, src, len) -> len`: code or constants into a
    /// shed, which the program itself can read (and run) but not write.
    pub const SHED_WRITE: u64 = 14;
    /// `free_memory(pid) -> 0`: drop every heap and shed of `pid` (leaks are
    /// reported).
    pub const FREE_MEMORY: u64 = 15;
    /// `check_memory(pid, out, cap) -> programs`: fills up to `cap`
    /// [`ProgramMemory`](crate::ProgramMemory) rows; `pid` -1 means every
    /// program and the kernel.
    pub const CHECK_MEMORY: u64 = 16;
    /// `register_program_name(ptr, len) -> 0`.
    pub const REGISTER_PROGRAM_NAME: u64 = 17;
    /// `get_program_name(pid, buf, cap) -> len`.
    pub const GET_PROGRAM_NAME: u64 = 18;
    /// `set_log_level(level) -> 0`: 0 errors only ... 3 debug.
    pub const SET_LOG_LEVEL: u64 = 19;
    /// `wait(pid) -> exit code`: wait for a child to end; -1 for any child.
    /// A child killed by the kernel reports [`KILLED_EXIT_CODE`](crate::KILLED_EXIT_CODE).
    pub const WAIT: u64 = 20;
    /// `uptime() -> microseconds since boot`.
    pub const UPTIME: u64 = 21;
    /// Calls numbered this and above do not exist.
    pub const COUNT: u64 = 22;
}

/// Exit code reported by `wait` for a process the kernel killed.
pub const KILLED_EXIT_CODE: i64 = -139;

/// Why a system call failed; the call returns `-(errno as i64)`. Numbers
/// follow Linux so they read familiarly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Errno {
    /// Not allowed (e.g. acting on another process).
    Perm = 1,
    /// No such name or id.
    NoEnt = 2,
    /// No such process.
    NoProcess = 3,
    /// Bad file descriptor (there is no file system: `mmap` with a file).
    BadFd = 9,
    /// No child to wait for.
    NoChild = 10,
    /// Out of memory.
    NoMemory = 12,
    /// A pointer argument is not valid user memory.
    Fault = 14,
    /// The id or range is already in use.
    Exists = 17,
    /// An argument is invalid.
    Invalid = 22,
    /// Too many of something (heaps, VMAs, processes).
    TooMany = 24,
    /// Result does not fit the buffer.
    Range = 34,
    /// No such system call.
    NoSys = 38,
}

impl Errno {
    /// Every errno, for decoding.
    pub const ALL: [Errno; 12] = [
        Errno::Perm,
        Errno::NoEnt,
        Errno::NoProcess,
        Errno::BadFd,
        Errno::NoChild,
        Errno::NoMemory,
        Errno::Fault,
        Errno::Exists,
        Errno::Invalid,
        Errno::TooMany,
        Errno::Range,
        Errno::NoSys,
    ];

    /// The value a failing call returns in `rax`.
    pub const fn as_return(self) -> i64 {
        -(self as i64)
    }

    /// The errno of a negative return value.
    pub fn from_return(value: i64) -> Option<Errno> {
        Self::ALL.into_iter().find(|e| e.as_return() == value)
    }

    /// A short name, like `EFAULT`.
    pub const fn name(self) -> &'static str {
        match self {
            Errno::Perm => "EPERM",
            Errno::NoEnt => "ENOENT",
            Errno::NoProcess => "ESRCH",
            Errno::BadFd => "EBADF",
            Errno::NoChild => "ECHILD",
            Errno::NoMemory => "ENOMEM",
            Errno::Fault => "EFAULT",
            Errno::Exists => "EEXIST",
            Errno::Invalid => "EINVAL",
            Errno::TooMany => "EMFILE",
            Errno::Range => "ERANGE",
            Errno::NoSys => "ENOSYS",
        }
    }
}

/// Splits a raw return value into success or errno (an unknown negative
/// value reads as [`Errno::Invalid`]).
pub fn decode_return(value: i64) -> Result<u64, Errno> {
    if value >= 0 {
        Ok(value as u64)
    } else {
        Err(Errno::from_return(value).unwrap_or(Errno::Invalid))
    }
}

/// `mmap` protection bits.
pub mod prot {
    /// No access.
    pub const NONE: u64 = 0;
    /// Readable.
    pub const READ: u64 = 1;
    /// Writable.
    pub const WRITE: u64 = 2;
    /// Executable (never together with `WRITE`: W^X).
    pub const EXEC: u64 = 4;
}

/// `mmap` flags.
pub mod map {
    /// Shared with children after `fork` instead of copied on write.
    pub const SHARED: u64 = 0x01;
    /// Private: copy-on-write after `fork`.
    pub const PRIVATE: u64 = 0x02;
    /// Exactly at `addr`, replacing what was mapped there.
    pub const FIXED: u64 = 0x10;
    /// Not backed by a file (the only kind there is): zero-filled on demand.
    pub const ANONYMOUS: u64 = 0x20;
}

/// Log levels of `set_log_level`.
pub mod log_level {
    /// Errors only.
    pub const ERROR: u64 = 0;
    /// And warnings.
    pub const WARN: u64 = 1;
    /// And information (the default).
    pub const INFO: u64 = 2;
    /// Everything.
    pub const DEBUG: u64 = 3;
}

/// `pid` argument meaning "the calling process" (and, for `check_memory`,
/// "every program").
pub const ALL_OR_SELF: i64 = -1;

/// Ids made by `allocate_memory`; -1 where nothing was made (size 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct AllocatedIds {
    /// The heap's id, or -1.
    pub heap_id: i64,
    /// The shed's id, or -1.
    pub shed_id: i64,
}

/// One row of `check_memory`, the totals of the `checkMemory` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct ProgramMemory {
    /// Process id; 0 is the kernel.
    pub pid: u32,
    /// Heaps the program has.
    pub nr_heaps: u32,
    /// Sheds the program has.
    pub nr_sheds: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// Sum of heap sizes.
    pub total_heap_size: u64,
    /// Sum of payload bytes in use.
    pub total_heap_used: u64,
    /// Sum of `heap_size - heap_used`.
    pub total_heap_free: u64,
    /// Sum of shed sizes.
    pub total_shed_size: u64,
}

/// Longest program name, in bytes.
pub const MAX_NAME_LEN: usize = 32;

/// Largest `write` the kernel takes in one call.
pub const MAX_WRITE_LEN: usize = 512;

/// Where the user stack's top is (grows down from here).
pub const USER_STACK_TOP: u64 = 0x0000_7fff_ffff_f000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_round_trips_through_return_values() {
        for e in Errno::ALL {
            assert!(e.as_return() < 0);
            assert_eq!(Errno::from_return(e.as_return()), Some(e));
            assert_eq!(decode_return(e.as_return()), Err(e));
        }
        assert_eq!(decode_return(7), Ok(7));
        assert_eq!(decode_return(-9999), Err(Errno::Invalid));
    }

    #[test]
    fn shared_structs_have_a_fixed_layout() {
        assert_eq!(core::mem::size_of::<AllocatedIds>(), 16);
        assert_eq!(core::mem::size_of::<ProgramMemory>(), 48);
    }
}
