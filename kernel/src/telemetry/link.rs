//! The telemetry link on COM1: framed kernel messages out, host commands in.
//! It knows the UART, the lock and the clock, nothing above them.
//!
//! Sending never waits on the UART: a frame is copied into a bounded ring
//! and drained as fast as the transmitter takes bytes (from the sender, the
//! transmit-empty interrupt and the timer). A frame that does not fit is
//! dropped whole and counted; the count goes out as `Dropped` as soon as
//! there is room, so the host always knows what it missed.
//!
//! The common memory events do not get a frame each: they are encoded a few
//! bytes apiece into an open batch ([`probe_proto::batch`]), which goes out
//! as one `EventBatch` frame when it is full, when any other message is sent
//! (so the stream keeps its order), or at the latest [`BATCH_FLUSH_US`]
//! after its first event (the timer checks). A batch that does not fit the
//! ring counts all its events as dropped, and the next batch is a sync
//! point, as it is after the host's `Resync` and every [`SYNC_EVERY_US`].

use probe_proto::batch::{BatchEncoder, Push};
use probe_proto::frame::MAX_FRAME;
use probe_proto::{
    EventBatch, FrameDecoder, HeapWalkEnd, Heartbeat, Hello, HostMsg, KernelMsg, LeaksEnd, Log,
    LogLevel, PROTOCOL_VERSION, Pong, ProcessListEnd, PtDumpEnd, encode_frame, features,
};

use crate::drivers::serial::{COM1_BASE, SerialPort};
use crate::sync::IrqMutex;
use crate::{boot_info::BootInfo, time};

/// Bytes of frames waiting for the UART.
const TX_RING_BYTES: usize = 64 * 1024;
/// Longest host frame accepted; host commands are a few bytes.
const RX_FRAME_BYTES: usize = 128;
/// An open event batch is sent at the latest this long after its first
/// event: the bound on how late an event reaches the host.
pub const BATCH_FLUSH_US: u64 = 10_000;
/// A batch at least this long after the last sync point is a sync point
/// again, so a host that lost a frame decodes again within about a second
/// without asking.
pub const SYNC_EVERY_US: u64 = 1_000_000;

/// Identifies this build in `Hello`: version, profile and `id=` a hash of
/// the sources (`build.rs`), which mmtop compares with the same string in
/// the ELF it reads symbols from.
#[cfg(debug_assertions)]
pub const BUILD_ID: &str = concat!(
    "kernel ",
    env!("CARGO_PKG_VERSION"),
    " debug id=",
    env!("KERNEL_BUILD_ID")
);
/// Identifies this build in `Hello` (see the debug build's).
#[cfg(not(debug_assertions))]
pub const BUILD_ID: &str = concat!(
    "kernel ",
    env!("CARGO_PKG_VERSION"),
    " release id=",
    env!("KERNEL_BUILD_ID")
);

/// A byte ring that accepts whole frames only.
struct TxRing {
    buf: [u8; TX_RING_BYTES],
    head: usize,
    len: usize,
}

