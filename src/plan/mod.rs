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

pub mod cost;
mod eligibility;
mod fallback;
mod graph;
mod reason;
mod walk;

pub use cost::{Estimate, Knowledge};
pub use graph::{Availability, BuilderHit, CacheHit, Derivation, Graph, OutputIndex};

pub use crate::builder::{Builder, BuilderId};
use crate::store_path::StorePath;
use eligibility::BuilderViews;
pub use reason::NOOP_REASON;
use reason::{local_reason, remote_reason};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use walk::Walk;

/// The mode `--mode` forces, or `Auto` to choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Forced {
    /// Choose from what the sources and builders answered.
    #[default]
    Auto,
    /// Build nothing anywhere; impossible when something must be built.
    Substitute,
    /// Build on builders; impossible when a derivation has no reachable builder that takes it.
    Remote,
    /// Ignore the builders entirely.
    Local,
}

impl Forced {
    /// The mode as nix's own flags change it: `--offline` builds here what `--mode auto`
    /// would have sent away, `-j 0` (`no_local_jobs`) builds nothing here. `Err`: the flags
    /// contradict `--mode` (a usage error).
    pub fn under_nix_flags(self, offline: bool, no_local_jobs: bool) -> Result<Forced, String> {
        let mut forced = self;
        if offline && forced == Forced::Auto {
            forced = Forced::Local;
        }
        if no_local_jobs {
            match forced {
                Forced::Auto => forced = Forced::Remote,
                Forced::Local => return Err(reason::NO_LOCAL_JOBS_BUT_LOCAL.to_owned()),
                _ => {}
            }
        }
        Ok(forced)
    }
}

/// The nix daemon that runs our builds, as far as it bears on the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// It does not trust us: it uses its own builders and substituters whatever is passed.
    pub decides: bool,
}

/// Everything the decision depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanInput {
    /// The derivations and the wanted outputs.
    pub graph: Graph,
    /// Where paths are.
    pub availability: Availability,
    /// Every configured builder, in configuration order (the last tie-break between builders).
    pub builders: Vec<Builder>,
    /// The mode asked for.
    pub forced: Forced,
    /// This machine's system, e.g. `x86_64-linux`: what nix builds locally, and nix's default
    /// for a machines entry that names no systems.
    pub local_system: String,
    /// What the history knows of these derivations and links (empty: decide by presence).
    pub knowledge: Knowledge,
    /// The nix daemon that runs our builds; `None`: nix builds in this process.
    pub daemon: Option<Daemon>,
    /// nix's `--fallback`: what a substituter or builder store fails to give is built.
    pub nix_fallback: bool,
    /// The substituters nix is to use when some configured ones are dead (refused, or silent:
    /// [`crate::sources::cache::CacheAnswers::dead`]), in nix's order; `None`: nix's own.
    pub substituters: Option<Vec<String>>,
    /// nix's substituters as configured, in nix's order (empty when nothing was asked of them).
    pub configured_substituters: Vec<String>,
    /// The noop check found every output valid ([`crate::run::noop`]): how many outputs nix
    /// made links for. The plan is then a noop without a walk.
    pub checked_noop: Option<usize>,
    /// A builder went away mid-run, with why: the plan that finishes the run here, once.
    pub fell_back: Option<String>,
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
    /// The builders whose stores the plan substitutes from (to pass as substituters), in
    /// configuration order.
    #[serde(skip)]
    pub builder_substituters: Vec<BuilderId>,
    /// The nix daemon ignores the builders and substituters we would pass (we are not a
    /// trusted user): pass none, except an empty `builders` to build locally.
    #[serde(skip)]
    pub daemon_decides: bool,
    /// The substituters nix is to use when some configured ones are dead (refused, or silent:
    /// [`crate::sources::cache::CacheAnswers::dead`]), in nix's order; `None`: nix's own.
    #[serde(skip)]
    pub substituters: Option<Vec<String>>,
    /// What each candidate mode would take, when a history was consulted (the contract's
    /// `estimates`; empty otherwise).
    #[serde(skip)]
    pub estimates: Vec<Estimate>,
    /// Whether nix may build here. `false` (nix is given `--max-jobs 0`) only when every
    /// build has a builder and every live builder was verified: a probe that could not see
    /// what nix will see never takes the choice away from nix ([`Plan::nothing_here`]).
    #[serde(skip)]
    pub may_build_locally: bool,
}

