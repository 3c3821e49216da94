//! Shared test helpers: owned mirrors of the borrowed messages and proptest
//! strategies that reach every variant.
//!
//! The wire types borrow their strings, so a strategy cannot hand one out
//! directly; it produces an [`OwnedKernelMsg`] that lends a `KernelMsg` on
//! demand, and a decoded message is turned back into an owned one so it can
//! outlive the decoder that holds its bytes.
#![allow(dead_code)] // Each test binary uses a different subset.

use probe_proto::{
    Exception, Heartbeat, Hello, HostMsg, KernelMsg, Log, LogLevel, MemKind, MemRegion, Panic,
    Pong, Version,
};
use proptest::prelude::*;

/// An owned [`KernelMsg`]: the same variants, with `String` for `&str`.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedKernelMsg {
    Hello {
        version: Version,
        build_id: String,
        mem_total_bytes: u64,
        mem_usable_bytes: u64,
        nr_regions: u16,
        features: u32,
        cmdline: String,
        uptime_us: u64,
    },
    MemRegion(MemRegion),
    Log {
        ts_us: u64,
        level: LogLevel,
        text: String,
    },
    Heartbeat(Heartbeat),
    Exception(Exception),
    Panic {
        ts_us: u64,
        message: String,
        file: String,
        line: u32,
        column: u32,
    },
    Pong(Pong),
    Dropped {
        count: u64,
    },
}

impl OwnedKernelMsg {
    /// The wire message, borrowing this one's strings.
    pub fn as_msg(&self) -> KernelMsg<'_> {
        match self {
            Self::Hello {
                version,
                build_id,
                mem_total_bytes,
                mem_usable_bytes,
                nr_regions,
                features,
                cmdline,
                uptime_us,
            } => KernelMsg::Hello(Hello {
                version: *version,
                build_id,
                mem_total_bytes: *mem_total_bytes,
                mem_usable_bytes: *mem_usable_bytes,
                nr_regions: *nr_regions,
                features: *features,
                cmdline,
                uptime_us: *uptime_us,
            }),
            Self::MemRegion(r) => KernelMsg::MemRegion(*r),
            Self::Log { ts_us, level, text } => KernelMsg::Log(Log {
                ts_us: *ts_us,
                level: *level,
                text,
            }),
            Self::Heartbeat(h) => KernelMsg::Heartbeat(*h),
            Self::Exception(e) => KernelMsg::Exception(*e),
            Self::Panic {
                ts_us,
                message,
                file,
                line,
                column,
            } => KernelMsg::Panic(Panic {
                ts_us: *ts_us,
                message,
                file,
                line: *line,
                column: *column,
            }),
            Self::Pong(p) => KernelMsg::Pong(*p),
            Self::Dropped { count } => KernelMsg::Dropped { count: *count },
        }
    }

    /// Copies a decoded message out of the decoder's buffer.
    pub fn from_msg(msg: &KernelMsg<'_>) -> Self {
        match msg {
            KernelMsg::Hello(h) => Self::Hello {
                version: h.version,
                build_id: h.build_id.to_owned(),
                mem_total_bytes: h.mem_total_bytes,
                mem_usable_bytes: h.mem_usable_bytes,
                nr_regions: h.nr_regions,
                features: h.features,
                cmdline: h.cmdline.to_owned(),
                uptime_us: h.uptime_us,
            },
            KernelMsg::MemRegion(r) => Self::MemRegion(*r),
            KernelMsg::Log(l) => Self::Log {
                ts_us: l.ts_us,
                level: l.level,
                text: l.text.to_owned(),
            },
            KernelMsg::Heartbeat(h) => Self::Heartbeat(*h),
            KernelMsg::Exception(e) => Self::Exception(*e),
            KernelMsg::Panic(p) => Self::Panic {
                ts_us: p.ts_us,
                message: p.message.to_owned(),
                file: p.file.to_owned(),
                line: p.line,
                column: p.column,
            },
            KernelMsg::Pong(p) => Self::Pong(*p),
            KernelMsg::Dropped { count } => Self::Dropped { count: *count },
        }
    }
}

