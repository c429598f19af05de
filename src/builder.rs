//! What is known of one configured builder, stage by stage, in one record: declared (its
//! machines entry), alive (its sshd answered), verified (its store and trust answered the
//! identity nix itself will use), what its nix says, and whose identity answered.
//!
//! How far it was checked is one [`Status`]: the probe sets it whole, and later findings (nix
//! cannot use it, it would pass builds back here, root's ssh failed the daemon's question)
//! take it out through [`Builder::leave_out`] or settle it through
//! [`Builder::root_check_answered`]; everything else reads it through the accessors. The plan
//! reads it, dispatch passes the live ones to nix.
//!
//! Everything refers to a builder by its [`BuilderId`], never by its URI string: two entries
//! may share a URI, and a URI is text to print, not a key.

use crate::machines::Machine;
use crate::probe::{Connection, Identity, ProbeFailure};
use serde::Serialize;
use std::sync::Arc;

/// A builder's place among the run's configured builders (configuration order, from 0).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct BuilderId(pub usize);

/// How far a builder was checked, and whether nix will be given it.
///
/// The contract's `reachable`, `error`, `alive`, `verified` and `note` are read from it
/// ([`Builder`]'s accessors).
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Declared only: not probed.
    NotChecked,
    /// nix will not be given it: why (`None` when nobody said), and what had been seen of it
    /// before.
    Unusable {
        /// Why not.
        failure: Option<ProbeFailure>,
        /// What the probe had seen of it.
        seen: Seen,
    },
    /// Reached by the identity nix itself will use, so alive and verified.
    Verified {
        /// The open connection that answers its store queries, when our own ssh reached it;
        /// the master closes when the last holder drops it.
        connection: Option<Arc<Connection>>,
    },
    /// A daemon client's builder whose check with root's ssh is left to the run's question of
    /// what it holds ([`crate::probe::Viewpoint::check_later`]): it counts as reachable and
    /// verified until that answer comes ([`Builder::root_check_answered`]).
    PendingRootCheck {
        /// Whether its sshd answered (`None`: could not be told).
        alive: Option<bool>,
        /// Our own ssh's connection, when it got in.
        connection: Option<Arc<Connection>>,
    },
    /// Reachable as far as the probe can tell, but not as nix will reach it (a nix-daemon's
    /// root ssh): nix, not nixdispatch, has the last word on using it.
    Unverified {
        /// Whether its sshd answered (`None`: could not be told).
        alive: Option<bool>,
        /// One human line on what could not be checked.
        note: Option<String>,
        /// Our own ssh's connection, when it got in.
        connection: Option<Arc<Connection>>,
    },
}

/// What had been seen of a builder before it was found unusable (the contract's `alive`,
/// `verified` and `note` of an unreachable builder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Whether its sshd answered; `None` when it could not be told.
    pub alive: Option<bool>,
    /// Whether the answers came from the identity nix itself will use.
    pub verified: bool,
    /// One human line on what could not be checked, when not verified.
    pub note: Option<String>,
}

/// One configured builder and what the run learned of it.
///
/// Serialises to an element of the contract's `probe --json` `builders`.
#[derive(Debug, Clone, PartialEq)]
pub struct Builder {
    /// Which builder this is.
    pub id: BuilderId,
    /// Declared: its machines entry, as nix will be given it.
    pub machine: Machine,
    /// How far it was checked and whether nix will be given it: one value, changed through
    /// the methods below, so no state is ever half-written.
    status: Status,
    /// Whose ssh nix uses for it, so whose answered when verified: the user's own, or root's
    /// for a nix-daemon.
    pub identity: Identity,
    /// One command's round trip over the established connection, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Its Nix version.
    pub nix_version: Option<String>,
    /// The systems it builds: its own `system` and `extra-platforms`, else the entry's.
    pub systems: Vec<String>,
    /// Its supported features: its `system-features`, else the entry's.
    pub features: Vec<String>,
    /// Whether its nix trusts us (`nix store ping`'s `Trusted:`, Nix 2.15+); `None` unknown.
    pub trusted: Option<bool>,
    /// Its nix has builders of its own and does not trust us: nix hands it whole derivations,
    /// which it may forward, back here too (NixOS/nix#10740).
    pub may_forward: bool,
    /// When it may forward: the hosts its own builders name, as it names them.
    pub forwards_to: Vec<String>,
}

