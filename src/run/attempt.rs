//! One attempt at the build: nix (or nh) run as the plan says, its log drawn live, the builders
//! it was given watched (a silent one stops it), and what came of it.

use crate::child::{self, Invocation, Keep, LogStream, Pipe, Report, Results};
use crate::dispatch::{self, Context, Runner, Target};
use crate::monitor::{store_path_name, Monitor};
use crate::plan::Plan;
use crate::planning::Planned;
use crate::settings::Settings;
use crate::watchdog::{self, ProgressHandle, Watched};
use crate::Result;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

/// One run of the build step.
pub(super) struct Attempt {
    /// nix (or nh) succeeded.
    pub ok: bool,
    /// nix's or nh's exit status line, for the error message.
    pub status: String,
    /// The result paths (`nix build --json`), first one first.
    pub results: Vec<PathBuf>,
    /// The activation steps still to run, when the target has them.
    pub steps_activation: Option<dispatch::Steps>,
    /// The failed builds the log showed, with where they ran.
    pub failed: Vec<(String, String)>,
    /// The last error nix printed.
    pub last_error: Option<String>,
    /// Why the watchdog stopped nix (a builder went silent), if it did.
    pub stopped: Option<String>,
    /// nix's stdout (`nix build --json`'s result), as printed.
    pub stdout: Vec<u8>,
}

impl Attempt {
    /// An attempt stopped because its builder went away, with why: the run's fallback
    /// finishes locally once (or fails under `--no-local-fallback`).
    pub(super) fn stopped(why: String) -> Attempt {
        Attempt {
            ok: false,
            status: "stopped".to_owned(),
            results: Vec::new(),
            steps_activation: None,
            failed: Vec::new(),
            last_error: None,
            stopped: Some(why),
            stdout: Vec::new(),
        }
    }

    /// A failed attempt as the monitor saw it (a session's build that failed on the builder):
    /// the failed builds and nix's last error from its log, `status` as nix's exit line.
    pub(super) fn failed_from(monitor: &mut Monitor, status: String) -> Attempt {
        monitor.end_of_log(Instant::now());
        let state = monitor.state();
        Attempt {
            ok: false,
            status,
            results: Vec::new(),
            steps_activation: None,
            failed: state
                .failed_builds()
                .iter()
                .map(|f| (f.drv.clone(), f.host.clone()))
                .collect(),
            last_error: state.errors().last().map(|e| crate::nix::error_headline(e)),
            stopped: None,
            stdout: Vec::new(),
        }
    }
}

/// The builders nix is given this run that nixdispatch holds a connection to: the watchdog
/// keeps asking them whether they are still there.
pub(super) fn watched_builders(planned: &Planned) -> Vec<Watched> {
    planned
        .builders()
        .iter()
        .filter(|b| b.reachable())
        .filter_map(Watched::of)
        .collect()
}

/// Runs nix (or nh) once as the plan says, its log into the monitor, the watched builders
/// under the watchdog.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_build(
    settings: &Settings,
    target: &Target,
    runner: Runner,
    plan: &Plan,
    states: &[crate::builder::Builder],
    nix_args: &[OsString],
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
    watched: &[Watched],
) -> Result<Attempt> {
    let ctx = Context {
        plan,
        builders: states,
        nix: &settings.nix().version,
        nix_args,
        env,
    };
    let steps = dispatch::steps(target, runner, &ctx)?;
    tracing::debug!(argv = ?steps.build.argv(), "running");
    // Only the builders this attempt hands to nix are watched, and only when a silent one can
    // be left for a local build (the same condition as the fallback below).
    let watched: Vec<Watched> = watched
        .iter()
        .filter(|w| plan.uses_builders() && states.iter().any(|s| s.reachable() && s.id == w.id))
        .cloned()
        .collect();
    let foreground = super::sudo::nh_needs_sudo(settings, target, runner);
    let finished = run_logged(
        &steps.build,
        monitor,
        watched,
        settings.silent_timeout(),
        foreground,
    )
    .await?;
    monitor.end_of_log(Instant::now());
    let summary_failed: Vec<(String, String)> = monitor
        .state()
        .failed_builds()
        .iter()
        .map(|f| (f.drv.clone(), f.host.clone()))
        .collect();
    let results = match steps.build.results {
        Results::BuildJson => crate::nix::build_json::outputs(&finished.stdout),
        Results::Nothing => Vec::new(),
    };
    Ok(Attempt {
        ok: finished.status.success(),
        status: finished.status.to_string(),
        results,
        steps_activation: (!steps.activate.is_empty()).then_some(steps),
        failed: summary_failed,
        // "cannot build on 'ssh-ng://…': …" is the real reason; nix's last words after it
        // ("Unable to start any build; … system features") only point at the manual.
        last_error: monitor
            .state()
            .errors()
            .iter()
            .rev()
            .find(|e| e.contains("cannot build on"))
            .or_else(|| monitor.state().errors().last())
            .map(|e| crate::nix::error_headline(e)),
        stopped: finished.stopped,
        stdout: finished.stdout.clone(),
    })
}

