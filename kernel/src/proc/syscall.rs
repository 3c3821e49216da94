//! System calls from ring 3 (`int 0x80`, see the `sysabi` crate for the
//! convention). Every pointer is checked against the caller's VMAs and
//! copied through the kernel's own mapping of its frames, so a bad one is
//! answered with `EFAULT` and never faults the kernel.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use probe_proto::ExitReason;
use probe_proto::names::EscapeControls;
use sysabi::{AllocatedIds, Errno, MAX_NAME_LEN, MAX_WRITE_LEN, ProgramMemory, map, nr, prot};

use crate::arch::x86_64::trap::TrapFrame;
use crate::mm::vma::VmFlags;
use crate::time;

use super::{TABLE, heaps, sched};

/// Longest sleep, so a sleeping process still shows up as alive.
const MAX_SLEEP_MS: u64 = 3_600_000;
/// Bytes moved per step of a heap or shed copy.
const CHUNK: usize = 512;

/// Runs the system call in `frame` and puts its result in `rax`.
pub fn dispatch(frame: &mut TrapFrame) {
    let args = [
        frame.rdi, frame.rsi, frame.rdx, frame.r10, frame.r8, frame.r9,
    ];
    let result = call(frame, frame.rax, args);
    if let Err(e) = result {
        let (pid, level) = TABLE.with(|t| {
            let p = t.current();
            (p.pid, p.log_level)
        });
        if level >= 3 {
            kdebug!("pid {pid}: syscall {} failed: {}", frame.rax, e.name());
        }
    }
    frame.rax = match result {
        Ok(v) => v,
        Err(e) => e.as_return() as u64,
    };
}

fn pid_arg(arg: u64) -> Result<u32, Errno> {
    let pid = arg as i64;
    if pid == sysabi::ALL_OR_SELF {
        return Ok(super::current_pid());
    }
    u32::try_from(pid).map_err(|_| Errno::NoProcess)
}

fn id_arg(arg: u64) -> Result<Option<u32>, Errno> {
    match arg as i64 {
        -1 => Ok(None),
        id if (0..=i64::from(heaps::MAX_ID)).contains(&id) => Ok(Some(id as u32)),
        _ => Err(Errno::Invalid),
    }
}

/// Only the caller itself (the API's `pid` is for kernel callers).
fn own_pid(arg: u64) -> Result<u32, Errno> {
    let pid = pid_arg(arg)?;
    if pid != super::current_pid() {
        return Err(Errno::Perm);
    }
    Ok(pid)
}

/// Runs `f` on the caller's memory.
fn with_mm<R>(
    f: impl FnOnce(u32, &mut super::mm_struct::MmStruct, &mut heaps::ProcMemory) -> Result<R, Errno>,
) -> Result<R, Errno> {
    TABLE.with(|t| {
        let p = t.current();
        let pid = p.pid;
        let mm = p.mm.as_mut().ok_or(Errno::Invalid)?;
        f(pid, mm, &mut p.memory)
    })
}

fn copy_in(addr: u64, out: &mut [u8]) -> Result<(), Errno> {
    with_mm(|_, mm, _| mm.copy_from_user(addr, out))
}

fn copy_out(addr: u64, data: &[u8]) -> Result<(), Errno> {
    with_mm(|_, mm, _| mm.copy_to_user(addr, data))
}

fn user_str(addr: u64, len: u64, buf: &mut [u8]) -> Result<&str, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::Invalid)?;
    if len == 0 || len > buf.len() {
        return Err(Errno::Invalid);
    }
    copy_in(addr, &mut buf[..len])?;
    core::str::from_utf8(&buf[..len]).map_err(|_| Errno::Invalid)
}

