//! The kernel command line (`-append`): space-separated `key=value` options.
//!
//! Known keys: `loglevel=0..=3` (error, warn, info, debug),
//! `selftest=NAME` (a named scenario the tests boot into), `redzones=0|1`
//! (guard bytes after every kernel-heap block; on by default),
//! `memevents=0|1` (an event on COM1 for every page, mapping and heap
//! operation; on by default) and `gdbidle=SECONDS` (how long the kernel,
//! stopped by the GDB stub, waits for a silent debugger before it gives the
//! session up and runs on; 0 waits forever), `init=WORKLOAD` (the user
//! programs started at boot: `demo` (the default without a self-test), `none`
//! (the default with one), or a comma-separated list of program names),
//! `checkevery=SECONDS` (run the check of every mapping against the frame
//! allocator that often and send its findings; 0, the default, never),
//! `callsites=0|1` (record the call stack and time of every kernel-heap
//! allocation for the leak scan; on by default).
//! Unknown keys are kept so they can be reported, not silently dropped.
#![forbid(unsafe_code)]

/// Options read from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options<'a> {
    /// Most verbose log level sent: 0 error .. 3 debug.
    pub loglevel: u8,
    /// Self-test scenario to run instead of the normal workload.
    pub selftest: Option<&'a str>,
    /// Red zones around kernel-heap blocks.
    pub red_zones: bool,
    /// Memory events on the telemetry link.
    pub mem_events: bool,
    /// Call stacks of kernel-heap allocations recorded for the leak scan.
    pub call_sites: bool,
    /// Seconds a stopped kernel waits for a silent debugger; 0 = forever.
    pub gdb_idle_s: u32,
    /// The `init=` workload as given (`None`: the default).
    pub init: Option<&'a str>,
    /// Seconds between two checks of every mapping; 0 = only on request.
    pub check_every_s: u32,
    /// First option that was not understood, for a warning.
    pub first_unknown: Option<&'a str>,
}

/// What to start at boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload<'a> {
    /// Nothing.
    None,
    /// The demo programs, restarted when they end.
    Demo,
    /// These programs (comma-separated), once each.
    Programs(&'a str),
}

impl<'a> Options<'a> {
    /// The workload: `init=` if given, else the demo unless a self-test runs.
    pub fn workload(&self) -> Workload<'a> {
        match self.init {
            Some("none") => Workload::None,
            Some("demo") => Workload::Demo,
            Some(list) => Workload::Programs(list),
            None if self.selftest.is_some() => Workload::None,
            None => Workload::Demo,
        }
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "on" | "yes" => Some(true),
        "0" | "off" | "no" => Some(false),
        _ => None,
    }
}

/// Default `gdbidle`: half a minute of silence ends a stopped session.
pub const DEFAULT_GDB_IDLE_S: u32 = 30;

/// Default `loglevel`: info.
pub const DEFAULT_LOGLEVEL: u8 = 2;

impl<'a> Options<'a> {
    /// Parses `cmdline`; malformed values fall back to defaults and are
    /// reported through `first_unknown`.
    pub fn parse(cmdline: &'a str) -> Self {
        let mut opts = Options {
            loglevel: DEFAULT_LOGLEVEL,
            selftest: None,
            red_zones: true,
            mem_events: true,
            call_sites: true,
            gdb_idle_s: DEFAULT_GDB_IDLE_S,
            init: None,
            check_every_s: 0,
            first_unknown: None,
        };
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word.split_once('=').unwrap_or((word, ""));
            let understood = match key {
                "loglevel" => match value.parse::<u8>() {
                    Ok(level @ 0..=3) => {
                        opts.loglevel = level;
                        true
                    }
                    _ => false,
                },
                "redzones" => parse_bool(value).map(|on| opts.red_zones = on).is_some(),
                "memevents" => parse_bool(value).map(|on| opts.mem_events = on).is_some(),
                "callsites" => parse_bool(value).map(|on| opts.call_sites = on).is_some(),
                "gdbidle" => value.parse().map(|s| opts.gdb_idle_s = s).is_ok(),
                "checkevery" => value.parse().map(|s| opts.check_every_s = s).is_ok(),
                "init" if !value.is_empty() => {
                    opts.init = Some(value);
                    true
                }
                "selftest" if !value.is_empty() => {
                    opts.selftest = Some(value);
                    true
                }
                _ => false,
            };
            if !understood && opts.first_unknown.is_none() {
                opts.first_unknown = Some(word);
            }
        }
        opts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cmdline_gives_defaults() {
        let o = Options::parse("");
        assert_eq!(o.loglevel, DEFAULT_LOGLEVEL);
        assert_eq!(o.selftest, None);
        assert_eq!(o.first_unknown, None);
    }

    #[test]
    fn checkevery_takes_seconds_and_defaults_to_never() {
        assert_eq!(Options::parse("").check_every_s, 0);
        assert_eq!(Options::parse("checkevery=5").check_every_s, 5);
        let o = Options::parse("checkevery=soon");
        assert_eq!(
            (o.check_every_s, o.first_unknown),
            (0, Some("checkevery=soon"))
        );
    }

    #[test]
    fn known_options_are_read() {
        let o = Options::parse("  loglevel=3   selftest=null-read ");
        assert_eq!(o.loglevel, 3);
        assert_eq!(o.selftest, Some("null-read"));
        assert_eq!(o.first_unknown, None);
    }

    #[test]
    fn bad_values_keep_defaults_and_are_reported() {
        let o = Options::parse("loglevel=9 quiet selftest=");
        assert_eq!(o.loglevel, DEFAULT_LOGLEVEL);
        assert_eq!(o.selftest, None);
        assert_eq!(o.first_unknown, Some("loglevel=9"));
    }

    #[test]
    fn gdbidle_takes_seconds() {
        assert_eq!(Options::parse("").gdb_idle_s, DEFAULT_GDB_IDLE_S);
        assert_eq!(Options::parse("gdbidle=0").gdb_idle_s, 0);
        let o = Options::parse("gdbidle=soon");
        assert_eq!(o.gdb_idle_s, DEFAULT_GDB_IDLE_S);
        assert_eq!(o.first_unknown, Some("gdbidle=soon"));
    }

    #[test]
    fn switches_take_on_and_off() {
        let o = Options::parse("");
        assert!(o.red_zones && o.mem_events);
        let o = Options::parse("redzones=0 memevents=off");
        assert!(!o.red_zones && !o.mem_events);
        assert!(Options::parse("").call_sites && !Options::parse("callsites=0").call_sites);
        assert_eq!(o.first_unknown, None);
        let o = Options::parse("redzones=maybe");
        assert!(o.red_zones);
        assert_eq!(o.first_unknown, Some("redzones=maybe"));
    }

    #[test]
    fn workload_defaults_to_demo_unless_a_selftest_runs() {
        assert_eq!(Options::parse("").workload(), Workload::Demo);
        assert_eq!(Options::parse("selftest=mm").workload(), Workload::None);
        assert_eq!(
            Options::parse("selftest=mm init=demo").workload(),
            Workload::Demo
        );
        assert_eq!(Options::parse("init=none").workload(), Workload::None);
        let o = Options::parse("init=memtest,worker");
        assert_eq!(o.workload(), Workload::Programs("memtest,worker"));
        let o = Options::parse("init=");
        assert_eq!(o.workload(), Workload::Demo);
        assert_eq!(o.first_unknown, Some("init="));
    }
}
