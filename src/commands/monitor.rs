//! `nixdispatch monitor`: draw a `nix … --log-format internal-json -v` log read on stdin, like
//! `nom --json`. The back half of the pipeline alone: log → monitor → render.

use crate::cli::GlobalArgs;
use crate::monitor::{Monitor, Summary};
use crate::render;
use crate::{Error, Result};
use std::io::IsTerminal;

/// Reads nix's log from stdin to its end, showing it as `--progress`/`--json` ask; exit 0, or
/// a failed-run error (exit 1) when the log reported a failed build or an error of nix's own
/// that ended the run (relayed warnings at error level do not count).
pub fn run(global: &GlobalArgs) -> Result<i32> {
    if std::io::stdin().is_terminal() {
        return Err(Error::input(
            "`nixdispatch monitor` reads nix's log on stdin; pipe it in: \
             nix build --log-format internal-json -v ... |& nixdispatch monitor",
        ));
    }
    let choice = render::choose(
        global.progress,
        global.json,
        global.quiet,
        std::io::stderr().is_terminal(),
        render::no_color_requested(std::env::var_os("NO_COLOR").as_deref()),
    );
    let monitor = Monitor::new(render::renderer(choice, global.verbose));
    let summary = crate::monitor::drive(std::io::stdin(), monitor);
    if summary.ok {
        Ok(0)
    } else {
        Err(Error::Failed(failure_line(&summary)))
    }
}

/// The one line that names what failed in the monitored run.
fn failure_line(summary: &Summary) -> String {
    let names: Vec<&str> = summary
        .failed
        .iter()
        .map(|f| crate::monitor::store_path_name(&f.drv))
        .collect();
    let cancelled = match summary.builds_cancelled {
        0 => String::new(),
        1 => "; 1 build cancelled (nix stopped it unfinished)".to_string(),
        n => format!("; {n} builds cancelled (nix stopped them unfinished)"),
    };
    let line = match (names.as_slice(), summary.errors.first()) {
        ([], Some(error)) => format!(
            "the monitored nix run reported an error: {}",
            super::error_headline(error)
        ),
        ([], None) => "the monitored nix run failed".to_string(),
        ([one], _) => format!("the monitored nix run failed: the build of {one} failed"),
        (many, _) => format!(
            "the monitored nix run failed: {} builds failed ({})",
            many.len(),
            many.join(", ")
        ),
    };
    format!("{line}{cancelled}")
}
