//! Showing a run: live bars on a terminal, plain lines in CI logs, JSON lines for programs.
//!
//! Renderers draw only from [`crate::monitor::State`] (and the caller's own header and
//! messages); they never decide anything about the run. Pick one with [`choose`] and
//! [`renderer`], and hand it to a [`crate::monitor::Monitor`].

mod bar;
mod display;
pub mod dry_run;
mod frame;
pub mod github;
mod json;
mod plain;
pub mod result_file;
mod silent;
pub(crate) mod text;

use crate::cli::{LogsArg, ProgressArg};
use std::io::Write;

/// The renderers' interface, which the monitor draws into (it lives beside the monitor).
pub use crate::monitor::Render;

pub use bar::BarRenderer;
pub use display::Display;
pub use frame::TermSize;
pub use json::JsonRenderer;
pub use plain::PlainRenderer;
pub use silent::SilentRenderer;

/// Which renderer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RendererKind {
    /// indicatif bars on stderr.
    Bar,
    /// The bars' header and totals over the run's dependency tree, on stderr.
    Tree,
    /// Plain lines on stderr, no escape codes.
    Plain,
    /// JSON lines on stdout.
    Json,
    /// Only errors, failed builds' logs, on stderr.
    Silent,
}

/// The renderer to build, and whether it may use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// Which renderer.
    pub kind: RendererKind,
    /// Whether colour escape codes are allowed (never for plain and JSON).
    pub color: bool,
}

/// Picks the renderer for the command line and the terminal, as the contract says: `--json`
/// wins; `--quiet` and `--progress none` show errors only; `auto` means bars when stderr is a
/// terminal and plain lines elsewhere; `bar` without a terminal falls back to plain lines (bars
/// would be invisible). `no_color` is whether `NO_COLOR` is set to a non-empty value.
pub fn choose(
    progress: ProgressArg,
    json: bool,
    quiet: bool,
    stderr_is_terminal: bool,
    no_color: bool,
) -> Choice {
    let kind = if json {
        RendererKind::Json
    } else if quiet {
        RendererKind::Silent
    } else {
        match progress {
            ProgressArg::None => RendererKind::Silent,
            ProgressArg::Plain => RendererKind::Plain,
            ProgressArg::Auto | ProgressArg::Bar if stderr_is_terminal => RendererKind::Bar,
            ProgressArg::Tree if stderr_is_terminal => RendererKind::Tree,
            ProgressArg::Auto | ProgressArg::Bar | ProgressArg::Tree => RendererKind::Plain,
        }
    };
    let color = matches!(kind, RendererKind::Bar | RendererKind::Tree) && !no_color;
    Choice { kind, color }
}

/// Whether the `NO_COLOR` value from the environment asks for no colour (set and non-empty).
pub fn no_color_requested(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty())
}

/// Builds the chosen renderer on the process's stderr (stdout for JSON). `verbose` (the count
/// of `-v`) adds builders' log lines and nix's informational messages.
pub fn renderer(choice: Choice, verbose: u8) -> Box<dyn Render + Send> {
    renderer_with_logs(choice, verbose, LogsArg::Failed)
}

/// [`renderer`], showing the build logs `--logs` asks for.
pub fn renderer_with_logs(choice: Choice, verbose: u8, logs: LogsArg) -> Box<dyn Render + Send> {
    match choice.kind {
        RendererKind::Bar => Box::new(BarRenderer::stderr(choice.color, verbose).with_logs(logs)),
        RendererKind::Tree => Box::new(
            BarRenderer::stderr(choice.color, verbose)
                .with_logs(logs)
                .as_tree(),
        ),
        RendererKind::Plain => {
            Box::new(PlainRenderer::new(Box::new(std::io::stderr()), verbose).with_logs(logs))
        }
        RendererKind::Json => {
            Box::new(JsonRenderer::new(Box::new(std::io::stdout()), verbose).with_logs(logs))
        }
        RendererKind::Silent => {
            Box::new(SilentRenderer::new(Box::new(std::io::stderr())).with_logs(logs))
        }
    }
}

/// Where line-oriented renderers write: any writer that can move to the reading task.
pub type Output = Box<dyn Write + Send>;

#[cfg(test)]
mod frame_tests;
#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod untrusted_tests;
