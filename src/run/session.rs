//! A run's second back end: the build as a session on the builder ([`crate::session`]). The
//! derivations are copied there, one detached `nix build` runs there, its log is drawn here by
//! the same monitor as the build hook's, the outputs come home in one `nix copy`, and the
//! ordinary build step then finds everything valid (result links, `--json`, activation as
//! always).
//!
//! The session outlives this client: when the link drops, the watchdog gives up, or this
//! process is killed, it keeps building; the next run of the same derivations finds it
//! (running: follows its log; done: copies; failed: shows its failure). Ctrl-C cancels it.

use super::attempt::Attempt;
use super::Job;
use crate::builder::Builder;
use crate::child::{self, Invocation, Keep, Pipe, Report};
use crate::cli::RemoteVia;
use crate::monitor::Monitor;
use crate::plan::{Mode, Plan, Source};
use crate::probe::Connection;
use crate::session::{self, SessionId, Started, State};
use crate::watchdog::{self, ProgressHandle, Watched};
use crate::{Error, Result};
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Instant;

/// The oldest Nix a builder must run for sessions: `DRV^OUTPUTS` installables.
const BUILDER_NIX: (u32, u32) = (2, 15);

/// Whether this plan's builds can go to a session, on which builder; else why not, as the end
/// of a sentence ("... : nix's build hook builds").
pub(super) fn eligible<'a>(
    job: &'a Job<'_>,
    plan: &Plan,
) -> std::result::Result<&'a Builder, String> {
    if plan.mode != Mode::Remote || plan.builds.is_empty() {
        return Err("nothing is to be built on a builder".to_owned());
    }
    let mut targets: Vec<&str> = Vec::new();
    for b in &plan.builds {
        match &b.from {
            None => return Err("some derivations are built here".to_owned()),
            Some(uri) if !targets.contains(&uri.as_str()) => targets.push(uri),
            Some(_) => {}
        }
    }
    one_builder(job, &targets)
}

/// Whether a finished session of this run's derivations could be on a builder the plan copies
/// from: a substitute plan whose builder paths all come from one builder. Such a session's
/// outputs are copied home through it (and it is marked used up), not left open.
fn joinable<'a>(job: &'a Job<'_>, plan: &Plan) -> Option<&'a Builder> {
    if plan.mode != Mode::Substitute {
        return None;
    }
    let mut targets: Vec<&str> = Vec::new();
    for p in plan.paths.iter().filter(|p| p.source == Source::Builder) {
        match &p.from {
            Some(uri) if !targets.contains(&uri.as_str()) => targets.push(uri),
            _ => {}
        }
    }
    one_builder(job, &targets).ok()
}

/// The one builder of `targets` (URIs), when a session can run there; else why not.
fn one_builder<'a>(job: &'a Job<'_>, targets: &[&str]) -> std::result::Result<&'a Builder, String> {
    let settings = job.settings;
    if job.request.rebuild {
        return Err("--rebuild is nix's build hook's".to_owned());
    }
    if settings.daemon().is_some_and(|d| d.trusted != Some(true)) {
        return Err("the nix daemon does not trust you, so it would refuse the outputs copied back from a session".to_owned());
    }
    let [uri] = targets else {
        return Err(format!(
            "the builds are spread over {} builders, which nix's build hook distributes",
            targets.len()
        ));
    };
    let Some(builder) = job
        .planned
        .builders()
        .iter()
        .find(|b| b.reachable() && b.machine.uri.to_string().as_str() == *uri)
    else {
        return Err(format!("{uri} is not reachable"));
    };
    if builder.connection().is_none() {
        return Err(format!("your own ssh does not reach {}", builder.host()));
    }
    let version = builder
        .nix_version
        .as_deref()
        .and_then(|v| crate::nix::version::NixVersion::parse(v).ok());
    if !version.is_some_and(|v| v.at_least(BUILDER_NIX.0, BUILDER_NIX.1)) {
        return Err(format!(
            "{} runs Nix {}, and a session needs {}.{} there",
            builder.host(),
            builder.nix_version.as_deref().unwrap_or("(unknown)"),
            BUILDER_NIX.0,
            BUILDER_NIX.1
        ));
    }
    if job.planned.session_installables.is_empty() {
        return Err("the wanted outputs cannot be named to the builder".to_owned());
    }
    Ok(builder)
}

