//! A debugging session: the `gdbstub` state machine, the traps that enter
//! it, and the stop loop that drives it while the kernel is stopped.
//!
//! The machine is kept between stops. While the kernel runs it is either
//! absent (no debugger) or `Running` (gdb waits for a stop). A `$` on COM2
//! with no session starts one and stops the kernel; Ctrl-C stops a running
//! session; `int3`, #DB and fatal faults stop it when a debugger is
//! attached and are left to the kernel's own handling otherwise. A session
//! ends on detach or kill, when a new gdb connects (a `$` while running),
//! or after the link has been silent for the idle timeout while stopped
//! (gdb was killed): breakpoints are lifted and the kernel runs on.
//!
//! While stopped, received bytes pass through [`Intercept`] first: it
//! hands gdbstub its packets and keeps those the stub answers itself
//! (`x`, the binary memory read gdbstub 0.7 lacks, in gdb's or LLDB's
//! form; `m`; LLDB's `jThreadsInfo`; `target.xml` for LLDB, which must not
//! get one; and `qkernel.blast`, the link benchmark), and marks
//! `qSupported` so its reply also advertises `binary-upload+`.

use core::sync::atomic::{AtomicU64, Ordering};

use gdbstub::common::{Signal, Tid};
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStubBuilder, MultiThreadStopReason};
use spin::Mutex;

use super::conn::{self, Com2, Intercept, Reply, Rx, Words};
use super::debugreg::{DebugRegs, Kind};
use super::lldb;
use super::note;
use super::target::Kernel;
use crate::arch::x86_64::trap::{RFLAGS_RF, RFLAGS_TF, TrapFrame};
use crate::arch::x86_64::{cpu, pit};
use crate::time::TIMER_HZ;

type Machine = GdbStubStateMachine<'static, Kernel, Com2>;
type StopReason = MultiThreadStopReason<u64>;

/// Bytes of the packet buffer, advertised to gdb as `PacketSize`: one
/// `m` request reads up to half of it (the reply is hex), one `x` request
/// all of it.
const PACKET_BYTES: usize = conn::PACKET_BYTES;
/// Most bytes of memory one `x` reply carries.
const READ_BINARY_MAX: usize = PACKET_BYTES;
/// Most bytes of memory one `m` reply carries (two hex digits each).
const READ_HEX_MAX: usize = PACKET_BYTES / 2;
/// The longest `qSupported` packet kept, to replay when a session's
/// machine is made afresh after a malformed packet.
const SUPPORTED_KEPT: usize = 512;
/// Bytes of memory copied per page-table check while answering `x`.
const READ_CHUNK: usize = 1024;
/// The interrupt request gdb sends while the kernel runs.
const CTRL_C: u8 = 0x03;
/// Most filler bytes one `qkernel.blast` reply carries: the benchmark's
/// replies are 16 KiB; a larger one only holds the stopped kernel.
const BLAST_MAX: u64 = 1 << 20;

/// The buffer the state machine parses packets in; see [`new_machine`].
static mut PACKET_BUFFER: [u8; PACKET_BYTES] = [0; PACKET_BYTES];

struct Session {
    machine: Option<Machine>,
    target: Kernel,
    rx: Intercept,
    /// The session's `qSupported` packet, whole: what gdb and gdbstub
    /// agreed on, replayed into a machine made afresh.
    supported: [u8; SUPPORTED_KEPT],
    supported_len: usize,
    /// The form of `x` replies this client reads.
    reads: BinaryReads,
}

/// The form of the client's binary memory reads (`x`). gdb (16 and later)
/// expects `b` before the data, so that an empty read differs from an
/// unsupported packet; LLDB's `x`, older than gdb's, has no prefix, and
/// LLDB 14 reading gdb's form sees every byte one place late. LLDB probes
/// with `x0,0` and takes `OK` to mean its own form (and `b` or an error to
/// mean gdb's); gdb never asks for 0 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinaryReads {
    /// gdb's form, until a probe asks for LLDB's.
    Gdb,
    /// The client's `qSupported` announced `binary-upload+`: it knows
    /// gdb's form, and its probe is answered in it.
    Announced,
    /// The client probed and was answered `OK`: no prefix.
    Lldb,
}

