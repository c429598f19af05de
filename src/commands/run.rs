//! The back half shared by `build`, `home` and `os`: plan, run nix (or nh) in the chosen mode
//! with live progress, finish locally once when a builder vanishes mid-run, then activate, push,
//! and report (stdout as `nix build` prints it, the result file, the CI summary).

use super::planning::{make_plan_with, Evaluation, Planned};
use crate::child::{self, Keep, Pipe, Report};
use crate::cli::RunArgs;
use crate::dispatch::{self, Context, Invocation, LogStream, Results, Runner, Target};
use crate::monitor::{store_path_name, Monitor};
use crate::plan::{Mode, Plan, Source};
use crate::probe::probe_all;
use crate::render;
use crate::render::record::{Recorder, SharedRecord};
use crate::render::result_file::{InstallableResult, Status};
use crate::settings::Settings;
use crate::watchdog::{self, ProgressHandle, Watched};
use crate::{Error, Result};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What the run prints on stdout when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stdout {
    /// The result paths, one a line (`home`, `os`).
    #[default]
    ResultPaths,
    /// What `nix build` prints: nothing, `--json`'s result as nix printed it, then
    /// `--print-out-paths`' lines (nix prints both when given both).
    Nix {
        /// `--json`.
        json: bool,
        /// `--print-out-paths` (Nix 2.9+).
        out_paths: bool,
    },
}

/// What the user asked of nix besides the target: the words for nix, and what nixdispatch
/// carries out itself.
#[derive(Debug, Clone, Default)]
pub struct NixRequest {
    /// Passed to `nix build` (or nh) after nixdispatch's own flags, so they win.
    pub build_args: Vec<OsString>,
    /// nix's evaluation flags, for planning (`-f`, `--expr`, `--arg`, ...).
    pub eval_args: Vec<OsString>,
    /// `--rebuild`.
    pub rebuild: bool,
    /// `--dry-run`: plan, say what would happen, build nothing.
    pub dry_run: bool,
    /// nix's `--fallback`: what a substituter or builder store fails to give is built.
    pub fallback: bool,
    /// What goes to stdout.
    pub stdout: Stdout,
}

impl NixRequest {
    /// `home`/`os`: the user's arguments after `--` go to nix (or nh) untouched.
    pub fn passthrough(nix_args: &[OsString]) -> NixRequest {
        NixRequest {
            build_args: nix_args.to_vec(),
            ..NixRequest::default()
        }
    }
}

