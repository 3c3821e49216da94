//! The owner map: the kernel answers `OwnerMap` with runs of frames by
//! owner that tile the asked range exactly, a few dozen runs a message, and
//! on an idle kernel they add up to the frame counts of its `MemoryStats`.

use std::collections::BTreeMap;

use probe_proto::{FrameOwner, HostMsg, KernelMsg, OWNER_RUNS_BATCH, OwnerMapEnd, OwnerRun};
use systest::{DEADLINE, Qemu, QemuConfig, Telemetry};

/// Asks for the map of `nr_frames` from `first_frame`; the runs (each with
/// its first frame), the number of `OwnerRuns` messages, and the end.
fn owner_map(
    link: &mut Telemetry,
    first_frame: u64,
    nr_frames: u64,
) -> (Vec<(u64, OwnerRun)>, usize, OwnerMapEnd) {
    link.send(&HostMsg::OwnerMap {
        first_frame,
        nr_frames,
    });
    let mut runs = Vec::new();
    let mut msgs = 0;
    loop {
        let got = link.wait_for("OwnerRuns or OwnerMapEnd", DEADLINE, |m| match m {
            KernelMsg::OwnerRuns(r) => Some(Err((r.first_frame, r.runs.to_vec()))),
            KernelMsg::OwnerMapEnd(e) => Some(Ok(*e)),
            _ => None,
        });
        match got {
            Err((mut at, batch)) => {
                msgs += 1;
                assert!(batch.len() <= OWNER_RUNS_BATCH);
                for run in batch {
                    runs.push((at, run));
                    at += run.frames;
                }
            }
            Ok(end) => return (runs, msgs, end),
        }
    }
}

#[test]
fn the_owner_map_tiles_memory_in_few_messages_and_matches_the_frame_counts() {
    let cfg = QemuConfig::with_append("init=none");
    let mut qemu = Qemu::start("owner-map", &cfg);
    let mut link = qemu.connect_telemetry();
    link.wait_for("a Heartbeat", DEADLINE, |m| match m {
        KernelMsg::Heartbeat(_) => Some(()),
        _ => None,
    });
    link.send(&HostMsg::Snapshot);
    let stats = link.wait_for("MemoryStats", DEADLINE, |m| match m {
        KernelMsg::MemoryStats(s) => Some(*s),
        _ => None,
    });

    let (runs, msgs, end) = owner_map(&mut link, 0, u64::MAX);
    assert_eq!(end.first_frame, 0);
    assert_eq!(end.nr_frames, end.total_frames, "the whole map");
    assert_eq!(end.runs, runs.len() as u64);
    assert!(
        msgs <= runs.len().div_ceil(OWNER_RUNS_BATCH),
        "{msgs} messages for {} runs",
        runs.len()
    );
    // The runs tile 0..total: each starts where the last ended, none is
    // empty, and neighbours differ in owner.
    let mut next = 0;
    for (i, (start, run)) in runs.iter().enumerate() {
        assert_eq!(
            *start,
            next,
            "run {i} starts where run {} ended",
            i.max(1) - 1
        );
        assert!(run.frames > 0, "run {i} is empty");
        if i > 0 {
            assert_ne!(
                runs[i - 1].1.owner,
                run.owner,
                "run {i} continues its neighbour"
            );
        }
        next += run.frames;
    }
    assert_eq!(next, end.total_frames);

    // On an idle kernel the frame counts are those of the snapshot.
    let mut by_owner: BTreeMap<String, u64> = BTreeMap::new();
    for (_, run) in &runs {
        let class = match run.owner {
            None => "free".to_string(),
            Some(FrameOwner::Process(_)) => "process".into(),
            Some(FrameOwner::Other(_)) => "other".into(),
            Some(o) => o.to_string().replace('-', " "),
        };
        *by_owner.entry(class).or_default() += run.frames;
    }
    for (name, n) in stats.usage.by_owner() {
        if [
            "free",
            "kernel image",
            "bitmap",
            "reserved",
            "boot info",
            "page table",
        ]
        .contains(&name)
        {
            assert_eq!(by_owner.get(name).copied().unwrap_or(0), n, "{name} frames");
        }
    }
    assert!(by_owner.get("kernel heap").copied().unwrap_or(0) > 0);
    assert_eq!(stats.usage.process, 0, "init=none runs no program");
    assert_eq!(by_owner.get("process"), None);

    // A window: exactly the frames asked for, from the frame asked for.
    let (runs, _, end) = owner_map(&mut link, 300, 1000);
    assert_eq!((end.first_frame, end.nr_frames), (300, 1000));
    assert_eq!(runs.first().map(|r| r.0), Some(300));
    assert_eq!(runs.iter().map(|r| r.1.frames).sum::<u64>(), 1000);
    // Past the end: nothing, and still an end.
    let (runs, _, end) = owner_map(&mut link, u64::MAX - 1, 10);
    assert!(runs.is_empty());
    assert_eq!(end.nr_frames, 0);
    assert!(qemu.is_running());
}
