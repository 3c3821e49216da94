//! Raw access to a heap's memory region: every `unsafe` operation of the heap.
//!
//! [`Region`] holds a pointer to the region (carrying its provenance) and the
//! number of bytes currently handed to the heap. Each accessor checks that
//! the bytes it touches lie inside `[start, start + len)` and panics
//! otherwise, so no value the heap reads back from the region (a corrupted
//! link, a forged size) can make it touch memory outside the region. The
//! heap validates such values before use; the check here is the backstop.

use core::ptr;

/// The memory a heap manages.
#[derive(Clone)]
pub(super) struct Region {
    /// Start of the region; its provenance covers everything the region
    /// may ever grow to.
    base: *mut u8,
    /// Address of `base`.
    start: usize,
    /// Bytes from `start` the heap may read and write.
    len: usize,
    /// `limits[n - 1]`: offsets below this can be read or written as `n`
    /// words (`len - 8 * n + 1`, or 0 when `len < 8 * n`). Keeps the bounds
    /// check of a word access to a single comparison.
    limits: [usize; MAX_WORDS],
}

/// Most words one access reads or writes.
const MAX_WORDS: usize = 3;

impl Region {
    /// A region of no bytes: every access panics.
    pub const fn empty() -> Self {
        Self {
            base: ptr::null_mut(),
            start: 0,
            len: 0,
            limits: [0; MAX_WORDS],
        }
    }

    /// Takes over `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// 1. `base..base + len` is valid for reads and writes and initialized
    ///    (any byte values), for as long as the region is used;
    /// 2. nothing else reads or writes those bytes meanwhile, except the
    ///    payloads the heap hands out, through the pointers it hands out;
    /// 3. `base + len` does not wrap around the address space.
    pub unsafe fn new(base: *mut u8, len: usize) -> Self {
        // the unchecked accessors turn addresses back into pointers with
        // this provenance (see `Region::get`)
        base.expose_provenance();
        Self {
            base,
            start: base.addr(),
            len,
            limits: limits(len),
        }
    }

    /// Extends the region to `len` bytes.
    ///
    /// # Safety
    ///
    /// The obligations of [`Region::new`] hold for the new `len`, with the
    /// same `base` (whose provenance must cover the larger range).
    pub unsafe fn set_len(&mut self, len: usize) {
        self.len = len;
        self.limits = limits(len);
    }

    /// Address of the region's first byte.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Bytes in the region.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Pointer to `addr`, after checking that `n` bytes from there lie in
    /// the region.
    #[inline(always)]
    fn at(&self, addr: usize, n: usize) -> *mut u8 {
        let offset = addr.wrapping_sub(self.start);
        if offset > self.len || self.len - offset < n {
            out_of_region(addr, n);
        }
        self.base.wrapping_add(offset)
    }

    /// Pointer to the word at `addr`, after checking it lies in the region.
    #[inline(always)]
    fn word_at(&self, addr: usize) -> *mut u8 {
        self.words_at(addr, 1)
    }

    /// Reads the 8 bytes at `addr`.
    #[inline(always)]
    pub fn read(&self, addr: usize) -> u64 {
        let p = self.word_at(addr);
        // SAFETY:
        // 1. `word_at` checked that `p..p + 8` lies in the region, which is
        //    valid for reads and initialized (the obligation of
        //    `Region::new`);
        // 2. `read_unaligned` has no alignment requirement;
        // 3. `p` derives from `base`, whose provenance covers the region.
        unsafe { p.cast::<u64>().read_unaligned() }
    }

    /// Writes 8 bytes at `addr`.
    #[inline(always)]
    pub fn write(&mut self, addr: usize, value: u64) {
        let p = self.word_at(addr);
        // SAFETY:
        // 1. `word_at` checked that `p..p + 8` lies in the region, which is
        //    valid for writes (the obligation of `Region::new`);
        // 2. `write_unaligned` has no alignment requirement;
        // 3. `&mut self` makes this the only access made through the heap.
        unsafe { p.cast::<u64>().write_unaligned(value) }
    }

    /// Reads the `N` words at `addr`, with one range check.
    #[inline(always)]
    pub fn read_words<const N: usize>(&self, addr: usize) -> [u64; N] {
        let p = self.words_at(addr, N);
        // SAFETY:
        // 1. `words_at` checked that `p..p + 8 * N` lies in the region,
        //    which is valid for reads and initialized;
        // 2. `read_unaligned` has no alignment requirement;
        // 3. `p` derives from `base`, whose provenance covers the region.
        unsafe { p.cast::<[u64; N]>().read_unaligned() }
    }

    /// Pointer to the `n` words at `addr` (`n <= MAX_WORDS`), after
    /// checking they lie in the region.
    #[inline(always)]
    fn words_at(&self, addr: usize, n: usize) -> *mut u8 {
        let offset = addr.wrapping_sub(self.start);
        if offset >= self.limits[n - 1] {
            out_of_region(addr, 8 * n);
        }
        self.base.wrapping_add(offset)
    }

