//! `nixdispatch sessions`, `attach` and `cancel`: the build sessions on every builder, listed,
//! followed to their end (their outputs then copied here), stopped.

use crate::builder::Builder;
use crate::cli::{AttachArgs, CancelArgs, SessionsArgs};
use crate::monitor::Monitor;
use crate::probe::probe_for;
use crate::run::session::{self as run_session, Followed};
use crate::session::{self, Listed, SessionId, State};
use crate::settings::Settings;
use crate::{Error, Result};
use std::time::Instant;

/// Every builder probed; a line on stderr for each that could not be asked.
async fn reachable(settings: &Settings) -> Vec<Builder> {
    let probed = probe_for(settings, settings.builders(), false).await;
    for b in probed.iter().filter(|b| b.connection().is_none()) {
        crate::output::stderr_line(&format!(
            "nixdispatch: warning: the sessions on {} cannot be asked: {}",
            b.host(),
            b.failure_words()
        ));
    }
    probed
        .into_iter()
        .filter(|b| b.connection().is_some())
        .collect()
}

/// The sessions of every reachable builder, each with its builder.
async fn every_session(builders: &[Builder]) -> Vec<(usize, Listed)> {
    let asks = builders.iter().enumerate().map(|(i, b)| async move {
        let Some(conn) = b.connection() else {
            return (i, Err("no connection".to_owned()));
        };
        (i, session::list(conn).await)
    });
    let mut all = Vec::new();
    for (i, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(listed) => all.extend(listed.into_iter().map(|s| (i, s))),
            Err(why) => crate::output::stderr_line(&format!(
                "nixdispatch: warning: the sessions on {} could not be listed: {why}",
                builders[i].host()
            )),
        }
    }
    all
}