impl BinaryReads {
    /// What a client's `qSupported` packet says it reads.
    fn from_supported(packet: &[u8]) -> Self {
        let announced = packet
            .split(|&b| matches!(b, b':' | b';' | b'#'))
            .any(|feature| feature == b"binary-upload+");
        if announced {
            Self::Announced
        } else {
            Self::Gdb
        }
    }
}

/// Taken only from trap context (interrupts off) and only with `try_lock`:
/// a trap inside the stub itself finds it held and falls back to the
/// kernel's own handling instead of deadlocking.
static SESSION: Mutex<Session> = Mutex::new(Session {
    machine: None,
    target: Kernel::new(),
    rx: Intercept::new(),
    supported: [0; SUPPORTED_KEPT],
    supported_len: 0,
    reads: BinaryReads::Gdb,
});

/// Silence (ms) after which a stopped session is given up; 0 = never.
static IDLE_TIMEOUT_MS: AtomicU64 = AtomicU64::new(30_000);

/// Sets how long the stopped kernel waits for a silent debugger.
pub fn set_idle_timeout_s(seconds: u32) {
    IDLE_TIMEOUT_MS.store(u64::from(seconds) * 1000, Ordering::Relaxed);
}

/// A fresh state machine for a new session, in the idle (stopped) state.
fn new_machine(session: &mut Session) -> Option<Machine> {
    debug_assert!(session.machine.is_none());
    let buffer = &raw mut PACKET_BUFFER;
    // SAFETY: the buffer is only ever borrowed by the one state machine in
    // SESSION. This runs with SESSION locked and its machine gone (dropped
    // at the end of the previous session, or never made), so the reference
    // created here is the only live one.
    let buffer: &'static mut [u8] = unsafe { &mut *buffer };
    let stub = GdbStubBuilder::new(Com2::new())
        .with_packet_buffer(buffer)
        .build()
        .ok()?;
    match stub.run_state_machine(&mut session.target) {
        Ok(machine) => Some(machine),
        Err(e) => {
            note(format_args!("cannot start a session: {e:?}"));
            None
        }
    }
}

/// Stores the machine a step produced; an error ends the session.
fn advance<E: core::fmt::Debug>(session: &mut Session, step: Result<Machine, E>) {
    match step {
        Ok(machine) => session.machine = Some(machine),
        Err(e) => {
            note(format_args!("session failed: {e:?}"));
            end(session);
        }
    }
}

/// Ends the session: what is queued for gdb sent, breakpoints lifted,
/// stepping off, machine dropped.
fn end(session: &mut Session) {
    if let Some(m) = session.machine.as_mut() {
        conn_of(m).send();
    }
    session.machine = None;
    session.rx = Intercept::new();
    session.supported_len = 0;
    session.reads = BinaryReads::Gdb;
    session.target.forget_session();
}

/// The machine's connection, whatever its state.
fn conn_of(machine: &mut Machine) -> &mut Com2 {
    match machine {
        GdbStubStateMachine::Idle(m) => m.borrow_conn(),
        GdbStubStateMachine::Running(m) => m.borrow_conn(),
        GdbStubStateMachine::CtrlCInterrupt(m) => m.borrow_conn(),
        GdbStubStateMachine::Disconnected(m) => m.borrow_conn(),
    }
}

/// Takes one byte received while stopped: gdbstub's packets go to the
/// machine, the stub's own are answered here.
fn receive(session: &mut Session, byte: u8) {
    let Session {
        machine,
        target,
        rx,
        supported,
        supported_len,
        reads,
    } = session;
    let ok = match rx.accept(byte) {
        Rx::Hold => true,
        Rx::Pass(bytes) => feed(machine, target, bytes),
        Rx::PassSupported(bytes) => {
            if let Some(kept) = supported.get_mut(..bytes.len()) {
                kept.copy_from_slice(bytes);
                *supported_len = bytes.len();
            }
            *reads = BinaryReads::from_supported(bytes);
            if let Some(m) = machine.as_mut() {
                conn_of(m).splice_into_next_reply(conn::SUPPORTED_EXTRA);
            }
            feed(machine, target, bytes)
        }
        Rx::Own { body, checksum_ok } => {
            if let Some(GdbStubStateMachine::Idle(m)) = machine.as_mut() {
                answer_own(m.borrow_conn(), target, reads, body, checksum_ok);
            }
            true
        }
    };
    if let Some(selection) = session.rx.take_selection() {
        // gdbstub keeps its `Hg` choice to itself; the stub's own reads
        // need it too.
        match conn::parse_thread_id(selection) {
            Some(conn::ThreadId::Any) => session.target.select(None),
            Some(conn::ThreadId::Id(tid)) => session.target.select(Some(tid)),
            Some(conn::ThreadId::All) | None => {}
        }
    }
    if !ok {
        recover(session);
    }
}

