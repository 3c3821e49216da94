//! Owned kernel messages: what the host keeps after a frame's bytes are gone.
//!
//! `probe_proto::KernelMsg` borrows its strings from the decoder's buffer,
//! which the next byte overwrites; [`Msg`] owns them. Its serde form is the
//! `--json` output: an object with a snake_case `"type"` naming the variant
//! and the variant's fields beside it.

use serde::{Deserialize, Serialize};

pub use probe_proto::{
    EventCounters, Exception, FrameCheck, FrameUsage, HeapBlock, HeapEvent, HeapStats, HeapWalkEnd,
    Heartbeat, Leak, MapEvent, MemoryStats, Pong, ProcessHeap, ProcessListEnd, ProcessShed,
    Version,
};

/// A kernel-to-host message, owned.
///
/// Plain-number payloads (`Heartbeat`, `Exception`, `Pong`, `MemoryStats`,
/// `MapEvent`, ...) are the wire types themselves; those holding strings or
/// wire enums have owned mirrors here so that their JSON spelling is mmtop's
/// choice, not the wire's.
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
    /// A snapshot of the kernel's memory; boxed, being by far the largest
    /// message, so that every other `Msg` stays small.
    MemoryStats(Box<MemoryStats>),
    /// Frames handed out by the physical allocator.
    PageAlloc(PageEvent),
    /// Frames returned to the physical allocator.
    PageFree(PageEvent),
    /// A page mapped.
    Map(MapEvent),
    /// A page unmapped.
    Unmap(MapEvent),
    /// A heap allocation.
    HeapAlloc(HeapEvent),
    /// A heap free.
    HeapFree(HeapEvent),
    /// A heap call refused or a heap check failure.
    HeapError(HeapErrorEvent),
    /// A physical-allocator call refused.
    FrameError(FrameErrorEvent),
    /// Result of a frame-bitmap consistency check.
    FrameCheck(FrameCheck),
    /// Result of a heap consistency check.
    HeapCheck(HeapCheck),
    /// One block of a heap walk.
    HeapBlock(HeapBlock),
    /// End of a heap walk.
    HeapWalkEnd(HeapWalkEnd),
    /// A process was created.
    ProcessSpawn(ProcessEvent),
    /// A process ended.
    ProcessExit(ProcessExit),
    /// A process registered a program name.
    ProcessRename(ProcessEvent),
    /// One program of a process listing (its `checkMemory` row).
    ProcessInfo(ProcessInfo),
    /// One heap of the program last listed.
    ProcessHeap(ProcessHeap),
    /// One shed of the program last listed.
    ProcessShed(ProcessShed),
    /// One VMA of the program last listed.
    ProcessVma(ProcessVma),
    /// End of a process listing.
    ProcessListEnd(ProcessListEnd),
    /// A page fault in a process and how the kernel resolved it.
    PageFault(PageFault),
    /// Blocks of one key left allocated when a process's heap went away.
    Leak(Leak),
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
            Msg::MemoryStats(_) => "memory_stats",
            Msg::PageAlloc(_) => "page_alloc",
            Msg::PageFree(_) => "page_free",
            Msg::Map(_) => "map",
            Msg::Unmap(_) => "unmap",
            Msg::HeapAlloc(_) => "heap_alloc",
            Msg::HeapFree(_) => "heap_free",
            Msg::HeapError(_) => "heap_error",
            Msg::FrameError(_) => "frame_error",
            Msg::FrameCheck(_) => "frame_check",
            Msg::HeapCheck(_) => "heap_check",
            Msg::HeapBlock(_) => "heap_block",
            Msg::HeapWalkEnd(_) => "heap_walk_end",
            Msg::ProcessSpawn(_) => "process_spawn",
            Msg::ProcessExit(_) => "process_exit",
            Msg::ProcessRename(_) => "process_rename",
            Msg::ProcessInfo(_) => "process_info",
            Msg::ProcessHeap(_) => "process_heap",
            Msg::ProcessShed(_) => "process_shed",
            Msg::ProcessVma(_) => "process_vma",
            Msg::ProcessListEnd(_) => "process_list_end",
            Msg::PageFault(_) => "page_fault",
            Msg::Leak(_) => "leak",
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

