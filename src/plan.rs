//! The pure decision: from what is wanted, what is where, and which builders answer, decide
//! where every missing store path comes from and which mode the run is in.
//!
//! No I/O happens here, so every rule of CONTRACT.md's modes is a unit test. The walk follows
//! nix's own `queryMissing`: starting at the wanted outputs, a path valid locally ends the walk
//! (the local store is closed under references); a path a binary cache has is substituted and
//! its references walked; a path a reachable builder's store offers as a substitute likewise;
//! any other derivation output is produced by its derivation: copied back from a builder that
//! already holds it (nix's build hook does that without rebuilding) or built, and then every
//! input of that derivation must be valid locally first, so the walk continues into them.

use crate::machines::Machine;
use crate::store_path::StorePath;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

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

/// A path a binary cache has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheHit {
    /// The cache's URI, e.g. `https://cache.nixos.org`.
    pub uri: String,
    /// The path's references, from its narinfo.
    pub references: Vec<StorePath>,
}

/// A path a builder's store holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuilderHit {
    /// The builder's URI (as in [`BuilderState::uri`]).
    pub uri: String,
    /// The path's references in that store.
    pub references: Vec<StorePath>,
    /// Whether nix would accept it as a substitute from that store (signed by a trusted key, or
    /// `require-sigs` off). When it would not, nix's build hook can still copy it back without
    /// rebuilding, but only for a derivation output, and only once all that derivation's inputs
    /// are valid locally.
    pub substitutable: bool,
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

/// What the probe found out about one configured builder.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuilderState {
    /// The builder's store URI.
    pub uri: String,
    /// Its short name (the contract's `host`).
    pub host: String,
    /// Its machines entry, as nix will be given it.
    pub machine: Machine,
    /// Whether the probe reached it.
    pub reachable: bool,
    /// Why not, when it is unreachable: one line.
    pub error: Option<String>,
    /// The systems it builds for, as probed; empty when unknown.
    pub systems: Vec<String>,
    /// Why the probe could not verify it as nix will reach it (a nix-daemon's root ssh), when
    /// it could not: then nix, not nixdispatch, has the last word on using it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<String>,
}

/// The mode `--mode` forces, or `Auto` to choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forced {
    /// Choose from what the sources and builders answered.
    Auto,
    /// Build nothing anywhere; impossible when something must be built.
    Substitute,
    /// Build on builders; impossible when a derivation has no reachable builder that takes it.
    Remote,
    /// Ignore the builders entirely.
    Local,
}

/// Everything the decision depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanInput {
    /// The derivations and the wanted outputs.
    pub graph: Graph,
    /// Where paths are.
    pub availability: Availability,
    /// Every configured builder, in configuration order (the last tie-break between builders).
    pub builders: Vec<BuilderState>,
    /// The mode asked for.
    pub forced: Forced,
    /// This machine's system, e.g. `x86_64-linux`: what nix builds locally, and nix's default
    /// for a machines entry that names no systems.
    pub local_system: String,
}

/// The mode of a run (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Everything is already valid locally.
    Noop,
    /// Nothing needs building: every missing path is copied from a cache or a builder's store.
    Substitute,
    /// Something must be built, and at least one reachable builder takes it.
    Remote,
    /// Something must be built here (no usable builder, or `--mode local`).
    Local,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Noop => "noop",
            Mode::Substitute => "substitute",
            Mode::Remote => "remote",
            Mode::Local => "local",
        })
    }
}

/// Where one missing path comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Substituted from a binary cache.
    Cache,
    /// Copied from a builder's store, as a substitute or back through the build hook.
    Builder,
    /// Built, on a builder (`from` names it) or here (`from` is null).
    Build,
}

/// One missing path and where it comes from (an element of the contract's `paths`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPath {
    /// The path.
    pub path: StorePath,
    /// Its source.
    pub source: Source,
    /// The cache or builder URI; null for a local build.
    pub from: Option<String>,
}

/// One derivation to build and where (not part of the contract's JSON; dispatch and the
/// progress display read it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedBuild {
    /// The `.drv` path.
    pub drv: StorePath,
    /// The builder URI it should go to, or `None` to build it here.
    pub from: Option<String>,
}

/// The contract's `counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Paths reached by the walk that are already valid locally.
    pub valid_locally: usize,
    /// Paths substituted from binary caches.
    pub from_caches: usize,
    /// Paths copied from builders' stores.
    pub from_builders: usize,
    /// Derivations to build.
    pub to_build: usize,
}

/// The decision: a mode, its one-sentence reason, and the source of every missing path.
///
/// Serialises to the contract's `plan --json` fields (`mode`, `reason`, `counts`, `paths`); the
/// command adds `builders` from the probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// The mode.
    pub mode: Mode,
    /// Why, as one human sentence naming builders by host.
    pub reason: String,
    /// How many paths from where.
    pub counts: Counts,
    /// Every missing path, sorted by path.
    pub paths: Vec<PlannedPath>,
    /// Every derivation to build, sorted by path, with where.
    #[serde(skip)]
    pub builds: Vec<PlannedBuild>,
    /// URIs of the builders whose stores the plan substitutes from (to pass as substituters),
    /// in configuration order.
    #[serde(skip)]
    pub builder_substituters: Vec<String>,
    /// The nix daemon ignores the builders and substituters we would pass (we are not a
    /// trusted user): pass none, except an empty `builders` to build locally.
    #[serde(skip)]
    pub daemon_decides: bool,
}

impl Plan {
    /// Whether every derivation to build has a builder, so nix can be told to build nothing
    /// locally (`--max-jobs 0`) and still finish.
    pub fn all_builds_remote(&self) -> bool {
        self.builds.iter().all(|b| b.from.is_some())
    }
}

/// A forced mode that cannot be honoured, with the one-line why (exit 3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Impossible(pub String);

impl From<Impossible> for crate::Error {
    fn from(err: Impossible) -> Self {
        crate::Error::Impossible(err.0)
    }
}

