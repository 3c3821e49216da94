//! The debugger's byte link: COM2, polled while the kernel is stopped and
//! read from its receive interrupt while it runs.
//!
//! Output leaves in bursts of the UART's FIFO depth: one wait for an empty
//! transmitter, then up to 16 bytes written back to back (the driver's
//! `write_all`). Under QEMU every port access is an exit and every byte
//! written becomes a write on the host, so the link's cost is the port
//! writes themselves; a status read per byte would nearly double it.
//! Bytes are gathered [`GATHER`] at a time so the port is locked once
//! per many bursts, not per byte.
//!
//! Input while the kernel is stopped goes through [`Intercept`], which
//! keeps the packets the stub answers itself (binary memory reads and the
//! link benchmark, written with [`Reply`]) and gives gdbstub the rest.

use core::convert::Infallible;

use gdbstub::common::Tid;
use gdbstub::conn::Connection;

use core::sync::atomic::{AtomicU16, Ordering};

use super::note;
use crate::drivers::serial::{COM2_BASE, SerialPort};
use crate::sync::IrqMutex;

/// Bytes gathered before they go to the port: sixteen FIFO bursts.
pub const GATHER: usize = 256;

/// COM2; `None` until [`open`].
static PORT: IrqMutex<Option<SerialPort>> = IrqMutex::new(None);

/// Opens COM2 (absent unless QEMU was given a second `-serial`).
pub fn open() {
    PORT.with(|port| {
        // SAFETY: COM2 is driven only through this module's PORT.
        *port = Some(unsafe { SerialPort::open(COM2_BASE) });
    });
}

/// A byte taken from the UART to see whether anything came in, to be read
/// again; `NONE` if there is none.
static PUSHED_BACK: AtomicU16 = AtomicU16::new(NONE);
const NONE: u16 = 0x100;

/// Takes one received byte, if any, without waiting.
pub fn read_byte() -> Option<u8> {
    let pushed = PUSHED_BACK.swap(NONE, Ordering::Relaxed);
    if pushed != NONE {
        return Some(pushed as u8);
    }
    PORT.with(|port| port.as_mut()?.read_byte())
}

