//! One frame of the live display as lines of text: the part the bar renderer redraws below
//! the scrolling log. Pure (state, size and clock in; lines out), so frames can be tested as
//! text.

use super::text::{bytes, clean_line, display_width, duration, fit, take_columns, where_built};
use crate::monitor::{host_of, RunningBuild, State, Transfer, TransferKind};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The size of the terminal a frame is drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    /// Columns.
    pub cols: usize,
    /// Rows.
    pub rows: usize,
}

impl TermSize {
    /// What to assume when the terminal does not say.
    pub const FALLBACK: TermSize = TermSize { cols: 80, rows: 24 };
}

/// What a frame shows besides the state.
#[derive(Debug, Clone, Copy)]
pub struct FrameInput<'a> {
    /// The run's mode and the reason for it, when the caller gave them.
    pub header: Option<(&'a str, &'a str)>,
    /// How long the display has been up (the header's clock).
    pub elapsed: Duration,
    /// Now, for the running builds' times.
    pub now: Instant,
    /// The terminal's size: no line is wider, and the frame is never taller.
    pub size: TermSize,
    /// Whether to colour.
    pub color: bool,
    /// What the whole run has left, when the history knows any of its steps.
    pub estimate: Option<crate::history::estimate::Estimate>,
}

/// The widest overall bar, in columns.
const MAX_BAR: usize = 25;
/// The narrowest overall bar worth drawing; narrower terminals get the numbers only.
const MIN_BAR: usize = 5;
/// The width of the overall rows' names ("downloads").
const PREFIX: usize = 9;
/// A transfer gets its own line once it has been running this long (short ones would flicker).
const TRANSFER_LINE_AFTER: Duration = Duration::from_secs(1);
const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// The frame's lines, top to bottom: the header (spinner, mode and reason, clock), the overall
/// rows for builds, downloads and copies, then one line per running build and per long
/// transfer, as many as the terminal has rows for.
pub fn frame(state: &State, input: &FrameInput<'_>) -> Vec<String> {
    let width = input.size.cols.max(1);
    let mut lines = vec![header_line(input, width)];
    lines.extend(overall_lines(state, width, input.color));
    let mut details: Vec<String> = state
        .running_builds()
        .map(|b| build_line(b, input.now, width, input.color))
        .collect();
    details.extend(
        state
            .running_transfers()
            .filter(|t| input.now.saturating_duration_since(t.started) >= TRANSFER_LINE_AFTER)
            .map(|t| transfer_line(t, input.now, width, input.color)),
    );
    // Leave the last row to the cursor: a frame as tall as the terminal scrolls.
    let room = input.size.rows.saturating_sub(1).max(1);
    if lines.len() >= room {
        lines.truncate(room);
        return lines;
    }
    let left = room - lines.len();
    if details.len() > left {
        let shown = left.saturating_sub(1);
        let more = details.len() - shown;
        details.truncate(shown);
        details.push(
            Line::default()
                .add("  ", "")
                .add(format!("… and {more} more"), "2")
                .render(width, input.color),
        );
    }
    lines.extend(details);
    lines
}

/// The deepest a tree line is indented; deeper steps line up there.
const MAX_TREE_DEPTH: usize = 12;

