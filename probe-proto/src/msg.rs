//! Message types of both directions.
//!
//! Strings are borrowed (`&str`) so the kernel sends without allocating and
//! the host decodes without copying; a host that keeps a message converts it
//! to its own types. Append variants and fields only: order is wire format.

use alloc::borrow::Cow;

use serde::{Deserialize, Serialize};

/// A string inside a message: borrowed when the kernel sends or the host
/// decodes in place (nothing is allocated), owned when the host keeps a
/// message after its frame's bytes are gone ([`KernelMsg::into_owned`]).
pub type Text<'a> = Cow<'a, str>;

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

    /// Whether `self` is `since` or a later version.
    pub fn at_least(self, since: Version) -> bool {
        (self.major, self.minor) >= (since.major, since.minor)
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
    /// A snapshot of the kernel's memory: sent periodically and as the
    /// answer to [`HostMsg::Snapshot`]. Since 1.1.
    MemoryStats(MemoryStats),
    /// Frames handed out by the physical allocator. Since 1.1.
    PageAlloc(PageEvent),
    /// Frames returned to the physical allocator. Since 1.1.
    PageFree(PageEvent),
    /// A page mapped. Since 1.1.
    Map(MapEvent),
    /// A page unmapped; `phys` is what was mapped. Since 1.1.
    Unmap(MapEvent),
    /// A heap allocation. Since 1.1.
    HeapAlloc(HeapEvent),
    /// A heap deallocation. Since 1.1.
    HeapFree(HeapEvent),
    /// A heap call refused, or a heap check failure. Since 1.1.
    HeapError(HeapErrorEvent),
    /// A physical-allocator call refused (double free, reserved frame, ...).
    /// Since 1.1.
    FrameError(FrameErrorEvent),
    /// Result of a frame-bitmap consistency check; the first answer to
    /// [`HostMsg::Check`]. Since 1.1.
    FrameCheck(FrameCheck),
    /// Result of a heap consistency check; the second answer to
    /// [`HostMsg::Check`]. Since 1.1.
    HeapCheck(HeapCheck),
    /// One block of a heap walk asked for by [`HostMsg::HeapWalk`]. Since 1.1.
    HeapBlock(HeapBlock),
    /// End of a heap walk: follows the walk's last [`KernelMsg::HeapBlock`].
    /// Since 1.1.
    HeapWalkEnd(HeapWalkEnd),
    /// A process was created (spawned or forked). Since 1.2.
    #[serde(borrow)]
    ProcessSpawn(ProcessEvent<'a>),
    /// A process ended; everything it held has been returned. Since 1.2.
    ProcessExit(ProcessExit),
    /// A process registered a new program name. Since 1.2.
    #[serde(borrow)]
    ProcessRename(ProcessEvent<'a>),
    /// One program of a process listing (the `checkMemory` row); followed by
    /// its [`KernelMsg::ProcessHeap`]s, [`KernelMsg::ProcessShed`]s and
    /// [`KernelMsg::ProcessVma`]s. Answer to [`HostMsg::Processes`]. Since 1.2.
    #[serde(borrow)]
    ProcessInfo(ProcessInfo<'a>),
    /// One heap of the program last described by `ProcessInfo`. Since 1.2.
    ProcessHeap(ProcessHeap),
    /// One shed (code or constant region) of a program. Since 1.2.
    ProcessShed(ProcessShed),
    /// One virtual memory area of a program. Since 1.2.
    ProcessVma(ProcessVma),
    /// End of a process listing. Since 1.2.
    ProcessListEnd(ProcessListEnd),
    /// A page fault taken in a process and how it was resolved. Since 1.2.
    PageFault(PageFault),
    /// Blocks still allocated under one key when a process's heap went away
    /// (at exit or `free_memory`). Since 1.2.
    Leak(Leak),
    /// One range of a page-table dump asked for by [`HostMsg::PtDump`]:
    /// consecutive leaves coalesced as Linux's ptdump does. Since 1.3.
    PtRange(PtRange),
    /// One finding of the audit that comes with every dump. Since 1.3.
    PtAudit(PtAudit),
    /// End of a page-table dump: the space's root and totals. Since 1.3.
    PtDumpEnd(PtDumpEnd),
    /// One inconsistency between the frame allocator and the mappings,
    /// found by the check [`HostMsg::Check`] asks for. Since 1.3.
    CheckFinding(CheckFinding),
    /// End of that check: its verdict and cost; follows the `HeapCheck`.
    /// Since 1.3.
    CheckEnd(CheckEnd),
    /// The kernel's log level and event classes now: the answer to
    /// [`HostMsg::SetLogLevel`] and [`HostMsg::SetEvents`]. Since 1.3.
    Settings(Settings),
    /// Blocks in use under one key of a live process's heap (the fields of
    /// a leak report): an answer to [`HostMsg::Leaks`]. Since 1.3.
    BlocksInUse(Leak),
    /// End of the answer to [`HostMsg::Leaks`]. Since 1.3.
    LeaksEnd(LeaksEnd),
    /// One kernel-heap block the leak scan [`HostMsg::LeakScan`] found
    /// unreferenced. Since 1.4.
    KernelLeak(KernelLeak),
    /// End of a kernel leak scan: its verdict and cost. Since 1.4.
    LeakScanEnd(LeakScanEnd),
    /// Several memory events in the compact encoding of
    /// [`batch`](crate::batch). A host turns it back into the events it
    /// holds with a [`BatchDecoder`](crate::batch::BatchDecoder); they are
    /// never sent as messages of their own. Since 2.0.
    #[serde(borrow)]
    EventBatch(EventBatch<'a>),
    /// Consecutive runs of frames by owner: part of the answer to
    /// [`HostMsg::OwnerMap`]. Since 2.1.
    OwnerRuns(OwnerRuns<'a>),
    /// End of the owner map. Since 2.1.
    OwnerMapEnd(OwnerMapEnd),
}

/// The body of a [`KernelMsg::EventBatch`]: a header and records, in the
/// encoding [`batch`](crate::batch) documents.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct EventBatch<'a> {
    /// The body's bytes.
    #[serde(borrow)]
    pub body: Cow<'a, [u8]>,
}

impl KernelMsg<'_> {
    /// The same message owning its strings, for a host that keeps it after
    /// the frame's bytes are reused.
    pub fn into_owned(self) -> KernelMsg<'static> {
        fn own(text: Text<'_>) -> Text<'static> {
            Cow::Owned(text.into_owned())
        }
        match self {
            KernelMsg::Hello(Hello {
                version,
                build_id,
                mem_total_bytes,
                mem_usable_bytes,
                nr_regions,
                features,
                cmdline,
                uptime_us,
                tsc_hz,
            }) => KernelMsg::Hello(Hello {
                version,
                build_id: own(build_id),
                mem_total_bytes,
                mem_usable_bytes,
                nr_regions,
                features,
                cmdline: own(cmdline),
                uptime_us,
                tsc_hz,
            }),
            KernelMsg::MemRegion(m) => KernelMsg::MemRegion(m),
            KernelMsg::Log(Log { ts_us, level, text }) => KernelMsg::Log(Log {
                ts_us,
                level,
                text: own(text),
            }),
            KernelMsg::Heartbeat(m) => KernelMsg::Heartbeat(m),
            KernelMsg::Exception(m) => KernelMsg::Exception(m),
            KernelMsg::Panic(Panic {
                ts_us,
                message,
                file,
                line,
                column,
            }) => KernelMsg::Panic(Panic {
                ts_us,
                message: own(message),
                file: own(file),
                line,
                column,
            }),
            KernelMsg::Pong(m) => KernelMsg::Pong(m),
            KernelMsg::Dropped { count } => KernelMsg::Dropped { count },
            KernelMsg::MemoryStats(m) => KernelMsg::MemoryStats(m),
            KernelMsg::PageAlloc(m) => KernelMsg::PageAlloc(m),
            KernelMsg::PageFree(m) => KernelMsg::PageFree(m),
            KernelMsg::Map(m) => KernelMsg::Map(m),
            KernelMsg::Unmap(m) => KernelMsg::Unmap(m),
            KernelMsg::HeapAlloc(m) => KernelMsg::HeapAlloc(m),
            KernelMsg::HeapFree(m) => KernelMsg::HeapFree(m),
            KernelMsg::HeapError(m) => KernelMsg::HeapError(m),
            KernelMsg::FrameError(m) => KernelMsg::FrameError(m),
            KernelMsg::FrameCheck(m) => KernelMsg::FrameCheck(m),
            KernelMsg::HeapCheck(m) => KernelMsg::HeapCheck(m),
            KernelMsg::HeapBlock(m) => KernelMsg::HeapBlock(m),
            KernelMsg::HeapWalkEnd(m) => KernelMsg::HeapWalkEnd(m),
            KernelMsg::ProcessSpawn(ProcessEvent {
                ts_us,
                pid,
                parent,
                name,
            }) => KernelMsg::ProcessSpawn(ProcessEvent {
                ts_us,
                pid,
                parent,
                name: own(name),
            }),
            KernelMsg::ProcessExit(m) => KernelMsg::ProcessExit(m),
            KernelMsg::ProcessRename(ProcessEvent {
                ts_us,
                pid,
                parent,
                name,
            }) => KernelMsg::ProcessRename(ProcessEvent {
                ts_us,
                pid,
                parent,
                name: own(name),
            }),
            KernelMsg::ProcessInfo(m) => KernelMsg::ProcessInfo(m.into_owned()),
            KernelMsg::ProcessHeap(m) => KernelMsg::ProcessHeap(m),
            KernelMsg::ProcessShed(m) => KernelMsg::ProcessShed(m),
            KernelMsg::ProcessVma(m) => KernelMsg::ProcessVma(m),
            KernelMsg::ProcessListEnd(m) => KernelMsg::ProcessListEnd(m),
            KernelMsg::PageFault(m) => KernelMsg::PageFault(m),
            KernelMsg::Leak(m) => KernelMsg::Leak(m),
            KernelMsg::PtRange(m) => KernelMsg::PtRange(m),
            KernelMsg::PtAudit(m) => KernelMsg::PtAudit(m),
            KernelMsg::PtDumpEnd(m) => KernelMsg::PtDumpEnd(m),
            KernelMsg::CheckFinding(m) => KernelMsg::CheckFinding(m),
            KernelMsg::CheckEnd(m) => KernelMsg::CheckEnd(m),
            KernelMsg::Settings(m) => KernelMsg::Settings(m),
            KernelMsg::BlocksInUse(m) => KernelMsg::BlocksInUse(m),
            KernelMsg::LeaksEnd(m) => KernelMsg::LeaksEnd(m),
            KernelMsg::KernelLeak(m) => KernelMsg::KernelLeak(m),
            KernelMsg::LeakScanEnd(m) => KernelMsg::LeakScanEnd(m),
            KernelMsg::EventBatch(EventBatch { body }) => KernelMsg::EventBatch(EventBatch {
                body: Cow::Owned(body.into_owned()),
            }),
            KernelMsg::OwnerRuns(OwnerRuns { first_frame, runs }) => {
                KernelMsg::OwnerRuns(OwnerRuns {
                    first_frame,
                    runs: Cow::Owned(runs.into_owned()),
                })
            }
            KernelMsg::OwnerMapEnd(m) => KernelMsg::OwnerMapEnd(m),
        }
    }
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
    /// Ask for a memory snapshot; answered by [`KernelMsg::MemoryStats`].
    /// Since 1.1.
    Snapshot,
    /// Ask for consistency checks; answered by [`KernelMsg::FrameCheck`]
    /// then [`KernelMsg::HeapCheck`] (of the kernel heap). Since 1.1. Since
    /// 1.3 then the check of every mapping against the frame allocator: its
    /// [`KernelMsg::CheckFinding`]s and a [`KernelMsg::CheckEnd`].
    Check,
    /// Ask for a walk of one heap; answered by one [`KernelMsg::HeapBlock`]
    /// per block, then [`KernelMsg::HeapWalkEnd`]. Since 1.1.
    HeapWalk {
        /// Process owning the heap; 0 for the kernel.
        pid: u32,
        /// Which heap of that process.
        heap_id: u32,
    },
    /// Ask for a process listing: one [`KernelMsg::ProcessInfo`] (with its
    /// heaps, sheds and VMAs) per program, then [`KernelMsg::ProcessListEnd`].
    /// Since 1.2.
    Processes {
        /// The process to list, or `-1` for every program and the kernel.
        pid: i64,
    },
    /// Ask for a dump of one address space's page tables: its
    /// [`KernelMsg::PtRange`]s in address order, its [`KernelMsg::PtAudit`]
    /// findings, then [`KernelMsg::PtDumpEnd`]. Since 1.3.
    PtDump {
        /// The process whose space to dump; 0 for the kernel's.
        pid: u32,
    },
    /// Set the most verbose level of `Log` messages (0 error .. 3 debug);
    /// answered by [`KernelMsg::Settings`]. Since 1.3.
    SetLogLevel {
        /// The level; above 3 counts as 3.
        level: u8,
    },
    /// Choose the classes of events the kernel streams
    /// ([`names::event_class`](crate::names::event_class) bits; the
    /// counters count every class either way); answered by
    /// [`KernelMsg::Settings`]. Since 1.3.
    SetEvents {
        /// The classes to send.
        classes: u32,
    },
    /// Ask for the blocks in use by key of a live process's heaps: one
    /// [`KernelMsg::BlocksInUse`] per heap and key, then
    /// [`KernelMsg::LeaksEnd`]. Since 1.3.
    Leaks {
        /// The process, or `-1` for every program.
        pid: i64,
    },
    /// Ask for a scan of the kernel heap for blocks nothing points to (as
    /// Linux's kmemleak does): one [`KernelMsg::KernelLeak`] per such block
    /// at least `min_age_ms` old, then [`KernelMsg::LeakScanEnd`]. Since 1.4.
    LeakScan {
        /// Younger blocks are not reported: a pointer to a block just
        /// allocated may still be only in a register.
        min_age_ms: u32,
    },
    /// Ask who holds each frame, run-length encoded: [`KernelMsg::OwnerRuns`]
    /// of up to [`OWNER_RUNS_BATCH`] runs each, in frame order, then
    /// [`KernelMsg::OwnerMapEnd`]. Since 2.1.
    OwnerMap {
        /// The first frame (physical address / 4096) to report.
        first_frame: u64,
        /// Frames to report from there, clamped to the frames the
        /// allocator covers (`u64::MAX`: up to the end).
        nr_frames: u64,
    },
}

/// Kernel identity and the summary of its memory.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Hello<'a> {
    /// Protocol version the kernel speaks.
    pub version: Version,
    /// Identifies the kernel build (crate version and build profile).
    #[serde(borrow)]
    pub build_id: Text<'a>,
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
    #[serde(borrow)]
    pub cmdline: Text<'a>,
    /// Microseconds since boot.
    pub uptime_us: u64,
    /// The rate of the time-stamp counter timestamps are read from, in Hz
    /// (measured against the timer at boot); 0 while timestamps still come
    /// from the timer's millisecond ticks. Since 2.0.
    pub tsc_hz: u64,
}

/// Kind of a memory-map region (the E820 types).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
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

/// A human-readable kernel log line.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Log<'a> {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Severity.
    pub level: LogLevel,
    /// The text, without a trailing newline.
    #[serde(borrow)]
    pub text: Text<'a>,
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
    #[serde(borrow)]
    pub message: Text<'a>,
    /// Source file of the panic.
    #[serde(borrow)]
    pub file: Text<'a>,
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

/// Who holds a physical frame.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FrameOwner {
    /// Not RAM: a hole in the memory map or a region it calls unusable.
    Unusable,
    /// RAM set aside by policy, such as the first MiB.
    Reserved,
    /// The loaded kernel image.
    KernelImage,
    /// Structures the boot loader handed over (memory map, command line, ...).
    BootInfo,
    /// The frame allocator's own bitmap and owner table.
    Bitmap,
    /// Backing store of the kernel heap.
    KernelHeap,
    /// A kernel stack.
    KernelStack,
    /// A page-table node (any level).
    PageTable,
    /// Memory of the process with this pid.
    Process(u32),
    /// Anything else, with a kernel-chosen tag.
    Other(u8),
}

/// Frames handed out ([`KernelMsg::PageAlloc`]) or returned
/// ([`KernelMsg::PageFree`]) by the physical allocator.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Physical address of the first frame.
    pub addr: u64,
    /// Number of contiguous frames.
    pub count: u32,
    /// Who holds (or held) the frames.
    pub owner: FrameOwner,
    /// Return address of the allocator's caller, raw (not relocated).
    pub caller: u64,
}