/// Decides the plan. Pure and deterministic: the same input gives the same plan, paths sorted.
/// Fails only when a forced mode cannot be honoured.
pub fn plan(input: &PlanInput) -> Result<Plan, Impossible> {
    let builders = BuilderViews::new(input);
    let use_builders = input.forced != Forced::Local;
    let walk = Walk::run(input, &builders, use_builders);

    if walk.entries.is_empty() {
        return Ok(walk.finish(
            Mode::Noop,
            "everything is already in the local store".into(),
            &HashMap::new(),
            &builders,
        ));
    }

    let to_build: Vec<&Derivation> = walk.to_build.values().copied().collect();
    let locally_anyway = |d: &Derivation| builds_locally_anyway(d, &input.local_system);

    match input.forced {
        Forced::Local => {
            let reason = if to_build.is_empty() {
                format!(
                    "--mode local: nothing needs building; {}",
                    walk.sources_sentence(&builders)
                )
            } else {
                format!(
                    "--mode local: {} will be built here",
                    derivations(to_build.len())
                )
            };
            Ok(walk.finish(Mode::Local, reason, &HashMap::new(), &builders))
        }
        Forced::Substitute => {
            if to_build.is_empty() {
                let reason = walk.substitute_reason(&builders);
                return Ok(walk.finish(Mode::Substitute, reason, &HashMap::new(), &builders));
            }
            Err(Impossible(format!(
                "--mode substitute, but {} must be built ({}): no cache or builder has {}",
                derivations(to_build.len()),
                some_names(&to_build),
                if to_build.len() == 1 { "it" } else { "them" },
            )))
        }
        Forced::Remote => {
            if builders.views.is_empty() {
                return Err(Impossible(
                    "--mode remote, but no builders are configured: add one with --builder or nix's builders setting".into(),
                ));
            }

            let mut chosen = HashMap::new();
            for drv in to_build.iter().filter(|d| !locally_anyway(d)) {
                match builders.choose(drv) {
                    Some(b) => {
                        chosen.insert(&drv.path, b);
                    }
                    None => {
                        return Err(Impossible(format!(
                            "--mode remote, but no reachable builder can build {}: {}",
                            system_and_features(drv),
                            builders.why_none_takes(drv)
                        )))
                    }
                }
            }
            if !builders.any_reachable() {
                return Err(Impossible(format!(
                    "--mode remote, but no builder is reachable ({})",
                    builders.why_unreachable()
                )));
            }
            let reason = if to_build.is_empty() {
                format!(
                    "--mode remote: nothing needs building; {}",
                    walk.sources_sentence(&builders)
                )
            } else {
                format!(
                    "--mode remote: {}",
                    remote_reason(&to_build, &chosen, &builders)
                )
            };
            Ok(walk.finish(Mode::Remote, reason, &chosen, &builders))
        }
        Forced::Auto => {
            if to_build.is_empty() {
                let reason = walk.substitute_reason(&builders);
                return Ok(walk.finish(Mode::Substitute, reason, &HashMap::new(), &builders));
            }
            let mut chosen = HashMap::new();
            for drv in to_build.iter().filter(|d| !locally_anyway(d)) {
                if let Some(b) = builders.choose(drv) {
                    chosen.insert(&drv.path, b);
                }
            }
            if chosen.is_empty() {
                let reason = local_reason(&to_build, &builders, &input.local_system);
                return Ok(walk.finish(Mode::Local, reason, &chosen, &builders));
            }
            let reason = remote_reason(&to_build, &chosen, &builders);
            Ok(walk.finish(Mode::Remote, reason, &chosen, &builders))
        }
    }
}

/// Whether nix builds this derivation locally whatever the builders: `preferLocalBuild` on a
/// derivation this machine can build (nix then never asks the build hook).
fn builds_locally_anyway(drv: &Derivation, local_system: &str) -> bool {
    drv.prefer_local && (drv.system == local_system || drv.system == "builtin")
}

/// One configured builder as the planner sees it.
struct BuilderView<'a> {
    order: usize,
    state: &'a BuilderState,
    /// The systems nix's build hook will send it (its machines entry, else this machine's).
    declared: Vec<String>,
}

impl BuilderView<'_> {
    /// Whether nix's hook would send `drv` here and the builder can build it: the entry accepts
    /// it (nix's rule) and, when the probe learned its systems, the builder really builds that
    /// system.
    fn takes(&self, drv: &Derivation) -> bool {
        self.state.reachable
            && self.state.machine.can_build_with_systems(
                &self.declared,
                &drv.system,
                &drv.required_features,
            )
            && (self.state.systems.is_empty()
                || drv.system == "builtin"
                || self.state.systems.contains(&drv.system))
    }

    /// Why it does not take `drv`, as a short clause naming it.
    fn why_not(&self, drv: &Derivation) -> String {
        let host = &self.state.host;
        if !self.state.reachable {
            return format!(
                "{host}: {}",
                self.state.error.as_deref().unwrap_or("unreachable")
            );
        }
        let machine = &self.state.machine;
        let system_ok =
            |systems: &[String]| drv.system == "builtin" || systems.contains(&drv.system);
        if !system_ok(&self.declared) {
            return format!("{host} is declared for {} only", self.declared.join(","));
        }
        if !self.state.systems.is_empty() && !system_ok(&self.state.systems) {
            return format!("{host} builds {} only", self.state.systems.join(","));
        }
        if let Some(f) = drv.required_features.iter().find(|f| {
            !machine.supported_features.contains(f) && !machine.mandatory_features.contains(f)
        }) {
            return format!("{host} lacks feature {f}");
        }
        if let Some(f) = machine
            .mandatory_features
            .iter()
            .find(|f| !drv.required_features.contains(f))
        {
            return format!("{host} takes only derivations requiring {f}");
        }
        format!("{host} does not take it")
    }
}

struct BuilderViews<'a> {
    views: Vec<BuilderView<'a>>,
    by_uri: HashMap<&'a str, usize>,
}

impl<'a> BuilderViews<'a> {
    fn new(input: &'a PlanInput) -> Self {
        let views: Vec<BuilderView<'a>> = input
            .builders
            .iter()
            .enumerate()
            .map(|(order, state)| BuilderView {
                order,
                state,
                declared: if state.machine.systems.is_empty() {
                    vec![input.local_system.clone()]
                } else {
                    state.machine.systems.clone()
                },
            })
            .collect();
        let mut by_uri = HashMap::new();
        for (i, v) in views.iter().enumerate() {
            by_uri.entry(v.state.uri.as_str()).or_insert(i);
        }
        BuilderViews { views, by_uri }
    }

