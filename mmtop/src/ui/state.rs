//! The TUI's model and `update`: plain logic, no terminal and no clock.
//!
//! Every input (a link event, a key, a one-second tick, a (re)connection)
//! is one [`AppEvent`]; [`update`] folds it into [`State`] and returns the
//! [`Action`]s the runner carries out (commands to send, quitting).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use probe_proto::{
    CheckEnd, CheckFinding, DEFAULT_MIN_AGE_MS, FaultResolution, FrameCheck, FrameOwner, HeapBlock,
    HeapCheck, HeapEvent, HostMsg, KERNEL_PID, KernelLeak, Leak, LeakScanEnd, LeaksEnd,
    MemoryStats, OwnerMapEnd, PtAudit, PtDumpEnd, PtRange, Version,
};

use crate::Msg;
use crate::cli::ptdump::{Diff, Snapshot};
use crate::decode::DecodeError;
use crate::event::LinkEvent;
use crate::format::Format;
use crate::link::recording::ReplayControl;
use crate::procs::{ListingBuilder, Program, is_listing};
use crate::symbols::Symbolizer;

/// Lines of the event log kept in memory.
pub const EVENT_LOG_CAP: usize = 5000;
/// Samples (one per tick) kept for the sparklines.
pub const HISTORY: usize = 240;
/// Ticks without a message after which a live link is called stalled.
pub const STALL_TICKS: u32 = 5;
/// Leak reports of ended heaps (`Leak` messages) kept for the leaks view.
pub const EXITED_LEAKS_CAP: usize = 200;
/// Heap allocations the detail view lists for its process.
pub const RECENT_ALLOCS: usize = 16;
/// Heap allocations of every process kept for it, newest last: one ring
/// written in order is cheaper per event than a ring per process.
pub const RECENT_ALLOCS_SEEN: usize = 1024;
/// The first protocol version with the owner map.
pub const OWNER_MAP_SINCE: Version = Version { major: 2, minor: 1 };
/// Zoom levels of the physical map: each doubles the detail.
pub const MAX_ZOOM: u8 = 12;
/// The first protocol version with the kernel leak scan.
pub const LEAK_SCAN_SINCE: Version = Version { major: 2, minor: 0 };

/// The views, in the order of their number keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// One row per program (the default).
    Processes,
    /// One program: heaps and VMAs.
    Detail,
    /// Frames by owner and the last check.
    Physical,
    /// The last page-table dump.
    PageTables,
    /// The live event log.
    Events,
    /// The kernel leak scan and the programs' blocks in use by key.
    Leaks,
}

impl View {
    /// Every view, in number-key order.
    pub const ALL: [View; 6] = [
        View::Processes,
        View::Detail,
        View::Physical,
        View::PageTables,
        View::Events,
        View::Leaks,
    ];

    /// The view's title, as its tab and heading show it.
    pub const fn title(self) -> &'static str {
        match self {
            View::Processes => "Processes",
            View::Detail => "Process detail",
            View::Physical => "Physical memory",
            View::PageTables => "Page tables",
            View::Events => "Events",
            View::Leaks => "Leaks",
        }
    }

    /// The view's name on the tab line.
    pub const fn short_title(self) -> &'static str {
        match self {
            View::Detail => "Detail",
            View::Physical => "Physical",
            v => v.title(),
        }
    }

    /// The tab-line text before the first tab.
    pub const TABS_PREFIX: &'static str = "mmtop ";

    /// The view whose tab is at `column` of the tab line.
    pub fn at_tab_column(column: u16) -> Option<View> {
        let mut x = View::TABS_PREFIX.len();
        for (i, v) in View::ALL.iter().enumerate() {
            // `N:Title` then a space, as the tab line draws it.
            let width = format!("{}:{}", i + 1, v.short_title()).chars().count();
            if (x..x + width).contains(&usize::from(column)) {
                return Some(*v);
            }
            x += width + 1;
        }
        None
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }
}

/// The columns of the processes table that can be sorted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// Process id.
    Pid,
    /// Program name.
    Name,
    /// Scheduling state.
    State,
    /// Number of heaps.
    Heaps,
    /// Total heap size.
    Size,
    /// Heap bytes used.
    Used,
    /// Heap bytes free.
    Free,
    /// Used / size.
    PctUsed,
    /// Number of sheds.
    Sheds,
    /// Number of VMAs.
    Vmas,
    /// Resident frames.
    Resident,
    /// Page faults taken (every kind).
    Faults,
    /// Heap blocks in use.
    Blocks,
    /// Heap blocks reported leaked.
    Leaked,
}

impl SortKey {
    /// Every column, left to right.
    pub const ALL: [SortKey; 14] = [
        SortKey::Pid,
        SortKey::Name,
        SortKey::State,
        SortKey::Heaps,
        SortKey::Size,
        SortKey::Used,
        SortKey::Free,
        SortKey::PctUsed,
        SortKey::Sheds,
        SortKey::Vmas,
        SortKey::Resident,
        SortKey::Faults,
        SortKey::Blocks,
        SortKey::Leaked,
    ];

    /// The column's header.
    pub const fn header(self) -> &'static str {
        match self {
            SortKey::Pid => "PID",
            SortKey::Name => "NAME",
            SortKey::State => "STATE",
            SortKey::Heaps => "HEAPS",
            SortKey::Size => "SIZE",
            SortKey::Used => "USED",
            SortKey::Free => "FREE",
            SortKey::PctUsed => "%USE",
            SortKey::Sheds => "SHEDS",
            SortKey::Vmas => "VMAS",
            SortKey::Resident => "RSS",
            SortKey::Faults => "FLTS",
            SortKey::Blocks => "BLKS",
            SortKey::Leaked => "LEAK",
        }
    }

    fn next(self) -> SortKey {
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[(i + 1) % SortKey::ALL.len()]
    }
}

/// Used heap bytes of `p` in per mille of its heap size (0 without heaps).
pub fn used_permille(p: &Program) -> u64 {
    let i = &p.info;
    i.total_heap_used
        .saturating_mul(1000)
        .checked_div(i.total_heap_size)
        .unwrap_or(0)
}

/// Heap blocks in use in `p`'s heaps, from the listing.
pub fn blocks_in_use(p: &Program) -> u64 {
    p.heaps.iter().map(|h| h.used_blocks).sum()
}

/// Page faults of one process since the TUI started listening, by how the
/// kernel resolved them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// A fresh zeroed frame backed the page.
    pub demand: u64,
    /// Copy-on-write: a private copy, or the page made writable in place.
    pub cow: u64,
    /// The stack grew down.
    pub stack: u64,
    /// No VMA allowed it: the process was killed.
    pub killed: u64,
}

impl FaultCounts {
    /// Counts one fault.
    pub fn add(&mut self, how: FaultResolution) {
        let n = match how {
            FaultResolution::Demand => &mut self.demand,
            FaultResolution::CopyOnWrite | FaultResolution::CowReuse => &mut self.cow,
            FaultResolution::StackGrowth => &mut self.stack,
            FaultResolution::Killed => &mut self.killed,
        };
        *n += 1;
    }

    /// Faults of every kind.
    pub fn total(&self) -> u64 {
        self.demand + self.cow + self.stack + self.killed
    }
}

/// Blocks reported leaked (`Leak` messages) by one process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leaked {
    /// Blocks.
    pub blocks: u64,
    /// Their payload bytes.
    pub bytes: u64,
}

/// Where the link stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not yet connected.
    Connecting,
    /// Connected; the reader thread is running.
    Up,
    /// Closed or never opened; the runner reconnects every tick.
    Lost(String),
}

/// The last consistency check asked for with `c`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Still waiting for its last message.
    pub pending: bool,
    /// The frame bitmap's result.
    pub frame: Option<FrameCheck>,
    /// The kernel heap's result.
    pub heap: Option<HeapCheck>,
    /// Inconsistencies between frames and mappings.
    pub findings: Vec<CheckFinding>,
    /// The mapping check's verdict.
    pub end: Option<CheckEnd>,
}

/// The last page-table dump asked for with `p`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PtDump {
    /// Still waiting for its `PtDumpEnd`.
    pub pending: bool,
    /// The space dumped (0: the kernel's).
    pub pid: u32,
    /// Its ranges, in address order.
    pub ranges: Vec<PtRange>,
    /// Its audit findings.
    pub audits: Vec<PtAudit>,
    /// Its summary.
    pub end: Option<PtDumpEnd>,
    /// What changed since the previous whole dump of the same space
    /// (`None`: this is its first), with that dump's time.
    pub diff: Option<(u64, Diff)>,
}

/// One leak of a kernel leak scan, its call site named when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRow {
    /// The leak as the kernel reported it.
    pub leak: KernelLeak,
    /// Its call site: the first frame outside the allocator (0 when no
    /// call site was recorded).
    pub site: u64,
    /// The call site's name, when the ELF is the running kernel's.
    pub symbol: Option<String>,
}

/// The leaks view's model: the last kernel leak scan (`s`), the live
/// programs' blocks in use by key (asked for with it), and the blocks
/// ended heaps left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeakReport {
    /// A scan was asked for and its `LeakScanEnd` has not come.
    pub scan_pending: bool,
    /// The last scan's leaks, in the kernel's order.
    pub leaks: Vec<LeakRow>,
    /// The last scan's verdict.
    pub end: Option<LeakScanEnd>,
    /// Blocks in use were asked for and their `LeaksEnd` has not come.
    pub blocks_pending: bool,
    /// The live programs' blocks in use, one entry per heap and key.
    pub blocks: Vec<Leak>,
    /// The end of that answer.
    pub blocks_end: Option<LeaksEnd>,
    /// Blocks left when a heap went away (exit or `free_memory`), oldest
    /// first, at most [`EXITED_LEAKS_CAP`].
    pub exited: VecDeque<Leak>,
}

/// One heap allocation seen in the event stream, its caller named when
/// the event line was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentAlloc {
    /// The `HeapAlloc` event.
    pub event: HeapEvent,
    /// The caller's name, when the ELF is the running kernel's.
    pub caller: Option<String>,
}

/// One heap's blocks as its last walk gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapMap {
    /// The blocks in address order.
    pub blocks: Vec<HeapBlock>,
    /// The walk met only intact headers and the heap existed.
    pub complete: bool,
    /// The heap changed while it was walked: the kernel walks a batch at a
    /// time, and blocks seen twice or overlapping were dropped.
    pub changed: bool,
}

impl HeapMap {
    /// The largest free block's payload bytes.
    pub fn largest_free(&self) -> u64 {
        self.free_blocks().map(|b| b.size).max().unwrap_or(0)
    }