/// A page mapped ([`KernelMsg::Map`]) or unmapped ([`KernelMsg::Unmap`]).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Physical address of the PML4: identifies the address space.
    pub space: u64,
    /// Virtual address of the page.
    pub virt: u64,
    /// Physical address the page maps (for an unmap: what was mapped).
    pub phys: u64,
    /// Page size in bytes: 4096, 2 MiB or 1 GiB.
    pub size: u64,
    /// Raw x86-64 page-table entry flag bits (present is bit 0, writable
    /// bit 1, user bit 2, NX bit 63).
    pub flags: u64,
    /// Return address of the mapper's caller, raw.
    pub caller: u64,
}

/// A heap allocation ([`KernelMsg::HeapAlloc`]) or deallocation
/// ([`KernelMsg::HeapFree`]).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// Address of the payload.
    pub addr: u64,
    /// Payload bytes.
    pub size: u64,
    /// Alignment asked for, in bytes.
    pub align: u32,
    /// Allocation key grouping allocations; the kernel heap uses the caller.
    pub key: u64,
    /// Return address of the heap's caller, raw.
    pub caller: u64,
}

/// Why a heap call was refused or a heap check failed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeapErrorKind {
    /// No free block large enough, and the heap cannot grow.
    OutOfMemory,
    /// A size or alignment the heap cannot serve (e.g. alignment not a power
    /// of two, or a size that overflows).
    InvalidLayout,
    /// A pointer that is not the payload of a block of this heap.
    InvalidPointer,
    /// A block freed twice.
    DoubleFree,
    /// A block header that does not hold together.
    CorruptHeader,
    /// A write past the end of a payload, into its red zone.
    RedZoneOverflow {
        /// Offset of the first damaged red-zone byte from the payload start.
        offset: u32,
    },
    /// The heap's structures contradict each other (free lists, counters,
    /// neighbouring blocks).
    Inconsistent,
}

