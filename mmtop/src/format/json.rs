//! `--json`: one object per message, `"type"` first, snake_case keys.
//!
//! The object is internally tagged: `"type"` names the variant in snake_case
//! and the variant's fields follow in declaration order. Enums inside a
//! message keep probe-proto's serde form (`"kernel_heap"`, `{"process":7}`).
//! Integers, addresses included, are JSON numbers written exactly; a reader
//! that parses into doubles (jq before 1.7) loses the low bits of addresses
//! above 2^53 and should read them as big integers.
//!
//! probe-proto's `KernelMsg` is externally tagged (`{"MemoryStats":{...}}`),
//! as postcard needs, so [`json`] moves the tag inside and [`from_json`]
//! moves it back out; both are generic over the variants.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Msg;

/// `msg` as a single-line JSON object.
pub fn json(msg: &Msg) -> String {
    // Serialization into a String only fails for maps with non-string keys
    // or failing custom impls, and a message has neither.
    let external = serde_json::to_string(msg).expect("a kernel message serializes to JSON");
    escape_invisible(&tag_inside(&external))
}

/// serde_json leaves DEL and the C1 controls (U+0080..U+009F) raw, which a
/// terminal may act on; they are written `\u007f`, `\u009b` instead. Inside
/// a JSON text they can only occur in strings, where the escape means the
/// same character.
fn escape_invisible(text: &str) -> String {
    if !text.chars().any(is_invisible) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_invisible(c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_invisible(c: char) -> bool {
    c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c)
}

/// A line of [`json`] read back into the message.
pub fn from_json(line: &str) -> Result<Msg, serde_json::Error> {
    let mut fields: Map<String, Value> = serde_json::from_str(line)?;
    let Some(Value::String(kind)) = fields.remove("type") else {
        return Err(serde::de::Error::custom(
            "a message object needs a string \"type\"",
        ));
    };
    let external = Map::from_iter([(upper_camel_case(&kind), Value::Object(fields))]);
    Msg::deserialize(Value::Object(external))
}

/// serde_json's `{"Variant":{fields}}` as `{"type":"variant",fields}`.
///
/// This works on the compact text rather than on a `serde_json::Value`,
/// whose map would sort the fields: the text keeps declaration order. A
/// variant name is an identifier, so the first `":` ends it.
fn tag_inside(external: &str) -> String {
    let (variant, payload) = external
        .strip_prefix("{\"")
        .and_then(|s| s.strip_suffix('}'))
        .and_then(|s| s.split_once("\":"))
        .expect("a message serializes as a one-key object");
    let fields = payload
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .expect("every message variant has named fields");
    let comma = if fields.is_empty() { "" } else { "," };
    format!("{{\"type\":\"{}\"{comma}{fields}}}", snake_case(variant))
}

/// `MemoryStats` as `memory_stats`.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// `memory_stats` as `MemoryStats`.
fn upper_camel_case(name: &str) -> String {
    name.split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn del_and_c1_controls_are_escaped_and_read_back() {
        let msg = Msg::Log(probe_proto::Log {
            ts_us: 1,
            level: probe_proto::LogLevel::Info,
            text: "a\u{7f}b\u{9b}31mc\u{1b}é".into(),
        });
        let line = json(&msg);
        assert!(line.contains(r"a\u007fb\u009b31mc\u001bé"), "{line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert_eq!(from_json(&line).unwrap(), msg);
    }
    use crate::memory_fixture::{heap_block, heap_check, memory_stats};
    use crate::procs_fixture::{memtest_info, memtest_leak, memtest_vmas};
    use probe_proto::{
        EventCounters, Exception, ExitReason, FaultResolution, FrameCheck, FrameErrorEvent,
        FrameErrorKind, FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent,
        HeapErrorKind, HeapEvent, HeapStats, HeapWalkEnd, Heartbeat, Hello, KernelMsg as K, Leak,
        Log, LogLevel, MapEvent, MemKind, MemRegion, MemoryStats, PageEvent, PageFault, Panic,
        Pong, ProcState, ProcessEvent, ProcessExit, ProcessHeap, ProcessInfo, ProcessListEnd,
        ProcessShed, ProcessVma, Version, VmaKind,
    };
    use serde_json::json;

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
        assert_eq!(from_json(&line).unwrap(), msg);
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
                tsc_hz: 2_000_000_000,
            }),
            json!({"type": "hello", "version": {"major": 1, "minor": 2},
                   "build_id": "k-0.1.0", "mem_total_bytes": 134_217_728u64,
                   "mem_usable_bytes": 133_000_000u64, "nr_regions": 6, "features": 7,
                   "cmdline": "loglevel=3 \"q\"", "uptime_us": 1234,
                   "tsc_hz": 2_000_000_000u64}),
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

    fn heap_stats_json() -> Value {
        json!({"pid": 0, "heap_id": 0, "region_bytes": 65_536, "max_bytes": 1u64 << 30,
               "used_bytes": 1536, "free_bytes": 61_440, "overhead_bytes": 256,
               "total_blocks": 12, "used_blocks": 9, "free_blocks": 3, "largest_free": 40_960})
    }

    #[test]
    fn memory_stats_json_nests_usage_heap_and_counters() {
        check(
            Msg::MemoryStats(MemoryStats {
                ts_us: 7,
                usage: FrameUsage {
                    unusable: 1,
                    process: 1959,
                    ..memory_stats().usage
                },
                ..memory_stats()
            }),
            json!({"type": "memory_stats", "ts_us": 7, "total_frames": 32_768,
                   "free_frames": 30_000,
                   "usage": {"free": 30_000, "unusable": 1, "reserved": 256,
                             "kernel_image": 512, "boot_info": 4, "bitmap": 2,
                             "kernel_heap": 16, "kernel_stack": 8, "page_table": 6,
                             "process": 1959, "other": 4},
                   "kernel_heap": heap_stats_json(),
                   "counters": {"page_allocs": 10, "page_frees": 2, "maps": 5, "unmaps": 0,
                                "heap_allocs": 100, "heap_frees": 90, "heap_errors": 1,
                                "frame_errors": 0}}),
        );
    }

    #[test]
    fn page_event_json_spells_the_owner_in_snake_case() {
        let e = PageEvent {
            ts_us: 1,
            addr: 0x20_0000,
            count: 4,
            owner: FrameOwner::KernelHeap,
            caller: 0xffff_ffff_8000_1234,
        };
        check(
            Msg::PageAlloc(e),
            json!({"type": "page_alloc", "ts_us": 1, "addr": 0x20_0000, "count": 4,
                   "owner": "kernel_heap", "caller": 0xffff_ffff_8000_1234u64}),
        );
        check(
            Msg::PageFree(PageEvent {
                owner: FrameOwner::Process(7),
                ..e
            }),
            json!({"type": "page_free", "ts_us": 1, "addr": 0x20_0000, "count": 4,
                   "owner": {"process": 7}, "caller": 0xffff_ffff_8000_1234u64}),
        );
    }

    #[test]
    fn map_and_heap_event_json() {
        let m = MapEvent {
            ts_us: 2,
            space: 0x1000,
            virt: 0xffff_8000_0000_0000,
            phys: 0x30_0000,
            size: 4096,
            flags: (1 << 63) | 3,
            caller: 5,
        };
        let mj = |t: &str| {
            json!({"type": t, "ts_us": 2, "space": 0x1000, "virt": 0xffff_8000_0000_0000u64,
                   "phys": 0x30_0000, "size": 4096, "flags": (1u64 << 63) | 3, "caller": 5})
        };
        check(Msg::Map(m), mj("map"));
        check(Msg::Unmap(m), mj("unmap"));
        let h = HeapEvent {
            ts_us: 3,
            pid: 0,
            heap_id: 1,
            addr: 0x1040,
            size: 48,
            align: 16,
            key: 9,
            caller: 9,
        };
        let hj = |t: &str| {
            json!({"type": t, "ts_us": 3, "pid": 0, "heap_id": 1, "addr": 0x1040, "size": 48,
                   "align": 16, "key": 9, "caller": 9})
        };
        check(Msg::HeapAlloc(h), hj("heap_alloc"));
        check(Msg::HeapFree(h), hj("heap_free"));
    }

    #[test]
    fn error_event_json_names_the_kind() {
        check(
            Msg::HeapError(HeapErrorEvent {
                ts_us: 4,
                pid: 0,
                heap_id: 0,
                kind: HeapErrorKind::RedZoneOverflow { offset: 52 },
                addr: 0x1040,
                size: 48,
                caller: 1,
            }),
            json!({"type": "heap_error", "ts_us": 4, "pid": 0, "heap_id": 0,
                   "kind": {"red_zone_overflow": {"offset": 52}}, "addr": 0x1040, "size": 48,
                   "caller": 1}),
        );
        check(
            Msg::FrameError(FrameErrorEvent {
                ts_us: 5,
                kind: FrameErrorKind::DoubleFree,
                addr: 0x5000,
                count: 1,
                caller: 2,
            }),
            json!({"type": "frame_error", "ts_us": 5, "kind": "double_free", "addr": 0x5000,
                   "count": 1, "caller": 2}),
        );
    }

    #[test]
    fn check_results_json() {
        check(
            Msg::FrameCheck(FrameCheck {
                ts_us: 6,
                consistent: false,
                nr_frames: 100,
                free_counted: 50,
                free_recorded: 51,
                total_counted: 90,
                total_recorded: 90,
                used_without_owner: 1,
                free_with_owner: 0,
                invalid_owners: 0,
                summary_mismatches: 0,
                padding_mismatches: 0,
            }),
            json!({"type": "frame_check", "ts_us": 6, "consistent": false, "nr_frames": 100,
                   "free_counted": 50, "free_recorded": 51, "total_counted": 90,
                   "total_recorded": 90, "used_without_owner": 1, "free_with_owner": 0,
                   "invalid_owners": 0, "summary_mismatches": 0, "padding_mismatches": 0}),
        );
        let ok = HeapCheck {
            ts_us: 7,
            ..heap_check(0, true)
        };
        check(
            Msg::HeapCheck(ok),
            json!({"type": "heap_check", "ts_us": 7, "pid": 0, "heap_id": 0, "ok": true,
                   "error": null, "addr": 0, "stats": heap_stats_json()}),
        );
        check(
            Msg::HeapCheck(HeapCheck {
                ok: false,
                error: Some(HeapErrorKind::CorruptHeader),
                addr: 0x1000,
                ..ok
            }),
            json!({"type": "heap_check", "ts_us": 7, "pid": 0, "heap_id": 0, "ok": false,
                   "error": "corrupt_header", "addr": 0x1000, "stats": heap_stats_json()}),
        );
    }

    #[test]
    fn heap_walk_json() {
        check(
            Msg::HeapBlock(heap_block()),
            json!({"type": "heap_block", "pid": 0, "heap_id": 0, "addr": 0x1040, "size": 64,
                   "used": true, "key": 0xabc}),
        );
        check(
            Msg::HeapWalkEnd(HeapWalkEnd {
                ts_us: 8,
                pid: 0,
                heap_id: 0,
                blocks: 12,
                complete: true,
            }),
            json!({"type": "heap_walk_end", "ts_us": 8, "pid": 0, "heap_id": 0, "blocks": 12,
                   "complete": true}),
        );
    }

    #[test]
    fn process_lifecycle_json() {
        let e = ProcessEvent {
            ts_us: 1,
            pid: 3,
            parent: 0,
            name: "memtest".into(),
        };
        check(
            Msg::ProcessSpawn(e.clone()),
            json!({"type": "process_spawn", "ts_us": 1, "pid": 3, "parent": 0,
                   "name": "memtest"}),
        );
        check(
            Msg::ProcessRename(e),
            json!({"type": "process_rename", "ts_us": 1, "pid": 3, "parent": 0,
                   "name": "memtest"}),
        );
        let exit = ProcessExit {
            ts_us: 2,
            pid: 3,
            reason: ExitReason::Exited(-1),
            leaked_blocks: 2,
            leaked_bytes: 300,
            frames_freed: 12,
        };
        check(
            Msg::ProcessExit(exit),
            json!({"type": "process_exit", "ts_us": 2, "pid": 3, "reason": {"exited": -1},
                   "leaked_blocks": 2, "leaked_bytes": 300, "frames_freed": 12}),
        );
        check(
            Msg::ProcessExit(ProcessExit {
                reason: ExitReason::Killed { vector: 14 },
                ..exit
            }),
            json!({"type": "process_exit", "ts_us": 2, "pid": 3,
                   "reason": {"killed": {"vector": 14}},
                   "leaked_blocks": 2, "leaked_bytes": 300, "frames_freed": 12}),
        );
    }

    #[test]
    fn process_listing_json() {
        check(
            Msg::ProcessInfo(ProcessInfo {
                ts_us: 3,
                ..memtest_info()
            }),
            json!({"type": "process_info", "ts_us": 3, "pid": 1, "parent": 0,
                   "name": "memtest", "state": "sleeping", "nr_heaps": 2, "nr_sheds": 2,
                   "nr_vmas": 7, "total_heap_size": 131_072, "total_heap_used": 600,
                   "total_heap_free": 130_472, "total_shed_size": 16_384,
                   "resident_frames": 10, "page_table_frames": 4}),
        );
        check(
            Msg::ProcessHeap(ProcessHeap {
                pid: 1,
                heap_id: 7,
                start: 0x1000,
                heap_size: 4096,
                heap_used: 16,
                heap_free: 4080,
                used_blocks: 1,
                largest_free: 4000,
            }),
            json!({"type": "process_heap", "pid": 1, "heap_id": 7, "start": 0x1000,
                   "heap_size": 4096, "heap_used": 16, "heap_free": 4080, "used_blocks": 1,
                   "largest_free": 4000}),
        );
        check(
            Msg::ProcessShed(ProcessShed {
                pid: 1,
                shed_id: 9,
                start: 0x2000,
                shed_size: 8192,
            }),
            json!({"type": "process_shed", "pid": 1, "shed_id": 9, "start": 0x2000,
                   "shed_size": 8192}),
        );
        check(
            Msg::ProcessVma(memtest_vmas()[0]),
            json!({"type": "process_vma", "pid": 1, "start": 0x40_0000, "end": 0x40_2000,
                   "flags": 5, "kind": "code", "resident_pages": 2}),
        );
        check(
            Msg::ProcessListEnd(ProcessListEnd {
                ts_us: 4,
                total_programs: 2,
                complete: true,
            }),
            json!({"type": "process_list_end", "ts_us": 4, "total_programs": 2,
                   "complete": true}),
        );
    }

    #[test]
    fn page_fault_and_leak_json() {
        check(
            Msg::PageFault(PageFault {
                ts_us: 5,
                pid: 1,
                addr: 0x1000_0040,
                error_code: 7,
                rip: 0x40_0123,
                resolution: FaultResolution::StackGrowth,
                vma_start: 0x1000_0000,
                vma_end: 0x1001_0000,
                vma_flags: 35,
            }),
            json!({"type": "page_fault", "ts_us": 5, "pid": 1, "addr": 0x1000_0040,
                   "error_code": 7, "rip": 0x40_0123, "resolution": "stack_growth",
                   "vma_start": 0x1000_0000, "vma_end": 0x1001_0000, "vma_flags": 35}),
        );
        check(
            Msg::Leak(memtest_leak(6)),
            json!({"type": "leak", "ts_us": 6, "pid": 1, "heap_id": 1, "key": 0xabc,
                   "blocks": 2, "bytes": 300, "first_addr": 0x1000_0010, "oldest_age_ms": 1500}),
        );
    }

    fn wire_heap_stats() -> HeapStats {
        HeapStats {
            pid: 0,
            heap_id: 0,
            region_bytes: 1,
            max_bytes: 2,
            used_bytes: 3,
            free_bytes: 4,
            overhead_bytes: 5,
            total_blocks: 6,
            used_blocks: 7,
            free_blocks: 8,
            largest_free: 9,
        }
    }

    /// One of each 1.1 kernel message.
    fn wire_1_1() -> Vec<K<'static>> {
        let page = PageEvent {
            ts_us: 1,
            addr: 0x1000,
            count: 2,
            owner: FrameOwner::Process(7),
            caller: 3,
        };
        let map = MapEvent {
            ts_us: 1,
            space: 0x1000,
            virt: 0x2000,
            phys: 0x3000,
            size: 4096,
            flags: 3,
            caller: 4,
        };
        let heap = HeapEvent {
            ts_us: 1,
            pid: 0,
            heap_id: 0,
            addr: 0x10,
            size: 16,
            align: 8,
            key: 5,
            caller: 5,
        };
        let mut msgs = vec![K::MemoryStats(MemoryStats {
            ts_us: 1,
            total_frames: 10,
            free_frames: 5,
            usage: FrameUsage {
                free: 5,
                unusable: 0,
                reserved: 1,
                kernel_image: 1,
                boot_info: 0,
                bitmap: 1,
                kernel_heap: 1,
                kernel_stack: 0,
                page_table: 1,
                process: 0,
                other: 0,
            },
            kernel_heap: wire_heap_stats(),
            counters: EventCounters {
                page_allocs: 1,
                page_frees: 2,
                maps: 3,
                unmaps: 4,
                heap_allocs: 5,
                heap_frees: 6,
                heap_errors: 7,
                frame_errors: 8,
            },
        })];
        // Events sent both ways (alloc and free, map and unmap) share a payload.
        msgs.extend([K::PageAlloc, K::PageFree].map(|variant| variant(page)));
        msgs.extend([K::Map, K::Unmap].map(|variant| variant(map)));
        msgs.extend([K::HeapAlloc, K::HeapFree].map(|variant| variant(heap)));
        msgs.extend([
            K::HeapError(HeapErrorEvent {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                kind: HeapErrorKind::RedZoneOverflow { offset: 4 },
                addr: 0x10,
                size: 16,
                caller: 5,
            }),
            K::FrameError(FrameErrorEvent {
                ts_us: 1,
                kind: FrameErrorKind::Reserved,
                addr: 0x1000,
                count: 1,
                caller: 6,
            }),
            K::FrameCheck(FrameCheck {
                ts_us: 1,
                consistent: true,
                nr_frames: 10,
                free_counted: 5,
                free_recorded: 5,
                total_counted: 10,
                total_recorded: 10,
                used_without_owner: 0,
                free_with_owner: 0,
                invalid_owners: 0,
                summary_mismatches: 0,
                padding_mismatches: 0,
            }),
            K::HeapCheck(HeapCheck {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                ok: false,
                error: Some(HeapErrorKind::DoubleFree),
                addr: 0x10,
                stats: wire_heap_stats(),
            }),
            K::HeapBlock(HeapBlock {
                pid: 0,
                heap_id: 0,
                addr: 0x10,
                size: 16,
                used: true,
                key: 5,
            }),
            K::HeapWalkEnd(HeapWalkEnd {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                blocks: 1,
                complete: true,
            }),
        ]);
        msgs
    }

    /// Each message kept as the host keeps it (owned), as its JSON object;
    /// the owned message equals the wire one and reads back from its line.
    fn kept_as_json(wire: Vec<K<'static>>) -> Vec<Value> {
        wire.into_iter()
            .map(|w| {
                let msg: Msg = w.clone().into_owned();
                assert_eq!(msg, w);
                let line = json(&msg);
                assert_eq!(from_json(&line).unwrap(), msg, "{line}");
                serde_json::from_str(&line).unwrap()
            })
            .collect()
    }

    /// Asserts the JSON form of each value.
    fn assert_spelled<T: serde::Serialize + std::fmt::Debug>(spellings: &[(T, Value)]) {
        for (value, spelled) in spellings {
            assert_eq!(&serde_json::to_value(value).unwrap(), spelled, "{value:?}");
        }
    }

    #[test]
    fn every_1_1_message_is_kept_owned_and_its_json_type_is_its_snake_case_name() {
        let kinds: Vec<Value> = kept_as_json(wire_1_1())
            .into_iter()
            .map(|v| v["type"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                "memory_stats",
                "page_alloc",
                "page_free",
                "map",
                "unmap",
                "heap_alloc",
                "heap_free",
                "heap_error",
                "frame_error",
                "frame_check",
                "heap_check",
                "heap_block",
                "heap_walk_end"
            ]
        );
    }

    #[test]
    fn wire_enums_keep_their_variant_in_json() {
        let v = kept_as_json(wire_1_1());
        assert_eq!(v[1]["owner"], json!({"process": 7}));
        assert_eq!(v[1]["count"], 2);
        assert_eq!(v[7]["kind"], json!({"red_zone_overflow": {"offset": 4}}));
        assert_eq!(v[8]["kind"], "reserved");
        assert_eq!(v[10]["ok"], false);
        assert_eq!(v[10]["error"], "double_free");
        assert_eq!(v[10]["addr"], 0x10);
        assert_spelled(&[
            (FrameOwner::Unusable, json!("unusable")),
            (FrameOwner::Reserved, json!("reserved")),
            (FrameOwner::KernelImage, json!("kernel_image")),
            (FrameOwner::BootInfo, json!("boot_info")),
            (FrameOwner::Bitmap, json!("bitmap")),
            (FrameOwner::KernelHeap, json!("kernel_heap")),
            (FrameOwner::KernelStack, json!("kernel_stack")),
            (FrameOwner::PageTable, json!("page_table")),
            (FrameOwner::Process(9), json!({"process": 9})),
            (FrameOwner::Other(3), json!({"other": 3})),
        ]);
    }

    /// One of each 1.2 kernel message.
    fn wire_1_2() -> Vec<K<'static>> {
        let event = ProcessEvent {
            ts_us: 1,
            pid: 3,
            parent: 0,
            name: "memtest".into(),
        };
        vec![
            K::ProcessSpawn(event.clone()),
            K::ProcessExit(ProcessExit {
                ts_us: 2,
                pid: 3,
                reason: ExitReason::Killed { vector: 14 },
                leaked_blocks: 1,
                leaked_bytes: 100,
                frames_freed: 9,
            }),
            K::ProcessRename(event),
            K::ProcessInfo(ProcessInfo {
                ts_us: 3,
                pid: 3,
                parent: 0,
                name: "memtest".into(),
                state: ProcState::Zombie,
                nr_heaps: 1,
                nr_sheds: 1,
                nr_vmas: 1,
                total_heap_size: 4096,
                total_heap_used: 100,
                total_heap_free: 3996,
                total_shed_size: 4096,
                resident_frames: 3,
                page_table_frames: 4,
            }),
            K::ProcessHeap(ProcessHeap {
                pid: 3,
                heap_id: 1,
                start: 0x1000,
                heap_size: 4096,
                heap_used: 100,
                heap_free: 3996,
                used_blocks: 1,
                largest_free: 3900,
            }),
            K::ProcessShed(ProcessShed {
                pid: 3,
                shed_id: 9,
                start: 0x2000,
                shed_size: 4096,
            }),
            K::ProcessVma(ProcessVma {
                pid: 3,
                start: 0x1000,
                end: 0x2000,
                flags: 3,
                kind: VmaKind::Shed,
                resident_pages: 1,
            }),
            K::ProcessListEnd(ProcessListEnd {
                ts_us: 4,
                total_programs: 1,
                complete: true,
            }),
            K::PageFault(PageFault {
                ts_us: 5,
                pid: 3,
                addr: 0x1234,
                error_code: 6,
                rip: 0x40_0000,
                resolution: FaultResolution::CowReuse,
                vma_start: 0x1000,
                vma_end: 0x2000,
                vma_flags: 3,
            }),
            K::Leak(Leak {
                ts_us: 6,
                pid: 3,
                heap_id: 1,
                key: 7,
                blocks: 1,
                bytes: 100,
                first_addr: 0x1010,
                oldest_age_ms: Some(2500),
            }),
        ]
    }

    #[test]
    fn every_1_2_message_is_kept_owned_and_its_json_type_is_its_snake_case_name() {
        let kinds: Vec<Value> = kept_as_json(wire_1_2())
            .into_iter()
            .map(|v| v["type"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                "process_spawn",
                "process_exit",
                "process_rename",
                "process_info",
                "process_heap",
                "process_shed",
                "process_vma",
                "process_list_end",
                "page_fault",
                "leak"
            ]
        );
    }

    #[test]
    fn wire_enums_of_1_2_keep_their_variant_in_json() {
        let v = kept_as_json(wire_1_2());
        assert_eq!(v[1]["reason"], json!({"killed": {"vector": 14}}));
        assert_eq!(v[1]["frames_freed"], 9);
        assert_eq!(v[3]["state"], "zombie");
        assert_eq!(v[3]["name"], "memtest");
        assert_eq!(v[6]["kind"], "shed");
        assert_eq!(v[8]["resolution"], "cow_reuse");
        assert_spelled(&[(ExitReason::Exited(-3), json!({"exited": -3}))]);
        assert_spelled(&[
            (ProcState::Runnable, json!("runnable")),
            (ProcState::Sleeping, json!("sleeping")),
            (ProcState::Zombie, json!("zombie")),
            (ProcState::Kernel, json!("kernel")),
        ]);
        assert_spelled(&[
            (VmaKind::Code, json!("code")),
            (VmaKind::Data, json!("data")),
            (VmaKind::Heap, json!("heap")),
            (VmaKind::Stack, json!("stack")),
            (VmaKind::Mmap, json!("mmap")),
            (VmaKind::Shed, json!("shed")),
        ]);
        assert_spelled(&[
            (FaultResolution::Demand, json!("demand")),
            (FaultResolution::CopyOnWrite, json!("copy_on_write")),
            (FaultResolution::CowReuse, json!("cow_reuse")),
            (FaultResolution::StackGrowth, json!("stack_growth")),
            (FaultResolution::Killed, json!("killed")),
        ]);
    }
}
