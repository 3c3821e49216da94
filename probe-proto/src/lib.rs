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
//! | 41 | `EventBatch` | [`EventBatch`]: memory events in the compact encoding below | 2.0 |
//! | 42 | `OwnerRuns` | [`OwnerRuns`]: runs of frames by owner, run-length encoded | 2.1 |
//! | 43 | `OwnerMapEnd` | [`OwnerMapEnd`]: end of the owner map | 2.1 |
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
//! | 11 | `OwnerMap { first_frame, nr_frames }` | `OwnerRuns` (up to 48 runs each) from that frame on, then `OwnerMapEnd` | 2.1 |
//!
//! Version 1.1 added the memory messages (kernel variants 8 to 20) and the
//! `Snapshot`, `Check` and `HeapWalk` commands; 1.0 messages are unchanged.
//! Version 1.2 added processes (kernel variants 21 to 30, the `Processes`
//! command). Version 1.3 added page-table dumps (kernel variants 31 to 33,
//! the `PtDump` command) and the check of every mapping (34 and 35, after
//! `Check`'s earlier answers). Version 1.4 added the kernel leak scan
//! (kernel variants 39 and 40, the `LeakScan` command).
//! Version 2.0 (a major bump) sends the common memory events (`PageAlloc`,
//! `PageFree`, `Map`, `Unmap`, `HeapAlloc`, `HeapFree`, `PageFault`) only
//! inside `EventBatch` frames, in the encoding below, and adds the TSC rate
//! to `Hello` (`tsc_hz`, after `uptime_us`); every other message is as in
//! 1.4, and the minor count starts again. Version 2.1 added the owner map
//! (kernel variants 42 and 43, the `OwnerMap` command): an `OwnerRuns` is
//! the first frame as a varint, then a varint count of runs and each run
//! as its owner (`Option<FrameOwner>`: `00` free, else `01` and the owner's
//! variant, with a pid after `Process`'s) and its length in frames as a
//! varint.
//! Every 1.1 and 1.2 message fits a frame at its largest (all integers at
//! their maximum, program names at the kernel's 32-byte limit), which the
//! `largest_*` tests check; a name is the only unbounded field, and even a
//! largest `ProcessInfo` leaves room for one of 512 bytes.
//!
//! # Event batches (2.0)
//!
//! A host decodes a batch with [`batch::BatchDecoder`] into the very
//! messages the kernel would have sent one by one (a kernel in another
//! language can use [`batch::BatchEncoder`]'s rules below). The body of an
//! `EventBatch` is a header, then records:
//!
//! ```text
//! header  = flags:u8  seq:varint  count:varint  base_us:varint
//! record  = tag:u8 fields...      tag = kind (bits 0-2) | flags (bits 3-7)
//! ```
//!
//! - `flags` bit 0, SYNC: both sides reset their *state* (below) before this
//!   batch. `seq` counts batches since boot, one by one: a host that sees a
//!   gap, or has not seen a SYNC batch yet (it joined late), skips batches
//!   until the next SYNC one, counting the `count` events each said it
//!   held. The kernel makes a batch SYNC at boot, after the host's
//!   `Resync`, after a batch it had to drop (whose events it counts in
//!   `Dropped`), and at least every second. `base_us` is the time the
//!   first event's delta starts from.
//! - Every event record has `dt:varint` right after its tag: microseconds
//!   since the previous event of the batch (since `base_us` for the first).
//! - *State*, kept alike on both sides and updated from each full event:
//!   128 interned callers (slot = [`batch::caller_slot`] of the value; all
//!   0 after a reset); up to 16 heaps by (pid, heap id), each with its last
//!   address, size, alignment, key and caller, and the current one; up to
//!   8 address spaces by root, each with its last virtual address, flags
//!   and caller, and the current one; the last frame address seen (page
//!   events' `addr`, map events' `phys`), the last two frame owners and the
//!   last page caller; the last page fault. A table that is full reuses its
//!   slots in turn.
//! - A *delta* of a value from a base in units of `2^k` is
//!   `varint(zigzag(d >> k) + 1)` when `d = value - base` (wrapping) is a
//!   multiple of the unit, else `0x00` then `varint(zigzag(d))`: exact for
//!   every value, one or two bytes for a neighbour. A *slot* is one byte, a
//!   caller slot whose value the record uses.
//!
//! | kind | record | fields after `dt`, each only when its flag is clear |
//! |---|---|---|
//! | 0, 1 | `HeapAlloc`, `HeapFree` of the current heap | addr: delta from the heap's last, units of 16; size varint (flag 3: the heap's last size); caller slot (flag 4: the heap's last caller); align varint and key varint (flag 5: predicted: an allocation the heap's last alignment, and the caller as key in a pid-0 heap, else the heap's last key; a free 0 and 0) |
//! | 2, 3 | `PageAlloc`, `PageFree` | addr: delta from the last frame, units of 4096 (flag 7: the last frame itself); count varint (flag 3: 1); owner (flag 4: the last owner, flag 5: the one before): a byte 0..=7 in [`FrameOwner`] order, 8 then varint pid for `Process`, 9 then a byte for `Other`; caller slot (flag 6: the last page caller) |
//! | 4, 5 | `Map`, `Unmap` in the current space | virt: delta from the space's last, units of 4096; phys: delta from the last frame (flag 6: the last frame itself); size as a delta from 0 in units of 4096 (flag 3: 4096); flags `varint(flags.rotate_left(1))`, so NX costs one byte (flag 4: the space's last); caller slot (flag 5: the space's last) |
//! | 6 | `PageFault` | pid varint (flag 3: the last fault's); addr `varint(zigzag(addr - last addr))`; rip slot (flag 4: the last fault's); VMA start as a delta from the fault's page, end as a delta from start, both units of 4096, flags varint (flag 5: the last fault's VMA); error code varint and resolution byte in [`FaultResolution`] order (flag 6: the last fault's) |
//! | 7 | a definition, not an event (no `dt`) | bits 3-7 = 0: caller slot byte, then `varint(zigzag(value as i64))`; = 1: the current heap, varint pid and varint heap id; = 2: the current space, its root as a delta from 0 in units of 4096 |
//!
//! Definitions come right before the event that needs them: a heap or
//! space that is not the current one, a caller (or fault rip) whose slot
//! holds another value. A decoder refuses unknown kinds and flags, slots
//! past 127, enum values out of range, varints past 64 bits, and a count
//! that differs from the events found; it then waits for the next SYNC.
//!
//! ## Worked example
//!
//! A sync batch of five events (the `golden_batch_bytes` test pins it):
//! a `PageAlloc` of frame 0x700000 for process 3 by kernel caller
//! 0xffffffff80102030 at 1 s, the `Map` of that frame at virtual
//! 0x7fffffffe000 in space 0x603000 (flags `0x8000000000000007`) 40 µs
//! later, two 64-byte allocations of heap 1 of process 3, 16 bytes apart
//! (align 16, key 1, caller 0x4007c1), and a demand page fault:
//!
//! ```text
//! 01 00 05 c0 84 3d              SYNC, seq 0, 5 events, base 1000000 us
//! 07 0b 9f ff fe fe 0f           caller slot 0x0b := 0xffffffff80102030
//! 0a 00 81 1c 08 03 0b           PageAlloc, count 1: dt 0, frame 0x700 units,
//!                                Process(3), caller slot 0x0b
//! 17 87 18                       current space := 0x603 units
//! 4c 28 fd ff ff ff ff 01 0f 0b  Map, 4 KiB, phys = last frame: dt 40,
//!                                virt, flags rotated (0x0f), caller slot
//! 0f 03 01                       current heap := pid 3, heap 1
//! 07 1d 82 9f 80 04              caller slot 0x1d := 0x4007c1
//! 00 3c 89 80 80 80 80 80 01     HeapAlloc, nothing predicted: dt 60, addr,
//!    40 1d 10 01                 size 64, caller slot, align 16, key 1
//! 38 82 01 09                    HeapAlloc, all predicted: dt 130, +16 bytes
//! 07 11 8c 80 80 04              caller slot 0x11 := rip 0x400006
//! 06 46 03 f0 ff fe ff ff ff 3f  PageFault: dt 70, pid 3, addr,
//!    11 02 09 23 06 00           rip slot, VMA, flags 35, error 6, demand
//! ```
//!
//! The second allocation costs 4 bytes; its 1.x frame took more than 20.
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

pub mod batch;
pub mod frame;
mod msg;
pub mod names;

pub use frame::{DecodeStats, FrameDecoder, FrameError, encode_frame};
pub use msg::*;
pub use names::KERNEL_PID;

/// The version a `Hello`'s message bytes announce, read without decoding
/// the rest: a `Hello` is variant 0 and starts with its [`Version`] in
/// every protocol version, so a peer tells which version it cannot read.
pub fn hello_version(payload: &[u8]) -> Option<Version> {
    match payload.split_first() {
        Some((0, rest)) => postcard::take_from_bytes::<Version>(rest)
            .ok()
            .map(|(v, _)| v),
        _ => None,
    }
}

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: Version = Version { major: 2, minor: 1 };
