//! The human format: one compact, greppable line per message.
//!
//! Each line starts with the message kind, then `key=value` pairs. Strings
//! that come from the kernel are escaped so that a message can never span
//! lines or send terminal control sequences.

use std::fmt::Write as _;

use probe_proto::features;

use crate::msg::{Hello, Log, LogLevel, MemKind, MemRegion, Msg, Panic};
use probe_proto::{Exception, Heartbeat, Pong};

/// `msg` as one line of text, without the newline.
pub fn human(msg: &Msg) -> String {
    match msg {
        Msg::Hello(h) => hello(h),
        Msg::MemRegion(r) => region(r),
        Msg::Log(l) => log(l),
        Msg::Heartbeat(h) => heartbeat(h),
        Msg::Exception(e) => exception(e),
        Msg::Panic(p) => panic(p),
        Msg::Pong(p) => pong(p),
        Msg::Dropped { count } => format!("dropped count={count}"),
    }
}

fn hello(h: &Hello) -> String {
    format!(
        "hello v{}.{} build={} mem={} usable={} regions={} features={} uptime={} cmdline={:?}",
        h.version.major,
        h.version.minor,
        word(&h.build_id),
        human_bytes(h.mem_total_bytes),
        human_bytes(h.mem_usable_bytes),
        h.nr_regions,
        feature_names(h.features),
        human_time(h.uptime_us),
        h.cmdline,
    )
}

fn region(r: &MemRegion) -> String {
    // The kernel log's e820 form: inclusive end, 16 hex digits.
    let range = match r.len {
        0 => format!("0x{:016x} (empty)", r.start),
        len => format!(
            "0x{:016x}-0x{:016x}",
            r.start,
            r.start.saturating_add(len - 1)
        ),
    };
    format!(
        "region #{} [mem {range}] {} {}",
        r.index,
        human_bytes(r.len),
        mem_kind(r.kind)
    )
}

fn log(l: &Log) -> String {
    format!(
        "log t={} {} {}",
        human_time(l.ts_us),
        level(l.level),
        escape_controls(&l.text)
    )
}

fn heartbeat(h: &Heartbeat) -> String {
    format!(
        "heartbeat t={} rx={} bad={} dropped={}",
        human_time(h.ts_us),
        h.rx_frames,
        h.rx_bad,
        h.tx_dropped
    )
}

fn exception(e: &Exception) -> String {
    let mut line = format!(
        "exception t={} #{} {} err={:#x}",
        human_time(e.ts_us),
        e.vector,
        vector_name(e.vector),
        e.error_code
    );
    if e.vector == 14 {
        let _ = write!(line, "({})", page_fault_cause(e.error_code));
    }
    let _ = write!(line, " cr2={:#x} rip={:#x} rsp={:#x}", e.cr2, e.rip, e.rsp);
    line
}

fn panic(p: &Panic) -> String {
    format!(
        "panic t={} {:?} at {}:{}:{}",
        human_time(p.ts_us),
        p.message,
        word(&p.file),
        p.line,
        p.column
    )
}

fn pong(p: &Pong) -> String {
    format!("pong t={} nonce={}", human_time(p.ts_us), p.nonce)
}

/// Microseconds as seconds with all six decimals: the kernel's resolution.
pub fn human_time(us: u64) -> String {
    format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
}

/// A byte count in binary units with one decimal (`639.0KiB`), or plain
/// bytes below 1 KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1}{}", UNITS[unit])
}

fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Error => "ERROR",
        LogLevel::Warn => "WARN",
        LogLevel::Info => "INFO",
        LogLevel::Debug => "DEBUG",
    }
}

fn mem_kind(k: MemKind) -> String {
    match k {
        MemKind::Usable => "usable".into(),
        MemKind::Reserved => "reserved".into(),
        MemKind::AcpiReclaimable => "acpi-reclaimable".into(),
        MemKind::AcpiNvs => "acpi-nvs".into(),
        MemKind::Unusable => "unusable".into(),
        MemKind::Other(t) => format!("type-{t}"),
    }
}

fn feature_names(bits: u32) -> String {
    const NAMES: [(u32, &str); 3] = [
        (features::HOST_COMMANDS, "host-commands"),
        (features::DEBUGCON_LOG, "debugcon-log"),
        (features::GDB_STUB, "gdb-stub"),
    ];
    let mut names: Vec<String> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let unknown = NAMES.iter().fold(bits, |rest, (bit, _)| rest & !bit);
    if unknown != 0 {
        // Bits from a newer kernel: shown raw rather than hidden.
        names.push(format!("{unknown:#x}"));
    }
    if names.is_empty() {
        "none".into()
    } else {
        names.join(",")
    }
}

/// Names of the x86_64 exception vectors.
fn vector_name(vector: u8) -> &'static str {
    match vector {
        0 => "divide-error",
        1 => "debug",
        2 => "nmi",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound-range",
        6 => "invalid-opcode",
        7 => "device-not-available",
        8 => "double-fault",
        10 => "invalid-tss",
        11 => "segment-not-present",
        12 => "stack-segment",
        13 => "general-protection",
        14 => "page-fault",
        16 => "x87-fp",
        17 => "alignment-check",
        18 => "machine-check",
        19 => "simd-fp",
        20 => "virtualization",
        21 => "control-protection",
        28 => "hypervisor-injection",
        29 => "vmm-communication",
        30 => "security",
        _ => "unknown",
    }
}

