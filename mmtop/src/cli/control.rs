//! `mmtop loglevel`, `mmtop events` and `mmtop leaks`: set what the kernel
//! sends over a slow link, and list a live program's heap blocks by key.

use std::collections::BTreeMap;
use std::io::Write;

use probe_proto::names::{EventClasses, event_class};
use probe_proto::{HostMsg, Leak, Settings, Version};
use serde::Serialize;

use super::args::{EventsArgs, LeaksArgs, LoglevelArgs};
use super::request::Session;
use super::{EXIT_CONNECT, EXIT_NO_PROCESS, EXIT_OK, EXIT_TIMEOUT, Status};
use crate::Msg;
use crate::format::human_bytes;

/// The first protocol version with `SetLogLevel`, `SetEvents` and `Leaks`.
pub const CONTROL_SINCE: Version = Version { major: 1, minor: 3 };

/// Sends `cmd` and prints the `Settings` the kernel answers with.
fn settle(
    session: &mut Session<'_>,
    cmd: HostMsg,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Status {
    session.send(&cmd, err)?;
    let settings: Settings = loop {
        if let Msg::Settings(s) = session.recv("Settings", err)? {
            break s;
        }
    };
    let text = if json {
        serde_json::to_string(&serde_json::json!({
            "log_level": settings.log_level,
            "events": EventClasses(settings.events).to_string(),
        }))
        .expect("settings serialize")
    } else {
        format!(
            "log level {} ({}), events {}",
            settings.log_level,
            ["error", "warn", "info", "debug"][usize::from(settings.log_level.min(3))],
            EventClasses(settings.events)
        )
    };
    let _ = writeln!(out, "{text}");
    Ok(EXIT_OK)
}

/// Runs `mmtop loglevel N`.
pub fn loglevel(args: &LoglevelArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let mut session = Session::open(
        &args.connect.address,
        "loglevel",
        CONTROL_SINCE,
        args.timeout,
        err,
    )?;
    let cmd = HostMsg::SetLogLevel { level: args.level };
    settle(&mut session, cmd, args.json, out, err)
}

/// Runs `mmtop events CLASSES`.
pub fn events(args: &EventsArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let Some(classes) = event_class::parse(&args.classes) else {
        let _ = writeln!(
            err,
            "mmtop: {:?} is not a list of event classes (page, map, heap, fault, process; or \
             all, none)",
            args.classes
        );
        return Err(EXIT_CONNECT);
    };
    let mut session = Session::open(
        &args.connect.address,
        "events",
        CONTROL_SINCE,
        args.timeout,
        err,
    )?;
    settle(
        &mut session,
        HostMsg::SetEvents { classes },
        args.json,
        out,
        err,
    )
}

/// One key of a heap in `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct KeyJson {
    heap_id: u32,
    key: u64,
    blocks: u64,
    bytes: u64,
    first_addr: u64,
}

/// One process in `mmtop leaks --json`.
#[derive(Debug, Serialize)]
struct ProcessJson {
    pid: u32,
    name: String,
    keys: Vec<KeyJson>,
}

/// Runs `mmtop leaks [--pid N]`: the blocks each live program holds, by
/// heap and key (what would leak if it ended now), with a name from the
/// process listing.
pub fn leaks(args: &LeaksArgs, out: &mut dyn Write, err: &mut dyn Write) -> Status {
    let mut session = Session::open(
        &args.connect.address,
        "leaks",
        CONTROL_SINCE,
        args.timeout,
        err,
    )?;
    let pid = args.pid.map_or(-1, i64::from);
    session.send(&HostMsg::Processes { pid: -1 }, err)?;
    let mut names = BTreeMap::new();
    loop {
        match session.recv("the process listing", err)? {
            Msg::ProcessInfo(i) => {
                names.insert(i.pid, i.name.to_string());
            }
            Msg::ProcessListEnd(_) => break,
            _ => {}
        }
    }
    session.send(&HostMsg::Leaks { pid }, err)?;
    let mut blocks: Vec<Leak> = Vec::new();
    let end = loop {
        match session.recv("LeaksEnd", err)? {
            Msg::BlocksInUse(l) => blocks.push(l),
            Msg::LeaksEnd(e) if e.pid == pid => break e,
            _ => {}
        }
    };
    if let Some(p) = args.pid
        && end.processes == 0
    {
        let _ = writeln!(err, "mmtop: no live program with pid {p}");
        return Err(EXIT_NO_PROCESS);
    }
    let mut by_pid: BTreeMap<u32, Vec<Leak>> = BTreeMap::new();
    for b in blocks {
        by_pid.entry(b.pid).or_default().push(b);
    }
    let name = |pid: u32| {
        names
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| format!("Program-{pid}"))
    };
    if args.json {
        let processes: Vec<ProcessJson> = by_pid
            .iter()
            .map(|(&pid, keys)| ProcessJson {
                pid,
                name: name(pid),
                keys: keys
                    .iter()
                    .map(|k| KeyJson {
                        heap_id: k.heap_id,
                        key: k.key,
                        blocks: k.blocks,
                        bytes: k.bytes,
                        first_addr: k.first_addr,
                    })
                    .collect(),
            })
            .collect();
        let text = serde_json::to_string(&serde_json::json!({
            "kernel": null,
            "processes": processes,
        }))
        .expect("leaks serialize");
        let _ = writeln!(out, "{text}");
    } else {
        for (pid, keys) in &by_pid {
            let _ = writeln!(out, "pid {pid} ({}):", name(*pid));
            for k in keys {
                let _ = writeln!(
                    out,
                    "  heap {} key {}: {} blocks, {}, first at {:#x}",
                    k.heap_id,
                    k.key,
                    k.blocks,
                    human_bytes(k.bytes),
                    k.first_addr
                );
            }
        }
        if by_pid.is_empty() {
            let _ = writeln!(out, "no blocks in use in any program's heap");
        }
    }
    if !end.complete {
        let _ = writeln!(err, "mmtop: a damaged heap header cut a walk short");
        return Err(EXIT_TIMEOUT);
    }
    Ok(EXIT_OK)
}
