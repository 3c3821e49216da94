//! Hardware breakpoints and watchpoints in DR0–DR3, enabled through DR7.
//!
//! The slots are what gdb asked for; the registers are programmed only
//! while the kernel runs ([`DebugRegs::arm`] on resume) and switched off
//! while it is stopped ([`DebugRegs::disarm`]), so the stub's own memory
//! accesses (gdb reading a watched variable) never trap.
#![forbid(unsafe_code)]

use gdbstub::target::ext::breakpoints::WatchKind;

use crate::arch::x86_64::cpu;

/// Address registers: DR0–DR3.
const SLOTS: usize = 4;
/// DR6 bits B0–B3: which address register matched.
const DR6_HITS: u64 = 0xF;

/// What a slot traps on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Instruction fetch at the address (`hbreak`).
    Exec,
    /// A data access (`watch`, `rwatch`, `awatch`).
    Data(WatchKind),
}

/// One programmed address register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    addr: u64,
    len: u64,
    kind: Kind,
}

impl Slot {
    /// This slot's enable, R/W and LEN bits in DR7.
    fn dr7_bits(&self, index: usize) -> u64 {
        // R/W: 00 execute, 01 write, 11 read or write (x86 has no
        // read-only watch; gdb tells reads from writes by the value).
        let rw = match self.kind {
            Kind::Exec => 0b00,
            Kind::Data(WatchKind::Write) => 0b01,
            Kind::Data(WatchKind::Read | WatchKind::ReadWrite) => 0b11,
        };
        // LEN: 00 one byte (always for execute), 01 two, 11 four, 10 eight.
        let len = match (self.kind, self.len) {
            (Kind::Exec, _) | (_, 1) => 0b00,
            (_, 2) => 0b01,
            (_, 8) => 0b10,
            _ => 0b11,
        };
        let global_enable = 1 << (2 * index + 1);
        global_enable | (rw << (16 + 4 * index)) | (len << (18 + 4 * index))
    }
}

/// What a #DB's DR6 says was hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The watched (or breakpoint) address gdb asked for.
    pub addr: u64,
    /// What the slot traps on.
    pub kind: Kind,
}

/// The four hardware breakpoint slots of a session.
#[derive(Debug)]
pub struct DebugRegs {
    slots: [Option<Slot>; SLOTS],
}

impl DebugRegs {
    /// All slots free.
    pub const fn new() -> Self {
        Self {
            slots: [None; SLOTS],
        }
    }

    /// Takes a free slot for `addr`; false when all are in use or the
    /// range is not one the hardware can watch (1, 2, 4 or 8 bytes,
    /// aligned to its length).
    pub fn add(&mut self, addr: u64, len: u64, kind: Kind) -> bool {
        let len = if kind == Kind::Exec { 1 } else { len };
        if !matches!(len, 1 | 2 | 4 | 8) || !addr.is_multiple_of(len) {
            return false;
        }
        let slot = Slot { addr, len, kind };
        if self.slots.contains(&Some(slot)) {
            return true;
        }
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(free) => {
                *free = Some(slot);
                true
            }
            None => false,
        }
    }

    /// Frees the slot holding exactly this request; false if none does.
    pub fn remove(&mut self, addr: u64, len: u64, kind: Kind) -> bool {
        let len = if kind == Kind::Exec { 1 } else { len };
        let wanted = Some(Slot { addr, len, kind });
        match self.slots.iter_mut().find(|s| **s == wanted) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// Frees every slot and switches the registers off.
    pub fn clear(&mut self) {
        self.slots = [None; SLOTS];
        Self::disarm();
    }

    /// Programs DR0–DR3 and DR7 from the slots (the kernel resumes).
    pub fn arm(&self) {
        let mut addrs = [0u64; SLOTS];
        let mut dr7 = 0;
        for (i, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                addrs[i] = slot.addr;
                dr7 |= slot.dr7_bits(i);
            }
        }
        cpu::set_debug_registers(addrs, dr7);
    }

    /// Disables every hardware breakpoint (the kernel is stopped).
    pub fn disarm() {
        cpu::set_debug_registers([0; SLOTS], 0);
    }

    /// The slot a #DB with status `dr6` reports, if any of ours matched.
    /// DR6 may flag matching slots that DR7 left disabled, so only slots
    /// in use count.
    pub fn hit(&self, dr6: u64) -> Option<Hit> {
        (0..SLOTS)
            .filter(|&i| dr6 & DR6_HITS & (1 << i) != 0)
            .find_map(|i| self.slots[i])
            .map(|s| Hit {
                addr: s.addr,
                kind: s.kind,
            })
    }
}
