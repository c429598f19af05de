//! Plain lines for CI logs: one per start and finish, no escape codes ever.

use super::text::{
    estimate_words, happening_line, log_line, reports_known_failure, stopped_lines, summary_lines,
    with_logs, Failures, Repeats,
};
use super::{Output, Render};
use crate::cli::LogsArg;
use crate::log::strip_ansi;
use crate::monitor::{Happening, State, Summary};
use std::io::Write;
use std::time::Instant;

/// Writes one plain line per build and transfer start and finish, nix's warnings and errors,
/// and lines that were not part of nix's JSON log; then the summary. Readable in a CI log and
/// with `NO_COLOR`: escape codes are removed, even from nix's own messages. nix's repeated
/// warnings (one per derivation) are shown once and counted.
pub struct PlainRenderer {
    out: Output,
    verbose: u8,
    repeats: Repeats,
    /// The whole run's expected time at its start, shown under the header.
    expected: Option<crate::history::estimate::Estimate>,
    logs: LogsArg,
    failures: Failures,
}

impl PlainRenderer {
    /// Writes to `out` (stderr in the program, a buffer in tests); `verbose` adds builders' log
    /// lines and phases.
    pub fn new(out: Output, verbose: u8) -> Self {
        PlainRenderer {
            out,
            verbose,
            repeats: Repeats::default(),
            expected: None,
            logs: LogsArg::Failed,
            failures: Failures::default(),
        }
    }

    /// The same renderer showing the build logs `--logs` asks for.
    pub fn with_logs(mut self, logs: LogsArg) -> Self {
        self.logs = logs;
        self
    }

    fn line(&mut self, text: &str) {
        // A closed stderr must not end the run: output is best effort.
        let _ = writeln!(self.out, "{}", crate::output::clean(text, false));
    }
}

impl Render for PlainRenderer {
    fn expected(&mut self, estimate: Option<crate::history::estimate::Estimate>) {
        self.expected = estimate;
    }

    fn header(&mut self, mode: &str, reason: &str) {
        self.line(&strip_ansi(&format!("mode: {mode} — {reason}")));
        if let Some(estimate) = self.expected.take() {
            self.line(&format!("expected: {}", estimate_words(&estimate)));
        }
    }

    fn message(&mut self, text: &str) {
        self.line(&strip_ansi(text));
    }

    fn draw(&mut self, state: &State, now: Instant) {
        for happening in state.happenings() {
            let happening = &*with_logs(happening, self.logs);
            let line = match happening {
                Happening::BuildLog { drv_path, line } if self.logs == LogsArg::All => {
                    Some(log_line(drv_path, line))
                }
                Happening::BuildFailed { build } => Some(self.failures.block(build)),
                Happening::Message {
                    level: crate::log::Verbosity::Error,
                    text,
                } if reports_known_failure(text, state) => self.failures.report(text),
                _ => happening_line(happening, self.verbose),
            };
            let Some(mut line) = line else {
                continue;
            };
            // After each build that ends, what the whole run has left.
            if let (
                Happening::BuildFinished { .. }
                | Happening::BuildReused { .. }
                | Happening::BuildCancelled { .. },
                Some(estimate),
            ) = (happening, state.run_estimate(now))
            {
                line.push_str(&format!("; {}", estimate_words(&estimate)));
            }
            if let Happening::Message { level, text } = happening {
                if *level == crate::log::Verbosity::Error && reports_known_failure(text, state) {
                    self.line(&line);
                    continue;
                }
                if !self.repeats.admit(*level, text) {
                    continue;
                }
            }
            self.line(&line);
        }
        // Nothing happened on most draws of a big log (progress only): nothing to flush.
        if !state.happenings().is_empty() {
            let _ = self.out.flush();
        }
    }

    fn finish(&mut self, state: &State, summary: &Summary) {
        self.end(state, summary_lines(summary));
    }

    fn abandon(&mut self, state: &State, summary: &Summary) {
        self.end(state, stopped_lines(summary));
    }
}

impl PlainRenderer {
    fn end(&mut self, state: &State, lines: Vec<String>) {
        self.draw(state, std::time::Instant::now());
        if let Some(hidden) = self.repeats.hidden_line() {
            self.line(&hidden);
        }
        for line in lines {
            self.line(&line);
        }
        let _ = self.out.flush();
    }
}
