//! Compact event batches (protocol 2): the common memory events, several
//! to a frame, each a few bytes (see the crate docs for the bytes).
//!
//! [`BatchEncoder`] (the kernel's side) turns `PageAlloc`, `PageFree`,
//! `Map`, `Unmap`, `HeapAlloc`, `HeapFree` and `PageFault` messages into
//! records of a batch body, sent as one [`KernelMsg::EventBatch`] frame;
//! [`BatchDecoder`] (the host's side) turns a body back into the very same
//! messages. Both keep the same [`State`] of predictions (the last
//! timestamp, interned callers, the current heap and address space and what
//! was last seen in each) and update it with the same code from the full
//! event, so they cannot drift apart while they see the same batches.
//!
//! A batch that starts with the sync flag resets that state first: it is the
//! point a host that joined late or lost a frame decodes from again. The
//! encoder allocates nothing and never fails on a value: every field has a
//! short form for the value predicted and an exact long form.

use alloc::vec::Vec;

use crate::msg::{
    FaultResolution, FrameOwner, HeapEvent, KernelMsg, MapEvent, PageEvent, PageFault,
};

/// Largest batch body, header included: a batch frame's postcard payload
/// (variant, length, body) stays inside [`MAX_PAYLOAD`](crate::frame::MAX_PAYLOAD).
pub const MAX_BATCH_BYTES: usize = 1000;
/// Most bytes one event adds to a body (its definitions included): an
/// encoder closes a batch with less room than this left.
pub const MAX_RECORD_BYTES: usize = 112;
/// Largest header: flags, then three varints.
const MAX_HEADER_BYTES: usize = 1 + 10 + 5 + 10;

/// Interned-caller slots: a caller's slot is a hash of its value.
pub const CALLER_SLOTS: usize = 128;
/// Heaps whose predictions are kept at once.
const HEAP_SLOTS: usize = 16;
/// Address spaces whose predictions are kept at once.
const SPACE_SLOTS: usize = 8;

/// Header flag: the state is reset before this batch (a sync point).
pub const FLAG_SYNC: u8 = 1;

/// Record kinds: the low 3 bits of a record's tag byte.
pub mod kind {
    /// [`KernelMsg::HeapAlloc`](crate::KernelMsg::HeapAlloc).
    pub const HEAP_ALLOC: u8 = 0;
    /// [`KernelMsg::HeapFree`](crate::KernelMsg::HeapFree).
    pub const HEAP_FREE: u8 = 1;
    /// [`KernelMsg::PageAlloc`](crate::KernelMsg::PageAlloc).
    pub const PAGE_ALLOC: u8 = 2;
    /// [`KernelMsg::PageFree`](crate::KernelMsg::PageFree).
    pub const PAGE_FREE: u8 = 3;
    /// [`KernelMsg::Map`](crate::KernelMsg::Map).
    pub const MAP: u8 = 4;
    /// [`KernelMsg::Unmap`](crate::KernelMsg::Unmap).
    pub const UNMAP: u8 = 5;
    /// [`KernelMsg::PageFault`](crate::KernelMsg::PageFault).
    pub const PAGE_FAULT: u8 = 6;
    /// A definition, not an event: the tag's high 5 bits say which
    /// ([`DEF_CALLER`], [`DEF_HEAP`], [`DEF_SPACE`]).
    pub const DEF: u8 = 7;
    /// `tag = 7 | 0 << 3`: slot `u8`, value varint(zigzag(value as i64)).
    pub const DEF_CALLER: u8 = 0;
    /// `tag = 7 | 1 << 3`: the current heap: varint pid, varint heap id.
    pub const DEF_HEAP: u8 = 1;
    /// `tag = 7 | 2 << 3`: the current address space: its root, as an
    /// address in units of 4096.
    pub const DEF_SPACE: u8 = 2;
}

/// Flag bits (the tag's high 5 bits) of heap records.
pub mod heap_flag {
    /// `size` is the heap's last size; else varint size follows.
    pub const SIZE_SAME: u8 = 1 << 3;
    /// `caller` is the heap's last caller; else a caller slot byte follows.
    pub const CALLER_SAME: u8 = 1 << 4;
    /// Alignment and key as predicted: for an allocation the heap's last
    /// alignment, and the caller as key in a kernel (pid 0) heap, else the
    /// heap's last key; for a free both 0. Else varint align, varint key.
    pub const ALIGN_KEY_PREDICTED: u8 = 1 << 5;
}

