//! `nixdispatch monitor`: draw a `nix … --log-format internal-json -v` log read on stdin, like
//! `nom --json`. The back half of the pipeline alone: log → monitor → render.

use crate::monitor::{Monitor, Summary};
use crate::render::Display;
use crate::{Error, Result};

/// Reads nix's log from stdin to its end, showing it as `--progress`/`--json` ask; exit 0, or
/// a failed-run error (exit 1) when the log reported a failed build or an error of nix's own
/// that ended the run (relayed warnings at error level do not count).
pub fn run(display: &Display) -> Result<i32> {
    if display.terminal.stdin {
        return Err(Error::input(
            "`nixdispatch monitor` reads nix's log on stdin; pipe it in: \
             nix build --log-format internal-json -v ... |& nixdispatch monitor",
        ));
    }
    let monitor = Monitor::new(display.renderer());
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
