//! The back half shared by `build`, `home` and `os`: plan, run nix (or nh) in the chosen mode
//! with live progress, finish locally once when a builder vanishes mid-run, then activate, push,
//! and report (stdout as `nix build` prints it, the result file, the CI summary).
//!
//! Its steps, one module each: [`noop`] (the one-process check that may already be the whole
//! run), [`attempt`] (one run of nix or nh with the monitor), [`activate`], [`push`], [`sudo`]
//! (who needs root and keeping its timestamp fresh), [`outcome`] (what each installable came
//! to), [`reality`] (the plan against what nix did). The front half is [`crate::planning`].

mod activate;
mod ask;
mod attempt;
pub mod noop;
mod outcome;
pub mod push;
pub mod reality;
pub(crate) mod session;
pub mod sudo;

use self::attempt::Attempt;
use self::outcome::outcomes;
use crate::cli::{ProgressArg, RunArgs};
use crate::dispatch::{self, Runner, Target};
use crate::monitor::Monitor;
use crate::plan::{Mode, Plan};
use crate::planning::{make_plan_with, Evaluation, Planned};
use crate::render;
use crate::render::result_file::InstallableResult;
use crate::settings::Settings;
use crate::watchdog::Watched;
use crate::{Error, Result};
use std::ffi::OsString;
use std::io::Write;
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

/// One run of `build`, `home` or `os`, planned: what the steps below read.
struct Job<'a> {
    settings: &'a Settings,
    /// The target, with `build`'s installables as planning expanded them.
    target: Target,
    runner: Runner,
    run: &'a RunArgs,
    request: &'a NixRequest,
    planned: Planned,
    /// The environment of the nix processes this run starts ([`nix_env`]).
    env: Vec<(OsString, OsString)>,
}

/// Plans, builds, activates, pushes. Returns the exit code of a successful run.
pub async fn execute(
    settings: &Settings,
    target: Target,
    runner: Runner,
    run: &RunArgs,
    request: &NixRequest,
) -> Result<i32> {
    let (job, checked) = plan_run(settings, target, runner, run, request).await?;
    if request.dry_run {
        for line in render::dry_run::lines(&job.planned.plan) {
            crate::output::stderr_line(&line);
        }
        return Ok(0);
    }
    check_sign_key(run)?;
    if run.ask && !self::ask::plan(settings, &job.planned.plan).await? {
        crate::output::stderr_line("nixdispatch: nothing was built (answered no)");
        return Ok(0);
    }
    let monitor = prepare_display(&job);
    if run.detach {
        return detach(&job, monitor).await;
    }
    let _keepalive = crate::timing::timed("sudo", sudo_up_front(&job)).await?;
    let started = Instant::now();
    let (mut monitor, plan, attempt) =
        crate::timing::timed("nix-build", build_with_fallback(&job, monitor, checked)).await?;
    compare_with_reality(&plan, &mut monitor);
    // The verdict is nix's (or nh's) exit status, never the log's message levels.
    if !attempt.ok {
        return Err(failed(&job, &plan, &attempt, monitor).await);
    }
    if run.ask
        && attempt.steps_activation.is_some()
        && !self::ask::activation(&job.target, &attempt.results, &mut monitor).await?
    {
        monitor.message("nixdispatch: built, not activated (answered no)");
        let (_, record) = monitor.finish_with_record(Instant::now(), true);
        remember(&job, record.learned).await;
        return Ok(0);
    }
    if let Some(why) = activate(&job, &attempt, &mut monitor).await? {
        let (_, record) = monitor.finish_with_record(Instant::now(), false);
        remember(&job, record.learned).await;
        return Err(Error::Failed(why));
    }
    let pushed = self::push::push_all(
        settings,
        run,
        &job.planned,
        &attempt.results,
        &job.env,
        &mut monitor,
    )
    .await;
    let (summary, mut record) = monitor.finish_with_record(Instant::now(), true);
    let learned = std::mem::take(&mut record.learned);
    remember(&job, learned).await;
    tracing::debug!(elapsed = ?started.elapsed(), built = summary.built_total(), "done");
    if run.result_file.is_some() {
        let nix_json = Some(attempt.stdout.as_slice());
        let outcome = outcomes(settings, request, &job.target, &plan, &record, nix_json).await;
        write_result_file(run, &plan, &outcome, true);
    }
    print_stdout(settings, request.stdout, &attempt.results, &attempt.stdout);
    pushed?;
    Ok(0)
}