    /// Free blocks.
    pub fn free_blocks(&self) -> impl Iterator<Item = &HeapBlock> {
        self.blocks.iter().filter(|b| !b.used)
    }

    /// External fragmentation in per mille: the share of free bytes
    /// outside the largest free block (0: all free space in one block).
    pub fn fragmentation_permille(&self) -> u64 {
        let free: u64 = self.free_blocks().map(|b| b.size).sum();
        free.saturating_sub(self.largest_free())
            .saturating_mul(1000)
            .checked_div(free)
            .unwrap_or(0)
    }
}

/// The heap walks of the detail view's process, asked for when it opens
/// and again every tick while it is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeapWalks {
    /// The process walked.
    pub pid: u32,
    /// Each heap's last complete walk, by heap id.
    pub done: BTreeMap<u32, HeapMap>,
    /// Walks under way: the blocks so far, by heap id.
    incoming: BTreeMap<u32, Vec<HeapBlock>>,
}

impl HeapWalks {
    /// Whether a walk is still awaited.
    pub fn pending(&self) -> bool {
        !self.incoming.is_empty()
    }
}

/// Frames in a row with one owner (`None`: free), from the owner map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerSpan {
    /// The first frame's number.
    pub start: u64,
    /// How many frames.
    pub frames: u64,
    /// Who holds them.
    pub owner: Option<FrameOwner>,
}

/// The physical view's map of frames by owner, asked for when the view
/// opens and each tick while it is shown; `z`/`x` zoom, ←/→ pan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerMap {
    /// A map was asked for and its `OwnerMapEnd` has not come.
    pub pending: bool,
    /// The last whole map, in frame order.
    pub spans: Vec<OwnerSpan>,
    /// Its end: extent and totals.
    pub end: Option<OwnerMapEnd>,
    /// Zoom level: each level halves the frames a cell stands for.
    pub zoom: u8,
    /// The frame at the centre of a zoomed-in map.
    pub centre: u64,
    /// The map being received.
    incoming: Vec<OwnerSpan>,
}

impl OwnerMap {
    /// Frames the whole map covers.
    pub fn total_frames(&self) -> u64 {
        self.end.map_or(0, |e| e.total_frames)
    }

    /// The frames a map of `cells` cells shows at the current zoom, and
    /// the frames each cell stands for: `(first, per_cell)`.
    pub fn window(&self, cells: u64) -> (u64, u64) {
        let total = self.total_frames();
        let cells = cells.max(1);
        let per_cell = (total.div_ceil(cells) >> self.zoom).max(1);
        let span = per_cell * cells;
        // A centre clamped to the first half-window means the start: the
        // cells' rounding must not shift the window off frame 0.
        let first = if self.centre <= self.shown() / 2 {
            0
        } else {
            self.centre.saturating_sub(span / 2)
        };
        let first = first.min(total.saturating_sub(span));
        (first, per_cell)
    }
}

/// One line of the event log with what the events filter matches on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The line as `mmtop log` prints it; its first word is the kind.
    pub text: String,
    /// The process the message is about, if any.
    pub pid: Option<u32>,
}

impl LogLine {
    /// The message kind: the line's first word (`heap_alloc`, ...).
    pub fn kind(&self) -> &str {
        self.text.split(' ').next().unwrap_or("")
    }
}

/// The events view's filter: space-separated words, a number or `pid=N`
/// for a process, any other word for the start of a kind (`heap` matches
/// `heap_alloc` and `heap_free`). A line matches when it is about one of
/// the pids (if any are given) and of one of the kinds (if any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// The text as typed.
    pub text: String,
    pids: Vec<u32>,
    kinds: Vec<String>,
}

impl EventFilter {
    /// The filter `text` spells.
    pub fn parse(text: &str) -> EventFilter {
        let mut f = EventFilter {
            text: text.to_owned(),
            ..EventFilter::default()
        };
        for word in text.split_whitespace() {
            let number = word.strip_prefix("pid=").unwrap_or(word);
            match number.parse() {
                Ok(pid) => f.pids.push(pid),
                Err(_) => f.kinds.push(word.to_lowercase()),
            }
        }
        f
    }

    /// Whether it lets every line through.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.kinds.is_empty()
    }

    /// Whether `line` passes.
    pub fn matches(&self, line: &LogLine) -> bool {
        (self.pids.is_empty() || line.pid.is_some_and(|p| self.pids.contains(&p)))
            && (self.kinds.is_empty()
                || self
                    .kinds
                    .iter()
                    .any(|k| line.kind().starts_with(k.as_str())))
    }
}

/// The process a message is about, for the events filter.
fn msg_pid(msg: &Msg) -> Option<u32> {
    match msg {
        Msg::HeapAlloc(e) | Msg::HeapFree(e) => Some(e.pid),
        Msg::HeapError(e) => Some(e.pid),
        Msg::PageAlloc(e) | Msg::PageFree(e) => match e.owner {
            FrameOwner::Process(pid) => Some(pid),
            _ => None,
        },
        Msg::PageFault(f) => Some(f.pid),
        Msg::ProcessSpawn(e) | Msg::ProcessRename(e) => Some(e.pid),
        Msg::ProcessExit(e) => Some(e.pid),
        Msg::Leak(l) | Msg::BlocksInUse(l) => Some(l.pid),
        Msg::HeapBlock(b) => Some(b.pid),
        Msg::HeapWalkEnd(e) => Some(e.pid),
        Msg::HeapCheck(c) => Some(c.pid),
        Msg::PtRange(r) => Some(r.space),
        Msg::PtAudit(a) => Some(a.space),
        Msg::PtDumpEnd(e) => Some(e.space),
        _ => None,
    }
}

/// Everything the TUI knows; rendering is a function of this alone.
#[derive(Debug)]
pub struct State {
    /// The address shown in the status line.
    pub address: String,
    /// Whether colours may be used (`NO_COLOR` unset).
    pub color: bool,
    /// The link.
    pub link: LinkState,
    /// The kernel's protocol version, once it said Hello on this connection.
    pub version: Option<Version>,
    /// The view on screen.
    pub view: View,
    /// The help overlay is shown.
    pub help: bool,
    /// The last process listing, in the kernel's order.
    pub programs: Vec<Program>,
    /// Whether that listing had every part the kernel announced.
    pub listing_complete: bool,
    listing: ListingBuilder,
    /// The last memory snapshot.
    pub stats: Option<MemoryStats>,
    /// Ticks since a listing was asked for that has not come yet.
    pub listing_asked: Option<u32>,
    /// The selected row's pid (processes view) and the detail view's process.
    pub selected: Option<u32>,
    /// The processes table's sort column.
    pub sort: SortKey,
    /// Sort descending.
    pub reverse: bool,
    /// Programs whose name contains this are shown.
    pub filter: String,
    /// Keys go to the filter.
    pub editing_filter: bool,
    /// The event log, oldest first.
    pub log: VecDeque<LogLine>,
    /// The events view shows only the lines this lets through (`f`).
    pub event_filter: EventFilter,
    /// Keys go to the events filter.
    pub editing_event_filter: bool,
    /// Lines ever added to the log.
    pub log_total: u64,
    /// When paused: `log_total` at the pause; the view shows no later line.
    pub paused_at: Option<u64>,
    /// Lines scrolled back from the newest (event log, dumps, detail).
    pub scroll: usize,
    /// Messages received this tick.
    pub msgs_this_tick: u64,
    /// Messages per second over the last tick.
    pub rate: u64,
    /// Messages ever received.
    pub msgs_total: u64,
    /// Bytes read from the link this tick.
    pub bytes_this_tick: u64,
    /// Bytes per second over the last tick.
    pub byte_rate: u64,
    /// Page faults by pid, counted from `PageFault` events.
    pub faults: HashMap<u32, FaultCounts>,
    /// Blocks reported leaked by pid (`Leak` messages: a heap went away
    /// with blocks in it).
    pub leaked: HashMap<u32, Leaked>,
    /// Programs that ended with blocks still allocated (`ProcessExit`).
    pub exited_leaking: u64,
    /// Blocks those programs left.
    pub exited_leaked_blocks: u64,
    /// Events per second, one sample per tick, oldest first.
    pub rate_history: VecDeque<u64>,
    /// Used frames, one sample per tick, oldest first.
    pub used_history: VecDeque<u64>,
    /// Frames that decoded to nothing.
    pub bad_frames: u64,
    /// Messages the kernel reported dropped.
    pub dropped: u64,
    /// Ticks since the last message.
    pub ticks_since_msg: u32,
    /// The last check.
    pub check: CheckReport,
    /// The last page-table dump.
    pub ptdump: PtDump,
    /// The last whole dump of each space, with its time: what the next
    /// one is compared with.
    pub pt_snapshots: HashMap<u32, (u64, Snapshot)>,
    /// The page-tables view shows the diff rather than the dump (`d`).
    pub pt_show_diff: bool,
    /// The leaks view's model.
    pub leaks: LeakReport,
    /// The detail view's heap walks.
    pub walks: HeapWalks,
    /// The physical view's owner map.
    pub owner_map: OwnerMap,
    /// The last [`RECENT_ALLOCS_SEEN`] heap allocations, oldest first.
    pub recent_allocs: VecDeque<RecentAlloc>,
    /// The terminal's columns and rows, for placing mouse clicks.
    pub screen: (u16, u16),
    /// Pause and speed when the link is a recording being replayed.
    pub replay: Option<Arc<ReplayControl>>,
    /// Names for the addresses in event lines (off without an ELF).
    pub symbols: Symbolizer,
}

/// One input of the TUI.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "moved once through a channel, like the LinkEvent it wraps"
)]
pub enum AppEvent {
    /// Something from the link's reader thread.
    Link(LinkEvent),
    /// A link was (re)opened and its reader started.
    Connected,
    /// Opening the link failed; the runner tries again next tick.
    ConnectFailed(String),
    /// A key was pressed.
    Key(KeyEvent),
    /// One second passed.
    Tick,
    /// The terminal's size: at start and whenever it changes.
    Resize(u16, u16),
    /// The mouse: the wheel scrolls, a click picks a tab or a process.
    Mouse(MouseEvent),
    /// Bytes read from the link since the last of these (sent before each
    /// tick).
    LinkBytes(u64),
}

impl From<LinkEvent> for AppEvent {
    fn from(e: LinkEvent) -> Self {
        AppEvent::Link(e)
    }
}

/// What [`update`] asks the runner to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send a command to the kernel (dropped when the link is down).
    Send(HostMsg),
    /// Leave the TUI.
    Quit,
}