/// A heap call refused or a heap check failure.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapErrorEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// What went wrong.
    pub kind: HeapErrorKind,
    /// The payload or block address concerned, or 0.
    pub addr: u64,
    /// The size asked for or recorded, or 0.
    pub size: u64,
    /// Return address of the heap's caller, raw.
    pub caller: u64,
}

/// Why a physical-allocator call was refused.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FrameErrorKind {
    /// The frame is already free.
    DoubleFree,
    /// The frame belongs to a permanent owner and cannot be freed this way.
    Reserved,
    /// The frame is past the end of the allocator's range.
    OutOfRange,
    /// The address is not the start of a frame.
    Unaligned,
    /// No free frame, or no free run of the size and alignment asked for.
    OutOfMemory,
    /// A request of zero frames, an alignment that is not a power of two,
    /// or an owner that cannot be recorded.
    InvalidRequest,
    /// Any other refusal.
    Other,
}

/// A physical-allocator call refused.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameErrorEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Why it was refused.
    pub kind: FrameErrorKind,
    /// Physical address of the first frame concerned, or 0.
    pub addr: u64,
    /// Number of frames asked for or passed.
    pub count: u32,
    /// Return address of the allocator's caller, raw.
    pub caller: u64,
}

/// Frames per owner class, free frames included.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameUsage {
    /// Free frames.
    pub free: u64,
    /// [`FrameOwner::Unusable`] frames.
    pub unusable: u64,
    /// [`FrameOwner::Reserved`] frames.
    pub reserved: u64,
    /// [`FrameOwner::KernelImage`] frames.
    pub kernel_image: u64,
    /// [`FrameOwner::BootInfo`] frames.
    pub boot_info: u64,
    /// [`FrameOwner::Bitmap`] frames.
    pub bitmap: u64,
    /// [`FrameOwner::KernelHeap`] frames.
    pub kernel_heap: u64,
    /// [`FrameOwner::KernelStack`] frames.
    pub kernel_stack: u64,
    /// [`FrameOwner::PageTable`] frames.
    pub page_table: u64,
    /// [`FrameOwner::Process`] frames, all processes together.
    pub process: u64,
    /// [`FrameOwner::Other`] frames, all tags together.
    pub other: u64,
}

