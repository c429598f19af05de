//! The human sentences shared by the bar, plain and silent renderers.

use crate::log::{strip_ansi, Verbosity};
use crate::monitor::{
    drv_paths_in, host_of, store_path_name, FailedBuild, Happening, Summary, TransferKind,
};
use std::time::Duration;

/// "local" or "on seasmoke", for a build host key.
pub fn where_built(host: &str) -> String {
    if host == "local" {
        "locally".to_string()
    } else {
        format!("on {}", host_of(host))
    }
}

/// A duration for people: `0.4s`, `12s`, `3m05s`, `1h02m`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 10 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Bytes for people: `512 B`, `6.00 MiB`.
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// The one line a happening gets in a log-style display, or `None` when it gets none at this
/// verbosity. Never contains escape codes.
pub fn happening_line(happening: &Happening, verbose: u8) -> Option<String> {
    match happening {
        Happening::BuildStarted {
            drv_path,
            host,
            expected,
            copy_back: true,
        } => Some(format!(
            "copying {} from {} (built there before){}",
            store_path_name(drv_path),
            host_of(host),
            expected_note(*expected)
        )),
        Happening::BuildStarted {
            drv_path,
            host,
            expected,
            copy_back: false,
        } => Some(format!(
            "building {} {}{}",
            store_path_name(drv_path),
            where_built(host),
            expected_note(*expected)
        )),
        Happening::BuildFinished {
            drv_path,
            host,
            elapsed,
        } => Some(format!(
            "built {} {} in {}",
            store_path_name(drv_path),
            where_built(host),
            duration(*elapsed)
        )),
        Happening::BuildReused { drv_path, host } => Some(format!(
            "{} was already built {}: copied here, not rebuilt",
            store_path_name(drv_path),
            where_built(host)
        )),
        Happening::BuildCancelled {
            drv_path,
            host,
            elapsed,
        } => Some(format!(
            "cancelled {} {} after {}: nix stopped it unfinished",
            store_path_name(drv_path),
            where_built(host),
            duration(*elapsed)
        )),
        Happening::BuildFailed { build } => Some(failure_block(build)),
        Happening::BuildLog { drv_path, line } if verbose > 0 => Some(log_line(drv_path, line)),
        Happening::BuildPhase { drv_path, phase } if verbose > 0 => {
            Some(format!("{}: {phase}", store_path_name(drv_path)))
        }
        Happening::BuildLog { .. } | Happening::BuildPhase { .. } => None,
        Happening::TransferStarted {
            kind,
            path,
            peer,
            expected,
            ..
        } => {
            let (verb, dir) = match kind {
                TransferKind::Substitute => ("fetching", "from"),
                TransferKind::CopyFrom => ("copying", "from"),
                TransferKind::CopyTo => ("copying", "to"),
            };
            Some(format!(
                "{verb} {} {dir} {peer}{}",
                store_path_name(path),
                expected_note(*expected)
            ))
        }
        Happening::TransferFinished {
            kind,
            path,
            peer,
            bytes: n,
            elapsed,
            ..
        } => {
            let (verb, dir) = match kind {
                TransferKind::Substitute => ("fetched", "from"),
                TransferKind::CopyFrom => ("copied", "from"),
                TransferKind::CopyTo => ("copied", "to"),
            };
            let size = if *n > 0 {
                format!("{}, ", bytes(*n))
            } else {
                String::new()
            };
            Some(format!(
                "{verb} {} {dir} {peer} ({size}{})",
                store_path_name(path),
                duration(*elapsed)
            ))
        }
        Happening::Message { level, text } if message_shown(*level, verbose) => Some(text.clone()),
        Happening::Message { .. } => None,
        Happening::Passthrough(line) => Some(strip_ansi(line)),
    }
}

