//! UMIP: on a CPU that has it (QEMU's `-cpu max`), `sgdt` in ring 3 faults
//! and the program is killed, so it cannot learn where the kernel's GDT is;
//! on one without it (QEMU's default `qemu64`) the kernel says so.

use probe_proto::{ExitReason, KernelMsg};
use systest::{DEADLINE, Qemu, QemuConfig};

#[test]
fn with_umip_sgdt_in_ring_3_kills_the_program() {
    let cfg = QemuConfig {
        extra: vec!["-cpu".into(), "max".into()],
        ..QemuConfig::with_append("init=umip")
    };
    let (mut qemu, mut link) = Qemu::boot("umip-on", &cfg);
    let exit = link.wait_for("umip's ProcessExit", DEADLINE, |m| match m {
        KernelMsg::ProcessExit(e) if e.pid == 1 => Some(*e),
        _ => None,
    });
    assert_eq!(exit.reason, ExitReason::Killed { vector: 13 }, "{exit:?}");
    let log = qemu.debug_log();
    assert!(log.contains("UMIP on"), "{log}");
    assert!(!log.contains("umip: sgdt gave"), "{log}");
    qemu.wait_debug_log("general protection");
}

#[test]
fn without_umip_the_kernel_says_the_cpu_lacks_it() {
    let cfg = QemuConfig::with_append("init=umip");
    let (mut qemu, mut link) = Qemu::boot("umip-off", &cfg);
    link.wait_for("umip's ProcessExit", DEADLINE, |m| match m {
        KernelMsg::ProcessExit(e) if e.pid == 1 => Some(()),
        _ => None,
    });
    qemu.wait_debug_log("umip: sgdt gave base=");
    assert!(qemu.debug_log().contains("UMIP not offered"));
}
