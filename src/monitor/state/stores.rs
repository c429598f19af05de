//! Naming the other store of a transfer or build: the builder or store URI as nix wrote it,
//! guessed where nix leaves the host out (`ssh-ng://` in 2.26), and bounded in number.

use super::{bounded, State};
use crate::monitor::{MAX_KEPT_TEXT, MAX_PEERS, OTHER_PEERS};
use std::collections::BTreeSet;

/// Where a build runs, as the summary keys it: the builder's store URI, or `"local"`.
pub(super) fn host_key(machine: &str) -> String {
    if machine.is_empty() {
        "local".to_string()
    } else {
        machine.to_string()
    }
}

impl State {
    /// `name` (a builder or store), or [`OTHER_PEERS`] once [`MAX_PEERS`] others were seen.
    pub(super) fn peer(&mut self, name: &str) -> String {
        let name = bounded(name, MAX_KEPT_TEXT);
        if self.peers.contains(&name) {
            return name;
        }
        if self.peers.len() >= MAX_PEERS {
            return OTHER_PEERS.to_string();
        }
        self.peers.insert(name.clone());
        name
    }

    /// `uri`, or when it names no host (nix 2.26 says `ssh-ng://` for the build hook's copies)
    /// the machine of the remote builds running now, if they all run on one.
    pub(super) fn named_store(&self, uri: &str) -> String {
        let bare = uri.split('?').next().unwrap_or(uri);
        if let Some((_, name)) = self.aliases.iter().find(|(alias, _)| alias == bare) {
            return name.clone();
        }
        if !uri.ends_with("://") {
            return uri.to_string();
        }
        let machines: BTreeSet<&str> = self
            .builds
            .values()
            .map(|b| b.host.as_str())
            .filter(|h| *h != "local")
            .collect();
        if let [machine] = machines.into_iter().collect::<Vec<_>>().as_slice() {
            return machine.to_string();
        }
        let known: Vec<&String> = self
            .known_stores
            .iter()
            .filter(|k| k.starts_with(uri))
            .collect();
        match known.as_slice() {
            [store] => store.to_string(),
            _ => uri.to_string(),
        }
    }

    /// Tells the state which stores the run uses (builders, substituters), so it can name the
    /// store where nix does not: nix 2.26 reports `ssh-ng://` for an `ssh-ng://seasmoke`
    /// substituter. A hostless URI is replaced when exactly one known store has its scheme.
    pub fn set_known_stores(&mut self, uris: impl IntoIterator<Item = String>) {
        self.known_stores = uris.into_iter().collect();
    }

    /// The log that follows shows `host`'s builds as its own nix ran them (a session on the
    /// builder): each one is real work there, never a copy-back of an output it already had.
    pub fn builds_run_there(&mut self, host: &str) {
        let host = self.peer(&host_key(host));
        self.builds_run_there.insert(host);
    }

    /// Copies nix reports from or to `alias` (a store URI, its query aside) went over the link
    /// of the store named `name`, and are credited to it: a session's outputs come home over
    /// `ssh://HOST` from a builder declared as `ssh-ng://HOST`.
    pub fn same_link(&mut self, alias: &str, name: &str) {
        let alias = alias.split('?').next().unwrap_or(alias).to_string();
        self.aliases.retain(|(a, _)| *a != alias);
        self.aliases.push((alias, name.to_string()));
    }

    /// The stores given to [`State::set_known_stores`].
    pub fn known_stores(&self) -> &[String] {
        &self.known_stores
    }
}