/// `--progress tree`: the header and overall rows, then the run's dependency tree (each top
/// step with what it waits for below it): done `✓`, running `⏵` (copies `↓`) with host,
/// elapsed and expected times, waiting `·`. Never taller than the terminal: the running steps
/// always stay, then waiting ones, then done ones, the rest counted on one line. Without the
/// run's steps (`nixdispatch monitor`) it is the bars' frame.
pub fn tree_frame(state: &State, input: &FrameInput<'_>) -> Vec<String> {
    let Some(run) = state.run_steps() else {
        return frame(state, input);
    };
    let width = input.size.cols.max(1);
    let mut lines = vec![header_line(input, width)];
    lines.extend(overall_lines(state, width, input.color));
    let room = input.size.rows.saturating_sub(1).max(1);
    if lines.len() >= room {
        lines.truncate(room);
        return lines;
    }
    // Depth-first from the tops, each step once (where it is first reached).
    let steps = run.steps();
    let mut seen = vec![false; steps.len()];
    let mut order: Vec<(usize, usize)> = Vec::new();
    let mut roots = run.roots();
    roots.sort_by(|a, b| steps[*a].name.cmp(&steps[*b].name));
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push((i, depth));
        let mut deps: Vec<usize> = steps[i]
            .deps
            .iter()
            .copied()
            .filter(|d| !seen[*d])
            .collect();
        deps.sort_by(|a, b| steps[*b].name.cmp(&steps[*a].name));
        stack.extend(deps.into_iter().map(|d| (d, depth + 1)));
    }
    // What fits: running first, then waiting, then done; shown in tree order.
    let rank = |i: usize| match run.progress(i) {
        Some(Some(_)) => 0,
        None => 1,
        Some(None) => 2,
    };
    let left = room - lines.len();
    let mut keep = vec![false; steps.len()];
    let mut hidden = [0usize; 3];
    if order.len() <= left {
        order.iter().for_each(|(i, _)| keep[*i] = true);
    } else {
        let mut by_rank: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
        by_rank.sort_by_key(|i| rank(*i));
        let shown = left.saturating_sub(1);
        for (n, i) in by_rank.into_iter().enumerate() {
            if n < shown {
                keep[i] = true;
            } else {
                hidden[rank(i)] += 1;
            }
        }
    }
    for (i, depth) in order {
        if keep[i] {
            lines.push(tree_line(run, i, depth, input, width));
        }
    }
    if hidden.iter().any(|n| *n > 0) {
        let words: Vec<String> = [
            (hidden[0], "running"),
            (hidden[1], "waiting"),
            (hidden[2], "done"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, w)| format!("{n} {w}"))
        .collect();
        lines.push(
            Line::default()
                .add("  ", "")
                .add(format!("… {} not shown", words.join(", ")), "2")
                .render(width, input.color),
        );
    }
    lines
}

/// One step of the tree: `  ⏵ NAME on HOST 3.0s of ~5.0s`, indented by its depth.
fn tree_line(
    run: &crate::history::RunEstimate,
    i: usize,
    depth: usize,
    input: &FrameInput<'_>,
    width: usize,
) -> String {
    use crate::history::StepKind;
    let step = &run.steps()[i];
    let expected = step.secs.and_then(|s| Duration::try_from_secs_f64(s).ok());
    let indent = "  ".repeat(depth.min(MAX_TREE_DEPTH) + 1);
    let place = match step.kind {
        StepKind::Build => format!(" {}", where_built(&step.place)),
        StepKind::Copy => format!(" from {}", host_of(&step.place)),
    };
    let (glyph, style, time) = match run.progress(i) {
        Some(Some(started)) => (
            if step.kind == StepKind::Copy {
                "↓"
            } else {
                "⏵"
            },
            "33",
            with_expected(
                duration(input.now.saturating_duration_since(started)),
                expected,
            ),
        ),
        None => (
            "·",
            "2",
            expected.map_or(String::new(), |e| format!("~{}", duration(e))),
        ),
        Some(None) => ("✓", "32", String::new()),
    };
    let mut line = Line::default()
        .add(indent, "")
        .add(glyph, style)
        .add(" ", "")
        .add(&step.name, if glyph == "·" { "2" } else { "" })
        .add(place, "2");
    if !time.is_empty() {
        line = line.add(" ", "").add(time, "2");
    }
    line.render(width, input.color)
}

