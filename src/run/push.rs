//! After a successful run: copy the results to other stores (`--push-to URI`, and `--push` for
//! the reachable builders whose systems fit), signed with `--sign-key` so that machines with
//! `require-sigs = true` that trust the key can substitute them.
//!
//! Signing is `nix store sign --key-file FILE -r` on the local store, then `nix copy --to`:
//! one way that works for every kind of store (ssh-ng, file://, s3://, http) and every Nix
//! version here. Without a key the paths go as they are with `--no-check-sigs`, and the run says
//! so: the destination decides (a builder accepts them from its trusted users), and clients
//! with `require-sigs` will not substitute them.

use crate::child::{self, Keep, Report};
use crate::cli::RunArgs;
use crate::dispatch;
use crate::monitor::Monitor;
use crate::planning::Planned;
use crate::settings::Settings;
use crate::watchdog::{self, ProgressHandle, Watched};
use crate::{Error, Result};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Instant;

/// What a refused copy usually means, and the fixes.
const SIGNATURE_HINT: &str = "a store that requires signatures takes paths signed by a key it \
     trusts (--sign-key FILE, with the public half in its trusted-public-keys) or from its \
     trusted users";

/// One destination.
struct Destination {
    uri: String,
    /// How messages name it: the builder's host, or the URI as given.
    label: String,
    /// Named with `--push-to`: a failure fails the run. `--push`'s builders only warn.
    explicit: bool,
    /// nixdispatch's own connection, for a builder: the watchdog asks it whether the builder
    /// is still there while nix copies.
    watched: Option<Watched>,
}

/// Pushes the results where `--push-to`/`--push` say. Returns an error (exit 1) when an
/// explicit `--push-to` failed; every other problem is a warning line. `env` is the nix
/// processes' environment ([`dispatch::nix_ssh_env`]).
pub async fn push_all(
    settings: &Settings,
    run: &RunArgs,
    planned: &Planned,
    results: &[PathBuf],
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
) -> Result<()> {
    if run.push_to.is_empty() && !run.push {
        return Ok(());
    }
    if results.is_empty() {
        monitor.message("nixdispatch: nothing pushed: nix reported no result paths");
        return Ok(());
    }
    let destinations = destinations(settings, run, planned, monitor).await;
    if destinations.is_empty() {
        return Ok(());
    }
    if let Some(key) = &run.sign_key {
        sign(key, results, env, monitor).await?;
    }
    let mut failed = Vec::new();
    for dest in &destinations {
        let signed = run.sign_key.is_some();
        if !copy_to(settings, dest, results, signed, env, monitor).await? && dest.explicit {
            failed.push(dest.uri.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "the build succeeded but pushing to {} failed; its error is above",
            failed.join(", ")
        )))
    }
}

/// Where to push: every `--push-to`, then with `--push` the builders that fit.
async fn destinations(
    settings: &Settings,
    run: &RunArgs,
    planned: &Planned,
    monitor: &mut Monitor,
) -> Vec<Destination> {
    let mut destinations: Vec<Destination> = run
        .push_to
        .iter()
        .map(|uri| Destination {
            uri: uri.clone(),
            label: uri.clone(),
            explicit: true,
            watched: None,
        })
        .collect();
    if run.push {
        destinations.extend(fitting_builders(settings, planned, monitor).await);
    }
    destinations
}

/// Signs the results (closures included) with `--sign-key`; a failure fails the run.
async fn sign(
    key: &std::path::Path,
    results: &[PathBuf],
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
) -> Result<()> {
    let sign = dispatch::sign_paths(key, results, env);
    let finished = child::run(&sign, Keep::Nothing, |r| super::attempt::show(monitor, r)).await?;
    if !finished.status.success() {
        return Err(Error::Failed(format!(
            "signing the results with {} failed ({}): is it a nix secret key (nix key generate-secret)?",
            key.display(),
            finished.status
        )));
    }
    Ok(())
}

/// Copies the results to one destination, saying how it went; `false` when nix copy failed
/// (a destination the watchdog gave up on is a warning, not a failure).
async fn copy_to(
    settings: &Settings,
    dest: &Destination,
    results: &[PathBuf],
    signed: bool,
    env: &[(OsString, OsString)],
    monitor: &mut Monitor,
) -> Result<bool> {
    let copy = dispatch::copy_paths(&dest.uri, results, signed, env);
    if !signed {
        monitor.message(&format!(
            "nixdispatch: pushing to {} without --sign-key: copied with --no-check-sigs, so the \
             store accepts them only if it trusts you, and clients with require-sigs will not \
             substitute them",
            dest.label
        ));
    }
    // A builder that goes silent during the push must not hold the run: the same watchdog
    // as for builds (no output and no keepalive answer for the silent timeout) stops it.
    let progress = ProgressHandle::default();
    let watch = watchdog::watch(
        dest.watched.clone().into_iter().collect(),
        progress.clone(),
        settings.silent_timeout(),
    );
    let finished = child::run_until(
        &copy,
        Keep::Nothing,
        |r| {
            if matches!(r, Report::Line(..)) {
                progress.line(Instant::now());
            }
            super::attempt::show(monitor, r)
        },
        watch,
    )
    .await?;
    if let Some(why) = &finished.stopped {
        monitor.message(&format!(
            "nixdispatch: warning: nothing pushed to {}: {why}",
            dest.label
        ));
        return Ok(true);
    }
    if finished.status.success() {
        let signed = if signed { ", signed" } else { "" };
        monitor.message(&format!(
            "nixdispatch: pushed to {}: {} result path(s) and their closure{signed}",
            dest.label,
            results.len()
        ));
        return Ok(true);
    }
    let level = if dest.explicit { "error" } else { "warning" };
    monitor.message(&format!(
        "nixdispatch: {level}: pushing to {} failed ({}): {SIGNATURE_HINT}",
        dest.label, finished.status
    ));
    Ok(false)
}

/// `--push`: the reachable builders whose systems include one of the results' systems.
async fn fitting_builders(
    settings: &Settings,
    planned: &Planned,
    monitor: &mut Monitor,
) -> Vec<Destination> {
    // `--mode local` and a builder that vanished leave no live probe: ask again now.
    let probed_now;
    let builders = if planned.builders().iter().any(|b| b.reachable()) {
        planned.builders()
    } else {
        probed_now = crate::probe::probe_for(settings, settings.builders(), false).await;
        &probed_now
    };
    let fits = |systems: &[String]| {
        planned.systems.is_empty() || systems.iter().any(|s| planned.systems.contains(s))
    };
    let chosen: Vec<Destination> = builders
        .iter()
        .filter(|b| b.reachable())
        .filter(|b| fits(&b.machine.systems) || fits(&b.systems))
        .map(|b| Destination {
            uri: b.machine.store_uri(),
            label: b.host().to_owned(),
            explicit: false,
            watched: Watched::of(b),
        })
        .collect();
    if chosen.is_empty() {
        monitor.message(
            "nixdispatch: nothing pushed: no reachable builder builds for the results' systems",
        );
    }
    chosen
}
