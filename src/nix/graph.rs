//! The derivation graph of a run's installables, as nix shows it ([`super::derivation`] reads
//! it): what the planner walks.

use crate::store_path::StorePath;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// One derivation of the build graph, as `nix derivation show` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Derivation {
    /// The `.drv` path.
    pub path: StorePath,
    /// Its outputs by name (`out`, `dev`, …).
    pub outputs: BTreeMap<String, StorePath>,
    /// The derivations it depends on, with the names of the outputs it uses from each.
    pub input_drvs: BTreeMap<StorePath, Vec<String>>,
    /// The plain store paths it depends on (sources, not built).
    pub input_srcs: Vec<StorePath>,
    /// The system it builds for, e.g. `x86_64-linux`, or `builtin`.
    pub system: String,
    /// Its `requiredSystemFeatures`.
    pub required_features: Vec<String>,
    /// Its `preferLocalBuild`: nix builds it locally whenever it can, never on a builder.
    pub prefer_local: bool,
}

/// The derivations behind the installables, and the outputs the run must realise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Graph {
    /// Every derivation of the closure, by `.drv` path.
    pub derivations: BTreeMap<StorePath, Derivation>,
    /// The top-level store paths to realise (outputs of the installables).
    pub wanted: Vec<StorePath>,
}

/// A lookup from an output path to the derivation that produces it and the output's name, built
/// once per graph (see [`Graph::output_index`]).
#[derive(Debug)]
pub struct OutputIndex<'a> {
    by_output: HashMap<&'a StorePath, (&'a Derivation, &'a str)>,
}

impl Graph {
    /// Indexes every output of every derivation, so that looking up the producer of a path
    /// costs one hash lookup.
    pub fn output_index(&self) -> OutputIndex<'_> {
        let mut by_output = HashMap::new();
        for drv in self.derivations.values() {
            for (name, path) in &drv.outputs {
                by_output.insert(path, (drv, name.as_str()));
            }
        }
        OutputIndex { by_output }
    }
}

impl<'a> OutputIndex<'a> {
    /// The derivation producing `output`, and the output's name.
    pub fn producer(&self, output: &StorePath) -> Option<(&'a Derivation, &'a str)> {
        self.by_output.get(output).copied()
    }
}