/// Flag bits of page (frame) records.
pub mod page_flag {
    /// One frame; else varint count follows.
    pub const COUNT_ONE: u8 = 1 << 3;
    /// The owner is the last page event's owner.
    pub const OWNER_LAST: u8 = 1 << 4;
    /// The owner is the owner before that (with neither: an owner follows).
    pub const OWNER_PREVIOUS: u8 = 1 << 5;
    /// `caller` is the last page event's caller; else a slot byte follows.
    pub const CALLER_SAME: u8 = 1 << 6;
    /// The address is the last frame seen; else an address delta follows.
    pub const ADDR_SAME: u8 = 1 << 7;
}

/// Flag bits of map and unmap records.
pub mod map_flag {
    /// A 4 KiB page; else the size follows (units of 4096).
    pub const SIZE_4K: u8 = 1 << 3;
    /// Flags as the space's last; else varint(flags.rotate_left(1)).
    pub const FLAGS_SAME: u8 = 1 << 4;
    /// `caller` is the space's last caller; else a slot byte follows.
    pub const CALLER_SAME: u8 = 1 << 5;
    /// `phys` is the last frame seen; else a delta from it follows.
    pub const PHYS_SAME: u8 = 1 << 6;
}

/// Flag bits of page-fault records.
pub mod fault_flag {
    /// The last fault's pid; else varint pid.
    pub const PID_SAME: u8 = 1 << 3;
    /// The last fault's rip; else a caller slot byte (rips are interned
    /// with the callers).
    pub const RIP_SAME: u8 = 1 << 4;
    /// The last fault's VMA (start, end, flags); else those follow.
    pub const VMA_SAME: u8 = 1 << 5;
    /// The last fault's error code and resolution; else varint error
    /// code, resolution byte.
    pub const ERROR_SAME: u8 = 1 << 6;
}

/// Why a batch body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchError {
    /// The body ends inside a record or its header.
    Truncated,
    /// A varint longer than 64 bits, an unknown record kind, a slot or an
    /// enum value out of range, or an event count that disagrees.
    Malformed,
}

/// What one heap's records predict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct HeapSlot {
    id: Option<(u32, u32)>,
    addr: u64,
    size: u64,
    align: u32,
    key: u64,
    caller: u64,
}

/// What one address space's records predict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct SpaceSlot {
    id: Option<u64>,
    virt: u64,
    flags: u64,
    caller: u64,
}

/// What the last page fault predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FaultSlot {
    pid: u32,
    addr: u64,
    rip: u64,
    error_code: u64,
    resolution: FaultResolution,
    vma: (u64, u64, u32),
}

/// The predictions both sides keep; reset at every sync point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    ts_us: u64,
    callers: [u64; CALLER_SLOTS],
    heaps: [HeapSlot; HEAP_SLOTS],
    heap: usize,
    heap_victim: usize,
    spaces: [SpaceSlot; SPACE_SLOTS],
    space: usize,
    space_victim: usize,
    frame: u64,
    owners: [FrameOwner; 2],
    page_caller: u64,
    fault: FaultSlot,
}

impl Default for State {
    fn default() -> Self {
        Self::new()
    }
}

impl State {
    /// The state at a sync point.
    pub const fn new() -> Self {
        Self {
            ts_us: 0,
            callers: [0; CALLER_SLOTS],
            heaps: [HeapSlot {
                id: None,
                addr: 0,
                size: 0,
                align: 0,
                key: 0,
                caller: 0,
            }; HEAP_SLOTS],
            heap: 0,
            heap_victim: 0,
            spaces: [SpaceSlot {
                id: None,
                virt: 0,
                flags: 0,
                caller: 0,
            }; SPACE_SLOTS],
            space: 0,
            space_victim: 0,
            frame: 0,
            owners: [FrameOwner::KernelHeap, FrameOwner::PageTable],
            page_caller: 0,
            fault: FaultSlot {
                pid: 0,
                addr: 0,
                rip: 0,
                error_code: 0,
                resolution: FaultResolution::Demand,
                vma: (0, 0, 0),
            },
        }
    }

    /// Makes `(pid, heap_id)` the current heap: its slot if it has one,
    /// else the next slot in turn, cleared.
    fn select_heap(&mut self, id: (u32, u32)) {
        if let Some(i) = self.heaps.iter().position(|h| h.id == Some(id)) {
            self.heap = i;
            return;
        }
        let i = self.heap_victim;
        self.heap_victim = (i + 1) % HEAP_SLOTS;
        self.heaps[i] = HeapSlot {
            id: Some(id),
            ..HeapSlot::default()
        };
        self.heap = i;
    }

