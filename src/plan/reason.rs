//! The English of the plan: its one-sentence reasons and why a builder does not take a
//! derivation. Every word a user reads about a plan's decision is written here.

use super::builds_locally_anyway;
use super::eligibility::{BuilderView, BuilderViews};
use super::graph::Derivation;
use super::walk::{Decision, Walk};
use crate::builder::Builder;
use crate::machines::FeatureMismatch;
use crate::store_path::StorePath;
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl BuilderView<'_> {
    /// Why it does not take `drv`, as a short clause naming it.
    pub(super) fn why_not(&self, drv: &Derivation) -> String {
        let host = self.state.host();
        if !self.state.reachable() {
            return format!("{host}: {}", self.state.failure_words());
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
        match machine.feature_mismatch(&drv.required_features) {
            Some(FeatureMismatch::Lacks(f)) => return format!("{host} lacks feature {f}"),
            Some(FeatureMismatch::OnlyRequiring(f)) => {
                return format!("{host} takes only derivations requiring {f}")
            }
            None => {}
        }
        format!("{host} does not take it")
    }
}

impl BuilderViews<'_> {
    pub(super) fn why_unreachable(&self) -> String {
        self.views
            .iter()
            .filter(|v| !v.state.reachable())
            .map(|v| format!("{}: {}", v.state.host(), v.state.failure_words()))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub(super) fn why_none_takes(&self, drv: &Derivation) -> String {
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

impl Walk<'_> {
    /// A sentence listing where the substituted paths come from, largest source first.
    pub(super) fn sources_sentence(&self, builders: &BuilderViews<'_>) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, decision) in &self.entries {
            let from = match decision {
                Decision::Cache(uri) => *uri,
                Decision::BuilderSubstitute(id) | Decision::CopyBack(id) => builders.host_of(*id),
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

    pub(super) fn substitute_reason(&self, builders: &BuilderViews<'_>) -> String {
        format!(
            "nothing needs building: {}",
            self.sources_sentence(builders)
        )
    }
}

pub(super) fn remote_reason(
    to_build: &[&Derivation],
    chosen: &HashMap<&StorePath, &Builder>,
    builders: &BuilderViews<'_>,
) -> String {
    let used: BTreeSet<usize> = chosen
        .values()
        .filter_map(|b| builders.get(b.id).map(|v| v.order))
        .collect();
    let hosts: Vec<String> = used
        .iter()
        .map(|i| builders.views[*i].state.host().to_owned())
        .collect();
    let verb = if hosts.len() == 1 { "is" } else { "are" };
    // A builder nobody could check (not verified, its sshd not seen) is only configured.
    let checked = used.iter().all(|i| {
        let state = builders.views[*i].state;
        state.verified() || state.alive() == Some(true)
    });
    let stage = if checked { "reachable" } else { "configured" };
    let mut reason = format!(
        "{} must be built and {} {verb} {stage}",
        derivations(to_build.len()),
        join_and(&hosts)
    );
    let here = to_build.len() - chosen.len();
    if here > 0 {
        reason.push_str(&format!(" ({here} of them will build here)"));
    }
    reason
}

pub(super) fn local_reason(
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
        // A builder left out (this machine, or one that would pass builds back) answered: it
        // is not unreachable, it is not to be used.
        let left_out = builders.views.iter().all(|v| {
            matches!(
                v.state.failure(),
                Some(
                    crate::probe::ProbeFailure::ThisMachine
                        | crate::probe::ProbeFailure::ForwardsBack(_)
                )
            )
        });
        let state = if left_out { "unusable" } else { "unreachable" };
        format!("{what} must be built and {none} {state} ({why})")
    }
}

pub(super) fn derivations(n: usize) -> String {
    match n {
        1 => "1 derivation".into(),
        n => format!("{n} derivations"),
    }
}

/// `system` or `system with features a,b`.
pub(super) fn system_and_features(drv: &Derivation) -> String {
    if drv.required_features.is_empty() {
        drv.system.clone()
    } else {
        format!("{} with {}", drv.system, drv.required_features.join(","))
    }
}

/// The first two names, and how many more.
pub(super) fn some_names(drvs: &[&Derivation]) -> String {
    let names: Vec<&str> = drvs.iter().take(2).map(|d| d.path.display_name()).collect();
    match drvs.len() {
        0..=2 => join_and(&names),
        n => format!("{}, {} and {} more", names[0], names[1], n - 2),
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(super) fn join_and<S: AsRef<str>>(items: &[S]) -> String {
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