/// Occupancy of one heap; the default is an empty kernel heap.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapStats {
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// Bytes of the region the heap currently manages.
    pub region_bytes: u64,
    /// Bytes the region may grow to.
    pub max_bytes: u64,
    /// Payload bytes of used blocks.
    pub used_bytes: u64,
    /// Payload bytes of free blocks.
    pub free_bytes: u64,
    /// Bytes of headers, red zones and padding.
    pub overhead_bytes: u64,
    /// Blocks, used and free.
    pub total_blocks: u64,
    /// Used blocks.
    pub used_blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Payload bytes of the largest free block.
    pub largest_free: u64,
}

/// Event totals since boot, counted whether or not the event's frame was
/// sent (it may have been dropped or filtered out).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCounters {
    /// Physical allocations ([`KernelMsg::PageAlloc`]).
    pub page_allocs: u64,
    /// Physical frees ([`KernelMsg::PageFree`]).
    pub page_frees: u64,
    /// Pages mapped ([`KernelMsg::Map`]).
    pub maps: u64,
    /// Pages unmapped ([`KernelMsg::Unmap`]).
    pub unmaps: u64,
    /// Heap allocations ([`KernelMsg::HeapAlloc`]).
    pub heap_allocs: u64,
    /// Heap frees ([`KernelMsg::HeapFree`]).
    pub heap_frees: u64,
    /// Heap errors ([`KernelMsg::HeapError`]).
    pub heap_errors: u64,
    /// Physical-allocator errors ([`KernelMsg::FrameError`]).
    pub frame_errors: u64,
}