/// Plans, builds, activates, pushes. Returns the exit code of a successful run.
pub async fn execute(
    settings: &Settings,
    target: Target,
    runner: Runner,
    run: &RunArgs,
    request: &NixRequest,
) -> Result<i32> {
    let installables = target.installables()?;
    // A noop needs one nix process: the build itself, checked first (crate::noop).
    let checked = if crate::noop::applies(
        &target,
        runner,
        &request.build_args,
        request.rebuild,
        request.dry_run,
    ) && !run.push
        && run.push_to.is_empty()
    {
        crate::noop::check(settings, &target, &request.build_args).await?
    } else {
        crate::noop::Checked::Unknown
    };
    let (mut planned, mut noop_done) = match checked {
        crate::noop::Checked::Noop(done) => (
            super::planning::noop_planned(settings, &installables, &done),
            Some(done),
        ),
        checked => {
            let how = Evaluation {
                eval_args: &request.eval_args,
                rebuild: request.rebuild,
                missing: matches!(checked, crate::noop::Checked::Missing),
            };
            (make_plan_with(settings, &installables, how).await?, None)
        }
    };
    share_ssh_masters(settings);
    if request.fallback && planned.plan.mode == Mode::Substitute {
        planned
            .plan
            .reason
            .push_str("; with --fallback, nix builds whatever a source fails to give");
    }
    let target = match target {
        Target::Build { .. } => Target::Build {
            installables: planned.installables.clone(),
        },
        other => other,
    };
    if request.dry_run {
        dry_run(&planned);
        return Ok(0);
    }
    if let Some(key) = &run.sign_key {
        // Before the build: a missing key must not cost a whole build first.
        if let Err(e) = std::fs::metadata(key) {
            return Err(Error::input(format!(
                "--sign-key {}: {e}; make one with `nix key generate-secret --key-name NAME > FILE`",
                key.display()
            )));
        }
    }

    // nh asks sudo for the password itself, on the terminal, mid-run: bars redrawn around its
    // prompt would garble it, so such runs show plain lines.
    let progress =
        if nh_needs_sudo(&target, runner) && settings.progress == crate::cli::ProgressArg::Auto {
            crate::cli::ProgressArg::Plain
        } else {
            settings.progress
        };
    let choice = render::choose(
        progress,
        settings.json,
        settings.verbosity < 0,
        std::io::stderr().is_terminal(),
        settings.no_color,
    );
    let mut inner = render::renderer(choice, settings.verbosity.max(0) as u8);
    if let (Some(env), false) = (&settings.github, settings.json) {
        inner = Box::new(render::github::GithubRenderer::new(
            inner,
            env.clone(),
            Box::new(std::io::stderr()),
        ));
    }
    let (recorder, record) = Recorder::new(inner);
    let mut monitor = Monitor::new(Box::new(recorder));
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
    // As nixos-rebuild and nh do: ask for the password now, on the terminal, not after a long
    // build and not behind the progress display; then keep sudo's timestamp fresh while nix
    // builds (activation asks again if it lapsed anyway).
    let _keepalive = if sudo || nh_needs_sudo(&target, runner) {
        if !super::sudo::validate().await {
            return Err(Error::input(
                "activating a system configuration needs root: run as root, or make sudo work for you",
            ));
        }
        Some(super::sudo::Keepalive::start())
    } else {
        None
    };

    let started = Instant::now();
    let mut plan = planned.plan.clone();
    let mut states = planned.states.clone();
    let watched = watched_builders(&planned);
    let mut attempt = match noop_done.take() {
        Some(done) => {
            let ctx = Context {
                plan: &plan,
                builders: &states,
                nix: &settings.nix.version,
                nix_args: &request.build_args,
            };
            replayed(done, dispatch::steps(&target, runner, &ctx)?, &mut monitor)
        }
        None => {
            run_build(
                settings,
                &target,
                runner,
                &plan,
                &states,
                &request.build_args,
                &mut monitor,
                &watched,
            )
            .await?
        }
    };
    if !attempt.ok && uses_builders(&plan) {
        let why = match attempt.stopped.clone() {
            Some(why) => Some(why),
            None if !run.no_local_fallback => vanished_builder(settings, &planned).await,
            None => None,
        };
        if let (Some(why), true) = (&why, run.no_local_fallback) {
            monitor.finish(Instant::now());
            return Err(Error::Failed(format!(
                "{why}; nix was stopped and, as asked, not finishing locally"
            )));
        }
        if let Some(why) = why {
            monitor.message(&format!(
                "nixdispatch: {why}; finishing the build locally, once (--no-local-fallback turns this off)"
            ));
            plan.mode = Mode::Local;
            plan.reason = format!("{why}, so the rest is built locally");
            for b in &mut plan.builds {
                b.from = None;
            }
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
                &request.build_args,
                &mut monitor,
                &[],
            )
            .await?;
        }
    }
    if let Some(line) =
        super::reality::compare(&plan, &monitor.state().summary(Instant::now()), |uri| {
            crate::monitor::host_of(uri).to_owned()
        })
    {
        monitor.message(&format!("nixdispatch: warning: {line}"));
    }
    // The verdict is nix's (or nh's) exit status, never the log's message levels.
    if !attempt.ok {
        let line = failure_line(&attempt);
        let outcome = if run.result_file.is_some() || run.push || !run.push_to.is_empty() {
            outcomes(settings, request, &target, &plan, &record, None).await
        } else {
            Vec::new()
        };
        // With --keep-going the rest was realised: push what succeeded (a CI run fills the
        // cache with everything that built), the failure still fails the run.
        let realised: Vec<PathBuf> = outcome
            .iter()
            .filter(|r| matches!(r.status, Status::Built | Status::Fetched | Status::Valid))
            .flat_map(|r| r.outputs.values().map(PathBuf::from))
            .collect();
        let _ = super::push::push_all(settings, run, &planned, &realised, &mut monitor).await;
        monitor.finish_with(Instant::now(), false);
        write_result_file(run, &plan, &outcome, false);
        return Err(Error::Failed(line));
    }

    let results = attempt.results.clone();
    let activation_failed = match (&attempt.steps_activation, results.first()) {
        (Some(steps), Some(result)) => activate(steps, result, sudo, &mut monitor).await?,
        (Some(_), None) => Some("nix reported no result path to activate".to_owned()),
        (None, _) => None,
    };
    if let Some(why) = activation_failed {
        monitor.finish_with(Instant::now(), false);
        return Err(Error::Failed(why));
    }
    let pushed = super::push::push_all(settings, run, &planned, &results, &mut monitor).await;
    let summary = monitor.finish_with(Instant::now(), true);
    tracing::debug!(elapsed = ?started.elapsed(), built = summary.built_total(), "done");
    if run.result_file.is_some() {
        let outcome = outcomes(
            settings,
            request,
            &target,
            &plan,
            &record,
            Some(&attempt.stdout),
        )
        .await;
        write_result_file(run, &plan, &outcome, true);
    }
    print_stdout(settings, request.stdout, &results, &attempt.stdout);
    pushed?;
    Ok(0)
}