/// How a session ended for this run.
pub(super) enum Ended {
    /// Its outputs are here now: the ordinary build step finds them valid.
    Copied,
    /// nix failed on the builder: the attempt to report.
    Failed(Box<Attempt>),
    /// `--detach`: it runs (or already ran) on the builder, left there.
    Detached(SessionId),
}

/// What the run does about sessions, decided before its build: `Some(builder)` to build as a
/// session there. With `--remote-via hook`, only a session of the same derivations already on
/// the builder (a `--detach`ed one, or one whose client went away) is taken up; asked for a
/// session that cannot be, the run says why once.
pub(super) async fn choose<'a>(
    job: &'a Job<'_>,
    plan: &Plan,
    monitor: &mut Monitor,
) -> Option<&'a Builder> {
    let detach = job.run.detach;
    match (eligible(job, plan), job.settings.remote_via()) {
        (Ok(b), RemoteVia::Session) => Some(b),
        (Ok(b), RemoteVia::Hook) if detach => Some(b),
        (Ok(b), RemoteVia::Hook) => {
            let conn = b.connection()?;
            let key = session::key_of(&job.planned.session_installables);
            match job
                .planned
                .sessions
                .list(b.machine.uri.as_ref(), conn)
                .await
            {
                Ok(all) => all
                    .iter()
                    .any(|s| s.key == key && !s.copied && s.state != State::Lost)
                    .then_some(b),
                Err(why) => {
                    tracing::debug!(%why, "listing sessions");
                    None
                }
            }
        }
        (Err(why), RemoteVia::Session) => {
            if let Some(b) = done_session(job, plan).await {
                return Some(b);
            }
            if plan.mode == Mode::Remote {
                monitor.message(&format!(
                    "nixdispatch: --remote-via session: not possible here ({why}); nix's build hook builds"
                ));
            }
            None
        }
        // A done session of these derivations: its outputs come home through it.
        (Err(_), RemoteVia::Hook) => done_session(job, plan).await,
    }
}

/// The builder holding a done, not yet copied session of this run's derivations, when the
/// plan copies from one builder ([`joinable`]).
async fn done_session<'a>(job: &'a Job<'_>, plan: &Plan) -> Option<&'a Builder> {
    let b = joinable(job, plan)?;
    let conn = b.connection()?;
    let key = session::key_of(&job.planned.session_installables);
    let all = job
        .planned
        .sessions
        .list(b.machine.uri.as_ref(), conn)
        .await
        .ok()?;
    all.iter()
        .any(|s| s.key == key && !s.copied && s.state == State::Done)
        .then_some(b)
}

