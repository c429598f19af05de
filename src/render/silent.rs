//! `--progress none` and `--quiet`: nothing but errors.

use super::text::{failure_block, log_line, with_logs};
use super::{Output, Render};
use crate::cli::LogsArg;
use crate::log::{strip_ansi, Verbosity};
use crate::monitor::{Happening, State, Summary};
use std::io::Write;
use std::time::Instant;

/// Shows only what went wrong: nix's error messages and the failed builds with their last log
/// lines, as they happen. Successful runs print nothing.
pub struct SilentRenderer {
    out: Output,
    logs: LogsArg,
}

impl SilentRenderer {
    /// Writes to `out` (stderr in the program).
    pub fn new(out: Output) -> Self {
        SilentRenderer {
            out,
            logs: LogsArg::Failed,
        }
    }

    /// The same renderer showing the build logs `--logs` asks for.
    pub fn with_logs(mut self, logs: LogsArg) -> Self {
        self.logs = logs;
        self
    }
}

impl Render for SilentRenderer {
    fn header(&mut self, _mode: &str, _reason: &str) {}

    fn message(&mut self, _text: &str) {}

    fn draw(&mut self, state: &State, _now: Instant) {
        for happening in state.happenings() {
            let happening = &*with_logs(happening, self.logs);
            let text = match happening {
                Happening::BuildLog { drv_path, line } if self.logs == LogsArg::All => {
                    log_line(drv_path, line)
                }
                Happening::Message {
                    level: Verbosity::Error,
                    text,
                } => strip_ansi(text),
                Happening::BuildFailed { build } => failure_block(build),
                _ => continue,
            };
            let _ = writeln!(self.out, "{}", crate::output::clean(&text, false));
        }
        let _ = self.out.flush();
    }

    fn finish(&mut self, _state: &State, _summary: &Summary) {
        let _ = self.out.flush();
    }

    fn abandon(&mut self, _state: &State, _summary: &Summary) {
        let _ = self.out.flush();
    }
}
