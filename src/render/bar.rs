//! Live progress on a terminal (indicatif), like nix-output-monitor.

use super::frame::{frame, FrameInput, TermSize};
use super::text::{duration, happening_line, summary_lines, where_built, Repeats};
use super::{Output, Render};
use crate::cli::LogsArg;
use crate::monitor::{drv_paths_in, host_of, store_path_name, Happening, State, Summary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

/// The shortest time between two redraws of the frame (the draw target caps the terminal's
/// refresh rate as well).
const MIN_REDRAW: Duration = Duration::from_millis(80);

/// Where the terminal's size comes from: asked each redraw, so a resized terminal is followed.
type SizeSource = Box<dyn Fn() -> TermSize + Send>;

/// Live progress on stderr: a header line (mode and reason), overall bars for builds, downloads
/// and copies, and one line per running build with its host, phase and last log line (and per
/// long transfer), never wider or taller than the terminal. Finished builds, failures, nix's
/// warnings and errors, and lines that were not part of nix's log are printed above the frame.
/// At the end the frame is cleared and a summary block stays; when the run is abandoned
/// (Ctrl-C) or the renderer dropped, the frame is cleared too, so no bar line is left behind.
pub struct BarRenderer {
    bar: ProgressBar,
    header: Option<(String, String)>,
    size: SizeSource,
    shown_since: Instant,
    last_sync: Option<Instant>,
    repeats: Repeats,
    /// Failed builds whose last log lines nix's own error message already showed.
    logs_shown: HashSet<String>,
    /// Each failure said once.
    failures: super::text::Failures,
    /// The terminal's echo of control characters, turned off while the frame is shown.
    echo: Option<ControlEcho>,
    ended: bool,
    out: Output,
    color: bool,
    verbose: u8,
    logs: LogsArg,
    /// `--progress tree`: the run's dependency tree instead of the running builds' lines.
    tree: bool,
}

impl BarRenderer {
    /// Bars on the process's stderr, redrawn at most ~12 times a second.
    ///
    /// While the frame is shown the terminal does not echo control characters: the `^C` it
    /// would print on Ctrl-C lands below the frame and shifts it, so clearing it would leave
    /// its first line behind. The setting is restored when the frame ends.
    pub fn stderr(color: bool, verbose: u8) -> Self {
        let mut renderer = Self::new(
            ProgressDrawTarget::stderr_with_hz(12),
            Box::new(std::io::stderr()),
            color,
            verbose,
        );
        renderer.echo = ControlEcho::off(libc::STDERR_FILENO);
        renderer
    }

    /// Bars on `target`, the closing summary on `out`, sized like the process's stderr (tests
    /// use a hidden or in-memory target and [`BarRenderer::with_size`]).
    pub fn new(target: ProgressDrawTarget, out: Output, color: bool, verbose: u8) -> Self {
        let bar = ProgressBar::with_draw_target(None, target).with_style(
            // A constant template; a broken one falls back to the default style.
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        BarRenderer {
            bar,
            header: None,
            size: Box::new(stderr_size),
            shown_since: Instant::now(),
            last_sync: None,
            repeats: Repeats::default(),
            logs_shown: HashSet::new(),
            failures: super::text::Failures::default(),
            echo: None,
            ended: false,
            out,
            color,
            verbose,
            logs: LogsArg::Failed,
            tree: false,
        }
    }

    /// The same renderer drawing the run's dependency tree (`--progress tree`).
    pub fn as_tree(mut self) -> Self {
        self.tree = true;
        self
    }

    /// The same renderer showing the build logs `--logs` asks for.
    pub fn with_logs(mut self, logs: LogsArg) -> Self {
        self.logs = logs;
        self
    }

    /// The same renderer drawing for a terminal of a fixed size.
    pub fn with_size(mut self, size: TermSize) -> Self {
        self.size = Box::new(move || size);
        self
    }

    fn println(&self, text: &str) {
        // Builds and remote hosts wrote much of this: only colour may reach the terminal.
        let text = crate::output::clean(text, self.color).into_owned();
        // Printing above a hidden bar does nothing; that is fine.
        self.bar.println(text);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\u{1b}[{code}m{text}\u{1b}[0m")
        } else {
            text.to_string()
        }
    }

    fn print_happenings(&mut self, state: &State) {
        for happening in state.happenings() {
            let happening = &*super::text::with_logs(happening, self.logs);
            let line = match happening {
                Happening::BuildLog { drv_path, line } if self.logs == LogsArg::All => {
                    Some(super::text::log_line(drv_path, line))
                }
                Happening::BuildFinished { .. } => happening_line(happening, self.verbose)
                    .map(|l| format!("{} {l}", self.paint("32", "✓"))),
                Happening::BuildReused { drv_path, host } => Some(format!(
                    "{} {} {}, already built there",
                    self.paint("32", "✓"),
                    store_path_name(drv_path),
                    copied_from(host),
                )),
                Happening::BuildCancelled {
                    drv_path,
                    host,
                    elapsed,
                } => Some(format!(
                    "{} {}",
                    self.paint("33", "-"),
                    self.paint(
                        "2",
                        &format!(
                            "{} {} cancelled after {}: nix stopped it unfinished",
                            store_path_name(drv_path),
                            where_built(host),
                            duration(*elapsed)
                        )
                    )
                )),
                Happening::BuildFailed { build } => {
                    let block = if self.logs_shown.contains(&build.drv) {
                        // nix's error above already showed the log; name the build only.
                        let mut bare = build.clone();
                        bare.log.clear();
                        self.failures.block(&bare)
                    } else {
                        self.failures.block(build)
                    };
                    Some(format!("{} {block}", self.paint("31;1", "✗")))
                }
                Happening::BuildStarted { .. } | Happening::TransferStarted { .. } => None,
                Happening::TransferFinished { .. } if self.verbose == 0 => None,
                Happening::Message {
                    level: crate::log::Verbosity::Error,
                    text,
                } if super::text::reports_known_failure(text, state) => self.failures.report(text),
                Happening::Message { level, text } => {
                    if text.contains("log lines:") {
                        self.logs_shown
                            .extend(drv_paths_in(text).into_iter().map(str::to_string));
                    }
                    happening_line(happening, self.verbose)
                        .filter(|_| self.repeats.admit(*level, text))
                }
                Happening::Passthrough(line) => Some(line.clone()),
                _ => happening_line(happening, self.verbose),
            };
            if let Some(line) = line {
                self.println(&line);
            }
        }
    }

    fn sync(&mut self, state: &State, now: Instant) {
        let input = FrameInput {
            header: self
                .header
                .as_ref()
                .map(|(mode, reason)| (mode.as_str(), reason.as_str())),
            elapsed: now.saturating_duration_since(self.shown_since),
            now,
            size: (self.size)(),
            color: self.color,
            estimate: state.run_estimate(now),
        };
        let lines = if self.tree {
            super::frame::tree_frame(state, &input)
        } else {
            frame(state, &input)
        };
        let lines: Vec<String> = lines
            .iter()
            .map(|line| crate::output::clean(line, self.color).into_owned())
            .collect();
        self.bar.set_message(lines.join("\n"));
        self.last_sync = Some(now);
    }

    /// Clears the frame for good; what was printed above it stays.
    fn end_display(&mut self) {
        if !self.ended {
            self.ended = true;
            self.bar.finish_and_clear();
        }
        if let Some(echo) = self.echo.take() {
            echo.restore();
        }
    }

    /// The header and summary block that stays on the terminal, its last line painted.
    fn write_block(&mut self, mut lines: Vec<String>, last_style: &str) {
        if let Some(hidden) = self.repeats.hidden_line() {
            lines.insert(0, hidden);
        }
        if let Some((mode, reason)) = &self.header {
            lines.insert(0, format!("mode: {} — {reason}", self.paint("1", mode)));
        }
        if let Some(last) = lines.last_mut() {
            *last = self.paint(last_style, last);
        }
        for line in lines {
            let _ = writeln!(self.out, "{}", crate::output::clean(&line, self.color));
        }
        let _ = self.out.flush();
    }
}

/// "copied from seasmoke" for a build host key.
fn copied_from(host: &str) -> String {
    format!("copied from {}", host_of(host))
}

/// The size of the terminal on stderr, or [`TermSize::FALLBACK`] when it is not one.
fn stderr_size() -> TermSize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass; on a descriptor that
    // is not a terminal it fails and leaves it zeroed.
    let ok = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 && size.ws_row > 0 {
        TermSize {
            cols: usize::from(size.ws_col),
            rows: usize::from(size.ws_row),
        }
    } else {
        TermSize::FALLBACK
    }
}

/// A terminal whose echo of control characters (`ECHOCTL`: Ctrl-C shown as `^C`) was turned
/// off; [`ControlEcho::restore`] turns it back on.
struct ControlEcho {
    fd: libc::c_int,
}

impl ControlEcho {
    /// Turns the echo off on `fd` when it is a terminal that has it on.
    fn off(fd: libc::c_int) -> Option<ControlEcho> {
        // SAFETY: isatty, tcgetattr and tcsetattr only read and write the termios struct we
        // own; on failure nothing is changed and we do nothing.
        unsafe {
            if libc::isatty(fd) != 1 {
                return None;
            }
            let mut modes: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut modes) != 0 || modes.c_lflag & libc::ECHOCTL == 0 {
                return None;
            }
            modes.c_lflag &= !libc::ECHOCTL;
            (libc::tcsetattr(fd, libc::TCSANOW, &modes) == 0).then_some(ControlEcho { fd })
        }
    }

    /// Turns the echo back on, leaving every other setting as it is now (a program run
    /// meanwhile, e.g. sudo, may have changed and restored others).
    fn restore(self) {
        // SAFETY: as in `off`.
        unsafe {
            let mut modes: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(self.fd, &mut modes) == 0 {
                modes.c_lflag |= libc::ECHOCTL;
                libc::tcsetattr(self.fd, libc::TCSANOW, &modes);
            }
        }
    }
}

impl Render for BarRenderer {
    fn expected(&mut self, estimate: Option<crate::history::estimate::Estimate>) {
        if let Some(estimate) = estimate {
            self.println(&format!(
                "expected: {}",
                super::text::estimate_words(&estimate)
            ));
        }
    }

    fn header(&mut self, mode: &str, reason: &str) {
        self.header = Some((mode.to_string(), reason.to_string()));
        self.last_sync = None;
    }

    fn message(&mut self, text: &str) {
        self.println(text);
    }

    fn draw(&mut self, state: &State, now: Instant) {
        if self.ended {
            return;
        }
        // A build or transfer that started or ended changes the frame's lines: redraw now, so
        // a build printed as finished above is not still shown running below.
        let reshaped = state.happenings().iter().any(|h| {
            !matches!(
                h,
                Happening::BuildLog { .. }
                    | Happening::BuildPhase { .. }
                    | Happening::Message { .. }
                    | Happening::Passthrough(_)
            )
        });
        let due = reshaped
            || match self.last_sync {
                Some(last) => now.saturating_duration_since(last) >= MIN_REDRAW,
                None => true,
            };
        // The frame first: printing the happenings redraws the terminal, and it should redraw
        // it with the new frame (indicatif may skip a redraw asked for just after another).
        if due {
            self.sync(state, now);
        }
        self.print_happenings(state);
    }

    fn finish(&mut self, state: &State, summary: &Summary) {
        self.print_happenings(state);
        self.end_display();
        let style = if summary.ok { "32" } else { "31;1" };
        self.write_block(summary_lines(summary), style);
    }

    fn abandon(&mut self, state: &State, summary: &Summary) {
        self.print_happenings(state);
        self.end_display();
        self.write_block(super::text::stopped_lines(summary), "33");
    }
}

impl Drop for BarRenderer {
    fn drop(&mut self) {
        // A renderer dropped mid-run (an error unwinding past the monitor) leaves no bars.
        self.end_display();
    }
}