    /// Reads the `N` words at `addr` without a range check.
    ///
    /// # Safety
    ///
    /// `addr..addr + 8 * N` lies in the region.
    #[inline(always)]
    pub unsafe fn get<const N: usize>(&self, addr: usize) -> [u64; N] {
        debug_assert!(self.in_region(addr, 8 * N), "heap: read at {addr:#x}");
        let p = ptr::with_exposed_provenance::<u8>(addr);
        // SAFETY:
        // 1. the caller vouches that `p..p + 8 * N` lies in the region,
        //    which is valid for reads and initialized;
        // 2. `read_unaligned` has no alignment requirement;
        // 3. `p` takes the provenance `new` exposed, that of `base`, which
        //    covers the region (an address computed from `base` turned
        //    back into a pointer for free, where `with_addr` costs two
        //    instructions per access).
        unsafe { p.cast::<[u64; N]>().read_unaligned() }
    }

    /// Writes `N` words at `addr` without a range check.
    ///
    /// # Safety
    ///
    /// `addr..addr + 8 * N` lies in the region.
    #[inline(always)]
    pub unsafe fn set<const N: usize>(&mut self, addr: usize, words: [u64; N]) {
        debug_assert!(self.in_region(addr, 8 * N), "heap: write at {addr:#x}");
        let p = ptr::with_exposed_provenance_mut::<u8>(addr);
        // SAFETY:
        // 1. the caller vouches that `p..p + 8 * N` lies in the region,
        //    which is valid for writes;
        // 2. `write_unaligned` has no alignment requirement;
        // 3. `p` has `base`'s provenance, as in `get`;
        // 4. `&mut self` makes this the only access made through the heap.
        unsafe { p.cast::<[u64; N]>().write_unaligned(words) }
    }

    /// Whether `addr..addr + len` lies in the region.
    #[inline(always)]
    pub fn in_region(&self, addr: usize, len: usize) -> bool {
        let offset = addr.wrapping_sub(self.start);
        offset <= self.len && self.len - offset >= len
    }

    /// The pointer handed to an owner for the payload at `addr`, without a
    /// range check.
    ///
    /// # Safety
    ///
    /// `addr` lies in the region and is not 0.
    #[inline(always)]
    pub unsafe fn payload_ptr_unchecked(&self, addr: usize) -> ptr::NonNull<u8> {
        debug_assert!(self.in_region(addr, 0) && addr != 0);
        // `base`'s provenance, as in `get`
        let p = ptr::with_exposed_provenance_mut::<u8>(addr);
        // SAFETY: `p`'s address is `addr`, which is not 0.
        unsafe { ptr::NonNull::new_unchecked(p) }
    }

    /// Sets `len` bytes at `addr` to `byte`.
    #[inline]
    pub fn fill(&mut self, addr: usize, len: usize, byte: u8) {
        let p = self.at(addr, len);
        // SAFETY:
        // 1. `at` checked that `p..p + len` lies in the region, which is
        //    valid for writes;
        // 2. `u8` has no alignment requirement.
        unsafe { p.write_bytes(byte, len) }
    }

    /// Offset of the first of `len` bytes at `addr` that is not `byte`.
    pub fn first_mismatch(&self, addr: usize, len: usize, byte: u8) -> Option<usize> {
        let p = self.at(addr, len);
        // SAFETY:
        // 1. `at` checked that `p..p + len` lies in the region, which is
        //    valid for reads and initialized;
        // 2. the slice lives only for this call, while `&self` keeps the
        //    heap from writing; the bytes belong to the heap (slack after a
        //    payload or block metadata), not to a payload its owner may hold.
        let bytes = unsafe { core::slice::from_raw_parts(p, len) };
        bytes.iter().position(|&b| b != byte)
    }

    /// Copies `len` bytes from `src` to `dst`; the ranges may overlap.
    #[inline]
    pub fn copy(&mut self, src: usize, dst: usize, len: usize) {
        let from = self.at(src, len);
        let to = self.at(dst, len);
        // SAFETY:
        // 1. `at` checked that both ranges lie in the region, which is valid
        //    for reads and writes and initialized;
        // 2. `ptr::copy` allows overlap and has no alignment requirement
        //    for `u8`.
        unsafe { ptr::copy(from, to, len) }
    }
}

const fn limits(len: usize) -> [usize; MAX_WORDS] {
    let mut limits = [0; MAX_WORDS];
    let mut n = 1;
    while n <= MAX_WORDS {
        if len >= 8 * n {
            limits[n - 1] = len - 8 * n + 1;
        }
        n += 1;
    }
    limits
}

#[cold]
#[inline(never)]
fn out_of_region(addr: usize, len: usize) -> ! {
    panic!("heap: access of {len} bytes at {addr:#x} outside its region")
}

// SAFETY: a `Region` is the only handle to its bytes (the obligation of
// `Region::new`), so moving it to another thread moves the sole access with
// it; it has no thread-bound state.
unsafe impl Send for Region {}
