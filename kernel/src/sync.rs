//! Locks safe to take from both thread and interrupt context.
#![forbid(unsafe_code)]

use spin::Mutex;

/// A spinlock that keeps interrupts off while held, so an interrupt handler
/// on the same CPU can never spin on a lock its own thread holds.
pub struct IrqMutex<T>(Mutex<T>);

impl<T> IrqMutex<T> {
    /// A new unlocked mutex.
    pub const fn new(value: T) -> Self {
        Self(Mutex::new(value))
    }

    /// Runs `f` on the protected value with interrupts disabled.
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        crate::arch::cpu::without_interrupts(|| f(&mut self.0.lock()))
    }

    /// Like [`with`](Self::with) but gives up instead of spinning when the
    /// lock is held: for panic paths that may have interrupted the holder.
    pub fn try_with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        crate::arch::cpu::without_interrupts(|| self.0.try_lock().map(|mut g| f(&mut g)))
    }
}