/// `--dry-run`: what nix would build and fetch, on stderr in nix's own words, from the plan.
fn dry_run(planned: &Planned) {
    for line in dry_run_lines(&planned.plan) {
        crate::output::stderr_line(&line);
    }
}

/// The lines of `--dry-run`: the plan's mode, then nix's "will be built" / "will be fetched"
/// lists, each path with where it comes from.
fn dry_run_lines(plan: &Plan) -> Vec<String> {
    let mut lines = vec![format!(
        "nixdispatch: mode: {} — {}",
        plan.mode, plan.reason
    )];
    let count = |n: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_owned()
        } else {
            many.replace('N', &n.to_string())
        }
    };
    if !plan.builds.is_empty() {
        lines.push(count(
            plan.builds.len(),
            "this derivation will be built:",
            "these N derivations will be built:",
        ));
        for b in &plan.builds {
            lines.push(format!(
                "  {} (on {})",
                b.drv,
                b.from.as_deref().unwrap_or("here")
            ));
        }
    }
    let fetched: Vec<_> = plan
        .paths
        .iter()
        .filter(|p| p.source != Source::Build)
        .collect();
    if !fetched.is_empty() {
        lines.push(count(
            fetched.len(),
            "this path will be fetched:",
            "these N paths will be fetched:",
        ));
        for p in fetched {
            lines.push(format!(
                "  {} (from {})",
                p.path,
                p.from.as_deref().unwrap_or("?")
            ));
        }
    }
    lines
}

/// What the run prints on stdout, as `nix build` would (or the result paths for home/os).
fn print_stdout(settings: &Settings, stdout: Stdout, results: &[PathBuf], nix_json: &[u8]) {
    let mut out = std::io::stdout().lock();
    match stdout {
        // `nixdispatch --json build`: stdout is nixdispatch's events, nothing else.
        Stdout::Nix { .. } if settings.json => {}
        Stdout::Nix { json, out_paths } => {
            if json {
                let _ = out.write_all(nix_json);
            }
            if out_paths {
                for path in self::out_paths(nix_json) {
                    let _ = writeln!(out, "{path}");
                }
            }
        }
        Stdout::ResultPaths => {
            if !settings.json && settings.verbosity >= 0 {
                for r in results {
                    let _ = writeln!(out, "{}", r.display());
                }
            }
        }
    }
    let _ = out.flush();
}

/// Every output path in `nix build --json`'s result, in nix's `--print-out-paths` order: by
/// installable, then by output name.
fn out_paths(nix_json: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(nix_json) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for item in &items {
        if let Some(outs) = item.get("outputs").and_then(|o| o.as_object()) {
            let mut outs: Vec<(&String, &serde_json::Value)> = outs.iter().collect();
            outs.sort_by(|a, b| a.0.cmp(b.0));
            paths.extend(
                outs.into_iter()
                    .filter_map(|(_, p)| p.as_str().map(str::to_owned)),
            );
        } else if let Some(p) = item.get("path").and_then(|p| p.as_str()) {
            paths.push(p.to_owned());
        }
    }
    paths
}