/// Runs the build as a session on `builder` (or joins the one of the same derivations there).
/// `Ok(None)` when the builder refused to start one (said in one line): the hook builds then.
pub(super) async fn run(
    job: &Job<'_>,
    builder: &Builder,
    monitor: &mut Monitor,
) -> Result<Option<Ended>> {
    let Some(conn) = builder.connection().cloned() else {
        return Ok(None);
    };
    let host = builder.host().to_owned();
    let store = builder.machine.store_uri();
    let installables = &job.planned.session_installables;
    let drvs: Vec<String> = installables
        .iter()
        .map(|i| i.split('^').next().unwrap_or(i).to_owned())
        .collect();
    let Some(watched) = Watched::of(builder) else {
        return Ok(None);
    };
    let copied = crate::timing::timed(
        "session-copy-derivations",
        copy_derivations(job, &store, &drvs, &watched, monitor),
    )
    .await?;
    if !copied {
        monitor.message(&format!(
            "nixdispatch: the derivations could not be copied to {host} for a session; nix's build hook builds"
        ));
        return Ok(None);
    }
    let key = session::key_of(installables);
    let fresh = SessionId::generate(&key);
    let outputs: Vec<String> = job
        .planned
        .wanted
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let request = session::Request {
        key: &key,
        id: &fresh,
        client: &job.settings.defaults().hostname,
        jobs: builder.machine.max_jobs,
        installables,
        outputs: &outputs,
    };
    let (started, lost) =
        match crate::timing::timed("session-start", session::start(&conn, &request)).await {
            Ok(answer) => answer,
            Err(why) => {
                monitor.message(&format!(
                    "nixdispatch: no session on {host} ({why}); nix's build hook builds"
                ));
                return Ok(None);
            }
        };
    for id in lost {
        monitor.message(&format!(
            "nixdispatch: session {id} on {host} was lost (the builder restarted, or it was killed unfinished): building again"
        ));
    }
    let joined_done = matches!(started, Started::Joined(_, State::Done));
    // Ctrl-C cancels the session this run started; one it joined is another run's too.
    let owned = matches!(started, Started::New(_));
    let id = match started {
        Started::Refused(why) => {
            monitor.message(&format!(
                "nixdispatch: no session on {host} ({why}); nix's build hook builds"
            ));
            return Ok(None);
        }
        Started::New(id) => {
            monitor.message(&format!(
                "nixdispatch: session {id} started on {host}: it keeps building there if this client goes away"
            ));
            id
        }
        Started::Joined(id, State::Done) => {
            monitor.message(&format!(
                "nixdispatch: session {id} on {host} already built these derivations: copying its outputs"
            ));
            id
        }
        Started::Joined(id, state) => {
            monitor.message(&format!(
                "nixdispatch: session {id} on {host} already builds these derivations ({}): taking it up",
                state.as_str()
            ));
            id
        }
    };
    if job.run.detach {
        return Ok(Some(Ended::Detached(id)));
    }
    let guard = owned.then(|| session::CancelOnDrop::new(&conn, &id));
    // Built already: its log is history, only its outputs are wanted.
    let end = if joined_done {
        Followed::End(State::Done, Some(0))
    } else {
        let followed = crate::timing::timed(
            "session-follow",
            follow(job.settings, builder, &conn, &id, &watched, owned, monitor),
        )
        .await;
        if let Some(guard) = guard {
            guard.disarm();
        }
        followed?
    };
    finish_followed(job, builder, &conn, &id, end, &outputs, monitor)
        .await
        .map(Some)
}

/// `nix copy --derivation --to STORE DRVS`, riding the probe's master, under the watchdog.
async fn copy_derivations(
    job: &Job<'_>,
    store: &str,
    drvs: &[String],
    watched: &Watched,
    monitor: &mut Monitor,
) -> Result<bool> {
    let mut args: Vec<OsString> = nix_command(&["copy", "--derivation", "--to"]);
    args.push(store.into());
    args.extend(drvs.iter().map(OsString::from));
    let inv = Invocation {
        env: job.env.clone(),
        ..Invocation::plain("nix", args)
    };
    let progress = ProgressHandle::default();
    let stop = watchdog::watch(
        vec![watched.clone()],
        progress.clone(),
        job.settings.silent_timeout(),
    );
    // nix's "copying path ..." lines are shown only when the copy failed.
    let mut said: Vec<String> = Vec::new();
    let on = |report: Report<'_>| match report {
        Report::Line(_, line) => {
            progress.line(Instant::now());
            if said.len() < 20 {
                said.push(line.to_owned());
            }
        }
        Report::Tick => monitor.tick(Instant::now()),
    };
    let finished = child::run_until(&inv, Keep::Nothing, on, stop).await?;
    let ok = finished.status.success() && finished.stopped.is_none();
    if !ok {
        for line in &said {
            monitor.message(line);
        }
    }
    Ok(ok)
}

/// `--extra-experimental-features "nix-command flakes" ARGS`.
fn nix_command(args: &[&str]) -> Vec<OsString> {
    let mut all: Vec<OsString> = vec![
        "--extra-experimental-features".into(),
        crate::nix::FEATURES.into(),
    ];
    all.extend(args.iter().map(OsString::from));
    all
}

/// How following a session's log ended.
pub(crate) enum Followed {
    /// The log ended: the session's state and nix's exit code.
    End(State, Option<i32>),
    /// The builder has no such session (any more).
    Gone,
    /// The link to the builder broke or went silent first, with why.
    LinkLost(String),
}