impl Builder {
    /// A builder known only by its declaration: not probed, so not reachable, its systems and
    /// features as the entry declares them, to be answered for by `identity`.
    pub fn declared(id: BuilderId, machine: Machine, identity: Identity) -> Builder {
        Builder {
            id,
            status: Status::NotChecked,
            identity,
            rtt_ms: None,
            nix_version: None,
            systems: machine.systems.clone(),
            features: machine.supported_features.clone(),
            trusted: None,
            may_forward: false,
            forwards_to: Vec::new(),
            machine,
        }
    }

    /// For tests: the builder of one machines-file `line`, declared (not probed) and answered
    /// for by a test identity.
    #[cfg(test)]
    pub fn declared_for_test(id: BuilderId, line: &str) -> Builder {
        let mut none = |_: &std::path::Path| None;
        let machine = match crate::machines::parse_machines(line, "test", &mut none) {
            Ok(mut m) if m.len() == 1 => m.remove(0),
            other => panic!("{line}: {other:?}"),
        };
        Builder::declared(id, machine, Identity::Own("test".into()))
    }

    /// Its short name, the contract's `host`.
    pub fn host(&self) -> &str {
        self.machine.host_label()
    }

    /// Its status.
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Sets its status as the probe found it.
    pub fn set_status(&mut self, status: Status) {
        self.status = status;
    }

    /// Whether nix will be able to use it, as far as the probe can tell.
    pub fn reachable(&self) -> bool {
        matches!(
            self.status,
            Status::Verified { .. } | Status::PendingRootCheck { .. } | Status::Unverified { .. }
        )
    }

    /// Why not, when it is not reachable.
    pub fn failure(&self) -> Option<&ProbeFailure> {
        match &self.status {
            Status::Unusable { failure, .. } => failure.as_ref(),
            _ => None,
        }
    }

    /// What was seen of it: whether its sshd answered (`None` when it could not be told, e.g.
    /// the name resolves only through root's ssh config), whether the answers came from the
    /// identity nix itself will use, and the note on what could not be checked.
    pub fn seen(&self) -> Seen {
        match &self.status {
            Status::NotChecked => Seen::default(),
            Status::Unusable { seen, .. } => seen.clone(),
            Status::Verified { .. } => Seen {
                alive: Some(true),
                verified: true,
                note: None,
            },
            Status::PendingRootCheck { alive, .. } => Seen {
                alive: *alive,
                verified: true,
                note: None,
            },
            Status::Unverified { alive, note, .. } => Seen {
                alive: *alive,
                verified: false,
                note: note.clone(),
            },
        }
    }

    /// Alive: whether its sshd answered within the timeout, no credentials needed; `None` when
    /// it could not be told.
    pub fn alive(&self) -> Option<bool> {
        self.seen().alive
    }

    /// Verified: whether the answers came from the identity nix itself will use.
    pub fn verified(&self) -> bool {
        self.seen().verified
    }

    /// One human line on what could not be checked, when not verified.
    pub fn note(&self) -> Option<String> {
        self.seen().note
    }

    /// The open connection that answers its store queries, when reachable by our own ssh.
    pub fn connection(&self) -> Option<&Arc<Connection>> {
        match &self.status {
            Status::Verified { connection }
            | Status::PendingRootCheck { connection, .. }
            | Status::Unverified { connection, .. } => connection.as_ref(),
            Status::NotChecked | Status::Unusable { .. } => None,
        }
    }

