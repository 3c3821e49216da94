//! Message types of both directions.
//!
//! Strings are borrowed (`&str`) so the kernel sends without allocating and
//! the host decodes without copying; a host that keeps a message converts it
//! to its own types. Append variants and fields only: order is wire format.

use serde::{Deserialize, Serialize};

/// A protocol version: `major` changes break the wire format, `minor` ones
/// only add messages.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Backward-compatible additions.
    pub minor: u16,
}

impl Version {
    /// Whether a peer speaking `self` can talk to one speaking `other`.
    pub fn is_compatible_with(self, other: Version) -> bool {
        self.major == other.major
    }
}

/// Feature bits announced in [`Hello::features`].
pub mod features {
    /// The kernel accepts [`HostMsg`](crate::HostMsg) commands on COM1.
    pub const HOST_COMMANDS: u32 = 1 << 0;
    /// Human-readable logs are also written to the debug console (port 0xE9).
    pub const DEBUGCON_LOG: u32 = 1 << 1;
    /// A GDB remote stub listens on COM2.
    pub const GDB_STUB: u32 = 1 << 2;
}

/// Messages from the kernel to the host.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum KernelMsg<'a> {
    /// First message after boot and the answer to [`HostMsg::Resync`].
    #[serde(borrow)]
    Hello(Hello<'a>),
    /// One entry of the boot memory map; `Hello::nr_regions` of them follow a `Hello`.
    MemRegion(MemRegion),
    /// A human-readable log line.
    #[serde(borrow)]
    Log(Log<'a>),
    /// Periodic liveness and link statistics.
    Heartbeat(Heartbeat),
    /// A CPU exception the kernel did not resolve.
    Exception(Exception),
    /// A kernel panic; the kernel stops after sending it.
    #[serde(borrow)]
    Panic(Panic<'a>),
    /// Answer to [`HostMsg::Ping`], echoing its nonce.
    Pong(Pong),
    /// Frames the kernel could not queue since the last `Dropped`.
    Dropped {
        /// Number of messages lost.
        count: u64,
    },
}

/// Messages from the host to the kernel.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum HostMsg {
    /// Ask for a fresh `Hello` and full state, e.g. after connecting late.
    Resync,
    /// Liveness check; answered by [`KernelMsg::Pong`] with the same nonce.
    Ping {
        /// Opaque value echoed back.
        nonce: u32,
    },
}

/// Kernel identity and the summary of its memory.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Hello<'a> {
    /// Protocol version the kernel speaks.
    pub version: Version,
    /// Identifies the kernel build (crate version and build profile).
    pub build_id: &'a str,
    /// Bytes of RAM, as the boot memory map reports it: usable RAM plus
    /// firmware-reserved RAM below the top of usable memory.
    pub mem_total_bytes: u64,
    /// Bytes the boot memory map marks usable.
    pub mem_usable_bytes: u64,
    /// How many [`KernelMsg::MemRegion`] messages follow.
    pub nr_regions: u16,
    /// [`features`] bits.
    pub features: u32,
    /// The kernel command line.
    pub cmdline: &'a str,
    /// Microseconds since boot.
    pub uptime_us: u64,
}

/// Kind of a memory-map region (the E820 types).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemKind {
    /// Free RAM.
    Usable,
    /// Firmware-reserved.
    Reserved,
    /// ACPI tables, reclaimable after parsing.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Unusable,
    /// Any other E820 type, carried as is.
    Other(u32),
}

/// One region of the boot memory map.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemRegion {
    /// Position in the map, from 0.
    pub index: u16,
    /// Physical start address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the region is.
    pub kind: MemKind,
}

/// Severity of a log line; numerically the kernel's `loglevel=`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something looks wrong.
    Warn,
    /// Normal progress.
    Info,
    /// Detail for debugging.
    Debug,
}

/// A human-readable kernel log line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Log<'a> {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Severity.
    pub level: LogLevel,
    /// The text, without a trailing newline.
    pub text: &'a str,
}

/// Periodic liveness report with link counters.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Host frames decoded and handled.
    pub rx_frames: u64,
    /// Host frames rejected (bad COBS, CRC, unknown message, too long).
    pub rx_bad: u64,
    /// Kernel messages dropped because the transmit buffer was full.
    pub tx_dropped: u64,
}

/// A CPU exception, with the state needed to find its cause.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exception {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Interrupt vector (14 = page fault, 8 = double fault, ...).
    pub vector: u8,
    /// The error code the CPU pushed, or 0.
    pub error_code: u64,
    /// CR2: the faulting linear address of a page fault.
    pub cr2: u64,
    /// Instruction pointer at the fault.
    pub rip: u64,
    /// Stack pointer at the fault.
    pub rsp: u64,
}

/// A kernel panic report.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Panic<'a> {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The panic message (truncated to fit a frame).
    pub message: &'a str,
    /// Source file of the panic.
    pub file: &'a str,
    /// Line in `file`.
    pub line: u32,
    /// Column in `file`.
    pub column: u32,
}

/// Answer to a ping.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    /// The ping's nonce.
    pub nonce: u32,
    /// Microseconds since boot.
    pub ts_us: u64,
}
