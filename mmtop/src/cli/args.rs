//! Command-line arguments (clap derive).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::link::Address;

/// Watch a kernel's memory over its telemetry link.
#[derive(Debug, Parser)]
#[command(name = "mmtop", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print each decoded kernel message, one per line.
    ///
    /// Exit status: 0 when --count messages were printed, or when the link
    /// closes (a recording ends) or --timeout ends a run without --count; 1
    /// when the link closes or --timeout ends a run before --count messages
    /// arrived; 2 when the link cannot be opened; 3 when the kernel speaks an
    /// incompatible protocol.
    Log(LogArgs),
    /// Send a ping and wait for the kernel's pong; print the round-trip time.
    ///
    /// Exit status: 0 on a pong, 1 on timeout or when the link closes first,
    /// 2 when the link cannot be opened (or is a recording), 3 when the
    /// kernel speaks an incompatible protocol.
    Ping(PingArgs),
    /// Ask the kernel to check its frame bitmap and kernel heap; print both
    /// results.
    ///
    /// Exit status: 0 when both report consistent, 4 when the kernel reports
    /// an inconsistency, 1 on timeout or when the link closes first, 2 when
    /// the link cannot be opened (or is a recording), 3 when the kernel
    /// speaks an incompatible protocol (or one older than 1.1, or one that
    /// takes no commands).
    Check(RequestArgs),
    /// Ask the kernel for a memory snapshot; print frames by owner, the
    /// kernel heap and the event counters.
    ///
    /// Exit status: 0 when the snapshot arrived, 1 on timeout or when the
    /// link closes first, 2 when the link cannot be opened (or is a
    /// recording), 3 when the kernel speaks an incompatible protocol (or one
    /// older than 1.1, or one that takes no commands).
    Stats(RequestArgs),
    /// List the kernel's programs like `ps` / `checkMemory`: heaps, sheds,
    /// resident memory and VMAs of each.
    ///
    /// The table has one row per program (PID, NAME, STATE, HEAPS, HEAP SIZE,
    /// USED, FREE, SHEDS, SHED SIZE, RSS in KiB, VMAS); with --pid it also
    /// lists that program's heaps, sheds and VMAs (like /proc/PID/maps).
    /// --json prints exactly the checkMemory object: {"totalPrograms",
    /// "programs": [{"pid", "programName", "heaps": [{"heapId", "heapSize",
    /// "heapUsed", "heapFree"}], "sheds": [{"shedId", "shedSize"}],
    /// "totalHeapSize", "totalHeapUsed", "totalHeapFree", "totalShedSize"}]}.
    /// An incomplete listing (messages lost on the way) is asked for once
    /// more.
    ///
    /// Exit status: 0 when the listing arrived, 5 when --pid names no
    /// process, 1 on timeout or when the link closes first, 2 when the link
    /// cannot be opened (or is a recording), 3 when the kernel speaks an
    /// incompatible protocol (or one older than 1.2, or one that takes no
    /// commands), when its listing is incomplete twice, or when a program's
    /// totals are not the sums of its heaps and sheds.
    Ps(PsArgs),
    /// Dump the page tables of the kernel's space (default) or a process's,
    /// as coalesced ranges like Linux's kernel_page_tables, with an audit
    /// (W+X pages, user pages in the kernel half, user pages outside their
    /// VMA or beyond its protection, kernel-half entries not the kernel's).
    ///
    /// One range a line: start-end, size, page size, physical address,
    /// flags as columns (RW/ro, USR/ker, NX/x, GLB, pwt, pcd, pat), region
    /// or VMA kind, dirty pages. --json prints {"space": "kernel" or PID,
    /// "root", "ranges": [{"start", "end" (exclusive), "phys", "page_size",
    /// "writable", "user", "nx", "global", "pwt", "pcd", "pat", "pages",
    /// "dirty_pages", "region"}], "audit": [{"kind", "start", "end",
    /// "what"}], "pages": [4K, 2M, 1G]}; -o saves that JSON as a snapshot
    /// for `mmtop diff`.
    ///
    /// Exit status: 0 when the dump arrived, 5 when --pid names no process
    /// with an address space, 1 on timeout, 2 when the link cannot be
    /// opened or FILE cannot be written, 3 when the kernel speaks an
    /// incompatible protocol (not 2.x).
    Ptdump(PtdumpArgs),
    /// Compare two page-table snapshots (files from `mmtop ptdump -o`, or
    /// `live` for a dump taken now with --connect) range by range: added,
    /// removed, changed (end, frame, page size, flags or region).
    ///
    /// Exit status, like diff(1): 0 when they are the same, 1 when they
    /// differ, 2 on bad input (a missing or malformed file, no --connect
    /// for `live`).
    Diff(DiffArgs),
    /// Set the kernel's log level (0 error, 1 warn, 2 info, 3 debug): what
    /// `Log` messages it sends. Prints the settings now in force.
    ///
    /// Exit status: 0 when the kernel confirmed, 1 on timeout, 2 when the
    /// link cannot be opened, 3 when the kernel speaks an incompatible
    /// protocol (not 2.x).
    Loglevel(LoglevelArgs),
    /// Choose the classes of events the kernel streams, for links too slow
    /// for all of them: a comma-separated list of page, map, heap, fault,
    /// process; or all, none. Its counters count every class either way.
    ///
    /// Exit status as for `loglevel`; 2 also for an unknown class.
    Events(EventsArgs),
    /// Leaks: with --scan, the kernel leak scan (kernel-heap blocks nothing
    /// points to, each with its age, first bytes and named call site, new
    /// or confirmed by the previous scan); with --pid, the heap blocks that
    /// live program holds, by heap and key, with counts, bytes, the lowest
    /// address and the oldest block's age (what would leak if it ended now,
    /// so a key that keeps growing shows); with neither, both, for every
    /// program. --json prints {"kernel": {"status", "min_age_ms", "blocks",
    /// "untraced", "scanned_bytes", "duration_us", "leaks": [{"addr",
    /// "size", "age_ms", "caller", "symbol", "confirmed", "first_bytes",
    /// "stack": [{"addr", "symbol"}]}]}, "processes": [{"pid", "name",
    /// "keys": [{"heap_id", "key", "blocks", "bytes", "first_addr",
    /// "oldest_age_ms"}]}]} ("kernel" is null without a scan).
    ///
    /// Exit status: 0 when no leak was reported, 6 when the scan reported
    /// one, 5 when --pid names no live program, 1 on timeout, when the scan
    /// could not run or when a damaged header cut a walk short, 2 when the
    /// link cannot be opened, 3 for a protocol other than 2.x.
    Leaks(LeaksArgs),
    /// The TUI, also what `mmtop` alone (or with only --connect) opens:
    /// processes, one process, physical memory, page tables, the event log
    /// and leaks, live; it reconnects when the link drops.
    ///
    /// Keys: q or Ctrl-C quit, Tab or 1-6 switch views, ? help. On a
    /// recording (--connect file:FILE): space pauses the replay, + and -
    /// double and halve its speed.
    Top(TopArgs),
    /// Save the kernel's stream with host timestamps, for replay with
    /// --connect file:FILE (the TUI, log and every other reader).
    ///
    /// Sends Resync first (repeated until the Hello arrives); the recording
    /// starts at the kernel's Hello. Stops at --count messages, at
    /// --timeout, or when the link closes.
    ///
    /// Format (version 1): the 12-byte line "mmtop-rec 1\n", then records
    /// back to back: u64 little-endian microseconds since the Hello, u32
    /// little-endian length, that many bytes exactly as read from the link
    /// (the kernel's COBS frames, unchanged; a frame may span records). A
    /// file without the magic is replayed as raw bytes; a record cut short
    /// at the end is reported after the whole ones are replayed.
    ///
    /// Exit status: 0 when --count messages were recorded, or when the link
    /// closes or --timeout ends a run without --count; 1 on timeout (or a
    /// closed link) before the Hello or before --count messages; 2 when the
    /// link cannot be opened (or is a recording) or FILE cannot be written;
    /// 3 when the kernel speaks an incompatible protocol.
    Record(RecordArgs),
}

