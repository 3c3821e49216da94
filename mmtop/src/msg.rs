//! Owned kernel messages: what the host keeps after a frame's bytes are gone.
//!
//! `probe_proto::KernelMsg` borrows its strings from the decoder's buffer,
//! which the next byte overwrites; [`Msg`] owns them. Its serde form is the
//! `--json` output: an object with a snake_case `"type"` naming the variant
//! and the variant's fields beside it.

use serde::{Deserialize, Serialize};

pub use probe_proto::{Exception, Heartbeat, Pong, Version};

/// A kernel-to-host message, owned.
///
/// Plain-number payloads (`Heartbeat`, `Exception`, `Pong`) are the wire
/// types themselves; those holding strings or wire enums have owned mirrors
/// here so that their JSON spelling is mmtop's choice, not the wire's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg {
    /// Kernel identity; first message after boot and after a resync.
    Hello(Hello),
    /// One entry of the boot memory map.
    MemRegion(MemRegion),
    /// A kernel log line.
    Log(Log),
    /// Periodic liveness and link counters.
    Heartbeat(Heartbeat),
    /// An unresolved CPU exception.
    Exception(Exception),
    /// A kernel panic.
    Panic(Panic),
    /// Answer to a ping.
    Pong(Pong),
    /// Messages the kernel could not queue.
    Dropped {
        /// Number of messages lost.
        count: u64,
    },
}

impl Msg {
    /// The variant's name as it appears in `"type"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Hello(_) => "hello",
            Msg::MemRegion(_) => "mem_region",
            Msg::Log(_) => "log",
            Msg::Heartbeat(_) => "heartbeat",
            Msg::Exception(_) => "exception",
            Msg::Panic(_) => "panic",
            Msg::Pong(_) => "pong",
            Msg::Dropped { .. } => "dropped",
        }
    }
}

/// Owned [`probe_proto::Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version the kernel speaks.
    pub version: Version,
    /// Kernel build identity.
    pub build_id: String,
    /// Bytes of RAM in the boot memory map.
    pub mem_total_bytes: u64,
    /// Bytes the boot memory map marks usable.
    pub mem_usable_bytes: u64,
    /// How many `MemRegion` messages follow.
    pub nr_regions: u16,
    /// `probe_proto::features` bits.
    pub features: u32,
    /// Kernel command line.
    pub cmdline: String,
    /// Microseconds since boot.
    pub uptime_us: u64,
}

/// Owned [`probe_proto::MemRegion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Kind of a memory-map region. JSON: `"usable"`, ..., or `{"other": N}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemKind {
    /// Free RAM.
    Usable,
    /// Firmware-reserved.
    Reserved,
    /// ACPI tables, reclaimable.
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Unusable,
    /// Any other E820 type.
    Other(u32),
}

/// Log severity. JSON: `"error"`, `"warn"`, `"info"`, `"debug"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// Owned [`probe_proto::Log`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Log {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Severity.
    pub level: LogLevel,
    /// The text.
    pub text: String,
}

/// Owned [`probe_proto::Panic`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Panic {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The panic message.
    pub message: String,
    /// Source file.
    pub file: String,
    /// Line in `file`.
    pub line: u32,
    /// Column in `file`.
    pub column: u32,
}

impl From<&probe_proto::KernelMsg<'_>> for Msg {
    fn from(msg: &probe_proto::KernelMsg<'_>) -> Self {
        use probe_proto::KernelMsg as K;
        match msg {
            K::Hello(h) => Msg::Hello(Hello {
                version: h.version,
                build_id: h.build_id.to_owned(),
                mem_total_bytes: h.mem_total_bytes,
                mem_usable_bytes: h.mem_usable_bytes,
                nr_regions: h.nr_regions,
                features: h.features,
                cmdline: h.cmdline.to_owned(),
                uptime_us: h.uptime_us,
            }),
            K::MemRegion(r) => Msg::MemRegion(MemRegion {
                index: r.index,
                start: r.start,
                len: r.len,
                kind: r.kind.into(),
            }),
            K::Log(l) => Msg::Log(Log {
                ts_us: l.ts_us,
                level: l.level.into(),
                text: l.text.to_owned(),
            }),
            K::Heartbeat(h) => Msg::Heartbeat(*h),
            K::Exception(e) => Msg::Exception(*e),
            K::Panic(p) => Msg::Panic(Panic {
                ts_us: p.ts_us,
                message: p.message.to_owned(),
                file: p.file.to_owned(),
                line: p.line,
                column: p.column,
            }),
            K::Pong(p) => Msg::Pong(*p),
            K::Dropped { count } => Msg::Dropped { count: *count },
        }
    }
}

impl From<probe_proto::MemKind> for MemKind {
    fn from(kind: probe_proto::MemKind) -> Self {
        use probe_proto::MemKind as K;
        match kind {
            K::Usable => MemKind::Usable,
            K::Reserved => MemKind::Reserved,
            K::AcpiReclaimable => MemKind::AcpiReclaimable,
            K::AcpiNvs => MemKind::AcpiNvs,
            K::Unusable => MemKind::Unusable,
            K::Other(t) => MemKind::Other(t),
        }
    }
}

impl From<probe_proto::LogLevel> for LogLevel {
    fn from(level: probe_proto::LogLevel) -> Self {
        use probe_proto::LogLevel as L;
        match level {
            L::Error => LogLevel::Error,
            L::Warn => LogLevel::Warn,
            L::Info => LogLevel::Info,
            L::Debug => LogLevel::Debug,
        }
    }
}