impl State {
    /// A model that knows nothing yet.
    pub fn new(address: impl Into<String>, color: bool) -> State {
        State {
            address: address.into(),
            color,
            link: LinkState::Connecting,
            version: None,
            view: View::Processes,
            help: false,
            programs: Vec::new(),
            listing_complete: true,
            listing: ListingBuilder::new(),
            stats: None,
            listing_asked: None,
            selected: None,
            sort: SortKey::Pid,
            reverse: false,
            filter: String::new(),
            editing_filter: false,
            log: VecDeque::new(),
            event_filter: EventFilter::default(),
            editing_event_filter: false,
            log_total: 0,
            paused_at: None,
            scroll: 0,
            msgs_this_tick: 0,
            rate: 0,
            msgs_total: 0,
            bytes_this_tick: 0,
            byte_rate: 0,
            faults: HashMap::new(),
            leaked: HashMap::new(),
            exited_leaking: 0,
            exited_leaked_blocks: 0,
            rate_history: VecDeque::new(),
            used_history: VecDeque::new(),
            bad_frames: 0,
            dropped: 0,
            ticks_since_msg: 0,
            check: CheckReport::default(),
            ptdump: PtDump::default(),
            pt_snapshots: HashMap::new(),
            pt_show_diff: false,
            leaks: LeakReport::default(),
            walks: HeapWalks::default(),
            owner_map: OwnerMap::default(),
            recent_allocs: VecDeque::with_capacity(RECENT_ALLOCS_SEEN),
            screen: (80, 24),
            replay: None,
            symbols: Symbolizer::off(),
        }
    }

    /// Whether the kernel on the link said Hello in `since` or later (the
    /// decoder refuses another major version, so the minor decides).
    pub fn speaks(&self, since: Version) -> bool {
        self.version.is_some_and(|v| v.at_least(since))
    }

    /// The programs the table shows: filtered by name, sorted.
    pub fn rows(&self) -> Vec<&Program> {
        let filter = self.filter.to_lowercase();
        let mut rows: Vec<&Program> = self
            .programs
            .iter()
            .filter(|p| filter.is_empty() || p.info.name.to_lowercase().contains(&filter))
            .collect();
        rows.sort_by(|a, b| {
            let (i, j) = (&a.info, &b.info);
            let order = match self.sort {
                SortKey::Pid => i.pid.cmp(&j.pid),
                SortKey::Name => i.name.cmp(&j.name),
                SortKey::State => i.state.name().cmp(j.state.name()),
                SortKey::Heaps => a.heaps.len().cmp(&b.heaps.len()),
                SortKey::Size => i.total_heap_size.cmp(&j.total_heap_size),
                SortKey::Used => i.total_heap_used.cmp(&j.total_heap_used),
                SortKey::Free => i.total_heap_free.cmp(&j.total_heap_free),
                SortKey::PctUsed => used_permille(a).cmp(&used_permille(b)),
                SortKey::Sheds => a.sheds.len().cmp(&b.sheds.len()),
                SortKey::Vmas => a.vmas.len().cmp(&b.vmas.len()),
                SortKey::Resident => i.resident_frames.cmp(&j.resident_frames),
                SortKey::Faults => self
                    .faults_of(i.pid)
                    .total()
                    .cmp(&self.faults_of(j.pid).total()),
                SortKey::Blocks => blocks_in_use(a).cmp(&blocks_in_use(b)),
                SortKey::Leaked => self
                    .leaked_of(i.pid)
                    .blocks
                    .cmp(&self.leaked_of(j.pid).blocks),
            }
            .then(i.pid.cmp(&j.pid));
            if self.reverse { order.reverse() } else { order }
        });
        rows
    }

    /// The newest [`RECENT_ALLOCS`] allocations of `pid` among those kept,
    /// newest first.
    pub fn recent_allocs_of(&self, pid: u32) -> impl Iterator<Item = &RecentAlloc> {
        self.recent_allocs
            .iter()
            .rev()
            .filter(move |a| a.event.pid == pid)
            .take(RECENT_ALLOCS)
    }

    /// Page faults of `pid` seen so far.
    pub fn faults_of(&self, pid: u32) -> FaultCounts {
        self.faults.get(&pid).copied().unwrap_or_default()
    }

    /// Blocks `pid` was reported to leak.
    pub fn leaked_of(&self, pid: u32) -> Leaked {
        self.leaked.get(&pid).copied().unwrap_or_default()
    }

    /// Index of the selected program among [`State::rows`] (0 when the
    /// selection is filtered out or gone).
    pub fn selected_index(&self, rows: &[&Program]) -> usize {
        self.selected
            .and_then(|pid| rows.iter().position(|p| p.info.pid == pid))
            .unwrap_or(0)
    }

    /// The program the detail view shows, if the listing has it.
    pub fn selected_program(&self) -> Option<&Program> {
        let pid = self.selected?;
        self.programs.iter().find(|p| p.info.pid == pid)
    }

    /// The log lines the events view shows: all up to the pause that
    /// pass the filter.
    pub fn visible_log(&self) -> impl Iterator<Item = &LogLine> {
        let first = self.log_total - self.log.len() as u64;
        let shown = self
            .paused_at
            .map_or(self.log.len(), |at| at.saturating_sub(first) as usize);
        self.log
            .iter()
            .take(shown)
            .filter(|l| self.event_filter.matches(l))
    }

    fn push_log(&mut self, text: String, pid: Option<u32>) {
        if self.log.len() == EVENT_LOG_CAP {
            self.log.pop_front();
        }
        self.log.push_back(LogLine { text, pid });
        self.log_total += 1;
    }

    fn move_selection(&mut self, delta: isize) {
        let rows = self.rows();
        if rows.is_empty() {
            return;
        }
        let at = self.selected_index(&rows) as isize + delta;
        let at = at.clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[at].info.pid);
    }

    /// The pid whose tables `p` dumps: the selected one, else the kernel.
    fn dump_target(&self) -> u32 {
        let rows = self.rows();
        match self.view {
            View::Processes => rows
                .get(self.selected_index(&rows))
                .map_or(KERNEL_PID, |p| p.info.pid),
            _ => self.selected.unwrap_or(KERNEL_PID),
        }
    }
}

/// The requests sent every tick once the kernel has said Hello.
fn poll() -> Vec<Action> {
    vec![
        Action::Send(HostMsg::Processes { pid: -1 }),
        Action::Send(HostMsg::Snapshot),
    ]
}

/// Ticks a listing may take before it is asked for again anyway (one lost
/// with a link that dropped and came back).
pub const LISTING_PATIENCE: u32 = 5;

/// The tick's polls: a listing only once the last one is in (or overdue),
/// so a kernel slower than the tick is not buried in listings that hold
/// up every other request behind them.
fn poll_tick(state: &mut State) -> Vec<Action> {
    match state.listing_asked {
        Some(ticks) if ticks + 1 < LISTING_PATIENCE => {
            state.listing_asked = Some(ticks + 1);
            vec![Action::Send(HostMsg::Snapshot)]
        }
        _ => {
            state.listing_asked = Some(0);
            poll()
        }
    }
}

fn push_sample(history: &mut VecDeque<u64>, value: u64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value);
}

/// Folds `event` into `state`; returns what the runner must do.
pub fn update(state: &mut State, event: AppEvent) -> Vec<Action> {
    match event {
        AppEvent::Link(LinkEvent::Msg(msg)) => on_msg(state, msg),
        AppEvent::Link(LinkEvent::Error(DecodeError::BadFrame(_))) => {
            state.bad_frames += 1;
            Vec::new()
        }
        AppEvent::Link(LinkEvent::Error(e)) => {
            state.push_log(format!("error: {e}"), None);
            Vec::new()
        }
        AppEvent::Link(LinkEvent::Closed { error, .. }) => {
            state.link = LinkState::Lost(match error {
                Some(e) => format!("read failed: {e}"),
                None => "closed by the other side".into(),
            });
            state.version = None;
            state.check.pending = false;
            state.ptdump.pending = false;
            state.leaks.scan_pending = false;
            state.leaks.blocks_pending = false;
            state.walks.incoming.clear();
            state.owner_map.pending = false;
            Vec::new()
        }
        AppEvent::Connected => {
            state.link = LinkState::Up;
            state.version = None;
            state.ticks_since_msg = 0;
            state.listing = ListingBuilder::new();
            state.listing_asked = None;
            vec![Action::Send(HostMsg::Resync)]
        }
        AppEvent::ConnectFailed(why) => {
            state.link = LinkState::Lost(why);
            Vec::new()
        }
        AppEvent::Key(key) => on_key(state, key),
        AppEvent::LinkBytes(n) => {
            state.bytes_this_tick += n;
            Vec::new()
        }
        AppEvent::Tick => {
            state.rate = std::mem::take(&mut state.msgs_this_tick);
            state.byte_rate = std::mem::take(&mut state.bytes_this_tick);
            push_sample(&mut state.rate_history, state.rate);
            if let Some(s) = &state.stats {
                let used = s.total_frames.saturating_sub(s.free_frames);
                push_sample(&mut state.used_history, used);
            }
            state.ticks_since_msg = state.ticks_since_msg.saturating_add(1);
            match (&state.link, state.version) {
                (LinkState::Up, None) => vec![Action::Send(HostMsg::Resync)],
                (LinkState::Up, Some(_)) => {
                    let mut actions = poll_tick(state);
                    if state.view == View::Detail && !state.walks.pending() {
                        actions.extend(walk_heaps(state));
                    }
                    if state.view == View::Physical && !state.owner_map.pending {
                        actions.extend(ask_owner_map(state));
                    }
                    actions
                }
                _ => Vec::new(),
            }
        }
        AppEvent::Resize(w, h) => {
            state.screen = (w, h);
            Vec::new()
        }
        AppEvent::Mouse(m) => on_mouse(state, m),
    }
}