/// What became of each installable (attribute sets opened), from the plan and the log.
async fn outcomes(
    settings: &Settings,
    request: &NixRequest,
    target: &Target,
    plan: &Plan,
    record: &SharedRecord,
    nix_json: Option<&[u8]>,
) -> Vec<InstallableResult> {
    let ok = nix_json.is_some();
    let installables = target.installables().unwrap_or_default();
    // A successful `nix build --json` names each installable's derivation and outputs, in
    // order; after a failure nix prints nothing, so each is asked for on its own.
    let derived = match nix_json.and_then(|j| derived_from_build_json(j, installables.len())) {
        Some(d) => d,
        None => {
            crate::nix::installables::installable_derivations(
                &settings.nix,
                &installables,
                &request.eval_args,
            )
            .await
        }
    };
    let record = render::record::lock(record).clone();
    let mut results = render::result_file::results(&installables, &derived, &record, plan, ok);
    // The store has the last word: when parallel builds stop together nix's log cannot always
    // say which one failed, but an output that is valid now was realised.
    let outputs: Vec<crate::store_path::StorePath> = derived
        .iter()
        .flatten()
        .flat_map(|(_, outs)| outs.values().cloned())
        .collect();
    if let Ok(valid) = crate::sources::local::valid_paths(&settings.nix, &outputs).await {
        let valid: std::collections::BTreeSet<&str> = valid.iter().map(|p| p.as_str()).collect();
        render::result_file::settle(&mut results, |p| valid.contains(p));
    }
    results
}

/// `nix build --json`'s result as each installable's derivation and outputs, when it has one
/// entry per installable.
fn derived_from_build_json(
    nix_json: &[u8],
    count: usize,
) -> Option<Vec<render::result_file::Derived>> {
    use crate::store_path::StorePath;
    let items: Vec<serde_json::Value> = serde_json::from_slice(nix_json).ok()?;
    if items.len() != count {
        return None;
    }
    let derived = items
        .iter()
        .map(|item| {
            let drv = StorePath::parse(item.get("drvPath")?.as_str()?).ok()?;
            let outputs = item
                .get("outputs")?
                .as_object()?
                .iter()
                .filter_map(|(name, p)| Some((name.clone(), StorePath::parse(p.as_str()?).ok()?)))
                .collect();
            Some((drv, outputs))
        })
        .collect();
    Some(derived)
}

/// `--result-file`, when asked for. Best effort: a file that cannot be written is a warning.
fn write_result_file(run: &RunArgs, plan: &Plan, outcome: &[InstallableResult], ok: bool) {
    let Some(path) = &run.result_file else {
        return;
    };
    let file = render::result_file::ResultFile {
        ok,
        mode: &plan.mode.to_string(),
        reason: &plan.reason,
        installables: outcome,
    };
    let text = render::result_file::render(run.result_format, &file);
    if let Err(e) = std::fs::write(path, text) {
        crate::output::stderr_line(&format!(
            "nixdispatch: warning: cannot write the result file {}: {e}",
            path.display()
        ));
    }
}

/// Lets the nix (or nh) we start ride the ssh masters the probe opened: one handshake per
/// builder per run instead of one per derivation. Not for a daemon client: the daemon's ssh
/// runs as root and never sees our environment.
fn share_ssh_masters(settings: &Settings) {
    if settings.daemon.is_some() {
        return;
    }
    if let Some(share) = crate::probe::nix_ssh_share_opts() {
        // ssh takes the first value of an option: ours first, then the user's own.
        let value = match settings.nix_sshopts.as_deref() {
            Some(user) if !user.trim().is_empty() => format!("{share} {user}"),
            _ => share,
        };
        tracing::debug!(nix_sshopts = %value, "nix rides the probe's ssh masters");
        child::set_child_env("NIX_SSHOPTS", value);
    }
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
    /// Why the watchdog stopped nix (a builder went silent), if it did.
    stopped: Option<String>,
    /// nix's stdout (`nix build --json`'s result), as printed.
    stdout: Vec<u8>,
}