/// After gdbstub failed on a packet (one it could not parse, whatever its
/// checksum): the session goes on with a machine made afresh, told again
/// what was agreed in `qSupported` (its reply dropped), and gdb gets an
/// error for the packet instead of a lost session. Breakpoints and the
/// selected thread live in the target and stay.
fn recover(session: &mut Session) {
    session.machine = None;
    session.machine = new_machine(session);
    let Session {
        machine,
        target,
        supported,
        supported_len,
        ..
    } = session;
    let Some(m) = machine.as_mut() else {
        return end(session);
    };
    conn_of(m).set_muted(true);
    let replayed = feed(machine, target, &supported[..*supported_len]);
    match machine.as_mut() {
        Some(m) if replayed => {
            let com = conn_of(m);
            com.set_muted(false);
            // The packet's ack may have been lost with the old machine.
            com.put(b'+');
            conn::reply(com, b"E01");
        }
        _ => end(session),
    }
}

/// Gives `bytes` to the stopped machine, in order; false if it failed.
fn feed(machine: &mut Option<Machine>, target: &mut Kernel, bytes: &[u8]) -> bool {
    for &byte in bytes {
        match machine.take() {
            Some(GdbStubStateMachine::Idle(m)) => match m.incoming_data(target, byte) {
                Ok(next) => *machine = Some(next),
                Err(e) => {
                    note(format_args!("packet refused: {e:?}"));
                    return false;
                }
            },
            // A whole packet moves the machine on only at its last byte.
            other => {
                *machine = other;
                break;
            }
        }
    }
    true
}

/// Answers a packet the stub handles itself: a bad checksum asks gdb to
/// send it again; one too long to be any of them is an error. Acks stay on
/// for the whole session (see `Kernel::use_no_ack_mode`).
fn answer_own(
    com: &mut Com2,
    target: &mut Kernel,
    reads: &mut BinaryReads,
    body: Option<&[u8]>,
    checksum_ok: bool,
) {
    if !checksum_ok {
        com.put(b'-');
        com.send();
        return;
    }
    com.put(b'+');
    let Some(body) = body else {
        return conn::reply(com, b"E01");
    };
    if let Some(args) = body.strip_prefix(conn::READ_BINARY) {
        read_binary(com, target, reads, args);
    } else if let Some(args) = body.strip_prefix(conn::READ_HEX) {
        read_hex(com, target, args);
    } else if let Some(args) = body.strip_prefix(conn::BLAST) {
        blast(com, args);
    } else if body.starts_with(conn::FEATURES) {
        // LLDB: "not supported", so that it asks `qRegisterInfo`.
        conn::reply(com, b"");
    } else if body == conn::THREADS_INFO {
        let mut reply = Reply::start(com);
        // Writing to a reply cannot fail.
        let _ = lldb::write_threads_info(target, &mut reply);
        reply.finish();
    } else {
        // A longer name that merely starts like one of the stub's own.
        conn::reply(com, b"");
    }
}

/// `mADDR,LEN`: hex of up to [`READ_HEX_MAX`] bytes, up to the first
/// inaccessible one (gdb asks again for the rest, and a short reply tells
/// it where memory ends); `E0e` if the first is.
fn read_hex(com: &mut Com2, target: &mut Kernel, args: &[u8]) {
    let Some((addr, len)) = addr_len(args) else {
        return conn::reply(com, b"E01");
    };
    let len = len.min(READ_HEX_MAX as u64) as usize;
    if len == 0 {
        return conn::reply(com, b"");
    }
    reply_memory(com, target, addr, len, b"", |reply, chunk, n| {
        reply.hex(&chunk.bytes()[..n]);
    });
}