/// This machine's name as the builder keeps it (see [`session::start`]).
fn this_client(settings: &Settings) -> String {
    settings
        .defaults()
        .hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Not yet used up: its outputs not copied home, its failure not shown, not found lost.
fn open(s: &Listed) -> bool {
    !s.copied
}

/// `sessions [--all]`: this machine's open sessions, or with `--all` every one.
pub async fn list(settings: &Settings, args: &SessionsArgs) -> Result<i32> {
    let builders = reachable(settings).await;
    let client = this_client(settings);
    let mut shown: Vec<(usize, Listed)> = every_session(&builders)
        .await
        .into_iter()
        .filter(|(_, s)| args.all || (s.client == client && open(s)))
        .collect();
    shown.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    if settings.json() {
        let sessions: Vec<serde_json::Value> = shown
            .iter()
            .map(|(i, s)| {
                serde_json::json!({
                    "id": s.id,
                    "builder": builders[*i].machine.uri.to_string(),
                    "state": s.state,
                    "started": s.started,
                    "drvs": s.drv_paths(),
                    "outputs": s.outputs,
                    "log_lines": s.log_lines,
                })
            })
            .collect();
        let doc = serde_json::json!({ "sessions": sessions });
        crate::output::stdout_line(&doc.to_string(), false)?;
        return Ok(0);
    }
    if shown.is_empty() {
        let which = if args.all {
            ""
        } else {
            " of this machine (--all shows every one)"
        };
        crate::output::stderr_line(&format!("no sessions{which}"));
        return Ok(0);
    }
    for (i, s) in &shown {
        let names: Vec<String> = s
            .drv_paths()
            .iter()
            .map(|d| {
                crate::store_path::short_name(d)
                    .trim_end_matches(".drv")
                    .to_owned()
            })
            .collect();
        let used = if s.copied { " (used)" } else { "" };
        crate::output::stdout_line(
            &format!(
                "{}  {}{used}  on {}  since {}  {}  {} log lines",
                s.id,
                s.state.as_str(),
                builders[*i].host(),
                s.started,
                names.join(" "),
                s.log_lines
            ),
            true,
        )?;
    }
    Ok(0)
}

/// Finds the session `id` (or, without one, this machine's only open session) on the
/// reachable builders. An id no builder knows: exit 2.
async fn find(settings: &Settings, id: Option<&str>) -> Result<(Builder, Listed)> {
    let wanted = match id {
        Some(text) => Some(SessionId::parse(text).map_err(Error::input)?),
        None => None,
    };
    let builders = reachable(settings).await;
    let client = this_client(settings);
    let all = every_session(&builders).await;
    let mut matching: Vec<(usize, Listed)> = all
        .into_iter()
        .filter(|(_, s)| match &wanted {
            Some(id) => &s.id == id,
            None => s.client == client && open(s),
        })
        .collect();
    match (matching.len(), &wanted) {
        (1, _) => {
            let (i, s) = matching.remove(0);
            let b = builders
                .into_iter()
                .nth(i)
                .ok_or_else(|| Error::Failed("a builder went missing".into()))?;
            Ok((b, s))
        }
        (0, Some(id)) => Err(Error::input(format!(
            "no session {id} on any reachable builder: `nixdispatch sessions --all` lists them"
        ))),
        (0, None) => Err(Error::input(
            "no open session of this machine: `nixdispatch sessions --all` lists them; name one",
        )),
        (n, _) => Err(Error::input(format!(
            "{n} open sessions of this machine: name one (`nixdispatch sessions` lists them)"
        ))),
    }
}

/// `attach [ID]`: follows the session's log to its end, then copies its outputs here. Exit 1
/// when it failed or was lost; Ctrl-C stops following and leaves it running (`cancel` stops
/// it).
pub async fn attach(settings: &Settings, args: &AttachArgs) -> Result<i32> {
    let (builder, listed) = find(settings, args.id.as_deref()).await?;
    let Some(conn) = builder.connection().cloned() else {
        return Err(Error::Failed(format!(
            "{} is not reachable",
            builder.host()
        )));
    };
    let id = listed.id.clone();
    let mut monitor = Monitor::new(settings.display().renderer());
    monitor.set_known_stores([builder.machine.uri.to_string()]);
    monitor.set_header(
        "remote",
        &format!(
            "session {id} on {} ({})",
            builder.host(),
            listed.state.as_str()
        ),
    );
    let Some(watched) = crate::watchdog::Watched::of(&builder) else {
        return Err(Error::Failed(format!(
            "{} is not reachable",
            builder.host()
        )));
    };
    let end = run_session::follow(
        settings,
        &builder,
        &conn,
        &id,
        &watched,
        false,
        &mut monitor,
    )
    .await?;
    let host = builder.host();
    match end {
        Followed::End(State::Done, _) => {
            let env = crate::run::nix_env(settings);
            if let Err(e) =
                run_session::copy_home(settings, &builder, &id, &listed.outputs, &env, &mut monitor)
                    .await
            {
                monitor.finish_with(Instant::now(), false);
                return Err(e);
            }
            let _ = session::finish(&conn, &id, true).await;
            monitor.finish_with(Instant::now(), true);
            if !settings.json() && settings.verbosity() >= 0 {
                for o in &listed.outputs {
                    crate::output::stdout_line(o, false)?;
                }
            }
            Ok(0)
        }
        Followed::End(state, status) => {
            let _ = session::finish(&conn, &id, false).await;
            monitor.finish_with(Instant::now(), false);
            let how = match (state, status) {
                (State::Lost, _) => {
                    "was lost (the builder restarted, or it was killed unfinished)".to_owned()
                }
                (_, Some(code)) => format!("failed (nix's exit status {code})"),
                _ => "failed".to_owned(),
            };
            Err(Error::Failed(format!("session {id} on {host} {how}")))
        }
        Followed::Gone => {
            monitor.finish_with(Instant::now(), false);
            Err(Error::Failed(format!("session {id} is gone from {host}")))
        }
        Followed::LinkLost(why) => {
            monitor.finish_with(Instant::now(), false);
            Err(run_session::link_lost(host, &id, &why))
        }
    }
}

/// `cancel ID`: stops the session and removes it from its builder. An id no reachable builder
/// knows: exit 2.
pub async fn cancel(settings: &Settings, args: &CancelArgs) -> Result<i32> {
    let id = SessionId::parse(&args.id).map_err(Error::input)?;
    let builders = reachable(settings).await;
    for b in &builders {
        let Some(conn) = b.connection() else { continue };
        match session::cancel(conn, &id).await {
            Ok(true) => {
                crate::output::stderr_line(&format!(
                    "session {id} on {} cancelled: nothing of it runs there, its directory and gc roots are gone",
                    b.host()
                ));
                return Ok(0);
            }
            Ok(false) => {}
            Err(why) => crate::output::stderr_line(&format!(
                "nixdispatch: warning: {} could not be asked: {why}",
                b.host()
            )),
        }
    }
    Err(Error::input(format!(
        "no session {id} on any reachable builder: `nixdispatch sessions --all` lists them"
    )))
}