/// Follows the session's log into the monitor until nix ends on the builder. Ctrl-C returns
/// [`Error::Interrupted`], after cancelling the session with `cancel_on_interrupt` (the run
/// that started it) or saying it goes on (a run that joined it, `attach`).
pub(crate) async fn follow(
    settings: &crate::settings::Settings,
    builder: &Builder,
    conn: &Arc<Connection>,
    id: &SessionId,
    watched: &Watched,
    cancel_on_interrupt: bool,
    monitor: &mut Monitor,
) -> Result<Followed> {
    let inv = session::follow(conn, id).map_err(Error::Failed)?;
    let uri = builder.machine.uri.to_string();
    monitor.builds_run_there(&uri);
    let progress = ProgressHandle::default();
    let stop = watchdog::watch(
        vec![watched.clone()],
        progress.clone(),
        settings.silent_timeout(),
    );
    let mut end = None;
    let on = |report: Report<'_>| match report {
        Report::Line(Pipe::Stdout, line) => {
            progress.line(Instant::now());
            if let Some(e) = session::remote::read_end(line) {
                end = Some(e);
            } else if !line.is_empty() {
                monitor.feed_line(&session::relocate(line, &uri), Instant::now());
            }
        }
        Report::Line(Pipe::Stderr, line) => monitor.message(line),
        Report::Tick => {
            monitor.tick(Instant::now());
            // The builder is busy as long as the session runs: only a dead link trips it.
            progress.activity(std::iter::once(builder.host().to_owned()).collect(), false);
        }
    };
    tracing::debug!(%id, "following the session's log");
    let finished = match child::run_until(&inv, Keep::Nothing, on, stop).await {
        Ok(f) => f,
        Err(Error::Interrupted) if cancel_on_interrupt => {
            cancel_after_interrupt(settings, builder, conn, id, monitor).await;
            return Err(Error::Interrupted);
        }
        Err(Error::Interrupted) => {
            monitor.message(&format!(
                "nixdispatch: session {id} goes on on {}: `nixdispatch attach {id}` follows it, `nixdispatch cancel {id}` stops it",
                builder.host()
            ));
            return Err(Error::Interrupted);
        }
        Err(e) => return Err(e),
    };
    tracing::debug!(%id, status = %finished.status, ended = end.is_some(), "the session's log ended");
    Ok(match (end, finished.stopped) {
        (Some((Some(state), status)), _) => Followed::End(state, status),
        (Some((None, _)), _) => Followed::Gone,
        (None, Some(why)) => Followed::LinkLost(why),
        (None, None) => Followed::LinkLost(format!("ssh ended ({})", finished.status)),
    })
}

/// After Ctrl-C: stops the session on the builder, over the probe's connection or, when Ctrl-C
/// took that down too, a new one. Bounded by the connect timeout and one store query.
async fn cancel_after_interrupt(
    settings: &crate::settings::Settings,
    builder: &Builder,
    conn: &Arc<Connection>,
    id: &SessionId,
    monitor: &mut Monitor,
) {
    let host = builder.host();
    let mut result = session::cancel(conn, id).await;
    if result.is_err() {
        let again =
            crate::probe::probe_for(settings, std::slice::from_ref(&builder.machine), false).await;
        if let Some(conn) = again.first().and_then(|b| b.connection().cloned()) {
            result = session::cancel(&conn, id).await;
        }
    }
    match result {
        Ok(_) => monitor.message(&format!("nixdispatch: session {id} on {host} cancelled")),
        Err(why) => monitor.message(&format!(
            "nixdispatch: session {id} on {host} could not be cancelled ({why}): `nixdispatch cancel {id}` stops it"
        )),
    }
}