/// Any string of up to 64 chars: all of Unicode, newlines and NULs included.
///
/// 64 chars of at most 4 UTF-8 bytes each keep the largest message (two
/// strings plus fixed fields) well inside `MAX_PAYLOAD`.
pub fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<char>(), 0..=64).prop_map(|cs| cs.into_iter().collect())
}

pub fn version() -> impl Strategy<Value = Version> {
    (any::<u16>(), any::<u16>()).prop_map(|(major, minor)| Version { major, minor })
}

pub fn mem_kind() -> impl Strategy<Value = MemKind> {
    prop_oneof![
        Just(MemKind::Usable),
        Just(MemKind::Reserved),
        Just(MemKind::AcpiReclaimable),
        Just(MemKind::AcpiNvs),
        Just(MemKind::Unusable),
        any::<u32>().prop_map(MemKind::Other),
    ]
}

pub fn log_level() -> impl Strategy<Value = LogLevel> {
    prop_oneof![
        Just(LogLevel::Error),
        Just(LogLevel::Warn),
        Just(LogLevel::Info),
        Just(LogLevel::Debug),
    ]
}

/// Every [`KernelMsg`] variant with arbitrary field values.
pub fn kernel_msg() -> impl Strategy<Value = OwnedKernelMsg> {
    prop_oneof![
        (
            version(),
            text(),
            any::<u64>(),
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            text(),
            any::<u64>(),
        )
            .prop_map(
                |(
                    version,
                    build_id,
                    mem_total_bytes,
                    mem_usable_bytes,
                    nr_regions,
                    features,
                    cmdline,
                    uptime_us,
                )| OwnedKernelMsg::Hello {
                    version,
                    build_id,
                    mem_total_bytes,
                    mem_usable_bytes,
                    nr_regions,
                    features,
                    cmdline,
                    uptime_us,
                }
            ),
        (any::<u16>(), any::<u64>(), any::<u64>(), mem_kind()).prop_map(
            |(index, start, len, kind)| OwnedKernelMsg::MemRegion(MemRegion {
                index,
                start,
                len,
                kind
            })
        ),
        (any::<u64>(), log_level(), text()).prop_map(|(ts_us, level, text)| OwnedKernelMsg::Log {
            ts_us,
            level,
            text
        }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(ts_us, rx_frames, rx_bad, tx_dropped)| OwnedKernelMsg::Heartbeat(Heartbeat {
                ts_us,
                rx_frames,
                rx_bad,
                tx_dropped
            })
        ),
        (
            any::<u64>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(ts_us, vector, error_code, cr2, rip, rsp)| {
                OwnedKernelMsg::Exception(Exception {
                    ts_us,
                    vector,
                    error_code,
                    cr2,
                    rip,
                    rsp,
                })
            }),
        (any::<u64>(), text(), text(), any::<u32>(), any::<u32>()).prop_map(
            |(ts_us, message, file, line, column)| OwnedKernelMsg::Panic {
                ts_us,
                message,
                file,
                line,
                column
            }
        ),
        (any::<u32>(), any::<u64>())
            .prop_map(|(nonce, ts_us)| OwnedKernelMsg::Pong(Pong { nonce, ts_us })),
        any::<u64>().prop_map(|count| OwnedKernelMsg::Dropped { count }),
    ]
}

/// Every [`HostMsg`] variant with arbitrary field values.
pub fn host_msg() -> impl Strategy<Value = HostMsg> {
    prop_oneof![
        Just(HostMsg::Resync),
        any::<u32>().prop_map(|nonce| HostMsg::Ping { nonce }),
    ]
}

/// Encodes one message as a frame, terminator included.
pub fn frame_of<M: serde::Serialize>(msg: &M) -> Vec<u8> {
    let mut out = [0u8; probe_proto::frame::MAX_FRAME];
    probe_proto::encode_frame(msg, &mut out)
        .expect("test messages fit in a frame")
        .to_vec()
}
