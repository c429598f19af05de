//! The walk over the build graph, as nix's own `queryMissing` walks it: how each missing path
//! is realised, before builders are assigned to builds.

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
