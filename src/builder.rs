//! What is known of one configured builder, stage by stage, in one record: declared (its
//! machines entry), alive (its sshd answered), verified (its store and trust answered the
//! identity nix itself will use), what its nix says, and whose identity answered.
//!
//! The probe fills it, the plan reads it, dispatch passes the live ones to nix. Everything
//! refers to a builder by its [`BuilderId`], never by its URI string: two entries may share a
//! URI, and a URI is text to print, not a key.

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

/// One configured builder and what the run learned of it.
///
/// Serialises to an element of the contract's `probe --json` `builders`.
#[derive(Debug, Clone, PartialEq)]
pub struct Builder {
    /// Which builder this is.
    pub id: BuilderId,
    /// Declared: its machines entry, as nix will be given it.
    pub machine: Machine,
    /// Whether nix will be able to use it, as far as the probe can tell.
    pub reachable: bool,
    /// Why not, when it is not reachable.
    pub failure: Option<ProbeFailure>,
    /// Alive: whether its sshd answered (banner) within the timeout, no credentials needed;
    /// `None` when it could not be told (e.g. the name resolves only through root's ssh config).
    pub alive: Option<bool>,
    /// Verified: whether the answers came from the identity nix itself will use.
    pub verified: bool,
    /// Whose ssh nix uses for it, so whose answered when verified: the user's own, or root's
    /// for a nix-daemon.
    pub identity: Identity,
    /// One human line on what could not be checked, when not verified.
    pub note: Option<String>,
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
    /// The open connection that answers its store queries, when reachable by our own ssh;
    /// the master closes when the last holder drops it.
    pub connection: Option<Arc<Connection>>,
    /// A daemon client's builder whose check with root's ssh is left to the run's question of
    /// what it holds ([`crate::probe::Viewpoint::check_later`]): reachable and verified stand
    /// until that answer comes.
    pub root_check_pending: bool,
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
            reachable: false,
            failure: None,
            alive: None,
            verified: false,
            identity,
            note: None,
            rtt_ms: None,
            nix_version: None,
            systems: machine.systems.clone(),
            features: machine.supported_features.clone(),
            trusted: None,
            connection: None,
            root_check_pending: false,
            may_forward: false,
            forwards_to: Vec::new(),
            machine,
        }
    }

    /// Its short name, the contract's `host`.
    pub fn host(&self) -> &str {
        self.machine.host_label()
    }

    /// Why it is reachable but not verified as nix will reach it (a nix-daemon's root ssh):
    /// then nix, not nixdispatch, has the last word on using it. `None` when verified or not
    /// reachable.
    pub fn unverified(&self) -> Option<String> {
        (self.reachable && !self.verified).then(|| {
            self.note
                .clone()
                .unwrap_or_else(|| "not verified as nix will reach it".to_owned())
        })
    }

    /// Why it is not reachable, in words (`unreachable` when the probe gave no reason).
    pub fn failure_words(&self) -> String {
        self.failure
            .as_ref()
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
            error: &'a Option<ProbeFailure>,
            alive: Option<bool>,
            verified: bool,
            identity: String,
            #[serde(skip_serializing_if = "Option::is_none")]
            note: &'a Option<String>,
        }
        Json {
            uri: &self.machine.uri,
            host: self.host(),
            reachable: self.reachable,
            rtt_ms: self.rtt_ms,
            nix_version: &self.nix_version,
            systems: &self.systems,
            features: &self.features,
            trusted: self.trusted,
            error: &self.failure,
            alive: self.alive,
            verified: self.verified,
            identity: self.identity.label(),
            note: &self.note,
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
        b.failure = Some(ProbeFailure::Refused);
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
        b.reachable = true;
        assert_eq!(
            b.unverified().as_deref(),
            Some("not verified as nix will reach it")
        );
        b.verified = true;
        assert_eq!(b.unverified(), None);
    }
}
