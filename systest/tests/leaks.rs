//! Process leaks: the `leaker` program forgets some of its key-3 blocks
//! and exits; the kernel's `Leak` report at its exit names exactly those
//! blocks (the key, how many, their bytes, the lowest address), and its
//! `ProcessExit` counts them, as the program's own log says.

use probe_proto::KernelMsg;
use systest::{DEADLINE, LoggedLine, Qemu, QemuConfig};

#[test]
fn the_leak_report_at_exit_matches_exactly_what_leaker_forgot() {
    let cfg = QemuConfig::with_append("memevents=0 init=leaker");
    let (mut qemu, mut link) = Qemu::boot("leaks", &cfg);
    let mut leaks = Vec::new();
    let exit = link.wait_for("leaker's ProcessExit", DEADLINE, |m| match m {
        KernelMsg::Leak(l) => {
            leaks.push(*l);
            None
        }
        KernelMsg::ProcessExit(e) if e.pid == 1 => Some(*e),
        _ => None,
    });
    qemu.wait_debug_log("leaker: leaked keys=");

    // `leaker: leaking key=3 addr=0x... size=96`, one line a forgotten block.
    let log = qemu.debug_log();
    let forgotten: Vec<(u64, u64, u64)> = LoggedLine::all(&log, "leaker: leaking ")
        .iter()
        .map(|l| (l.number("key="), l.number("addr="), l.number("size=")))
        .collect();
    assert!(!forgotten.is_empty(), "leaker forgets blocks:\n{log}");

    assert_eq!(leaks.len(), 1, "one key leaked: {leaks:?}");
    let leak = leaks[0];
    assert_eq!((leak.pid, leak.key), (1, 3), "{leak:?}");
    assert_eq!(leak.blocks, forgotten.len() as u64);
    assert_eq!(leak.bytes, forgotten.iter().map(|f| f.2).sum::<u64>());
    assert_eq!(
        leak.first_addr,
        forgotten.iter().map(|f| f.1).min().unwrap()
    );
    assert!(forgotten.iter().all(|f| f.0 == 3));
    assert!(
        leak.oldest_age_ms.is_some(),
        "the oldest block's age: {leak:?}"
    );
    assert_eq!(
        (exit.leaked_blocks, exit.leaked_bytes),
        (leak.blocks, leak.bytes),
        "{exit:?}"
    );
}