/// Holder of a physical frame. JSON: `"kernel_heap"`, ..., `{"process": PID}`
/// or `{"other": TAG}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameOwner {
    /// Not RAM.
    Unusable,
    /// RAM set aside by policy (e.g. the first MiB).
    Reserved,
    /// The kernel image.
    KernelImage,
    /// Boot loader structures.
    BootInfo,
    /// The frame allocator's own bitmap and owner table.
    Bitmap,
    /// Backing store of the kernel heap.
    KernelHeap,
    /// A kernel stack.
    KernelStack,
    /// A page-table node.
    PageTable,
    /// Memory of the process with this pid.
    Process(u32),
    /// Anything else, with the kernel's tag.
    Other(u8),
}

/// Owned [`probe_proto::PageEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Physical address of the first frame.
    pub addr: u64,
    /// Number of frames.
    pub count: u32,
    /// Who holds (or held) the frames.
    pub owner: FrameOwner,
    /// Return address of the caller, raw.
    pub caller: u64,
}

/// Why a heap call was refused or a heap check failed. JSON: `"double_free"`,
/// ..., or `{"red_zone_overflow": {"offset": N}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeapErrorKind {
    /// No block large enough.
    OutOfMemory,
    /// A size or alignment the heap cannot serve.
    InvalidLayout,
    /// Not a payload of this heap.
    InvalidPointer,
    /// A block freed twice.
    DoubleFree,
    /// A damaged block header.
    CorruptHeader,
    /// A write past the end of a payload.
    RedZoneOverflow {
        /// Offset of the first damaged byte from the payload start.
        offset: u32,
    },
    /// The heap's structures contradict each other.
    Inconsistent,
}

/// Owned [`probe_proto::HeapErrorEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapErrorEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// What went wrong.
    pub kind: HeapErrorKind,
    /// The address concerned, or 0.
    pub addr: u64,
    /// The size concerned, or 0.
    pub size: u64,
    /// Return address of the caller, raw.
    pub caller: u64,
}

/// Why a physical-allocator call was refused. JSON: `"double_free"`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameErrorKind {
    /// The frame is already free.
    DoubleFree,
    /// The frame has a permanent owner.
    Reserved,
    /// Past the end of the allocator's range.
    OutOfRange,
    /// Not the start of a frame.
    Unaligned,
    /// No free frame or run.
    OutOfMemory,
    /// A malformed request.
    InvalidRequest,
    /// Any other refusal.
    Other,
}

/// Owned [`probe_proto::FrameErrorEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameErrorEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Why it was refused.
    pub kind: FrameErrorKind,
    /// Physical address of the first frame concerned, or 0.
    pub addr: u64,
    /// Number of frames.
    pub count: u32,
    /// Return address of the caller, raw.
    pub caller: u64,
}

/// Owned [`probe_proto::HeapCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeapCheck {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process owning the heap; 0 for the kernel.
    pub pid: u32,
    /// Which heap of that process.
    pub heap_id: u32,
    /// Whether the heap is consistent.
    pub ok: bool,
    /// The first problem found; JSON `null` when none.
    pub error: Option<HeapErrorKind>,
    /// Block where the check failed, else 0.
    pub addr: u64,
    /// Occupancy as the check counted it.
    pub stats: HeapStats,
}

/// Owned [`probe_proto::ProcessEvent`]: a process spawned or renamed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessEvent {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The process.
    pub pid: u32,
    /// Its parent; 0 (the kernel) for processes the kernel started.
    pub parent: u32,
    /// Its program name.
    pub name: String,
}

/// Why a process ended. JSON: `{"exited": CODE}` or
/// `{"killed": {"vector": N}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It called `exit` with this code.
    Exited(i64),
    /// The kernel killed it after a fault it could not resolve.
    Killed {
        /// CPU exception vector.
        vector: u8,
    },
}

