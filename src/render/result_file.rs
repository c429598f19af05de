//! `--result-file FILE --result-format json|junit`: every installable, its outputs, what became
//! of it (built, fetched, valid, failed, cancelled) and where it was built, for CI. What became
//! of each is decided in `run/outcome.rs`; this only writes it down.

use crate::cli::ResultFormat;
use crate::plan::Plan;
use serde::Serialize;
use std::collections::BTreeMap;

/// What became of one installable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Built in this run (here or on a builder).
    Built,
    /// Copied from a binary cache or a builder's store.
    Fetched,
    /// Already valid here: nothing to do.
    Valid,
    /// Its build failed.
    Failed,
    /// Not realised: the run stopped first (another build failed, Ctrl-C).
    Cancelled,
}

/// One installable in the result file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InstallableResult {
    /// As built (attribute sets opened into their members).
    pub installable: String,
    /// Its derivation, when it has one.
    pub drv_path: Option<String>,
    /// Output name to store path.
    pub outputs: BTreeMap<String, String>,
    /// What became of it.
    pub status: Status,
    /// Where it was built (`local` or a builder's store URI), when it was.
    pub built_on: Option<String>,
    /// Where it was fetched from, when it was.
    pub fetched_from: Option<String>,
}

/// The whole result file (JSON format).
#[derive(Debug, Clone, Serialize)]
pub struct ResultFile<'a> {
    /// The run succeeded.
    pub ok: bool,
    /// The plan's mode.
    pub mode: &'a str,
    /// Why.
    pub reason: &'a str,
    /// Every installable.
    pub installables: &'a [InstallableResult],
}

/// The file's text in the chosen format.
pub fn render(format: ResultFormat, file: &ResultFile<'_>) -> String {
    match format {
        ResultFormat::Json => {
            serde_json::to_string_pretty(file).unwrap_or_else(|_| "{}".to_owned()) + "\n"
        }
        ResultFormat::Junit => junit(file),
    }
}

fn junit(file: &ResultFile<'_>) -> String {
    let count = |s: Status| file.installables.iter().filter(|r| r.status == s).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!(
        "<testsuites name=\"nixdispatch\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
        file.installables.len(),
        count(Status::Failed),
        count(Status::Cancelled)
    );
    x += &format!(
        "  <testsuite name=\"nixdispatch build ({})\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
        xml(file.mode),
        file.installables.len(),
        count(Status::Failed),
        count(Status::Cancelled)
    );
    for r in file.installables {
        let place = r
            .built_on
            .as_deref()
            .or(r.fetched_from.as_deref())
            .unwrap_or("");
        x += &format!(
            "    <testcase classname=\"nixdispatch\" name=\"{}\">\n",
            xml(&r.installable)
        );
        x += &format!(
            "      <system-out>{} {}{}</system-out>\n",
            serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            xml(place),
            r.outputs
                .values()
                .map(|p| format!(" {}", xml(p)))
                .collect::<String>()
        );
        match r.status {
            Status::Failed => {
                x += &format!(
                    "      <failure message=\"build failed on {}\"/>\n",
                    xml(place)
                )
            }
            Status::Cancelled => {
                x += "      <skipped message=\"not realised: the run stopped first\"/>\n"
            }
            _ => {}
        }
        x += "    </testcase>\n";
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}

fn xml(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the result file of a run to `path`. Best effort: a file that cannot be written is a
/// warning on stderr, not a failed run.
pub fn write(
    path: &std::path::Path,
    format: ResultFormat,
    plan: &Plan,
    outcome: &[InstallableResult],
    ok: bool,
) {
    let file = ResultFile {
        ok,
        mode: &plan.mode.to_string(),
        reason: &plan.reason,
        installables: outcome,
    };
    let text = render(format, &file);
    if let Err(e) = std::fs::write(path, text) {
        crate::output::stderr_line(&format!(
            "nixdispatch: warning: cannot write the result file {}: {e}",
            path.display()
        ));
    }
}
