//! The silent-builder watchdog: notices a builder that went silent in the middle of a run.
//!
//! nix's own ssh to a builder has no keepalive: a link that stops passing packets while the
//! connection stays open leaves nix waiting forever (NixOS/nix#16437). While nix runs, this
//! asks every builder nix was given a bounded `true` over nixdispatch's own control master,
//! every few seconds (which also keeps the master from expiring). A builder is declared gone
//! when, for the whole silent timeout, nix printed nothing and that builder answered no
//! keepalive, while nix was (or may have been) working with it. A quiet build on a healthy link
//! never trips it: the keepalives answer.

use crate::probe::Connection;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The default of `--silent-timeout`: long enough that a slow keepalive on a loaded link is not
/// mistaken for a dead builder.
pub const DEFAULT_SILENT_TIMEOUT: f64 = 60.0;

/// What the child's log says, shared between the line callback and the watchdog.
#[derive(Debug)]
pub struct Progress {
    /// When the child last printed a line.
    last_line: Instant,
    /// Builders (store URIs as nix names them) with a build or a copy under way.
    busy: BTreeSet<String>,
    /// Whether a local build is under way (then a silent log says nothing about builders).
    local_busy: bool,
}

/// A handle on [`Progress`] for the line callback.
#[derive(Debug, Clone)]
pub struct ProgressHandle(Arc<Mutex<Progress>>);

impl Default for ProgressHandle {
    fn default() -> Self {
        ProgressHandle(Arc::new(Mutex::new(Progress {
            last_line: Instant::now(),
            busy: BTreeSet::new(),
            local_busy: false,
        })))
    }
}

impl ProgressHandle {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The child printed a line now.
    pub fn line(&self, now: Instant) {
        self.lock().last_line = now;
    }

    /// What is under way, from the monitor's state: the peers of remote builds and transfers,
    /// and whether a local build runs.
    pub fn activity(&self, busy: BTreeSet<String>, local_busy: bool) {
        let mut p = self.lock();
        p.busy = busy;
        p.local_busy = local_busy;
    }
}

/// One builder to watch.
#[derive(Clone)]
pub struct Watched {
    /// Which builder it is.
    pub id: crate::builder::BuilderId,
    /// Its host label, for the message.
    pub host: String,
    /// Its store URI.
    pub uri: String,
    /// nixdispatch's own connection to it.
    pub connection: Arc<Connection>,
}

impl Watched {
    /// A builder nixdispatch holds a connection to; `None` without one (nothing to ask).
    pub fn of(builder: &crate::builder::Builder) -> Option<Watched> {
        Some(Watched {
            id: builder.id,
            host: builder.host().to_owned(),
            uri: builder.machine.uri.to_string(),
            connection: builder.connection()?.clone(),
        })
    }
}

/// How often keepalives go out, and how long each may take, for a given silent timeout.
pub fn keepalive_every(silent: Duration) -> Duration {
    (silent / 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// Resolves (with one line saying which builder and why) once a watched builder has been silent
/// for `silent`; never resolves while every builder answers or nix keeps printing.
pub async fn watch(builders: Vec<Watched>, progress: ProgressHandle, silent: Duration) -> String {
    // A master that is already gone (it outlived ControlPersist while nothing used it, e.g.
    // during a sudo prompt) cannot tell a dead link from a live one: that builder is left to
    // nix, as before.
    let builders: Vec<Watched> = builders
        .into_iter()
        .filter(|b| {
            let open = b.connection.control_path().exists();
            if !open {
                tracing::debug!(host = %b.host, "no open connection to watch");
            }
            open
        })
        .collect();
    if builders.is_empty() {
        return std::future::pending().await;
    }
    let every = keepalive_every(silent);
    let started = Instant::now();
    let mut answered: BTreeMap<String, Instant> =
        builders.iter().map(|b| (b.uri.clone(), started)).collect();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let answers = futures::future::join_all(builders.iter().map(|b| async move {
            let ok = keepalive(&b.connection, every).await;
            (b.uri.clone(), ok)
        }))
        .await;
        let now = Instant::now();
        for (uri, ok) in answers {
            if ok {
                answered.insert(uri, now);
            }
        }
        let p = progress.lock();
        if now.duration_since(p.last_line) < silent {
            continue;
        }
        for b in &builders {
            let last = answered.get(&b.uri).copied().unwrap_or(started);
            // Nix works with this builder, or with nothing we can see (it may be connecting).
            let involved = p.busy.iter().any(|peer| names(peer, &b.uri, &b.host))
                || (p.busy.is_empty() && !p.local_busy);
            if involved && now.duration_since(last) >= silent {
                return format!(
                    "builder {} stopped answering: no log and no answer to nixdispatch's keepalive for {}s (--silent-timeout)",
                    b.host,
                    silent.as_secs_f64().round()
                );
            }
        }
    }
}

/// Whether `peer` (a store URI as nix prints it in its log) names the builder `uri`/`host`.
fn names(peer: &str, uri: &str, host: &str) -> bool {
    peer == uri || {
        let rest = peer.split_once("://").map_or(peer, |(_, r)| r);
        let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let name = rest.split(['?', '/']).next().unwrap_or(rest);
        name == host || name.split(':').next() == Some(host)
    }
}

/// One bounded `true` over the control master: did the builder answer within `bound`?
pub async fn keepalive(connection: &Connection, bound: Duration) -> bool {
    // A master that ssh's own keepalives already closed cannot answer (and ssh would fall back
    // to a host named "none" and say so on our terminal).
    if !connection.control_path().exists() {
        return false;
    }
    let mut command = connection.session().command("true");
    command
        .stdin(openssh::Stdio::null())
        .stdout(openssh::Stdio::null())
        .stderr(openssh::Stdio::null());
    matches!(tokio::time::timeout(bound, command.status()).await, Ok(Ok(s)) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_peers_name_builders() {
        let uri = "ssh-ng://seasmoke";
        assert!(names("ssh-ng://seasmoke", uri, "seasmoke"));
        assert!(names(
            "ssh-ng://root@seasmoke:2222?compress=true",
            uri,
            "seasmoke"
        ));
        assert!(names("ssh://seasmoke", uri, "seasmoke"));
        assert!(!names("ssh-ng://seasmoke2", uri, "seasmoke"));
        assert!(!names("https://cache.invalid", uri, "seasmoke"));
    }

    #[test]
    fn keepalives_come_often_enough_and_not_too_often() {
        assert_eq!(
            keepalive_every(Duration::from_secs(60)),
            Duration::from_secs(10)
        );
        assert_eq!(
            keepalive_every(Duration::from_secs(8)),
            Duration::from_secs(2)
        );
        assert_eq!(
            keepalive_every(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }
}