/// After a lost link: `Some(why)` when the builder is gone, `None` when only the link was lost
/// and the session may still build. Asked of the builder's sshd directly (its banner, no
/// credentials), not through ssh: a new ssh would ride the control socket of the very master
/// whose link went silent. When that cannot tell (a proxy in the way), a full probe decides.
async fn gone(job: &Job<'_>, builder: &Builder) -> Option<String> {
    let settings = job.settings;
    let words = |why: String| {
        format!(
            "builder {} went away during the build: {why}",
            builder.host()
        )
    };
    match crate::probe::liveness(
        &builder.machine,
        settings.connect_timeout(),
        settings.ssh_opts(),
    )
    .await
    {
        crate::probe::Liveness::Alive => None,
        crate::probe::Liveness::Dead(failure) => Some(words(failure.to_string())),
        crate::probe::Liveness::Unknown(_) => {
            let again =
                crate::probe::probe_for(settings, std::slice::from_ref(&builder.machine), false)
                    .await;
            again
                .first()
                .filter(|b| !b.reachable())
                .map(|b| words(b.failure_words()))
        }
    }
}

/// The one line of a run that lost its session's link: exit 1, the session goes on.
pub(crate) fn link_lost(host: &str, id: &SessionId, why: &str) -> Error {
    Error::Failed(format!(
        "lost the link to {host} ({why}); session {id} keeps building there: the next run of the \
         same installables, or `nixdispatch attach {id}`, picks it up"
    ))
}

/// What a followed session comes to: its outputs copied home, its failure, or the run's error.
async fn finish_followed(
    job: &Job<'_>,
    builder: &Builder,
    conn: &Arc<Connection>,
    id: &SessionId,
    end: Followed,
    outputs: &[String],
    monitor: &mut Monitor,
) -> Result<Ended> {
    let host = builder.host();
    match end {
        Followed::LinkLost(why) => match gone(job, builder).await {
            // The builder itself is gone (not only the link): finish locally once, as the
            // hook's runs do (the fallback's own rules, `--no-local-fallback` included).
            Some(gone) => Ok(Ended::Failed(Box::new(Attempt::stopped(format!(
                "{gone}; session {id} went with it"
            ))))),
            None => Err(link_lost(host, id, &why)),
        },
        Followed::Gone => Err(Error::Failed(format!(
            "session {id} is gone from {host} (cancelled, or its directory removed): run again to build"
        ))),
        Followed::End(State::Done, _) => {
            copy_home(job.settings, builder, id, outputs, &job.env, monitor).await?;
            if let Err(why) = session::finish(conn, id, true).await {
                tracing::debug!(%why, "marking the session copied");
            }
            Ok(Ended::Copied)
        }
        Followed::End(state, status) => {
            let _ = session::finish(conn, id, false).await;
            let status = match (state, status) {
                (State::Lost, _) => format!("session {id} was lost on {host}"),
                (_, Some(code)) => format!("exit status: {code} on {host}"),
                (_, None) => format!("failed on {host}"),
            };
            Ok(Ended::Failed(Box::new(Attempt::failed_from(
                monitor, status,
            ))))
        }
    }
}

/// The store to copy a session's outputs home from: an `ssh-ng://` builder as `ssh://`, the
/// same host, user, key and host key over nix's older serve protocol. Nix 2.26's `nix copy
/// --from ssh-ng://` opens a connection per path (three small outputs: 2.6 s against 1.0 s over
/// `ssh://` at 30 ms each way on the lab; 2.34: 1.25 s against 1.05 s). A URI with other
/// parameters (`remote-program`, `remote-store`, ...) names a daemon to run there and is kept.
fn copy_home_store(machine: &crate::machines::Machine) -> Option<String> {
    let uri = machine.store_uri();
    let rest = uri.strip_prefix("ssh-ng://")?;
    let plain = rest.split_once('?').is_none_or(|(_, query)| {
        query.split('&').all(|p| {
            ["ssh-key=", "base64-ssh-public-host-key=", "compress="]
                .iter()
                .any(|k| p.starts_with(k))
        })
    });
    plain.then(|| format!("ssh://{rest}"))
}

