//! Rendering: a pure function of [`State`] onto a ratatui frame.
//!
//! Every word about the kernel (owners, states, VMA flags, page-table lines,
//! findings) comes from `probe_proto::names` or mmtop's `format`, so the
//! screen says what `mmtop ps`, `check` and `ptdump` say.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState};

use probe_proto::FrameOwner;
use probe_proto::names::{
    AuditLine, DumpSummary, FindingLine, LeakScanLine, PtRangeLine, SpaceName, VmaFlags,
};

use super::state::{
    LEAK_SCAN_SINCE, LinkState, LogLine, OWNER_MAP_SINCE, RecentAlloc, STALL_TICKS, SortKey, State,
    View, blocks_in_use, used_permille,
};
use crate::format::{escape_controls, heap_name, human_bytes, human_time};
use crate::procs::Program;

/// Styles, or none of their colours when `NO_COLOR` is set.
struct Theme {
    color: bool,
}

impl Theme {
    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }
    fn bold(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    fn alert(&self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }
}

/// Draws the whole screen for `s`.
pub fn render(frame: &mut Frame, s: &State) {
    let theme = Theme { color: s.color };
    let [tabs, status, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(tab_line(s, &theme)), tabs);
    frame.render_widget(Paragraph::new(status_line(s, &theme)), status);
    match s.view {
        View::Processes => processes(frame, body, s, &theme),
        View::Detail => detail(frame, body, s, &theme),
        View::Physical => physical(frame, body, s, &theme),
        View::PageTables => page_tables(frame, body, s, &theme),
        View::Events => events(frame, body, s, &theme),
        View::Leaks => leaks(frame, body, s, &theme),
    }
    frame.render_widget(
        Paragraph::new(Line::styled(footer_text(s), theme.fg(Color::Cyan))),
        footer,
    );
    if s.help {
        help(frame, body, &theme);
    }
}

fn tab_line(s: &State, theme: &Theme) -> Line<'static> {
    let mut spans = vec![Span::styled(View::TABS_PREFIX, theme.bold())];
    for (i, v) in View::ALL.iter().enumerate() {
        let text = format!("{}:{}", i + 1, v.short_title());
        let style = if *v == s.view {
            theme.selected().add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        spans.push(Span::styled(text, style));
        spans.push(Span::raw(" "));
    }
    Line::from(spans)
}

fn status_line(s: &State, theme: &Theme) -> Line<'static> {
    let link = match &s.link {
        LinkState::Connecting => Span::styled("connecting…", theme.fg(Color::Yellow)),
        LinkState::Lost(why) if s.replay.is_some() => {
            Span::styled(format!("replay ended ({why})"), theme.fg(Color::Yellow))
        }
        LinkState::Lost(why) => {
            Span::styled(format!("link lost, reconnecting… ({why})"), theme.alert())
        }
        LinkState::Up if s.version.is_none() => {
            Span::styled("connected, waiting for Hello…", theme.fg(Color::Yellow))
        }
        LinkState::Up if s.ticks_since_msg >= STALL_TICKS => Span::styled(
            format!("link stalled: no data for {}s", s.ticks_since_msg),
            theme.alert(),
        ),
        LinkState::Up => Span::styled("link up", theme.fg(Color::Green)),
    };
    let version = s
        .version
        .map(|v| format!(" proto {}.{}", v.major, v.minor))
        .unwrap_or_default();
    let replay = s.replay.as_ref().map_or_else(String::new, |r| {
        let speed = r.speed().map_or("max".into(), |v| format!("x{v}"));
        let paused = if r.paused() { " PAUSED" } else { "" };
        format!(" replay {:.1}s {speed}{paused}", r.position().as_secs_f64())
    });
    Line::from(vec![
        Span::raw(format!("{} ", s.address)),
        link,
        Span::raw(replay),
        Span::raw(format!(
            "{version}  {} ev/s {}/s  bad {}  dropped {}",
            s.rate,
            compact(s.byte_rate),
            s.bad_frames,
            s.dropped
        )),
    ])
}

fn footer_text(s: &State) -> String {
    if s.editing_filter {
        return format!("filter: {}▏ Enter keep  Esc clear", s.filter);
    }
    if s.editing_event_filter {
        return format!(
            "events filter (kinds, pids): {}▏ Enter keep  Esc clear",
            s.event_filter.text
        );
    }
    let keys = match s.view {
        View::Processes => "↑↓/Enter detail  s/r sort  / filter  p ptdump",
        View::Detail => "↑↓ scroll  Esc back  p ptdump",
        View::Physical => "z/x zoom  ←→ pan  c run check",
        View::PageTables => "↑↓ scroll  p dump selected  K dump kernel  d diff",
        View::Events => "↑↓ scroll  space pause  f filter",
        View::Leaks => "s scan  ↑↓ scroll",
    };
    let replay = if s.replay.is_some() {
        "  space pause replay  +/- speed"
    } else {
        ""
    };
    format!("q quit  Tab/1-6 view  {keys}{replay}  ? help")
}