impl Plan {
    /// The plan of a run with nothing missing (its counts to be filled in).
    fn noop() -> Plan {
        Plan {
            mode: Mode::Noop,
            reason: NOOP_REASON.to_owned(),
            counts: Counts::default(),
            paths: Vec::new(),
            builds: Vec::new(),
            builder_substituters: Vec::new(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
            may_build_locally: true,
        }
    }

    /// Whether every derivation to build has a builder, so nix can be told to build nothing
    /// locally (`--max-jobs 0`) and still finish.
    pub fn all_builds_remote(&self) -> bool {
        self.builds.iter().all(|b| b.from.is_some())
    }

    /// Whether the plan builds something and every build has a builder: with every live
    /// builder verified, nix is told to build nothing here (`--max-jobs 0`).
    pub fn builds_only_remotely(&self) -> bool {
        self.mode == Mode::Remote && !self.builds.is_empty() && self.all_builds_remote()
    }

    /// Whether, with these builders as probed, nix is to build nothing here: the plan builds
    /// only remotely, some builder is live, and every live builder was verified. Read through
    /// [`Plan::may_build_locally`], which [`plan`] sets from it.
    pub fn nothing_here(&self, builders: &[Builder]) -> bool {
        let mut live = builders.iter().filter(|b| b.reachable()).peekable();
        self.builds_only_remotely()
            && live.peek().is_some()
            && live.all(|b| b.unverified().is_none())
    }

    /// Whether this plan hands work to builders (a build, or a copy from a builder's store), so
    /// a builder that vanishes mid-run can be left for a local build.
    pub fn uses_builders(&self) -> bool {
        matches!(self.mode, Mode::Remote | Mode::Substitute)
            && (!self.builds.iter().all(|b| b.from.is_none()) || self.counts.from_builders > 0)
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
///
/// The plan it returns is final: mode, every word of its reason (who really decides when a
/// nix daemon runs the builds, what `--fallback` does, a fallback's why) and what nix is given.
/// Falling back is this function again, with [`PlanInput::fell_back`].
pub fn plan(input: &PlanInput) -> Result<Plan, Impossible> {
    let mut plan = match input.checked_noop {
        Some(outputs) => Plan {
            counts: Counts {
                valid_locally: outputs,
                ..Counts::default()
            },
            ..Plan::noop()
        },
        None => decide(input)?,
    };
    plan.substituters = builders_before_caches(&plan, input).or_else(|| input.substituters.clone());
    if let Some(daemon) = input.daemon {
        plan.daemon_decides = daemon.decides;
        plan.reason
            .push_str(&reason::daemon_words(&plan, &input.builders, daemon));
    }
    if input.nix_fallback && plan.mode == Mode::Substitute {
        plan.reason.push_str(reason::NIX_FALLBACK);
    }
    let mut plan = match &input.fell_back {
        Some(why) => fallback::finish_here(plan, why),
        None => plan,
    };
    plan.may_build_locally = !plan.nothing_here(&input.builders);
    Ok(plan)
}

/// The substituters nix is to use when the plan takes a path from a builder's store that a
/// cache holds too (the builder's link measured clearly faster, [`cost`]): those builders'
/// stores first, then the caches nix would use, in their order. nix asks its substituters in
/// the order given and takes the first that has the path; appended (`extra-substituters`, as
/// every other builder substituter is passed) the cache would still serve it. `None`: no such
/// path, nix's own order (less the dead caches).
fn builders_before_caches(plan: &Plan, input: &PlanInput) -> Option<Vec<String>> {
    let chosen_over_cache = plan
        .paths
        .iter()
        .any(|p| p.source == Source::Builder && input.availability.in_caches.contains_key(&p.path));
    if !chosen_over_cache {
        return None;
    }
    let first: Vec<String> = input
        .builders
        .iter()
        .filter(|b| plan.builder_substituters.contains(&b.id))
        .map(|b| b.machine.store_uri())
        .collect();
    let caches = input
        .substituters
        .as_deref()
        .unwrap_or(&input.configured_substituters);
    let rest = caches.iter().filter(|c| !first.contains(c)).cloned();
    Some(first.iter().cloned().chain(rest).collect())
}

/// The decision from what the walk finds: mode, reason, and where every path comes from.
fn decide(input: &PlanInput) -> Result<Plan, Impossible> {
    let builders = BuilderViews::new(input);
    let use_builders = input.forced != Forced::Local;
    let walk = Walk::run(input, &builders, use_builders);

    if walk.entries.is_empty() {
        return Ok(walk.finish(Mode::Noop, NOOP_REASON.into(), &HashMap::new(), &builders));
    }

    let to_build: Vec<&Derivation> = walk.to_build.values().copied().collect();
    let locally_anyway = |d: &Derivation| builds_locally_anyway(d, &input.local_system);

    match input.forced {
        Forced::Local => {
            let reason = walk.forced_local_reason(&to_build, &builders);
            Ok(walk.finish(Mode::Local, reason, &HashMap::new(), &builders))
        }
        Forced::Substitute => {
            if to_build.is_empty() {
                let reason = walk.substitute_reason(&builders);
                return Ok(walk.finish(Mode::Substitute, reason, &HashMap::new(), &builders));
            }
            Err(Impossible(reason::cannot_substitute(&to_build)))
        }
        Forced::Remote => {
            if builders.views.is_empty() {
                return Err(Impossible(reason::REMOTE_WITHOUT_BUILDERS.into()));
            }

            let mut chosen = HashMap::new();
            for drv in to_build.iter().filter(|d| !locally_anyway(d)) {
                match builders.choose(drv) {
                    Some(b) => {
                        chosen.insert(&drv.path, b);
                    }
                    None => return Err(Impossible(builders.cannot_build_remotely(drv))),
                }
            }
            if !builders.any_reachable() {
                return Err(Impossible(builders.none_reachable()));
            }
            let reason = walk.forced_remote_reason(&to_build, &chosen, &builders);
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
            let by_cost = ByCost::weigh(input, &walk, &to_build, &chosen);
            let plan = match by_cost.local_reason {
                Some(local) => walk.finish(Mode::Local, local, &HashMap::new(), &builders),
                None => {
                    let reason = match &by_cost.remote_words {
                        Some(words) => format!("{reason}; {words}"),
                        None => reason,
                    };
                    walk.finish(Mode::Remote, reason, &chosen, &builders)
                }
            };
            Ok(Plan {
                estimates: by_cost.estimates,
                ..plan
            })
        }
    }
}

/// The presence rule's remote plan weighed against building everything here, when a history
/// was consulted ([`cost`]).
struct ByCost {
    /// The reason of a local plan that is clearly faster; `None` keeps the remote plan.
    local_reason: Option<String>,
    /// What to add to the remote plan's reason: the estimates, or that none was used.
    remote_words: Option<String>,
    /// Both candidates, for `plan --json`.
    estimates: Vec<Estimate>,
}

impl ByCost {
    fn weigh(
        input: &PlanInput,
        walk: &Walk<'_>,
        to_build: &[&Derivation],
        chosen: &HashMap<&StorePath, &Builder>,
    ) -> ByCost {
        let knows = &input.knowledge;
        if !knows.consulted {
            return ByCost {
                local_reason: None,
                remote_words: None,
                estimates: Vec::new(),
            };
        }
        let here = |_: &Derivation| cost::Placement {
            uri: None,
            host: "this machine",
            jobs: 1,
        };
        let placed = |d: &Derivation| match chosen.get(&d.path) {
            Some(b) => cost::Placement {
                uri: Some(b.machine.uri.as_str()),
                host: b.host(),
                jobs: b.machine.max_jobs,
            },
            None => here(d),
        };
        let local = cost::estimate(to_build, here, knows);
        let remote = cost::estimate(to_build, placed, knows);
        let mut hosts: Vec<&str> = chosen.values().map(|b| b.host()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let through = reason::through(&hosts);
        let estimate = |mode, costed: &Result<cost::Costed, Vec<String>>, what: &str| {
            let (secs, why) = match costed {
                Ok(c) => (Some(c.secs), reason::estimate_why(c, what)),
                Err(unknown) => (None, cost::unknown_words(unknown)),
            };
            Estimate { mode, secs, why }
        };
        let estimates = vec![
            estimate(Mode::Local, &local, "here"),
            estimate(Mode::Remote, &remote, &through),
        ];
        // A local plan must realise the same paths: only when no builder's store serves any.
        let builders_serve = walk.entries.iter().any(|(_, d)| {
            matches!(
                d,
                walk::Decision::BuilderSubstitute(_) | walk::Decision::CopyBack(_)
            )
        });
        let (local, remote) = match (local, remote) {
            (Ok(local), Ok(remote)) => (local, remote),
            (local, remote) => {
                let unknown = [local.err(), remote.err()].into_iter().flatten().flatten();
                let mut unknown: Vec<String> = unknown.collect();
                unknown.sort();
                unknown.dedup();
                return ByCost {
                    local_reason: None,
                    remote_words: Some(cost::unknown_words(&unknown)),
                    estimates,
                };
            }
        };
        let clearly_shorter = local.secs < remote.secs * cost::SWITCH_MARGIN
            && remote.secs - local.secs >= cost::SWITCH_MIN_GAIN;
        if !builders_serve && clearly_shorter {
            return ByCost {
                local_reason: Some(reason::cheaper_here(
                    to_build.len(),
                    &local,
                    &remote,
                    &through,
                )),
                remote_words: None,
                estimates,
            };
        }
        ByCost {
            local_reason: None,
            remote_words: Some(reason::remote_against_here(&remote, &local, &through)),
            estimates,
        }
    }
}

/// Whether nix builds this derivation locally whatever the builders: `preferLocalBuild` on a
/// derivation this machine can build (nix then never asks the build hook).
fn builds_locally_anyway(drv: &Derivation, local_system: &str) -> bool {
    drv.prefer_local && (drv.system == local_system || drv.system == "builtin")
}

#[cfg(test)]
mod tests;
