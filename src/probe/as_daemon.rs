//! A daemon client's view of a builder: the nix-daemon connects as root, so our own probe,
//! root's ssh (through `sudo -n`, or the daemon itself) and the sshd's banner are looked at
//! at once.

use super::identity::{self, liveness, Liveness};
use super::{
    is_here, probe_one, through_daemon, Identity, ProbeFailure, RemoteInfo, StoreIdentity,
};
use crate::builder::{Builder, Seen, Status};
use std::time::Duration;

/// How a daemon client looks at a builder besides its own ssh.
pub(super) struct Look<'a> {
    /// Root's ssh through `sudo -n`.
    pub(super) sudo: bool,
    /// The daemon answers with root's ssh.
    pub(super) daemon_verifies: bool,
    /// ... later, with the question of what the builder holds.
    pub(super) check_later: bool,
    /// This machine's store, to leave out a builder that is this machine.
    pub(super) here: Option<&'a StoreIdentity>,
}

/// A daemon client's view of a builder: the daemon connects as root, so our own probe tells
/// what the builder's store holds but not whether root's ssh works. Root's ssh is tried through
/// `sudo -n` when it needs no password; otherwise the builder is at best alive, not verified,
/// and left to nix. The three looks run at once: one connect timeout bounds them all.
pub(super) async fn as_daemon(
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
