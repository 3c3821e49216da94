//! What LLDB asks of a stub beyond gdb's protocol: the register layout
//! (`qRegisterInfoN`), the target's triple (`qHostInfo`, `qProcessInfo`)
//! and every thread's name and stop state at once (`jThreadsInfo`).
//!
//! gdb reads the register layout from the `target.xml` feature names it
//! knows (`org.gnu.gdb.i386.*`), which list no registers; LLDB 14 knows no
//! such names and, without `qRegisterInfo`, has no registers at all. The
//! table here describes `gdbstub_arch`'s `g` packet for `X86_64_SSE`
//! (536 bytes: the integer registers, x87, SSE) with the DWARF and eh_frame
//! numbers and generic roles (pc, sp, fp) LLDB needs to unwind. LLDB takes
//! a thread's name only from stop information, so `jThreadsInfo` carries
//! the process names `info threads` shows in gdb. gdb sends none of these.
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

use gdbstub::arch::lldb::{Encoding, Format, Generic, Register};
use gdbstub::common::{Endianness, Pid};
use gdbstub::target::ext::host_info::{HostInfo, HostInfoResponse};
use gdbstub::target::ext::lldb_register_info_override::{
    Callback, CallbackToken, LldbRegisterInfoOverride,
};
use gdbstub::target::ext::process_info::{ProcessInfo, ProcessInfoResponse};

use super::target::Kernel;

/// The target as LLDB names it: the kernel's own target triple.
const TRIPLE: &str = "x86_64-unknown-none";
/// The one process gdbstub reports (`p1.TID` thread ids).
const PID: Pid = Pid::new(1).expect("1 is not 0");

/// One register of the `g` packet, in its order.
struct Reg {
    name: &'static str,
    alt_name: Option<&'static str>,
    bits: usize,
    kind: Kind,
    /// DWARF and eh_frame number (the same on x86_64).
    dwarf: Option<usize>,
    role: Option<Role>,
}

/// A register's generic role (gdbstub's `Generic`, which is not `Copy`).
#[derive(Clone, Copy)]
enum Role {
    Pc,
    Sp,
    Fp,
    Flags,
    Arg1,
    Arg2,
    Arg3,
    Arg4,
    Arg5,
    Arg6,
}