/// A snapshot of the kernel's memory.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Frames the physical allocator covers.
    pub total_frames: u64,
    /// Free frames.
    pub free_frames: u64,
    /// Frames per owner class.
    pub usage: FrameUsage,
    /// The kernel heap.
    pub kernel_heap: HeapStats,
    /// Event totals since boot.
    pub counters: EventCounters,
}

/// Result of a frame-bitmap consistency check. Counted values are what the
/// check found by scanning; recorded ones are the allocator's counters.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCheck {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Whether everything below agrees (counts equal, mismatches zero).
    pub consistent: bool,
    /// Frames the bitmap covers.
    pub nr_frames: u64,
    /// Frames whose used bit is clear.
    pub free_counted: u64,
    /// The allocator's free counter.
    pub free_recorded: u64,
    /// Frames that are RAM (owner not `Unusable`).
    pub total_counted: u64,
    /// The allocator's RAM counter.
    pub total_recorded: u64,
    /// Frames marked used with no owner.
    pub used_without_owner: u64,
    /// Frames marked free with an owner.
    pub free_with_owner: u64,
    /// Owner slots with an invalid value.
    pub invalid_owners: u64,
    /// Summary bits that disagree with the level below.
    pub summary_mismatches: u64,
    /// Wrong bits past the end of a bitmap level.
    pub padding_mismatches: u64,
}

/// Result of a heap consistency check.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapCheck {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// Whether the heap is consistent.
    pub ok: bool,
    /// The first problem found, if any.
    pub error: Option<HeapErrorKind>,
    /// Block where the check failed, else 0.
    pub addr: u64,
    /// The heap's occupancy as the check counted it.
    pub stats: HeapStats,
}

/// One block of a heap walk.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeapBlock {
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// Address of the payload.
    pub addr: u64,
    /// Payload bytes.
    pub size: u64,
    /// Whether the block is allocated.
    pub used: bool,
    /// The allocation key of a used block (see [`HeapEvent::key`]);
    /// meaningless for a free one.
    pub key: u64,
}

/// End of a heap walk.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapWalkEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// [`KernelMsg::HeapBlock`] messages sent for this walk.
    pub blocks: u64,
    /// False if the kernel could not queue every block (some were dropped).
    pub complete: bool,
}

/// A process spawned, forked or renamed.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProcessEvent<'a> {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The process.
    pub pid: u32,
    /// Its parent; 0 (the kernel) for processes the kernel started.
    pub parent: u32,
    /// Its program name.
    #[serde(borrow)]
    pub name: Text<'a>,
}