    /// Whether its check with root's ssh waits for the run's question of what it holds.
    pub fn root_check_pending(&self) -> bool {
        matches!(self.status, Status::PendingRootCheck { .. })
    }

    /// Takes it out of the run for `failure`: nix is not to be given it, its connection is let
    /// go, and what had been seen of it stays.
    pub fn leave_out(&mut self, failure: ProbeFailure) {
        let seen = self.seen();
        self.status = Status::Unusable {
            failure: Some(failure),
            seen,
        };
    }

    /// Settles a pending check of root's ssh ([`Status::PendingRootCheck`]) with the daemon's
    /// answer: verified (and alive), or out of the run with root's ssh's reason. Any other
    /// status stays.
    pub fn root_check_answered(&mut self, answer: Result<(), String>) {
        let Status::PendingRootCheck { connection, .. } = &self.status else {
            return;
        };
        match answer {
            Ok(()) => {
                self.status = Status::Verified {
                    connection: connection.clone(),
                }
            }
            Err(reason) => self.leave_out(ProbeFailure::RootSsh(reason)),
        }
    }

    /// Why it is reachable but not verified as nix will reach it (a nix-daemon's root ssh):
    /// then nix, not nixdispatch, has the last word on using it. `None` when verified or not
    /// reachable.
    pub fn unverified(&self) -> Option<String> {
        match &self.status {
            Status::Unverified { note, .. } => Some(
                note.clone()
                    .unwrap_or_else(|| "not verified as nix will reach it".to_owned()),
            ),
            _ => None,
        }
    }

    /// Why it is not reachable, in words (`unreachable` when the probe gave no reason).
    pub fn failure_words(&self) -> String {
        self.failure()
            .map_or_else(|| "unreachable".to_owned(), ToString::to_string)
    }
}

/// The contract's `probe --json` element: the fields and their order as they have always been.
impl Serialize for Builder {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'a> {
            uri: &'a crate::store_uri::StoreUri,
            host: &'a str,
            reachable: bool,
            rtt_ms: Option<f64>,
            nix_version: &'a Option<String>,
            systems: &'a [String],
            features: &'a [String],
            trusted: Option<bool>,
            error: Option<&'a ProbeFailure>,
            alive: Option<bool>,
            verified: bool,
            identity: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: &'a Option<String>,
        }
        let seen = self.seen();
        Json {
            uri: &self.machine.uri,
            host: self.host(),
            reachable: self.reachable(),
            rtt_ms: self.rtt_ms,
            nix_version: &self.nix_version,
            systems: &self.systems,
            features: &self.features,
            trusted: self.trusted,
            error: self.failure(),
            alive: seen.alive,
            verified: seen.verified,
            identity: self.identity.label(),
            note: &seen.note,
        }
        .serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_the_contract_fields_in_order() {
        let machine = Machine::new("ssh-ng://root@seasmoke:2222").unwrap();
        let mut b = Builder::declared(BuilderId(0), machine, Identity::Own("alice".into()));
        b.leave_out(ProbeFailure::Refused);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(
            json,
            r#"{"uri":"ssh-ng://root@seasmoke:2222","host":"seasmoke","reachable":false,"rtt_ms":null,"nix_version":null,"systems":[],"features":[],"trusted":null,"error":"connection refused","alive":null,"verified":false,"identity":"alice"}"#
        );
    }

    #[test]
    fn unverified_only_when_reachable() {
        let machine = Machine::new("ssh-ng://seasmoke").unwrap();
        let mut b = Builder::declared(BuilderId(0), machine, Identity::Daemon);
        assert_eq!(b.unverified(), None);
        b.set_status(Status::Unverified {
            alive: None,
            note: None,
            connection: None,
        });
        assert_eq!(
            b.unverified().as_deref(),
            Some("not verified as nix will reach it")
        );
        b.set_status(Status::Verified { connection: None });
        assert_eq!(b.unverified(), None);
    }
}