fn on_msg(state: &mut State, msg: Msg) -> Vec<Action> {
    state.msgs_this_tick += 1;
    state.msgs_total += 1;
    state.ticks_since_msg = 0;
    if let Some(listing) = state.listing.push(&msg) {
        state.listing_asked = None;
        state.listing_complete = listing.completeness().is_ok();
        state.programs = listing.programs;
    }
    let mut actions = Vec::new();
    // Answers to the TUI's own polling would flood the log: not logged.
    let mut log = true;
    match &msg {
        Msg::Hello(h) => {
            let first = state.version.is_none();
            state.version = Some(h.version);
            if first {
                state.listing_asked = Some(0);
                actions = poll();
            }
        }
        Msg::MemoryStats(s) => {
            state.stats = Some(*s);
            log = false;
        }
        m if is_listing(m) => log = false,
        Msg::Dropped { count } => state.dropped += *count,
        Msg::FrameCheck(c) if state.check.pending => state.check.frame = Some(*c),
        Msg::HeapCheck(c) if state.check.pending && c.pid == KERNEL_PID => {
            state.check.heap = Some(*c);
        }
        Msg::CheckFinding(f) if state.check.pending => state.check.findings.push(*f),
        Msg::CheckEnd(e) if state.check.pending => {
            state.check.end = Some(*e);
            state.check.pending = false;
        }
        Msg::PtRange(r) if state.ptdump.pending && r.space == state.ptdump.pid => {
            state.ptdump.ranges.push(*r);
        }
        Msg::PtAudit(a) if state.ptdump.pending && a.space == state.ptdump.pid => {
            state.ptdump.audits.push(*a);
        }
        Msg::PtDumpEnd(e) if state.ptdump.pending && e.space == state.ptdump.pid => {
            let d = &mut state.ptdump;
            d.end = Some(*e);
            d.pending = false;
            if e.complete {
                let now = Snapshot::of_dump(d.pid, &d.ranges, &d.audits, e);
                d.diff = state
                    .pt_snapshots
                    .insert(d.pid, (e.ts_us, now.clone()))
                    .map(|(at, before)| (at, Diff::of(&before, &now)));
            }
        }
        Msg::KernelLeak(l) if state.leaks.scan_pending => {
            let (site, symbol) = state.symbols.call_site(&l.stack).unwrap_or((0, None));
            state.leaks.leaks.push(LeakRow {
                leak: *l,
                site,
                symbol,
            });
        }
        Msg::LeakScanEnd(e) if state.leaks.scan_pending => {
            state.leaks.end = Some(*e);
            state.leaks.scan_pending = false;
        }
        Msg::BlocksInUse(b) if state.leaks.blocks_pending => state.leaks.blocks.push(*b),
        Msg::LeaksEnd(e) if state.leaks.blocks_pending && e.pid == -1 => {
            state.leaks.blocks_end = Some(*e);
            state.leaks.blocks_pending = false;
        }
        Msg::HeapBlock(b) if b.pid == state.walks.pid => {
            if let Some(blocks) = state.walks.incoming.get_mut(&b.heap_id) {
                blocks.push(*b);
                log = false;
            }
        }
        Msg::HeapWalkEnd(e) if e.pid == state.walks.pid => {
            if let Some(mut blocks) = state.walks.incoming.remove(&e.heap_id) {
                let received = blocks.len();
                // Later batches are newer: of two reports of an address
                // the last is kept, and a block overlapping the one before
                // it (which moved meanwhile) is dropped.
                blocks.reverse();
                blocks.sort_by_key(|b| b.addr);
                blocks.dedup_by_key(|b| b.addr);
                let mut end = 0;
                blocks.retain(|b| {
                    let keep = b.addr >= end;
                    if keep {
                        end = b.addr.saturating_add(b.size);
                    }
                    keep
                });
                let map = HeapMap {
                    changed: blocks.len() != received,
                    blocks,
                    complete: e.complete,
                };
                state.walks.done.insert(e.heap_id, map);
                log = false;
            }
        }
        Msg::OwnerRuns(r) if state.owner_map.pending => {
            let mut start = r.first_frame;
            for run in r.runs.iter() {
                state.owner_map.incoming.push(OwnerSpan {
                    start,
                    frames: run.frames,
                    owner: run.owner,
                });
                start = start.saturating_add(run.frames);
            }
            log = false;
        }
        Msg::OwnerMapEnd(e) if state.owner_map.pending => {
            let map = &mut state.owner_map;
            map.spans = std::mem::take(&mut map.incoming);
            map.end = Some(*e);
            map.pending = false;
            log = false;
        }
        Msg::PageFault(f) => state.faults.entry(f.pid).or_default().add(f.resolution),
        Msg::ProcessExit(e) if e.leaked_blocks > 0 => {
            state.exited_leaking += 1;
            state.exited_leaked_blocks += e.leaked_blocks;
        }
        Msg::Leak(l) => {
            let leaked = state.leaked.entry(l.pid).or_default();
            leaked.blocks += l.blocks;
            leaked.bytes += l.bytes;
            if state.leaks.exited.len() == EXITED_LEAKS_CAP {
                state.leaks.exited.pop_front();
            }
            state.leaks.exited.push_back(*l);
        }
        _ => {}
    }
    // A warning about the ELF (missing, not the running kernel) goes into
    // the log: the screen is the only place to say it.
    let mut warning = Vec::new();
    state.symbols.observe(&msg, &mut warning);
    for line in String::from_utf8_lossy(&warning).lines() {
        state.push_log(line.to_string(), None);
    }
    if log {
        let notes = state.symbols.annotate(&msg);
        state.push_log(Format::Human.annotated_line(&msg, &notes), msg_pid(&msg));
        if let Msg::HeapAlloc(e) = &msg {
            // The name the line got, if any: no second lookup.
            let caller = notes.into_iter().find(|n| n.field == "caller");
            let recent = &mut state.recent_allocs;
            if recent.len() == RECENT_ALLOCS_SEEN {
                recent.pop_front();
            }
            recent.push_back(RecentAlloc {
                event: *e,
                caller: caller.map(|n| n.symbol),
            });
        }
    }
    actions
}

/// Asks for the whole owner map (zooming is done here, not by the kernel).
fn ask_owner_map(state: &mut State) -> Vec<Action> {
    if !state.speaks(OWNER_MAP_SINCE) {
        return Vec::new();
    }
    state.owner_map.pending = true;
    state.owner_map.incoming.clear();
    vec![Action::Send(HostMsg::OwnerMap {
        first_frame: 0,
        nr_frames: u64::MAX,
    })]
}

impl OwnerMap {
    /// About the frames the map shows at its zoom: 1/2^zoom of them all.
    fn shown(&self) -> u64 {
        (self.total_frames() >> self.zoom).max(1)
    }

    /// Keeps the centre where the window it makes lies inside the map, so
    /// a pan moves what is shown at once.
    fn clamp_centre(&mut self) {
        let half = self.shown() / 2;
        let top = self.total_frames().saturating_sub(half).max(half);
        self.centre = self.centre.clamp(half, top);
    }
}

/// Zooms the owner map in (`+1`) or out (`-1`) around its centre; a
/// window at the start (where it begins: the kernel is there) or the end
/// of memory stays there.
fn zoom(state: &mut State, delta: i8) {
    let map = &mut state.owner_map;
    let half = map.shown() / 2;
    let total = map.total_frames();
    if map.centre <= half {
        map.centre = 0;
    } else if map.centre >= total.saturating_sub(half) {
        map.centre = total;
    }
    map.zoom = map.zoom.saturating_add_signed(delta).min(MAX_ZOOM);
    map.clamp_centre();
}

/// Pans the owner map by `delta` eighths of the frames it shows.
fn pan(state: &mut State, delta: i64) {
    let map = &mut state.owner_map;
    let step = (map.shown() / 8).max(1);
    map.centre = map.centre.saturating_add_signed(delta * step as i64);
    map.clamp_centre();
}

/// Asks for a walk of every heap of the detail view's process.
fn walk_heaps(state: &mut State) -> Vec<Action> {
    let Some(p) = state.selected_program() else {
        return Vec::new();
    };
    let pid = p.info.pid;
    if state.walks.pid == pid && state.walks.pending() {
        // Its answers would mix with those of the walk under way.
        return Vec::new();
    }
    let ids: Vec<u32> = p.heaps.iter().map(|h| h.heap_id).collect();
    if state.walks.pid != pid {
        state.walks = HeapWalks {
            pid,
            ..HeapWalks::default()
        };
    }
    state.walks.done.retain(|id, _| ids.contains(id));
    ids.into_iter()
        .map(|heap_id| {
            state.walks.incoming.insert(heap_id, Vec::new());
            Action::Send(HostMsg::HeapWalk { pid, heap_id })
        })
        .collect()
}

fn on_key(state: &mut State, key: KeyEvent) -> Vec<Action> {
    if key.kind != KeyEventKind::Press {
        return Vec::new();
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c')) {
        return vec![Action::Quit];
    }
    if state.editing_event_filter {
        let mut text = std::mem::take(&mut state.event_filter.text);
        match key.code {
            KeyCode::Char(c) => text.push(c),
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Esc => {
                text.clear();
                state.editing_event_filter = false;
            }
            KeyCode::Enter => state.editing_event_filter = false,
            _ => {}
        }
        state.event_filter = EventFilter::parse(&text);
        state.scroll = 0;
        return Vec::new();
    }
    if state.editing_filter {
        match key.code {
            KeyCode::Char(c) => state.filter.push(c),
            KeyCode::Backspace => {
                state.filter.pop();
            }
            KeyCode::Esc => {
                state.filter.clear();
                state.editing_filter = false;
            }
            KeyCode::Enter => state.editing_filter = false,
            _ => {}
        }
        return Vec::new();
    }
    if state.help {
        match key.code {
            KeyCode::Char('q') => return vec![Action::Quit],
            KeyCode::Char('?') | KeyCode::Esc => state.help = false,
            _ => {}
        }
        return Vec::new();
    }
    let mut actions = Vec::new();
    let before = state.view;
    match key.code {
        KeyCode::Char('q') => actions.push(Action::Quit),
        KeyCode::Char('?') => state.help = true,
        KeyCode::Tab => switch(state, View::ALL[(state.view.index() + 1) % View::ALL.len()]),
        KeyCode::BackTab => {
            let n = View::ALL.len();
            switch(state, View::ALL[(state.view.index() + n - 1) % n]);
        }
        KeyCode::Char(c @ '1'..='6') => switch(state, View::ALL[c as usize - '1' as usize]),
        KeyCode::Up | KeyCode::Char('k') => scroll(state, -1),
        KeyCode::Down | KeyCode::Char('j') => scroll(state, 1),
        KeyCode::PageUp => scroll(state, -10),
        KeyCode::PageDown => scroll(state, 10),
        KeyCode::Enter if state.view == View::Processes => {
            let rows = state.rows();
            if let Some(p) = rows.get(state.selected_index(&rows)) {
                state.selected = Some(p.info.pid);
                switch(state, View::Detail);
            }
        }
        KeyCode::Esc if state.view != View::Processes => switch(state, View::Processes),
        KeyCode::Char('f') if state.view == View::Events => state.editing_event_filter = true,
        KeyCode::Char('d') if state.view == View::PageTables => {
            state.pt_show_diff = !state.pt_show_diff;
            state.scroll = 0;
        }
        KeyCode::Char('z') if state.view == View::Physical => zoom(state, 1),
        KeyCode::Char('x') if state.view == View::Physical => zoom(state, -1),
        KeyCode::Left | KeyCode::Char('h') if state.view == View::Physical => pan(state, -1),
        KeyCode::Right | KeyCode::Char('l') if state.view == View::Physical => pan(state, 1),
        KeyCode::Char('s') if state.view == View::Leaks => actions.extend(start_leak_scan(state)),
        KeyCode::Char('s') => state.sort = state.sort.next(),
        KeyCode::Char('r') => state.reverse = !state.reverse,
        KeyCode::Char('/') => {
            state.editing_filter = true;
            switch(state, View::Processes);
        }
        KeyCode::Char(' ') if state.replay.is_some() => {
            state.replay.iter().for_each(|r| r.toggle_pause());
        }
        KeyCode::Char(c @ ('+' | '=' | '-')) if state.replay.is_some() => {
            state.replay.iter().for_each(|r| r.step_speed(c != '-'));
        }
        KeyCode::Char(' ') if state.view == View::Events => {
            state.paused_at = match state.paused_at {
                Some(_) => None,
                None => Some(state.log_total),
            };
        }
        KeyCode::Char('c') => {
            state.check = CheckReport {
                pending: true,
                ..CheckReport::default()
            };
            actions.push(Action::Send(HostMsg::Check));
        }
        KeyCode::Char('p') | KeyCode::Char('K') => {
            let pid = if key.code == KeyCode::Char('K') {
                KERNEL_PID
            } else {
                state.dump_target()
            };
            state.ptdump = PtDump {
                pending: true,
                pid,
                ..PtDump::default()
            };
            actions.push(Action::Send(HostMsg::PtDump { pid }));
            switch(state, View::PageTables);
        }
        _ => {}
    }
    actions.extend(entered(state, before));
    actions
}

