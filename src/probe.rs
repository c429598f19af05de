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
//! credentials; root's ssh through sudo), `through_daemon` (the daemon's own view), `outcome`
//! ([`ProbeFailure`], the one place a failure becomes words).

mod identity;
mod info;
mod master;
mod outcome;
mod this_machine;
pub mod through_daemon;

pub use identity::{liveness, Identity, Liveness};
pub(crate) use info::{RemoteInfo, INFO_SCRIPT};
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
        let daemon = settings.daemon.as_ref();
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
        settings.connect_timeout,
        &settings.ssh_opts,
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

/// Leaves out a builder that would pass our builds back here: it may forward
/// ([`Builder::may_forward`]) and one of its builders is named as this machine is named (our
/// host name, or the name of a builder of ours that is this machine).
fn leave_out_loops(builders: &mut [Builder]) {
    let short = |h: &str| h.split('.').next().unwrap_or(h).to_ascii_lowercase();
    let mut here: Vec<String> = builders
        .iter()
        .filter(|b| b.failure() == Some(&ProbeFailure::ThisMachine))
        .map(|b| short(b.machine.uri.ssh().map_or("", |a| a.host.as_str())))
        .collect();
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        here.push(short(name.trim()));
    }
    here.retain(|h| !h.is_empty() && h != "localhost");
    for b in builders
        .iter_mut()
        .filter(|b| b.reachable() && b.may_forward)
    {
        let back = b
            .forwards_to
            .iter()
            .find(|h| here.contains(&short(h)))
            .cloned();
        if let Some(host) = back {
            b.leave_out(ProbeFailure::ForwardsBack(host));
        }
    }
}

/// How a daemon client looks at a builder besides its own ssh.
struct Look<'a> {
    /// Root's ssh through `sudo -n`.
    sudo: bool,
    /// The daemon answers with root's ssh.
    daemon_verifies: bool,
    /// ... later, with the question of what the builder holds.
    check_later: bool,
    /// This machine's store, to leave out a builder that is this machine.
    here: Option<&'a StoreIdentity>,
}

/// A daemon client's view of a builder: the daemon connects as root, so our own probe tells
/// what the builder's store holds but not whether root's ssh works. Root's ssh is tried through
/// `sudo -n` when it needs no password; otherwise the builder is at best alive, not verified,
/// and left to nix. The three looks run at once: one connect timeout bounds them all.
async fn as_daemon(
    declared: Builder,
    timeout: Duration,
    ssh_opts: &[String],
    look: Look<'_>,
) -> Builder {
    let Look {
        sudo,
        daemon_verifies,
        check_later,
        here,
    } = look;
    let machine = &declared.machine.clone();
    let own = probe_one(declared, timeout, ssh_opts.to_vec(), here);
    if !matches!(machine.scheme(), "ssh" | "ssh-ng") {
        return own.await;
    }
    let root_probe = async {
        if sudo {
            Some(identity::probe_as_root(machine, timeout).await)
        } else if daemon_verifies && !check_later {
            // The daemon answers with root's ssh: whether it gets in, not the builder's details.
            let limit = crate::deadlines::Deadlines::new(timeout).through_daemon;
            Some(
                through_daemon::held(machine, &[], limit)
                    .await
                    .map(|_| RemoteInfo::default()),
            )
        } else {
            None
        }
    };
    let live = liveness(machine, timeout, ssh_opts);
    let (mut own, root, live) = futures::join!(own, root_probe, live);
    let root_is_here = matches!(&root, Some(Ok(info)) if is_here(info, here));
    own.identity = Identity::Daemon;
    if own.failure() == Some(&ProbeFailure::ThisMachine) || root_is_here {
        own.leave_out(ProbeFailure::ThisMachine);
        return own;
    }
    // Our own ssh got in: whatever the banner check saw, the sshd is alive.
    let live = if own.reachable() {
        Liveness::Alive
    } else {
        live
    };
    let own_error = own.failure().cloned();
    // Our own ssh's answer on trust is not the daemon's.
    own.trusted = None;
    let connection = own.connection().cloned();
    let alive = match &live {
        Liveness::Alive => Some(true),
        Liveness::Dead(_) => Some(false),
        Liveness::Unknown(_) => None,
    };
    let status = match root {
        Some(Ok(info)) => {
            // The daemon's answer says nothing of the builder's nix: keep what our ssh learned.
            if info.nix_version.is_some() {
                info.apply(&mut own);
            }
            Status::Verified { connection }
        }
        Some(Err(reason)) => Status::Unusable {
            failure: Some(ProbeFailure::RootSsh(reason)),
            seen: Seen {
                alive,
                verified: true,
                note: None,
            },
        },
        // Root's answer comes with the question of what the builder holds; until then the
        // builder counts as the daemon will see it, and a failure there takes it out.
        None if check_later => Status::PendingRootCheck { alive, connection },
        None => match live {
            Liveness::Dead(reason) => Status::Unusable {
                failure: Some(reason),
                seen: Seen {
                    alive,
                    verified: false,
                    note: None,
                },
            },
            Liveness::Alive | Liveness::Unknown(_) => {
                // ssh's verdict alone: the fix that follows it is for the user's ssh.
                let yours = match &own_error {
                    Some(e) => format!("your own ssh: {}", e.headline()),
                    None => "your own ssh reaches it".to_owned(),
                };
                let unknown = match &live {
                    Liveness::Unknown(why) => format!("liveness not checked: {why}; "),
                    _ => String::new(),
                };
                Status::Unverified {
                    alive,
                    note: Some(format!(
                        "{unknown}the nix-daemon connects as root with root's key and known_hosts, which nixdispatch cannot use ({yours}; `sudo -n` is not available)"
                    )),
                    connection,
                }
            }
        },
    };
    own.set_status(status);
    own
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::parse_machines;

    fn builder(line: &str, i: usize) -> Builder {
        let mut none = |_: &std::path::Path| None;
        let machine = parse_machines(line, "test", &mut none)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let mut b = Builder::declared(BuilderId(i), machine, Identity::Own("t".into()));
        b.set_status(Status::Verified { connection: None });
        b
    }

    #[test]
    fn a_builder_that_would_pass_builds_back_here_is_left_out() {
        let mut me = builder("ssh-ng://vermax.lan x86_64-linux", 0);
        me.leave_out(ProbeFailure::ThisMachine);
        let mut loops = builder("ssh-ng://seasmoke x86_64-linux", 1);
        loops.may_forward = true;
        loops.forwards_to = vec!["vermax".into()];
        let mut elsewhere = builder("ssh-ng://other x86_64-linux", 2);
        elsewhere.may_forward = true;
        elsewhere.forwards_to = vec!["third".into(), "localhost".into()];
        let mut all = vec![me, loops, elsewhere];
        leave_out_loops(&mut all);
        assert_eq!(
            all[1].failure(),
            Some(&ProbeFailure::ForwardsBack("vermax".into()))
        );
        assert!(!all[1].reachable());
        assert!(all[2].reachable(), "{:?}", all[2].failure());
    }
}
