//! `--json`: one object per message, `"type"` first, snake_case keys.
//!
//! The shape is [`Msg`]'s serde form. Integers, addresses included, are JSON
//! numbers written exactly; a reader that parses into doubles (jq before
//! 1.7) loses the low bits of addresses above 2^53 and should read them as
//! big integers.

use crate::msg::Msg;

/// `msg` as a single-line JSON object.
pub fn json(msg: &Msg) -> String {
    // Serialization into a String only fails for maps with non-string keys
    // or failing custom impls, and `Msg` has neither.
    serde_json::to_string(msg).expect("Msg always serializes to JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{Hello, Log, LogLevel, MemKind, MemRegion, Panic};
    use probe_proto::{Exception, Heartbeat, Pong, Version};
    use serde_json::{Value, json};

    /// Parses the line back and checks its exact key set and values.
    fn check(msg: Msg, expected: Value) {
        let line = json(&msg);
        assert!(!line.contains('\n'), "one line per message: {line}");
        let got: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(got, expected, "json of {msg:?}");
        assert!(
            line.starts_with(r#"{"type":"#),
            "type comes first so lines are easy to eyeball: {line}"
        );
        // And the line reads back into the same message.
        assert_eq!(serde_json::from_str::<Msg>(&line).unwrap(), msg);
    }

    #[test]
    fn hello_json_has_type_and_every_field() {
        check(
            Msg::Hello(Hello {
                version: Version { major: 1, minor: 2 },
                build_id: "k-0.1.0".into(),
                mem_total_bytes: 134_217_728,
                mem_usable_bytes: 133_000_000,
                nr_regions: 6,
                features: 7,
                cmdline: "loglevel=3 \"q\"".into(),
                uptime_us: 1234,
            }),
            json!({"type": "hello", "version": {"major": 1, "minor": 2},
                   "build_id": "k-0.1.0", "mem_total_bytes": 134_217_728u64,
                   "mem_usable_bytes": 133_000_000u64, "nr_regions": 6, "features": 7,
                   "cmdline": "loglevel=3 \"q\"", "uptime_us": 1234}),
        );
    }

    #[test]
    fn mem_region_json_names_the_kind_in_snake_case() {
        check(
            Msg::MemRegion(MemRegion {
                index: 2,
                start: 0x10_0000,
                len: 0x7ee_0000,
                kind: MemKind::AcpiReclaimable,
            }),
            json!({"type": "mem_region", "index": 2, "start": 0x10_0000, "len": 0x7ee_0000,
                   "kind": "acpi_reclaimable"}),
        );
        check(
            Msg::MemRegion(MemRegion {
                index: 3,
                start: 0,
                len: 1,
                kind: MemKind::Other(12),
            }),
            json!({"type": "mem_region", "index": 3, "start": 0, "len": 1,
                   "kind": {"other": 12}}),
        );
    }

    #[test]
    fn log_json_has_level_in_lower_case_and_the_text_verbatim() {
        check(
            Msg::Log(Log {
                ts_us: 5,
                level: LogLevel::Warn,
                text: "line\nbreak ✓".into(),
            }),
            json!({"type": "log", "ts_us": 5, "level": "warn", "text": "line\nbreak ✓"}),
        );
    }

    #[test]
    fn heartbeat_json_has_link_counters() {
        check(
            Msg::Heartbeat(Heartbeat {
                ts_us: 1_000_000,
                rx_frames: 3,
                rx_bad: 1,
                tx_dropped: 2,
            }),
            json!({"type": "heartbeat", "ts_us": 1_000_000, "rx_frames": 3, "rx_bad": 1,
                   "tx_dropped": 2}),
        );
    }

    #[test]
    fn exception_json_keeps_64_bit_addresses_exact() {
        let line = json(&Msg::Exception(Exception {
            ts_us: 9,
            vector: 14,
            error_code: 2,
            cr2: 0xdead_b000,
            rip: 0xffff_ffff_8000_1234,
            rsp: 0xffff_8000_0000_fff0,
        }));
        assert!(line.contains(r#""rip":18446744071562072628"#), "{line}");
        check(
            Msg::Exception(Exception {
                ts_us: 9,
                vector: 14,
                error_code: 2,
                cr2: 0xdead_b000,
                rip: 0xffff_ffff_8000_1234,
                rsp: 0xffff_8000_0000_fff0,
            }),
            json!({"type": "exception", "ts_us": 9, "vector": 14, "error_code": 2,
                   "cr2": 0xdead_b000u64, "rip": 0xffff_ffff_8000_1234u64,
                   "rsp": 0xffff_8000_0000_fff0u64}),
        );
    }

    #[test]
    fn panic_json_has_message_and_location() {
        check(
            Msg::Panic(Panic {
                ts_us: 77,
                message: "oops".into(),
                file: "kernel/src/mm/heap.rs".into(),
                line: 42,
                column: 9,
            }),
            json!({"type": "panic", "ts_us": 77, "message": "oops",
                   "file": "kernel/src/mm/heap.rs", "line": 42, "column": 9}),
        );
    }

    #[test]
    fn pong_and_dropped_json() {
        check(
            Msg::Pong(Pong {
                nonce: 0xffff_ffff,
                ts_us: 1,
            }),
            json!({"type": "pong", "nonce": 0xffff_ffffu32, "ts_us": 1}),
        );
        check(
            Msg::Dropped { count: 17 },
            json!({"type": "dropped", "count": 17}),
        );
    }
}
