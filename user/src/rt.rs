//! The program runtime: the [`entry!`](crate::entry) macro and the panic
//! handler.
//!
//! A program is
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! ulib::entry!(main);
//! fn main() -> i64 {
//!     ulib::println!("hello");
//!     0
//! }
//! ```
//!
//! The kernel starts it at `_start` with `rsp` at the top of its stack;
//! `_start` clears the frame-pointer chain (so backtraces end there), aligns
//! the stack as a `call` would, and calls `main`, whose value becomes the
//! exit code.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::io::LineBuf;
use crate::sys;

/// Exit code of a program that panicked.
pub const PANIC_EXIT_CODE: i64 = 101;

/// Runs `main` and exits with its value. Called by `_start`.
#[doc(hidden)]
pub fn start(main: fn() -> i64) -> ! {
    sys::exit(main())
}

/// Makes `fn main() -> i64` the program's entry point: defines `_start`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The program's first instruction: ends the frame-pointer chain,
        /// aligns the stack to 16 bytes and calls the runtime.
        // Naked: no prologue may run before the stack is aligned.
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        #[unsafe(link_section = ".text._start")]
        pub extern "C" fn _start() -> ! {
            ::core::arch::naked_asm!(
                "xor ebp, ebp",
                "and rsp, -16",
                "call {start}",
                "ud2",
                start = sym __ulib_start,
            )
        }

        /// Runs the program's `main` and exits with its value.
        extern "C" fn __ulib_start() -> ! {
            $crate::rt::start($main)
        }
    };
}

/// Prints `NAME: panicked at FILE:LINE: MESSAGE` and exits with
/// [`PANIC_EXIT_CODE`].
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut name = [0u8; sysabi::MAX_NAME_LEN];
    let name_len = sys::get_program_name(sysabi::ALL_OR_SELF, &mut name)
        .unwrap_or(0)
        .min(name.len());
    let mut line = LineBuf::new();
    line.push(&name[..name_len]);
    // `LineBuf` never fails.
    let _ = write!(line, ": panicked");
    if let Some(location) = info.location() {
        let _ = write!(line, " at {}:{}", location.file(), location.line());
    }
    let _ = write!(line, ": {}", info.message());
    line.flush(true);
    sys::exit(PANIC_EXIT_CODE)
}

unsafe extern "C" {
    /// First byte of the program image (defined by the linker script).
    static __image_start: u8;
    /// One past the last page of the program image, bss included (defined
    /// by the linker script).
    static __image_end: u8;
}

/// The addresses the program image occupies: its code, constants, data
/// and bss, page-aligned.
pub fn image_range() -> core::ops::Range<u64> {
    let start = &raw const __image_start;
    let end = &raw const __image_end;
    start as u64..end as u64
}