    /// Makes `space` the current address space (as `select_heap`).
    fn select_space(&mut self, space: u64) {
        if let Some(i) = self.spaces.iter().position(|s| s.id == Some(space)) {
            self.space = i;
            return;
        }
        let i = self.space_victim;
        self.space_victim = (i + 1) % SPACE_SLOTS;
        self.spaces[i] = SpaceSlot {
            id: Some(space),
            ..SpaceSlot::default()
        };
        self.space = i;
    }

    fn note_owner(&mut self, owner: FrameOwner) {
        if self.owners[0] != owner {
            self.owners = [owner, self.owners[0]];
        }
    }
}

/// The slot of a caller value.
pub fn caller_slot(value: u64) -> usize {
    let h = (value ^ (value >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 57) as usize % CALLER_SLOTS
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Bytes written into a caller buffer; the encoder checks room first.
struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Writer<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn var(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    /// `value` as a difference from `base`: varint(zigzag(delta)).
    fn signed(&mut self, value: u64, base: u64) {
        self.var(zigzag(value.wrapping_sub(base) as i64));
    }

    /// `value` as a difference from `base` in units of `1 << shift`
    /// (`shift` at least 1): varint(zigzag(delta >> shift) + 1) when the
    /// difference is a multiple of the unit, else `0` then
    /// varint(zigzag(delta)).
    fn delta(&mut self, value: u64, base: u64, shift: u32) {
        let d = value.wrapping_sub(base) as i64;
        if d & ((1i64 << shift) - 1) == 0 {
            self.var(zigzag(d >> shift) + 1);
        } else {
            self.byte(0);
            self.var(zigzag(d));
        }
    }
}

/// Bytes read from a batch body; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BatchError> {
        let b = *self.bytes.get(self.pos).ok_or(BatchError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn var(&mut self) -> Result<u64, BatchError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err(BatchError::Malformed);
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(BatchError::Malformed)
    }

    fn var32(&mut self) -> Result<u32, BatchError> {
        u32::try_from(self.var()?).map_err(|_| BatchError::Malformed)
    }

    fn signed(&mut self, base: u64) -> Result<u64, BatchError> {
        Ok(base.wrapping_add(unzigzag(self.var()?) as u64))
    }

    fn delta(&mut self, base: u64, shift: u32) -> Result<u64, BatchError> {
        let v = self.var()?;
        let d = if v == 0 {
            unzigzag(self.var()?)
        } else {
            unzigzag(v - 1).wrapping_shl(shift)
        };
        Ok(base.wrapping_add(d as u64))
    }

    fn done(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

fn put_owner(w: &mut Writer<'_>, owner: FrameOwner) {
    match owner {
        FrameOwner::Unusable => w.byte(0),
        FrameOwner::Reserved => w.byte(1),
        FrameOwner::KernelImage => w.byte(2),
        FrameOwner::BootInfo => w.byte(3),
        FrameOwner::Bitmap => w.byte(4),
        FrameOwner::KernelHeap => w.byte(5),
        FrameOwner::KernelStack => w.byte(6),
        FrameOwner::PageTable => w.byte(7),
        FrameOwner::Process(pid) => {
            w.byte(8);
            w.var(pid.into());
        }
        FrameOwner::Other(tag) => {
            w.byte(9);
            w.byte(tag);
        }
    }
}

fn get_owner(r: &mut Reader<'_>) -> Result<FrameOwner, BatchError> {
    Ok(match r.byte()? {
        0 => FrameOwner::Unusable,
        1 => FrameOwner::Reserved,
        2 => FrameOwner::KernelImage,
        3 => FrameOwner::BootInfo,
        4 => FrameOwner::Bitmap,
        5 => FrameOwner::KernelHeap,
        6 => FrameOwner::KernelStack,
        7 => FrameOwner::PageTable,
        8 => FrameOwner::Process(r.var32()?),
        9 => FrameOwner::Other(r.byte()?),
        _ => return Err(BatchError::Malformed),
    })
}

fn resolution_byte(r: FaultResolution) -> u8 {
    match r {
        FaultResolution::Demand => 0,
        FaultResolution::CopyOnWrite => 1,
        FaultResolution::CowReuse => 2,
        FaultResolution::StackGrowth => 3,
        FaultResolution::Killed => 4,
    }
}

fn resolution_of(b: u8) -> Result<FaultResolution, BatchError> {
    Ok(match b {
        0 => FaultResolution::Demand,
        1 => FaultResolution::CopyOnWrite,
        2 => FaultResolution::CowReuse,
        3 => FaultResolution::StackGrowth,
        4 => FaultResolution::Killed,
        _ => return Err(BatchError::Malformed),
    })
}

/// Whether `msg` is one of the events a batch carries.
pub fn is_batched(msg: &KernelMsg<'_>) -> bool {
    matches!(
        msg,
        KernelMsg::HeapAlloc(_)
            | KernelMsg::HeapFree(_)
            | KernelMsg::PageAlloc(_)
            | KernelMsg::PageFree(_)
            | KernelMsg::Map(_)
            | KernelMsg::Unmap(_)
            | KernelMsg::PageFault(_)
    )
}

/// The timestamp of a batched event.
fn ts_of(msg: &KernelMsg<'_>) -> Option<u64> {
    Some(match msg {
        KernelMsg::HeapAlloc(e) | KernelMsg::HeapFree(e) => e.ts_us,
        KernelMsg::PageAlloc(e) | KernelMsg::PageFree(e) => e.ts_us,
        KernelMsg::Map(e) | KernelMsg::Unmap(e) => e.ts_us,
        KernelMsg::PageFault(e) => e.ts_us,
        _ => return None,
    })
}

/// Writes the records of one event (definitions first) and updates `st`
/// as the decoder will.
fn encode_event(st: &mut State, w: &mut Writer<'_>, msg: &KernelMsg<'_>, ts_us: u64) {
    // The caller slot byte for `value`, defining it first if the slot holds
    // another value.
    fn intern(st: &mut State, w: &mut Writer<'_>, value: u64) -> u8 {
        let slot = caller_slot(value);
        if st.callers[slot] != value {
            w.byte(kind::DEF | kind::DEF_CALLER << 3);
            w.byte(slot as u8);
            w.var(zigzag(value as i64));
            st.callers[slot] = value;
        }
        slot as u8
    }
    // Definitions come before the event's tag, so they are written first
    // and the event's own bytes after.
    let dt = ts_us - st.ts_us;
    st.ts_us = ts_us;
    match msg {
        KernelMsg::HeapAlloc(e) | KernelMsg::HeapFree(e) => {
            let alloc = matches!(msg, KernelMsg::HeapAlloc(_));
            let id = (e.pid, e.heap_id);
            if st.heaps[st.heap].id != Some(id) {
                w.byte(kind::DEF | kind::DEF_HEAP << 3);
                w.var(e.pid.into());
                w.var(e.heap_id.into());
                st.select_heap(id);
            }
            let h = st.heaps[st.heap];
            let caller_slot = (e.caller != h.caller).then(|| intern(st, w, e.caller));
            let (align, key) = if alloc {
                (h.align, if e.pid == 0 { e.caller } else { h.key })
            } else {
                (0, 0)
            };
            let mut tag = if alloc {
                kind::HEAP_ALLOC
            } else {
                kind::HEAP_FREE
            };
            if e.size == h.size {
                tag |= heap_flag::SIZE_SAME;
            }
            if caller_slot.is_none() {
                tag |= heap_flag::CALLER_SAME;
            }
            let predicted = e.align == align && e.key == key;
            if predicted {
                tag |= heap_flag::ALIGN_KEY_PREDICTED;
            }
            w.byte(tag);
            w.var(dt);
            w.delta(e.addr, h.addr, 4);
            if e.size != h.size {
                w.var(e.size);
            }
            if let Some(slot) = caller_slot {
                w.byte(slot);
            }
            if !predicted {
                w.var(e.align.into());
                w.var(e.key);
            }
        }
        KernelMsg::PageAlloc(e) | KernelMsg::PageFree(e) => {
            let caller_slot = (e.caller != st.page_caller).then(|| intern(st, w, e.caller));
            let mut tag = if matches!(msg, KernelMsg::PageAlloc(_)) {
                kind::PAGE_ALLOC
            } else {
                kind::PAGE_FREE
            };
            if e.count == 1 {
                tag |= page_flag::COUNT_ONE;
            }
            if e.owner == st.owners[0] {
                tag |= page_flag::OWNER_LAST;
            } else if e.owner == st.owners[1] {
                tag |= page_flag::OWNER_PREVIOUS;
            }
            if caller_slot.is_none() {
                tag |= page_flag::CALLER_SAME;
            }
            if e.addr == st.frame {
                tag |= page_flag::ADDR_SAME;
            }
            w.byte(tag);
            w.var(dt);
            if e.addr != st.frame {
                w.delta(e.addr, st.frame, 12);
            }
            if e.count != 1 {
                w.var(e.count.into());
            }
            if tag & (page_flag::OWNER_LAST | page_flag::OWNER_PREVIOUS) == 0 {
                put_owner(w, e.owner);
            }
            if let Some(slot) = caller_slot {
                w.byte(slot);
            }
        }
        KernelMsg::Map(e) | KernelMsg::Unmap(e) => {
            if st.spaces[st.space].id != Some(e.space) {
                w.byte(kind::DEF | kind::DEF_SPACE << 3);
                w.delta(e.space, 0, 12);
                st.select_space(e.space);
            }
            let s = st.spaces[st.space];
            let caller_slot = (e.caller != s.caller).then(|| intern(st, w, e.caller));
            let mut tag = if matches!(msg, KernelMsg::Map(_)) {
                kind::MAP
            } else {
                kind::UNMAP
            };
            if e.size == 4096 {
                tag |= map_flag::SIZE_4K;
            }
            if e.flags == s.flags {
                tag |= map_flag::FLAGS_SAME;
            }
            if caller_slot.is_none() {
                tag |= map_flag::CALLER_SAME;
            }
            if e.phys == st.frame {
                tag |= map_flag::PHYS_SAME;
            }
            w.byte(tag);
            w.var(dt);
            w.delta(e.virt, s.virt, 12);
            if e.phys != st.frame {
                w.delta(e.phys, st.frame, 12);
            }
            if e.size != 4096 {
                w.delta(e.size, 0, 12);
            }
            if e.flags != s.flags {
                w.var(e.flags.rotate_left(1));
            }
            if let Some(slot) = caller_slot {
                w.byte(slot);
            }
        }
        KernelMsg::PageFault(e) => {
            let f = st.fault;
            let rip_slot = (e.rip != f.rip).then(|| intern(st, w, e.rip));
            let vma = (e.vma_start, e.vma_end, e.vma_flags);
            let mut tag = kind::PAGE_FAULT;
            if e.pid == f.pid {
                tag |= fault_flag::PID_SAME;
            }
            if rip_slot.is_none() {
                tag |= fault_flag::RIP_SAME;
            }
            if vma == f.vma {
                tag |= fault_flag::VMA_SAME;
            }
            let error_same = e.error_code == f.error_code && e.resolution == f.resolution;
            if error_same {
                tag |= fault_flag::ERROR_SAME;
            }
            w.byte(tag);
            w.var(dt);
            if e.pid != f.pid {
                w.var(e.pid.into());
            }
            w.signed(e.addr, f.addr);
            if let Some(slot) = rip_slot {
                w.byte(slot);
            }
            if vma != f.vma {
                w.delta(e.vma_start, e.addr & !0xfff, 12);
                w.delta(e.vma_end, e.vma_start, 12);
                w.var(e.vma_flags.into());
            }
            if !error_same {
                w.var(e.error_code);
                w.byte(resolution_byte(e.resolution));
            }
        }
        _ => {}
    }
    update(st, msg);
}

/// What both sides learn from an event once it is written or read.
fn update(st: &mut State, msg: &KernelMsg<'_>) {
    match msg {
        KernelMsg::HeapAlloc(e) | KernelMsg::HeapFree(e) => {
            let alloc = matches!(msg, KernelMsg::HeapAlloc(_));
            let h = &mut st.heaps[st.heap];
            h.addr = e.addr;
            h.size = e.size;
            h.caller = e.caller;
            if alloc {
                h.align = e.align;
                h.key = e.key;
            }
        }
        KernelMsg::PageAlloc(e) | KernelMsg::PageFree(e) => {
            st.frame = e.addr;
            st.page_caller = e.caller;
            st.note_owner(e.owner);
        }
        KernelMsg::Map(e) | KernelMsg::Unmap(e) => {
            st.frame = e.phys;
            let s = &mut st.spaces[st.space];
            s.virt = e.virt;
            s.flags = e.flags;
            s.caller = e.caller;
        }
        KernelMsg::PageFault(e) => {
            st.fault = FaultSlot {
                pid: e.pid,
                addr: e.addr,
                rip: e.rip,
                error_code: e.error_code,
                resolution: e.resolution,
                vma: (e.vma_start, e.vma_end, e.vma_flags),
            };
        }
        _ => {}
    }
}

/// The kernel's side: builds batch bodies in a fixed buffer, allocating
/// nothing.
pub struct BatchEncoder {
    /// The body: the header is written last, right-aligned before the
    /// records, which start at `MAX_HEADER_BYTES`.
    buf: [u8; MAX_BATCH_BYTES],
    len: usize,
    events: u32,
    /// Sequence number of the open (or next) batch.
    seq: u64,
    /// The open (or next) batch starts with a reset state.
    sync: bool,
    /// The batch after the open one starts with a reset state.
    sync_after: bool,
    /// Time of the open batch's first event.
    base_ts_us: u64,
    state: State,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`BatchEncoder::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// The event is in the open batch.
    Added,
    /// Not enough room left: send the open batch ([`BatchEncoder::finish`])
    /// and push again.
    Full,
    /// Not an event batches carry; send it as a message of its own.
    NotBatched,
}

impl BatchEncoder {
    /// An encoder whose first batch is a sync point.
    pub const fn new() -> Self {
        Self {
            buf: [0; MAX_BATCH_BYTES],
            len: MAX_HEADER_BYTES,
            events: 0,
            seq: 0,
            sync: true,
            sync_after: false,
            base_ts_us: 0,
            state: State::new(),
        }
    }

    /// Events in the open batch.
    pub fn events(&self) -> u32 {
        self.events
    }

    /// Time of the open batch's first event, if one is open.
    pub fn opened_at_us(&self) -> Option<u64> {
        (self.events > 0).then_some(self.base_ts_us)
    }

    /// Bytes of the open batch's records (its header not included).
    pub fn record_bytes(&self) -> usize {
        self.len - MAX_HEADER_BYTES
    }

    /// Makes the next batch a sync point (after the host's `Resync`,
    /// periodically, and after a batch was lost).
    pub fn request_sync(&mut self) {
        if self.events == 0 {
            self.sync = true;
            self.state = State::new();
        } else {
            // The open batch was encoded against the current state; the
            // next one starts afresh.
            self.sync_after = true;
        }
    }

    /// Adds `msg` to the open batch. A timestamp older than the previous
    /// event's (an event stamped before an interrupt that sent another) is
    /// sent as the previous one's: time deltas are never negative.
    pub fn push(&mut self, msg: &KernelMsg<'_>) -> Push {
        let Some(ts_us) = ts_of(msg) else {
            return Push::NotBatched;
        };
        if MAX_BATCH_BYTES - self.len < MAX_RECORD_BYTES {
            return Push::Full;
        }
        if self.events == 0 {
            self.base_ts_us = ts_us;
            self.state.ts_us = ts_us;
        }
        let ts_us = ts_us.max(self.state.ts_us);
        let mut w = Writer {
            buf: &mut self.buf[self.len..],
            len: 0,
        };
        encode_event(&mut self.state, &mut w, msg, ts_us);
        self.len += w.len;
        self.events += 1;
        Push::Added
    }

    /// Closes the open batch and returns its body (header and records),
    /// `None` if it holds no event. The next batch follows it in sequence.
    pub fn finish(&mut self) -> Option<&[u8]> {
        if self.events == 0 {
            return None;
        }
        let mut header = [0u8; MAX_HEADER_BYTES];
        let mut w = Writer {
            buf: &mut header,
            len: 0,
        };
        w.byte(if self.sync { FLAG_SYNC } else { 0 });
        w.var(self.seq);
        w.var(self.events.into());
        w.var(self.base_ts_us);
        let n = w.len;
        let start = MAX_HEADER_BYTES - n;
        self.buf[start..MAX_HEADER_BYTES].copy_from_slice(&header[..n]);
        let end = self.len;
        self.len = MAX_HEADER_BYTES;
        self.events = 0;
        self.seq += 1;
        self.sync = false;
        if core::mem::take(&mut self.sync_after) {
            self.sync = true;
            self.state = State::new();
        }
        Some(&self.buf[start..end])
    }
}

/// Why a batch produced no events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSkip {
    /// No sync point seen yet (a host that joined late): the batch's events
    /// are skipped until the next one.
    NotSynced {
        /// Events the batch said it holds.
        events: u64,
    },
    /// Batches between the last one decoded and this one are missing (a
    /// frame was lost on the way): skipped until the next sync point.
    Gap {
        /// The sequence number expected.
        expected: u64,
        /// The one that came.
        got: u64,
        /// Events this batch said it holds.
        events: u64,
    },
    /// The body does not decode; waiting for the next sync point.
    Bad(BatchError),
}

/// What a [`BatchDecoder`] has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches decoded.
    pub batches: u64,
    /// Events decoded from them.
    pub events: u64,
    /// Batches skipped (not synced, after a gap, or malformed).
    pub skipped_batches: u64,
    /// Events those said they held (a malformed one counts none).
    pub skipped_events: u64,
}

/// The host's side: turns batch bodies back into event messages.
#[derive(Debug, Clone, Default)]
pub struct BatchDecoder {
    state: State,
    synced: bool,
    next_seq: u64,
    stats: BatchStats,
}

impl BatchDecoder {
    /// A decoder waiting for its first sync point.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters so far.
    pub fn stats(&self) -> BatchStats {
        self.stats
    }

    /// Whether a sync point has been seen and no batch lost since.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Forgets the state, e.g. after reconnecting: the next batch decoded is
    /// the next sync point.
    pub fn reset(&mut self) {
        self.synced = false;
    }

    /// Decodes one batch body into its events, in order, or says why it
    /// was skipped (and counts it). After an error nothing more decodes
    /// until the next sync point.
    pub fn decode(&mut self, body: &[u8]) -> Result<Vec<KernelMsg<'static>>, BatchSkip> {
        let result = self.decode_inner(body);
        match &result {
            Ok(events) => {
                self.stats.batches += 1;
                self.stats.events += events.len() as u64;
            }
            Err(skip) => {
                self.synced = false;
                self.stats.skipped_batches += 1;
                self.stats.skipped_events += match *skip {
                    BatchSkip::NotSynced { events } | BatchSkip::Gap { events, .. } => events,
                    BatchSkip::Bad(_) => 0,
                };
            }
        }
        result
    }

    fn decode_inner(&mut self, body: &[u8]) -> Result<Vec<KernelMsg<'static>>, BatchSkip> {
        let mut r = Reader {
            bytes: body,
            pos: 0,
        };
        let header = (|| {
            let flags = r.byte()?;
            let seq = r.var()?;
            let count = r.var()?;
            let base = r.var()?;
            if flags & !FLAG_SYNC != 0 {
                return Err(BatchError::Malformed);
            }
            Ok((flags, seq, count, base))
        })();
        let (flags, seq, count, base) = header.map_err(BatchSkip::Bad)?;
        if flags & FLAG_SYNC != 0 {
            self.state = State::new();
            self.synced = true;
        } else if !self.synced {
            return Err(BatchSkip::NotSynced { events: count });
        } else if seq != self.next_seq {
            return Err(BatchSkip::Gap {
                expected: self.next_seq,
                got: seq,
                events: count,
            });
        }
        self.next_seq = seq.wrapping_add(1);
        self.state.ts_us = base;
        let mut events = Vec::new();
        while !r.done() {
            if let Some(msg) = decode_record(&mut self.state, &mut r).map_err(BatchSkip::Bad)? {
                if events.len() as u64 >= count {
                    return Err(BatchSkip::Bad(BatchError::Malformed));
                }
                events.push(msg);
            }
        }
        if events.len() as u64 != count {
            return Err(BatchSkip::Bad(BatchError::Malformed));
        }
        Ok(events)
    }
}

/// Reads one record: `Some` event, or `None` for a definition.
fn decode_record(
    st: &mut State,
    r: &mut Reader<'_>,
) -> Result<Option<KernelMsg<'static>>, BatchError> {
    let tag = r.byte()?;
    let flags = tag & !7;
    let allowed = |mask: u8| {
        if flags & !mask == 0 {
            Ok(())
        } else {
            Err(BatchError::Malformed)
        }
    };
    let slot = |r: &mut Reader<'_>, st: &State| -> Result<u64, BatchError> {
        let i = usize::from(r.byte()?);
        st.callers.get(i).copied().ok_or(BatchError::Malformed)
    };
    let k = tag & 7;
    if k == kind::DEF {
        match tag >> 3 {
            kind::DEF_CALLER => {
                let i = usize::from(r.byte()?);
                let value = unzigzag(r.var()?) as u64;
                *st.callers.get_mut(i).ok_or(BatchError::Malformed)? = value;
            }
            kind::DEF_HEAP => {
                let pid = r.var32()?;
                let heap_id = r.var32()?;
                st.select_heap((pid, heap_id));
            }
            kind::DEF_SPACE => {
                let space = r.delta(0, 12)?;
                st.select_space(space);
            }
            _ => return Err(BatchError::Malformed),
        }
        return Ok(None);
    }
    let dt = r.var()?;
    let ts_us = st.ts_us.checked_add(dt).ok_or(BatchError::Malformed)?;
    st.ts_us = ts_us;
    let msg = match k {
        kind::HEAP_ALLOC | kind::HEAP_FREE => {
            use heap_flag::*;
            allowed(SIZE_SAME | CALLER_SAME | ALIGN_KEY_PREDICTED)?;
            let h = st.heaps[st.heap];
            let (pid, heap_id) = h.id.ok_or(BatchError::Malformed)?;
            let alloc = k == kind::HEAP_ALLOC;
            let addr = r.delta(h.addr, 4)?;
            let size = if flags & SIZE_SAME != 0 {
                h.size
            } else {
                r.var()?
            };
            let caller = if flags & CALLER_SAME != 0 {
                h.caller
            } else {
                slot(r, st)?
            };
            let (align, key) = if flags & ALIGN_KEY_PREDICTED == 0 {
                (r.var32()?, r.var()?)
            } else if alloc {
                (h.align, if pid == 0 { caller } else { h.key })
            } else {
                (0, 0)
            };
            let e = HeapEvent {
                ts_us,
                pid,
                heap_id,
                addr,
                size,
                align,
                key,
                caller,
            };
            if alloc {
                KernelMsg::HeapAlloc(e)
            } else {
                KernelMsg::HeapFree(e)
            }
        }
        kind::PAGE_ALLOC | kind::PAGE_FREE => {
            use page_flag::*;
            if flags & OWNER_LAST != 0 && flags & OWNER_PREVIOUS != 0 {
                return Err(BatchError::Malformed);
            }
            let addr = if flags & ADDR_SAME != 0 {
                st.frame
            } else {
                r.delta(st.frame, 12)?
            };
            let count = if flags & COUNT_ONE != 0 {
                1
            } else {
                r.var32()?
            };
            let owner = if flags & OWNER_LAST != 0 {
                st.owners[0]
            } else if flags & OWNER_PREVIOUS != 0 {
                st.owners[1]
            } else {
                get_owner(r)?
            };
            let caller = if flags & CALLER_SAME != 0 {
                st.page_caller
            } else {
                slot(r, st)?
            };
            let e = PageEvent {
                ts_us,
                addr,
                count,
                owner,
                caller,
            };
            if k == kind::PAGE_ALLOC {
                KernelMsg::PageAlloc(e)
            } else {
                KernelMsg::PageFree(e)
            }
        }
        kind::MAP | kind::UNMAP => {
            use map_flag::*;
            allowed(SIZE_4K | FLAGS_SAME | CALLER_SAME | PHYS_SAME)?;
            let s = st.spaces[st.space];
            let space = s.id.ok_or(BatchError::Malformed)?;
            let virt = r.delta(s.virt, 12)?;
            let phys = if flags & PHYS_SAME != 0 {
                st.frame
            } else {
                r.delta(st.frame, 12)?
            };
            let size = if flags & SIZE_4K != 0 {
                4096
            } else {
                r.delta(0, 12)?
            };
            let page_flags = if flags & FLAGS_SAME != 0 {
                s.flags
            } else {
                r.var()?.rotate_right(1)
            };
            let caller = if flags & CALLER_SAME != 0 {
                s.caller
            } else {
                slot(r, st)?
            };
            let e = MapEvent {
                ts_us,
                space,
                virt,
                phys,
                size,
                flags: page_flags,
                caller,
            };
            if k == kind::MAP {
                KernelMsg::Map(e)
            } else {
                KernelMsg::Unmap(e)
            }
        }
        _ => {
            use fault_flag::*;
            allowed(PID_SAME | RIP_SAME | VMA_SAME | ERROR_SAME)?;
            let f = st.fault;
            let pid = if flags & PID_SAME != 0 {
                f.pid
            } else {
                r.var32()?
            };
            let addr = r.signed(f.addr)?;
            let rip = if flags & RIP_SAME != 0 {
                f.rip
            } else {
                slot(r, st)?
            };
            let (vma_start, vma_end, vma_flags) = if flags & VMA_SAME != 0 {
                f.vma
            } else {
                let start = r.delta(addr & !0xfff, 12)?;
                let end = r.delta(start, 12)?;
                (start, end, r.var32()?)
            };
            let (error_code, resolution) = if flags & ERROR_SAME != 0 {
                (f.error_code, f.resolution)
            } else {
                (r.var()?, resolution_of(r.byte()?)?)
            };
            KernelMsg::PageFault(PageFault {
                ts_us,
                pid,
                addr,
                error_code,
                rip,
                resolution,
                vma_start,
                vma_end,
                vma_flags,
            })
        }
    };
    update(st, &msg);
    Ok(Some(msg))
}
