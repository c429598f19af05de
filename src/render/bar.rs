//! Live bars on a terminal (indicatif), like nix-output-monitor.

use super::text::{bytes, duration, failure_block, happening_line, summary_lines, where_built};
use super::{Output, Render};
use crate::log::strip_ansi;
use crate::monitor::{host_of, Happening, State, Summary, TransferKind};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::time::{Duration, Instant};

/// The shortest time between two updates of the bars (the terminal is redrawn at most ~12
/// times a second by the draw target as well).
const MIN_REDRAW: Duration = Duration::from_millis(80);

/// Live progress on stderr: a header line (mode and reason), overall bars for builds, downloads
/// and copies, and one line per running build with its host, phase and last log line. Finished
/// builds, failures, nix's warnings and errors, and lines that were not part of nix's log are
/// printed above the bars. At the end the bars are cleared and a summary block stays.
pub struct BarRenderer {
    multi: MultiProgress,
    header: ProgressBar,
    header_text: Option<String>,
    builds: Option<ProgressBar>,
    downloads: Option<ProgressBar>,
    copies: Option<ProgressBar>,
    build_lines: HashMap<String, ProgressBar>,
    last_sync: Option<Instant>,
    out: Output,
    color: bool,
    verbose: u8,
}

impl BarRenderer {
    /// Bars on the process's stderr, redrawn at most ~12 times a second.
    pub fn stderr(color: bool, verbose: u8) -> Self {
        Self::new(
            ProgressDrawTarget::stderr_with_hz(12),
            Box::new(std::io::stderr()),
            color,
            verbose,
        )
    }

    /// Bars on `target`, the closing summary on `out` (tests use a hidden target).
    pub fn new(target: ProgressDrawTarget, out: Output, color: bool, verbose: u8) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        let template = if color {
            "{spinner:.cyan} {wide_msg} {elapsed:.dim}"
        } else {
            "{spinner} {wide_msg} {elapsed}"
        };
        let header = multi.add(ProgressBar::new_spinner().with_style(style(template)));
        header.set_message("following nix");
        header.enable_steady_tick(Duration::from_millis(250));
        BarRenderer {
            multi,
            header,
            header_text: None,
            builds: None,
            downloads: None,
            copies: None,
            build_lines: HashMap::new(),
            last_sync: None,
            out,
            color,
            verbose,
        }
    }

    fn println(&self, text: &str) {
        let text = if self.color {
            text.to_string()
        } else {
            strip_ansi(text)
        };
        // Printing above hidden bars does nothing; that is fine.
        let _ = self.multi.println(text);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }

    fn overall_style(&self) -> ProgressStyle {
        let template = if self.color {
            "{prefix:>9.bold} [{bar:25.cyan/blue}] {wide_msg}"
        } else {
            "{prefix:>9} [{bar:25}] {wide_msg}"
        };
        style(template).progress_chars("=> ")
    }

    /// The overall bar in `slot`, created at its fixed place (builds, downloads, copies) on
    /// first use.
    fn overall_bar(&mut self, slot: usize, prefix: &'static str) -> ProgressBar {
        let existing = [&self.builds, &self.downloads, &self.copies][slot].clone();
        if let Some(bar) = existing {
            return bar;
        }
        let index = 1 + [&self.builds, &self.downloads, &self.copies][..slot]
            .iter()
            .filter(|b| b.is_some())
            .count();
        let bar = self
            .multi
            .insert(index, ProgressBar::new(1).with_style(self.overall_style()));
        bar.set_prefix(prefix);
        match slot {
            0 => self.builds = Some(bar.clone()),
            1 => self.downloads = Some(bar.clone()),
            _ => self.copies = Some(bar.clone()),
        }
        bar
    }

    fn print_happenings(&self, state: &State) {
        for happening in state.happenings() {
            let line = match happening {
                Happening::BuildFinished { .. } | Happening::BuildReused { .. } => {
                    happening_line(happening, self.verbose)
                        .map(|l| format!("{} {l}", self.paint("32", "✓")))
                }
                Happening::BuildFailed { build } => Some(format!(
                    "{} {}",
                    self.paint("31;1", "✗"),
                    failure_block(build)
                )),
                Happening::BuildStarted { .. } | Happening::TransferStarted { .. } => None,
                Happening::TransferFinished { .. } if self.verbose == 0 => None,
                Happening::Passthrough(line) => Some(line.clone()),
                _ => happening_line(happening, self.verbose),
            };
            if let Some(line) = line {
                self.println(&line);
            }
        }
    }

    fn sync(&mut self, state: &State, now: Instant) {
        let builds = state.builds();
        if builds.expected > 0 {
            let bar = self.overall_bar(0, "builds");
            let waiting = builds
                .expected
                .saturating_sub(builds.done + builds.running + builds.failed);
            let mut text = format!(
                "{}/{} done, {} running, {waiting} waiting",
                builds.done, builds.expected, builds.running
            );
            if builds.failed > 0 {
                text.push_str(&format!(", {} failed", builds.failed));
            }
            bar.set_length(builds.expected);
            bar.set_position(builds.done + builds.failed);
            bar.set_message(text);
        }
        let downloads = state.downloads();
        if downloads.expected > 0 {
            let peers = peers(state, &[TransferKind::Substitute]);
            let bar = self.overall_bar(1, "downloads");
            set_transfer_bar(
                &bar,
                downloads.done,
                downloads.expected,
                downloads.bytes_done,
                downloads.bytes_expected,
            );
            bar.set_message(format!(
                "{}/{} paths{}{}",
                downloads.done,
                downloads.expected,
                byte_progress(downloads.bytes_done, downloads.bytes_expected),
                peers
            ));
        }
        let copies = state.copies();
        if copies.expected > 0 {
            let peers = peers(state, &[TransferKind::CopyFrom, TransferKind::CopyTo]);
            let bar = self.overall_bar(2, "copies");
            set_transfer_bar(
                &bar,
                copies.done,
                copies.expected,
                copies.bytes_done,
                copies.bytes_expected,
            );
            bar.set_message(format!(
                "{}/{} paths{}{}",
                copies.done,
                copies.expected,
                byte_progress(copies.bytes_done, copies.bytes_expected),
                peers
            ));
        }
        let mut running = BTreeSet::new();
        for build in state.running_builds() {
            running.insert(build.drv_path.clone());
            let line = match self.build_lines.get(&build.drv_path) {
                Some(line) => line.clone(),
                None => {
                    let template = if self.color {
                        "  {prefix:.yellow} {wide_msg}"
                    } else {
                        "  {prefix} {wide_msg}"
                    };
                    let line = self
                        .multi
                        .add(ProgressBar::new_spinner().with_style(style(template)));
                    line.set_prefix("⏵");
                    self.build_lines
                        .insert(build.drv_path.clone(), line.clone());
                    line
                }
            };
            let mut text = format!("{} {}", build.name, where_built(&build.host));
            if let Some(phase) = &build.phase {
                text.push_str(&format!(" ({phase})"));
            }
            text.push_str(&format!(
                " {}",
                duration(now.saturating_duration_since(build.started))
            ));
            if let Some(last) = build.last_line() {
                text.push_str(&format!(": {}", strip_ansi(last)));
            }
            line.set_message(text);
        }
        self.build_lines.retain(|drv, line| {
            let keep = running.contains(drv);
            if !keep {
                line.finish_and_clear();
            }
            keep
        });
        self.header.tick();
        self.last_sync = Some(now);
    }
}