/// Widths from this on get the wide layouts (more columns, names inline).
const WIDE: u16 = 100;

/// A byte count in at most five characters: `512B`, `64K`, `1.5M`.
pub fn compact(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 && v.fract() != 0.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

/// A bar of `width` cells, the first `part/whole` of them full.
fn bar(part: u64, whole: u64, width: usize) -> (String, String) {
    let full = (part.saturating_mul(width as u64))
        .checked_div(whole)
        .unwrap_or(0)
        .min(width as u64) as usize;
    ("█".repeat(full), "░".repeat(width - full))
}

fn heading(text: String, theme: &Theme) -> Line<'static> {
    Line::styled(text, theme.bold())
}

fn totals(s: &State, theme: &Theme) -> Vec<Line<'static>> {
    let Some(m) = &s.stats else {
        return vec![Line::raw("no memory snapshot yet")];
    };
    let used = m.total_frames.saturating_sub(m.free_frames);
    let kh = &m.kernel_heap;
    let owners: Vec<String> = m
        .usage
        .by_owner()
        .iter()
        .filter(|(name, n)| *n > 0 && *name != "free")
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    vec![
        Line::from(vec![
            Span::styled("frames ", theme.bold()),
            Span::raw(format!(
                "{used}/{} used ({}%), {} free   ",
                m.total_frames,
                percent(used, m.total_frames),
                m.free_frames
            )),
            Span::styled("kernel heap ", theme.bold()),
            Span::raw(format!(
                "{}/{} used",
                compact(kh.used_bytes),
                compact(kh.region_bytes)
            )),
        ]),
        Line::raw(format!("by owner: {}", owners.join(", "))),
    ]
}

fn processes(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let [top, sparks, table_area] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(2),
        Constraint::Min(0),
    ])
    .areas(area);
    frame.render_widget(
        Paragraph::new(totals(s, theme)).wrap(ratatui::widgets::Wrap { trim: true }),
        top,
    );

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(sparks);
    let rates: Vec<u64> = s.rate_history.iter().copied().collect();
    let used: Vec<u64> = s.used_history.iter().copied().collect();
    sparkline(
        frame,
        left,
        format!("events/s {} (total {})", s.rate, s.msgs_total),
        &rates,
        theme.fg(Color::Green),
    );
    sparkline(
        frame,
        right,
        format!("frames used {}", used.last().copied().unwrap_or(0)),
        &used,
        theme.fg(Color::Magenta),
    );

    let rows = s.rows();
    let title = if s.filter.is_empty() {
        format!(
            "{} ({} programs)",
            View::Processes.title(),
            s.programs.len()
        )
    } else {
        format!(
            "{} ({} of {} match '{}')",
            View::Processes.title(),
            rows.len(),
            s.programs.len(),
            s.filter
        )
    };
    let title = if s.listing_complete {
        title
    } else {
        title + " [incomplete listing]"
    };
    let title = if s.exited_leaking > 0 {
        format!(
            "{title}  ended leaking: {} programs, {} blocks",
            s.exited_leaking, s.exited_leaked_blocks
        )
    } else {
        title
    };
    let [title_area, table_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(table_area);
    frame.render_widget(Paragraph::new(heading(title, theme)), title_area);

    let wide = area.width >= WIDE;
    // Narrow terminals drop the heap and shed counts (the detail view has
    // them) so the fault and leak columns fit in 80.
    let columns: Vec<(SortKey, u16)> = SortKey::ALL
        .iter()
        .filter(|k| wide || !matches!(k, SortKey::Heaps | SortKey::Sheds))
        .map(|&k| {
            let width = match k {
                SortKey::Pid => 4,
                SortKey::Name => 8,
                SortKey::State => 8,
                SortKey::Vmas | SortKey::Leaked => 4,
                SortKey::Faults if wide => 17,
                _ => 5,
            };
            (k, width)
        })
        .collect();
    let header = Row::new(columns.iter().map(|(k, _)| {
        let mark = if *k != s.sort {
            ""
        } else if s.reverse {
            "▲"
        } else {
            "▼"
        };
        let kinds = if wide && *k == SortKey::Faults {
            " d/c/s/k"
        } else {
            ""
        };
        Cell::from(format!("{}{mark}{kinds}", k.header()))
    }))
    .style(theme.bold().add_modifier(Modifier::UNDERLINED));
    // Only the rows on screen are built: the table scrolls just enough to
    // show the selection, so they are known before drawing.
    let height = usize::from(table_area.height.saturating_sub(1)).max(1);
    let selected = s.selected_index(&rows);
    let offset = (selected + 1).saturating_sub(height);
    let body: Vec<Row> = rows
        .iter()
        .skip(offset)
        .take(height)
        .map(|p| Row::new(columns.iter().map(|(k, _)| process_cell(s, p, *k, wide))))
        .collect();
    let widths = columns.iter().map(|&(k, w)| {
        if k == SortKey::Name {
            Constraint::Min(w)
        } else {
            Constraint::Length(w)
        }
    });
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected());
    let mut ts = TableState::default().with_selected(Some(selected - offset));
    frame.render_stateful_widget(table, table_area, &mut ts);
}