/// Owned [`probe_proto::ProcessExit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// The process.
    pub pid: u32,
    /// How it ended.
    pub reason: ExitReason,
    /// Heap blocks it left allocated.
    pub leaked_blocks: u64,
    /// Payload bytes of those blocks.
    pub leaked_bytes: u64,
    /// Frames returned to the physical allocator at exit.
    pub frames_freed: u64,
}

/// Scheduling state of a process. JSON: `"runnable"`, `"sleeping"`,
/// `"zombie"`, `"kernel"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

/// Owned [`probe_proto::ProcessInfo`]: one program of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Process id; 0 is the kernel.
    pub pid: u32,
    /// Parent process id.
    pub parent: u32,
    /// Program name.
    pub name: String,
    /// Scheduling state.
    pub state: ProcState,
    /// `ProcessHeap` messages that follow.
    pub nr_heaps: u32,
    /// `ProcessShed` messages that follow.
    pub nr_sheds: u32,
    /// `ProcessVma` messages that follow.
    pub nr_vmas: u32,
    /// Sum of its heaps' sizes, as the kernel counts it.
    pub total_heap_size: u64,
    /// Sum of its heaps' used bytes.
    pub total_heap_used: u64,
    /// Sum of its heaps' free bytes.
    pub total_heap_free: u64,
    /// Sum of its sheds' sizes.
    pub total_shed_size: u64,
    /// Frames mapped in its address space.
    pub resident_frames: u64,
    /// Page-table frames of its address space.
    pub page_table_frames: u64,
}

/// What a VMA holds. JSON: `"code"`, `"data"`, `"heap"`, `"stack"`,
/// `"mmap"`, `"shed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A shed.
    Shed,
}

/// Owned [`probe_proto::ProcessVma`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Pages backed by a frame.
    pub resident_pages: u64,
}

/// How the kernel resolved a page fault. JSON: `"demand"`,
/// `"copy_on_write"`, `"cow_reuse"`, `"stack_growth"`, `"killed"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultResolution {
    /// A fresh zeroed frame backed the page.
    Demand,
    /// A shared copy-on-write page got a private copy.
    CopyOnWrite,
    /// A copy-on-write page with no other user was made writable in place.
    CowReuse,
    /// The stack grew down to cover the address.
    StackGrowth,
    /// No VMA allows the access: the process was killed.
    Killed,
}

/// Owned [`probe_proto::PageFault`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageFault {
    /// Microseconds since boot.
    pub ts_us: u64,
    /// Faulting process.
    pub pid: u32,
    /// Faulting address (CR2).
    pub addr: u64,
    /// CPU error code.
    pub error_code: u64,
    /// Instruction that faulted.
    pub rip: u64,
    /// What the kernel did.
    pub resolution: FaultResolution,
    /// Start of the VMA containing the address, or the nearest one.
    pub vma_start: u64,
    /// End of that VMA.
    pub vma_end: u64,
    /// `VM_*` bits of that VMA.
    pub vma_flags: u32,
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
            K::MemoryStats(m) => Msg::MemoryStats(Box::new(*m)),
            K::PageAlloc(e) => Msg::PageAlloc(e.into()),
            K::PageFree(e) => Msg::PageFree(e.into()),
            K::Map(e) => Msg::Map(*e),
            K::Unmap(e) => Msg::Unmap(*e),
            K::HeapAlloc(e) => Msg::HeapAlloc(*e),
            K::HeapFree(e) => Msg::HeapFree(*e),
            K::HeapError(e) => Msg::HeapError(e.into()),
            K::FrameError(e) => Msg::FrameError(e.into()),
            K::FrameCheck(c) => Msg::FrameCheck(*c),
            K::HeapCheck(c) => Msg::HeapCheck(c.into()),
            K::HeapBlock(b) => Msg::HeapBlock(*b),
            K::HeapWalkEnd(e) => Msg::HeapWalkEnd(*e),
            K::ProcessSpawn(e) => Msg::ProcessSpawn(e.into()),
            K::ProcessExit(e) => Msg::ProcessExit(e.into()),
            K::ProcessRename(e) => Msg::ProcessRename(e.into()),
            K::ProcessInfo(i) => Msg::ProcessInfo(i.into()),
            K::ProcessHeap(h) => Msg::ProcessHeap(*h),
            K::ProcessShed(s) => Msg::ProcessShed(*s),
            K::ProcessVma(v) => Msg::ProcessVma(v.into()),
            K::ProcessListEnd(e) => Msg::ProcessListEnd(*e),
            K::PageFault(f) => Msg::PageFault(f.into()),
            K::Leak(l) => Msg::Leak(*l),
        }
    }
}

