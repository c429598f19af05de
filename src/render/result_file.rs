//! `--result-file FILE --result-format json|junit`: every installable, its outputs, what became
//! of it (built, fetched, valid, failed, cancelled) and where it was built, for CI.

use super::record::{BuildEnd, RunRecord};
use crate::cli::ResultFormat;
use crate::plan::{Plan, Source};
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

pub use crate::nix::installables::Derived;

/// What became of each installable, from the plan, what the log showed and the verdict.
pub fn results(
    installables: &[String],
    derived: &[Derived],
    record: &RunRecord,
    plan: &Plan,
    ok: bool,
) -> Vec<InstallableResult> {
    let planned: BTreeMap<&str, (&Source, Option<&str>)> = plan
        .paths
        .iter()
        .map(|p| (p.path.as_str(), (&p.source, p.from.as_deref())))
        .collect();
    installables
        .iter()
        .enumerate()
        .map(|(i, installable)| {
            let (drv, outputs): (Option<String>, BTreeMap<String, String>) =
                match derived.get(i).cloned().flatten() {
                    Some((drv, outs)) => (
                        Some(drv.as_str().to_owned()),
                        outs.into_iter()
                            .map(|(k, v)| (k, v.as_str().to_owned()))
                            .collect(),
                    ),
                    None if installable.starts_with('/') && !installable.ends_with(".drv") => (
                        None,
                        BTreeMap::from([("out".to_owned(), installable.clone())]),
                    ),
                    None => (None, BTreeMap::new()),
                };
            let mut built_on = None;
            let mut fetched_from = None;
            let logged = drv.as_ref().and_then(|d| record.builds.get(d));
            let fetched = outputs.values().find_map(|p| record.fetched.get(p));
            let in_plan = outputs.values().find_map(|p| planned.get(p.as_str()));
            let status = match (logged, fetched, in_plan) {
                (Some((end, host)), _, _) => match end {
                    BuildEnd::Built => {
                        built_on = Some(host.clone());
                        Status::Built
                    }
                    BuildEnd::Reused => {
                        fetched_from = Some(host.clone());
                        Status::Fetched
                    }
                    BuildEnd::Failed => {
                        built_on = Some(host.clone());
                        Status::Failed
                    }
                    BuildEnd::Cancelled => Status::Cancelled,
                },
                (None, Some(peer), _) => {
                    fetched_from = Some(peer.clone());
                    Status::Fetched
                }
                (None, None, Some(_)) if !ok => Status::Cancelled,
                (None, None, Some((Source::Build, from))) => {
                    built_on = Some(from.unwrap_or("local").to_owned());
                    Status::Built
                }
                (None, None, Some((_, from))) => {
                    fetched_from = from.map(str::to_owned);
                    Status::Fetched
                }
                (None, None, None) if outputs.is_empty() && !ok => Status::Cancelled,
                (None, None, None) => Status::Valid,
            };
            InstallableResult {
                installable: installable.clone(),
                drv_path: drv,
                outputs,
                status,
                built_on,
                fetched_from,
            }
        })
        .collect()
}

/// Corrects what the log suggested with what the store says now: a "failed" installable whose
/// outputs are all valid was built; a "built" or "fetched" one whose outputs are not valid
/// failed.
pub fn settle(results: &mut [InstallableResult], is_valid: impl Fn(&str) -> bool) {
    for r in results.iter_mut() {
        if r.outputs.is_empty() || r.drv_path.is_none() {
            continue;
        }
        let all_valid = r.outputs.values().all(|p| is_valid(p));
        match r.status {
            Status::Failed if all_valid => r.status = Status::Built,
            Status::Built | Status::Fetched if !all_valid => {
                r.status = Status::Failed;
                r.fetched_from = None;
            }
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Counts, PlannedPath};
    use crate::store_path::StorePath;

    fn sp(c: char, name: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}-{name}", c.to_string().repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn statuses_come_from_the_log_then_the_plan() {
        let a = (
            sp('a', "a.drv"),
            BTreeMap::from([("out".into(), sp('b', "a"))]),
        );
        let c = (
            sp('c', "c.drv"),
            BTreeMap::from([("out".into(), sp('d', "c"))]),
        );
        let e = (
            sp('i', "e.drv"),
            BTreeMap::from([("out".into(), sp('j', "e"))]),
        );
        let g = (
            sp('k', "g.drv"),
            BTreeMap::from([("out".into(), sp('l', "g"))]),
        );
        let mut record = RunRecord::default();
        record.builds.insert(
            a.0.as_str().into(),
            (BuildEnd::Built, "ssh-ng://seasmoke".into()),
        );
        record
            .builds
            .insert(c.0.as_str().into(), (BuildEnd::Failed, "local".into()));
        record
            .fetched
            .insert(sp('j', "e").as_str().into(), "http://cache".into());
        let plan = Plan {
            mode: crate::plan::Mode::Remote,
            reason: String::new(),
            counts: Counts::default(),
            paths: vec![PlannedPath {
                path: sp('l', "g"),
                source: Source::Build,
                from: None,
            }],
            builds: Vec::new(),
            builder_substituters: Vec::new(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
        };
        let names: Vec<String> = ["a", "c", "e", "g"].map(String::from).to_vec();
        let derived = vec![Some(a), Some(c), Some(e), Some(g)];
        let r = results(&names, &derived, &record, &plan, false);
        let st: Vec<Status> = r.iter().map(|r| r.status).collect();
        assert_eq!(
            st,
            [
                Status::Built,
                Status::Failed,
                Status::Fetched,
                Status::Cancelled
            ]
        );
        assert_eq!(r[0].built_on.as_deref(), Some("ssh-ng://seasmoke"));
        assert_eq!(r[2].fetched_from.as_deref(), Some("http://cache"));
        let ok = results(
            &names[3..],
            &derived[3..],
            &RunRecord::default(),
            &plan,
            true,
        );
        assert_eq!(ok[0].status, Status::Built);
        let plan_empty = Plan {
            paths: Vec::new(),
            ..plan
        };
        let valid = results(
            &names[3..],
            &derived[3..],
            &RunRecord::default(),
            &plan_empty,
            true,
        );
        assert_eq!(valid[0].status, Status::Valid);
        let file = ResultFile {
            ok: false,
            mode: "remote",
            reason: "",
            installables: &r,
        };
        let junit = render(ResultFormat::Junit, &file);
        assert!(
            junit.contains("tests=\"4\" failures=\"1\" skipped=\"1\""),
            "{junit}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(ResultFormat::Json, &file)).unwrap();
        assert_eq!(json["installables"][1]["status"], "failed");
    }
}
