//! The walk over the build graph, as nix's own `queryMissing` walks it: how each missing path
//! is realised, before builders are assigned to builds.

use super::cost::{self, Fetch};
use super::eligibility::{copy_back_builder, BuilderViews};
use super::graph::{BuilderHit, Derivation};
use super::{
    builds_locally_anyway, Counts, Mode, Plan, PlanInput, PlannedBuild, PlannedPath, Source,
};
use crate::builder::{Builder, BuilderId};
use crate::store_path::StorePath;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// How one missing path is realised, before builders are assigned to builds.
#[derive(Clone, Copy)]
pub(super) enum Decision<'a> {
    Cache(&'a str),
    BuilderSubstitute(BuilderId),
    CopyBack(BuilderId),
    Build(&'a Derivation),
    Orphan,
}

pub(super) struct Walk<'a> {
    pub(super) valid_locally: usize,
    pub(super) entries: Vec<(&'a StorePath, Decision<'a>)>,
    pub(super) to_build: BTreeMap<&'a StorePath, &'a Derivation>,
    /// Paths a cache holds that come from a builder's store instead, measured clearly faster.
    pub(super) by_cost: Vec<Fetch>,
}

impl<'a> Walk<'a> {
    pub(super) fn run(
        input: &'a PlanInput,
        builders: &BuilderViews<'a>,
        use_builders: bool,
    ) -> Walk<'a> {
        let graph = &input.graph;
        let avail = &input.availability;
        let index = graph.output_index();
        let mut walk = Walk {
            valid_locally: 0,
            entries: Vec::new(),
            to_build: BTreeMap::new(),
            by_cost: Vec::new(),
        };
        let mut visited: HashSet<&'a StorePath> = HashSet::new();
        let mut decided: HashMap<&'a StorePath, Decision<'a>> = HashMap::new();
        let mut stack: Vec<&'a StorePath> = graph.wanted.iter().rev().collect();
        // A daemon that does not trust us ignores builders-use-substitutes and extra
        // substituters from us: a builder's store serves only what its build hook copies back.
        let daemon_decides = input.daemon.is_some_and(|d| d.decides);

        while let Some(path) = stack.pop() {
            if !visited.insert(path) {
                continue;
            }
            if avail.valid_locally.contains(path) {
                walk.valid_locally += 1;
                continue;
            }
            let held: &'a [BuilderHit] = match avail.on_builders.get(path) {
                Some(hits) if use_builders => hits,
                _ => &[],
            };
            if let Some(hit) = avail.in_caches.get(path) {
                // The cache first, as nix's substituters go, unless a builder's store was
                // measured clearly faster for a copy of this size.
                let faster = held
                    .iter()
                    .filter(|h| {
                        h.substitutable && !daemon_decides && builders.is_reachable(h.builder)
                    })
                    .filter_map(|h| {
                        let uri = builders.uri_of(h.builder)?;
                        let bytes = hit.nar_size.or(h.nar_size);
                        let host = builders.host_of(h.builder);
                        let fetch = cost::builder_over_cache(
                            &input.knowledge,
                            bytes,
                            &hit.uri,
                            &uri,
                            host,
                        )?;
                        Some((h, fetch))
                    })
                    .min_by(|a, b| a.1.builder_secs.total_cmp(&b.1.builder_secs));
                if let Some((builder_hit, fetch)) = faster {
                    walk.entries
                        .push((path, Decision::BuilderSubstitute(builder_hit.builder)));
                    walk.by_cost.push(fetch);
                    stack.extend(builder_hit.references.iter().rev());
                    continue;
                }
                walk.entries.push((path, Decision::Cache(&hit.uri)));
                stack.extend(hit.references.iter().rev());
                continue;
            }
            if let Some(hit) = held
                .iter()
                .find(|h| h.substitutable && !daemon_decides && builders.is_reachable(h.builder))
            {
                walk.entries
                    .push((path, Decision::BuilderSubstitute(hit.builder)));
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

    pub(super) fn finish(
        self,
        mode: Mode,
        reason: String,
        chosen: &HashMap<&StorePath, &Builder>,
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
                    Decision::BuilderSubstitute(id) => {
                        counts.from_builders += 1;
                        if let Some(v) = builders.get(*id) {
                            substituters.insert(v.order);
                        }
                        (Source::Builder, builders.uri_of(*id))
                    }
                    Decision::CopyBack(id) => {
                        counts.from_builders += 1;
                        (Source::Builder, builders.uri_of(*id))
                    }
                    Decision::Build(drv) => (
                        Source::Build,
                        chosen.get(&drv.path).map(|b| b.machine.uri.to_string()),
                    ),
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
        let reason = match cost::fetch_words(&self.by_cost) {
            Some(words) => format!("{reason}; {words}"),
            None => reason,
        };
        let builds = self
            .to_build
            .keys()
            .map(|drv| PlannedBuild {
                drv: (*drv).clone(),
                from: chosen.get(drv).map(|b| b.machine.uri.to_string()),
            })
            .collect();
        let builder_substituters = substituters
            .into_iter()
            .map(|i| builders.views[i].state.id)
            .collect();
        Plan {
            mode,
            reason,
            counts,
            paths,
            builds,
            builder_substituters,
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
            // Set by `plan::plan` once the plan is final.
            may_build_locally: true,
        }
    }
}