impl From<&probe_proto::ProcessEvent<'_>> for ProcessEvent {
    fn from(e: &probe_proto::ProcessEvent<'_>) -> Self {
        ProcessEvent {
            ts_us: e.ts_us,
            pid: e.pid,
            parent: e.parent,
            name: e.name.to_owned(),
        }
    }
}

impl From<probe_proto::ExitReason> for ExitReason {
    fn from(reason: probe_proto::ExitReason) -> Self {
        use probe_proto::ExitReason as R;
        match reason {
            R::Exited(code) => ExitReason::Exited(code),
            R::Killed { vector } => ExitReason::Killed { vector },
        }
    }
}

impl From<&probe_proto::ProcessExit> for ProcessExit {
    fn from(e: &probe_proto::ProcessExit) -> Self {
        ProcessExit {
            ts_us: e.ts_us,
            pid: e.pid,
            reason: e.reason.into(),
            leaked_blocks: e.leaked_blocks,
            leaked_bytes: e.leaked_bytes,
            frames_freed: e.frames_freed,
        }
    }
}

impl From<probe_proto::ProcState> for ProcState {
    fn from(state: probe_proto::ProcState) -> Self {
        use probe_proto::ProcState as S;
        match state {
            S::Runnable => ProcState::Runnable,
            S::Sleeping => ProcState::Sleeping,
            S::Zombie => ProcState::Zombie,
            S::Kernel => ProcState::Kernel,
        }
    }
}

impl From<&probe_proto::ProcessInfo<'_>> for ProcessInfo {
    fn from(i: &probe_proto::ProcessInfo<'_>) -> Self {
        ProcessInfo {
            ts_us: i.ts_us,
            pid: i.pid,
            parent: i.parent,
            name: i.name.to_owned(),
            state: i.state.into(),
            nr_heaps: i.nr_heaps,
            nr_sheds: i.nr_sheds,
            nr_vmas: i.nr_vmas,
            total_heap_size: i.total_heap_size,
            total_heap_used: i.total_heap_used,
            total_heap_free: i.total_heap_free,
            total_shed_size: i.total_shed_size,
            resident_frames: i.resident_frames,
            page_table_frames: i.page_table_frames,
        }
    }
}

impl From<probe_proto::VmaKind> for VmaKind {
    fn from(kind: probe_proto::VmaKind) -> Self {
        use probe_proto::VmaKind as K;
        match kind {
            K::Code => VmaKind::Code,
            K::Data => VmaKind::Data,
            K::Heap => VmaKind::Heap,
            K::Stack => VmaKind::Stack,
            K::Mmap => VmaKind::Mmap,
            K::Shed => VmaKind::Shed,
        }
    }
}

impl From<&probe_proto::ProcessVma> for ProcessVma {
    fn from(v: &probe_proto::ProcessVma) -> Self {
        ProcessVma {
            pid: v.pid,
            start: v.start,
            end: v.end,
            flags: v.flags,
            kind: v.kind.into(),
            resident_pages: v.resident_pages,
        }
    }
}

impl From<probe_proto::FaultResolution> for FaultResolution {
    fn from(r: probe_proto::FaultResolution) -> Self {
        use probe_proto::FaultResolution as R;
        match r {
            R::Demand => FaultResolution::Demand,
            R::CopyOnWrite => FaultResolution::CopyOnWrite,
            R::CowReuse => FaultResolution::CowReuse,
            R::StackGrowth => FaultResolution::StackGrowth,
            R::Killed => FaultResolution::Killed,
        }
    }
}

