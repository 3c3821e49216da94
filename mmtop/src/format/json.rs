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
    use crate::msg::{
        EventCounters, ExitReason, FaultResolution, FrameCheck, FrameErrorEvent, FrameErrorKind,
        FrameOwner, FrameUsage, HeapBlock, HeapCheck, HeapErrorEvent, HeapErrorKind, HeapEvent,
        HeapStats, HeapWalkEnd, Hello, Leak, Log, LogLevel, MapEvent, MemKind, MemRegion,
        MemoryStats, PageEvent, PageFault, Panic, ProcState, ProcessEvent, ProcessExit,
        ProcessHeap, ProcessInfo, ProcessListEnd, ProcessShed, ProcessVma, VmaKind,
    };
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

    fn heap_stats() -> HeapStats {
        HeapStats {
            pid: 0,
            heap_id: 0,
            region_bytes: 65_536,
            max_bytes: 1 << 30,
            used_bytes: 1536,
            free_bytes: 61_440,
            overhead_bytes: 256,
            total_blocks: 12,
            used_blocks: 9,
            free_blocks: 3,
            largest_free: 40_960,
        }
    }

    fn heap_stats_json() -> Value {
        json!({"pid": 0, "heap_id": 0, "region_bytes": 65_536, "max_bytes": 1u64 << 30,
               "used_bytes": 1536, "free_bytes": 61_440, "overhead_bytes": 256,
               "total_blocks": 12, "used_blocks": 9, "free_blocks": 3, "largest_free": 40_960})
    }

    #[test]
    fn memory_stats_json_nests_usage_heap_and_counters() {
        check(
            Msg::MemoryStats(Box::new(MemoryStats {
                ts_us: 7,
                total_frames: 32_768,
                free_frames: 30_000,
                usage: FrameUsage {
                    free: 30_000,
                    unusable: 1,
                    reserved: 256,
                    kernel_image: 512,
                    boot_info: 4,
                    bitmap: 2,
                    kernel_heap: 16,
                    kernel_stack: 8,
                    page_table: 6,
                    process: 1959,
                    other: 4,
                },
                kernel_heap: heap_stats(),
                counters: EventCounters {
                    page_allocs: 10,
                    page_frees: 2,
                    maps: 5,
                    unmaps: 0,
                    heap_allocs: 100,
                    heap_frees: 90,
                    heap_errors: 1,
                    frame_errors: 0,
                },
            })),
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
            pid: 0,
            heap_id: 0,
            ok: true,
            error: None,
            addr: 0,
            stats: heap_stats(),
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
            Msg::HeapBlock(HeapBlock {
                pid: 0,
                heap_id: 0,
                addr: 0x1040,
                size: 64,
                used: true,
                key: 0xabc,
            }),
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
                pid: 1,
                parent: 0,
                name: "memtest".into(),
                state: ProcState::Sleeping,
                nr_heaps: 2,
                nr_sheds: 2,
                nr_vmas: 7,
                total_heap_size: 131_072,
                total_heap_used: 600,
                total_heap_free: 130_472,
                total_shed_size: 16_384,
                resident_frames: 10,
                page_table_frames: 4,
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
            Msg::ProcessVma(ProcessVma {
                pid: 1,
                start: 0x40_0000,
                end: 0x40_2000,
                flags: 5,
                kind: VmaKind::Code,
                resident_pages: 2,
            }),
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
            Msg::Leak(Leak {
                ts_us: 6,
                pid: 1,
                heap_id: 1,
                key: 0xabc,
                blocks: 2,
                bytes: 300,
                first_addr: 0x1000_0010,
            }),
            json!({"type": "leak", "ts_us": 6, "pid": 1, "heap_id": 1, "key": 0xabc,
                   "blocks": 2, "bytes": 300, "first_addr": 0x1000_0010}),
        );
    }
}