/// One cell of `p`'s row: the column `k`.
fn process_cell(s: &State, p: &Program, k: SortKey, wide: bool) -> Cell<'static> {
    let i = &p.info;
    Cell::from(match k {
        SortKey::Pid => i.pid.to_string(),
        SortKey::Name => escape_controls(&i.name),
        SortKey::State => i.state.name().to_string(),
        SortKey::Heaps => p.heaps.len().to_string(),
        SortKey::Size => compact(i.total_heap_size),
        SortKey::Used => compact(i.total_heap_used),
        SortKey::Free => compact(i.total_heap_free),
        SortKey::PctUsed => {
            let pm = used_permille(p);
            format!("{}.{}", pm / 10, pm % 10)
        }
        SortKey::Sheds => p.sheds.len().to_string(),
        SortKey::Vmas => p.vmas.len().to_string(),
        SortKey::Resident => compact(p.resident_bytes()),
        SortKey::Faults => {
            let f = s.faults_of(i.pid);
            if wide {
                format!(
                    "{} {}/{}/{}/{}",
                    f.total(),
                    f.demand,
                    f.cow,
                    f.stack,
                    f.killed
                )
            } else {
                f.total().to_string()
            }
        }
        SortKey::Blocks => blocks_in_use(p).to_string(),
        SortKey::Leaked => s.leaked_of(i.pid).blocks.to_string(),
    })
}