/// Plans the run and the environment its nix processes get. A noop is known from the noop check, whose
/// build is the run's ([`crate::run::noop`]): it comes back with the job.
async fn plan_run<'a>(
    settings: &'a Settings,
    target: Target,
    runner: Runner,
    run: &'a RunArgs,
    request: &'a NixRequest,
) -> Result<(Job<'a>, Option<crate::run::noop::Done>)> {
    let installables = target.installables()?;
    let checked = if crate::run::noop::applies(
        runner,
        &request.build_args,
        request.rebuild,
        request.dry_run,
    ) && !run.push
        && run.push_to.is_empty()
    {
        // No builders, so no ssh: the check needs no share of the masters (none is open yet).
        crate::timing::timed(
            "noop-check",
            crate::run::noop::check(settings, &target, &request.build_args, &[]),
        )
        .await?
    } else {
        crate::run::noop::Checked::Unknown
    };
    let (planned, done) = match checked {
        crate::run::noop::Checked::Noop(done) => (
            crate::planning::noop_planned(
                settings,
                &installables,
                crate::nix::build_json::out_paths(&done.stdout).len(),
            )?,
            Some(done),
        ),
        checked => {
            let how = Evaluation {
                eval_args: &request.eval_args,
                rebuild: request.rebuild,
                missing: matches!(checked, crate::run::noop::Checked::Missing),
                fallback: request.fallback,
                builds: !request.dry_run,
            };
            (make_plan_with(settings, &installables, how).await?, None)
        }
    };
    // After the probe: nix's ssh rides the masters it opened.
    let env = nix_env(settings);
    let target = match target {
        Target::Build { .. } => Target::Build {
            installables: planned.installables.clone(),
        },
        other => other,
    };
    Ok((
        Job {
            settings,
            target,
            runner,
            run,
            request,
            planned,
            env,
        },
        done,
    ))
}

/// `--sign-key` must exist before the build: a missing key must not cost a whole build first.
fn check_sign_key(run: &RunArgs) -> Result<()> {
    if let Some(key) = &run.sign_key {
        if let Err(e) = std::fs::metadata(key) {
            return Err(Error::input(format!(
                "--sign-key {}: {e}; make one with `nix key generate-secret --key-name NAME > FILE`",
                key.display()
            )));
        }
    }
    Ok(())
}

/// The live display: the renderer the settings choose, GitHub's workflow commands in Actions,
/// a record of what happened (for the result file), the plan's header and warnings shown.
fn prepare_display(job: &Job<'_>) -> Monitor {
    let (settings, planned) = (job.settings, &job.planned);
    // nh asks sudo for the password itself, on the terminal, mid-run: bars redrawn around its
    // prompt would garble it, so such runs show plain lines.
    let mut display = settings.display();
    if self::sudo::nh_needs_sudo(settings, &job.target, job.runner)
        && display.progress == ProgressArg::Auto
    {
        display.progress = ProgressArg::Plain;
    }
    let mut inner = display.renderer();
    if let (Some(env), false) = (settings.github(), settings.json()) {
        inner = Box::new(render::github::GithubRenderer::new(
            inner,
            env.clone(),
            Box::new(std::io::stderr()),
        ));
    }
    let mut monitor = Monitor::new(inner);
    monitor.keep_record();
    let history_warning = with_history(job, &mut monitor);
    monitor.set_known_stores(
        planned
            .builders()
            .iter()
            .map(|b| b.machine.uri.to_string())
            .chain(settings.nix_config().substituters.iter().cloned())
            .collect::<Vec<_>>(),
    );
    monitor.set_header(&planned.plan.mode.to_string(), &planned.plan.reason);
    for w in planned.warnings.iter().chain(&history_warning) {
        monitor.message(&format!("warning: {w}"));
    }
    monitor
}