/// What opening a view asks of the kernel, when `before` was another.
fn entered(state: &mut State, before: View) -> Vec<Action> {
    if state.view == before {
        return Vec::new();
    }
    match state.view {
        View::Detail => walk_heaps(state),
        View::Physical if !state.owner_map.pending => ask_owner_map(state),
        _ => Vec::new(),
    }
}

/// Rows above the processes table's first row: tabs, status, totals (3),
/// sparklines (2), title and header.
const PROCESS_ROWS_TOP: u16 = 9;

/// The wheel scrolls as three arrow presses; a left click on the tab line
/// opens that view, on a process selects it, and on the selected one
/// opens its detail.
fn on_mouse(state: &mut State, m: MouseEvent) -> Vec<Action> {
    if state.help || state.editing_filter || state.editing_event_filter {
        return Vec::new();
    }
    let before = state.view;
    match m.kind {
        MouseEventKind::ScrollUp => scroll(state, -3),
        MouseEventKind::ScrollDown => scroll(state, 3),
        MouseEventKind::Down(MouseButton::Left) if m.row == 0 => {
            if let Some(v) = View::at_tab_column(m.column) {
                switch(state, v);
            }
        }
        MouseEventKind::Down(MouseButton::Left)
            if state.view == View::Processes && m.row >= PROCESS_ROWS_TOP =>
        {
            let rows = state.rows();
            // The table scrolls just enough to show the selection (the
            // footer takes the last row).
            let height = usize::from(state.screen.1.saturating_sub(PROCESS_ROWS_TOP + 1)).max(1);
            let offset = (state.selected_index(&rows) + 1).saturating_sub(height);
            let at = offset + usize::from(m.row - PROCESS_ROWS_TOP);
            if let Some(p) = rows.get(at) {
                let pid = p.info.pid;
                if state.selected == Some(pid) {
                    switch(state, View::Detail);
                } else {
                    state.selected = Some(pid);
                }
            }
        }
        _ => {}
    }
    entered(state, before)
}

/// Asks for a kernel leak scan and the programs' blocks in use; nothing
/// when the kernel is older than the scan (the view says so).
fn start_leak_scan(state: &mut State) -> Vec<Action> {
    if !state.speaks(LEAK_SCAN_SINCE) {
        return Vec::new();
    }
    state.leaks.scan_pending = true;
    state.leaks.leaks.clear();
    state.leaks.end = None;
    state.leaks.blocks_pending = true;
    state.leaks.blocks.clear();
    state.leaks.blocks_end = None;
    vec![
        Action::Send(HostMsg::LeakScan {
            min_age_ms: DEFAULT_MIN_AGE_MS,
        }),
        Action::Send(HostMsg::Leaks { pid: -1 }),
    ]
}

fn switch(state: &mut State, view: View) {
    if state.view != view {
        state.view = view;
        state.scroll = 0;
    }
}

