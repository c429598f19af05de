//! The back half shared by `build`, `home` and `os`: plan, run nix (or nh) in the chosen mode
//! with live progress, finish locally once when a builder vanishes mid-run, then activate.

use super::planning::{make_plan, Planned};
use crate::child::{self, Pipe, Report};
use crate::cli::RunArgs;
use crate::dispatch::{self, Context, Invocation, LogStream, Results, Runner, Target};
use crate::monitor::{store_path_name, Monitor};
use crate::plan::{Mode, Plan};
use crate::probe::probe_all;
use crate::render;
use crate::settings::Settings;
use crate::{Error, Result};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

/// Plans, builds, activates. Returns the exit code of a successful run.
pub async fn execute(
    settings: &Settings,
    target: Target,
    runner: Runner,
    run: &RunArgs,
    nix_args: &[OsString],
) -> Result<i32> {
    let installables = target.installables()?;
    let planned = make_plan(settings, &installables).await?;

    let choice = render::choose(
        settings.progress,
        settings.json,
        settings.verbosity < 0,
        std::io::stderr().is_terminal(),
        settings.no_color,
    );
    let mut monitor = Monitor::new(render::renderer(choice, settings.verbosity.max(0) as u8));
    monitor.set_known_stores(
        planned
            .builders
            .iter()
            .map(|b| b.status.uri.clone())
            .chain(settings.nix_config.substituters.iter().cloned())
            .collect::<Vec<_>>(),
    );
    monitor.set_header(&planned.plan.mode.to_string(), &planned.plan.reason);
    for w in &planned.warnings {
        monitor.message(&format!("warning: {w}"));
    }

    let sudo = needs_sudo(&target, runner);
    if sudo {
        // As nixos-rebuild and nh do: ask for the password now, on the terminal, not after a
        // long build and not behind the progress display.
        let ok = tokio::process::Command::new("sudo")
            .arg("-v")
            .status()
            .await
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Err(Error::input(
                "activating a system configuration needs root: run as root, or make sudo work for you",
            ));
        }
    }

    let started = Instant::now();
    let mut plan = planned.plan.clone();
    let mut states = planned.states.clone();
    let mut attempt = run_build(
        settings,
        &target,
        runner,
        &plan,
        &states,
        nix_args,
        &mut monitor,
    )
    .await?;
    if !attempt.ok && uses_builders(&plan) && !run.no_fallback {
        if let Some(why) = vanished_builder(settings, &planned).await {
            monitor.message(&format!(
                "nixdispatch: {why}; finishing the build locally, once (--no-fallback turns this off)"
            ));
            plan.mode = Mode::Local;
            plan.reason = format!("{why}, so the rest is built locally");
            for s in &mut states {
                s.reachable = false;
            }
            monitor.restart(Instant::now());
            monitor.set_header(&plan.mode.to_string(), &plan.reason);
            attempt = run_build(
                settings,
                &target,
                runner,
                &plan,
                &states,
                nix_args,
                &mut monitor,
            )
            .await?;
        }
    }
    if !attempt.ok {
        let line = failure_line(&attempt);
        monitor.finish(Instant::now());
        return Err(Error::Failed(line));
    }

    let results = attempt.results.clone();
    let activation_failed = match (&attempt.steps_activation, results.first()) {
        (Some(steps), Some(result)) => activate(steps, result, sudo, &mut monitor).await?,
        (Some(_), None) => Some("nix reported no result path to activate".to_owned()),
        (None, _) => None,
    };
    if let Some(why) = activation_failed {
        monitor.finish(Instant::now());
        return Err(Error::Failed(why));
    }
    if run.push {
        push(settings, &planned, plan.mode, &results, &mut monitor).await?;
    }
    let summary = monitor.finish(Instant::now());
    tracing::debug!(elapsed = ?started.elapsed(), built = summary.built_total(), "done");
    if !settings.json && settings.verbosity >= 0 {
        for r in &results {
            crate::output::stdout_line(&r.display().to_string(), true)?;
        }
    }
    Ok(0)
}

/// One run of the build step.
struct Attempt {
    ok: bool,
    /// nix's or nh's exit status line, for the error message.
    status: String,
    /// The result paths (`nix build --json`), first one first.
    results: Vec<PathBuf>,
    /// The activation steps still to run, when the target has them.
    steps_activation: Option<dispatch::Steps>,
    /// The failed builds the log showed, with where they ran.
    failed: Vec<(String, String)>,
    /// The last error nix printed.
    last_error: Option<String>,
}

async fn run_build(
    settings: &Settings,
    target: &Target,
    runner: Runner,
    plan: &Plan,
    states: &[crate::plan::BuilderState],
    nix_args: &[OsString],
    monitor: &mut Monitor,
) -> Result<Attempt> {
    let ctx = Context {
        plan,
        builders: states,
        nix: &settings.nix.version,
        nix_args,
    };
    let steps = dispatch::steps(target, runner, &ctx)?;
    tracing::debug!(argv = ?steps.build.argv(), "running");
    let finished = run_logged(&steps.build, monitor).await?;
    let summary_failed: Vec<(String, String)> = monitor
        .state()
        .failed_builds()
        .iter()
        .map(|f| (f.drv.clone(), f.host.clone()))
        .collect();
    let results = match steps.build.results {
        Results::BuildJson => build_json_outputs(&finished.stdout),
        Results::Nothing => Vec::new(),
    };
    Ok(Attempt {
        ok: finished.status.success(),
        status: finished.status.to_string(),
        results,
        steps_activation: (!steps.activate.is_empty()).then_some(steps),
        failed: summary_failed,
        last_error: monitor
            .state()
            .errors()
            .last()
            .map(|e| super::error_headline(e)),
    })
}