/// " from a, b" for the stores of the running transfers of these kinds ("" when none).
fn peers(state: &State, kinds: &[TransferKind]) -> String {
    let hosts: BTreeSet<&str> = state
        .running_transfers()
        .filter(|t| kinds.contains(&t.kind))
        .map(|t| host_of(&t.peer))
        .collect();
    if hosts.is_empty() {
        String::new()
    } else {
        format!(" ({})", hosts.into_iter().collect::<Vec<_>>().join(", "))
    }
}

/// ", 1.2 MiB of 6.0 MiB", ", 1.2 MiB", or nothing while nix reported no sizes.
fn byte_progress(done: u64, expected: u64) -> String {
    if expected > 0 {
        format!(", {} of {}", bytes(done.min(expected)), bytes(expected))
    } else if done > 0 {
        format!(", {}", bytes(done))
    } else {
        String::new()
    }
}

/// Bytes when nix gave a size to expect, else paths.
fn set_transfer_bar(
    bar: &ProgressBar,
    done: u64,
    expected: u64,
    bytes_done: u64,
    bytes_expected: u64,
) {
    if bytes_expected > 0 {
        bar.set_length(bytes_expected);
        bar.set_position(bytes_done.min(bytes_expected));
    } else {
        bar.set_length(expected.max(1));
        bar.set_position(done);
    }
}

fn style(template: &str) -> ProgressStyle {
    // The templates are constants of this file; a broken one falls back to the default style.
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Render for BarRenderer {
    fn header(&mut self, mode: &str, reason: &str) {
        let text = format!("mode: {} — {reason}", self.paint("1", mode));
        self.header.set_message(text.clone());
        self.header_text = Some(text);
    }

    fn message(&mut self, text: &str) {
        self.println(text);
    }

    fn draw(&mut self, state: &State, now: Instant) {
        self.print_happenings(state);
        let due = match self.last_sync {
            Some(last) => now.saturating_duration_since(last) >= MIN_REDRAW,
            None => true,
        };
        if due {
            self.sync(state, now);
        }
    }

    fn finish(&mut self, state: &State, summary: &Summary) {
        self.print_happenings(state);
        for line in self.build_lines.values() {
            line.finish_and_clear();
        }
        for bar in [&self.builds, &self.downloads, &self.copies]
            .into_iter()
            .flatten()
        {
            bar.finish_and_clear();
        }
        self.header.finish_and_clear();
        let _ = self.multi.clear();
        if let Some(header) = &self.header_text {
            let _ = writeln!(self.out, "{header}");
        }
        let mut lines = summary_lines(summary);
        if let Some(last) = lines.last_mut() {
            *last = if summary.ok {
                self.paint("32", last)
            } else {
                self.paint("31;1", last)
            };
        }
        for line in lines {
            let _ = writeln!(self.out, "{line}");
        }
        let _ = self.out.flush();
    }
}