/// Whether a byte has come in, which stays to be read.
fn input_waiting() -> bool {
    if PUSHED_BACK.load(Ordering::Relaxed) != NONE {
        return true;
    }
    match PORT.with(|port| port.as_mut()?.read_byte()) {
        Some(byte) => {
            PUSHED_BACK.store(u16::from(byte), Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Writes all of `bytes`, waiting for the transmitter once per burst.
fn write_all(bytes: &[u8]) {
    PORT.with(|port| {
        if let Some(port) = port.as_mut() {
            port.write_all(bytes);
        }
    });
}

/// The `gdbstub` connection over COM2, and the stub's own replies: bytes
/// gather into bursts; [`flush`](Connection::flush) sends what is left.
/// Writing waits for the UART; a port without a client (QEMU drops the
/// bytes) never blocks.
pub struct Com2 {
    pending: [u8; GATHER],
    len: usize,
    splice: Splice,
    /// Output is dropped: a replayed packet's reply nobody asked for.
    muted: bool,
    /// A long reply is going out: stop it if the client sends anything.
    watching: bool,
    /// The reply being written was given up: the rest of it is dropped.
    dropping: bool,
}

/// Text spliced into the next reply gdbstub writes, before its `#`, and
/// where that reply is.
#[derive(Debug, Clone, Copy)]
enum Splice {
    Off,
    /// Before the `#`.
    Body(&'static [u8]),
    /// The first checksum digit is next.
    Sum1(&'static [u8]),
    /// The second checksum digit is next; the first was this nibble.
    Sum2(&'static [u8], u8),
}

impl Com2 {
    /// Nothing pending.
    pub const fn new() -> Self {
        Self {
            pending: [0; GATHER],
            len: 0,
            splice: Splice::Off,
            muted: false,
            watching: false,
            dropping: false,
        }
    }

    /// Drops (or stops dropping) everything gdbstub writes.
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Makes the next reply gdbstub writes end with `extra` (plain text,
    /// no `#`), its checksum corrected to match.
    pub fn splice_into_next_reply(&mut self, extra: &'static [u8]) {
        self.splice = Splice::Body(extra);
    }

    /// One byte of gdbstub's output while a splice is pending.
    fn put_splicing(&mut self, byte: u8) {
        match self.splice {
            Splice::Off => self.put(byte),
            Splice::Body(extra) if byte == b'#' => {
                self.put_all(extra);
                self.put(byte);
                self.splice = Splice::Sum1(extra);
            }
            Splice::Body(_) => self.put(byte),
            Splice::Sum1(extra) => self.splice = Splice::Sum2(extra, hex_digit(byte).unwrap_or(0)),
            Splice::Sum2(extra, high) => {
                let sum = (high << 4) | hex_digit(byte).unwrap_or(0);
                let sum = extra.iter().fold(sum, |s, &b| s.wrapping_add(b));
                self.put_all(&hex_byte(sum));
                self.splice = Splice::Off;
            }
        }
    }

    fn send_pending(&mut self) {
        if self.len > 0 && !self.dropping {
            self.give_up_if_spoken_to();
            if !self.dropping {
                write_all(&self.pending[..self.len]);
            }
        }
        self.len = 0;
    }

    /// During a long reply: a byte from the client means it is not waiting
    /// for this reply any more (a new client connected, or gdb gave up), so
    /// the rest is dropped rather than sent to whoever listens next.
    fn give_up_if_spoken_to(&mut self) {
        if self.watching && input_waiting() {
            self.dropping = true;
        }
    }

    /// Queues `byte`; a full buffer goes out.
    #[inline]
    pub fn put(&mut self, byte: u8) {
        self.pending[self.len] = byte;
        self.len += 1;
        if self.len == GATHER {
            self.send_pending();
        }
    }

    /// Queues `bytes`; a full buffer goes out, and so does a slice too
    /// big to gather, straight from where it is.
    pub fn put_all(&mut self, bytes: &[u8]) {
        if bytes.len() < GATHER - self.len {
            self.pending[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else if bytes.len() < GATHER {
            let (now, later) = bytes.split_at(GATHER - self.len);
            self.pending[self.len..].copy_from_slice(now);
            self.len = GATHER;
            self.send_pending();
            self.pending[..later.len()].copy_from_slice(later);
            self.len = later.len();
        } else {
            self.send_pending();
            self.give_up_if_spoken_to();
            if !self.dropping {
                write_all(bytes);
            }
        }
    }

    /// Sends whatever is queued.
    pub fn send(&mut self) {
        self.send_pending();
    }
}

impl Connection for Com2 {
    type Error = Infallible;

    fn write(&mut self, byte: u8) -> Result<(), Infallible> {
        if self.muted {
            return Ok(());
        }
        if let Splice::Off = self.splice {
            self.put(byte);
        } else {
            self.put_splicing(byte);
        }
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> Result<(), Infallible> {
        if self.muted {
            return Ok(());
        }
        if let Splice::Off = self.splice {
            self.put_all(buf);
        } else {
            buf.iter().for_each(|&b| self.put_splicing(b));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        self.send_pending();
        Ok(())
    }
}

/// One reply the stub writes itself: `$`, the payload, `#` and the
/// checksum, with no run-length encoding.
pub struct Reply<'a> {
    com: &'a mut Com2,
    sum: u8,
}

impl<'a> Reply<'a> {
    /// Starts a reply packet.
    pub fn start(com: &'a mut Com2) -> Self {
        com.put(b'$');
        Self { com, sum: 0 }
    }

    /// Starts a long reply packet (memory, filler), which is given up if
    /// the client sends anything while it goes out.
    pub fn start_long(com: &'a mut Com2) -> Self {
        com.watching = true;
        Self::start(com)
    }

    /// Payload bytes that need no escaping.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.sum = bytes.iter().fold(self.sum, |s, &b| s.wrapping_add(b));
        self.com.put_all(bytes);
    }

    /// Payload bytes whose sum (mod 256) the caller already knows.
    pub fn raw_summed(&mut self, bytes: &[u8], sum: u8) {
        self.sum = self.sum.wrapping_add(sum);
        self.com.put_all(bytes);
    }

    /// The first `len` bytes of `data` as binary payload: `#`, `$`, `}`
    /// and `*` go as `}` and the byte XOR 0x20, the runs between them
    /// unchanged. Bulk reads spend their time here, and the kernel is
    /// usually an unoptimised build, so the scan takes a word (eight bytes)
    /// per step with no calls: a word with none of the four is only added
    /// to the checksum.
    pub fn binary<const N: usize>(&mut self, data: &Words<N>, len: usize) {
        let bytes = &data.bytes()[..len];
        let words = &data.0[..len / 8];
        let mut run = 0;
        let mut sum = WordSum::new();
        let mut k = 0;
        while k < words.len() {
            let word = words[k];
            k += 1;
            if !has_escaped(word) {
                sum.add(word);
                continue;
            }
            let k = k - 1;
            for j in 0..8 {
                let i = k * 8 + j;
                let b = bytes[i];
                if is_escaped(b) {
                    self.raw_summed(&bytes[run..i], sum.take());
                    self.raw(&[b'}', b ^ 0x20]);
                    run = i + 1;
                } else {
                    sum.add_byte(b);
                }
            }
        }
        for i in len / 8 * 8..len {
            let b = bytes[i];
            if is_escaped(b) {
                self.raw_summed(&bytes[run..i], sum.take());
                self.raw(&[b'}', b ^ 0x20]);
                run = i + 1;
            } else {
                sum.add_byte(b);
            }
        }
        self.raw_summed(&bytes[run..], sum.take());
    }

    /// Payload bytes with `#`, `$`, `}` and `*` escaped, as in
    /// [`binary`](Self::binary): text that may hold them (JSON).
    pub fn escaped(&mut self, bytes: &[u8]) {
        let mut run = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if is_escaped(b) {
                self.raw(&bytes[run..i]);
                self.raw(&[b'}', b ^ 0x20]);
                run = i + 1;
            }
        }
        self.raw(&bytes[run..]);
    }

    /// `data` as hex digits, two a byte, 32 bytes of text at a time.
    pub fn hex(&mut self, data: &[u8]) {
        for piece in data.chunks(32) {
            let mut text = [0u8; 64];
            for (pair, &b) in text.chunks_exact_mut(2).zip(piece) {
                pair.copy_from_slice(&hex_byte(b));
            }
            self.raw(&text[..piece.len() * 2]);
        }
    }

    /// Ends the packet and sends everything queued.
    pub fn finish(self) {
        self.com.put(b'#');
        self.com.put_all(&hex_byte(self.sum));
        self.com.send();
        if self.com.dropping {
            note(format_args!(
                "a reply was given up: the client spoke meanwhile"
            ));
        }
        self.com.watching = false;
        self.com.dropping = false;
    }
}

/// Formatted text goes out escaped.
impl core::fmt::Write for Reply<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.escaped(s.as_bytes());
        Ok(())
    }
}

/// Bytes held as words, so code can read them eight at a time by index.
pub struct Words<const N: usize>(pub [u64; N]);

impl<const N: usize> Words<N> {
    /// Zeroed.
    pub const fn new() -> Self {
        Self([0; N])
    }

    /// The words' bytes, in memory order.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the words are initialised, any byte of them is a valid
        // `u8`, `u8` needs no alignment, and the slice covers exactly the
        // array for the lifetime of this shared borrow.
        unsafe { core::slice::from_raw_parts(self.0.as_ptr().cast(), N * 8) }
    }

    /// The words' bytes, to fill.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and any bytes written make valid `u64`s;
        // the exclusive borrow of the array is held by the slice.
        unsafe { core::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), N * 8) }
    }
}

/// Whether binary data must escape `b`.
#[inline(always)]
fn is_escaped(b: u8) -> bool {
    matches!(b, b'#' | b'$' | b'}' | b'*')
}

/// Each of the four escaped bytes in every lane of a word.
const ESCAPED_LANES: [u64; 4] = [
    0x2323_2323_2323_2323, // '#'
    0x2424_2424_2424_2424, // '$'
    0x7d7d_7d7d_7d7d_7d7d, // '}'
    0x2a2a_2a2a_2a2a_2a2a, // '*'
];

/// Whether any byte of `word` must be escaped: a byte equal to one of
/// the four is zero after the XOR, and a lane is zero exactly when adding
/// 0x7f to its low seven bits and OR-ing in the lane leaves its high bit
/// clear (no lane carries into the next, so nothing overflows).
#[inline(always)]
fn has_escaped(word: u64) -> bool {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // Written out: a closure would be a call per use in a debug build.
    let [a, b, c, d] = [
        word ^ ESCAPED_LANES[0],
        word ^ ESCAPED_LANES[1],
        word ^ ESCAPED_LANES[2],
        word ^ ESCAPED_LANES[3],
    ];
    let nonzero = (((a & LOW7) + LOW7) | a)
        & (((b & LOW7) + LOW7) | b)
        & (((c & LOW7) + LOW7) | c)
        & (((d & LOW7) + LOW7) | d);
    // A lane whose high bit is clear here was zero in one of the four.
    nonzero | LOW7 != u64::MAX
}

/// A byte sum (mod 256) taken eight bytes at a time: the even and odd
/// bytes of each word add into four 16-bit lanes, folded before they can
/// overflow.
struct WordSum {
    lanes: u64,
    words: u32,
    sum: u8,
}

impl WordSum {
    /// Words whose lanes (at most 2 * 255 each) fit 16 bits.
    const FOLD_EVERY: u32 = 128;
    const EVEN: u64 = 0x00ff_00ff_00ff_00ff;

    fn new() -> Self {
        Self {
            lanes: 0,
            words: 0,
            sum: 0,
        }
    }

    #[inline(always)]
    fn add(&mut self, word: u64) {
        self.lanes += (word & Self::EVEN) + ((word >> 8) & Self::EVEN);
        self.words += 1;
        if self.words == Self::FOLD_EVERY {
            self.fold();
        }
    }

    /// Counts as a word: a byte adds less to a lane than a word does.
    #[inline(always)]
    fn add_byte(&mut self, b: u8) {
        self.lanes += b as u64;
        self.words += 1;
        if self.words == Self::FOLD_EVERY {
            self.fold();
        }
    }

    fn fold(&mut self) {
        let l = self.lanes;
        let lanes = (l & 0xffff) + ((l >> 16) & 0xffff) + ((l >> 32) & 0xffff) + (l >> 48);
        self.sum = self.sum.wrapping_add(lanes as u8);
        self.lanes = 0;
        self.words = 0;
    }

    /// The sum so far; starts again from zero.
    fn take(&mut self) -> u8 {
        self.fold();
        core::mem::replace(&mut self.sum, 0)
    }
}

/// Sends one complete reply packet with `payload`.
pub fn reply(com: &mut Com2, payload: &[u8]) {
    let mut r = Reply::start(com);
    r.raw(payload);
    r.finish();
}

/// Body of the binary memory read the stub answers itself (gdbstub 0.7
/// has no `x`): `xADDR,LEN`, sent by gdb 16 and later once the stub
/// advertises `binary-upload+`.
pub const READ_BINARY: &[u8] = b"x";
/// Body of the hex memory read the stub answers itself (instead of
/// gdbstub, whose `m` has no bound): `mADDR,LEN`.
pub const READ_HEX: &[u8] = b"m";
/// Body of LLDB's query for every thread's name and stop state, which the
/// stub answers itself (gdbstub has no such packet): `jThreadsInfo`.
pub const THREADS_INFO: &[u8] = b"jThreadsInfo";
/// Body of the link benchmark: `qkernel.blast:LEN` answers LEN filler
/// bytes as fast as the transmit path goes.
pub const BLAST: &[u8] = b"qkernel.blast:";
/// gdbstub answers `qSupported`; its reply gets [`SUPPORTED_EXTRA`].
const SUPPORTED: &[u8] = b"qSupported";
/// LLDB's first question about the target; gdb never asks it. It tells
/// the stub to keep `target.xml` from this client (see [`Intercept`]).
const HOST_INFO: &[u8] = b"qHostInfo";
/// A read of a target description (`target.xml` and what it includes).
pub const FEATURES: &[u8] = b"qXfer:features:read:";
/// gdbstub answers `Hg` (select the thread for registers and memory);
/// the stub notes the choice too (see [`Intercept::take_selection`]).
const SELECT: &[u8] = b"Hg";
/// Features appended to gdbstub's `qSupported` reply.
pub const SUPPORTED_EXTRA: &[u8] = b";binary-upload+";
/// Bytes of the packet buffer, advertised to gdb as `PacketSize`.
pub const PACKET_BYTES: usize = 0x4000;
/// A whole received packet: `$`, the body, `#` and two checksum digits.
const RX_PACKET_MAX: usize = PACKET_BYTES + 4;

/// Where the receiver is in the byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxState {
    /// Between packets: acks, Ctrl-C, or a `$`.
    Between,
    /// In a packet, before its `#`.
    Body,
    /// After the `#`: this many checksum digits received.
    Sum(u8),
}

/// What the stopped kernel does with a received byte; see
/// [`Intercept::accept`].
#[derive(Debug, PartialEq, Eq)]
pub enum Rx<'a> {
    /// Nothing yet.
    Hold,
    /// Bytes for gdbstub, in order: a byte between packets, or a whole
    /// packet whose checksum matched.
    Pass(&'a [u8]),
    /// A whole `qSupported` packet for gdbstub: its reply must also carry
    /// [`SUPPORTED_EXTRA`].
    PassSupported(&'a [u8]),
    /// A packet the stub answers itself, or one nobody may see: its body
    /// (`None` if it was too long to keep), and whether its checksum
    /// matched (if not, gdb is asked to send it again).
    Own {
        body: Option<&'a [u8]>,
        checksum_ok: bool,
    },
}

/// Takes whole packets before anything sees them: a packet whose checksum
/// fails (a noisy line) is asked for again and never reaches gdbstub,
/// which would end the session on it; a packet longer than the buffer is
/// answered with an error; `-` from gdb (it got a damaged reply) is
/// dropped, since gdbstub treats it as fatal and gdb repeats its request
/// anyway. Packets the stub answers itself ([`READ_BINARY`], [`READ_HEX`],
/// [`BLAST`], [`THREADS_INFO`]) are kept; the rest go to gdbstub whole.
///
/// gdbstub's `target.xml` names the feature `org.gnu.gdb.i386.sse` and
/// lists no registers: gdb knows that name and uses its own description of
/// the registers. LLDB 14 takes the empty description first and, though it
/// then reads the layout through `qRegisterInfo`, finds no pc in it: no
/// frames, no backtrace, "invalid frame" for `register read`. A client
/// that asked `qHostInfo` (LLDB) is therefore told that descriptions are
/// not supported ([`FEATURES`] is kept and answered empty), and
/// `qRegisterInfo` alone describes its registers.
pub struct Intercept {
    state: RxState,
    packet: [u8; RX_PACKET_MAX],
    len: usize,
    overflow: bool,
    /// Sum of the body bytes.
    sum: u8,
    /// The packet just passed was an `Hg`.
    selection: bool,
    /// The client asked `qHostInfo` since its `qSupported`: it is LLDB.
    lldb: bool,
}

impl Intercept {
    /// Between packets.
    pub const fn new() -> Self {
        Self {
            state: RxState::Between,
            packet: [0; RX_PACKET_MAX],
            len: 0,
            overflow: false,
            sum: 0,
            selection: false,
            lldb: false,
        }
    }

    /// The thread id of the `Hg` packet that was just passed to gdbstub,
    /// once; `None` if there was none.
    pub fn take_selection(&mut self) -> Option<&[u8]> {
        if !core::mem::take(&mut self.selection) {
            return None;
        }
        // `$Hg` ... `#xx`.
        self.packet.get(1 + SELECT.len()..self.len.checked_sub(3)?)
    }

    fn push(&mut self, byte: u8) {
        match self.packet.get_mut(self.len) {
            Some(slot) => {
                *slot = byte;
                self.len += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Takes the next received byte.
    pub fn accept(&mut self, byte: u8) -> Rx<'_> {
        match self.state {
            RxState::Between => match byte {
                b'$' => {
                    self.state = RxState::Body;
                    self.len = 0;
                    self.overflow = false;
                    self.sum = 0;
                    self.push(byte);
                    Rx::Hold
                }
                b'-' => Rx::Hold,
                _ => {
                    self.packet[0] = byte;
                    Rx::Pass(&self.packet[..1])
                }
            },
            RxState::Body => {
                if byte == b'#' {
                    self.state = RxState::Sum(0);
                } else {
                    self.sum = self.sum.wrapping_add(byte);
                }
                self.push(byte);
                Rx::Hold
            }
            RxState::Sum(0) => {
                self.state = RxState::Sum(1);
                self.push(byte);
                Rx::Hold
            }
            RxState::Sum(_) => {
                self.state = RxState::Between;
                self.push(byte);
                self.complete()
            }
        }
    }

    /// A whole packet has arrived.
    fn complete(&mut self) -> Rx<'_> {
        if self.overflow {
            return Rx::Own {
                body: None,
                checksum_ok: true,
            };
        }
        let digits = [self.packet[self.len - 2], self.packet[self.len - 1]];
        let checksum_ok = parse_hex_byte(digits) == Some(self.sum);
        let body = &self.packet[1..self.len - 3];
        let own = [READ_BINARY, READ_HEX, BLAST, THREADS_INFO]
            .iter()
            .any(|prefix| body.starts_with(prefix))
            || (self.lldb && body.starts_with(FEATURES));
        if !checksum_ok || own {
            return Rx::Own {
                body: Some(body),
                checksum_ok,
            };
        }
        self.selection = body.starts_with(SELECT);
        self.lldb |= body == HOST_INFO;
        if body == SUPPORTED || body.starts_with(b"qSupported:") {
            self.lldb = false;
            Rx::PassSupported(&self.packet[..self.len])
        } else {
            Rx::Pass(&self.packet[..self.len])
        }
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_byte(n: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [DIGITS[usize::from(n >> 4)], DIGITS[usize::from(n & 0xf)]]
}

fn parse_hex_byte(digits: [u8; 2]) -> Option<u8> {
    Some((hex_digit(digits[0])? << 4) | hex_digit(digits[1])?)
}

/// A thread id as gdb writes it in `H` packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadId {
    /// `0`: any thread.
    Any,
    /// `-1`: all threads.
    All,
    /// One thread.
    Id(Tid),
}

/// Parses a thread id, `TID` or, with the multiprocess extension,
/// `pPID.TID` (the process part is ignored: the kernel is one process).
pub fn parse_thread_id(text: &[u8]) -> Option<ThreadId> {
    let tid = match text.strip_prefix(b"p") {
        Some(rest) => {
            let dot = rest.iter().position(|&b| b == b'.')?;
            &rest[dot + 1..]
        }
        None => text,
    };
    if tid == b"-1" {
        return Some(ThreadId::All);
    }
    let n = usize::try_from(parse_hex(tid)?).ok()?;
    Some(Tid::new(n).map_or(ThreadId::Any, ThreadId::Id))
}

/// A hex number of at most 16 digits.
pub fn parse_hex(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    digits
        .iter()
        .try_fold(0u64, |n, &c| Some((n << 4) | u64::from(hex_digit(c)?)))
}
