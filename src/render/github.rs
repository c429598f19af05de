//! GitHub Actions (and Forgejo, Gitea) output, with `GITHUB_ACTIONS=true`: each build's log in
//! a collapsed `::group::`, each failed derivation as an `::error::` annotation with its last
//! log lines, and a markdown summary appended to `$GITHUB_STEP_SUMMARY`.
//!
//! Workflow commands are read from the step's stdout and stderr alike; they go to stderr here,
//! so stdout stays what `nix build` prints.

use super::Render;
use crate::monitor::{drv_paths_in, host_of, store_path_name, Happening, State, Summary};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The most log lines kept per running build for its group.
const GROUP_LINES: usize = 2000;

/// The environment of a GitHub Actions step, as read once by the settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubEnv {
    /// `$GITHUB_STEP_SUMMARY`, the file the step's markdown summary is appended to.
    pub step_summary: Option<PathBuf>,
}

impl GithubEnv {
    /// `Some` when `GITHUB_ACTIONS=true`.
    pub fn from_env() -> Option<GithubEnv> {
        (std::env::var("GITHUB_ACTIONS").as_deref() == Ok("true")).then(|| GithubEnv {
            step_summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// Wraps a renderer and adds the workflow commands and the step summary.
pub struct GithubRenderer {
    inner: Box<dyn Render + Send>,
    env: GithubEnv,
    out: super::Output,
    logs: HashMap<String, Vec<String>>,
    mode: String,
    reason: String,
}

impl GithubRenderer {
    /// Wraps `inner`, writing workflow commands to `out` (stderr in the program).
    pub fn new(inner: Box<dyn Render + Send>, env: GithubEnv, out: super::Output) -> Self {
        GithubRenderer {
            inner,
            env,
            out,
            logs: HashMap::new(),
            mode: String::new(),
            reason: String::new(),
        }
    }

    fn group(&mut self, drv: &str, title: &str) {
        let lines = self.logs.remove(drv).unwrap_or_default();
        let _ = writeln!(self.out, "::group::{}", one_line(title));
        for line in lines {
            // A log line must not be read as a workflow command.
            let _ = writeln!(self.out, "{}", defuse(&line));
        }
        let _ = writeln!(self.out, "::endgroup::");
    }

    /// One `::error::` per failed derivation, with its last log lines. Where nix's own error
    /// messages name failed derivations, only those: they are nix's word on what failed.
    fn annotate(&mut self, summary: &Summary) {
        for build in failures(summary) {
            let name = store_path_name(&build.drv);
            let host = host_of(&build.host);
            let _ = writeln!(
                self.out,
                "::error title={}::{}",
                property(&format!("build of {name} failed on {host}")),
                data(&format!("{}\n{}", build.drv, build.log.join("\n")))
            );
        }
        let _ = self.out.flush();
    }

    fn write_summary(&mut self, summary: &Summary) {
        let Some(path) = self.env.step_summary.clone() else {
            return;
        };
        // The step summary is shown on the web: no secret goes there.
        let text = crate::redact::redact(&summary_markdown(&self.mode, &self.reason, summary))
            .into_owned();
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            self.inner.message(&format!(
                "nixdispatch: warning: cannot append the step summary to {}: {e}",
                path.display()
            ));
        }
    }
}

impl Render for GithubRenderer {
    fn expected(&mut self, estimate: Option<crate::history::estimate::Estimate>) {
        self.inner.expected(estimate);
    }

    fn header(&mut self, mode: &str, reason: &str) {
        self.mode = mode.to_owned();
        self.reason = reason.to_owned();
        self.inner.header(mode, reason);
    }

    fn message(&mut self, text: &str) {
        self.inner.message(text);
    }

    fn draw(&mut self, state: &State, now: Instant) {
        // The inner renderer first: its "started"/"finished" lines frame the groups.
        self.inner.draw(state, now);
        for h in state.happenings() {
            match h {
                Happening::BuildStarted { drv_path, .. } => {
                    self.logs.entry(drv_path.clone()).or_default();
                }
                Happening::BuildLog { drv_path, line } => {
                    let log = self.logs.entry(drv_path.clone()).or_default();
                    if log.len() >= GROUP_LINES {
                        log.remove(0);
                    }
                    log.push(line.clone());
                }
                Happening::BuildFinished { drv_path, host, .. }
                | Happening::BuildCancelled { drv_path, host, .. } => {
                    // The title names no verdict: when builds stop together nix's log does
                    // not always say which one failed; the annotations below do, at the end.
                    let title = format!("{} on {}", store_path_name(drv_path), host_of(host));
                    self.group(drv_path, &title);
                }
                Happening::BuildFailed { build } => {
                    let title = format!(
                        "{} on {}",
                        store_path_name(&build.drv),
                        host_of(&build.host)
                    );
                    self.group(&build.drv, &title);
                }
                _ => {}
            }
        }
        let _ = self.out.flush();
    }

    fn finish(&mut self, state: &State, summary: &Summary) {
        self.inner.finish(state, summary);
        self.annotate(summary);
        self.write_summary(summary);
    }

    fn abandon(&mut self, state: &State, summary: &Summary) {
        self.inner.abandon(state, summary);
        self.annotate(summary);
        self.write_summary(summary);
    }
}

/// The failed builds, as far as nix's own error messages name them (all of them when none
/// does).
fn failures(summary: &Summary) -> Vec<&crate::monitor::FailedBuild> {
    let named: Vec<&str> = summary
        .errors
        .iter()
        .flat_map(|e| drv_paths_in(e))
        .collect();
    summary
        .failed
        .iter()
        .filter(|f| named.is_empty() || named.contains(&f.drv.as_str()))
        .collect()
}

/// The step summary: mode and reason, built where, fetched from where, bytes, time, failures.
pub fn summary_markdown(mode: &str, reason: &str, s: &Summary) -> String {
    let mut md = String::new();
    let verdict = if s.ok { "done" } else { "failed" };
    md += &format!("### nixdispatch: {verdict} in {:.1} s\n\n", s.elapsed_secs);
    md += &format!("**Mode:** {} — {}\n\n", cell(mode), cell(reason));
    let table = |md: &mut String, title: &str, rows: &std::collections::BTreeMap<String, u64>| {
        if rows.is_empty() {
            return;
        }
        *md += &format!("| {title} | paths |\n|---|---:|\n");
        for (host, n) in rows {
            *md += &format!("| {} | {n} |\n", cell(host_of(host)));
        }
        *md += "\n";
    };
    table(&mut md, "built on", &s.built);
    table(&mut md, "reused from builder", &s.reused);
    table(&mut md, "fetched from cache", &s.substituted);
    table(&mut md, "copied from builder", &s.copied_from);
    table(&mut md, "pushed to", &s.copied_to);
    md += &format!(
        "{:.1} MiB downloaded.\n\n",
        s.bytes_downloaded as f64 / (1024.0 * 1024.0)
    );
    let failed = failures(s);
    if !failed.is_empty() {
        md += "| failed | on | last log line |\n|---|---|---|\n";
        for f in failed {
            md += &format!(
                "| {} | {} | {} |\n",
                cell(store_path_name(&f.drv)),
                cell(host_of(&f.host)),
                cell(f.log.last().map(String::as_str).unwrap_or(""))
            );
        }
        md += "\n";
    }
    for e in s.errors.iter().take(5) {
        md += &format!("> {}\n", cell(e.lines().next().unwrap_or("")));
    }
    md
}

/// A table cell: one line, no pipes, no HTML.
fn cell(text: &str) -> String {
    one_line(text)
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn one_line(text: &str) -> String {
    crate::output::clean(text, false)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A workflow command's message: `%`, CR and LF escaped as the runner expects.
fn data(text: &str) -> String {
    crate::log::strip_ansi(&crate::redact::redact(text))
        .replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value: as [`data`], plus `:` and `,`.
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// A log line that starts like a workflow command (`::`) is shown, not obeyed.
fn defuse(line: &str) -> String {
    let line = crate::output::clean(line, false).into_owned();
    if line.trim_start().starts_with("::") {
        format!(" {line}")
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::FailedBuild;

    #[test]
    fn escapes_follow_the_runner() {
        assert_eq!(data("50%\nnext\r"), "50%25%0Anext%0D");
        assert_eq!(property("a: b, c"), "a%3A b%2C c");
        assert_eq!(defuse("::error::x"), " ::error::x");
        assert_eq!(cell("a|b\nc <x>"), "a\\|b c &lt;x&gt;");
    }

    #[test]
    fn summary_names_mode_hosts_and_failures() {
        let mut s = crate::monitor::State::new().summary(std::time::Instant::now());
        s.ok = false;
        s.elapsed_secs = 2.5;
        s.built.insert("ssh-ng://seasmoke".into(), 3);
        s.substituted.insert("http://cache".into(), 1);
        s.failed.push(FailedBuild {
            drv: "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-fail.drv".into(),
            host: "local".into(),
            log: vec!["step 2".into(), "boom".into()],
        });
        let md = summary_markdown("remote", "3 must be built", &s);
        assert!(md.contains("failed in 2.5 s"), "{md}");
        assert!(md.contains("**Mode:** remote — 3 must be built"), "{md}");
        assert!(md.contains("| seasmoke | 3 |"), "{md}");
        assert!(md.contains("| fail | local | boom |"), "{md}");
    }
}