impl TxRing {
    const fn new() -> Self {
        Self {
            buf: [0; TX_RING_BYTES],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, frame: &[u8]) -> bool {
        if TX_RING_BYTES - self.len < frame.len() {
            return false;
        }
        // At most two copies: up to the end of the buffer, then from its start.
        let tail = (self.head + self.len) % TX_RING_BYTES;
        let first = frame.len().min(TX_RING_BYTES - tail);
        self.buf[tail..tail + first].copy_from_slice(&frame[..first]);
        self.buf[..frame.len() - first].copy_from_slice(&frame[first..]);
        self.len += frame.len();
        true
    }

    /// The longest contiguous run of queued bytes.
    fn front(&self) -> &[u8] {
        let end = (self.head + self.len).min(TX_RING_BYTES);
        &self.buf[self.head..end]
    }

    fn consume(&mut self, n: usize) {
        self.head = (self.head + n) % TX_RING_BYTES;
        self.len -= n;
    }
}

/// Host requests waiting to be answered from thread context (answering
/// takes memory-manager locks, which the interrupt handler that decodes
/// them must not), in the order they came. Each is answered: one that
/// finds the queue full is answered at once as not done (an incomplete
/// `HeapWalkEnd`, `ProcessListEnd` or `PtDumpEnd`), and a `Snapshot` or
/// `Check` already waiting is not queued twice.
#[derive(Debug, Clone, Default)]
pub struct Requests {
    queue: [Option<HostMsg>; MAX_PENDING],
    len: usize,
}

/// Host requests that can wait at once.
const MAX_PENDING: usize = 16;

impl Requests {
    /// Queues `cmd`; false if it does not fit.
    fn push(&mut self, cmd: HostMsg) -> bool {
        let repeat = matches!(cmd, HostMsg::Snapshot | HostMsg::Check);
        if repeat && self.queue[..self.len].contains(&Some(cmd.clone())) {
            return true;
        }
        match self.queue.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(cmd);
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl Iterator for Requests {
    type Item = HostMsg;

    /// The oldest request.
    fn next(&mut self) -> Option<HostMsg> {
        if self.len == 0 {
            return None;
        }
        let first = self.queue[0].take();
        self.queue.rotate_left(1);
        self.len -= 1;
        first
    }
}

struct Link {
    port: Option<SerialPort>,
    /// Where a frame is encoded before it is copied into the ring; kept here
    /// so no send zeroes a frame-sized buffer on its stack.
    scratch: [u8; MAX_FRAME],
    requests: Requests,
    ring: TxRing,
    /// Frames dropped and not yet reported in a `Dropped` message.
    dropped_unreported: u64,
    dropped_total: u64,
    rx: FrameDecoder<RX_FRAME_BYTES>,
    boot: Option<&'static BootInfo>,
    /// Whether the transmitter-empty interrupt is enabled.
    tx_irq_on: bool,
    /// The open batch of memory events.
    batch: BatchEncoder,
    /// When the last sync batch was opened.
    last_sync_us: u64,
}

static LINK: IrqMutex<Link> = IrqMutex::new(Link {
    port: None,
    scratch: [0; MAX_FRAME],
    requests: Requests {
        queue: [const { None }; MAX_PENDING],
        len: 0,
    },
    ring: TxRing::new(),
    dropped_unreported: 0,
    dropped_total: 0,
    rx: FrameDecoder::new(),
    boot: None,
    tx_irq_on: false,
    batch: BatchEncoder::new(),
    last_sync_us: 0,
});

/// `[start, end)` of the link's state in the kernel's data. It holds the
/// last addresses the event batches reported (to predict the next), which
/// are records, not references: the leak scan leaves it out of its roots.
pub fn footprint() -> (u64, u64) {
    let start = core::ptr::addr_of!(LINK) as u64;
    (start, start + size_of_val(&LINK) as u64)
}

/// Opens COM1 and sends `Hello` and the memory map.
pub fn init(boot: &'static BootInfo) {
    LINK.with(|link| {
        // SAFETY: COM1 is driven only through LINK from here on (the panic
        // path writes raw bytes only after failing to take LINK).
        link.port = Some(unsafe { SerialPort::open(COM1_BASE) });
        link.boot = Some(boot);
        link.send_hello();
    });
}

/// Queues `msg`; never waits for the UART.
pub fn send(msg: &KernelMsg<'_>) {
    LINK.with(|link| link.send(msg));
}

/// Queues the memory event `build` makes from the time now, read under
/// the link's lock so that events reach the batch in time order; never
/// waits for the UART.
pub fn send_event(build: impl FnOnce(u64) -> KernelMsg<'static>) {
    LINK.with(|link| {
        let msg = build(time::uptime_us());
        link.send(&msg);
    });
}

/// Sends a log line as `Log`: the log's sink, registered at boot.
pub fn send_log(level: LogLevel, text: &str) {
    send(&KernelMsg::Log(Log {
        ts_us: time::uptime_us(),
        level,
        text: text.into(),
    }));
}

/// Queues `msg`, first waiting for the UART to make room if the ring is
/// full: for answers to host requests, sent from thread context, which must
/// not be lost. Events use [`send`].
pub fn send_waiting(msg: &KernelMsg<'_>) {
    LINK.with(|link| link.send_waiting(msg));
}

/// Waits until every queued byte went to the UART, the open event batch
/// included.
pub fn drain() {
    loop {
        let empty = LINK.with(|link| {
            link.flush_batch();
            link.pump();
            link.ring.len == 0 || link.port.is_none()
        });
        if empty {
            return;
        }
        core::hint::spin_loop();
    }
}

/// Takes the host requests received since the last call.
pub fn take_requests() -> Requests {
    LINK.with(|link| core::mem::take(&mut link.requests))
}

/// Sends a heartbeat with the link's counters.
pub fn heartbeat() {
    LINK.with(|link| {
        let rx = link.rx.stats();
        let msg = KernelMsg::Heartbeat(Heartbeat {
            ts_us: time::uptime_us(),
            rx_frames: rx.frames,
            rx_bad: rx.bad(),
            tx_dropped: link.dropped_total,
        });
        link.send(&msg);
    });
}

/// Moves queued bytes to the UART, first sending the open event batch if
/// it is [`BATCH_FLUSH_US`] old; called from the timer.
pub fn pump() {
    LINK.with(|link| {
        if link
            .batch
            .opened_at_us()
            .is_some_and(|t| time::uptime_us().saturating_sub(t) >= BATCH_FLUSH_US)
        {
            link.flush_batch();
        }
        link.pump();
    });
}

/// COM1 interrupt: received bytes and/or transmitter empty.
pub fn on_interrupt() {
    LINK.with(|link| {
        while let Some(byte) = link.port.as_mut().and_then(SerialPort::read_byte) {
            // Bad frames are already counted by the decoder; the Heartbeat
            // reports them.
            if let Some(Ok(cmd)) = link.rx.push::<HostMsg>(byte) {
                link.handle(cmd);
            }
        }
        link.pump();
    });
}

/// Last-resort send for panics and fatal exceptions: drains what is queued if
/// the link is free, then writes `msg` straight to the UART and waits until it
/// has left, for at most [`LAST_WORDS_US`]. A leading `0x00` ends any frame
/// the panic may have cut short.
pub fn send_emergency(msg: &KernelMsg<'_>) {
    let mut buf = [0u8; MAX_FRAME];
    let Ok(frame) = encode_frame(msg, &mut buf) else {
        return;
    };
    let give_up = LastWords::start();
    let sent = LINK.try_with(|link| {
        link.drain_until(&give_up);
        if let Some(port) = link.port.as_mut() {
            give_up.write(port, frame);
        }
    });
    if sent.is_none() {
        // SAFETY: the lock holder was interrupted by this panic and will never
        // run again; we take over COM1 for the last words.
        let mut port = unsafe { SerialPort::open(COM1_BASE) };
        give_up.write(&mut port, &[0]);
        give_up.write(&mut port, frame);
    }
}

/// Sends everything queued and waits until it has left the UART, for at
/// most [`LAST_WORDS_US`]; called before the kernel ends the machine, whose
/// exit drops whatever the UART still holds.
pub fn flush_before_exit() {
    let give_up = LastWords::start();
    LINK.try_with(|link| link.drain_until(&give_up));
}

/// How long the kernel's last bytes may take to leave: a host that stopped
/// reading must not keep a dying kernel from ending the machine.
const LAST_WORDS_US: u64 = 5_000_000;

/// The deadline for the last bytes before the machine ends.
struct LastWords {
    until_us: u64,
}

impl LastWords {
    fn start() -> Self {
        Self {
            until_us: time::uptime_us() + LAST_WORDS_US,
        }
    }

    fn expired(&self) -> bool {
        time::uptime_us() >= self.until_us
    }

    /// Writes `bytes` and waits until they have left the UART, unless the
    /// deadline passes first.
    fn write(&self, port: &mut SerialPort, bytes: &[u8]) {
        port.write_all_unless(bytes, || self.expired());
        self.wait_sent(port);
    }

    /// Waits until the UART is empty: under QEMU a byte the host socket
    /// cannot take yet waits in the UART, and is lost when the machine exits.
    fn wait_sent(&self, port: &mut SerialPort) {
        while !port.all_sent() && !self.expired() {
            core::hint::spin_loop();
        }
    }
}

impl Link {
    fn send(&mut self, msg: &KernelMsg<'_>) {
        match self.batch.push(msg) {
            // The UART is pumped when the batch goes out, not per event.
            Push::Added => return,
            Push::Full => {
                self.flush_batch();
                if self.batch.push(msg) == Push::Added {
                    return;
                }
                // An empty batch always has room: not reached.
                self.count_unless(false);
                return;
            }
            Push::NotBatched => {}
        }
        // Whatever is batched happened before this message.
        self.flush_batch();
        self.report_dropped();
        let queued = self.encode(msg).is_some_and(|len| self.push_scratch(len));
        self.count_unless(queued);
        self.pump();
    }

    /// Sends the open event batch as one frame. If it does not fit, its
    /// events are counted as dropped and the next batch is a sync point,
    /// since the host cannot decode past a missing batch.
    fn flush_batch(&mut self) {
        let events = u64::from(self.batch.events());
        if events == 0 {
            return;
        }
        self.report_dropped();
        let len = self.batch.finish().and_then(|body| {
            let msg = KernelMsg::EventBatch(EventBatch { body: body.into() });
            encode_frame(&msg, &mut self.scratch).ok().map(<[u8]>::len)
        });
        let queued = len.is_some_and(|len| self.push_scratch(len));
        if !queued {
            self.dropped_unreported += events;
            self.dropped_total += events;
            self.batch.request_sync();
        }
        self.pump();
        // The next batch to open is a sync point if the last is old.
        let now = time::uptime_us();
        if now.saturating_sub(self.last_sync_us) >= SYNC_EVERY_US {
            self.sync_batches(now);
        }
    }

    /// Makes the next batch a sync point.
    fn sync_batches(&mut self, now_us: u64) {
        self.batch.request_sync();
        self.last_sync_us = now_us;
    }

    /// Like `send`, but waits for the UART to make room instead of dropping.
    fn send_waiting(&mut self, msg: &KernelMsg<'_>) {
        self.flush_batch();
        self.report_dropped();
        let queued = self.encode(msg).is_some_and(|len| {
            while TX_RING_BYTES - self.ring.len < len && self.port.is_some() {
                self.pump();
            }
            self.push_scratch(len)
        });
        self.count_unless(queued);
        self.pump();
    }

    /// Queues a `Dropped` notice for what was lost since the last one.
    fn report_dropped(&mut self) {
        if self.dropped_unreported > 0 {
            let notice = KernelMsg::Dropped {
                count: self.dropped_unreported,
            };
            if self
                .encode(&notice)
                .is_some_and(|len| self.push_scratch(len))
            {
                self.dropped_unreported = 0;
            }
        }
    }

    fn count_unless(&mut self, queued: bool) {
        if !queued {
            self.dropped_unreported += 1;
            self.dropped_total += 1;
        }
    }

    /// Encodes `msg` into the scratch buffer; its frame length.
    fn encode(&mut self, msg: &KernelMsg<'_>) -> Option<usize> {
        encode_frame(msg, &mut self.scratch).ok().map(<[u8]>::len)
    }

    /// Copies the first `len` scratch bytes into the ring, if they fit.
    fn push_scratch(&mut self, len: usize) -> bool {
        self.ring.push(&self.scratch[..len])
    }

    /// Sends the open batch and the queue, and waits until the UART is
    /// empty, unless `give_up` expires first.
    fn drain_until(&mut self, give_up: &LastWords) {
        self.flush_batch();
        while self.ring.len > 0 && !give_up.expired() {
            self.pump();
            core::hint::spin_loop();
        }
        if let Some(port) = self.port.as_mut() {
            give_up.wait_sent(port);
        }
    }

    fn pump(&mut self) {
        let Some(port) = self.port.as_mut() else {
            return;
        };
        while self.ring.len > 0 {
            let n = port.try_write(self.ring.front());
            if n == 0 {
                break;
            }
            self.ring.consume(n);
        }
        // Each IER access is an I/O exit: touch it only when the need changes.
        let want_tx_irq = self.ring.len > 0;
        if want_tx_irq != self.tx_irq_on {
            port.set_tx_interrupt(want_tx_irq);
            self.tx_irq_on = want_tx_irq;
        }
    }

    fn handle(&mut self, cmd: HostMsg) {
        match cmd {
            HostMsg::Resync => {
                // Events batched so far go out before the Hello, and the
                // batches after it start from a fresh state the host can
                // decode.
                self.flush_batch();
                self.sync_batches(time::uptime_us());
                self.send_hello();
                // A late host also wants the current picture.
                let _ = self.requests.push(HostMsg::Snapshot);
            }
            HostMsg::Ping { nonce } => {
                self.send(&KernelMsg::Pong(Pong {
                    nonce,
                    ts_us: time::uptime_us(),
                }));
            }
            cmd => {
                if !self.requests.push(cmd.clone()) {
                    self.refuse(cmd);
                }
            }
        }
    }

    /// Answers a request the queue had no room for as not done, so the
    /// host is never left waiting.
    fn refuse(&mut self, cmd: HostMsg) {
        let ts_us = time::uptime_us();
        let answer = match cmd {
            HostMsg::HeapWalk { pid, heap_id } => KernelMsg::HeapWalkEnd(HeapWalkEnd {
                ts_us,
                pid,
                heap_id,
                blocks: 0,
                complete: false,
            }),
            HostMsg::Processes { .. } => KernelMsg::ProcessListEnd(ProcessListEnd {
                ts_us,
                total_programs: 0,
                complete: false,
            }),
            HostMsg::PtDump { pid } => KernelMsg::PtDumpEnd(PtDumpEnd {
                ts_us,
                space: pid,
                complete: false,
                ..PtDumpEnd::default()
            }),
            HostMsg::Leaks { pid } => KernelMsg::LeaksEnd(LeaksEnd {
                ts_us,
                pid,
                processes: 0,
                complete: false,
            }),
            // Snapshot and Check come round again with the next heartbeat
            // or request; the others are answered at once.
            _ => return,
        };
        self.send(&answer);
    }

    fn send_hello(&mut self) {
        let Some(boot) = self.boot else { return };
        let nr_regions = boot.regions().len() as u16;
        self.send(&KernelMsg::Hello(Hello {
            version: PROTOCOL_VERSION,
            build_id: BUILD_ID.into(),
            mem_total_bytes: boot.total_ram_bytes(),
            mem_usable_bytes: boot.usable_bytes(),
            nr_regions,
            features: features::HOST_COMMANDS | features::DEBUGCON_LOG,
            cmdline: boot.cmdline().into(),
            uptime_us: time::uptime_us(),
            tsc_hz: time::tsc_hz(),
        }));
        for region in boot.mem_regions() {
            self.send(&KernelMsg::MemRegion(region));
        }
    }
}