/// `mmtop record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The recording to write (replaced if it exists).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: std::path::PathBuf,
    /// Stop after N messages (the Hello included).
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds in all (fractions allowed).
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
}

/// Replaying a recording (`--connect file:FILE` in a recording format).
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Replay speed of a recording: 1 as recorded, 2 twice as fast (default
    /// 1 for the TUI; `log` prints as fast as it reads unless given).
    #[arg(long, value_name = "X", value_parser = crate::link::recording::parse_speed)]
    pub speed: Option<f64>,
    /// Start a recording's replay at this time since its Hello (30, 30s,
    /// 250ms, 2m): earlier messages are applied at once (TUI) or skipped
    /// (log).
    #[arg(long, value_name = "TIME", value_parser = crate::link::recording::parse_position)]
    pub at: Option<Duration>,
}

/// `mmtop top` (and `mmtop` alone).
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The kernel's COM1, as for the other commands; default $MMTOP_SOCK
    /// (an address, or the path of a unix socket), else
    /// unix:target/com1.sock.
    #[arg(short = 'c', long = "connect", value_name = "ADDR")]
    pub connect: Option<Address>,
    /// The kernel ELF that names the callers in event lines (default
    /// target/kernel.elf when it exists); used only once the kernel's
    /// Hello confirms it.
    #[arg(long, value_name = "PATH")]
    pub elf: Option<std::path::PathBuf>,
    /// Replay of a recording.
    #[command(flatten)]
    pub replay: ReplayArgs,
}

