//! Builder probes over SSH: every builder at once, each bounded by the connect timeout, each
//! filling in one [`Builder`] record.
//!
//! Each probe opens one OpenSSH control master (`ssh -M`) with exactly the options nix itself
//! would use for that builder: `NIX_SSHOPTS`, the machines line's key and host key, and nothing
//! that weakens host key checking. The [`openssh`] crate then runs commands over that master; the
//! same connection answers the store queries of the rest of the run ([`crate::sources`]).
//!
//! The parts: `master` (the ssh master and the [`Connection`] over it), `info` (the one
//! round trip of questions and its reader), `identity` (whose ssh nix uses; liveness without
//! credentials; root's ssh through sudo), `as_daemon` (a daemon client's view of a builder:
//! our ssh, root's, and its sshd at once), `through_daemon` (the daemon's own view), `loops`
//! (builders that would pass builds back here), `this_machine`, `outcome` ([`ProbeFailure`],
//! the one place a failure becomes words).

mod as_daemon;
mod identity;
mod info;
mod loops;
mod master;
mod outcome;
mod this_machine;
pub mod through_daemon;

use as_daemon::{as_daemon, Look};
pub use identity::{liveness, Identity, Liveness};
pub(crate) use info::{RemoteInfo, INFO_SCRIPT};
use loops::leave_out_loops;
use master::connect_and_ask;
pub use master::{nix_ssh_share_opts, query_timeout, remove_shared_socket_dir, Connection};
pub use outcome::{classify_ssh_error, ProbeFailure};
pub use this_machine::StoreIdentity;

use crate::builder::{Builder, BuilderId, Seen, Status};
use crate::machines::Machine;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who asks, as [`crate::settings::Settings`] read it once: this user, and the nix-daemon that
/// runs our builds.
#[derive(Debug, Clone, Default)]
pub struct Viewpoint {
    /// This process's user ([`crate::settings::Settings::user_label`]): whose ssh probes.
    pub user: String,
    /// A nix-daemon runs our builds (its ssh is root's).
    pub client: bool,
    /// Whether it trusts us (`nix store ping`'s `Trusted:`); `None` when it did not say.
    pub trusts_us: Option<bool>,
    /// The run asks the daemon what each builder holds once the paths are known (planning's
    /// `ask_through_daemon`): that answer also tells whether root's ssh gets in, so the probe
    /// leaves that check to it ([`Builder::root_check_pending`]): one root session, not two.
    pub check_later: bool,
}

impl Viewpoint {
    /// What Settings read of this user and the daemon.
    pub fn of(settings: &crate::settings::Settings) -> Viewpoint {
        let daemon = settings.daemon();
        Viewpoint {
            user: settings.user_label(),
            client: daemon.is_some(),
            trusts_us: daemon.and_then(|d| d.trusted),
            check_later: false,
        }
    }
}

/// Probes `machines` as this run's settings say: its connect timeout, `NIX_SSHOPTS` and whose
/// ssh nix will use. With `check_later`, a daemon client's check of root's ssh is left to the
/// question of what each builder holds ([`Viewpoint::check_later`]).
pub async fn probe_for(
    settings: &crate::settings::Settings,
    machines: &[Machine],
    check_later: bool,
) -> Vec<Builder> {
    let viewpoint = Viewpoint {
        check_later,
        ..Viewpoint::of(settings)
    };
    probe_all(
        machines,
        settings.connect_timeout(),
        settings.ssh_opts(),
        viewpoint,
    )
    .await
}

/// Probes every SSH builder at once; each finishes within `timeout` (plus process start-up).
pub async fn probe_all(
    machines: &[Machine],
    timeout: Duration,
    ssh_opts: &[String],
    daemon: Viewpoint,
) -> Vec<Builder> {
    let identity = Identity::current(daemon.client, &daemon.user);
    let ssh_builders = machines
        .iter()
        .any(|m| matches!(m.scheme(), "ssh" | "ssh-ng"));
    let sudo = identity == Identity::Daemon && ssh_builders && identity::sudo_works().await;
    // A daemon that trusts us opens the stores we name as substituters with root's ssh: it can
    // verify builders for us (see `through_daemon`).
    let daemon_verifies =
        identity == Identity::Daemon && ssh_builders && !sudo && daemon.trusts_us == Some(true);
    let check_later = daemon_verifies && daemon.check_later;
    let here = StoreIdentity::local();
    let here = here.as_ref();
    let probes = machines.iter().enumerate().map(|(i, m)| {
        let identity = identity.clone();
        let declared =
            Builder::declared(BuilderId(i), m.clone(), Identity::Own(daemon.user.clone()));
        async move {
            match identity {
                Identity::Own(_) => probe_one(declared, timeout, ssh_opts.to_vec(), here).await,
                Identity::Daemon => {
                    as_daemon(
                        declared,
                        timeout,
                        ssh_opts,
                        Look {
                            sudo,
                            daemon_verifies,
                            check_later,
                            here,
                        },
                    )
                    .await
                }
            }
        }
    });
    let mut probed = futures::future::join_all(probes).await;
    leave_out_loops(&mut probed);
    probed
}

/// Whether the builder that gave `info` is this machine ([`this_machine`]).
fn is_here(info: &RemoteInfo, here: Option<&StoreIdentity>) -> bool {
    here.is_some() && info.store.as_ref() == here
}

async fn probe_one(
    mut builder: Builder,
    timeout: Duration,
    ssh_opts: Vec<String>,
    here: Option<&StoreIdentity>,
) -> Builder {
    if let Err(failure) = ssh_address(&builder.machine) {
        builder.leave_out(failure);
        return builder;
    }
    let started = Instant::now();
    let attempt = tokio::time::timeout(
        timeout,
        connect_and_ask(&builder.machine, timeout, &ssh_opts),
    )
    .await;
    match attempt {
        Err(_) => builder.leave_out(ProbeFailure::TimedOut(Some(timeout))),
        Ok(Err(failure)) => builder.leave_out(failure),
        Ok(Ok((_, info, _))) if is_here(&info, here) => {
            // The connection closes here: nix is never to be given this builder.
            builder.set_status(Status::Unusable {
                failure: Some(ProbeFailure::ThisMachine),
                seen: Seen {
                    alive: Some(true),
                    verified: true,
                    note: None,
                },
            });
        }
        Ok(Ok((connection, info, rtt))) => {
            builder.rtt_ms = Some((rtt.as_secs_f64() * 1000.0 * 10.0).round() / 10.0);
            info.apply(&mut builder);
            builder.set_status(Status::Verified {
                connection: Some(Arc::new(connection)),
            });
        }
    }
    tracing::debug!(host = %builder.host(), elapsed = ?started.elapsed(), reachable = builder.reachable(), "probed");
    builder
}

pub(crate) fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}s")
    } else {
        format!("{s:.1}s")
    }
}

/// Where ssh connects for `machine`; only ssh stores are probed, so anything else is refused.
pub(crate) fn ssh_address(
    machine: &Machine,
) -> Result<&crate::store_uri::SshAddress, ProbeFailure> {
    machine
        .uri
        .ssh()
        .ok_or_else(|| ProbeFailure::NotProbed(machine.scheme().to_owned()))
}
