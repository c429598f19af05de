//! Which renderer shows a run: the options that choose it, read from [`crate::settings::Settings`]
//! for `build`/`home`/`os`/`attach`, from the global options for `monitor`.

use crate::cli::{GlobalArgs, LogsArg, ProgressArg};
use crate::settings::Terminal;

/// How progress is shown: the one renderer choice, for `build`/`home`/`os` and `monitor` alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Display {
    /// `--progress`.
    pub progress: ProgressArg,
    /// `--logs`.
    pub logs: LogsArg,
    /// `--json`.
    pub json: bool,
    /// `-q`.
    pub quiet: bool,
    /// The count of `-v`.
    pub verbose: u8,
    /// The terminal.
    pub terminal: Terminal,
}

impl Display {
    /// From the global options, for commands that resolve no [`crate::settings::Settings`] (`monitor`).
    pub fn from_global(global: &GlobalArgs, terminal: Terminal) -> Display {
        Display {
            progress: global.progress,
            logs: global.logs,
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            terminal,
        }
    }

    /// The renderer these options and this terminal ask for ([`crate::render::choose`]).
    pub fn renderer(&self) -> Box<dyn crate::render::Render + Send> {
        let choice = crate::render::choose(
            self.progress,
            self.json,
            self.quiet,
            self.terminal.stderr,
            self.terminal.no_color,
        );
        crate::render::renderer_with_logs(choice, self.verbose, self.logs)
    }
}
