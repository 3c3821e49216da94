//! `make gdb` in a real terminal: Ctrl-C typed at gdb stops the kernel
//! through the stub and leaves QEMU running (the terminal sends SIGINT to
//! its whole foreground process group, which QEMU must not be in); quitting
//! gdb then ends QEMU.

use std::process::Command;
use std::time::{Duration, Instant};

use systest::tmux::{Tmux, WAIT};
use systest::{free_port, kernel_elf, scratch_dir};

/// Whether a process whose command line contains `needle` runs.
fn running(needle: &str) -> bool {
    Command::new("pgrep")
        .args(["-f", needle])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Kills every process whose command line contains `needle` (the QEMU the
/// script started), whatever happened to the test.
struct KillOnDrop(String);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("pkill").args(["-9", "-f", &self.0]).status();
    }
}

#[test]
fn ctrl_c_in_make_gdb_stops_the_kernel_and_leaves_qemu_running() {
    let dir = scratch_dir("gdb-ctrl-c");
    let port = free_port();
    let sock = dir.join("com1.sock");
    let log = dir.join("debugcon.log");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/gdb.sh");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    // The QEMU command line `make gdb` gives the script, with this run's
    // socket, port and log (unique, so the process can be found by them).
    let command = format!(
        "cd {root} && sh {script} qemu-system-x86_64 {elf} {port} {sock} {log} \
         -kernel {elf} -m 128M -display none -no-reboot \
         -serial unix:{sock},server=on,wait=off \
         -serial tcp:127.0.0.1:{port},server=on,wait=off,nodelay=on \
         -debugcon file:{log} -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
         -append init=demo",
        elf = kernel_elf().display(),
        sock = sock.display(),
        log = log.display(),
    );
    let qemu = format!("tcp:127.0.0.1:{port},server");
    let _cleanup = KillOnDrop(qemu.clone());
    let tmux = Tmux::start("gdb-ctrl-c", &command);

    tmux.wait_for("gdb attached and stopped", |s| {
        s.contains("(gdb)") && s.contains("Remote debugging")
    });
    tmux.keys("continue");
    tmux.keys("Enter");
    tmux.wait_for("the kernel running", |s| s.contains("Continuing."));
    std::thread::sleep(Duration::from_millis(500));
    tmux.keys("C-c");
    let screen = tmux.wait_for("the stop", |s| {
        s.contains("SIGINT") && s.trim_end().ends_with("(gdb)")
    });
    assert!(running(&qemu), "QEMU survives Ctrl-C:\n{screen}");
    assert!(
        !screen.contains("terminating on signal"),
        "QEMU was not signalled:\n{screen}"
    );

    // Still a live session: gdb reads the stopped kernel.
    tmux.keys("info threads");
    tmux.keys("Enter");
    tmux.wait_for("the thread list", |s| s.contains("pid 0 kernel"));

    // Quitting gdb ends the script, which ends QEMU.
    tmux.keys("quit");
    tmux.keys("Enter");
    let start = Instant::now();
    while running(&qemu) || tmux.alive() {
        assert!(start.elapsed() < WAIT, "QEMU ends with gdb");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