fn sparkline(frame: &mut Frame, area: Rect, label: String, data: &[u64], style: Style) {
    let [label_area, spark_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(area);
    frame.render_widget(Paragraph::new(label), label_area);
    // The newest samples, right-aligned to the area's width.
    let from = data.len().saturating_sub(spark_area.width as usize);
    frame.render_widget(
        Sparkline::default().data(&data[from..]).style(style),
        spark_area,
    );
}

fn detail(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let Some(p) = s.selected_program() else {
        let text = match s.selected {
            Some(pid) => format!("pid {pid} is not in the latest listing"),
            None => "no process selected: pick one in view 1 and press Enter".into(),
        };
        frame.render_widget(
            Paragraph::new(vec![
                heading(View::Detail.title().into(), theme),
                Line::raw(text),
            ]),
            area,
        );
        return;
    };
    let i = &p.info;
    let mut lines = vec![
        heading(
            format!(
                "{}: pid {} {} ({})",
                View::Detail.title(),
                i.pid,
                escape_controls(&i.name),
                i.state.name()
            ),
            theme,
        ),
        Line::raw(format!(
            "parent {}  resident {} ({} frames)  page-table frames {}  sheds {} ({})",
            i.parent,
            human_bytes(p.resident_bytes()),
            i.resident_frames,
            i.page_table_frames,
            p.sheds.len(),
            human_bytes(i.total_shed_size),
        )),
        Line::raw(""),
        heading(format!("heaps ({})", p.heaps.len()), theme),
    ];
    let bar_width = (area.width as usize).saturating_sub(48).clamp(10, 60);
    let map_width = (area.width as usize).saturating_sub(4).max(8);
    let map_rows = if area.width >= WIDE { 4 } else { 2 };
    for h in &p.heaps {
        let (used, free) = bar(h.heap_used, h.heap_size, bar_width);
        lines.push(Line::from(vec![
            Span::raw(format!("{:>3} {:#012x} ", h.heap_id, h.start)),
            Span::styled(used, theme.fg(Color::Red)),
            Span::styled(free, theme.fg(Color::Green)),
            Span::raw(format!(
                " {}/{} {}% largest free {}",
                compact(h.heap_used),
                compact(h.heap_size),
                percent(h.heap_used, h.heap_size),
                compact(h.largest_free)
            )),
        ]));
        let walk = (s.walks.pid == i.pid)
            .then(|| s.walks.done.get(&h.heap_id))
            .flatten();
        match walk {
            Some(map) => {
                lines.extend(block_map(
                    map,
                    h.start,
                    h.heap_size,
                    map_width,
                    map_rows,
                    theme,
                ));
                let free = map.free_blocks().count();
                lines.push(Line::raw(format!(
                    "    {} blocks ({} used, {free} free), largest free block {}, \
                     fragmentation {}%{}",
                    map.blocks.len(),
                    map.blocks.len() - free,
                    compact(map.largest_free()),
                    map.fragmentation_permille() / 10,
                    match (map.complete, map.changed) {
                        (false, _) => " (walk cut short)",
                        (true, true) => " (changed while walked)",
                        (true, false) => "",
                    }
                )));
            }
            None => lines.push(Line::raw("    walking its blocks…")),
        }
    }
    lines.push(Line::raw(""));
    let recent: Vec<&RecentAlloc> = s.recent_allocs_of(i.pid).collect();
    lines.push(heading(
        format!("recent allocations ({})", recent.len()),
        theme,
    ));
    for a in recent {
        let e = &a.event;
        let caller = match &a.caller {
            Some(name) => escape_controls(name),
            None => format!("{:#x}", e.caller),
        };
        lines.push(Line::raw(format!(
            "{:>15} {:<8} {:#014x} {:>6} key {:<6} {caller}",
            human_time(e.ts_us),
            heap_name(e.pid, e.heap_id),
            e.addr,
            compact(e.size),
            e.key
        )));
    }
    lines.push(Line::raw(""));
    lines.push(heading(format!("maps ({} VMAs)", p.vmas.len()), theme));
    for v in &p.vmas {
        lines.push(Line::raw(format!(
            "{:016x}-{:016x} {:<16} {:<5} resident {}",
            v.start,
            v.end,
            VmaFlags(v.flags).to_string(),
            v.kind.name(),
            v.resident_pages
        )));
    }
    frame.render_widget(Paragraph::new(lines).scroll((s.scroll as u16, 0)), area);
}

/// A heap drawn to scale in `rows` lines of `width` cells, each cell the
/// same share of its `size` bytes from `start`: `█` used, `·` free, `▒`
/// both (a cell holding a block boundary), so holes between blocks show.
fn block_map(
    map: &super::state::HeapMap,
    start: u64,
    size: u64,
    width: usize,
    rows: usize,
    theme: &Theme,
) -> Vec<Line<'static>> {
    let cells = width * rows;
    // Used and free bytes in each cell.
    let mut used = vec![0u64; cells];
    let mut free = vec![0u64; cells];
    // Cell `c` covers bytes `bound(c)..bound(c + 1)`: exact shares, so
    // the map ends where the heap does.
    let bound = |c: usize| (u128::from(size) * c as u128 / cells as u128) as u64;
    let cell_of = |offset: u64| {
        ((u128::from(offset) * cells as u128 / u128::from(size.max(1))) as usize).min(cells - 1)
    };
    for b in &map.blocks {
        let from = b.addr.saturating_sub(start).min(size);
        let to = from.saturating_add(b.size).min(size);
        if from >= to {
            continue;
        }
        let slots = if b.used { &mut used } else { &mut free };
        for (c, slot) in slots
            .iter_mut()
            .enumerate()
            .take(cell_of(to - 1) + 1)
            .skip(cell_of(from))
        {
            *slot += to.min(bound(c + 1)) - from.max(bound(c));
        }
    }
    (0..rows)
        .map(|r| {
            let spans: Vec<Span> = (r * width..(r + 1) * width)
                .map(|c| {
                    let (u, f) = (used[c], free[c]);
                    let (glyph, color) = match (u, f) {
                        (0, 0) => (" ", Color::Reset),
                        (_, 0) => ("█", Color::Red),
                        (0, _) => ("·", Color::Green),
                        _ => ("▒", Color::Yellow),
                    };
                    Span::styled(glyph, theme.fg(color))
                })
                .collect();
            let mut line = vec![Span::raw("    ")];
            line.extend(spans);
            Line::from(line)
        })
        .collect()
}

/// The owner classes in `FrameUsage::by_owner` order: the letter a map
/// cell shows (a process shows its pid's last digit) and its colour.
const OWNER_GLYPHS: [(char, Color); 11] = [
    ('.', Color::DarkGray),
    (' ', Color::Reset),
    ('r', Color::Gray),
    ('K', Color::Blue),
    ('b', Color::Gray),
    ('B', Color::Cyan),
    ('H', Color::Magenta),
    ('S', Color::LightMagenta),
    ('P', Color::Yellow),
    ('p', Color::Green),
    ('o', Color::White),
];

