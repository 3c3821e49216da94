//! From the boot stub to the idle loop, and the panic handler: the top of
//! the kernel, which wires the layers together at boot (trap handlers,
//! the log's telemetry sink) and may import any of them.

mod traps;

use core::fmt::Write;

use probe_proto::{KernelMsg, Panic};
use spin::Once;

use crate::arch::{self, cpu};
use crate::boot_info::BootInfo;
use crate::cmdline::{self, Options};
use crate::log::LineBuf;
use crate::{gdb, introspect, memory, proc, selftest, telemetry, time};

static BOOT_INFO: Once<BootInfo> = Once::new();

/// Microseconds between two heartbeats.
const HEARTBEAT_US: u64 = 1_000_000;

/// Called by the boot stub, in the higher half, on the boot stack.
#[unsafe(no_mangle)]
extern "C" fn kernel_main(start_info_phys: u64) -> ! {
    arch::x86_64::trap::register_handlers(traps::HANDLERS);
    arch::x86_64::init(time::TIMER_HZ);
    let boot = match arch::x86_64::pvh::parse(start_info_phys) {
        Ok(info) => BOOT_INFO.call_once(|| info),
        Err(why) => panic!("cannot read boot information: {why}"),
    };
    let opts = Options::parse(boot.cmdline());
    crate::log::set_level(opts.loglevel);
    // Before the first Hello, which carries the TSC's rate.
    let tsc_hz = time::calibrate();
    telemetry::init(boot);
    crate::log::set_sink(telemetry::send_log);
    if let Err(why) = memory::phys::init(boot) {
        panic!("physical memory: {why}");
    }
    memory::events::set_enabled(opts.mem_events);
    let layout = match memory::virt::init(boot) {
        Ok(layout) => layout,
        Err(why) => panic!("kernel page tables: {why}"),
    };
    if let Err(why) = memory::heap::init(opts.red_zones, opts.call_sites) {
        panic!("kernel heap: {why:?}");
    }
    gdb::init(opts.gdb_idle_s);
    if cpu::enable_umip() {
        kinfo!("UMIP on: ring 3 cannot read the descriptor tables' addresses");
    } else {
        kinfo!("UMIP not offered by this CPU (QEMU: -cpu max has it)");
    }
    cpu::enable_interrupts();
    kinfo!(
        "kernel up: {} regions, cmdline {:?}; clock: TSC at {} kHz, microseconds",
        boot.regions().len(),
        boot.cmdline(),
        tsc_hz / 1000
    );
    for r in boot.regions() {
        kinfo!(
            "  memory {:#014x}..{:#014x} type {}",
            r.start,
            r.end(),
            r.e820_type
        );
    }
    let (total, free) = memory::phys::counts();
    let consistent = memory::phys::check().is_consistent();
    kinfo!("frames: {total} of RAM, {free} free; bitmap consistent: {consistent}");
    let wx = memory::virt::audit_wx();
    kinfo!(
        "paging: root {:#x}, image {} pages, direct map {} MiB, {} kernel tables; \
         {} kernel leaves, {} executable, {} writable+executable",
        layout.root,
        layout.image_pages,
        layout.direct_map_bytes >> 20,
        layout.table_frames,
        wx.leaves,
        wx.executable,
        wx.writable_executable
    );
    if boot.cmdline_cut() {
        kwarn!(
            "the kernel command line is longer than {} bytes (or not UTF-8): the rest was ignored",
            crate::boot_info::MAX_CMDLINE
        );
    }
    if let Some(word) = opts.first_unknown {
        kwarn!("ignoring unknown or malformed option {word:?}");
    }
    if let Some(name) = opts.selftest {
        selftest::run(name);
    }
    // The picture before any program runs, so a host can check that
    // everything the programs took came back.
    // Only a kernel that runs programs makes its process table (after the
    // self-tests, which check that the kernel heap ends as they found it).
    let workload = opts.workload();
    if workload != cmdline::Workload::None {
        proc::init();
    }
    telemetry::send(&KernelMsg::MemoryStats(introspect::memory::memory_stats()));
    proc::workload::start(workload);
    idle_loop(&opts)
}

/// The kernel's own task, between the programs' turns: heartbeats, host
/// requests, housekeeping, the periodic check (`checkevery=`) and, for
/// `selftest=check-faults`, its faults as soon as they can be injected.
fn idle_loop(opts: &Options<'_>) -> ! {
    let mut next_heartbeat = 0;
    let check_every_us = u64::from(opts.check_every_s) * 1_000_000;
    let mut next_check = check_every_us;
    let mut inject = opts.selftest == Some("check-faults");
    loop {
        if inject && selftest::check_faults::inject() {
            inject = false;
        }
        if check_every_us > 0 && time::uptime_us() >= next_check {
            telemetry::server::send_mapping_check();
            next_check = time::uptime_us() + check_every_us;
        }
        let now = time::uptime_us();
        if now >= next_heartbeat {
            telemetry::heartbeat();
            telemetry::send(&KernelMsg::MemoryStats(introspect::memory::memory_stats()));
            next_heartbeat = now + HEARTBEAT_US;
        }
        telemetry::server::serve_requests();
        proc::workload::housekeeping();
        // The kernel's turn is over: processes run until they all sleep
        // or the kernel's turn comes round again.
        proc::sched::yield_from_idle();
        if !proc::sched::others_runnable() {
            cpu::enable_interrupts_and_halt();
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let mut message = LineBuf::new();
    let _ = write!(message, "{}", info.message());
    let (file, line, column) = info
        .location()
        .map(|l| (l.file(), l.line(), l.column()))
        .unwrap_or(("<unknown>", 0, 0));
    arch::qemu::debugcon_write(b"[PANIC] ");
    arch::qemu::debugcon_write(message.as_str().as_bytes());
    let mut place = LineBuf::new();
    let _ = writeln!(place, " at {file}:{line}:{column}");
    arch::qemu::debugcon_write(place.as_str().as_bytes());
    telemetry::send_emergency(&KernelMsg::Panic(Panic {
        ts_us: time::uptime_us(),
        message: message.as_str().into(),
        file: file.into(),
        line,
        column,
    }));
    arch::qemu::exit(arch::qemu::ExitCode::Failure)
}
