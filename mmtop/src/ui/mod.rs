//! The TUI (`mmtop`, `mmtop top`): htop for the kernel's memory.
//!
//! Bottom's shape: one [`AppEvent`] enum fed over one channel by the link's
//! reader thread (`event::spawn_reader`) and a terminal-input thread; a
//! one-second tick from the loop's timeout; [`update`] is plain logic and
//! [`view::render`] a pure function of the [`State`]. The link is reopened
//! every tick while it is down, and the model is kept meanwhile.

pub mod state;
pub mod view;

#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use crossterm::event::Event;

use crate::cli::args::{Cli, TopArgs};
use crate::cli::{EXIT_CONNECT, EXIT_OK, Status};
use crate::event::spawn_counting_link_reader;
use crate::link::recording::{ReplayControl, ReplayOptions};
use crate::link::{Address, Link, LinkWriter};
use crate::symbols::Symbolizer;
pub use state::{Action, AppEvent, State, update};

/// How often the TUI polls the kernel, samples rates and retries a lost link.
pub const TICK: Duration = Duration::from_secs(1);

/// Events handled at most between two redraws, so a flood of telemetry
/// cannot starve the screen (or the keys).
const BATCH: usize = 20_000;

/// The address used without `--connect`.
pub const DEFAULT_ADDRESS: &str = "unix:target/com1.sock";

/// The arguments with `top` inserted when no subcommand is named, so that
/// `mmtop` and `mmtop --connect ADDR` open the TUI.
pub fn default_to_top(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut args: Vec<OsString> = args.into_iter().collect();
    let names: Vec<String> = Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .chain(["help".to_owned()])
        .collect();
    let named = args.get(1).is_some_and(|a| {
        let a = a.to_string_lossy();
        names.iter().any(|n| *n == a) || ["-h", "--help", "-V", "--version"].contains(&&*a)
    });
    if !named {
        args.insert(args.len().min(1), "top".into());
    }
    args
}

/// `--connect`, else `$MMTOP_SOCK` (an address, or a bare path of a unix
/// socket as the Makefile's `MMTOP_SOCK`), else [`DEFAULT_ADDRESS`].
pub fn resolve_address(
    connect: Option<&Address>,
    env: Option<&str>,
) -> Result<Address, crate::link::AddressError> {
    if let Some(a) = connect {
        return Ok(a.clone());
    }
    match env.filter(|s| !s.is_empty()) {
        Some(s)
            if ["unix:", "tcp:", "file:", "/dev/"]
                .iter()
                .any(|p| s.starts_with(p)) =>
        {
            s.parse()
        }
        Some(path) => Ok(Address::Unix(path.into())),
        None => DEFAULT_ADDRESS.parse(),
    }
}

/// Runs the TUI until `q`.
pub fn run(args: &TopArgs, err: &mut dyn Write) -> Status {
    let env = std::env::var("MMTOP_SOCK").ok();
    let address = resolve_address(args.connect.as_ref(), env.as_deref()).map_err(|e| {
        let _ = writeln!(err, "mmtop: bad $MMTOP_SOCK: {e}");
        EXIT_CONNECT
    })?;
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (tx, rx) = mpsc::channel();
    // Restores the terminal on panic too (ratatui's hook).
    let mut terminal = ratatui::try_init().map_err(|e| {
        let _ = writeln!(err, "mmtop: cannot set up the terminal: {e}");
        EXIT_CONNECT
    })?;
    // The wheel and clicks; turned off again before the terminal is
    // restored, on a panic too (before ratatui's hook restores the rest).
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture);
    let restore = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
        restore(info);
    }));
    if let Ok(size) = terminal.size() {
        let _ = tx.send(AppEvent::Resize(size.width, size.height));
    }
    spawn_input(tx.clone());
    // A recording replays at --speed (default as recorded) from --at.
    let replay = ReplayOptions {
        at: args.replay.at.unwrap_or_default(),
        skip_before: false,
        control: (!address.is_live())
            .then(|| ReplayControl::new(Some(args.replay.speed.unwrap_or(1.0)))),
    };
    let symbols = Symbolizer::new(args.elf.as_deref());
    let result = event_loop(&mut terminal, &address, &replay, color, symbols, &tx, &rx);
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
    result.map_err(|e| {
        let _ = writeln!(err, "mmtop: terminal: {e}");
        EXIT_CONNECT
    })?;
    Ok(EXIT_OK)
}