    fn get(&self, uri: &str) -> Option<&BuilderView<'a>> {
        self.by_uri.get(uri).map(|i| &self.views[*i])
    }

    fn is_reachable(&self, uri: &str) -> bool {
        self.get(uri).is_some_and(|v| v.state.reachable)
    }

    fn host_of<'s>(&'s self, uri: &'s str) -> &'s str {
        self.get(uri).map_or(uri, |v| v.state.host.as_str())
    }

    fn any_reachable(&self) -> bool {
        self.views.iter().any(|v| v.state.reachable)
    }

    /// The best builder among those that take `drv`, as nix would favour it: highest speed
    /// factor, then most jobs, then configuration order.
    fn best<'s>(
        &'s self,
        candidates: impl Iterator<Item = &'s BuilderView<'a>>,
    ) -> Option<&'s BuilderView<'a>> {
        candidates.min_by(|a, b| {
            let (ma, mb) = (&a.state.machine, &b.state.machine);
            mb.speed_factor
                .total_cmp(&ma.speed_factor)
                .then(mb.max_jobs.cmp(&ma.max_jobs))
                .then(a.order.cmp(&b.order))
        })
    }

    fn choose(&self, drv: &Derivation) -> Option<&'a BuilderState> {
        self.best(self.views.iter().filter(|v| v.takes(drv)))
            .map(|v| v.state)
    }

    fn why_unreachable(&self) -> String {
        self.views
            .iter()
            .filter(|v| !v.state.reachable)
            .map(|v| {
                format!(
                    "{}: {}",
                    v.state.host,
                    v.state.error.as_deref().unwrap_or("unreachable")
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn why_none_takes(&self, drv: &Derivation) -> String {
        if self.views.is_empty() {
            return "no builders are configured".into();
        }
        self.views
            .iter()
            .map(|v| v.why_not(drv))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// How one missing path is realised, before builders are assigned to builds.
#[derive(Clone, Copy)]
enum Decision<'a> {
    Cache(&'a str),
    BuilderSubstitute(&'a str),
    CopyBack(&'a str),
    Build(&'a Derivation),
    Orphan,
}

struct Walk<'a> {
    valid_locally: usize,
    entries: Vec<(&'a StorePath, Decision<'a>)>,
    to_build: BTreeMap<&'a StorePath, &'a Derivation>,
}

impl<'a> Walk<'a> {
    fn run(input: &'a PlanInput, builders: &BuilderViews<'a>, use_builders: bool) -> Walk<'a> {
        let graph = &input.graph;
        let avail = &input.availability;
        let index = graph.output_index();
        let mut walk = Walk {
            valid_locally: 0,
            entries: Vec::new(),
            to_build: BTreeMap::new(),
        };
        let mut visited: HashSet<&'a StorePath> = HashSet::new();
        let mut decided: HashMap<&'a StorePath, Decision<'a>> = HashMap::new();
        let mut stack: Vec<&'a StorePath> = graph.wanted.iter().rev().collect();

        while let Some(path) = stack.pop() {
            if !visited.insert(path) {
                continue;
            }
            if avail.valid_locally.contains(path) {
                walk.valid_locally += 1;
                continue;
            }
            if let Some(hit) = avail.in_caches.get(path) {
                walk.entries.push((path, Decision::Cache(&hit.uri)));
                stack.extend(hit.references.iter().rev());
                continue;
            }
            let held: &'a [BuilderHit] = match avail.on_builders.get(path) {
                Some(hits) if use_builders => hits,
                _ => &[],
            };
            if let Some(hit) = held
                .iter()
                .find(|h| h.substitutable && builders.is_reachable(&h.uri))
            {
                walk.entries
                    .push((path, Decision::BuilderSubstitute(&hit.uri)));
                stack.extend(hit.references.iter().rev());
                continue;
            }
            let Some((drv, _)) = index.producer(path) else {
                walk.entries.push((path, Decision::Orphan));
                continue;
            };
            if let Some(decision) = decided.get(&drv.path) {
                walk.entries.push((path, *decision));
                continue;
            }
            // The derivation produces all its missing outputs at once, however it is realised.
            let missing: Vec<&'a StorePath> = drv
                .outputs
                .values()
                .filter(|o| {
                    *o == path || (!visited.contains(o) && !avail.valid_locally.contains(*o))
                })
                .collect();
            let hook_may_copy = use_builders && !builds_locally_anyway(drv, &input.local_system);
            let decision = hook_may_copy
                .then(|| copy_back_builder(drv, &missing, avail, builders))
                .flatten()
                .map_or(Decision::Build(drv), Decision::CopyBack);
            decided.insert(&drv.path, decision);
            if let Decision::Build(d) = decision {
                walk.to_build.insert(&d.path, d);
            }
            for output in missing {
                visited.insert(output);
                walk.entries.push((output, decision));
            }
            // Built or copied back by the hook, the derivation's inputs must be valid here first.
            for (input_drv, names) in drv.input_drvs.iter().rev() {
                if let Some(dep) = graph.derivations.get(input_drv) {
                    stack.extend(names.iter().rev().filter_map(|n| dep.outputs.get(n)));
                }
            }
            stack.extend(drv.input_srcs.iter().rev());
        }
        walk
    }

    /// A sentence listing where the substituted paths come from, largest source first.
    fn sources_sentence(&self, builders: &BuilderViews<'_>) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, decision) in &self.entries {
            let from = match decision {
                Decision::Cache(uri) => *uri,
                Decision::BuilderSubstitute(uri) | Decision::CopyBack(uri) => builders.host_of(uri),
                Decision::Build(_) | Decision::Orphan => continue,
            };
            *counts.entry(from).or_default() += 1;
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = counts
            .iter()
            .enumerate()
            .map(|(i, (from, n))| match (i, n) {
                (0, 1) => format!("1 path comes from {from}"),
                (0, n) => format!("{n} paths come from {from}"),
                (_, n) => format!("{n} from {from}"),
            })
            .collect();
        let orphans = self
            .entries
            .iter()
            .filter(|(_, d)| matches!(d, Decision::Orphan))
            .count();
        let orphan_note = match orphans {
            0 => String::new(),
            1 => "1 path nobody has (nix will say why)".into(),
            n => format!("{n} paths nobody has (nix will say why)"),
        };
        match (parts.is_empty(), orphan_note.is_empty()) {
            (_, true) => join_and(&parts),
            (true, false) => orphan_note,
            (false, false) => format!("{}, and {orphan_note}", join_and(&parts)),
        }
    }

    fn substitute_reason(&self, builders: &BuilderViews<'_>) -> String {
        format!(
            "nothing needs building: {}",
            self.sources_sentence(builders)
        )
    }

    fn finish(
        self,
        mode: Mode,
        reason: String,
        chosen: &HashMap<&StorePath, &BuilderState>,
        builders: &BuilderViews<'_>,
    ) -> Plan {
        let mut counts = Counts {
            valid_locally: self.valid_locally,
            to_build: self.to_build.len(),
            ..Counts::default()
        };
        let mut substituters: BTreeSet<usize> = BTreeSet::new();
        let mut paths: Vec<PlannedPath> = self
            .entries
            .iter()
            .map(|(path, decision)| {
                let (source, from) = match decision {
                    Decision::Cache(uri) => {
                        counts.from_caches += 1;
                        (Source::Cache, Some(uri.to_string()))
                    }
                    Decision::BuilderSubstitute(uri) => {
                        counts.from_builders += 1;
                        if let Some(v) = builders.get(uri) {
                            substituters.insert(v.order);
                        }
                        (Source::Builder, Some(uri.to_string()))
                    }
                    Decision::CopyBack(uri) => {
                        counts.from_builders += 1;
                        (Source::Builder, Some(uri.to_string()))
                    }
                    Decision::Build(drv) => {
                        (Source::Build, chosen.get(&drv.path).map(|b| b.uri.clone()))
                    }
                    Decision::Orphan => (Source::Build, None),
                };
                PlannedPath {
                    path: (*path).clone(),
                    source,
                    from,
                }
            })
            .collect();
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        let builds = self
            .to_build
            .keys()
            .map(|drv| PlannedBuild {
                drv: (*drv).clone(),
                from: chosen.get(drv).map(|b| b.uri.clone()),
            })
            .collect();
        let builder_substituters = substituters
            .into_iter()
            .map(|i| builders.views[i].state.uri.clone())
            .collect();
        Plan {
            mode,
            reason,
            counts,
            paths,
            builds,
            builder_substituters,
            daemon_decides: false,
        }
    }
}

/// The reachable builder, taking `drv`, that holds every missing output: nix's build hook sends
/// the derivation there and copies the outputs back without building.
fn copy_back_builder<'a>(
    drv: &Derivation,
    missing: &[&StorePath],
    avail: &'a Availability,
    builders: &BuilderViews<'a>,
) -> Option<&'a str> {
    let holders = builders.views.iter().filter(|v| {
        v.takes(drv)
            && missing.iter().all(|o| {
                avail
                    .on_builders
                    .get(*o)
                    .is_some_and(|hits| hits.iter().any(|h| h.uri == v.state.uri))
            })
    });
    builders.best(holders).map(|v| v.state.uri.as_str())
}

fn remote_reason(
    to_build: &[&Derivation],
    chosen: &HashMap<&StorePath, &BuilderState>,
    builders: &BuilderViews<'_>,
) -> String {
    let used: BTreeSet<usize> = chosen
        .values()
        .filter_map(|b| builders.get(&b.uri).map(|v| v.order))
        .collect();
    let hosts: Vec<String> = used
        .iter()
        .map(|i| builders.views[*i].state.host.clone())
        .collect();
    let verb = if hosts.len() == 1 { "is" } else { "are" };
    let mut reason = format!(
        "{} must be built and {} {verb} reachable",
        derivations(to_build.len()),
        join_and(&hosts)
    );
    let here = to_build.len() - chosen.len();
    if here > 0 {
        reason.push_str(&format!(" ({here} of them will build here)"));
    }
    reason
}

fn local_reason(
    to_build: &[&Derivation],
    builders: &BuilderViews<'_>,
    local_system: &str,
) -> String {
    let what = derivations(to_build.len());
    let them = if to_build.len() == 1 { "it" } else { "them" };
    let remote: Vec<&&Derivation> = to_build
        .iter()
        .filter(|d| !builds_locally_anyway(d, local_system))
        .collect();
    let Some(first) = remote.first() else {
        return format!(
            "{what} must be built and {} local builds (preferLocalBuild)",
            if to_build.len() == 1 {
                "it prefers"
            } else {
                "all prefer"
            }
        );
    };
    if builders.views.is_empty() {
        return format!("{what} must be built and no builders are configured");
    }
    if builders.any_reachable() {
        let why = builders.why_none_takes(first);
        format!("{what} must be built and no builder can take {them} ({why})")
    } else {
        let why = builders.why_unreachable();
        let none = if builders.views.len() == 1 {
            "the builder is"
        } else {
            "no builder is"
        };
        format!("{what} must be built and {none} unreachable ({why})")
    }
}

fn derivations(n: usize) -> String {
    match n {
        1 => "1 derivation".into(),
        n => format!("{n} derivations"),
    }
}

/// `system` or `system with features a,b`.
fn system_and_features(drv: &Derivation) -> String {
    if drv.required_features.is_empty() {
        drv.system.clone()
    } else {
        format!("{} with {}", drv.system, drv.required_features.join(","))
    }
}

/// The first two names, and how many more.
fn some_names(drvs: &[&Derivation]) -> String {
    let names: Vec<&str> = drvs.iter().take(2).map(|d| d.path.display_name()).collect();
    match drvs.len() {
        0..=2 => join_and(&names),
        n => format!("{}, {} and {} more", names[0], names[1], n - 2),
    }
}

/// `a`, `a and b`, `a, b and c`.
fn join_and<S: AsRef<str>>(items: &[S]) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_owned(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|s| s.as_ref())
                .collect::<Vec<_>>()
                .join(", "),
            last.as_ref()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::parse_machines;
    use std::path::Path;

    const X86: &str = "x86_64-linux";
    const CACHE: &str = "https://cache.nixos.org";

    /// A store path whose hash is derived from its name, so tests can name paths.
    fn sp(name: &str) -> StorePath {
        const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
        let mut h: u64 = 0xcbf29ce484222325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        let hash: String = (0..32)
            .map(|_| {
                h = h
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ALPHABET[(h >> 59) as usize] as char
            })
            .collect();
        StorePath::parse(&format!("/nix/store/{hash}-{name}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn out(name: &str) -> StorePath {
        sp(name)
    }

    fn drv_path(name: &str) -> StorePath {
        sp(&format!("{name}.drv"))
    }

    /// A derivation `name` with output `out` = `out(name)`, using the `out` of each dep.
    fn drv(name: &str, deps: &[&str]) -> Derivation {
        Derivation {
            path: drv_path(name),
            outputs: [("out".to_string(), out(name))].into_iter().collect(),
            input_drvs: deps
                .iter()
                .map(|d| (drv_path(d), vec!["out".to_string()]))
                .collect(),
            input_srcs: Vec::new(),
            system: X86.into(),
            required_features: Vec::new(),
            prefer_local: false,
        }
    }

    fn machine(line: &str) -> Machine {
        let mut none = |_: &Path| None;
        match parse_machines(line, "test", &mut none) {
            Ok(mut m) if m.len() == 1 => m.remove(0),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn builder(line: &str, reachable: bool) -> BuilderState {
        let machine = machine(line);
        BuilderState {
            uri: machine.uri.clone(),
            host: machine.host_label().to_string(),
            reachable,
            error: (!reachable).then(|| "connection refused".to_string()),
            systems: Vec::new(),
            unverified: None,
            machine,
        }
    }

    fn seasmoke() -> BuilderState {
        builder("ssh-ng://seasmoke x86_64-linux - 4 1", true)
    }

    fn input(drvs: Vec<Derivation>, wanted: &[&str]) -> PlanInput {
        PlanInput {
            graph: Graph {
                derivations: drvs.into_iter().map(|d| (d.path.clone(), d)).collect(),
                wanted: wanted.iter().map(|w| out(w)).collect(),
            },
            availability: Availability::default(),
            builders: Vec::new(),
            forced: Forced::Auto,
            local_system: X86.into(),
        }
    }

    fn valid(input: &mut PlanInput, names: &[&str]) {
        input
            .availability
            .valid_locally
            .extend(names.iter().map(|n| out(n)));
    }

    fn cached(input: &mut PlanInput, name: &str, refs: &[&str]) {
        let hit = CacheHit {
            uri: CACHE.into(),
            references: refs.iter().map(|r| out(r)).collect(),
        };
        input.availability.in_caches.insert(out(name), hit);
    }

    fn on_builder(
        input: &mut PlanInput,
        name: &str,
        uri: &str,
        substitutable: bool,
        refs: &[&str],
    ) {
        let hit = BuilderHit {
            uri: uri.into(),
            references: refs.iter().map(|r| out(r)).collect(),
            substitutable,
        };
        input
            .availability
            .on_builders
            .entry(out(name))
            .or_default()
            .push(hit);
    }

    fn run(input: &PlanInput) -> Plan {
        plan(input).unwrap_or_else(|e| panic!("impossible: {e}"))
    }

    fn impossible(input: &PlanInput) -> String {
        match plan(input) {
            Ok(p) => panic!("planned {p:?}"),
            Err(e) => e.0,
        }
    }

    fn source_of(plan: &Plan, name: &str) -> (Source, Option<String>) {
        let path = out(name);
        match plan.paths.iter().find(|p| p.path == path) {
            Some(p) => (p.source, p.from.clone()),
            None => panic!("{name} not in {:?}", plan.paths),
        }
    }

    fn counts(
        valid_locally: usize,
        from_caches: usize,
        from_builders: usize,
        to_build: usize,
    ) -> Counts {
        Counts {
            valid_locally,
            from_caches,
            from_builders,
            to_build,
        }
    }

    // --- the walk ---------------------------------------------------------------------------

    #[test]
    fn everything_valid_is_noop_whatever_the_forced_mode() {
        for forced in [
            Forced::Auto,
            Forced::Substitute,
            Forced::Remote,
            Forced::Local,
        ] {
            let mut i = input(
                vec![drv("hello", &["glibc"]), drv("glibc", &[])],
                &["hello"],
            );
            valid(&mut i, &["hello"]);
            i.forced = forced;
            let p = run(&i);
            assert_eq!(p.mode, Mode::Noop, "{forced:?}");
            assert_eq!(p.reason, "everything is already in the local store");
            // A valid path ends the walk: glibc is not even looked at.
            assert_eq!(p.counts, counts(1, 0, 0, 0));
            assert!(p.paths.is_empty() && p.builds.is_empty());
        }
    }

    #[test]
    fn cache_hits_are_substituted_and_their_references_walked() {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        cached(&mut i, "hello", &["hello", "glibc", "libidn"]);
        cached(&mut i, "glibc", &[]);
        valid(&mut i, &["libidn"]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Substitute);
        assert_eq!(p.counts, counts(1, 2, 0, 0));
        assert_eq!(source_of(&p, "hello"), (Source::Cache, Some(CACHE.into())));
        assert_eq!(source_of(&p, "glibc"), (Source::Cache, Some(CACHE.into())));
        assert_eq!(
            p.reason,
            "nothing needs building: 2 paths come from https://cache.nixos.org"
        );
    }

    #[test]
    fn a_substitutable_path_on_a_reachable_builder_comes_from_it() {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        i.builders = vec![seasmoke()];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &["glibc"]);
        cached(&mut i, "glibc", &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Substitute);
        assert_eq!(
            source_of(&p, "hello"),
            (Source::Builder, Some("ssh-ng://seasmoke".into()))
        );
        assert_eq!(p.counts, counts(0, 1, 1, 0));
        assert_eq!(
            p.builder_substituters,
            vec!["ssh-ng://seasmoke".to_string()]
        );
        assert_eq!(
            p.reason,
            "nothing needs building: 1 path comes from https://cache.nixos.org and 1 from seasmoke"
        );
    }

    #[test]
    fn a_cache_wins_over_a_builder() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.builders = vec![seasmoke()];
        cached(&mut i, "hello", &[]);
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
        let p = run(&i);
        assert_eq!(source_of(&p, "hello").0, Source::Cache);
        assert!(p.builder_substituters.is_empty());
    }

    #[test]
    fn unreachable_builders_hold_nothing() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(source_of(&p, "hello"), (Source::Build, None));
    }

    #[test]
    fn an_unsigned_output_on_a_builder_is_copied_back_by_the_hook_after_its_inputs() {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        i.builders = vec![seasmoke()];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &["glibc"]);
        on_builder(&mut i, "glibc", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Substitute);
        assert_eq!(
            source_of(&p, "hello"),
            (Source::Builder, Some("ssh-ng://seasmoke".into()))
        );
        // The hook needs glibc valid here first: it too is copied back (it is held there).
        assert_eq!(
            source_of(&p, "glibc"),
            (Source::Builder, Some("ssh-ng://seasmoke".into()))
        );
        assert_eq!(p.counts, counts(0, 0, 2, 0));
        // Nothing is substituted from the builder's store, so it is no substituter.
        assert!(p.builder_substituters.is_empty());
        assert_eq!(
            p.reason,
            "nothing needs building: 2 paths come from seasmoke"
        );
    }

    #[test]
    fn copied_back_derivations_walk_their_inputs_which_may_need_building() {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        i.builders = vec![seasmoke()];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(source_of(&p, "hello").0, Source::Builder);
        assert_eq!(
            source_of(&p, "glibc"),
            (Source::Build, Some("ssh-ng://seasmoke".into()))
        );
        assert_eq!(p.counts, counts(0, 0, 1, 1));
        assert_eq!(p.mode, Mode::Remote);
    }

    #[test]
    fn copy_back_needs_a_builder_whose_entry_takes_the_derivation() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.builders = vec![builder("ssh-ng://seasmoke aarch64-linux", true)];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(source_of(&p, "hello"), (Source::Build, None));
        assert_eq!(p.mode, Mode::Local);
    }

    #[test]
    fn prefer_local_derivations_are_never_copied_back() {
        let mut hello = drv("hello", &[]);
        hello.prefer_local = true;
        let mut i = input(vec![hello], &["hello"]);
        i.builders = vec![seasmoke()];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(source_of(&p, "hello"), (Source::Build, None));
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(
            p.reason,
            "1 derivation must be built and it prefers local builds (preferLocalBuild)"
        );
    }

    #[test]
    fn all_missing_outputs_of_a_derivation_go_together() {
        let mut multi = drv("openssl", &[]);
        multi.outputs.insert("dev".into(), out("openssl-dev"));
        multi.outputs.insert("man".into(), out("openssl-man"));
        let mut i = input(vec![multi], &["openssl", "openssl-dev"]);
        valid(&mut i, &["openssl-man"]);
        cached(&mut i, "openssl-dev", &[]);
        let p = run(&i);
        // openssl must be built; that build also produces dev, so dev is not fetched as well.
        // man is valid but nothing needs it, so the walk never counts it.
        assert_eq!(p.counts, counts(0, 0, 0, 1));
        assert_eq!(source_of(&p, "openssl").0, Source::Build);
        assert_eq!(source_of(&p, "openssl-dev").0, Source::Build);
        assert_eq!(p.paths.len(), 2);
        assert_eq!(p.builds.len(), 1);
    }

    #[test]
    fn diamonds_are_visited_once() {
        let drvs = vec![
            drv("app", &["left", "right"]),
            drv("left", &["base"]),
            drv("right", &["base"]),
            drv("base", &[]),
        ];
        let mut i = input(drvs, &["app"]);
        i.builders = vec![seasmoke()];
        let p = run(&i);
        assert_eq!(p.counts, counts(0, 0, 0, 4));
        assert_eq!(p.paths.len(), 4);
        let mut sorted = p.paths.clone();
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(sorted, p.paths, "paths are sorted");
        assert_eq!(
            p.reason,
            "4 derivations must be built and seasmoke is reachable"
        );
    }

    #[test]
    fn input_srcs_are_walked_and_orphans_left_to_nix() {
        let mut hello = drv("hello", &[]);
        hello.input_srcs = vec![out("builder.sh"), out("patch")];
        let mut i = input(vec![hello], &["hello", "lost"]);
        valid(&mut i, &["builder.sh"]);
        cached(&mut i, "patch", &[]);
        cached(&mut i, "hello", &[]);
        let p = run(&i);
        // hello is cached, so its sources are not needed; `lost` is produced by nothing.
        assert_eq!(source_of(&p, "lost"), (Source::Build, None));
        assert_eq!(p.counts, counts(0, 1, 0, 0));
        assert_eq!(p.mode, Mode::Substitute);
        assert_eq!(
            p.reason,
            "nothing needs building: 1 path comes from https://cache.nixos.org, and 1 path nobody has (nix will say why)"
        );

        i.availability.in_caches.remove(&out("hello"));
        let p = run(&i);
        assert_eq!(source_of(&p, "patch").0, Source::Cache);
        assert_eq!(p.counts, counts(1, 1, 0, 1));
    }

    #[test]
    fn unknown_input_derivations_are_left_to_nix() {
        let mut i = input(vec![drv("hello", &["not-in-graph"])], &["hello"]);
        i.builders = vec![seasmoke()];
        let p = run(&i);
        assert_eq!(p.counts.to_build, 1);
        assert_eq!(p.paths.len(), 1);
    }

    // --- forced modes -----------------------------------------------------------------------

    #[test]
    fn forced_local_ignores_builders_entirely() {
        let mut i = input(
            vec![drv("hello", &["glibc"]), drv("glibc", &[])],
            &["hello"],
        );
        i.builders = vec![seasmoke()];
        i.forced = Forced::Local;
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", true, &[]);
        on_builder(&mut i, "glibc", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(p.reason, "--mode local: 2 derivations will be built here");
        assert_eq!(source_of(&p, "hello"), (Source::Build, None));
        assert_eq!(source_of(&p, "glibc"), (Source::Build, None));
        assert!(p.builder_substituters.is_empty());
        assert!(p.builds.iter().all(|b| b.from.is_none()));
    }

    #[test]
    fn forced_local_with_nothing_to_build_is_still_local() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.forced = Forced::Local;
        cached(&mut i, "hello", &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(
            p.reason,
            "--mode local: nothing needs building; 1 path comes from https://cache.nixos.org"
        );
    }

    #[test]
    fn forced_substitute_is_impossible_when_something_must_be_built() {
        let drvs = vec![drv("app", &["b", "c"]), drv("b", &[]), drv("c", &[])];
        let mut i = input(drvs, &["app"]);
        i.forced = Forced::Substitute;
        i.builders = vec![seasmoke()];
        let why = impossible(&i);
        assert!(
            why.starts_with("--mode substitute, but 3 derivations must be built ("),
            "{why}"
        );
        assert!(
            why.contains(" and 1 more): no cache or builder has them"),
            "{why}"
        );

        let mut i = input(vec![drv("app", &[])], &["app"]);
        i.forced = Forced::Substitute;
        assert_eq!(
            impossible(&i),
            "--mode substitute, but 1 derivation must be built (app): no cache or builder has it"
        );
    }

    #[test]
    fn forced_substitute_when_nothing_must_be_built() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.forced = Forced::Substitute;
        i.builders = vec![seasmoke()];
        on_builder(&mut i, "hello", "ssh-ng://seasmoke", false, &[]);
        let p = run(&i);
        assert_eq!(p.mode, Mode::Substitute);
        assert_eq!(p.counts, counts(0, 0, 1, 0));
    }

    #[test]
    fn forced_remote_needs_a_reachable_builder_for_every_build() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.forced = Forced::Remote;
        assert_eq!(
            impossible(&i),
            "--mode remote, but no builders are configured: add one with --builder or nix's builders setting"
        );

        i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
        assert_eq!(impossible(&i), "--mode remote, but no reachable builder can build x86_64-linux: seasmoke: connection refused");

        i.builders = vec![builder("ssh-ng://seasmoke aarch64-linux", true)];
        assert_eq!(
            impossible(&i),
            "--mode remote, but no reachable builder can build x86_64-linux: seasmoke is declared for aarch64-linux only"
        );

        i.builders.push(seasmoke_named("other"));
        let p = run(&i);
        assert_eq!(p.mode, Mode::Remote);
        assert_eq!(
            p.reason,
            "--mode remote: 1 derivation must be built and other is reachable"
        );
        assert_eq!(
            source_of(&p, "hello"),
            (Source::Build, Some("ssh-ng://other".into()))
        );
        assert!(p.all_builds_remote());
    }

    #[test]
    fn forced_remote_names_missing_features() {
        let mut kvm = drv("vm-test", &[]);
        kvm.required_features = vec!["kvm".into()];
        let mut i = input(vec![kvm], &["vm-test"]);
        i.forced = Forced::Remote;
        i.builders = vec![seasmoke()];
        assert_eq!(
            impossible(&i),
            "--mode remote, but no reachable builder can build x86_64-linux with kvm: seasmoke lacks feature kvm"
        );
    }

    #[test]
    fn forced_remote_with_nothing_to_build() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.forced = Forced::Remote;
        cached(&mut i, "hello", &[]);
        i.builders = vec![builder("ssh-ng://seasmoke x86_64-linux", false)];
        assert_eq!(
            impossible(&i),
            "--mode remote, but no builder is reachable (seasmoke: connection refused)"
        );
        i.builders = vec![seasmoke()];
        let p = run(&i);
        assert_eq!(p.mode, Mode::Remote);
        assert_eq!(
            p.reason,
            "--mode remote: nothing needs building; 1 path comes from https://cache.nixos.org"
        );
    }

    // --- auto -------------------------------------------------------------------------------

    fn seasmoke_named(host: &str) -> BuilderState {
        builder(&format!("ssh-ng://{host} x86_64-linux"), true)
    }

    #[test]
    fn auto_builds_remotely_when_a_builder_takes_the_work() {
        let drvs = vec![drv("a", &["b"]), drv("b", &["c"]), drv("c", &[])];
        let mut i = input(drvs, &["a"]);
        i.builders = vec![seasmoke()];
        let p = run(&i);
        assert_eq!(p.mode, Mode::Remote);
        assert_eq!(
            p.reason,
            "3 derivations must be built and seasmoke is reachable"
        );
        assert!(p
            .builds
            .iter()
            .all(|b| b.from.as_deref() == Some("ssh-ng://seasmoke")));
        assert!(p.all_builds_remote());
        assert_eq!(p.counts.to_build, 3);
    }

    #[test]
    fn auto_picks_speed_then_jobs_then_order() {
        let drvs = vec![drv("a", &[])];
        let mut i = input(drvs, &["a"]);
        let pick = |i: &PlanInput| run(i).builds[0].from.clone().unwrap_or_default();

        i.builders = vec![
            builder("ssh-ng://slow x86_64-linux - 16 1", true),
            builder("ssh-ng://fast x86_64-linux - 1 2.5", true),
            builder("ssh-ng://down x86_64-linux - 64 10", false),
        ];
        assert_eq!(pick(&i), "ssh-ng://fast");

        i.builders = vec![
            builder("ssh-ng://few x86_64-linux - 2 2", true),
            builder("ssh-ng://many x86_64-linux - 8 2", true),
        ];
        assert_eq!(pick(&i), "ssh-ng://many");

        i.builders = vec![
            builder("ssh-ng://first x86_64-linux - 8 2", true),
            builder("ssh-ng://second x86_64-linux - 8 2", true),
        ];
        assert_eq!(pick(&i), "ssh-ng://first");
    }

    #[test]
    fn auto_routes_each_derivation_to_a_builder_that_takes_it() {
        let mut arm = drv("arm", &["x86"]);
        arm.system = "aarch64-linux".into();
        let mut kvm = drv("kvm", &[]);
        kvm.required_features = vec!["kvm".into()];
        let mut i = input(vec![arm, drv("x86", &[]), kvm], &["arm", "kvm"]);
        i.builders = vec![
            builder("ssh-ng://pi aarch64-linux", true),
            builder("ssh-ng://big x86_64-linux - 8 4 kvm", true),
            builder("ssh-ng://bench x86_64-linux - 8 9 kvm benchmark", true),
        ];
        let p = run(&i);
        let from = |n: &str| source_of(&p, n).1.unwrap_or_default();
        assert_eq!(from("arm"), "ssh-ng://pi");
        assert_eq!(
            from("x86"),
            "ssh-ng://big",
            "bench takes only benchmark derivations"
        );
        assert_eq!(from("kvm"), "ssh-ng://big");
        assert_eq!(
            p.reason,
            "3 derivations must be built and pi and big are reachable"
        );
    }

    #[test]
    fn an_entry_without_systems_takes_the_local_system() {
        let mut i = input(vec![drv("a", &[])], &["a"]);
        i.builders = vec![builder("ssh-ng://seasmoke", true)];
        assert_eq!(run(&i).mode, Mode::Remote);
        i.local_system = "aarch64-linux".into();
        assert_eq!(run(&i).mode, Mode::Local);
    }

    #[test]
    fn probed_systems_must_agree_with_the_entry() {
        let mut i = input(vec![drv("a", &[])], &["a"]);
        let mut b = seasmoke();
        b.systems = vec!["aarch64-linux".into()];
        i.builders = vec![b];
        let p = run(&i);
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(p.reason, "1 derivation must be built and no builder can take it (seasmoke builds aarch64-linux only)");
        i.builders[0].systems = vec!["x86_64-linux".into(), "i686-linux".into()];
        assert_eq!(run(&i).mode, Mode::Remote);
    }

    #[test]
    fn auto_keeps_prefer_local_derivations_here() {
        let mut cfg = drv("config-file", &[]);
        cfg.prefer_local = true;
        let mut i = input(vec![drv("app", &["config-file"]), cfg], &["app"]);
        i.builders = vec![seasmoke()];
        let p = run(&i);
        assert_eq!(p.mode, Mode::Remote);
        assert_eq!(source_of(&p, "config-file"), (Source::Build, None));
        assert_eq!(source_of(&p, "app").1.as_deref(), Some("ssh-ng://seasmoke"));
        assert!(!p.all_builds_remote());
        assert_eq!(
            p.reason,
            "2 derivations must be built and seasmoke is reachable (1 of them will build here)"
        );
    }

    #[test]
    fn auto_builds_locally_and_says_why_when_no_builder_takes_the_work() {
        let drvs = vec![drv("a", &["b"]), drv("b", &["c"]), drv("c", &[])];
        let mut i = input(drvs, &["a"]);
        assert_eq!(
            run(&i).reason,
            "3 derivations must be built and no builders are configured"
        );

        let mut down = builder("ssh-ng://seasmoke x86_64-linux", false);
        down.error = Some("timed out after 3s".into());
        i.builders = vec![down.clone()];
        let p = run(&i);
        assert_eq!(p.mode, Mode::Local);
        assert_eq!(p.reason, "3 derivations must be built and the builder is unreachable (seasmoke: timed out after 3s)");
        assert!(p.builds.iter().all(|b| b.from.is_none()));
        assert!(p.paths.iter().all(|p| p.from.is_none()));

        i.builders = vec![down, builder("ssh-ng://pi aarch64-linux", true)];
        assert_eq!(
            run(&i).reason,
            "3 derivations must be built and no builder can take them (seasmoke: timed out after 3s; pi is declared for aarch64-linux only)"
        );
    }

    #[test]
    fn reasons_list_every_source() {
        let names: Vec<String> = (0..45).map(|n| format!("p{n}")).collect();
        let drvs: Vec<Derivation> = names.iter().map(|n| drv(n, &[])).collect();
        let wanted: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut i = input(drvs, &wanted);
        i.builders = vec![seasmoke(), seasmoke_named("other")];
        for n in &names[..40] {
            cached(&mut i, n, &[]);
        }
        for n in &names[40..42] {
            on_builder(&mut i, n, "ssh-ng://seasmoke", true, &[]);
        }
        for n in &names[42..] {
            on_builder(&mut i, n, "ssh-ng://other", false, &[]);
        }
        let p = run(&i);
        assert_eq!(
            p.reason,
            "nothing needs building: 40 paths come from https://cache.nixos.org, 3 from other and 2 from seasmoke"
        );
        assert_eq!(p.counts, counts(0, 40, 5, 0));
        assert_eq!(
            p.builder_substituters,
            vec!["ssh-ng://seasmoke".to_string()]
        );
    }

    #[test]
    fn json_has_the_contract_fields() {
        let mut i = input(vec![drv("hello", &[])], &["hello"]);
        i.builders = vec![seasmoke()];
        let p = run(&i);
        let json = serde_json::to_value(&p).unwrap_or_default();
        let expected = serde_json::json!({
            "mode": "remote",
            "reason": "1 derivation must be built and seasmoke is reachable",
            "counts": {"valid_locally": 0, "from_caches": 0, "from_builders": 0, "to_build": 1},
            "paths": [{"path": out("hello").as_str(), "source": "build", "from": "ssh-ng://seasmoke"}],
        });
        assert_eq!(json, expected);
        let local = serde_json::to_value(PlannedPath {
            path: out("x"),
            source: Source::Build,
            from: None,
        })
        .unwrap_or_default();
        assert_eq!(local["from"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_value(Source::Cache).unwrap_or_default(),
            "cache"
        );
        assert_eq!(
            serde_json::to_value(Source::Builder).unwrap_or_default(),
            "builder"
        );
        assert_eq!(serde_json::to_value(Mode::Noop).unwrap_or_default(), "noop");
        assert_eq!(
            serde_json::to_value(Mode::Substitute).unwrap_or_default(),
            "substitute"
        );
        assert_eq!(
            serde_json::to_value(Mode::Local).unwrap_or_default(),
            "local"
        );
    }

    #[test]
    fn impossible_maps_to_exit_3() {
        assert_eq!(crate::Error::from(Impossible("x".into())).code(), 3);
    }

    #[test]
    fn thousands_of_paths_plan_fast_and_deterministically() {
        // 6,000 derivations, each depending on the two before it, plus 3,000 cached runtime
        // references: deep, wide and full of diamonds.
        let n = 6000;
        let names: Vec<String> = (0..n).map(|k| format!("pkg{k}")).collect();
        let mut drvs = Vec::with_capacity(n);
        for k in 0..n {
            let deps: Vec<&str> = (k.saturating_sub(2)..k)
                .map(|j| names[j].as_str())
                .collect();
            drvs.push(drv(&names[k], &deps));
        }
        let mut i = input(drvs, &[names[n - 1].as_str()]);
        i.builders = vec![seasmoke(), seasmoke_named("other")];
        for k in (0..n).step_by(2) {
            let refs: Vec<String> = vec![format!("rt{k}")];
            let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
            cached(&mut i, &names[k], &refs);
            cached(&mut i, &format!("rt{k}"), &[]);
        }
        valid(&mut i, &["pkg1"]);
        let started = std::time::Instant::now();
        let p = run(&i);
        let elapsed = started.elapsed();
        assert!(elapsed.as_secs_f64() < 3.0, "took {elapsed:?}");
        assert_eq!(p.counts.to_build, n / 2 - 1);
        // pkg0 (and its rt0) is needed only by pkg1, which is valid, and by the cached pkg2.
        assert_eq!(p.counts.from_caches, n - 2);
        assert_eq!(p.counts.valid_locally, 1);
        assert_eq!(p, run(&i), "deterministic");
    }
}