/// Gives the display what earlier runs took (read once, here): each step's expected time and
/// the whole run's. Returns the one warning for a history that could not be read.
fn with_history(job: &Job<'_>, monitor: &mut Monitor) -> Option<String> {
    // Without a state directory there is no history, but the run's steps still tell a copy
    // from a build.
    let planned = &job.planned;
    // The planner read it already when it weighed the builders against this machine.
    let (history, warning) = match (&planned.history, job.settings.state_dir()) {
        (Some(history), _) => (history.clone(), planned.history_warning.clone()),
        (None, Some(dir)) => {
            let loaded = crate::history::load(dir);
            (std::sync::Arc::new(loaded.history), loaded.warning)
        }
        (None, None) => Default::default(),
    };
    let run = planned.run_estimate(&history, &job.settings.nix_config().max_jobs);
    monitor.set_history(history, Some(run));
    monitor.set_sizes(planned.nar_sizes.clone());
    warning
}

/// Adds what this run learned (each build's and copy's time, each builder's probe) to the
/// history, once, at its end; a history that cannot be written costs one warning.
async fn remember(job: &Job<'_>, mut learned: crate::history::Recording) {
    let _phase = crate::timing::phase("history-save");
    let Some(dir) = job.settings.state_dir() else {
        return;
    };
    size_copied_outputs(job, &mut learned).await;
    let at = crate::history::unix_now();
    for b in job.planned.builders() {
        if let Some(rtt_ms) = b.rtt_ms {
            learned.add_probe(
                b.machine.uri.as_ref(),
                crate::history::ProbeSample { at, rtt_ms },
            );
        }
    }
    if let Err(why) = crate::history::save(dir, &learned) {
        crate::output::stderr_line(&format!(
            "nixdispatch: warning: the history of this run was not saved: {why}"
        ));
    }
}

/// Sizes the copies back from builders that nix's log left without one (Nix 2.8 over
/// ssh-ng), from this store's `nix path-info` of the built outputs: one call, bounded, only when
/// such a copy happened. Without sizes the history would never learn a link's bandwidth there.
async fn size_copied_outputs(job: &Job<'_>, learned: &mut crate::history::Recording) {
    let no_size: std::collections::HashSet<String> = learned
        .unsized_copies()
        .into_iter()
        .map(str::to_owned)
        .collect();
    if no_size.is_empty() {
        return;
    }
    let planned = &job.planned;
    let outputs: Vec<&crate::store_path::StorePath> = planned
        .plan
        .builds
        .iter()
        .filter(|b| b.from.is_some())
        .filter_map(|b| planned.input.graph.derivations.get(&b.drv))
        .flat_map(|d| d.outputs.values())
        .filter(|out| no_size.contains(out.display_name()))
        .collect();
    let Some(store_dir) = outputs.first().map(|out| out.store_dir().to_owned()) else {
        return;
    };
    let nix = job.settings.nix();
    let args = crate::nix::path_info::args(Some(nix.caps))
        .iter()
        .map(|a| a.to_string())
        .chain(outputs.iter().map(|out| out.as_str().to_owned()));
    let asked = tokio::time::timeout(crate::deadlines::LOCAL_CHECK, nix.output("nix", args));
    let Ok(Ok(out)) = asked.await else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&out) else {
        return;
    };
    for info in crate::nix::path_info::parse(&json, &store_dir) {
        if let Some(bytes) = info.nar_size.filter(|b| *b > 0) {
            learned.size_copies(info.path.display_name(), bytes);
        }
    }
}

/// As nixos-rebuild and nh do: ask for the password now, on the terminal, not after a long
/// build and not behind the progress display; then keep sudo's timestamp fresh while nix
/// builds (activation asks again if it lapsed anyway).
async fn sudo_up_front(job: &Job<'_>) -> Result<Option<self::sudo::Keepalive>> {
    let (settings, target, runner) = (job.settings, &job.target, job.runner);
    if !self::sudo::needs_sudo(settings, target, runner)
        && !self::sudo::nh_needs_sudo(settings, target, runner)
    {
        return Ok(None);
    }
    if !self::sudo::validate().await {
        return Err(Error::input(
            "activating a system configuration needs root: run as root, or make sudo work for you",
        ));
    }
    Ok(Some(self::sudo::Keepalive::start()))
}

impl Job<'_> {
    /// One attempt at the build with this plan and these builders.
    async fn build(
        &self,
        plan: &Plan,
        states: &[crate::builder::Builder],
        monitor: &mut Monitor,
        watched: &[Watched],
    ) -> Result<Attempt> {
        attempt::run_build(
            self.settings,
            &self.target,
            self.runner,
            plan,
            states,
            &self.request.build_args,
            &self.env,
            monitor,
            watched,
        )
        .await
    }
}