/// Reads the terminal's keys and resizes into the channel.
fn spawn_input(tx: Sender<AppEvent>) {
    let _ = std::thread::Builder::new()
        .name("mmtop-input".into())
        .spawn(move || {
            while let Ok(event) = crossterm::event::read() {
                let app = match event {
                    Event::Key(k) => AppEvent::Key(k),
                    Event::Resize(w, h) => AppEvent::Resize(w, h),
                    Event::Mouse(m) => AppEvent::Mouse(m),
                    _ => continue,
                };
                if tx.send(app).is_err() {
                    return;
                }
            }
        });
}

/// Opens `address` and starts its reader; the writer, if the link is live.
fn connect(
    address: &Address,
    replay: &ReplayOptions,
    tx: &Sender<AppEvent>,
    bytes: &Arc<AtomicU64>,
) -> Result<Option<LinkWriter>, String> {
    let (reader, writer) = Link::open_with(address, replay)
        .map_err(|e| e.to_string())?
        .split();
    spawn_counting_link_reader(reader, tx.clone(), Some(bytes.clone()))
        .map_err(|e| format!("cannot start the reader: {e}"))?;
    Ok(writer)
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    address: &Address,
    replay: &ReplayOptions,
    color: bool,
    symbols: Symbolizer,
    tx: &Sender<AppEvent>,
    rx: &Receiver<AppEvent>,
) -> std::io::Result<()> {
    let mut state = State::new(address.to_string(), color);
    state.symbols = symbols;
    state.replay = replay.control.clone();
    let mut writer = None;
    let mut next_tick = Instant::now();
    // A recording is read once; only a live link is worth reopening.
    let live = !matches!(address, Address::File(_));
    let mut first = true;
    // Bytes the reader threads read, taken each tick for the link rate.
    let bytes = Arc::new(AtomicU64::new(0));
    loop {
        terminal.draw(|f| view::render(f, &state))?;
        let mut event = match rx.recv_timeout(next_tick.saturating_duration_since(Instant::now())) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        for _ in 0..BATCH {
            let e = match event.take() {
                Some(e) => e,
                None if Instant::now() >= next_tick => {
                    next_tick += TICK;
                    if Instant::now() > next_tick {
                        next_tick = Instant::now() + TICK; // Slept through ticks.
                    }
                    if !matches!(state.link, state::LinkState::Up) && (live || first) {
                        first = false;
                        let connected = match connect(address, replay, tx, &bytes) {
                            Ok(w) => {
                                writer = w;
                                AppEvent::Connected
                            }
                            Err(why) => AppEvent::ConnectFailed(why),
                        };
                        if apply(&mut state, connected, &mut writer) {
                            return Ok(());
                        }
                    }
                    let read = AppEvent::LinkBytes(bytes.swap(0, Ordering::Relaxed));
                    if apply(&mut state, read, &mut writer) {
                        return Ok(());
                    }
                    AppEvent::Tick
                }
                None => match rx.try_recv() {
                    Ok(e) => e,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                },
            };
            if apply(&mut state, e, &mut writer) {
                return Ok(());
            }
        }
    }
}

/// Updates `state` with `event` and carries out its actions; true to quit.
fn apply(state: &mut State, event: AppEvent, writer: &mut Option<LinkWriter>) -> bool {
    for action in update(state, event) {
        match action {
            Action::Quit => return true,
            Action::Send(msg) => {
                // A failed send means the link is going; the reader's
                // Closed will say so.
                if let Some(w) = writer.as_mut() {
                    let _ = w.send(&msg);
                }
            }
        }
    }
    false
}