/// What `--logs` leaves of a happening: a failed build without its log lines under
/// `--logs none`; the happening itself otherwise.
pub fn with_logs(
    happening: &Happening,
    logs: crate::cli::LogsArg,
) -> std::borrow::Cow<'_, Happening> {
    match (happening, logs) {
        (Happening::BuildFailed { build }, crate::cli::LogsArg::None) if !build.log.is_empty() => {
            let mut bare = build.clone();
            bare.log.clear();
            std::borrow::Cow::Owned(Happening::BuildFailed { build: bare })
        }
        _ => std::borrow::Cow::Borrowed(happening),
    }
}

/// A builder's log line as `--logs all` and `-v` show it: `NAME> line`.
pub fn log_line(drv_path: &str, line: &str) -> String {
    format!("{}> {}", store_path_name(drv_path), strip_ansi(line))
}

/// ` (expected 12s)`, or nothing when the history does not know.
pub fn expected_note(expected: Option<Duration>) -> String {
    expected.map_or(String::new(), |e| format!(" (expected {})", duration(e)))
}

/// `about 1m20s left`, `at least 12s left` when some steps are not known, for the whole run.
pub fn estimate_words(estimate: &crate::history::estimate::Estimate) -> String {
    let left = duration(Duration::try_from_secs_f64(estimate.secs).unwrap_or_default());
    if estimate.partial {
        format!("at least {left} left (estimate partial: some steps are new)")
    } else {
        format!("about {left} left")
    }
}

/// Whether a nix message of `level` is shown: errors and warnings always; notices and
/// information (e.g. "these 3 derivations will be built") with `-v`; chattier levels never
/// (nixdispatch runs nix with `-v` to get build activity, not to show evaluation chatter).
pub fn message_shown(level: Verbosity, verbose: u8) -> bool {
    match level {
        Verbosity::Error | Verbosity::Warn => true,
        Verbosity::Notice | Verbosity::Info => verbose > 0,
        Verbosity::Talkative => verbose > 1,
        _ => verbose > 2,
    }
}

/// "nd-fail failed locally; its last log lines:" and the lines, indented, then how to see the
/// whole log.
pub fn failure_block(build: &FailedBuild) -> String {
    failure_block_with(build, None)
}

/// [`failure_block`] with nix's reason (`builder failed with exit code 1`) when known.
pub fn failure_block_with(build: &FailedBuild, reason: Option<&str>) -> String {
    let name = store_path_name(&build.drv);
    let mut block = format!("build of {} failed {}", build.drv, where_built(&build.host));
    if let Some(reason) = reason {
        block.push_str(&format!(" ({reason})"));
    }
    if !build.log.is_empty() {
        block.push_str(&format!("; last {} log lines:", build.log.len()));
        for line in &build.log {
            block.push_str(&format!("\n  {name}> {line}"));
        }
    }
    block.push_str(&format!("\n  the whole log: nix log {}", build.drv));
    block
}

/// Whether nix's error `text` only reports the failure of builds the state follows (nix's
/// "builder for 'X' failed with exit code 1" and its log lines, 2.26's "build of 'X' on 'H'
/// failed", 2.34's "Cannot build 'X'", the closing "build of 'X', 'Y' failed"): the failure
/// block of each says it already, so a human display shows nix's report not again.
pub fn reports_known_failure(text: &str, state: &crate::monitor::State) -> bool {
    let text = strip_ansi(text);
    let headline = text.lines().next().unwrap_or_default();
    let is_report = headline.contains("builder for '")
        || headline.contains("Cannot build '")
        || (headline.contains("build of '") && headline.contains("failed"));
    let drvs = drv_paths_in(headline);
    is_report && !drvs.is_empty() && drvs.iter().all(|d| state.knows_build(d))
}

/// Why nix says a build failed, from its report: `builder failed with exit code 1`.
pub fn failure_reason(text: &str) -> Option<String> {
    let text = strip_ansi(text);
    let line = if let Some(at) = text.find("Reason: ") {
        text[at + "Reason: ".len()..].lines().next()?
    } else {
        let at = text.find("failed with ")?;
        text[at..].lines().next()?
    };
    let reason = line.trim().trim_end_matches(['.', ';']).trim();
    (!reason.is_empty()).then(|| reason.to_string())
}