/// Builds as planned; when a builder vanished mid-run (the watchdog stopped nix, or a probe
/// after the failure finds it gone), finishes locally once, unless `--no-local-fallback`.
/// Returns the display, the plan that ran last and its attempt.
async fn build_with_fallback(
    job: &Job<'_>,
    mut monitor: Monitor,
    checked: Option<crate::run::noop::Done>,
) -> Result<(Monitor, Plan, Attempt)> {
    let (settings, run, planned) = (job.settings, job.run, &job.planned);
    let mut plan = planned.plan.clone();
    let states = planned.builders();
    let watched = attempt::watched_builders(planned);
    let mut attempt = match checked {
        Some(done) => replayed(job, &plan, done, &mut monitor)?,
        None => match session_first(job, &plan, &mut monitor).await? {
            Some(failed) => failed,
            None => job.build(&plan, states, &mut monitor, &watched).await?,
        },
    };
    if !attempt.ok && plan.uses_builders() {
        let why = match attempt.stopped.clone() {
            Some(why) => Some(why),
            None if !run.no_local_fallback => attempt::vanished_builder(settings, planned).await,
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
            plan = planned.fall_back(&why)?;
            monitor.restart(Instant::now());
            monitor.set_header(&plan.mode.to_string(), &plan.reason);
            attempt = job.build(&plan, states, &mut monitor, &[]).await?;
        }
    }
    Ok((monitor, plan, attempt))
}

/// The build as a session on the builder, when the run takes one ([`session::choose`]):
/// `Some(attempt)` when it failed there; `None` when the ordinary build step follows (the
/// session's outputs are here then, or there was no session).
async fn session_first(
    job: &Job<'_>,
    plan: &Plan,
    monitor: &mut Monitor,
) -> Result<Option<Attempt>> {
    let Some(builder) = session::choose(job, plan, monitor).await else {
        return Ok(None);
    };
    Ok(match session::run(job, builder, monitor).await? {
        Some(session::Ended::Failed(attempt)) => Some(*attempt),
        Some(session::Ended::Copied | session::Ended::Detached(_)) | None => None,
    })
}

/// `--detach`: starts the build as a session on the builder and returns once it runs, its id
/// on stdout. Nothing to build on a builder: the run is an ordinary one (a noop needs no
/// session); a session that cannot be: exit 3 with why.
async fn detach(job: &Job<'_>, mut monitor: Monitor) -> Result<i32> {
    let plan = &job.planned.plan;
    if matches!(plan.mode, Mode::Noop) {
        monitor.message("nixdispatch: --detach: nothing to build, everything is here");
        monitor.finish_with(Instant::now(), true);
        return Ok(0);
    }
    let builder = match session::eligible(job, plan) {
        Ok(b) => b,
        Err(why) => {
            monitor.finish_with(Instant::now(), false);
            return Err(Error::Impossible(format!(
                "--detach needs a build session on a builder, and {why}; run without --detach"
            )));
        }
    };
    match session::run(job, builder, &mut monitor).await? {
        Some(session::Ended::Detached(id)) => {
            monitor.message(&format!(
                "nixdispatch: session {id} runs on {}: `nixdispatch attach {id}` follows it; the next run of the same installables picks up its results",
                builder.host()
            ));
            monitor.finish_with(Instant::now(), true);
            // With --json, stdout is the events' (the message above carries the id).
            if !job.settings.json() {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{id}");
                let _ = out.flush();
            }
            Ok(0)
        }
        _ => {
            monitor.finish_with(Instant::now(), false);
            Err(Error::Impossible(format!(
                "--detach: no session could be started on {}; the reason is above",
                builder.host()
            )))
        }
    }
}

/// The noop check's build ([`crate::run::noop`]), its held-back log shown now as it would have
/// been live; its result is activated as any build's.
fn replayed(
    job: &Job<'_>,
    plan: &Plan,
    done: crate::run::noop::Done,
    monitor: &mut Monitor,
) -> Result<Attempt> {
    let ctx = dispatch::Context {
        plan,
        builders: &[],
        nix: &job.settings.nix().version,
        nix_args: &job.request.build_args,
        env: &job.env,
    };
    let steps = dispatch::steps(&job.target, job.runner, &ctx)?;
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
    Ok(Attempt {
        ok: true,
        status: "exit status: 0".to_owned(),
        results: crate::nix::build_json::outputs(&done.stdout),
        steps_activation: (!steps.activate.is_empty()).then_some(steps),
        failed: Vec::new(),
        last_error: None,
        stopped: None,
        stdout: done.stdout,
    })
}