/// `mmtop ptdump`.
#[derive(Debug, Args)]
pub struct PtdumpArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The process whose tables to dump (default: the kernel's, pid 0).
    #[arg(short = 'p', long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Print the snapshot as one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// Also save the snapshot (JSON) to FILE.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// How long to wait for the kernel's Hello and dump, in seconds, in all.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub timeout: Duration,
}

/// `mmtop loglevel`.
#[derive(Debug, Args)]
pub struct LoglevelArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// 0 error, 1 warn, 2 info, 3 debug.
    #[arg(value_parser = clap::value_parser!(u8).range(0..=3))]
    pub level: u8,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the kernel's answer, in seconds.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
}

/// `mmtop events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// page,map,heap,fault,process (any of them), all or none.
    pub classes: String,
    /// Print the settings as JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the kernel's answer, in seconds.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
}

/// `mmtop leaks`.
#[derive(Debug, Args)]
pub struct LeaksArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only this program's blocks in use (with --scan: and the scan).
    #[arg(short = 'p', long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Scan the kernel heap for blocks nothing points to (without --pid:
    /// only that; with neither, both the scan and every program).
    #[arg(short = 's', long)]
    pub scan: bool,
    /// Blocks younger than this are not reported by the scan.
    #[arg(long, value_name = "MS", default_value_t = probe_proto::DEFAULT_MIN_AGE_MS)]
    pub min_age: u32,
    /// The kernel ELF that names call sites (default target/kernel.elf
    /// when it exists); used only once the kernel's Hello confirms it.
    #[arg(long, value_name = "PATH")]
    pub elf: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the answers, in seconds, in all.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub timeout: Duration,
}

/// `mmtop diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first snapshot, or `live`.
    pub first: std::path::PathBuf,
    /// The second snapshot, or `live`.
    pub second: std::path::PathBuf,
    /// Where the kernel is, for `live`.
    #[arg(short = 'c', long = "connect", value_name = "ADDR")]
    pub connect: Option<Address>,
    /// For `live`: the process (default: the other snapshot's space).
    #[arg(short = 'p', long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Print {"added", "removed", "changed": [{"before", "after"}]}.
    #[arg(long)]
    pub json: bool,
    /// For `live`: how long to wait for the dump, in seconds.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "10")]
    pub timeout: Duration,
}

/// Where to connect, shared by every subcommand.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The kernel's COM1: unix:PATH, tcp:HOST:PORT, /dev/ttyX[@BAUD]
    /// (default 115200 baud; a pty works too) or file:PATH (a recording).
    #[arg(short = 'c', long = "connect", value_name = "ADDR")]
    pub address: Address,
}

/// `mmtop log`.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// One JSON object per line, with a "type" field naming the message.
    #[arg(long)]
    pub json: bool,
    /// Do not ask the kernel for a fresh Hello and snapshot on connecting.
    #[arg(long)]
    pub no_resync: bool,
    /// Exit after printing N messages.
    #[arg(short = 'n', long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after SECS seconds in all (fractions allowed).
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs)]
    pub timeout: Option<Duration>,
    /// The kernel ELF whose symbols name callers and instruction pointers
    /// (default target/kernel.elf when it exists); used only once the
    /// kernel's Hello confirms it is the running build.
    #[arg(long, value_name = "PATH")]
    pub elf: Option<std::path::PathBuf>,
    /// Replay of a recording.
    #[command(flatten)]
    pub replay: ReplayArgs,
}

/// `mmtop ping`.
#[derive(Debug, Args)]
pub struct PingArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// How long to wait for the pong, in seconds.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
}

/// `mmtop check` and `mmtop stats`: one request, one answer.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print the answer as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the kernel's Hello and answer, in seconds, in all.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
}