/// Why a process ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It called `exit` with this code.
    Exited(i64),
    /// The kernel killed it after a fault it could not resolve (see the
    /// [`KernelMsg::PageFault`] or [`KernelMsg::Exception`] before it).
    Killed {
        /// CPU exception vector.
        vector: u8,
    },
}

/// A process ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessExit {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The process.
    pub pid: u32,
    /// How it ended.
    pub reason: ExitReason,
    /// Heap blocks it left allocated (reported as [`KernelMsg::Leak`]s).
    pub leaked_blocks: u64,
    /// Payload bytes of those blocks.
    pub leaked_bytes: u64,
    /// Frames returned to the physical allocator at exit.
    pub frames_freed: u64,
}

/// Scheduling state of a process.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProcState {
    /// Running or ready to run.
    Runnable,
    /// Sleeping until a time.
    Sleeping,
    /// Ended, not yet reaped.
    Zombie,
    /// The kernel's own task.
    Kernel,
}

impl ProcessInfo<'_> {
    /// The same row owning its name.
    pub fn into_owned(self) -> ProcessInfo<'static> {
        ProcessInfo {
            ts_us: self.ts_us,
            pid: self.pid,
            parent: self.parent,
            name: Cow::Owned(self.name.into_owned()),
            state: self.state,
            nr_heaps: self.nr_heaps,
            nr_sheds: self.nr_sheds,
            nr_vmas: self.nr_vmas,
            total_heap_size: self.total_heap_size,
            total_heap_used: self.total_heap_used,
            total_heap_free: self.total_heap_free,
            total_shed_size: self.total_shed_size,
            resident_frames: self.resident_frames,
            page_table_frames: self.page_table_frames,
        }
    }
}

/// One program in the `checkMemory` view: the totals are the sums of its
/// heaps and sheds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo<'a> {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process id; 0 is the kernel.
    pub pid: u32,
    /// Parent process id.
    pub parent: u32,
    /// Program name (`Program-{pid}` until one is registered).
    #[serde(borrow)]
    pub name: Text<'a>,
    /// Scheduling state.
    pub state: ProcState,
    /// Heaps that follow as [`KernelMsg::ProcessHeap`].
    pub nr_heaps: u32,
    /// Sheds that follow as [`KernelMsg::ProcessShed`].
    pub nr_sheds: u32,
    /// VMAs that follow as [`KernelMsg::ProcessVma`].
    pub nr_vmas: u32,
    /// Sum of `heap_size` over its heaps.
    pub total_heap_size: u64,
    /// Sum of `heap_used`.
    pub total_heap_used: u64,
    /// Sum of `heap_free`.
    pub total_heap_free: u64,
    /// Sum of `shed_size` over its sheds.
    pub total_shed_size: u64,
    /// Frames mapped in its address space (user pages).
    pub resident_frames: u64,
    /// Page-table frames of its address space.
    pub page_table_frames: u64,
}

/// One heap of a program.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessHeap {
    /// Owning process.
    pub pid: u32,
    /// Heap id within the process.
    pub heap_id: u32,
    /// Start address of the heap in the process.
    pub start: u64,
    /// Bytes the heap manages (`heapSize`).
    pub heap_size: u64,
    /// Payload bytes in use (`heapUsed`).
    pub heap_used: u64,
    /// `heap_size - heap_used` (`heapFree`): what is not handed out,
    /// headers included.
    pub heap_free: u64,
    /// Blocks in use.
    pub used_blocks: u64,
    /// Payload bytes of the largest free block.
    pub largest_free: u64,
}

/// One shed (a region of code or constants the process cannot write) of a
/// program.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessShed {
    /// Owning process.
    pub pid: u32,
    /// Shed id within the process.
    pub shed_id: u32,
    /// Start address of the shed in the process.
    pub start: u64,
    /// Bytes (`shedSize`).
    pub shed_size: u64,
}

/// What a VMA holds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VmaKind {
    /// Program code.
    Code,
    /// Program data and bss.
    Data,
    /// A process heap.
    Heap,
    /// A stack.
    Stack,
    /// An `mmap` region.
    Mmap,
    /// A shed: code or constants the process reads but writes only
    /// through the memory API.
    Shed,
}

/// One virtual memory area, like a line of `/proc/PID/maps`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessVma {
    /// Owning process.
    pub pid: u32,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// `VM_*` bits: READ 1, WRITE 2, EXEC 4, SHARED 8, GROWSUP 16,
    /// GROWSDOWN 32.
    pub flags: u32,
    /// What it holds.
    pub kind: VmaKind,
    /// Pages of it that are backed by a frame.
    pub resident_pages: u64,
}

/// End of a process listing.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessListEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Programs listed (`totalPrograms`), the kernel included.
    pub total_programs: u32,
    /// False if some messages of the listing could not be queued.
    pub complete: bool,
}

/// How the kernel resolved a page fault.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FaultResolution {
    /// A fresh zeroed frame backed a page of a VMA.
    Demand,
    /// A write to a shared copy-on-write page got a private copy.
    CopyOnWrite,
    /// A write to a copy-on-write page whose frame had no other user: made
    /// writable in place.
    CowReuse,
    /// The stack VMA grew down to cover the address.
    StackGrowth,
    /// No VMA allows the access: the process was killed.
    Killed,
}