/// The page-fault error code's bits in words, e.g. `not-present,write,user`.
fn page_fault_cause(code: u64) -> String {
    let mut parts = vec![if code & 1 == 0 {
        "not-present"
    } else {
        "protection"
    }];
    parts.push(if code & (1 << 4) != 0 {
        "fetch"
    } else if code & (1 << 1) != 0 {
        "write"
    } else {
        "read"
    });
    parts.push(if code & (1 << 2) != 0 {
        "user"
    } else {
        "kernel"
    });
    if code & (1 << 3) != 0 {
        parts.push("reserved-bit");
    }
    if code & (1 << 5) != 0 {
        parts.push("pkey");
    }
    if code & (1 << 6) != 0 {
        parts.push("shadow-stack");
    }
    parts.join(",")
}

/// A kernel string as one token: as is when it has no space, quote or control
/// character, quoted and escaped otherwise.
fn word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != '"')
    {
        s.to_owned()
    } else {
        format!("{s:?}")
    }
}

/// Escapes control characters (newlines, escapes) but keeps the rest, so a
/// log line stays one readable line.
fn escape_controls(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto::Version;

    #[test]
    fn hello_line_summarises_version_build_memory_and_cmdline() {
        let line = human(&Msg::Hello(Hello {
            version: Version { major: 1, minor: 0 },
            build_id: "kernel-0.1.0-debug".into(),
            mem_total_bytes: 128 << 20,
            mem_usable_bytes: 130_000_000,
            nr_regions: 6,
            features: features::HOST_COMMANDS | features::GDB_STUB,
            cmdline: "loglevel=2 test=\"a b\"".into(),
            uptime_us: 12_345,
        }));
        assert_eq!(
            line,
            "hello v1.0 build=kernel-0.1.0-debug mem=128.0MiB usable=124.0MiB regions=6 \
             features=host-commands,gdb-stub uptime=0.012345s cmdline=\"loglevel=2 test=\\\"a b\\\"\""
        );
    }

    #[test]
    fn region_line_uses_the_e820_inclusive_range() {
        let line = human(&Msg::MemRegion(MemRegion {
            index: 0,
            start: 0,
            len: 0x9fc00,
            kind: MemKind::Usable,
        }));
        assert_eq!(
            line,
            "region #0 [mem 0x0000000000000000-0x000000000009fbff] 639.0KiB usable"
        );
        let empty = human(&Msg::MemRegion(MemRegion {
            index: 1,
            start: 0x1000,
            len: 0,
            kind: MemKind::Other(9),
        }));
        assert_eq!(
            empty,
            "region #1 [mem 0x0000000000001000 (empty)] 0B type-9"
        );
    }

    #[test]
    fn log_line_escapes_control_characters_but_keeps_unicode() {
        let line = human(&Msg::Log(Log {
            ts_us: 1_234_567,
            level: LogLevel::Info,
            text: "heap ✓\nnext\x1b[31m".into(),
        }));
        assert_eq!(line, "log t=1.234567s INFO heap ✓\\nnext\\u{1b}[31m");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn heartbeat_pong_and_dropped_lines() {
        assert_eq!(
            human(&Msg::Heartbeat(Heartbeat {
                ts_us: 1_234_000,
                rx_frames: 3,
                rx_bad: 0,
                tx_dropped: 0
            })),
            "heartbeat t=1.234000s rx=3 bad=0 dropped=0"
        );
        assert_eq!(
            human(&Msg::Pong(Pong {
                nonce: 42,
                ts_us: 5
            })),
            "pong t=0.000005s nonce=42"
        );
        assert_eq!(human(&Msg::Dropped { count: 3 }), "dropped count=3");
    }

    #[test]
    fn page_fault_line_names_the_vector_and_decodes_the_error_code() {
        let line = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 14,
            error_code: 0x6,
            cr2: 0,
            rip: 0xffff_ffff_8000_1234,
            rsp: 0xffff_8000_0000_0ff0,
        }));
        assert_eq!(
            line,
            "exception t=0.000000s #14 page-fault err=0x6(not-present,write,user) cr2=0x0 \
             rip=0xffffffff80001234 rsp=0xffff800000000ff0"
        );
        let fetch = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 14,
            error_code: 0x11,
            cr2: 0x1000,
            rip: 0x1000,
            rsp: 0,
        }));
        assert!(
            fetch.contains("err=0x11(protection,fetch,kernel)"),
            "{fetch}"
        );
        let gp = human(&Msg::Exception(Exception {
            ts_us: 0,
            vector: 13,
            error_code: 0,
            cr2: 0,
            rip: 1,
            rsp: 2,
        }));
        assert!(gp.contains("#13 general-protection err=0x0 cr2"), "{gp}");
    }

    #[test]
    fn panic_line_quotes_the_message_and_gives_the_location() {
        assert_eq!(
            human(&Msg::Panic(Panic {
                ts_us: 2_000_000,
                message: "double free of 0x1000".into(),
                file: "kernel/src/mm/heap.rs".into(),
                line: 120,
                column: 13,
            })),
            "panic t=2.000000s \"double free of 0x1000\" at kernel/src/mm/heap.rs:120:13"
        );
    }

    #[test]
    fn unknown_feature_bits_are_shown_raw_and_no_bits_read_none() {
        assert_eq!(feature_names(0), "none");
        assert_eq!(
            feature_names(features::DEBUGCON_LOG | 0x100),
            "debugcon-log,0x100"
        );
    }

    #[test]
    fn byte_counts_use_binary_units() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1024), "1.0KiB");
        assert_eq!(human_bytes(128 << 20), "128.0MiB");
        assert_eq!(human_bytes(3 << 30), "3.0GiB");
        assert_eq!(human_bytes(u64::MAX), "16.0EiB");
    }
}