/// `xADDR,LEN`: the bytes, escaped, up to the first inaccessible one,
/// after a `b` unless the client reads LLDB's form (see [`BinaryReads`]);
/// `E0e` if the first is. A length of 0 is LLDB's probe.
fn read_binary(com: &mut Com2, target: &mut Kernel, reads: &mut BinaryReads, args: &[u8]) {
    let Some((addr, len)) = addr_len(args) else {
        return conn::reply(com, b"E01");
    };
    if len == 0 {
        if *reads == BinaryReads::Announced {
            return conn::reply(com, b"b");
        }
        *reads = BinaryReads::Lldb;
        return conn::reply(com, b"OK");
    }
    let prefix: &[u8] = match reads {
        BinaryReads::Lldb => b"",
        BinaryReads::Gdb | BinaryReads::Announced => b"b",
    };
    let len = len.min(READ_BINARY_MAX as u64) as usize;
    reply_memory(com, target, addr, len, prefix, |reply, chunk, n| {
        reply.binary(chunk, n);
    });
}

/// The `ADDR,LEN` arguments of `m` and `x`.
fn addr_len(args: &[u8]) -> Option<(u64, u64)> {
    let mut fields = args.split(|&b| b == b',');
    match (fields.next(), fields.next(), fields.next()) {
        (Some(addr), Some(len), None) => Some((conn::parse_hex(addr)?, conn::parse_hex(len)?)),
        _ => None,
    }
}