/// A page fault in a process.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageFault {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Faulting process.
    pub pid: u32,
    /// Faulting address (CR2).
    pub addr: u64,
    /// CPU error code: bit 0 present, 1 write, 2 user, 3 reserved bit,
    /// 4 instruction fetch.
    pub error_code: u64,
    /// Instruction that faulted.
    pub rip: u64,
    /// What the kernel did.
    pub resolution: FaultResolution,
    /// Start of the VMA containing the address or, if none, the nearest
    /// one; 0 with `vma_end` 0 when the process has none.
    pub vma_start: u64,
    /// End of that VMA.
    pub vma_end: u64,
    /// `VM_*` bits of that VMA (see [`ProcessVma::flags`]).
    pub vma_flags: u32,
}

/// Leaked heap blocks of one key.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leak {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process that allocated them.
    pub pid: u32,
    /// Heap they were in.
    pub heap_id: u32,
    /// The allocation key.
    pub key: u64,
    /// Blocks with that key.
    pub blocks: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Address of one of them (the lowest).
    pub first_addr: u64,
    /// Milliseconds since the oldest of them was allocated, when the
    /// kernel recorded it (since 1.4).
    pub oldest_age_ms: Option<u64>,
}

/// Where a page-table range lies: a region of the kernel's half, or the
/// kind of the VMA of a process that holds it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Region {
    /// Nothing the kernel knows of (a finding if it is a user page).
    #[default]
    Unknown,
    /// Kernel text.
    Text,
    /// Kernel read-only data.
    Rodata,
    /// Kernel data and bss (the boot stack included).
    Data,
    /// The direct map of all RAM.
    DirectMap,
    /// The kernel heap.
    KernelHeap,
    /// Another kernel heap (`create_heap`).
    Heap,
    /// A kernel stack.
    KernelStack,
    /// A process's VMA of this kind.
    Vma(VmaKind),
}

/// Coalesced leaves of a page-table dump: a range goes on while virtual and
/// physical addresses continue and the page size, the permission flags and
/// the region stay the same.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PtRange {
    /// The space: the pid whose tables these are, 0 for the kernel's.
    pub space: u32,
    /// First virtual address (canonical).
    pub start: u64,
    /// One past the last virtual address.
    pub end: u64,
    /// Physical address behind `start`; the rest follows contiguously.
    pub phys: u64,
    /// Bytes of each leaf: 4096, 2 MiB or 1 GiB.
    pub page_size: u64,
    /// Permission and caching bits ([`names::pt`](crate::names::pt)), with
    /// writable, user and no-execute as the MMU combines them over all
    /// four levels.
    pub flags: u8,
    /// Leaves the range holds.
    pub pages: u64,
    /// Leaves of it marked dirty.
    pub dirty_pages: u64,
    /// What it belongs to.
    pub region: Region,
}

/// What an audit finding is about.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Writable and executable at once.
    WritableExecutable,
    /// Reachable from ring 3 in the kernel half.
    UserInKernelHalf,
    /// A user page in no VMA of its process.
    OutsideVma,
    /// A user page allowing more than its VMA (write or execute).
    BeyondVma,
    /// A kernel-half top-level entry that is not the kernel's own.
    KernelHalfDiffers,
}

/// One audit finding of a page-table dump.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PtAudit {
    /// The space dumped.
    pub space: u32,
    /// What is wrong.
    pub kind: AuditKind,
    /// First virtual address concerned.
    pub start: u64,
    /// One past the last.
    pub end: u64,
    /// The range's flags ([`names::pt`](crate::names::pt)).
    pub flags: u8,
}

/// End of a page-table dump.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PtDumpEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The space dumped.
    pub space: u32,
    /// Physical address of its top-level table (PML4).
    pub root: u64,
    /// [`KernelMsg::PtRange`]s sent.
    pub ranges: u64,
    /// 4 KiB leaves.
    pub pages_4k: u64,
    /// 2 MiB leaves.
    pub pages_2m: u64,
    /// 1 GiB leaves.
    pub pages_1g: u64,
    /// [`KernelMsg::PtAudit`]s sent.
    pub findings: u64,
    /// False if there is no such space (no process, or one without an
    /// address space).
    pub complete: bool,
}

/// What a consistency finding is about.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A mapped frame (or a page-table frame) the bitmap calls free.
    MappedButFree,
    /// A mapped frame owned by someone else than the space that maps it.
    WrongOwner,
    /// A shared frame whose share count differs from its mappings.
    ShareCount,
    /// A frame charged to a process that no mapping, heap or table of it
    /// holds.
    LeakedFrame,
    /// A used frame with no owner.
    UsedWithoutOwner,
}