/// Warns where the log shows builds ran elsewhere than the plan said.
fn compare_with_reality(plan: &Plan, monitor: &mut Monitor) {
    if let Some(line) =
        self::reality::compare(plan, &monitor.state().summary(Instant::now()), |uri| {
            crate::monitor::host_of(uri).to_owned()
        })
    {
        monitor.message(&format!("nixdispatch: warning: {line}"));
    }
}

/// After a failed build: pushes what was realised anyway and writes the result file; the
/// run's error.
async fn failed(job: &Job<'_>, plan: &Plan, attempt: &Attempt, mut monitor: Monitor) -> Error {
    let (settings, run) = (job.settings, job.run);
    let line = attempt::failure_line(attempt);
    let outcome = if run.result_file.is_some() || run.push || !run.push_to.is_empty() {
        // What the log showed so far: the builds that ended before nix stopped.
        let record = monitor.record().cloned().unwrap_or_default();
        outcomes(settings, job.request, &job.target, plan, &record, None).await
    } else {
        Vec::new()
    };
    // With --keep-going the rest was realised: push what succeeded (a CI run fills the
    // cache with everything that built), the failure still fails the run.
    let realised = self::outcome::realised(&outcome);
    let _ = self::push::push_all(
        settings,
        run,
        &job.planned,
        &realised,
        &job.env,
        &mut monitor,
    )
    .await;
    let (_, record) = monitor.finish_with_record(Instant::now(), false);
    remember(job, record.learned).await;
    write_result_file(run, plan, &outcome, false);
    Error::Failed(line)
}

/// Activates the result when the target has activation steps; `Some(why)` when it failed.
async fn activate(
    job: &Job<'_>,
    attempt: &Attempt,
    monitor: &mut Monitor,
) -> Result<Option<String>> {
    let sudo = self::sudo::needs_sudo(job.settings, &job.target, job.runner);
    Ok(match (&attempt.steps_activation, attempt.results.first()) {
        (Some(steps), Some(result)) => {
            self::activate::activate(steps, result, sudo, monitor).await?
        }
        (Some(_), None) => Some("nix reported no result path to activate".to_owned()),
        (None, _) => None,
    })
}

/// `--result-file`, when asked for.
fn write_result_file(run: &RunArgs, plan: &Plan, outcome: &[InstallableResult], ok: bool) {
    if let Some(path) = &run.result_file {
        render::result_file::write(path, run.result_format, plan, outcome, ok);
    }
}

/// What the run prints on stdout, as `nix build` would (or the result paths for home/os).
fn print_stdout(settings: &Settings, stdout: Stdout, results: &[PathBuf], nix_json: &[u8]) {
    let mut out = std::io::stdout().lock();
    match stdout {
        // `nixdispatch --json build`: stdout is nixdispatch's events, nothing else.
        Stdout::Nix { .. } if settings.json() => {}
        Stdout::Nix { json, out_paths } => {
            if json {
                let _ = out.write_all(nix_json);
            }
            if out_paths {
                for path in crate::nix::build_json::out_paths(nix_json) {
                    let _ = writeln!(out, "{path}");
                }
            }
        }
        Stdout::ResultPaths => {
            if !settings.json() && settings.verbosity() >= 0 {
                for r in results {
                    let _ = writeln!(out, "{}", r.display());
                }
            }
        }
    }
    let _ = out.flush();
}

/// The environment of the nix (or nh) processes this run starts: they ride the ssh masters
/// the probe opened, one handshake per builder per run instead of one per derivation. Not for
/// a daemon client: the daemon's ssh runs as root and never sees our environment.
pub(crate) fn nix_env(settings: &Settings) -> Vec<(OsString, OsString)> {
    if settings.daemon().is_some() {
        return Vec::new();
    }
    let env = dispatch::nix_ssh_env(crate::probe::nix_ssh_share_opts(), settings.nix_sshopts());
    if !env.is_empty() {
        tracing::debug!(env = ?env, "nix rides the probe's ssh masters");
    }
    env
}