/// `nix copy --from STORE --no-check-sigs OUTPUTS`: the session's outputs home, in one copy,
/// its log into the monitor. `--no-check-sigs`: the builder built them for us, as the build
/// hook's copies are taken (sessions are not offered where the daemon does not trust us).
/// Over `ssh://` where that is the same link ([`copy_home_store`]), credited to the builder;
/// when that copy fails, once more from the builder's own store URI.
pub(crate) async fn copy_home(
    settings: &crate::settings::Settings,
    builder: &Builder,
    id: &SessionId,
    outputs: &[String],
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
) -> Result<()> {
    let _phase = crate::timing::phase("copy-back");
    if let Some(store) = copy_home_store(&builder.machine) {
        monitor.same_link(&store, builder.machine.uri.as_ref());
        match copy_from(settings, builder, &store, outputs, env, monitor).await? {
            Copied::Yes => return Ok(()),
            // A silent link is not tried twice.
            Copied::Stopped(why) => return Err(copy_failed(builder, id, &why)),
            Copied::Failed(why) => {
                tracing::debug!(%id, why, "copying over ssh:// failed; ssh-ng:// next")
            }
        }
    }
    let store = builder.machine.store_uri();
    match copy_from(settings, builder, &store, outputs, env, monitor).await? {
        Copied::Yes => Ok(()),
        Copied::Stopped(why) | Copied::Failed(why) => Err(copy_failed(builder, id, &why)),
    }
}

/// How one copy home ended.
enum Copied {
    Yes,
    /// nix failed: why.
    Failed(String),
    /// The watchdog stopped it (the link went silent): why.
    Stopped(String),
}

fn copy_failed(builder: &Builder, id: &SessionId, why: &str) -> Error {
    Error::Failed(format!(
        "session {id} built on {} but copying its outputs here failed ({why}); `nixdispatch attach {id}` tries again",
        builder.host(),
    ))
}

/// One `nix copy --from STORE` of the outputs, under the watchdog.
async fn copy_from(
    settings: &crate::settings::Settings,
    builder: &Builder,
    store: &str,
    outputs: &[String],
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
) -> Result<Copied> {
    let mut args = nix_command(&[
        "copy",
        "--no-check-sigs",
        "--log-format",
        "internal-json",
        "-v",
        "--from",
    ]);
    args.push(store.into());
    args.extend(outputs.iter().map(OsString::from));
    let inv = Invocation {
        env: env.to_vec(),
        ..Invocation::plain("nix", args)
    };
    let progress = ProgressHandle::default();
    let stop = match Watched::of(builder) {
        Some(watched) => futures::future::Either::Left(watchdog::watch(
            vec![watched],
            progress.clone(),
            settings.silent_timeout(),
        )),
        None => futures::future::Either::Right(std::future::pending()),
    };
    let on = |report: Report<'_>| match report {
        Report::Line(_, line) => {
            progress.line(Instant::now());
            monitor.feed_line(line, Instant::now());
        }
        Report::Tick => monitor.tick(Instant::now()),
    };
    tracing::debug!(store, "copying the session's outputs home");
    let finished = child::run_until(&inv, Keep::Nothing, on, stop).await?;
    Ok(match finished.stopped {
        Some(why) => Copied::Stopped(why),
        None if finished.status.success() => Copied::Yes,
        None => Copied::Failed(finished.status.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::copy_home_store;

    fn store(line: &str) -> Option<String> {
        let mut none = |_: &std::path::Path| None;
        let machines = crate::machines::parse_machines(line, "test", &mut none)
            .unwrap_or_else(|e| panic!("{line}: {e:?}"));
        copy_home_store(&machines[0])
    }

    #[test]
    fn outputs_come_home_over_ssh_where_it_is_the_same_link() {
        assert_eq!(
            store("ssh-ng://me@seasmoke:2222 x86_64-linux /k 4 1 - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU=").as_deref(),
            Some("ssh://me@seasmoke:2222?ssh-key=/k&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTU%3D")
        );
        assert_eq!(
            store("ssh-ng://seasmoke?compress=true").as_deref(),
            Some("ssh://seasmoke?compress=true")
        );
        // A daemon named to run there, or another store behind it: as declared.
        assert_eq!(
            store("ssh-ng://seasmoke?remote-program=/opt/nix-daemon"),
            None
        );
        assert_eq!(store("ssh-ng://seasmoke?remote-store=/srv/store"), None);
        // Already the serve protocol.
        assert_eq!(store("ssh://seasmoke"), None);
    }
}