/// One long reply of `prefix` and then the `len` bytes at `addr`, read a
/// chunk at a time and written by `put`, up to the first inaccessible
/// byte; `E0e` if the first is.
fn reply_memory(
    com: &mut Com2,
    target: &mut Kernel,
    addr: u64,
    len: usize,
    prefix: &[u8],
    put: impl Fn(&mut Reply<'_>, &Words<{ READ_CHUNK / 8 }>, usize),
) {
    let mut chunk = Words::<{ READ_CHUNK / 8 }>::new();
    let mut want = len.min(READ_CHUNK);
    let mut n = target.read_memory(addr, &mut chunk.bytes_mut()[..want]);
    if n == 0 {
        return conn::reply(com, b"E0e");
    }
    let mut reply = Reply::start_long(com);
    reply.raw(prefix);
    let mut done = 0;
    loop {
        put(&mut reply, &chunk, n);
        done += n;
        if done == len || n < want {
            break;
        }
        want = (len - done).min(READ_CHUNK);
        n = target.read_memory(
            addr.wrapping_add(done as u64),
            &mut chunk.bytes_mut()[..want],
        );
        if n == 0 {
            break;
        }
    }
    reply.finish();
}

/// Filler for `qkernel.blast`: printable, nothing to escape.
const FILLER: [u8; 256] = {
    let mut f = [0u8; 256];
    let mut i = 0;
    while i < f.len() {
        f[i] = b'a' + (i % 26) as u8;
        i += 1;
    }
    f
};
/// The sum of [`FILLER`] mod 256.
const FILLER_SUM: u8 = {
    let mut sum = 0u8;
    let mut i = 0;
    while i < FILLER.len() {
        sum = sum.wrapping_add(FILLER[i]);
        i += 1;
    }
    sum
};

/// `qkernel.blast:LEN`: a reply of LEN filler bytes written as fast as the
/// transmit path goes, with no work per byte: the link's ceiling, which
/// the benchmark compares memory reads against.
fn blast(com: &mut Com2, args: &[u8]) {
    let Some(len) = conn::parse_hex(args) else {
        return conn::reply(com, b"E01");
    };
    let mut left = len.min(BLAST_MAX) as usize;
    let mut reply = Reply::start_long(com);
    while left >= FILLER.len() {
        reply.raw_summed(&FILLER, FILLER_SUM);
        left -= FILLER.len();
    }
    reply.raw(&FILLER[..left]);
    reply.finish();
}

/// Counts PIT periods while interrupts are off.
struct IdleClock {
    last: u16,
    elapsed_ms: u64,
    limit_ms: u64,
}

impl IdleClock {
    fn start() -> Self {
        Self {
            last: pit::read_counter(),
            elapsed_ms: 0,
            limit_ms: IDLE_TIMEOUT_MS.load(Ordering::Relaxed),
        }
    }

    fn reset(&mut self) {
        self.elapsed_ms = 0;
    }

    /// Samples the counter (it counts down and reloads once a period).
    fn expired(&mut self) -> bool {
        let now = pit::read_counter();
        if now > self.last {
            self.elapsed_ms += u64::from(1000 / TIMER_HZ);
        }
        self.last = now;
        self.limit_ms != 0 && self.elapsed_ms >= self.limit_ms
    }
}

/// Runs the session until gdb resumes the kernel or the session ends.
/// Hardware breakpoints are off meanwhile (gdb reading a watched variable
/// must not trap) and programmed again on resume.
fn stop_loop(session: &mut Session) {
    DebugRegs::disarm();
    let mut clock = IdleClock::start();
    loop {
        match session.machine.take() {
            None => return,
            Some(GdbStubStateMachine::Running(m)) if session.target.step_refused.is_some() => {
                // A step of a thread that is not running: it stops again
                // where it was, having run nothing.
                let tid = session.target.step_refused.take().expect("checked");
                note(format_args!("only the stopped thread can single-step"));
                let reason = StopReason::SignalWithThread {
                    tid,
                    signal: Signal::SIGSTOP,
                };
                session.target.report(tid, Signal::SIGSTOP);
                let step = m.report_stop(&mut session.target, reason);
                advance(session, step);
            }
            Some(GdbStubStateMachine::Running(mut m)) => {
                // The ack of the resuming packet is the last output.
                m.borrow_conn().send();
                session.machine = Some(m.into());
                session.target.prepare_resume();
                return;
            }
            Some(GdbStubStateMachine::CtrlCInterrupt(m)) => {
                let step = m.interrupt_handled(&mut session.target, None::<StopReason>);
                advance(session, step);
            }
            Some(GdbStubStateMachine::Disconnected(mut m)) => {
                let how = match m.get_reason() {
                    DisconnectReason::Kill => "killed",
                    _ => "detached",
                };
                m.borrow_conn().send();
                note(format_args!("debugger {how}; resuming"));
                end(session);
                return;
            }
            Some(GdbStubStateMachine::Idle(mut m)) => match conn::read_byte() {
                Some(byte) => {
                    clock.reset();
                    session.machine = Some(m.into());
                    receive(session, byte);
                }
                None => {
                    m.borrow_conn().send();
                    session.machine = Some(m.into());
                    if clock.expired() {
                        note(format_args!("debugger silent; ending the session"));
                        end(session);
                        return;
                    }
                    core::hint::spin_loop();
                }
            },
        }
    }
}

/// Feeds `byte` to a session that was running; true if it stopped.
fn feed_running(session: &mut Session, m: Machine, byte: u8) -> bool {
    let GdbStubStateMachine::Running(m) = m else {
        session.machine = Some(m);
        return false;
    };
    let step = m.incoming_data(&mut session.target, byte);
    advance(session, step);
    if let Some(GdbStubStateMachine::CtrlCInterrupt(m)) = session.machine.take() {
        let tid = session.target.stopped_tid();
        session.target.report(tid, Signal::SIGINT);
        let reason = StopReason::SignalWithThread {
            tid,
            signal: Signal::SIGINT,
        };
        let step = m.interrupt_handled(&mut session.target, Some(reason));
        advance(session, step);
    }
    matches!(session.machine, Some(GdbStubStateMachine::Idle(_)))
}

/// COM2 receive interrupt: a packet from a new gdb, or Ctrl-C from the
/// attached one, stops the kernel; other bytes (acks) are dropped.
pub fn on_com2_interrupt(frame: &mut TrapFrame) {
    let Some(mut guard) = SESSION.try_lock() else {
        return;
    };
    let session = &mut *guard;
    while let Some(byte) = conn::read_byte() {
        // Only a packet or Ctrl-C can stop the kernel: the process table is
        // read for those, not for every ack.
        if byte == b'$' || byte == CTRL_C {
            session.target.stopped_at(frame);
        }
        let running = matches!(session.machine, Some(GdbStubStateMachine::Running(_)));
        let stopped = match session.machine.take() {
            Some(m) if running && byte != b'$' => feed_running(session, m, byte),
            None if byte != b'$' => false,
            old => {
                // A packet while no stop is pending: a (new) debugger.
                // The old machine (and its borrow of the packet buffer) is
                // not used again past this point.
                if old.is_some() {
                    end(session);
                }
                session.machine = new_machine(session);
                if session.machine.is_some() {
                    receive(session, byte);
                }
                session.machine.is_some()
            }
        };
        if stopped {
            stop_loop(session);
            *frame = session.target.frame;
        }
    }
}

/// Reports a stop to an attached debugger and runs the session; false
/// (nothing done) when no debugger waits for a stop.
fn stop(frame: &mut TrapFrame, reason: impl FnOnce(&mut Kernel) -> StopReason) -> bool {
    let Some(mut guard) = SESSION.try_lock() else {
        return false;
    };
    let session = &mut *guard;
    if !matches!(session.machine, Some(GdbStubStateMachine::Running(_))) {
        return false;
    }
    let Some(GdbStubStateMachine::Running(m)) = session.machine.take() else {
        return false;
    };
    session.target.stopped_at(frame);
    let why = reason(&mut session.target);
    if let Some((tid, signal)) = thread_and_signal(&why) {
        session.target.report(tid, signal);
    }
    let step = m.report_stop(&mut session.target, why);
    advance(session, step);
    stop_loop(session);
    *frame = session.target.frame;
    true
}

/// The thread a stop reply names and the signal it gives.
fn thread_and_signal(reason: &StopReason) -> Option<(Tid, Signal)> {
    match *reason {
        StopReason::SwBreak(tid) | StopReason::HwBreak(tid) | StopReason::Watch { tid, .. } => {
            Some((tid, Signal::SIGTRAP))
        }
        StopReason::SignalWithThread { tid, signal } => Some((tid, signal)),
        _ => None,
    }
}

/// `int3`: a breakpoint the stub planted (reported with RIP back on it) or
/// one compiled into the kernel. False when no debugger is attached.
pub fn on_breakpoint(frame: &mut TrapFrame) -> bool {
    stop(frame, |k| {
        let tid = k.stopped_tid();
        let at = k.frame.rip.wrapping_sub(1);
        if k.planted_at(at) {
            k.frame.rip = at;
            StopReason::SwBreak(tid)
        } else {
            StopReason::SignalWithThread {
                tid,
                signal: Signal::SIGTRAP,
            }
        }
    })
}

/// #DB: a hardware breakpoint or watchpoint (DR6 says which slot), or the
/// end of a single step. DR6 is cleared either way. False when no debugger
/// is attached.
pub fn on_debug(frame: &mut TrapFrame) -> bool {
    let status = cpu::read_debug_status();
    cpu::clear_debug_status();
    stop(frame, |k| {
        let tid = k.stopped_tid();
        k.frame.rflags &= !RFLAGS_TF;
        k.stepping = false;
        if let Some(hit) = k.hw.hit(status) {
            return match hit.kind {
                Kind::Exec => {
                    // A fault before the instruction runs: RF lets it run
                    // on resume instead of trapping again.
                    k.frame.rflags |= RFLAGS_RF;
                    StopReason::HwBreak(tid)
                }
                Kind::Data(kind) => StopReason::Watch {
                    tid,
                    kind,
                    addr: hit.addr,
                },
            };
        }
        // The end of a single step (DR6.BS), or a stray #DB: a SIGTRAP of
        // the thread either way; gdb knows whether it asked for a step.
        StopReason::SignalWithThread {
            tid,
            signal: Signal::SIGTRAP,
        }
    })
}

/// A fault the kernel cannot handle: an attached debugger sees it first
/// (where it happened, with the signal gdb knows it by). Returns when gdb
/// resumes or the session ends; the caller then reports and panics.
pub fn on_fault(frame: &mut TrapFrame) -> bool {
    let signal = match frame.vector {
        0 | 16 | 19 => Signal::SIGFPE,
        6 => Signal::SIGILL,
        17 => Signal::SIGBUS,
        _ => Signal::SIGSEGV,
    };
    stop(frame, |k| StopReason::SignalWithThread {
        tid: k.stopped_tid(),
        signal,
    })
}