/// Colours a process's frames cycle through, by pid.
const PROCESS_COLOURS: [Color; 6] = [
    Color::Green,
    Color::LightGreen,
    Color::LightBlue,
    Color::LightRed,
    Color::LightCyan,
    Color::LightYellow,
];

/// The row of `FrameUsage::by_owner` an owner (`None`: free) counts in.
fn owner_class(owner: Option<FrameOwner>) -> usize {
    match owner {
        None => 0,
        Some(FrameOwner::Unusable) => 1,
        Some(FrameOwner::Reserved) => 2,
        Some(FrameOwner::KernelImage) => 3,
        Some(FrameOwner::BootInfo) => 4,
        Some(FrameOwner::Bitmap) => 5,
        Some(FrameOwner::KernelHeap) => 6,
        Some(FrameOwner::KernelStack) => 7,
        Some(FrameOwner::PageTable) => 8,
        Some(FrameOwner::Process(_)) => 9,
        Some(FrameOwner::Other(_)) => 10,
    }
}

/// A map cell for `owner`: its letter (a pid's last digit for a process)
/// and colour.
fn owner_cell(owner: Option<FrameOwner>, theme: &Theme) -> Span<'static> {
    let (glyph, colour) = OWNER_GLYPHS[owner_class(owner)];
    let (glyph, colour) = match owner {
        Some(FrameOwner::Process(pid)) => (
            char::from_digit(pid % 10, 10).unwrap_or(glyph),
            PROCESS_COLOURS[pid as usize % PROCESS_COLOURS.len()],
        ),
        _ => (glyph, colour),
    };
    Span::styled(glyph.to_string(), theme.fg(colour))
}

