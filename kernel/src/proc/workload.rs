//! What runs at boot (the `init=` option) and the kernel's care of it: the
//! demo programs are restarted a little after they end (the crasher is
//! meant to die now and then), and zombies of kernel-started programs are
//! reaped.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::cmdline::Workload;
use crate::sync::IrqMutex;
use crate::time;

use super::KERNEL_PID;

/// The demo: something of every kind for mmtop to show.
pub const DEMO: [&str; 6] = [
    "worker",
    "leaker",
    "fragmenter",
    "mmapper",
    "forker",
    "crasher",
];

/// How long after it ends a demo program is started again.
const RESPAWN_DELAY_US: u64 = 2_000_000;

struct Respawn {
    /// Whether ended programs are restarted (the demo).
    enabled: bool,
    /// Programs to start, with the uptime to start them at.
    due: Vec<(&'static str, u64)>,
}

static RESPAWN: IrqMutex<Respawn> = IrqMutex::new(Respawn {
    enabled: false,
    due: Vec::new(),
});

/// Starts the workload.
pub fn start(workload: Workload<'_>) {
    match workload {
        Workload::None => {}
        Workload::Demo => {
            RESPAWN.with(|r| r.enabled = true);
            for name in DEMO {
                start_one(name);
            }
        }
        Workload::Programs(list) => {
            for name in list.split(',').filter(|n| !n.is_empty()) {
                start_one(name);
            }
        }
    }
}

fn start_one(name: &str) {
    if let Err(e) = super::spawn(name, KERNEL_PID) {
        kerror!("cannot start program {name:?}: {}", e.name());
    }
}

/// Called from the idle loop: reaps ended kernel-started programs and
/// restarts demo programs that are due.
pub fn housekeeping() {
    let ended = super::reap_orphans();
    let now = time::uptime_us();
    let due: Vec<&'static str> = RESPAWN.with(|r| {
        if r.enabled {
            r.due
                .extend(ended.iter().map(|&name| (name, now + RESPAWN_DELAY_US)));
        }
        let (ready, later): (Vec<_>, Vec<_>) = r.due.iter().partition(|(_, at)| *at <= now);
        r.due = later;
        ready.into_iter().map(|(name, _)| name).collect()
    });
    for name in due {
        start_one(name);
    }
}