impl From<&probe_proto::PageFault> for PageFault {
    fn from(f: &probe_proto::PageFault) -> Self {
        PageFault {
            ts_us: f.ts_us,
            pid: f.pid,
            addr: f.addr,
            error_code: f.error_code,
            rip: f.rip,
            resolution: f.resolution.into(),
            vma_start: f.vma_start,
            vma_end: f.vma_end,
            vma_flags: f.vma_flags,
        }
    }
}

impl From<probe_proto::FrameOwner> for FrameOwner {
    fn from(owner: probe_proto::FrameOwner) -> Self {
        use probe_proto::FrameOwner as O;
        match owner {
            O::Unusable => FrameOwner::Unusable,
            O::Reserved => FrameOwner::Reserved,
            O::KernelImage => FrameOwner::KernelImage,
            O::BootInfo => FrameOwner::BootInfo,
            O::Bitmap => FrameOwner::Bitmap,
            O::KernelHeap => FrameOwner::KernelHeap,
            O::KernelStack => FrameOwner::KernelStack,
            O::PageTable => FrameOwner::PageTable,
            O::Process(pid) => FrameOwner::Process(pid),
            O::Other(tag) => FrameOwner::Other(tag),
        }
    }
}

impl From<&probe_proto::PageEvent> for PageEvent {
    fn from(e: &probe_proto::PageEvent) -> Self {
        PageEvent {
            ts_us: e.ts_us,
            addr: e.addr,
            count: e.count,
            owner: e.owner.into(),
            caller: e.caller,
        }
    }
}

impl From<probe_proto::HeapErrorKind> for HeapErrorKind {
    fn from(kind: probe_proto::HeapErrorKind) -> Self {
        use probe_proto::HeapErrorKind as K;
        match kind {
            K::OutOfMemory => HeapErrorKind::OutOfMemory,
            K::InvalidLayout => HeapErrorKind::InvalidLayout,
            K::InvalidPointer => HeapErrorKind::InvalidPointer,
            K::DoubleFree => HeapErrorKind::DoubleFree,
            K::CorruptHeader => HeapErrorKind::CorruptHeader,
            K::RedZoneOverflow { offset } => HeapErrorKind::RedZoneOverflow { offset },
            K::Inconsistent => HeapErrorKind::Inconsistent,
        }
    }
}

impl From<&probe_proto::HeapErrorEvent> for HeapErrorEvent {
    fn from(e: &probe_proto::HeapErrorEvent) -> Self {
        HeapErrorEvent {
            ts_us: e.ts_us,
            pid: e.pid,
            heap_id: e.heap_id,
            kind: e.kind.into(),
            addr: e.addr,
            size: e.size,
            caller: e.caller,
        }
    }
}

impl From<probe_proto::FrameErrorKind> for FrameErrorKind {
    fn from(kind: probe_proto::FrameErrorKind) -> Self {
        use probe_proto::FrameErrorKind as K;
        match kind {
            K::DoubleFree => FrameErrorKind::DoubleFree,
            K::Reserved => FrameErrorKind::Reserved,
            K::OutOfRange => FrameErrorKind::OutOfRange,
            K::Unaligned => FrameErrorKind::Unaligned,
            K::OutOfMemory => FrameErrorKind::OutOfMemory,
            K::InvalidRequest => FrameErrorKind::InvalidRequest,
            K::Other => FrameErrorKind::Other,
        }
    }
}

impl From<&probe_proto::FrameErrorEvent> for FrameErrorEvent {
    fn from(e: &probe_proto::FrameErrorEvent) -> Self {
        FrameErrorEvent {
            ts_us: e.ts_us,
            kind: e.kind.into(),
            addr: e.addr,
            count: e.count,
            caller: e.caller,
        }
    }
}