/// The owner map in `rows` lines of `width` cells at the map's zoom; each
/// cell shows the owner of most of its used frames, free only when all are.
fn owner_map_lines(s: &State, width: usize, rows: usize, theme: &Theme) -> Vec<Line<'static>> {
    let map = &s.owner_map;
    let cells = width * rows;
    let (first, per_cell) = map.window(cells as u64);
    let end = first.saturating_add(per_cell * cells as u64);
    // Per cell, frames by owner: a cell holds few owners, a short list is
    // enough.
    let mut counts: Vec<Vec<(Option<FrameOwner>, u64)>> = vec![Vec::new(); cells];
    let from = map.spans.partition_point(|r| r.start + r.frames <= first);
    for run in map.spans[from..].iter().take_while(|r| r.start < end) {
        let mut at = run.start.max(first);
        let stop = (run.start + run.frames).min(end);
        while at < stop {
            let cell = ((at - first) / per_cell) as usize;
            let cell_end = (first + (cell as u64 + 1) * per_cell).min(stop);
            let list = &mut counts[cell];
            match list.iter_mut().find(|(o, _)| *o == run.owner) {
                Some((_, n)) => *n += cell_end - at,
                None => list.push((run.owner, cell_end - at)),
            }
            at = cell_end;
        }
    }
    counts
        .chunks(width)
        .map(|row| {
            Line::from(
                row.iter()
                    .map(|list| {
                        // A used frame wins over free ones: a few frames
                        // of a process in a cell of mostly free memory are
                        // what the map is for.
                        let used = list.iter().filter(|(o, _)| o.is_some());
                        match used.max_by_key(|(_, n)| *n).or(list.first()) {
                            Some((owner, _)) => owner_cell(*owner, theme),
                            None => Span::raw(" "),
                        }
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

fn physical(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let mut lines = vec![heading(View::Physical.title().into(), theme)];
    let wide = area.width >= WIDE;
    match &s.stats {
        None => lines.push(Line::raw("no memory snapshot yet")),
        Some(m) => {
            lines.push(Line::raw(format!(
                "{} frames, {} used, {} free",
                m.total_frames,
                m.total_frames.saturating_sub(m.free_frames),
                m.free_frames
            )));
            // The legend: each owner's letter with its count.
            let mut legend = Vec::new();
            for (i, (name, n)) in m.usage.by_owner().into_iter().enumerate() {
                if n == 0 || i == 1 {
                    continue;
                }
                let (glyph, colour) = OWNER_GLYPHS[i];
                let glyph = if i == 9 {
                    "0-9".into()
                } else {
                    glyph.to_string()
                };
                legend.push(Span::styled(
                    glyph,
                    theme.fg(colour).add_modifier(Modifier::BOLD),
                ));
                legend.push(Span::raw(format!(" {name} {n}  ")));
            }
            lines.push(Line::from(legend));
        }
    }
    let map = &s.owner_map;
    let width = (area.width as usize).max(1);
    let rows = ((area.height as usize).saturating_sub(6) / 2).clamp(3, 24);
    if !s.speaks(OWNER_MAP_SINCE) && s.version.is_some() {
        lines.push(Line::raw(
            "(the kernel is older than the owner map, protocol 2.1)",
        ));
    } else if map.end.is_none() {
        lines.push(Line::raw("frame map: asking the kernel…"));
    } else {
        let (first, per_cell) = map.window((width * rows) as u64);
        let last = (first + per_cell * (width * rows) as u64).min(map.total_frames());
        lines.push(Line::raw(format!(
            "frame map: frames {first:#x}-{:#x} ({}), {per_cell} a cell, zoom {}x",
            last.saturating_sub(1),
            human_bytes(crate::format::frames_to_bytes(last - first)),
            1u64 << map.zoom,
        )));
        lines.extend(owner_map_lines(s, width, rows, theme));
    }
    if wide && let Some(m) = &s.stats {
        lines.push(Line::raw(""));
        let owners = m.usage.by_owner();
        let max = owners.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let bar_width = (area.width as usize).saturating_sub(23).max(4);
        for (name, n) in owners {
            let (full, _) = bar(n, max, bar_width);
            let color = if name == "free" {
                Color::Green
            } else {
                Color::Blue
            };
            lines.push(Line::from(vec![
                Span::raw(format!("{name:<13}{n:>8} ")),
                Span::styled(full, theme.fg(color)),
            ]));
        }
    }
    lines.push(Line::raw(""));
    lines.extend(check_lines(s, theme));
    // Wrapped for the legend; map rows are exactly as wide as the area.
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((s.scroll as u16, 0)),
        area,
    );
}

fn check_lines(s: &State, theme: &Theme) -> Vec<Line<'static>> {
    let c = &s.check;
    let mut lines = Vec::new();
    if !c.pending && c.frame.is_none() && c.end.is_none() {
        lines.push(Line::raw("last check: none (press c to run one)"));
        return lines;
    }
    let verdict = |ok: bool| {
        if ok {
            Span::styled("consistent", theme.fg(Color::Green))
        } else {
            Span::styled("INCONSISTENT", theme.alert())
        }
    };
    lines.push(heading(
        if c.pending {
            "last check: running…".into()
        } else {
            "last check:".into()
        },
        theme,
    ));
    if let Some(f) = &c.frame {
        lines.push(Line::from(vec![
            Span::raw("  frame bitmap: "),
            verdict(f.consistent),
            Span::raw(format!(
                " (free {} counted, {} recorded)",
                f.free_counted, f.free_recorded
            )),
        ]));
    }
    if let Some(h) = &c.heap {
        let mut spans = vec![Span::raw("  kernel heap: "), verdict(h.ok)];
        if let Some(e) = h.error {
            spans.push(Span::raw(format!(" ({e} at {:#x})", h.addr)));
        }
        lines.push(Line::from(spans));
    }
    if let Some(e) = &c.end {
        lines.push(Line::from(vec![
            Span::raw("  mappings: "),
            verdict(e.consistent),
            Span::raw(format!(
                " ({} spaces, {} mappings, {} findings, {} µs)",
                e.spaces, e.mappings, e.findings, e.duration_us
            )),
        ]));
    }
    for f in &c.findings {
        lines.push(Line::raw(format!("  {}", FindingLine(f))));
    }
    lines
}

fn page_tables(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let d = &s.ptdump;
    let mut lines = Vec::new();
    if !d.pending && d.end.is_none() {
        lines.push(heading(View::PageTables.title().into(), theme));
        lines.push(Line::raw(
            "no dump yet: p dumps the selected process's tables, K the kernel's",
        ));
    } else {
        lines.push(heading(
            format!(
                "{}: {}{}",
                View::PageTables.title(),
                SpaceName(d.pid),
                if d.pending { " (dumping…)" } else { "" }
            ),
            theme,
        ));
        if s.pt_show_diff {
            lines.extend(pt_diff_lines(s, theme));
            frame.render_widget(Paragraph::new(lines).scroll((s.scroll as u16, 0)), area);
            return;
        }
        lines.extend(
            d.ranges
                .iter()
                .map(|r| Line::raw(PtRangeLine(r).to_string())),
        );
        lines.extend(
            d.audits
                .iter()
                .map(|a| Line::styled(AuditLine(a).to_string(), theme.alert())),
        );
        if let Some(e) = &d.end {
            if e.complete {
                lines.extend(
                    DumpSummary(e)
                        .to_string()
                        .lines()
                        .map(|l| Line::raw(l.to_owned())),
                );
            } else {
                lines.push(Line::styled(
                    format!("no address space for {}", SpaceName(d.pid)),
                    theme.alert(),
                ));
            }
        }
    }
    frame.render_widget(Paragraph::new(lines).scroll((s.scroll as u16, 0)), area);
}

/// The diff of the last dump with the one before it of the same space, as
/// `mmtop diff` prints it: `-` removed, `+` added, then the counts.
fn pt_diff_lines(s: &State, theme: &Theme) -> Vec<Line<'static>> {
    let d = &s.ptdump;
    match (&d.diff, &d.end) {
        (_, None) => vec![Line::raw("dumping…")],
        (None, Some(_)) => vec![Line::raw(
            "no earlier dump of this space to compare with: press p (or K) again later",
        )],
        (Some((at, diff)), Some(end)) => {
            let mut lines = vec![Line::raw(format!(
                "changes since the dump at {} (this one at {}):",
                human_time(*at),
                human_time(end.ts_us)
            ))];
            if diff.is_empty() {
                lines.push(Line::styled("no change", theme.fg(Color::Green)));
            }
            lines.extend(diff.text().lines().map(|l| {
                let style = match l.as_bytes().first() {
                    Some(b'-') => theme.fg(Color::Red),
                    Some(b'+') => theme.fg(Color::Green),
                    _ => theme.bold(),
                };
                Line::styled(l.to_owned(), style)
            }));
            lines
        }
    }
}

fn events(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let filter = if s.event_filter.is_empty() {
        String::new()
    } else {
        format!(", filter '{}'", s.event_filter.text)
    };
    let title = format!(
        "{} ({}, {} lines{filter})",
        View::Events.title(),
        if s.paused_at.is_some() {
            "paused"
        } else {
            "live"
        },
        s.log_total
    );
    let [title_area, log_area] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(area);
    frame.render_widget(Paragraph::new(heading(title, theme)), title_area);
    let visible: Vec<&LogLine> = s.visible_log().collect();
    let end = visible.len().saturating_sub(s.scroll);
    let start = end.saturating_sub(log_area.height as usize);
    let lines: Vec<Line> = visible[start..end]
        .iter()
        .map(|l| Line::raw(l.text.as_str()))
        .collect();
    frame.render_widget(Paragraph::new(lines), log_area);
}

/// An age in milliseconds as a person reads it: `850ms`, `12.3s`, `4m05s`.
fn age(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{}.{}s", ms / 1000, ms % 1000 / 100),
        _ => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
    }
}

fn leaks(frame: &mut Frame, area: Rect, s: &State, theme: &Theme) {
    let l = &s.leaks;
    let mut lines = vec![heading(View::Leaks.title().into(), theme)];
    if s.version.is_some() && !s.speaks(LEAK_SCAN_SINCE) {
        lines.push(Line::styled(
            format!(
                "the kernel speaks protocol {}; the leak scan needs {}.{}",
                s.version
                    .map_or_else(String::new, |v| format!("{}.{}", v.major, v.minor)),
                LEAK_SCAN_SINCE.major,
                LEAK_SCAN_SINCE.minor
            ),
            theme.alert(),
        ));
    }
    match (&l.end, l.scan_pending) {
        (_, true) => lines.push(Line::raw("kernel leak scan: scanning…")),
        (None, false) => lines.push(Line::raw(
            "kernel leak scan: none yet (press s to scan the kernel heap)",
        )),
        (Some(e), false) => {
            let style = if e.leaks > 0 {
                theme.alert()
            } else {
                theme.fg(Color::Green)
            };
            lines.push(Line::styled(LeakScanLine(e).to_string(), style));
        }
    }
    if !l.leaks.is_empty() {
        lines.push(Line::styled(
            format!(
                "{:<18} {:>6} {:>7} {:<9} CALL SITE",
                "ADDRESS", "SIZE", "AGE", "STATE"
            ),
            theme.bold().add_modifier(Modifier::UNDERLINED),
        ));
    }
    for row in &l.leaks {
        let k = &row.leak;
        let site = match (&row.symbol, row.site) {
            (Some(name), _) => escape_controls(name),
            (None, 0) => "(call site not recorded)".into(),
            (None, at) => format!("{at:#x}"),
        };
        let (word, style) = if k.confirmed {
            ("confirmed", theme.alert())
        } else {
            ("new", theme.fg(Color::Yellow))
        };
        let mut row = vec![
            Span::raw(format!(
                "{:#018x} {:>6} {:>7} ",
                k.addr,
                compact(k.size),
                age(k.age_ms)
            )),
            Span::styled(format!("{word:<9}"), style),
        ];
        // A name with its file:line rarely fits beside the rest in 80
        // columns: there it goes on a line of its own, as `leaks` prints.
        if area.width >= WIDE {
            row.push(Span::raw(format!(" {site}")));
            lines.push(Line::from(row));
        } else {
            lines.push(Line::from(row));
            lines.push(Line::raw(format!("    from {site}")));
        }
    }
    lines.push(Line::raw(""));
    let names = |pid: u32| {
        s.programs.iter().find(|p| p.info.pid == pid).map_or_else(
            || format!("Program-{pid}"),
            |p| escape_controls(&p.info.name),
        )
    };
    let title = match (&l.blocks_end, l.blocks_pending) {
        (_, true) => "blocks in use by key: asking…".to_string(),
        (None, false) => "blocks in use by key: asked for with each scan".to_string(),
        (Some(e), false) => format!(
            "blocks in use by key ({} programs{})",
            e.processes,
            if e.complete {
                ""
            } else {
                ", a walk was cut short"
            }
        ),
    };
    lines.push(heading(title, theme));
    // Columns as wide as their widest cell: a program's keys are small
    // numbers, the kernel's are call sites (shown in hex).
    let rows: Vec<[String; 7]> = l
        .blocks
        .iter()
        .map(|b| {
            [
                b.pid.to_string(),
                names(b.pid),
                heap_name(b.pid, b.heap_id),
                if b.pid == probe_proto::KERNEL_PID {
                    format!("{:#x}", b.key)
                } else {
                    b.key.to_string()
                },
                b.blocks.to_string(),
                compact(b.bytes),
                format!("{:#x}", b.first_addr),
            ]
        })
        .collect();
    let header = ["PID", "NAME", "HEAP", "KEY", "BLOCKS", "BYTES", "FIRST"];
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|r| r[c].chars().count())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (c, cell) in cells.iter().enumerate() {
            // Numbers right-aligned, names left.
            let cell = if (3..6).contains(&c) {
                format!("{cell:>w$} ", w = widths[c])
            } else {
                format!("{cell:<w$} ", w = widths[c])
            };
            text.push_str(&cell);
        }
        text.trim_end().to_owned()
    };
    if !rows.is_empty() {
        lines.push(Line::styled(
            line(header),
            theme.bold().add_modifier(Modifier::UNDERLINED),
        ));
    }
    for r in &rows {
        lines.push(Line::raw(line(std::array::from_fn(|c| r[c].as_str()))));
    }
    if !l.exited.is_empty() {
        lines.push(Line::raw(""));
        lines.push(heading(
            format!("left behind when a heap went away ({})", l.exited.len()),
            theme,
        ));
        for b in l.exited.iter().rev() {
            lines.push(Line::styled(
                format!(
                    "pid {:<5} {:<10} key {:<8} {} blocks, {}, first at {:#x}",
                    b.pid,
                    heap_name(b.pid, b.heap_id),
                    b.key,
                    b.blocks,
                    human_bytes(b.bytes),
                    b.first_addr
                ),
                theme.fg(Color::Yellow),
            ));
        }
    }
    // Wrapped: the summary line and a call site's name are longer than 80
    // columns, and their ends (bytes scanned, file:line) matter.
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(ratatui::widgets::Wrap { trim: false })
            .scroll((s.scroll as u16, 0)),
        area,
    );
}

const HELP: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("Tab, 1-6", "switch view"),
    ("↑↓ j k PgUp PgDn", "select / scroll"),
    ("Enter", "process detail"),
    ("Esc", "back to processes"),
    ("s / r", "sort column / reverse"),
    ("s (leaks)", "scan the kernel heap for leaks"),
    ("/", "filter by name"),
    ("c", "run a consistency check"),
    ("z / x, ← →", "physical map: zoom in / out, pan"),
    ("p / K", "dump page tables: selected / kernel"),
    ("d", "page tables: diff with the previous dump"),
    ("space", "pause the event log"),
    ("f", "events: filter by kind and pid"),
    ("?", "close this help"),
];

fn help(frame: &mut Frame, body: Rect, theme: &Theme) {
    let height = (HELP.len() as u16 + 2).min(body.height);
    let width = 56.min(body.width);
    let area = Rect {
        x: body.x + (body.width - width) / 2,
        y: body.y + (body.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| Line::raw(format!("{k:<18} {what}")))
        .collect();
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" help ")
                .border_style(theme.bold()),
        ),
        area,
    );
}
