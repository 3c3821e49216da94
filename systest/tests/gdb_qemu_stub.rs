//! Source-level debugging through QEMU's built-in gdb stub, as `make gdb-qemu`
//! and F5 in VS Code do it: real gdb stops at a breakpoint in `kernel_main`.

use systest::{Qemu, QemuConfig, free_port, run_gdb};

#[test]
fn gdb_stops_at_kernel_main_through_qemu_stub() {
    let port = free_port();
    let cfg = QemuConfig {
        com1: systest::Com1::NoWait,
        extra: vec!["-gdb".into(), format!("tcp:127.0.0.1:{port}"), "-S".into()],
        ..Default::default()
    };
    let qemu = Qemu::start("gdb-qemu", &cfg);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kernel.gdb");
    let out = run_gdb(&[
        format!("target remote 127.0.0.1:{port}"),
        format!("source {script}"),
        "break kernel_main".into(),
        "continue".into(),
        "info symbol $pc".into(),
        "print start_info_phys != 0".into(),
    ]);
    assert!(
        out.contains("Breakpoint 1, kernel::entry::kernel_main"),
        "{out}"
    );
    assert!(out.contains("kernel_main"), "{out}");
    assert!(
        out.contains("$1 = true"),
        "start-info pointer passed to kernel_main:\n{out}"
    );
    drop(qemu);
}
