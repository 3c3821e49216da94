//! A tiny xorshift64* generator: fast, small, and plenty for choosing
//! sizes and hostile arguments. Not for anything secret.

use crate::sys;

/// The generator's state; never 0.
#[derive(Debug, Clone)]
pub struct Rng {
    /// Current state.
    state: u64,
}

impl Rng {
    /// A generator starting from `seed` (0 is replaced by a fixed constant).
    pub const fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// A generator seeded from the clock and this process's id, different
    /// in every run and every process.
    pub fn from_entropy() -> Self {
        let now = sys::uptime().unwrap_or(0);
        let pid = sys::getpid().unwrap_or(0);
        Self::new(now ^ pid.wrapping_mul(0xbf58_476d_1ce4_e5b9) ^ 0x94d0_49bb_1331_11eb)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..bound` (0 if `bound` is 0). The slight bias of a
    /// modulo does not matter here.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// A number in `low..=high` (`low` if `high < low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high.saturating_sub(low).saturating_add(1))
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A random element of `items` (panics if it is empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