fn header_line(input: &FrameInput<'_>, width: usize) -> String {
    let spinner = SPINNER[(input.elapsed.as_millis() / 100 % SPINNER.len() as u128) as usize];
    let mut clock = clock(input.elapsed);
    if let Some(estimate) = &input.estimate {
        let left = self::clock(Duration::from_secs_f64(estimate.secs.clamp(0.0, 1e9)));
        // "≥": some steps are new to the history, so the run takes longer than this.
        let approx = if estimate.partial { "≥" } else { "~" };
        clock = format!("{clock}, {approx}{left} left");
    }
    let mut text = Line::default().add(spinner, "36").add(" ", "");
    match input.header {
        Some((mode, reason)) => {
            text = text
                .add("mode: ", "")
                .add(mode, "1")
                .add(format!(" — {reason}"), "");
        }
        None => text = text.add("following nix", ""),
    }
    let clock_width = display_width(&clock);
    if width < clock_width + 12 {
        return text.render(width, input.color);
    }
    let room = width - clock_width - 1;
    let shown = text.render(room, input.color);
    let pad = room - text.width().min(room);
    format!(
        "{shown}{} {}",
        " ".repeat(pad),
        paint(&clock, "2", input.color)
    )
}

/// Elapsed time for the header: whole seconds, so it does not flicker.
fn clock(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// One overall row before layout: its name, how full its bar is, and its numbers (in full,
/// and short for narrow terminals).
struct Overall {
    name: &'static str,
    done: u64,
    total: u64,
    text: String,
    short: String,
}

fn overall_lines(state: &State, width: usize, color: bool) -> Vec<String> {
    let mut rows = Vec::new();
    let builds = state.builds();
    if builds.done + builds.running + builds.failed > 0 {
        let waiting = builds
            .expected
            .saturating_sub(builds.done + builds.running + builds.failed);
        let mut text = format!(
            "{}/{} done, {} running, {waiting} waiting",
            builds.done, builds.expected, builds.running
        );
        let mut short = format!(
            "{}/{}, {} running",
            builds.done, builds.expected, builds.running
        );
        if builds.failed > 0 {
            text.push_str(&format!(", {} failed", builds.failed));
            short.push_str(&format!(", {} failed", builds.failed));
        }
        rows.push(Overall {
            name: "builds",
            done: builds.done + builds.failed,
            total: builds.expected,
            text,
            short,
        });
    }
    let downloads = state.downloads();
    if downloads.expected > 0 {
        let from = hosts(&state.peers(TransferKind::Substitute));
        rows.push(transfer_row(
            "downloads",
            downloads,
            if from.is_empty() {
                String::new()
            } else {
                format!(" from {from}")
            },
        ));
    }
    let copies = state.copies();
    if copies.expected > 0 {
        let from = hosts(&state.peers(TransferKind::CopyFrom));
        let to = hosts(&state.peers(TransferKind::CopyTo));
        let peers = match (from.is_empty(), to.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!(" from {from}"),
            (true, false) => format!(" to {to}"),
            (false, false) if from == to => format!(" to and from {from}"),
            (false, false) => format!(" from {from}, to {to}"),
        };
        rows.push(transfer_row("copies", copies, peers));
    }
    // Narrow terminals get the short numbers before anything is cut; the bars take what is left.
    let room = width.saturating_sub(PREFIX + 1);
    if rows.iter().any(|r| display_width(&r.text) > room) {
        for row in &mut rows {
            row.text = std::mem::take(&mut row.short);
        }
    }
    let widest = rows.iter().map(|r| display_width(&r.text)).max();
    let Some(widest) = widest else {
        return Vec::new();
    };
    // One bar width for all rows, so they line up; the numbers get the room first.
    let bar = width.saturating_sub(PREFIX + 4 + widest).min(MAX_BAR);
    rows.iter()
        .map(|row| {
            let mut line = Line::default().add(format!("{:>PREFIX$}", row.name), "1");
            if bar >= MIN_BAR {
                let (filled, rest) = bar_glyphs(row.done, row.total, bar);
                line = line
                    .add(" [", "")
                    .add(filled, "36")
                    .add(rest, "34")
                    .add("]", "");
            }
            line.add(" ", "").add(&row.text, "").render(width, color)
        })
        .collect()
}

fn transfer_row(name: &'static str, counts: crate::monitor::Counts, peers: String) -> Overall {
    let (done, total) = if counts.bytes_expected > 0 {
        (
            counts.bytes_done.min(counts.bytes_expected),
            counts.bytes_expected,
        )
    } else {
        (counts.done, counts.expected.max(1))
    };
    Overall {
        name,
        done,
        total,
        text: format!(
            "{}/{} paths{}{peers}",
            counts.done,
            counts.expected,
            byte_progress(counts.bytes_done, counts.bytes_expected)
        ),
        short: if counts.bytes_done > 0 {
            format!(
                "{}/{}, {}",
                counts.done,
                counts.expected,
                bytes(counts.bytes_done)
            )
        } else {
            format!("{}/{}", counts.done, counts.expected)
        },
    }
}

/// The filled part (`====>`) and the rest (blanks) of a bar `width` columns wide.
fn bar_glyphs(done: u64, total: u64, width: usize) -> (String, String) {
    let ratio = if total == 0 {
        0.0
    } else {
        (done.min(total) as f64) / (total as f64)
    };
    let filled = ((ratio * width as f64) as usize).min(width);
    if filled == width {
        ("=".repeat(width), String::new())
    } else if done == 0 {
        (String::new(), " ".repeat(width))
    } else {
        (
            format!("{}>", "=".repeat(filled)),
            " ".repeat(width - filled - 1),
        )
    }
}

/// "a, b" for the hosts of these store URIs.
fn hosts(uris: &BTreeSet<&str>) -> String {
    let hosts: BTreeSet<&str> = uris.iter().map(|u| host_of(u)).collect();
    hosts.into_iter().collect::<Vec<_>>().join(", ")
}

/// ", 1.2 MiB of 6.0 MiB", ", 1.2 MiB", or nothing while nix reported no sizes.
pub fn byte_progress(done: u64, expected: u64) -> String {
    if expected > 0 {
        format!(", {} of {}", bytes(done.min(expected)), bytes(expected))
    } else if done > 0 {
        format!(", {}", bytes(done))
    } else {
        String::new()
    }
}

/// `  ⏵ NAME on HOST (PHASE) 12s: LAST LOG LINE`, shortened to `width`: first the log line
/// goes, then the phase, then the name is cut, then the host goes; the time always stays.
fn build_line(build: &RunningBuild, now: Instant, width: usize, color: bool) -> String {
    let elapsed = with_expected(
        duration(now.saturating_duration_since(build.building_since())),
        build.expected_time,
    );
    let place = if build.copy_back {
        format!(" from {} (built there before)", host_of(&build.host))
    } else {
        format!(" {}", where_built(&build.host))
    };
    let mut phase = build
        .phase
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    let marker = if build.copy_back { "  ↓ " } else { "  ⏵ " };
    let fixed = |place: &str, phase: &str| {
        display_width(marker) + display_width(place) + display_width(phase) + 1 + elapsed.len()
    };
    let name_width = display_width(&build.name);
    let mut place = place;
    if fixed(&place, &phase) + name_width.min(16) > width {
        phase.clear();
    }
    if fixed(&place, &phase) + name_width.min(12) > width {
        place.clear();
    }
    let name = fit(&build.name, width.saturating_sub(fixed(&place, &phase)));
    let mut line = Line::default()
        .add(marker, "33")
        .add(name, "")
        .add(place, "")
        .add(phase, "2")
        .add(" ", "")
        .add(elapsed, "2");
    if let Some(last) = build.last_line().map(clean_line).filter(|l| !l.is_empty()) {
        let room = width.saturating_sub(line.width() + 2);
        if room >= 8 {
            line = line.add(": ", "").add(fit(&last, room), "2");
        }
    }
    line.render(width, color)
}

/// `  ↓ NAME 1.2 MiB of 6.0 MiB from HOST 3.1s` (`↑ … to HOST` for paths sent away); on a
/// narrow terminal the expected size goes first, then the time, then the line is cut.
fn transfer_line(transfer: &Transfer, now: Instant, width: usize, color: bool) -> String {
    let (arrow, dir) = match transfer.kind {
        TransferKind::Substitute | TransferKind::CopyFrom => ("  ↓ ", "from"),
        TransferKind::CopyTo => ("  ↑ ", "to"),
    };
    let full = byte_progress(transfer.done, transfer.expected);
    let full = full.trim_start_matches(", ");
    let done = byte_progress(transfer.done, 0);
    let done = done.trim_start_matches(", ");
    let peer = format!(" {dir} {}", host_of(&transfer.peer));
    let elapsed = format!(
        " {}",
        with_expected(
            duration(now.saturating_duration_since(transfer.started)),
            transfer.expected_time
        )
    );
    let line = |size: &str, elapsed: &str| {
        let mut line = Line::default().add(arrow, "36").add(&transfer.name, "");
        if !size.is_empty() {
            line = line.add(format!(" {size}"), "");
        }
        line.add(&peer, "").add(elapsed, "2")
    };
    // The rate so far, and what is left at that rate, once bytes move.
    let secs = now
        .saturating_duration_since(transfer.started)
        .as_secs_f64();
    let rate = (transfer.done > 0 && secs > 0.0).then(|| transfer.done as f64 / secs);
    let with_rate = match rate {
        Some(rate) if transfer.expected > transfer.done => {
            let left = (transfer.expected - transfer.done) as f64 / rate;
            format!(
                "{full}, {}/s, {} left",
                bytes(rate as u64),
                duration(Duration::try_from_secs_f64(left).unwrap_or_default())
            )
        }
        Some(rate) => format!("{full}, {}/s", bytes(rate as u64)),
        None => full.to_string(),
    };
    let candidates = [
        line(&with_rate, &elapsed),
        line(full, &elapsed),
        line(done, &elapsed),
        line(done, ""),
    ];
    let fitting = candidates.iter().find(|l| l.width() <= width);
    fitting.unwrap_or(&candidates[3]).render(width, color)
}

/// `12s` beside what the history expects: `12s of ~30s`; alone when it does not know.
fn with_expected(elapsed: String, expected: Option<Duration>) -> String {
    match expected {
        Some(e) => format!("{elapsed} of ~{}", duration(e)),
        None => elapsed,
    }
}

fn paint(text: &str, style: &str, color: bool) -> String {
    if color && !style.is_empty() && !text.is_empty() {
        format!("\u{1b}[{style}m{text}\u{1b}[0m")
    } else {
        text.to_string()
    }
}

/// A line made of differently styled pieces, cut to a width as a whole.
#[derive(Debug, Default)]
struct Line(Vec<(String, &'static str)>);

impl Line {
    /// Appends `text` in `style` (SGR parameters, "" for none).
    fn add(mut self, text: impl Into<String>, style: &'static str) -> Self {
        self.0.push((text.into(), style));
        self
    }

    /// Columns taken, unstyled.
    fn width(&self) -> usize {
        self.0.iter().map(|(t, _)| display_width(t)).sum()
    }

    /// The line at most `width` columns wide (ending in `…` when cut), styled when `color`.
    fn render(&self, width: usize, color: bool) -> String {
        let cut = self.width() > width;
        let mut budget = if cut { width.saturating_sub(1) } else { width };
        let mut out = String::new();
        for (text, style) in &self.0 {
            if budget == 0 {
                break;
            }
            let piece = if display_width(text) <= budget {
                text.clone()
            } else {
                take_columns(text, budget)
            };
            budget -= display_width(&piece);
            out.push_str(&paint(&piece, style, color));
        }
        if cut && width > 0 {
            out.push('…');
        }
        out
    }
}