/// The builders nix is given this run that nixdispatch holds a connection to: the watchdog
/// keeps asking them whether they are still there.
fn watched_builders(planned: &Planned) -> Vec<Watched> {
    planned
        .builders
        .iter()
        .filter(|b| b.status.reachable)
        .filter_map(|b| {
            Some(Watched {
                host: b.status.host.clone(),
                uri: b.status.uri.clone(),
                connection: b.connection.clone()?,
            })
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
async fn run_build(
    settings: &Settings,
    target: &Target,
    runner: Runner,
    plan: &Plan,
    states: &[crate::plan::BuilderState],
    nix_args: &[OsString],
    monitor: &mut Monitor,
    watched: &[Watched],
) -> Result<Attempt> {
    let ctx = Context {
        plan,
        builders: states,
        nix: &settings.nix.version,
        nix_args,
    };
    let steps = dispatch::steps(target, runner, &ctx)?;
    tracing::debug!(argv = ?steps.build.argv(), "running");
    // Only the builders this attempt hands to nix are watched, and only when a silent one can
    // be left for a local build (the same condition as the fallback below).
    let watched: Vec<Watched> = watched
        .iter()
        .filter(|w| uses_builders(plan) && states.iter().any(|s| s.reachable && s.uri == w.uri))
        .cloned()
        .collect();
    let foreground = nh_needs_sudo(target, runner);
    let finished = run_logged(
        &steps.build,
        monitor,
        watched,
        settings.silent_timeout,
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
        Results::BuildJson => build_json_outputs(&finished.stdout),
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
            .map(|e| super::error_headline(e)),
        stopped: finished.stopped,
        stdout: finished.stdout.clone(),
    })
}

/// The noop check's build (crate::noop), its held-back log shown now as it would have been live.
fn replayed(done: crate::noop::Done, steps: dispatch::Steps, monitor: &mut Monitor) -> Attempt {
    for line in &done.log {
        monitor.feed_line(line, Instant::now());
    }
    if done.dropped > 0 {
        monitor.message(&format!(
            "nixdispatch: {} more lines of nix's log not shown",
            done.dropped
        ));
    }
    monitor.end_of_log(Instant::now());
    Attempt {
        ok: true,
        status: "exit status: 0".to_owned(),
        results: build_json_outputs(&done.stdout),
        steps_activation: (!steps.activate.is_empty()).then_some(steps),
        failed: Vec::new(),
        last_error: None,
        stopped: None,
        stdout: done.stdout,
    }
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
        return child::run_in_foreground(&inv.argv(), keep, on).await;
    }
    let watch = watchdog::watch(watched, progress.clone(), silent);
    child::run_until(&inv.argv(), keep, on, watch).await
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
    if sudo && !super::sudo::fresh().await {
        monitor.message(
            "nixdispatch: sudo's timestamp lapsed during the build: asking again to activate",
        );
        if !super::sudo::validate().await {
            return Ok(Some(format!(
                "activation needs root and sudo did not allow it; the build is done: activate it with `sudo {}/bin/switch-to-configuration switch`",
                result.display()
            )));
        }
    }
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
        let finished = child::run(&argv, Keep::Nothing, |r| show(monitor, r)).await?;
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

/// Whether nh will ask sudo itself (a system configuration activated by a non-root user): its
/// prompt must reach the terminal, so nh runs in the terminal's foreground.
fn nh_needs_sudo(target: &Target, runner: Runner) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    !root
        && matches!(runner, Runner::Nh { .. })
        && matches!(target, Target::Os { action, .. } if *action != dispatch::OsAction::Build)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Counts, PlannedBuild, PlannedPath};
    use crate::store_path::StorePath;

    fn sp(text: &str) -> StorePath {
        StorePath::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn out_paths_follow_nix_order() {
        let json = br#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/o1","dev":"/d1"}},{"path":"/p2"}]"#;
        assert_eq!(out_paths(json), ["/d1", "/o1", "/p2"]);
        assert!(out_paths(b"").is_empty());
    }

    #[test]
    fn dry_run_says_what_nix_says_with_the_plan() {
        let drv = sp("/nix/store/00000000000000000000000000000000-x.drv");
        let out = sp("/nix/store/11111111111111111111111111111111-y");
        let plan = Plan {
            mode: Mode::Remote,
            reason: "1 must be built".into(),
            counts: Counts::default(),
            paths: vec![PlannedPath {
                path: out.clone(),
                source: Source::Cache,
                from: Some("http://cache".into()),
            }],
            builds: vec![PlannedBuild {
                drv: drv.clone(),
                from: Some("ssh-ng://seasmoke".into()),
            }],
            builder_substituters: Vec::new(),
            daemon_decides: false,
        };
        assert_eq!(
            dry_run_lines(&plan),
            [
                "nixdispatch: mode: remote — 1 must be built".to_owned(),
                "this derivation will be built:".to_owned(),
                format!("  {drv} (on ssh-ng://seasmoke)"),
                "this path will be fetched:".to_owned(),
                format!("  {out} (from http://cache)"),
            ]
        );
    }
}