/// One inconsistency between the frame allocator and the mappings.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckFinding {
    /// What is wrong.
    pub kind: FindingKind,
    /// The physical frame concerned.
    pub phys: u64,
    /// Whether the bitmap marks it used.
    pub used: bool,
    /// Its recorded owner, if any.
    pub owner: Option<FrameOwner>,
    /// The space that maps it (0: the kernel's), when a mapping is involved.
    pub pid: u32,
    /// The virtual address it is mapped at there, or 0.
    pub virt: u64,
    /// That mapping's flags ([`names::pt`](crate::names::pt)).
    pub flags: u8,
    /// For a share count: the mappings found.
    pub mappings: u64,
    /// For a share count: the count recorded.
    pub recorded: u64,
}

/// The verdict of a consistency check of every mapping.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// No finding.
    pub consistent: bool,
    /// Frames the allocator covers.
    pub frames: u64,
    /// Address spaces walked (the kernel's included).
    pub spaces: u32,
    /// Leaves walked.
    pub mappings: u64,
    /// [`KernelMsg::CheckFinding`]s sent.
    pub findings: u64,
    /// How long the check took.
    pub duration_us: u64,
}

/// The kernel's settings the host can change.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Most verbose `Log` level sent (0 error .. 3 debug).
    pub log_level: u8,
    /// Event classes sent ([`names::event_class`](crate::names::event_class)).
    pub events: u32,
}

/// End of the answer to [`HostMsg::Leaks`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaksEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The pid asked for (`-1`: every program).
    pub pid: i64,
    /// Processes reported.
    pub processes: u32,
    /// False if there was no such process, or a damaged heap header cut a
    /// walk short.
    pub complete: bool,
}

/// The minimum age of a reported leak when none is given (`mmtop leaks
/// --scan`, `monitor kleak`): a block younger than this may be one whose
/// pointer is still only in a register.
pub const DEFAULT_MIN_AGE_MS: u32 = 1000;
/// Return addresses a [`KernelLeak`] carries, innermost first.
pub const LEAK_STACK_DEPTH: usize = 8;
/// Payload bytes a [`KernelLeak`] shows.
pub const LEAK_PREVIEW_BYTES: usize = 16;

/// A kernel-heap block that no reference reaches: nothing in the kernel's
/// data, its stacks or the blocks reachable from those points into it.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelLeak {
    /// The payload address.
    pub addr: u64,
    /// Bytes requested.
    pub size: u64,
    /// Milliseconds since it was allocated.
    pub age_ms: u64,
    /// Return addresses of its allocation, innermost (the allocator's own
    /// frames) first; 0 past the last. All 0 when the call site was not
    /// recorded (the kernel's table of call sites was full).
    pub stack: [u64; LEAK_STACK_DEPTH],
    /// Its first payload bytes (fewer are meaningful when `size` is
    /// smaller; the rest are 0).
    pub first_bytes: [u8; LEAK_PREVIEW_BYTES],
    /// The previous scan reported it too.
    pub confirmed: bool,
}

/// How a kernel leak scan ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LeakScanStatus {
    /// The scan ran; its leaks were sent.
    #[default]
    Done,
    /// Another scan was running (one started from the debugger while this
    /// one was stopped); nothing was scanned.
    Busy,
    /// No frames for the scan's work area; nothing was scanned.
    NoMemory,
}

/// End of a kernel leak scan.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeakScanEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Whether it ran.
    pub status: LeakScanStatus,
    /// The minimum age asked for.
    pub min_age_ms: u32,
    /// Kernel-heap blocks in use when it started.
    pub blocks: u64,
    /// Of those, blocks whose call site was not recorded (reported with an
    /// empty stack if they leak).
    pub untraced: u64,
    /// Bytes of roots and reachable blocks read.
    pub scanned_bytes: u64,
    /// How long it took, start to verdict.
    pub duration_us: u64,
    /// [`KernelMsg::KernelLeak`]s sent.
    pub leaks: u32,
    /// Of those, reported by the previous scan too.
    pub confirmed: u32,
}

/// Runs an [`OwnerRuns`] carries at most: 48 of the largest (a pid and a
/// length at their widest, 17 bytes) fit a frame; typical runs take 3 to 6
/// bytes, so a 1 GiB machine's map is a few messages, not 256k.
pub const OWNER_RUNS_BATCH: usize = 48;

/// Frames in a row that one owner holds, or that are free.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OwnerRun {
    /// Who holds them; `None` for free frames.
    pub owner: Option<FrameOwner>,
    /// How many (at least 1).
    pub frames: u64,
}

/// Consecutive runs of the owner map: the first starts at `first_frame`,
/// each of the others where the one before ends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct OwnerRuns<'a> {
    /// Frame number (physical address / 4096) where the first run starts.
    pub first_frame: u64,
    /// The runs, in frame order; at most [`OWNER_RUNS_BATCH`].
    pub runs: Cow<'a, [OwnerRun]>,
}

/// End of the answer to [`HostMsg::OwnerMap`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnerMapEnd {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The first frame reported.
    pub first_frame: u64,
    /// Frames the runs cover.
    pub nr_frames: u64,
    /// Runs sent, over every [`KernelMsg::OwnerRuns`].
    pub runs: u64,
    /// Frames the allocator covers (`0..total_frames`), RAM or not: the
    /// whole map's extent.
    pub total_frames: u64,
}
