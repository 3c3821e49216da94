//! `mmtop loglevel` and `mmtop events`: set what the kernel sends over a
//! slow link.

use std::io::Write;

use probe_proto::names::{EventClasses, event_class};
use probe_proto::{HostMsg, Settings, Version};

use super::args::{EventsArgs, LoglevelArgs};
use super::request::Session;
use super::{EXIT_CONNECT, EXIT_OK, Status};
use crate::Msg;

/// The first protocol version with `SetLogLevel`, `SetEvents` and `Leaks`.
pub const CONTROL_SINCE: Version = Version { major: 2, minor: 0 };

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