/// Runs one invocation, its nix log lines into the monitor, other lines shown as they are.
async fn run_logged(inv: &Invocation, monitor: &mut Monitor) -> Result<child::Finished> {
    let log = inv.log;
    let collect = matches!(inv.results, Results::BuildJson);
    child::run(&inv.argv(), |report| {
        let (pipe, line) = match report {
            Report::Line(pipe, line) => (pipe, line),
            Report::Tick => return monitor.tick(Instant::now()),
        };
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
    })
    .await
}

/// The output paths of `nix build --json`: `[{"drvPath": ..., "outputs": {"out": PATH}}]`.
fn build_json_outputs(stdout: &[u8]) -> Vec<PathBuf> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(stdout)
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| i.get("outputs")?.as_object().cloned())
        .flat_map(|outs| {
            let mut v: Vec<(String, PathBuf)> = outs
                .into_iter()
                .filter_map(|(name, p)| Some((name, PathBuf::from(p.as_str()?))))
                .collect();
            // `out` first: it is what activation runs.
            v.sort_by_key(|(name, _)| name != "out");
            v.into_iter().map(|(_, p)| p)
        })
        .collect()
}

/// Runs the activation steps on the result; `Some(why)` when one failed. With `sudo`, each
/// runs through `sudo -n` (a system's profile and switch-to-configuration need root).
async fn activate(
    steps: &dispatch::Steps,
    result: &std::path::Path,
    sudo: bool,
    monitor: &mut Monitor,
) -> Result<Option<String>> {
    for inv in steps.activation(result) {
        let name = PathBuf::from(&inv.program);
        let name = name
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        monitor.message(&format!("nixdispatch: activating: {name}"));
        let mut argv = inv.argv();
        if sudo {
            // Credentials were asked for up front (`sudo -v`): never prompt behind the bars.
            argv.splice(0..0, ["sudo".into(), "-n".into()]);
        }
        let finished = child::run(&argv, |r| show(monitor, r)).await?;
        if !finished.status.success() {
            return Ok(Some(format!(
                "activation failed: {name} {} ({}); the new configuration may be partly active, run it again or roll back",
                result.display(),
                finished.status
            )));
        }
    }
    Ok(None)
}

/// Whether activating `target` will need sudo: a system configuration, switched through nix
/// (nh asks for sudo itself), by someone who is not root.
fn needs_sudo(target: &Target, runner: Runner) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    !root
        && runner == Runner::Nix
        && matches!(target, Target::Os { action, .. } if *action != dispatch::OsAction::Build)
}

/// Shows a child's line as it is (activation scripts, nix copy), keeping the display alive.
fn show(monitor: &mut Monitor, report: Report<'_>) {
    match report {
        Report::Line(_, line) => monitor.message(line),
        Report::Tick => monitor.tick(Instant::now()),
    }
}

fn uses_builders(plan: &Plan) -> bool {
    matches!(plan.mode, Mode::Remote | Mode::Substitute)
        && (!plan.builds.iter().all(|b| b.from.is_none()) || plan.counts.from_builders > 0)
}

/// After a failed remote run: a builder that was reachable and no longer is, as one line.
async fn vanished_builder(settings: &Settings, planned: &Planned) -> Option<String> {
    let live = planned.live_builders();
    if live.is_empty() {
        return None;
    }
    let again = probe_all(&live, settings.connect_timeout, &settings.ssh_opts).await;
    again.iter().find(|b| !b.status.reachable).map(|b| {
        format!(
            "builder {} went away during the build: {}",
            b.status.host,
            b.status.error.as_deref().unwrap_or("unreachable")
        )
    })
}

fn failure_line(attempt: &Attempt) -> String {
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

/// `--push`: after a local build, copy the results to the first reachable builder's store, so
/// the next machine finds them there. A failed push is reported, not fatal: the build succeeded.
async fn push(
    settings: &Settings,
    planned: &Planned,
    mode: Mode,
    results: &[PathBuf],
    monitor: &mut Monitor,
) -> Result<()> {
    if results.is_empty() || mode != Mode::Local {
        return Ok(());
    }
    // `--mode local` and a builder that vanished leave no live probe: ask again now.
    let probed_now;
    let builders = if planned.builders.iter().any(|b| b.status.reachable) {
        &planned.builders
    } else {
        probed_now = probe_all(
            &settings.builders,
            settings.connect_timeout,
            &settings.ssh_opts,
        )
        .await;
        &probed_now
    };
    let Some(builder) = builders.iter().find(|b| b.status.reachable) else {
        monitor.message("nixdispatch: nothing pushed: no builder is reachable");
        return Ok(());
    };
    let host = &builder.status.host;
    let mut argv: Vec<OsString> = vec![
        "nix".into(),
        "--extra-experimental-features".into(),
        crate::nix::FEATURES.into(),
    ];
    // Locally built paths carry no signature; whether the builder accepts them unsigned is its
    // own decision (it does for its trusted users).
    argv.extend(["copy".into(), "--no-check-sigs".into(), "--to".into()]);
    argv.push(builder.machine.store_uri().into());
    argv.extend(results.iter().map(|p| p.clone().into_os_string()));
    let finished = child::run(&argv, |r| show(monitor, r)).await?;
    if finished.status.success() {
        monitor.message(&format!(
            "nixdispatch: pushed to {host}: {} result path(s)",
            results.len()
        ));
    } else {
        monitor.message(&format!(
            "nixdispatch: warning: pushing to {host} failed ({}); is your user in its trusted-users?",
            finished.status
        ));
    }
    Ok(())
}