/// How many failures [`Failures`] remembers.
const FAILURES_KEPT: usize = 256;

/// Each failed build said once, in one block, for the human displays: nix's own report of a
/// failure the block shows is folded into it (its reason in the block's first line, or on a
/// line of its own right after a block already shown).
#[derive(Debug, Default)]
pub struct Failures {
    reasons: std::collections::HashMap<String, String>,
    shown: std::collections::HashSet<String>,
}

impl Failures {
    /// nix's report `text` of failures the block shows: `None` to show nothing, or the reason
    /// line for blocks already shown. Call only when [`reports_known_failure`] holds.
    pub fn report(&mut self, text: &str) -> Option<String> {
        let reason = failure_reason(text)?;
        let headline = strip_ansi(text);
        let headline = headline.lines().next().unwrap_or_default();
        let drvs = drv_paths_in(headline);
        let [drv] = drvs.as_slice() else {
            // The closing "build of 'A', 'B' failed": each block said it.
            return None;
        };
        if self.shown.contains(*drv) {
            return Some(format!("  {}: {reason}", store_path_name(drv)));
        }
        if self.reasons.len() < FAILURES_KEPT {
            self.reasons.insert(drv.to_string(), reason);
        }
        None
    }

    /// The block of a failed build, with nix's reason when its report came first.
    pub fn block(&mut self, build: &FailedBuild) -> String {
        let reason = self.reasons.remove(&build.drv);
        if self.shown.len() < FAILURES_KEPT {
            self.shown.insert(build.drv.clone());
        }
        failure_block_with(build, reason.as_deref())
    }
}

