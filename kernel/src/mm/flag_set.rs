//! The operations every flag set of `mm` shares (`PageFlags`, `VmFlags`):
//! one macro instead of a bitflags-style copy per type, so that the pure
//! code needs no dependency.
//!
//! A type using it is a `Copy` newtype over an unsigned integer that defines
//! `const fn all() -> Self` (every bit a flag may use) and
//! `const NAMED: [(Self, &str); N]` (named flags in bit order, for `Debug`).

/// Generates the set operations, `from_bits`, the operators (`!` is the
/// complement within `all()`) and a `Debug` that names flags and prints any
/// unnamed bits in hex, for `$ty($bits)`.
macro_rules! flag_set {
    ($ty:ident, $bits:ty) => {
        impl $ty {
            /// No flag set.
            #[must_use]
            pub const fn empty() -> Self {
                Self(0)
            }

            /// The raw bits.
            #[must_use]
            pub const fn bits(self) -> $bits {
                self.0
            }

            /// The flags `bits`, or `None` if a bit outside `all()` is set.
            #[must_use]
            pub const fn from_bits(bits: $bits) -> Option<Self> {
                if bits & !Self::all().0 == 0 {
                    Some(Self(bits))
                } else {
                    None
                }
            }

            /// The flags of `bits`, bits outside `all()` dropped.
            #[must_use]
            pub const fn from_bits_truncate(bits: $bits) -> Self {
                Self(bits & Self::all().0)
            }

            /// Whether no flag is set.
            #[must_use]
            pub const fn is_empty(self) -> bool {
                self.0 == 0
            }

            /// Whether every flag of `other` is set.
            #[must_use]
            pub const fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }

            /// Whether any flag of `other` is set.
            #[must_use]
            pub const fn intersects(self, other: Self) -> bool {
                self.0 & other.0 != 0
            }

            /// The flags of both.
            #[must_use]
            pub const fn union(self, other: Self) -> Self {
                Self(self.0 | other.0)
            }

            /// The flags set in both.
            #[must_use]
            pub const fn intersection(self, other: Self) -> Self {
                Self(self.0 & other.0)
            }

            /// The flags of `self` without those of `other`.
            #[must_use]
            pub const fn difference(self, other: Self) -> Self {
                Self(self.0 & !other.0)
            }

            /// Sets the flags of `other`.
            pub const fn insert(&mut self, other: Self) {
                self.0 |= other.0;
            }

            /// Clears the flags of `other`.
            pub const fn remove(&mut self, other: Self) {
                self.0 &= !other.0;
            }

            /// Sets or clears the flags of `other`.
            pub const fn set(&mut self, other: Self, value: bool) {
                if value {
                    self.insert(other);
                } else {
                    self.remove(other);
                }
            }
        }

        impl core::ops::BitOr for $ty {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                self.union(rhs)
            }
        }

        impl core::ops::BitOrAssign for $ty {
            fn bitor_assign(&mut self, rhs: Self) {
                self.insert(rhs);
            }
        }

        impl core::ops::BitAnd for $ty {
            type Output = Self;
            fn bitand(self, rhs: Self) -> Self {
                self.intersection(rhs)
            }
        }

        impl core::ops::BitAndAssign for $ty {
            fn bitand_assign(&mut self, rhs: Self) {
                *self = self.intersection(rhs);
            }
        }

        impl core::ops::Sub for $ty {
            type Output = Self;
            fn sub(self, rhs: Self) -> Self {
                self.difference(rhs)
            }
        }

        impl core::ops::SubAssign for $ty {
            fn sub_assign(&mut self, rhs: Self) {
                self.remove(rhs);
            }
        }

        impl core::ops::Not for $ty {
            type Output = Self;
            /// The complement within `all()`.
            fn not(self) -> Self {
                Self::all().difference(self)
            }
        }

        impl core::fmt::Debug for $ty {
            /// `Name(A | B | 0x100)`: names first, then any unnamed bits as
            /// hex; `Name(empty)` when none is set.
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($ty), "("))?;
                let mut rest = *self;
                let mut first = true;
                for (flag, name) in Self::NAMED {
                    if self.contains(flag) {
                        if !first {
                            f.write_str(" | ")?;
                        }
                        f.write_str(name)?;
                        rest.remove(flag);
                        first = false;
                    }
                }
                if !rest.is_empty() {
                    if !first {
                        f.write_str(" | ")?;
                    }
                    write!(f, "{:#x}", rest.0)?;
                } else if first {
                    f.write_str("empty")?;
                }
                f.write_str(")")
            }
        }
    };
}

pub(crate) use flag_set;