fn call(frame: &mut TrapFrame, number: u64, a: [u64; 6]) -> Result<u64, Errno> {
    match number {
        nr::EXIT => super::exit_current(ExitReason::Exited(a[0] as i64)),
        nr::GETPID => Ok(u64::from(super::current_pid())),
        nr::YIELD => {
            sched::schedule();
            Ok(0)
        }
        nr::SLEEP => {
            sched::sleep_ms(a[0].min(MAX_SLEEP_MS));
            Ok(0)
        }
        nr::WRITE => write(a[0], a[1]),
        nr::SPAWN => {
            let mut buf = [0; MAX_NAME_LEN];
            let name = user_str(a[0], a[1], &mut buf)?;
            super::spawn(name, super::current_pid()).map(u64::from)
        }
        nr::FORK => super::fork(frame).map(u64::from),
        nr::MMAP => mmap(a),
        nr::MUNMAP => with_mm(|_, mm, _| mm.munmap(a[0], a[1])).map(|()| 0),
        nr::ALLOCATE_MEMORY => allocate_memory(a),
        nr::HEAP_ALLOC => {
            let id = id_arg(a[0])?.ok_or(Errno::Invalid)?;
            with_mm(|pid, mm, mem| mem.heap_alloc(mm, pid, id, a[1], a[2], frame.rip))
        }
        nr::HEAP_FREE => {
            let id = id_arg(a[0])?.ok_or(Errno::Invalid)?;
            with_mm(|pid, mm, mem| mem.heap_free(mm, pid, id, a[1], frame.rip)).map(|()| 0)
        }
        nr::HEAP_WRITE => heap_copy(a, true),
        nr::HEAP_READ => heap_copy(a, false),
        nr::SHED_WRITE => shed_write(a),
        nr::FREE_MEMORY => {
            let pid = own_pid(a[0])?;
            super::free_memory(pid).map(|leaks| leaks.blocks)
        }
        nr::CHECK_MEMORY => check_memory(a),
        nr::REGISTER_PROGRAM_NAME => {
            let mut buf = [0; MAX_NAME_LEN];
            let name = user_str(a[0], a[1], &mut buf)?;
            super::register_program_name(super::current_pid(), name).map(|()| 0)
        }
        nr::GET_PROGRAM_NAME => {
            let name = super::get_program_name(pid_arg(a[0])?)?;
            let bytes = name.as_str().as_bytes();
            if (a[2] as usize) < bytes.len() {
                return Err(Errno::Range);
            }
            copy_out(a[1], bytes)?;
            Ok(bytes.len() as u64)
        }
        nr::SET_LOG_LEVEL => super::set_log_level(super::current_pid(), a[0]).map(|()| 0),
        nr::WAIT => super::wait(a[0] as i64).map(|(_, code)| code as u64),
        nr::UPTIME => Ok(time::uptime_us()),
        _ => Err(Errno::NoSys),
    }
}

fn write(addr: u64, len: u64) -> Result<u64, Errno> {
    let n = usize::try_from(len).map_err(|_| Errno::Invalid)?;
    if n > MAX_WRITE_LEN {
        return Err(Errno::Invalid);
    }
    let mut buf = [0u8; MAX_WRITE_LEN];
    copy_in(addr, &mut buf[..n])?;
    let text = match core::str::from_utf8(&buf[..n]) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&buf[..e.valid_up_to()]).unwrap_or(""),
    };
    let (pid, name) = TABLE.with(|t| {
        let p = t.current();
        (p.pid, p.name)
    });
    // A program's bytes are shown, never obeyed: no escape sequence of it
    // reaches a terminal showing the log.
    for line in text.lines().filter(|l| !l.is_empty()) {
        kinfo!(
            "[{}:{pid}] {}",
            EscapeControls(name.as_str()),
            EscapeControls(line)
        );
    }
    Ok(len)
}

