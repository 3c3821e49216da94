//! The telemetry protocol between the kernel and its host tools.
//!
//! This crate is the whole contract between the two sides of the COM1 link:
//! the message enums ([`KernelMsg`], [`HostMsg`]), the framing ([`frame`]) and
//! the protocol version ([`PROTOCOL_VERSION`]). It is `no_std` (with `alloc`,
//! for the owned form of a message's strings: sending and decoding in place
//! allocate nothing) and contains no `unsafe`, so a kernel and a host share it
//! as is.
//!
//! # Wire format, byte by byte
//!
//! One message travels as one *frame*:
//!
//! ```text
//! COBS( postcard(message) ++ crc16_le(postcard(message)) ) ++ 0x00
//! ```
//!
//! 1. The message is serialized with [postcard]: an enum is its variant index
//!    as a varint, then its fields in declaration order; unsigned integers
//!    wider than a byte are LEB128 varints (7 bits a byte, low bits first, high
//!    bit set on every byte but the last); signed ones are zigzag-then-varint;
//!    `bool` and `u8` are one byte; `&str` is a varint length then UTF-8 bytes.
//! 2. A CRC-16/IBM-3740 (CCITT-FALSE: poly `0x1021`, init `0xFFFF`, no
//!    reflection, no final xor) of those bytes is appended, low byte first.
//! 3. The whole is COBS-encoded, so it holds no `0x00`, and a single `0x00`
//!    ends the frame. A reader that lost its place discards up to the next
//!    `0x00` and is back in step: every frame boundary is a resync point.
//!    A host that connects sends a lone `0x00` first, which ends any partial
//!    frame an earlier client left in the kernel's receiver (empty frames are
//!    ignored, not counted as errors).
//!
//! ## Worked example
//!
//! `HostMsg::Ping { nonce: 300 }` ([`HostMsg`] variant 1):
//!
//! ```text
//! postcard          01 ac 02            variant 1, nonce 300 = varint ac 02
//! crc16 of that     0x83fd -> fd 83     appended low byte first
//! payload           01 ac 02 fd 83      (no zero byte, so COBS adds one code byte)
//! COBS              06 01 ac 02 fd 83   06 = "5 data bytes follow, no zero"
//! frame             06 01 ac 02 fd 83 00
//! ```
//!
//! The `golden_ping_frame` test pins these bytes.
//!
//! # Messages
//!
//! Kernel to host ([`KernelMsg`]), in wire order (the variant index is the
//! first byte of every frame's payload):
//!
//! | # | Variant | Payload | Since |
//! |---|---------|---------|-------|
//! | 0 | `Hello` | [`Hello`]: version, build, memory summary | 1.0 |
//! | 1 | `MemRegion` | [`MemRegion`]: one boot memory-map entry | 1.0 |
//! | 2 | `Log` | [`Log`]: a log line | 1.0 |
//! | 3 | `Heartbeat` | [`Heartbeat`]: liveness and link counters | 1.0 |
//! | 4 | `Exception` | [`Exception`]: an unresolved CPU exception | 1.0 |
//! | 5 | `Panic` | [`Panic`]: a kernel panic | 1.0 |
//! | 6 | `Pong` | [`Pong`]: answer to `Ping` | 1.0 |
//! | 7 | `Dropped` | `count` of messages lost | 1.0 |
//! | 8 | `MemoryStats` | [`MemoryStats`]: frames by owner, kernel heap, event totals | 1.1 |
//! | 9 | `PageAlloc` | [`PageEvent`]: frames handed out | 1.1 |
//! | 10 | `PageFree` | [`PageEvent`]: frames returned | 1.1 |
//! | 11 | `Map` | [`MapEvent`]: a page mapped | 1.1 |
//! | 12 | `Unmap` | [`MapEvent`]: a page unmapped | 1.1 |
//! | 13 | `HeapAlloc` | [`HeapEvent`]: a heap allocation | 1.1 |
//! | 14 | `HeapFree` | [`HeapEvent`]: a heap free | 1.1 |
//! | 15 | `HeapError` | [`HeapErrorEvent`]: a heap call refused or a check failure | 1.1 |
//! | 16 | `FrameError` | [`FrameErrorEvent`]: a physical-allocator call refused | 1.1 |
//! | 17 | `FrameCheck` | [`FrameCheck`]: frame-bitmap consistency | 1.1 |
//! | 18 | `HeapCheck` | [`HeapCheck`]: heap consistency | 1.1 |
//! | 19 | `HeapBlock` | [`HeapBlock`]: one block of a heap walk | 1.1 |
//! | 20 | `HeapWalkEnd` | [`HeapWalkEnd`]: end of a heap walk | 1.1 |
//! | 21 | `ProcessSpawn` | [`ProcessEvent`]: a process created | 1.2 |
//! | 22 | `ProcessExit` | [`ProcessExit`]: a process ended, leaks and frames freed | 1.2 |
//! | 23 | `ProcessRename` | [`ProcessEvent`]: a program name registered | 1.2 |
//! | 24 | `ProcessInfo` | [`ProcessInfo`]: one `checkMemory` program row | 1.2 |
//! | 25 | `ProcessHeap` | [`ProcessHeap`]: one heap of that program | 1.2 |
//! | 26 | `ProcessShed` | [`ProcessShed`]: one shed of that program | 1.2 |
//! | 27 | `ProcessVma` | [`ProcessVma`]: one VMA of that program | 1.2 |
//! | 28 | `ProcessListEnd` | [`ProcessListEnd`]: end of a listing | 1.2 |
//! | 29 | `PageFault` | [`PageFault`]: a process page fault and its resolution | 1.2 |
//! | 30 | `Leak` | [`Leak`]: blocks of one key left allocated | 1.2 |
//! | 31 | `PtRange` | [`PtRange`]: coalesced leaves of a page-table dump | 1.3 |
//! | 32 | `PtAudit` | [`PtAudit`]: an audit finding of that dump | 1.3 |
//! | 33 | `PtDumpEnd` | [`PtDumpEnd`]: end of a dump, root and totals | 1.3 |
//! | 34 | `CheckFinding` | [`CheckFinding`]: a frame the allocator and the mappings disagree on | 1.3 |
//! | 35 | `CheckEnd` | [`CheckEnd`]: verdict of the mapping check | 1.3 |
//! | 36 | `Settings` | [`Settings`]: log level and event classes | 1.3 |
//! | 37 | `BlocksInUse` | [`Leak`]: blocks in use under one key of a live process | 1.3 |
//! | 38 | `LeaksEnd` | [`LeaksEnd`]: end of a `Leaks` answer | 1.3 |
//! | 39 | `KernelLeak` | [`KernelLeak`]: a kernel-heap block nothing references | 1.4 |
//! | 40 | `LeakScanEnd` | [`LeakScanEnd`]: end of a kernel leak scan | 1.4 |
//! | 41 | `OwnerRuns` | [`OwnerRuns`]: runs of frames by owner, run-length encoded | 1.5 |
//! | 42 | `OwnerMapEnd` | [`OwnerMapEnd`]: end of the owner map | 1.5 |
//!
//! Host to kernel ([`HostMsg`]):
//!
//! | # | Variant | Answer | Since |
//! |---|---------|--------|-------|
//! | 0 | `Resync` | `Hello`, then its `MemRegion`s | 1.0 |
//! | 1 | `Ping { nonce }` | `Pong` with the same nonce | 1.0 |
//! | 2 | `Snapshot` | `MemoryStats` | 1.1 |
//! | 3 | `Check` | `FrameCheck`, then `HeapCheck` of the kernel heap; since 1.3 then `CheckFinding`s and `CheckEnd` | 1.1 |
//! | 4 | `HeapWalk { pid, heap_id }` | one `HeapBlock` per block, then `HeapWalkEnd` | 1.1 |
//! | 5 | `Processes { pid }` | per program (`pid` or all for -1): `ProcessInfo`, its `ProcessHeap`s, `ProcessShed`s and `ProcessVma`s; then `ProcessListEnd` | 1.2 |
//! | 6 | `PtDump { pid }` | the `PtRange`s of that space (0: the kernel's), its `PtAudit`s, then `PtDumpEnd` | 1.3 |
//! | 7 | `SetLogLevel { level }` | `Settings` | 1.3 |
//! | 8 | `SetEvents { classes }` | `Settings` | 1.3 |
//! | 9 | `Leaks { pid }` | per heap and key of that process (or every program for -1): `BlocksInUse`; then `LeaksEnd` | 1.3 |
//! | 10 | `LeakScan { min_age_ms }` | a `KernelLeak` per unreferenced kernel-heap block at least that old; then `LeakScanEnd` | 1.4 |
//! | 11 | `OwnerMap { first_frame, nr_frames }` | `OwnerRuns` (up to 48 runs each) from that frame on, then `OwnerMapEnd` | 1.5 |
//!
//! Version 1.1 added the memory messages (kernel variants 8 to 20) and the
//! `Snapshot`, `Check` and `HeapWalk` commands; 1.0 messages are unchanged.
//! Version 1.2 added processes (kernel variants 21 to 30, the `Processes`
//! command). Version 1.3 added page-table dumps (kernel variants 31 to 33,
//! the `PtDump` command) and the check of every mapping (34 and 35, after
//! `Check`'s earlier answers). Version 1.4 added the kernel leak scan
//! (kernel variants 39 and 40, the `LeakScan` command). Version 1.5 added
//! the owner map (kernel variants 41 and 42, the `OwnerMap` command): an
//! `OwnerRuns` is the first frame as a varint, then a varint count of runs
//! and each run as its owner (`Option<FrameOwner>`: `00` free, else `01`
//! and the owner's variant, with a pid after `Process`'s) and its length
//! in frames as a varint.
//! Every 1.1 and 1.2 message fits a frame at its largest (all integers at
//! their maximum, program names at the kernel's 32-byte limit), which the
//! `largest_*` tests check; a name is the only unbounded field, and even a
//! largest `ProcessInfo` leaves room for one of 512 bytes.
//!
//! # Compatibility
//!
//! Enum variant order *is* the wire format: variants and fields are appended,
//! never reordered or removed. A new minor version may add message variants;
//! a reader counts a variant it does not know as an undecodable frame and
//! skips it. A different major version is incompatible and the host refuses it
//! (see [`Version::is_compatible_with`]).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod frame;
mod msg;
pub mod names;

pub use frame::{DecodeStats, FrameDecoder, FrameError, encode_frame};
pub use msg::*;
pub use names::KERNEL_PID;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: Version = Version { major: 1, minor: 5 };
