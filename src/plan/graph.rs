//! The build graph (nix's, [`crate::nix::graph`]) and what the sources answered about its
//! paths: the planner's input types.

use crate::store_path::StorePath;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::nix::graph::{Derivation, Graph, OutputIndex};

/// A path a binary cache has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHit {
    /// The cache's URI, e.g. `https://cache.nixos.org`.
    pub uri: String,
    /// The path's references, from its narinfo.
    pub references: Vec<StorePath>,
    /// Its NAR size in bytes (`NarSize`), when the narinfo says: the size of the copy.
    #[serde(default)]
    pub nar_size: Option<u64>,
}

/// A path a builder's store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderHit {
    /// The builder whose store holds it.
    pub builder: crate::builder::BuilderId,
    /// The path's references in that store.
    pub references: Vec<StorePath>,
    /// Whether nix would accept it as a substitute from that store (signed by a trusted key, or
    /// `require-sigs` off). When it would not, nix's build hook can still copy it back without
    /// rebuilding, but only for a derivation output, and only once all that derivation's inputs
    /// are valid locally.
    pub substitutable: bool,
    /// Its NAR size in bytes in that store, when known: the size of the copy.
    #[serde(default)]
    pub nar_size: Option<u64>,
}

/// Where the missing paths can be found, as the sources answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// Paths valid in the local store.
    pub valid_locally: BTreeSet<StorePath>,
    /// Paths a binary cache has: the first cache in nix's order that has each.
    pub in_caches: BTreeMap<StorePath, CacheHit>,
    /// Paths builders' stores hold, every builder that holds each.
    pub on_builders: BTreeMap<StorePath, Vec<BuilderHit>>,
}