impl Role {
    fn generic(self) -> Generic {
        match self {
            Role::Pc => Generic::Pc,
            Role::Sp => Generic::Sp,
            Role::Fp => Generic::Fp,
            Role::Flags => Generic::Flags,
            Role::Arg1 => Generic::Arg1,
            Role::Arg2 => Generic::Arg2,
            Role::Arg3 => Generic::Arg3,
            Role::Arg4 => Generic::Arg4,
            Role::Arg5 => Generic::Arg5,
            Role::Arg6 => Generic::Arg6,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Integer,
    /// x87 stack and SSE registers: shown as bytes.
    Vector,
    /// x87 and SSE control and status registers.
    FpControl,
}

impl Kind {
    fn set(self) -> &'static str {
        match self {
            Kind::Integer => "General Purpose Registers",
            Kind::Vector | Kind::FpControl => "Floating Point Registers",
        }
    }
}

const fn reg(name: &'static str, bits: usize, dwarf: Option<usize>) -> Reg {
    Reg {
        name,
        alt_name: None,
        bits,
        kind: Kind::Integer,
        dwarf,
        role: None,
    }
}

const fn role(mut r: Reg, role: Role, alt_name: Option<&'static str>) -> Reg {
    r.role = Some(role);
    r.alt_name = alt_name;
    r
}

const fn vector(name: &'static str, bits: usize, dwarf: usize) -> Reg {
    Reg {
        name,
        alt_name: None,
        bits,
        kind: Kind::Vector,
        dwarf: Some(dwarf),
        role: None,
    }
}

const fn fp_control(name: &'static str) -> Reg {
    Reg {
        name,
        alt_name: None,
        bits: 32,
        kind: Kind::FpControl,
        dwarf: None,
        role: None,
    }
}

/// The `g` packet of `X86_64_SSE`, register by register. DWARF numbers
/// are the System V x86_64 psABI's; the argument roles let LLDB show
/// arguments in the calling convention's registers.
const REGS: [Reg; 57] = [
    reg("rax", 64, Some(0)),
    reg("rbx", 64, Some(3)),
    role(reg("rcx", 64, Some(2)), Role::Arg4, None),
    role(reg("rdx", 64, Some(1)), Role::Arg3, None),
    role(reg("rsi", 64, Some(4)), Role::Arg2, None),
    role(reg("rdi", 64, Some(5)), Role::Arg1, None),
    role(reg("rbp", 64, Some(6)), Role::Fp, Some("fp")),
    role(reg("rsp", 64, Some(7)), Role::Sp, Some("sp")),
    role(reg("r8", 64, Some(8)), Role::Arg5, None),
    role(reg("r9", 64, Some(9)), Role::Arg6, None),
    reg("r10", 64, Some(10)),
    reg("r11", 64, Some(11)),
    reg("r12", 64, Some(12)),
    reg("r13", 64, Some(13)),
    reg("r14", 64, Some(14)),
    reg("r15", 64, Some(15)),
    role(reg("rip", 64, Some(16)), Role::Pc, Some("pc")),
    // 32 bits wide in gdb's layout.
    role(reg("rflags", 32, Some(49)), Role::Flags, Some("eflags")),
    reg("cs", 32, Some(51)),
    reg("ss", 32, Some(52)),
    reg("ds", 32, Some(53)),
    reg("es", 32, Some(50)),
    reg("fs", 32, Some(54)),
    reg("gs", 32, Some(55)),
    vector("st0", 80, 33),
    vector("st1", 80, 34),
    vector("st2", 80, 35),
    vector("st3", 80, 36),
    vector("st4", 80, 37),
    vector("st5", 80, 38),
    vector("st6", 80, 39),
    vector("st7", 80, 40),
    fp_control("fctrl"),
    fp_control("fstat"),
    fp_control("ftag"),
    fp_control("fiseg"),
    fp_control("fioff"),
    fp_control("foseg"),
    fp_control("fooff"),
    fp_control("fop"),
    vector("xmm0", 128, 17),
    vector("xmm1", 128, 18),
    vector("xmm2", 128, 19),
    vector("xmm3", 128, 20),
    vector("xmm4", 128, 21),
    vector("xmm5", 128, 22),
    vector("xmm6", 128, 23),
    vector("xmm7", 128, 24),
    vector("xmm8", 128, 25),
    vector("xmm9", 128, 26),
    vector("xmm10", 128, 27),
    vector("xmm11", 128, 28),
    vector("xmm12", 128, 29),
    vector("xmm13", 128, 30),
    vector("xmm14", 128, 31),
    vector("xmm15", 128, 32),
    Reg {
        dwarf: Some(64),
        ..fp_control("mxcsr")
    },
];

/// Byte offset of register `index` in the `g` packet.
const fn offset_of(index: usize) -> usize {
    let mut offset = 0;
    let mut i = 0;
    while i < index {
        offset += REGS[i].bits / 8;
        i += 1;
    }
    offset
}

// The table covers gdbstub_arch's `g` packet exactly.
const _: () = assert!(offset_of(REGS.len()) == 536);
const _: () = assert!(offset_of(16) == 128); // rip
const _: () = assert!(offset_of(24) == 164); // st0
const _: () = assert!(offset_of(40) == 276); // xmm0

impl LldbRegisterInfoOverride for Kernel {
    /// Register `reg_id` of the table; the end of it after the last one.
    fn lldb_register_info<'a>(
        &mut self,
        reg_id: usize,
        reg_info: Callback<'a>,
    ) -> Result<CallbackToken<'a>, Self::Error> {
        let Some(r) = REGS.get(reg_id) else {
            return Ok(reg_info.done());
        };
        let (encoding, format) = match r.kind {
            Kind::Integer | Kind::FpControl => (Encoding::Uint, Format::Hex),
            Kind::Vector => (Encoding::Vector, Format::VectorUInt8),
        };
        Ok(reg_info.write(Register {
            name: r.name,
            alt_name: r.alt_name,
            bitsize: r.bits,
            offset: offset_of(reg_id),
            encoding,
            format,
            set: r.kind.set(),
            gcc: r.dwarf,
            dwarf: r.dwarf,
            generic: r.role.map(Role::generic),
            container_regs: None,
            invalidate_regs: None,
        }))
    }
}

/// The endianness goes last: gdbstub ends it with a doubled `;`, and LLDB
/// stops reading a reply at an empty field.
impl HostInfo for Kernel {
    fn host_info(
        &self,
        write_item: &mut dyn FnMut(&HostInfoResponse<'_>),
    ) -> Result<(), Self::Error> {
        write_item(&HostInfoResponse::Triple(TRIPLE));
        write_item(&HostInfoResponse::PointerSize(8));
        write_item(&HostInfoResponse::Endianness(Endianness::Little));
        Ok(())
    }
}

/// As [`HostInfo`], and the pid of gdbstub's one process.
impl ProcessInfo for Kernel {
    fn process_info(
        &self,
        write_item: &mut dyn FnMut(&ProcessInfoResponse<'_>),
    ) -> Result<(), Self::Error> {
        write_item(&ProcessInfoResponse::Pid(PID));
        write_item(&ProcessInfoResponse::Triple(TRIPLE));
        write_item(&ProcessInfoResponse::PointerSize(8));
        write_item(&ProcessInfoResponse::Endianness(Endianness::Little));
        Ok(())
    }
}

/// Writes the `jThreadsInfo` reply: a JSON array with every thread's id
/// and name (the process name), and for the thread the last stop reply
/// named, that reply's signal.
pub fn write_threads_info(kernel: &Kernel, out: &mut impl Write) -> fmt::Result {
    let (stopped, signal) = kernel.reported();
    out.write_char('[')?;
    for (i, t) in kernel.threads().enumerate() {
        if i > 0 {
            out.write_char(',')?;
        }
        write!(out, r#"{{"tid":{},"name":"#, t.tid())?;
        write_json_string(out, t.name())?;
        if t.tid() == stopped {
            write!(out, r#","reason":"signal","signal":{}"#, signal.0)?;
        }
        out.write_char('}')?;
    }
    out.write_char(']')
}

/// `text` as a JSON string, quoted and escaped.
fn write_json_string(out: &mut impl Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            c if u32::from(c) < 0x20 => write!(out, "\\u{:04x}", u32::from(c))?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}