/// `mmtop ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Where the kernel is.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Only this process, with its heaps, sheds and VMAs; -1 means every
    /// program, as `checkMemory(-1)` does.
    #[arg(
        short = 'p',
        long,
        value_name = "PID",
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-1..=i64::from(u32::MAX))
    )]
    pub pid: Option<i64>,
    /// Print exactly the checkMemory object, as one line of JSON.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the kernel's Hello and listing, in seconds, in all.
    #[arg(short = 't', long, value_name = "SECS", value_parser = parse_secs, default_value = "5")]
    pub timeout: Duration,
}

impl PsArgs {
    /// The one process asked for; `None` for every program (no `--pid`, or
    /// `--pid -1`).
    pub fn process(&self) -> Option<u32> {
        self.pid.and_then(|p| u32::try_from(p).ok())
    }
}

/// Parses a non-negative number of seconds, fractions allowed.
pub fn parse_secs(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("'{s}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs)
        .map_err(|_| format!("'{s}' is not a usable duration (must be >= 0 and finite)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn log_args_parse_address_flags_and_fractional_timeout() {
        let cli = Cli::try_parse_from([
            "mmtop",
            "log",
            "--connect",
            "tcp:localhost:4444",
            "--json",
            "--count",
            "3",
            "--timeout",
            "0.25",
        ])
        .unwrap();
        let Command::Log(args) = cli.command else {
            panic!("expected log");
        };
        assert_eq!(
            args.connect.address,
            Address::Tcp {
                host: "localhost".into(),
                port: 4444
            }
        );
        assert!(args.json && !args.no_resync);
        assert_eq!(args.count, Some(3));
        assert_eq!(args.timeout, Some(Duration::from_millis(250)));
    }

    #[test]
    fn check_and_stats_take_address_json_and_timeout_with_a_default() {
        let cli =
            Cli::try_parse_from(["mmtop", "check", "-c", "unix:/tmp/k.sock", "--json"]).unwrap();
        let Command::Check(args) = cli.command else {
            panic!("expected check");
        };
        assert_eq!(args.connect.address, Address::Unix("/tmp/k.sock".into()));
        assert!(args.json);
        assert_eq!(args.timeout, Duration::from_secs(5));

        let cli =
            Cli::try_parse_from(["mmtop", "stats", "-c", "unix:/tmp/k.sock", "-t", "0.5"]).unwrap();
        let Command::Stats(args) = cli.command else {
            panic!("expected stats");
        };
        assert!(!args.json);
        assert_eq!(args.timeout, Duration::from_millis(500));
    }

    #[test]
    fn ps_takes_an_optional_pid_json_and_timeout() {
        let cli = Cli::try_parse_from(["mmtop", "ps", "-c", "unix:/tmp/k.sock"]).unwrap();
        let Command::Ps(args) = cli.command else {
            panic!("expected ps");
        };
        assert_eq!((args.process(), args.json), (None, false));
        assert_eq!(args.timeout, Duration::from_secs(5));

        let cli = Cli::try_parse_from([
            "mmtop",
            "ps",
            "-c",
            "unix:/tmp/k.sock",
            "--pid",
            "7",
            "--json",
            "-t",
            "2",
        ])
        .unwrap();
        let Command::Ps(args) = cli.command else {
            panic!("expected ps");
        };
        assert_eq!((args.process(), args.json), (Some(7), true));
        assert_eq!(args.timeout, Duration::from_secs(2));

        let cli = Cli::try_parse_from(["mmtop", "ps", "-c", "unix:/k", "--pid", "-1"]).unwrap();
        let Command::Ps(args) = cli.command else {
            panic!("expected ps");
        };
        assert_eq!(args.process(), None, "-1 is every program");
        assert!(Cli::try_parse_from(["mmtop", "ps", "-c", "unix:/k", "--pid", "-2"]).is_err());
        assert!(Cli::try_parse_from(["mmtop", "ps", "-c", "unix:/k", "--pid", "x"]).is_err());
    }

    #[test]
    fn ps_help_documents_its_exit_codes_and_the_json_keys() {
        let help = Cli::command()
            .find_subcommand_mut("ps")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(help.contains("5 when --pid names no"), "{help}");
        assert!(help.contains("\"totalPrograms\""), "{help}");
    }

    #[test]
    fn bad_address_is_a_usage_error_that_lists_the_accepted_forms() {
        let err = Cli::try_parse_from(["mmtop", "log", "--connect", "foo:bar"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("unknown address scheme 'foo:'"), "{text}");
        assert!(text.contains("tcp:HOST:PORT"), "{text}");
    }

    #[test]
    fn negative_or_non_numeric_timeouts_are_refused() {
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
        assert!(parse_secs("inf").is_err());
        assert_eq!(parse_secs("2"), Ok(Duration::from_secs(2)));
    }
}
