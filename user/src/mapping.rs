//! [`Mapping`]: an anonymous `mmap` region owned by the program, unmapped
//! when dropped, read and written with bounds-checked volatile accesses.

use sysabi::Errno;

use crate::sys;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;

/// A private, anonymous, readable and writable region.
///
/// Accesses are volatile, so each one reaches memory exactly once: a
/// program that touches one word of a page makes exactly that page
/// resident.
#[derive(Debug)]
pub struct Mapping {
    /// First byte; page-aligned.
    addr: u64,
    /// Length in bytes, a multiple of [`PAGE_SIZE`].
    len: u64,
}

impl Mapping {
    /// Maps `nr_pages` zero-filled pages anywhere.
    pub fn anonymous(nr_pages: u64) -> Result<Self, Errno> {
        let len = nr_pages.checked_mul(PAGE_SIZE).ok_or(Errno::Invalid)?;
        let addr = sys::mmap_anonymous(len)?;
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::Invalid);
        }
        Ok(Self { addr, len })
    }

    /// Address of the first byte.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the mapping has no bytes (never: `mmap` refuses length 0).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pages.
    pub fn nr_pages(&self) -> u64 {
        self.len / PAGE_SIZE
    }

    /// The address of the `u64` at byte `offset`, if it lies in the mapping
    /// and is aligned.
    fn word(&self, offset: u64) -> *mut u64 {
        assert!(
            offset.is_multiple_of(8) && offset.checked_add(8).is_some_and(|end| end <= self.len),
            "mapping offset {offset:#x} out of bounds or unaligned"
        );
        (self.addr + offset) as *mut u64
    }

    /// Reads the `u64` at byte `offset` (8-aligned, inside the mapping).
    pub fn read_u64(&self, offset: u64) -> u64 {
        let ptr = self.word(offset);
        // SAFETY: 1. `ptr` is 8-aligned and inside the mapping, which this
        // value owns and keeps mapped readable; 2. anonymous memory is
        // zero-filled, so every bit pattern read is an initialised `u64`.
        unsafe { ptr.read_volatile() }
    }

    /// Writes the `u64` at byte `offset` (8-aligned, inside the mapping).
    pub fn write_u64(&self, offset: u64, value: u64) {
        let ptr = self.word(offset);
        // SAFETY: `ptr` is 8-aligned and inside the mapping, which this
        // value owns and keeps mapped writable; nothing else in the program
        // refers to it.
        unsafe { ptr.write_volatile(value) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the range was mapped by `anonymous` for this value alone,
        // and no access outlives `self`.
        let _ = unsafe { sys::munmap(self.addr, self.len) };
    }
}