/// The closing block: what was built where, fetched from where, bytes, failures, elapsed.
pub fn summary_lines(summary: &Summary) -> Vec<String> {
    let mut lines = Vec::new();
    let per = |map: &std::collections::BTreeMap<String, u64>, local_word: bool| {
        map.iter()
            .map(|(k, n)| {
                if local_word {
                    format!("{n} {}", where_built(k))
                } else {
                    format!("{n} from {k}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !summary.built.is_empty() {
        lines.push(format!(
            "built {}: {}",
            plural(summary.built_total(), "derivation"),
            per(&summary.built, true)
        ));
    }
    if !summary.reused.is_empty() {
        let on = summary
            .reused
            .iter()
            .map(|(k, n)| format!("{n} {}", where_built(k)))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "reused {} a builder had already built: {on}",
            plural(summary.reused.values().sum(), "derivation")
        ));
    }
    if !summary.substituted.is_empty() {
        lines.push(format!(
            "fetched {}: {}",
            plural(summary.substituted_total(), "path"),
            per(&summary.substituted, false)
        ));
    }
    if !summary.copied_from.is_empty() {
        lines.push(format!(
            "copied {} here: {}",
            plural(summary.copied_from.values().sum(), "path"),
            per(&summary.copied_from, false)
        ));
    }
    if !summary.copied_to.is_empty() {
        let to = summary
            .copied_to
            .iter()
            .map(|(k, n)| format!("{n} to {k}"))
            .collect::<Vec<_>>()
            .join(", ");
        lines.push(format!(
            "sent {}: {to}",
            plural(summary.copied_to.values().sum(), "path")
        ));
    }
    if summary.bytes_downloaded > 0 {
        lines.push(format!("downloaded {}", bytes(summary.bytes_downloaded)));
    }
    for (source, totals) in &summary.from_sources {
        let secs = Duration::try_from_secs_f64(totals.secs).unwrap_or_default();
        let size = if totals.bytes > 0 {
            format!("{} in ", bytes(totals.bytes))
        } else {
            String::new()
        };
        lines.push(format!(
            "  from {source}: {}, {size}{}",
            plural(totals.paths, "path"),
            duration(secs)
        ));
    }
    for failed in &summary.failed {
        lines.push(format!(
            "FAILED: {} {}",
            failed.drv,
            where_built(&failed.host)
        ));
    }
    if summary.builds_cancelled > 0 {
        let mut names: Vec<String> = summary
            .cancelled
            .iter()
            .map(|c| format!("{} {}", store_path_name(&c.drv), where_built(&c.host)))
            .collect();
        let unnamed = summary.builds_cancelled.saturating_sub(names.len() as u64);
        if unnamed > 0 {
            names.push(format!("{unnamed} more"));
        }
        lines.push(format!(
            "cancelled {} (nix stopped it unfinished, not failed): {}",
            plural(summary.builds_cancelled, "build"),
            names.join(", ")
        ));
    }
    if lines.is_empty() && summary.ok {
        lines.push("nothing to build or fetch".to_string());
    }
    let outcome = if summary.ok { "done" } else { "failed" };
    lines.push(format!(
        "{outcome} in {}",
        duration(Duration::try_from_secs_f64(summary.elapsed_secs).unwrap_or_default())
    ));
    lines
}

/// The closing block of a run that was stopped before it ended (Ctrl-C, an error in
/// nixdispatch): what it did so far, then "stopped after …".
pub fn stopped_lines(summary: &Summary) -> Vec<String> {
    let mut lines = summary_lines(summary);
    lines.pop();
    lines.retain(|l| l != "nothing to build or fetch");
    lines.push(format!(
        "stopped after {}",
        duration(Duration::try_from_secs_f64(summary.elapsed_secs).unwrap_or_default())
    ));
    lines
}

fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How many columns `text` takes on a terminal (no escape codes expected): wide East Asian
/// characters and emoji take two, combining marks none, everything else one.
pub fn display_width(text: &str) -> usize {
    text.chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    let n = c as u32;
    match n {
        0x0300..=0x036F | 0x200B..=0x200F | 0xFE00..=0xFE0F => 0,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// `text` cut to at most `width` columns, ending in `…` when something was cut.
pub fn fit(text: &str, width: usize) -> String {
    if display_width(text) <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut out = take_columns(text, width - 1);
    out.push('…');
    out
}

/// The longest start of `text` that takes at most `columns` columns.
pub fn take_columns(text: &str, columns: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = char_width(c);
        if used + w > columns {
            break;
        }
        out.push(c);
        used += w;
    }
    out
}

/// A builder's log line as one line of a display: colour codes removed, only what follows the
/// last carriage return (progress meters redraw themselves with `\r`), tabs and other control
/// characters as spaces, surrounding blanks trimmed.
pub fn clean_line(line: &str) -> String {
    let line = strip_ansi(line);
    let line = line.trim_end_matches(['\r', '\n']);
    let line = line.rsplit('\r').next().unwrap_or(line);
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// How many distinct messages [`Repeats`] remembers; later ones are all shown.
const REPEATS_KEPT: usize = 1024;

/// Keeps nix's repeated messages off a human display: a warning that differs from one already
/// shown only in the derivations it names ("Failed to find a machine for remote build!
/// derivation: …", once per derivation) and an error shown word for word before are counted
/// instead of shown again.
#[derive(Debug, Default)]
pub struct Repeats {
    seen: std::collections::HashSet<String>,
    hidden: u64,
}

impl Repeats {
    /// Whether to show a message of `level` with `text`; counts it when not.
    pub fn admit(&mut self, level: Verbosity, text: &str) -> bool {
        let key = match level {
            Verbosity::Warn => text
                .split_whitespace()
                .map(|word| {
                    if word.contains(".drv") || word.contains("/nix/store/") {
                        "…"
                    } else {
                        word
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            Verbosity::Error => text.to_string(),
            _ => return true,
        };
        if self.seen.contains(&key) {
            self.hidden += 1;
            return false;
        }
        if self.seen.len() < REPEATS_KEPT {
            self.seen.insert(key);
        }
        true
    }

    /// The line that says how many repeats were not shown, if any were.
    pub fn hidden_line(&self) -> Option<String> {
        match self.hidden {
            0 => None,
            1 => Some("(1 repeated nix message not shown)".to_string()),
            n => Some(format!("({n} repeated nix messages not shown)")),
        }
    }
}