/// Up/down: the selection in the processes view, else scrolling (towards
/// older lines for the log, further down for the other views).
fn scroll(state: &mut State, delta: isize) {
    match state.view {
        View::Processes => state.move_selection(delta),
        View::Events => {
            // Up shows older lines: scroll counts back from the newest.
            state.scroll = state.scroll.saturating_add_signed(-delta);
            state.scroll = state.scroll.min(state.log.len());
        }
        _ => state.scroll = state.scroll.saturating_add_signed(delta),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crossterm::event::KeyEventState;
    use probe_proto::{
        EventCounters, FrameUsage, HeapStats, Hello, ProcState, ProcessHeap, ProcessInfo,
        ProcessListEnd, ProcessVma, VmaKind,
    };
    use std::borrow::Cow;

    pub(crate) fn key(code: KeyCode) -> AppEvent {
        AppEvent::Key(KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        })
    }

    fn msg(m: Msg) -> AppEvent {
        AppEvent::Link(LinkEvent::Msg(m))
    }

    fn hello() -> Msg {
        Msg::Hello(Hello {
            version: probe_proto::PROTOCOL_VERSION,
            build_id: Cow::Borrowed("test"),
            mem_total_bytes: 128 << 20,
            mem_usable_bytes: 127 << 20,
            nr_regions: 0,
            features: probe_proto::features::HOST_COMMANDS,
            cmdline: Cow::Borrowed(""),
            uptime_us: 0,
            tsc_hz: 2_000_000_000,
        })
    }

    /// One program's listing messages: a row, one heap, one VMA.
    pub(crate) fn program_msgs(pid: u32, name: &str, size: u64, used: u64) -> Vec<Msg> {
        vec![
            Msg::ProcessInfo(ProcessInfo {
                ts_us: 1,
                pid,
                parent: 0,
                name: Cow::Owned(name.to_owned()),
                state: if pid == 0 {
                    ProcState::Kernel
                } else {
                    ProcState::Runnable
                },
                nr_heaps: 1,
                nr_sheds: 0,
                nr_vmas: 1,
                total_heap_size: size,
                total_heap_used: used,
                total_heap_free: size - used,
                total_shed_size: 0,
                resident_frames: u64::from(pid) + 3,
                page_table_frames: 4,
            }),
            Msg::ProcessHeap(ProcessHeap {
                pid,
                heap_id: 0,
                start: 0x10_0000,
                heap_size: size,
                heap_used: used,
                heap_free: size - used,
                used_blocks: 2,
                largest_free: size - used,
            }),
            Msg::ProcessVma(ProcessVma {
                pid,
                start: 0x40_0000,
                end: 0x40_2000,
                flags: 5,
                kind: VmaKind::Code,
                resident_pages: 2,
            }),
        ]
    }

    pub(crate) fn stats() -> MemoryStats {
        MemoryStats {
            ts_us: 5,
            total_frames: 32639,
            free_frames: 30000,
            usage: FrameUsage {
                free: 30000,
                reserved: 100,
                kernel_image: 600,
                bitmap: 2,
                kernel_heap: 1024,
                kernel_stack: 16,
                page_table: 400,
                process: 497,
                ..FrameUsage::default()
            },
            kernel_heap: HeapStats {
                region_bytes: 4 << 20,
                used_bytes: 1 << 20,
                ..HeapStats::default()
            },
            counters: EventCounters {
                page_allocs: 1,
                page_frees: 0,
                maps: 0,
                unmaps: 0,
                heap_allocs: 0,
                heap_frees: 0,
                heap_errors: 0,
                frame_errors: 0,
            },
        }
    }

    /// A model with a connected kernel, three programs and a snapshot.
    pub(crate) fn populated() -> State {
        let mut s = State::new("unix:target/com1.sock", true);
        update(&mut s, AppEvent::Connected);
        update(&mut s, msg(hello()));
        let mut msgs = program_msgs(0, "kernel", 4 << 20, 1 << 20);
        msgs.extend(program_msgs(1, "worker", 65536, 49152));
        msgs.extend(program_msgs(2, "leaker", 131072, 16384));
        msgs.push(Msg::ProcessListEnd(ProcessListEnd {
            ts_us: 2,
            total_programs: 3,
            complete: true,
        }));
        for m in msgs {
            update(&mut s, msg(m));
        }
        update(&mut s, msg(Msg::MemoryStats(stats())));
        update(&mut s, AppEvent::Tick);
        s
    }

    #[test]
    fn connecting_sends_resync_and_hello_starts_polling() {
        let mut s = State::new("unix:x", false);
        assert_eq!(
            update(&mut s, AppEvent::Connected),
            vec![Action::Send(HostMsg::Resync)]
        );
        assert_eq!(
            update(&mut s, AppEvent::Tick),
            vec![Action::Send(HostMsg::Resync)],
            "no Hello yet: Resync again"
        );
        assert_eq!(update(&mut s, msg(hello())), poll());
        assert_eq!(
            update(&mut s, AppEvent::Tick),
            vec![Action::Send(HostMsg::Snapshot)],
            "the listing asked for has not come: not asked again yet"
        );
        update(
            &mut s,
            msg(Msg::ProcessListEnd(ProcessListEnd {
                ts_us: 2,
                total_programs: 0,
                complete: true,
            })),
        );
        assert_eq!(update(&mut s, AppEvent::Tick), poll());
        for _ in 1..LISTING_PATIENCE {
            assert_eq!(
                update(&mut s, AppEvent::Tick),
                vec![Action::Send(HostMsg::Snapshot)]
            );
        }
        assert_eq!(
            update(&mut s, AppEvent::Tick),
            poll(),
            "overdue: asked again"
        );
    }

    #[test]
    fn a_listing_replaces_the_programs_and_polls_are_not_logged() {
        let s = populated();
        assert_eq!(s.programs.len(), 3);
        assert!(s.listing_complete);
        assert!(s.stats.is_some());
        assert_eq!(s.log.len(), 1, "only the Hello: {:?}", s.log);
        assert_eq!(s.rate, 12, "every message counts towards events/s");
    }

    #[test]
    fn closed_link_keeps_the_model_and_reconnect_resyncs() {
        let mut s = populated();
        update(
            &mut s,
            AppEvent::Link(LinkEvent::Closed {
                stats: Default::default(),
                error: None,
            }),
        );
        assert!(matches!(s.link, LinkState::Lost(_)));
        assert_eq!(s.programs.len(), 3, "the model is kept");
        assert!(update(&mut s, AppEvent::Tick).is_empty(), "nothing to send");
        assert_eq!(
            update(&mut s, AppEvent::Connected),
            vec![Action::Send(HostMsg::Resync)]
        );
        assert_eq!(s.link, LinkState::Up);
    }

    #[test]
    fn q_and_ctrl_c_quit() {
        let mut s = State::new("x", true);
        assert_eq!(update(&mut s, key(KeyCode::Char('q'))), vec![Action::Quit]);
        let ctrl_c = AppEvent::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert_eq!(update(&mut s, ctrl_c), vec![Action::Quit]);
    }

    #[test]
    fn number_keys_and_tab_switch_views() {
        let mut s = State::new("x", true);
        update(&mut s, key(KeyCode::Char('3')));
        assert_eq!(s.view, View::Physical);
        update(&mut s, key(KeyCode::Tab));
        assert_eq!(s.view, View::PageTables);
        update(&mut s, key(KeyCode::Tab));
        assert_eq!(s.view, View::Events);
        update(&mut s, key(KeyCode::Tab));
        assert_eq!(s.view, View::Leaks);
        update(&mut s, key(KeyCode::Tab));
        assert_eq!(s.view, View::Processes, "Tab wraps around");
        update(&mut s, key(KeyCode::BackTab));
        assert_eq!(s.view, View::Leaks);
        update(&mut s, key(KeyCode::Char('6')));
        assert_eq!(s.view, View::Leaks);
    }

    #[test]
    fn sort_cycles_columns_and_reverse_flips_the_order() {
        let mut s = populated();
        let pids = |s: &State| s.rows().iter().map(|p| p.info.pid).collect::<Vec<_>>();
        assert_eq!(pids(&s), [0, 1, 2]);
        update(&mut s, key(KeyCode::Char('s')));
        assert_eq!(s.sort, SortKey::Name);
        assert_eq!(pids(&s), [0, 2, 1], "kernel, leaker, worker");
        for _ in 0..6 {
            update(&mut s, key(KeyCode::Char('s')));
        }
        assert_eq!(s.sort, SortKey::PctUsed);
        update(&mut s, key(KeyCode::Char('r')));
        assert_eq!(pids(&s), [1, 0, 2], "75%, 25%, 12.5%");
    }

    #[test]
    fn slash_filters_by_name_and_esc_clears() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('/')));
        for c in "WORK".chars() {
            update(&mut s, key(KeyCode::Char(c)));
        }
        assert_eq!(s.rows().len(), 1, "case-insensitive");
        assert!(
            update(&mut s, key(KeyCode::Char('q'))).is_empty(),
            "q is typed"
        );
        update(&mut s, key(KeyCode::Esc));
        assert!(!s.editing_filter && s.filter.is_empty());
        assert_eq!(s.rows().len(), 3);
    }

    #[test]
    fn enter_opens_the_selected_process() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        update(&mut s, key(KeyCode::Down));
        update(&mut s, key(KeyCode::Down));
        assert_eq!(s.selected, Some(2), "clamped at the last row");
        update(&mut s, key(KeyCode::Up));
        update(&mut s, key(KeyCode::Enter));
        assert_eq!(s.view, View::Detail);
        assert_eq!(s.selected_program().unwrap().info.name, "worker");
    }

    #[test]
    fn c_runs_a_check_and_collects_its_answer() {
        let mut s = populated();
        assert_eq!(
            update(&mut s, key(KeyCode::Char('c'))),
            vec![Action::Send(HostMsg::Check)]
        );
        assert!(s.check.pending);
        update(
            &mut s,
            msg(Msg::CheckEnd(CheckEnd {
                consistent: true,
                spaces: 3,
                ..CheckEnd::default()
            })),
        );
        assert!(!s.check.pending);
        assert_eq!(s.check.end.unwrap().spaces, 3);
    }

    #[test]
    fn p_dumps_the_selected_process_and_shows_the_page_tables() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        assert_eq!(
            update(&mut s, key(KeyCode::Char('p'))),
            vec![Action::Send(HostMsg::PtDump { pid: 1 })]
        );
        assert_eq!(s.view, View::PageTables);
        let range = PtRange {
            space: 1,
            start: 0x40_0000,
            end: 0x40_1000,
            page_size: 4096,
            pages: 1,
            ..PtRange::default()
        };
        update(&mut s, msg(Msg::PtRange(PtRange { space: 2, ..range })));
        update(&mut s, msg(Msg::PtRange(range)));
        update(
            &mut s,
            msg(Msg::PtDumpEnd(PtDumpEnd {
                space: 1,
                ranges: 1,
                complete: true,
                ..PtDumpEnd::default()
            })),
        );
        assert_eq!(
            s.ptdump.ranges,
            [range],
            "another space's range is not ours"
        );
        assert!(!s.ptdump.pending);
    }

    #[test]
    fn space_pauses_the_event_log() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('5')));
        update(&mut s, key(KeyCode::Char(' ')));
        update(&mut s, msg(Msg::Dropped { count: 2 }));
        assert_eq!(s.visible_log().count(), 1, "paused: the new line is held");
        assert_eq!(s.dropped, 2);
        update(&mut s, key(KeyCode::Char(' ')));
        assert_eq!(s.visible_log().count(), 2);
    }

    #[test]
    fn help_overlay_toggles_and_swallows_keys() {
        let mut s = State::new("x", true);
        update(&mut s, key(KeyCode::Char('?')));
        assert!(s.help);
        update(&mut s, key(KeyCode::Char('3')));
        assert_eq!(s.view, View::Processes);
        update(&mut s, key(KeyCode::Esc));
        assert!(!s.help);
    }

    #[test]
    fn stall_is_counted_in_ticks_without_messages() {
        let mut s = populated();
        for _ in 0..STALL_TICKS {
            update(&mut s, AppEvent::Tick);
        }
        assert!(s.ticks_since_msg >= STALL_TICKS);
        assert_eq!(s.rate, 0);
        assert_eq!(s.rate_history.len(), 1 + STALL_TICKS as usize);
    }

    #[test]
    fn on_a_recording_space_pauses_the_replay_and_plus_minus_step_its_speed() {
        let mut s = populated();
        let control = ReplayControl::new(Some(1.0));
        s.replay = Some(control.clone());
        update(&mut s, key(KeyCode::Char(' ')));
        assert!(control.paused());
        assert_eq!(s.paused_at, None, "the replay pauses, not the log view");
        update(&mut s, key(KeyCode::Char('+')));
        update(&mut s, key(KeyCode::Char('+')));
        update(&mut s, key(KeyCode::Char('-')));
        assert_eq!(control.speed(), Some(2.0));
        update(&mut s, key(KeyCode::Char(' ')));
        assert!(!control.paused());
    }

    pub(crate) fn kernel_leak(addr: u64, confirmed: bool) -> KernelLeak {
        let mut stack = [0; probe_proto::LEAK_STACK_DEPTH];
        stack[0] = 0xffff_ffff_8010_0000;
        stack[1] = 0xffff_ffff_8020_0000;
        KernelLeak {
            addr,
            size: 328,
            age_ms: 1877,
            stack,
            first_bytes: [0xab; probe_proto::LEAK_PREVIEW_BYTES],
            confirmed,
        }
    }

    pub(crate) fn scan_end(leaks: u32, confirmed: u32) -> LeakScanEnd {
        LeakScanEnd {
            ts_us: 9,
            min_age_ms: DEFAULT_MIN_AGE_MS,
            blocks: 10,
            scanned_bytes: 218_496,
            duration_us: 16_290,
            leaks,
            confirmed,
            ..LeakScanEnd::default()
        }
    }

    #[test]
    fn s_in_the_leaks_view_scans_and_asks_for_blocks_in_use() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('6')));
        assert_eq!(
            update(&mut s, key(KeyCode::Char('s'))),
            vec![
                Action::Send(HostMsg::LeakScan {
                    min_age_ms: DEFAULT_MIN_AGE_MS
                }),
                Action::Send(HostMsg::Leaks { pid: -1 }),
            ]
        );
        assert_eq!(s.sort, SortKey::Pid, "s scans here, it does not sort");
        assert!(s.leaks.scan_pending && s.leaks.blocks_pending);
        update(&mut s, msg(Msg::KernelLeak(kernel_leak(0x1000, true))));
        update(&mut s, msg(Msg::KernelLeak(kernel_leak(0x2000, false))));
        update(&mut s, msg(Msg::LeakScanEnd(scan_end(2, 1))));
        assert!(!s.leaks.scan_pending);
        assert_eq!(s.leaks.leaks.len(), 2);
        assert_eq!(
            s.leaks.leaks[0].site, 0xffff_ffff_8010_0000,
            "without names the innermost frame is the call site"
        );
        assert_eq!(s.leaks.leaks[0].symbol, None);
        update(
            &mut s,
            msg(Msg::BlocksInUse(Leak {
                ts_us: 1,
                pid: 1,
                heap_id: 0,
                key: 7,
                blocks: 3,
                bytes: 300,
                first_addr: 0x10_0000,
                oldest_age_ms: None,
            })),
        );
        update(
            &mut s,
            msg(Msg::LeaksEnd(LeaksEnd {
                ts_us: 2,
                pid: -1,
                processes: 1,
                complete: true,
            })),
        );
        assert!(!s.leaks.blocks_pending);
        assert_eq!(s.leaks.blocks.len(), 1);

        // A second scan starts from nothing, and a leak after its end is
        // not its own.
        update(&mut s, key(KeyCode::Char('s')));
        assert!(s.leaks.leaks.is_empty() && s.leaks.end.is_none());
        update(&mut s, msg(Msg::LeakScanEnd(scan_end(0, 0))));
        update(&mut s, msg(Msg::KernelLeak(kernel_leak(0x3000, false))));
        assert!(s.leaks.leaks.is_empty());
    }

    #[test]
    fn s_outside_the_leaks_view_still_sorts_and_an_old_kernel_is_not_asked_to_scan() {
        let mut s = populated();
        assert!(
            update(&mut s, key(KeyCode::Char('s'))).is_empty(),
            "sorting sends nothing"
        );
        assert_eq!(s.sort, SortKey::Name);
        s.version = Some(Version { major: 1, minor: 3 });
        update(&mut s, key(KeyCode::Char('6')));
        assert!(update(&mut s, key(KeyCode::Char('s'))).is_empty());
        assert!(!s.leaks.scan_pending);
    }

    #[test]
    fn leaks_of_ended_heaps_are_kept_newest_last_up_to_the_cap() {
        let mut s = populated();
        for i in 0..EXITED_LEAKS_CAP as u64 + 5 {
            update(
                &mut s,
                msg(Msg::Leak(Leak {
                    ts_us: i,
                    pid: 2,
                    heap_id: 0,
                    key: i,
                    blocks: 1,
                    bytes: 8,
                    first_addr: 0,
                    oldest_age_ms: None,
                })),
            );
        }
        assert_eq!(s.leaks.exited.len(), EXITED_LEAKS_CAP);
        assert_eq!(s.leaks.exited.front().unwrap().key, 5);
    }

    pub(crate) fn fault(pid: u32, resolution: FaultResolution) -> Msg {
        Msg::PageFault(probe_proto::PageFault {
            ts_us: 1,
            pid,
            addr: 0x1000,
            error_code: 6,
            rip: 0x40_0000,
            resolution,
            vma_start: 0,
            vma_end: 0,
            vma_flags: 0,
        })
    }

    /// Worker (pid 1): 3 demand faults, 2 copy-on-write (one a reuse), a
    /// stack growth; 5 blocks leaked by key; leaker (pid 2) one fault; an
    /// ended program that left 4 blocks; 3 KiB read from the link.
    pub(crate) fn with_faults_and_leaks(s: &mut State) {
        use FaultResolution::*;
        for how in [Demand, Demand, Demand, CopyOnWrite, CowReuse, StackGrowth] {
            update(s, msg(fault(1, how)));
        }
        update(s, msg(fault(2, Killed)));
        for (key, blocks) in [(1, 2), (2, 3)] {
            update(
                s,
                msg(Msg::Leak(Leak {
                    ts_us: 1,
                    pid: 1,
                    heap_id: 0,
                    key,
                    blocks,
                    bytes: 100 * blocks,
                    first_addr: 0x10_0000,
                    oldest_age_ms: None,
                })),
            );
        }
        update(
            s,
            msg(Msg::ProcessExit(probe_proto::ProcessExit {
                ts_us: 2,
                pid: 9,
                reason: probe_proto::ExitReason::Exited(0),
                leaked_blocks: 4,
                leaked_bytes: 400,
                frames_freed: 10,
            })),
        );
        update(s, AppEvent::LinkBytes(1024));
        update(s, AppEvent::LinkBytes(2048));
        update(s, AppEvent::Tick);
    }

    #[test]
    fn faults_are_counted_per_pid_by_kind_and_leaks_per_pid() {
        let mut s = populated();
        with_faults_and_leaks(&mut s);
        assert_eq!(
            s.faults_of(1),
            FaultCounts {
                demand: 3,
                cow: 2,
                stack: 1,
                killed: 0
            }
        );
        assert_eq!(s.faults_of(2).killed, 1);
        assert_eq!(s.faults_of(0).total(), 0);
        assert_eq!(
            s.leaked_of(1),
            Leaked {
                blocks: 5,
                bytes: 500
            }
        );
        assert_eq!((s.exited_leaking, s.exited_leaked_blocks), (1, 4));
        assert_eq!(s.byte_rate, 3072);
        update(&mut s, AppEvent::Tick);
        assert_eq!(s.byte_rate, 0, "nothing read in the last second");
    }

    #[test]
    fn processes_sort_on_faults_blocks_and_leaks() {
        let mut s = populated();
        with_faults_and_leaks(&mut s);
        let pids = |s: &State| s.rows().iter().map(|p| p.info.pid).collect::<Vec<_>>();
        s.sort = SortKey::Faults;
        s.reverse = true;
        assert_eq!(pids(&s), [1, 2, 0]);
        s.sort = SortKey::Leaked;
        assert_eq!(pids(&s)[0], 1);
        s.sort = SortKey::Blocks;
        s.reverse = false;
        assert_eq!(pids(&s), [0, 1, 2], "2 blocks each: by pid");
    }

    pub(crate) fn block(addr: u64, size: u64, used: bool) -> Msg {
        Msg::HeapBlock(HeapBlock {
            pid: 1,
            heap_id: 0,
            addr,
            size,
            used,
            key: u64::from(used) * 7,
        })
    }

    /// Worker's heap walked: 16K used, 8K free, 32K used, 8K free.
    pub(crate) fn worker_walk() -> Vec<Msg> {
        vec![
            block(0x10_0000, 0x4000, true),
            block(0x10_4000, 0x2000, false),
            block(0x10_6000, 0x8000, true),
            block(0x10_e000, 0x2000, false),
            Msg::HeapWalkEnd(probe_proto::HeapWalkEnd {
                ts_us: 3,
                pid: 1,
                heap_id: 0,
                blocks: 4,
                complete: true,
            }),
        ]
    }

    pub(crate) fn heap_alloc(pid: u32, i: u64) -> Msg {
        Msg::HeapAlloc(HeapEvent {
            ts_us: 1_500_000 + i,
            pid,
            heap_id: 0,
            addr: 0x10_0000 + i * 64,
            size: 48,
            align: 16,
            key: i,
            caller: 0xffff_ffff_8000_1000,
        })
    }

    #[test]
    fn opening_a_process_walks_its_heaps_and_the_walk_is_kept_not_logged() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        assert_eq!(
            update(&mut s, key(KeyCode::Enter)),
            vec![Action::Send(HostMsg::HeapWalk { pid: 1, heap_id: 0 })]
        );
        assert!(s.walks.pending());
        let logged = s.log_total;
        for m in worker_walk() {
            update(&mut s, msg(m));
        }
        assert_eq!(s.log_total, logged, "the walk's answers are not logged");
        assert!(!s.walks.pending());
        let map = &s.walks.done[&0];
        assert_eq!(map.blocks.len(), 4);
        assert_eq!(map.largest_free(), 0x2000);
        assert_eq!(
            map.fragmentation_permille(),
            500,
            "half the free bytes lie outside the largest"
        );
        let tick = update(&mut s, AppEvent::Tick);
        assert!(
            tick.contains(&Action::Send(HostMsg::HeapWalk { pid: 1, heap_id: 0 })),
            "walked again every tick while shown: {tick:?}"
        );
        update(&mut s, key(KeyCode::Esc));
        for m in worker_walk() {
            update(&mut s, msg(m));
        }
        assert!(
            !update(&mut s, AppEvent::Tick)
                .iter()
                .any(|a| matches!(a, Action::Send(HostMsg::HeapWalk { .. })))
        );
        // Another process's walk is not taken for this one's.
        update(&mut s, msg(block(0x20_0000, 16, true)));
        assert_eq!(s.walks.done[&0].blocks.len(), 4);
    }

    #[test]
    fn recent_allocations_are_listed_per_process_newest_first() {
        let mut s = populated();
        for i in 0..RECENT_ALLOCS as u64 + 3 {
            update(&mut s, msg(heap_alloc(1, i)));
        }
        update(&mut s, msg(heap_alloc(2, 99)));
        let worker: Vec<&RecentAlloc> = s.recent_allocs_of(1).collect();
        assert_eq!(worker.len(), RECENT_ALLOCS);
        assert_eq!(worker[0].event.key, RECENT_ALLOCS as u64 + 2);
        assert_eq!(worker[RECENT_ALLOCS - 1].event.key, 3);
        assert_eq!(worker[0].caller, None, "no ELF: no name");
        assert_eq!(s.recent_allocs_of(2).count(), 1);
        for i in 0..RECENT_ALLOCS_SEEN as u64 {
            update(&mut s, msg(heap_alloc(3, i)));
        }
        assert_eq!(s.recent_allocs.len(), RECENT_ALLOCS_SEEN);
        assert_eq!(s.recent_allocs_of(1).count(), 0, "pushed out by newer ones");
    }

    /// A 1024-frame map in two batches: 256 reserved, 128 kernel image, 64
    /// kernel heap, 256 free, 64 of pid 3, 32 page tables, 224 free.
    pub(crate) fn owner_map_msgs() -> Vec<Msg> {
        use probe_proto::{OwnerRun, OwnerRuns};
        let run = |owner, frames| OwnerRun { owner, frames };
        let first = [
            run(Some(FrameOwner::Reserved), 256),
            run(Some(FrameOwner::KernelImage), 128),
            run(Some(FrameOwner::KernelHeap), 64),
        ];
        let second = [
            run(None, 256),
            run(Some(FrameOwner::Process(3)), 64),
            run(Some(FrameOwner::PageTable), 32),
            run(None, 224),
        ];
        vec![
            Msg::OwnerRuns(OwnerRuns {
                first_frame: 0,
                runs: Cow::Owned(first.to_vec()),
            }),
            Msg::OwnerRuns(OwnerRuns {
                first_frame: 448,
                runs: Cow::Owned(second.to_vec()),
            }),
            Msg::OwnerMapEnd(OwnerMapEnd {
                ts_us: 4,
                first_frame: 0,
                nr_frames: 1024,
                runs: 7,
                total_frames: 1024,
            }),
        ]
    }

    #[test]
    fn the_physical_view_asks_for_the_owner_map_each_tick_and_keeps_the_last_whole_one() {
        let mut s = populated();
        let ask = Action::Send(HostMsg::OwnerMap {
            first_frame: 0,
            nr_frames: u64::MAX,
        });
        assert_eq!(update(&mut s, key(KeyCode::Char('3'))), vec![ask.clone()]);
        assert!(
            !update(&mut s, AppEvent::Tick).contains(&ask),
            "one at a time"
        );
        let logged = s.log_total;
        for m in owner_map_msgs() {
            update(&mut s, msg(m));
        }
        assert_eq!(s.log_total, logged, "the map is not logged");
        let map = &s.owner_map;
        assert!(!map.pending);
        assert_eq!(map.spans.len(), 7);
        assert_eq!(map.spans[3].start, 448);
        assert_eq!(map.spans[4].owner, Some(FrameOwner::Process(3)));
        assert_eq!(map.centre, 0, "zooming in starts at the start of memory");
        assert!(update(&mut s, AppEvent::Tick).contains(&ask));
        // The old map stays on screen until the new one is whole.
        update(&mut s, msg(owner_map_msgs().remove(0)));
        assert_eq!(s.owner_map.spans.len(), 7);
        update(&mut s, key(KeyCode::Char('1')));
        for m in owner_map_msgs() {
            update(&mut s, msg(m));
        }
        assert!(
            !update(&mut s, AppEvent::Tick).contains(&ask),
            "not shown: not asked"
        );
    }

    #[test]
    fn owner_map_zoom_and_pan_stay_inside_the_map() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('3')));
        for m in owner_map_msgs() {
            update(&mut s, msg(m));
        }
        assert_eq!(s.owner_map.window(512), (0, 2), "zoom 1x: all of it");
        update(&mut s, key(KeyCode::Char('z')));
        assert_eq!(s.owner_map.window(512), (0, 1), "2x: the first half");
        update(&mut s, key(KeyCode::Char('z')));
        assert_eq!(s.owner_map.window(128), (0, 2), "4x: still from the start");
        update(&mut s, key(KeyCode::Char('x')));
        update(&mut s, key(KeyCode::Right));
        assert_eq!(
            s.owner_map.window(512),
            (64, 1),
            "an eighth of what it shows"
        );
        for _ in 0..50 {
            update(&mut s, key(KeyCode::Right));
        }
        assert_eq!(
            s.owner_map.window(512),
            (512, 1),
            "up to the end, not past it"
        );
        update(&mut s, key(KeyCode::Left));
        assert_eq!(s.owner_map.window(512), (448, 1));
        for _ in 0..MAX_ZOOM + 3 {
            update(&mut s, key(KeyCode::Char('z')));
        }
        assert_eq!(s.owner_map.zoom, MAX_ZOOM);
        for _ in 0..MAX_ZOOM + 3 {
            update(&mut s, key(KeyCode::Char('x')));
        }
        assert_eq!(s.owner_map.zoom, 0);
    }

    #[test]
    fn an_older_kernel_is_not_asked_for_the_owner_map() {
        let mut s = populated();
        s.version = Some(Version { major: 2, minor: 0 });
        assert!(update(&mut s, key(KeyCode::Char('3'))).is_empty());
        assert!(!s.owner_map.pending);
    }

    /// A whole dump of `pid`'s space with one 4 KiB range at each of
    /// `starts`.
    pub(crate) fn pt_dump_msgs(pid: u32, starts: &[u64], ts_us: u64) -> Vec<Msg> {
        let mut msgs: Vec<Msg> = starts
            .iter()
            .map(|&start| {
                Msg::PtRange(PtRange {
                    space: pid,
                    start,
                    end: start + 0x1000,
                    phys: 0x20_0000 + start,
                    page_size: 4096,
                    pages: 1,
                    ..PtRange::default()
                })
            })
            .collect();
        msgs.push(Msg::PtDumpEnd(PtDumpEnd {
            ts_us,
            space: pid,
            root: 0x1000,
            ranges: starts.len() as u64,
            pages_4k: starts.len() as u64,
            complete: true,
            ..PtDumpEnd::default()
        }));
        msgs
    }

    #[test]
    fn a_second_dump_of_a_space_is_diffed_with_the_first_and_d_shows_it() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        update(&mut s, key(KeyCode::Char('p')));
        for m in pt_dump_msgs(1, &[0x40_0000, 0x40_1000], 1_000_000) {
            update(&mut s, msg(m));
        }
        assert_eq!(s.ptdump.diff, None, "nothing to compare the first with");
        // The kernel's dump in between is not compared with the process's.
        update(&mut s, key(KeyCode::Char('K')));
        for m in pt_dump_msgs(0, &[0xffff_8000_0000_0000], 1_500_000) {
            update(&mut s, msg(m));
        }
        assert_eq!(s.ptdump.diff, None);
        update(&mut s, key(KeyCode::Char('p')));
        for m in pt_dump_msgs(1, &[0x40_0000, 0x7fff_f000], 2_000_000) {
            update(&mut s, msg(m));
        }
        let (at, diff) = s.ptdump.diff.clone().expect("a diff");
        assert_eq!(at, 1_000_000);
        assert_eq!(diff.added.len(), 1);
        assert_eq!(diff.added[0].start, 0x7fff_f000);
        assert_eq!(diff.removed.len(), 1);
        assert_eq!(diff.removed[0].start, 0x40_1000);
        assert!(!s.pt_show_diff);
        update(&mut s, key(KeyCode::Char('d')));
        assert!(s.pt_show_diff);
    }

    #[test]
    fn the_events_filter_takes_kinds_by_prefix_and_pids() {
        let line = |text: &str, pid| LogLine {
            text: text.into(),
            pid,
        };
        let alloc = line("heap_alloc t=1 heap=pid3#0", Some(3));
        let fault = line("page_fault t=1 pid=4", Some(4));
        let hello = line("hello v1.5", None);
        let f = EventFilter::parse("heap");
        assert!(f.matches(&alloc) && !f.matches(&fault) && !f.matches(&hello));
        let f = EventFilter::parse("pid=4 3");
        assert!(f.matches(&alloc) && f.matches(&fault) && !f.matches(&hello));
        let f = EventFilter::parse("PAGE_ 3");
        assert!(!f.matches(&alloc), "a kind and a pid: both must match");
        assert!(!f.matches(&fault));
        assert!(EventFilter::parse("  ").is_empty());
    }

    #[test]
    fn f_in_the_events_view_edits_the_filter_and_the_log_keeps_every_line() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('5')));
        for i in 0..4 {
            update(&mut s, msg(heap_alloc(1 + i % 2, u64::from(i))));
        }
        update(&mut s, msg(fault(2, FaultResolution::Demand)));
        update(&mut s, key(KeyCode::Char('f')));
        assert!(s.editing_event_filter);
        for c in "heap 2".chars() {
            update(&mut s, key(KeyCode::Char(c)));
        }
        update(&mut s, key(KeyCode::Enter));
        assert!(!s.editing_event_filter);
        let shown: Vec<&str> = s.visible_log().map(|l| l.kind()).collect();
        assert_eq!(shown, ["heap_alloc", "heap_alloc"], "pid 2's allocations");
        assert_eq!(s.log.len(), 6, "the Hello and every event are kept");
        update(&mut s, key(KeyCode::Char('f')));
        update(&mut s, key(KeyCode::Esc));
        assert!(s.event_filter.is_empty());
        assert_eq!(s.visible_log().count(), 6);
    }

    fn click(column: u16, row: u16) -> AppEvent {
        AppEvent::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        })
    }

    fn wheel(kind: MouseEventKind) -> AppEvent {
        AppEvent::Mouse(MouseEvent {
            kind,
            column: 10,
            row: 10,
            modifiers: KeyModifiers::NONE,
        })
    }

    #[test]
    fn a_click_on_a_tab_opens_its_view_with_what_it_asks_for() {
        let mut s = populated();
        // "mmtop 1:Processes 2:Detail 3:Physical ...": column 27 is in
        // "3:Physical".
        assert_eq!(View::at_tab_column(27), Some(View::Physical));
        assert_eq!(View::at_tab_column(2), None, "the name is no tab");
        let actions = update(&mut s, click(27, 0));
        assert_eq!(s.view, View::Physical);
        assert!(matches!(
            actions[..],
            [Action::Send(HostMsg::OwnerMap { .. })]
        ));
        assert!(update(&mut s, click(27, 0)).is_empty(), "already there");
    }

    #[test]
    fn a_click_selects_a_process_and_a_second_opens_it() {
        let mut s = populated();
        update(&mut s, AppEvent::Resize(80, 24));
        update(&mut s, click(5, PROCESS_ROWS_TOP + 2));
        assert_eq!(s.selected, Some(2), "the third row");
        assert_eq!(s.view, View::Processes);
        let actions = update(&mut s, click(5, PROCESS_ROWS_TOP + 2));
        assert_eq!(s.view, View::Detail);
        assert_eq!(
            actions,
            vec![Action::Send(HostMsg::HeapWalk { pid: 2, heap_id: 0 })]
        );
        update(&mut s, key(KeyCode::Esc));
        update(&mut s, click(5, PROCESS_ROWS_TOP + 7));
        assert_eq!(s.selected, Some(2), "below the last row: nothing");
    }

    #[test]
    fn the_wheel_scrolls_like_the_arrows() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Char('5')));
        for i in 0..20 {
            update(&mut s, msg(heap_alloc(1, i)));
        }
        update(&mut s, wheel(MouseEventKind::ScrollUp));
        assert_eq!(s.scroll, 3, "three lines back");
        update(&mut s, wheel(MouseEventKind::ScrollDown));
        assert_eq!(s.scroll, 0);
        update(&mut s, key(KeyCode::Char('1')));
        update(&mut s, wheel(MouseEventKind::ScrollDown));
        assert_eq!(s.selected, Some(2), "in the table the selection moves");
    }

    #[test]
    fn reopening_a_process_while_its_walk_is_under_way_does_not_ask_again() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        update(&mut s, key(KeyCode::Enter));
        update(&mut s, msg(block(0x10_0000, 0x4000, true)));
        update(&mut s, key(KeyCode::Esc));
        assert!(update(&mut s, key(KeyCode::Enter)).is_empty());
        for m in worker_walk() {
            update(&mut s, msg(m));
        }
        assert!(!s.walks.pending(), "one walk, ended by its one HeapWalkEnd");
        assert_eq!(s.walks.done[&0].blocks.len(), 4);
        update(&mut s, key(KeyCode::Esc));
        assert_eq!(
            update(&mut s, key(KeyCode::Enter)),
            vec![Action::Send(HostMsg::HeapWalk { pid: 1, heap_id: 0 })]
        );
    }

    #[test]
    fn a_walk_of_a_heap_that_changed_meanwhile_keeps_the_newest_blocks_without_overlaps() {
        let mut s = populated();
        update(&mut s, key(KeyCode::Down));
        update(&mut s, key(KeyCode::Enter));
        for m in [
            block(0x10_0000, 0x100, true),
            block(0x10_0100, 0x200, false),
            // The next batch: the free block was split meanwhile, and the
            // first batch's second block is seen again.
            block(0x10_0100, 0x80, true),
            block(0x10_0200, 0x100, false),
            block(0x10_0180, 0x40, true),
        ] {
            update(&mut s, msg(m));
        }
        for m in worker_walk().split_off(4) {
            update(&mut s, msg(m));
        }
        let map = &s.walks.done[&0];
        let kept: Vec<(u64, u64, bool)> = map
            .blocks
            .iter()
            .map(|b| (b.addr, b.size, b.used))
            .collect();
        assert_eq!(
            kept,
            [
                (0x10_0000, 0x100, true),
                (0x10_0100, 0x80, true),
                (0x10_0180, 0x40, true),
                (0x10_0200, 0x100, false),
            ]
        );
        assert!(map.changed);
    }
}