/// Runs one invocation, its nix log lines into the monitor, other lines shown as they are;
/// stops it when a watched builder goes silent (see [`watchdog`]). With `foreground`, the
/// child holds the terminal (nh's own sudo prompt must be answerable) and is not watched.
async fn run_logged(
    inv: &Invocation,
    monitor: &mut Monitor,
    watched: Vec<Watched>,
    silent: std::time::Duration,
    foreground: bool,
) -> Result<child::Finished> {
    let log = inv.log;
    let collect = matches!(inv.results, Results::BuildJson);
    let keep = if collect { Keep::Stdout } else { Keep::Nothing };
    let progress = ProgressHandle::default();
    let on = |report: Report<'_>| {
        let (pipe, line) = match report {
            Report::Line(pipe, line) => (pipe, line),
            Report::Tick => {
                monitor.tick(Instant::now());
                // Ticks come every 200 ms, log or not: often enough for the watchdog,
                // which looks only after seconds of silence.
                note_activity(&progress, monitor);
                return;
            }
        };
        progress.line(Instant::now());
        let is_log = matches!(
            (log, pipe),
            (LogStream::Stderr, Pipe::Stderr) | (LogStream::Stdout, Pipe::Stdout)
        );
        if is_log || (pipe == Pipe::Stderr && log == LogStream::Stdout) {
            // nh's own messages (stderr) pass through the monitor as plain lines too.
            monitor.feed_line(line, Instant::now());
        } else if !(collect && pipe == Pipe::Stdout) {
            monitor.message(line);
        }
    };
    if foreground {
        return child::run_in_foreground(inv, keep, on).await;
    }
    let watch = watchdog::watch(watched, progress.clone(), silent);
    child::run_until(inv, keep, on, watch).await
}

/// Tells the watchdog which builders nix is busy with, from the monitor's state.
fn note_activity(progress: &ProgressHandle, monitor: &Monitor) {
    let state = monitor.state();
    let mut local = false;
    let mut busy = std::collections::BTreeSet::new();
    for b in state.running_builds() {
        if b.host == "local" {
            local = true;
        } else {
            busy.insert(b.host.clone());
        }
    }
    for t in state.running_transfers() {
        busy.insert(t.peer.clone());
    }
    progress.activity(busy, local);
}

/// Shows a child's line as it is (activation scripts, nix copy), keeping the display alive.
pub(super) fn show(monitor: &mut Monitor, report: Report<'_>) {
    match report {
        Report::Line(_, line) => monitor.message(line),
        Report::Tick => monitor.tick(Instant::now()),
    }
}

/// After a failed remote run: a builder that was reachable and no longer is, as one line.
pub(super) async fn vanished_builder(settings: &Settings, planned: &Planned) -> Option<String> {
    let live = planned.live_builders();
    if live.is_empty() {
        return None;
    }
    let again = crate::probe::probe_for(settings, &live, false).await;
    again.iter().find(|b| !b.reachable()).map(|b| {
        format!(
            "builder {} went away during the build: {}",
            b.host(),
            b.failure_words()
        )
    })
}

/// The one line a failed build ends the run with.
pub(super) fn failure_line(attempt: &Attempt) -> String {
    match attempt.failed.as_slice() {
        [] => match &attempt.last_error {
            Some(e) => format!("the build failed: {e}"),
            None => format!("the build failed (nix {})", attempt.status),
        },
        [(drv, host), rest @ ..] => {
            let more = if rest.is_empty() {
                String::new()
            } else {
                format!(" (and {} more)", rest.len())
            };
            format!(
                "the build of {} failed on {}{more}; its last log lines are above",
                store_path_name(drv),
                host
            )
        }
    }
}
