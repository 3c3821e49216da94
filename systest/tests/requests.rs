//! Host requests the kernel answers from thread context are queued in
//! order, not overwritten: two heap walks asked back to back are both
//! answered, and a burst larger than the queue is answered in full, the
//! overflow as not done rather than never.

use probe_proto::{HostMsg, KernelMsg};
use systest::{DEADLINE, Qemu, QemuConfig};

#[test]
fn back_to_back_heap_walks_are_both_answered_and_a_burst_is_never_lost() {
    let cfg = QemuConfig::default();
    let mut qemu = Qemu::start("requests", &cfg);
    let mut link = qemu.connect_telemetry();
    link.wait_for("a Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(_) => Some(()),
        _ => None,
    });

    // The kernel heap, then a heap that does not exist.
    link.send(&HostMsg::HeapWalk { pid: 0, heap_id: 0 });
    link.send(&HostMsg::HeapWalk { pid: 1, heap_id: 1 });
    let mut ends = Vec::new();
    while ends.len() < 2 {
        ends.push(link.wait_for("HeapWalkEnd", DEADLINE, |m| match m {
            KernelMsg::HeapWalkEnd(e) => Some((e.pid, e.heap_id, e.complete)),
            _ => None,
        }));
    }
    assert_eq!(ends, [(0, 0, true), (1, 1, false)]);

    // A burst: every request gets its end, in order.
    const BURST: u32 = 40;
    for heap_id in 0..BURST {
        link.send(&HostMsg::HeapWalk { pid: 7, heap_id });
    }
    let mut answered = Vec::new();
    while answered.len() < BURST as usize {
        answered.push(link.wait_for("HeapWalkEnd", DEADLINE, |m| match m {
            KernelMsg::HeapWalkEnd(e) if e.pid == 7 => Some(e.heap_id),
            _ => None,
        }));
    }
    answered.sort_unstable();
    assert_eq!(answered, (0..BURST).collect::<Vec<_>>());
    assert!(qemu.is_running());
}