impl From<&probe_proto::HeapCheck> for HeapCheck {
    fn from(c: &probe_proto::HeapCheck) -> Self {
        HeapCheck {
            ts_us: c.ts_us,
            pid: c.pid,
            heap_id: c.heap_id,
            ok: c.ok,
            error: c.error.map(Into::into),
            addr: c.addr,
            stats: c.stats,
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

#[cfg(test)]
mod tests {
    use super::*;
    use probe_proto as p;
    use probe_proto::KernelMsg as K;

    fn heap_stats() -> HeapStats {
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
        let page = p::PageEvent {
            ts_us: 1,
            addr: 0x1000,
            count: 2,
            owner: p::FrameOwner::Process(7),
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
        vec![
            K::MemoryStats(MemoryStats {
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
                kernel_heap: heap_stats(),
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
            }),
            K::PageAlloc(page),
            K::PageFree(page),
            K::Map(map),
            K::Unmap(map),
            K::HeapAlloc(heap),
            K::HeapFree(heap),
            K::HeapError(p::HeapErrorEvent {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                kind: p::HeapErrorKind::RedZoneOverflow { offset: 4 },
                addr: 0x10,
                size: 16,
                caller: 5,
            }),
            K::FrameError(p::FrameErrorEvent {
                ts_us: 1,
                kind: p::FrameErrorKind::Reserved,
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
            K::HeapCheck(p::HeapCheck {
                ts_us: 1,
                pid: 0,
                heap_id: 0,
                ok: false,
                error: Some(p::HeapErrorKind::DoubleFree),
                addr: 0x10,
                stats: heap_stats(),
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
        ]
    }

    #[test]
    fn every_1_1_message_converts_and_its_kind_is_its_json_type() {
        let kinds: Vec<&str> = wire_1_1()
            .iter()
            .map(|w| {
                let msg = Msg::from(w);
                let value = serde_json::to_value(&msg).unwrap();
                assert_eq!(value["type"], msg.kind(), "{msg:?}");
                msg.kind()
            })
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
    fn wire_enums_convert_variant_for_variant() {
        let w = wire_1_1();
        assert!(matches!(
            Msg::from(&w[1]),
            Msg::PageAlloc(PageEvent {
                owner: FrameOwner::Process(7),
                count: 2,
                ..
            })
        ));
        assert!(matches!(
            Msg::from(&w[7]),
            Msg::HeapError(HeapErrorEvent {
                kind: HeapErrorKind::RedZoneOverflow { offset: 4 },
                ..
            })
        ));
        assert!(matches!(
            Msg::from(&w[8]),
            Msg::FrameError(FrameErrorEvent {
                kind: FrameErrorKind::Reserved,
                ..
            })
        ));
        assert!(matches!(
            Msg::from(&w[10]),
            Msg::HeapCheck(HeapCheck {
                ok: false,
                error: Some(HeapErrorKind::DoubleFree),
                addr: 0x10,
                ..
            })
        ));
        let owners = [
            (p::FrameOwner::Unusable, FrameOwner::Unusable),
            (p::FrameOwner::Reserved, FrameOwner::Reserved),
            (p::FrameOwner::KernelImage, FrameOwner::KernelImage),
            (p::FrameOwner::BootInfo, FrameOwner::BootInfo),
            (p::FrameOwner::Bitmap, FrameOwner::Bitmap),
            (p::FrameOwner::KernelHeap, FrameOwner::KernelHeap),
            (p::FrameOwner::KernelStack, FrameOwner::KernelStack),
            (p::FrameOwner::PageTable, FrameOwner::PageTable),
            (p::FrameOwner::Process(9), FrameOwner::Process(9)),
            (p::FrameOwner::Other(3), FrameOwner::Other(3)),
        ];
        for (wire, owned) in owners {
            assert_eq!(FrameOwner::from(wire), owned);
        }
    }

    /// One of each 1.2 kernel message.
    fn wire_1_2() -> Vec<K<'static>> {
        let event = p::ProcessEvent {
            ts_us: 1,
            pid: 3,
            parent: 0,
            name: "memtest",
        };
        vec![
            K::ProcessSpawn(event.clone()),
            K::ProcessExit(p::ProcessExit {
                ts_us: 2,
                pid: 3,
                reason: p::ExitReason::Killed { vector: 14 },
                leaked_blocks: 1,
                leaked_bytes: 100,
                frames_freed: 9,
            }),
            K::ProcessRename(event),
            K::ProcessInfo(p::ProcessInfo {
                ts_us: 3,
                pid: 3,
                parent: 0,
                name: "memtest",
                state: p::ProcState::Zombie,
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
            K::ProcessVma(p::ProcessVma {
                pid: 3,
                start: 0x1000,
                end: 0x2000,
                flags: 3,
                kind: p::VmaKind::Shed,
                resident_pages: 1,
            }),
            K::ProcessListEnd(ProcessListEnd {
                ts_us: 4,
                total_programs: 1,
                complete: true,
            }),
            K::PageFault(p::PageFault {
                ts_us: 5,
                pid: 3,
                addr: 0x1234,
                error_code: 6,
                rip: 0x40_0000,
                resolution: p::FaultResolution::CowReuse,
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
            }),
        ]
    }

    #[test]
    fn every_1_2_message_converts_and_its_kind_is_its_json_type() {
        let kinds: Vec<&str> = wire_1_2()
            .iter()
            .map(|w| {
                let msg = Msg::from(w);
                let value = serde_json::to_value(&msg).unwrap();
                assert_eq!(value["type"], msg.kind(), "{msg:?}");
                msg.kind()
            })
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
    fn wire_enums_of_1_2_convert_variant_for_variant() {
        let w = wire_1_2();
        assert!(matches!(
            Msg::from(&w[1]),
            Msg::ProcessExit(ProcessExit {
                reason: ExitReason::Killed { vector: 14 },
                frames_freed: 9,
                ..
            })
        ));
        assert!(matches!(
            Msg::from(&w[3]),
            Msg::ProcessInfo(ProcessInfo { state: ProcState::Zombie, ref name, .. }) if name == "memtest"
        ));
        assert!(matches!(
            Msg::from(&w[6]),
            Msg::ProcessVma(ProcessVma {
                kind: VmaKind::Shed,
                ..
            })
        ));
        assert!(matches!(
            Msg::from(&w[8]),
            Msg::PageFault(PageFault {
                resolution: FaultResolution::CowReuse,
                ..
            })
        ));
        assert_eq!(
            ExitReason::from(p::ExitReason::Exited(-3)),
            ExitReason::Exited(-3)
        );
        let states = [
            (p::ProcState::Runnable, ProcState::Runnable),
            (p::ProcState::Sleeping, ProcState::Sleeping),
            (p::ProcState::Zombie, ProcState::Zombie),
            (p::ProcState::Kernel, ProcState::Kernel),
        ];
        for (wire, owned) in states {
            assert_eq!(ProcState::from(wire), owned);
        }
        let kinds = [
            (p::VmaKind::Code, VmaKind::Code),
            (p::VmaKind::Data, VmaKind::Data),
            (p::VmaKind::Heap, VmaKind::Heap),
            (p::VmaKind::Stack, VmaKind::Stack),
            (p::VmaKind::Mmap, VmaKind::Mmap),
            (p::VmaKind::Shed, VmaKind::Shed),
        ];
        for (wire, owned) in kinds {
            assert_eq!(VmaKind::from(wire), owned);
        }
        let resolutions = [
            (p::FaultResolution::Demand, FaultResolution::Demand),
            (
                p::FaultResolution::CopyOnWrite,
                FaultResolution::CopyOnWrite,
            ),
            (p::FaultResolution::CowReuse, FaultResolution::CowReuse),
            (
                p::FaultResolution::StackGrowth,
                FaultResolution::StackGrowth,
            ),
            (p::FaultResolution::Killed, FaultResolution::Killed),
        ];
        for (wire, owned) in resolutions {
            assert_eq!(FaultResolution::from(wire), owned);
        }
    }
}