fn mmap(a: [u64; 6]) -> Result<u64, Errno> {
    let [addr, len, protection, flags, fd, offset] = a;
    if protection & !(prot::READ | prot::WRITE | prot::EXEC) != 0 {
        return Err(Errno::Invalid);
    }
    if protection & prot::WRITE != 0 && protection & prot::EXEC != 0 {
        // W^X holds in user space too.
        return Err(Errno::Perm);
    }
    let known = map::SHARED | map::PRIVATE | map::FIXED | map::ANONYMOUS;
    let sharing = flags & (map::SHARED | map::PRIVATE);
    if flags & !known != 0 || sharing == 0 || sharing == map::SHARED | map::PRIVATE {
        return Err(Errno::Invalid);
    }
    if flags & map::ANONYMOUS == 0 || fd as i64 != -1 {
        // There is no file system to map from.
        return Err(Errno::BadFd);
    }
    if offset != 0 {
        return Err(Errno::Invalid);
    }
    let mut vm = VmFlags::empty();
    for (bit, flag) in [
        (prot::READ, VmFlags::READ),
        (prot::WRITE, VmFlags::WRITE),
        (prot::EXEC, VmFlags::EXEC),
    ] {
        if protection & bit != 0 {
            vm |= flag;
        }
    }
    if flags & map::SHARED != 0 {
        vm |= VmFlags::SHARED;
    }
    with_mm(|_, mm, _| mm.mmap(addr, len, vm, flags & map::FIXED != 0))
}

fn allocate_memory(a: [u64; 6]) -> Result<u64, Errno> {
    let pid = own_pid(a[0])?;
    let (heap_id, shed_id) = (id_arg(a[3])?, id_arg(a[4])?);
    let out = a[5];
    // The answer's place is checked before anything is made.
    let none = ids_bytes(AllocatedIds {
        heap_id: -1,
        shed_id: -1,
    });
    copy_out(out, &none)?;
    let (heap, shed) = super::allocate_memory(pid, a[1], a[2], heap_id, shed_id)?;
    let ids = AllocatedIds {
        heap_id: heap.map_or(-1, i64::from),
        shed_id: shed.map_or(-1, i64::from),
    };
    copy_out(out, &ids_bytes(ids))?;
    Ok(0)
}

fn ids_bytes(ids: AllocatedIds) -> [u8; 16] {
    let mut b = [0; 16];
    b[..8].copy_from_slice(&ids.heap_id.to_ne_bytes());
    b[8..].copy_from_slice(&ids.shed_id.to_ne_bytes());
    b
}

/// `heap_write(id, addr, src, len)` or `heap_read(id, addr, dst, len)`.
fn heap_copy(a: [u64; 6], write: bool) -> Result<u64, Errno> {
    let id = id_arg(a[0])?.ok_or(Errno::Invalid)?;
    let (block, user, len) = (a[1], a[2], a[3]);
    with_mm(|_, mm, mem| {
        mem.check_block(mm, id, block, len)?;
        let mut buf = [0u8; CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            let (from, to) = if write {
                (user + done, block + done)
            } else {
                (block + done, user + done)
            };
            mm.copy_from_user(from, &mut buf[..n])?;
            mm.copy_to_user(to, &buf[..n])?;
            done += n as u64;
        }
        Ok(len)
    })
}

fn shed_write(a: [u64; 6]) -> Result<u64, Errno> {
    let id = id_arg(a[0])?.ok_or(Errno::Invalid)?;
    let (offset, src, len) = (a[1], a[2], a[3]);
    with_mm(|_, mm, mem| {
        let shed = mem.shed(id)?;
        if offset.checked_add(len).is_none_or(|end| end > shed.size) {
            return Err(Errno::Invalid);
        }
        let mut buf = [0u8; CHUNK];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(CHUNK as u64) as usize;
            mm.copy_from_user(src + done, &mut buf[..n])?;
            heaps::shed_write(mm, shed, offset + done, &buf[..n])?;
            done += n as u64;
        }
        Ok(len)
    })
}

fn check_memory(a: [u64; 6]) -> Result<u64, Errno> {
    let (pid, out, cap) = (a[0] as i64, a[1], a[2]);
    let rows: Vec<ProgramMemory> = super::check_memory(pid)?;
    let size = size_of::<ProgramMemory>();
    let fit = rows.len().min(usize::try_from(cap).unwrap_or(usize::MAX));
    let mut bytes = Vec::with_capacity(fit * size);
    for row in &rows[..fit] {
        for word in [row.pid, row.nr_heaps, row.nr_sheds, row.reserved] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        for word in [
            row.total_heap_size,
            row.total_heap_used,
            row.total_heap_free,
            row.total_shed_size,
        ] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
    }
    if !bytes.is_empty() {
        copy_out(out, &bytes)?;
    }
    Ok(rows.len() as u64)
}
