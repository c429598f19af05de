//! Which configured builders take which derivation, and which nix would favour.

use super::graph::{Availability, Derivation};
use super::PlanInput;
use crate::builder::{Builder, BuilderId};
use crate::store_path::StorePath;
use std::collections::HashMap;

/// One configured builder as the planner sees it.
pub(super) struct BuilderView<'a> {
    pub(super) order: usize,
    pub(super) state: &'a Builder,
    /// The systems nix's build hook will send it (its machines entry, else this machine's).
    pub(super) declared: Vec<String>,
}

impl BuilderView<'_> {
    /// Whether nix's hook would send `drv` here and the builder can build it: the entry accepts
    /// it (nix's rule) and, when the probe learned its systems, the builder really builds that
    /// system.
    pub(super) fn takes(&self, drv: &Derivation) -> bool {
        self.state.reachable()
            && self.state.machine.can_build_with_systems(
                &self.declared,
                &drv.system,
                &drv.required_features,
            )
            && (self.state.systems.is_empty()
                || drv.system == "builtin"
                || self.state.systems.contains(&drv.system))
    }
}

pub(super) struct BuilderViews<'a> {
    pub(super) views: Vec<BuilderView<'a>>,
    pub(super) by_id: HashMap<BuilderId, usize>,
}

impl<'a> BuilderViews<'a> {
    pub(super) fn new(input: &'a PlanInput) -> Self {
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
        let mut by_id = HashMap::new();
        for (i, v) in views.iter().enumerate() {
            by_id.entry(v.state.id).or_insert(i);
        }
        BuilderViews { views, by_id }
    }

    pub(super) fn get(&self, id: BuilderId) -> Option<&BuilderView<'a>> {
        self.by_id.get(&id).map(|i| &self.views[*i])
    }

    pub(super) fn is_reachable(&self, id: BuilderId) -> bool {
        self.get(id).is_some_and(|v| v.state.reachable())
    }

    pub(super) fn host_of(&self, id: BuilderId) -> &'a str {
        self.get(id)
            .map_or("an unknown builder", |v| v.state.host())
    }

    /// The store URI of builder `id`, as written (the contract's `from`).
    pub(super) fn uri_of(&self, id: BuilderId) -> Option<String> {
        self.get(id).map(|v| v.state.machine.uri.to_string())
    }

    pub(super) fn any_reachable(&self) -> bool {
        self.views.iter().any(|v| v.state.reachable())
    }

    /// The best builder among those that take `drv`, as nix would favour it: highest speed
    /// factor, then most jobs, then configuration order.
    pub(super) fn best<'s>(
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

    pub(super) fn choose(&self, drv: &Derivation) -> Option<&'a Builder> {
        self.best(self.views.iter().filter(|v| v.takes(drv)))
            .map(|v| v.state)
    }
}

/// The reachable builder, taking `drv`, that holds every missing output: nix's build hook sends
/// the derivation there and copies the outputs back without building.
pub(super) fn copy_back_builder<'a>(
    drv: &Derivation,
    missing: &[&StorePath],
    avail: &'a Availability,
    builders: &BuilderViews<'a>,
) -> Option<BuilderId> {
    let holders = builders.views.iter().filter(|v| {
        v.takes(drv)
            && missing.iter().all(|o| {
                avail
                    .on_builders
                    .get(*o)
                    .is_some_and(|hits| hits.iter().any(|h| h.builder == v.state.id))
            })
    });
    builders.best(holders).map(|v| v.state.id)
}
