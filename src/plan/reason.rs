//! The English of the plan: its one-sentence reasons and why a builder does not take a
//! derivation. Every word a user reads about a plan's decision is written here.

use super::eligibility::{BuilderView, BuilderViews};
use super::graph::Derivation;
use super::walk::{Decision, Walk};
use super::{builds_locally_anyway, Daemon, Mode, Plan};
use crate::builder::Builder;
use crate::machines::FeatureMismatch;
use crate::store_path::StorePath;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The reason of every noop plan (also the noop check's, [`crate::run::noop`]).
pub const NOOP_REASON: &str = "everything is already in the local store";

/// What nix's `--fallback` adds to a plan that substitutes everything.
pub(super) const NIX_FALLBACK: &str =
    "; with --fallback, nix builds whatever a source fails to give";

/// `-j 0` with `--mode local` ([`super::Forced::under_nix_flags`]).
pub(super) const NO_LOCAL_JOBS_BUT_LOCAL: &str =
    "-j 0 builds nothing here, and --mode local builds only here: drop one of them";

/// `--mode remote` with no builder configured.
pub(super) const REMOTE_WITHOUT_BUILDERS: &str =
    "--mode remote, but no builders are configured: add one with --builder or nix's builders setting";

/// `--mode substitute` when something must be built.
pub(super) fn cannot_substitute(to_build: &[&Derivation]) -> String {
    format!(
        "--mode substitute, but {} must be built ({}): no cache or builder has {}",
        derivations(to_build.len()),
        some_names(to_build),
        if to_build.len() == 1 { "it" } else { "them" },
    )
}

/// The reason of a plan that finishes the run here after `why` (a builder went away).
pub(super) fn fell_back(why: &str) -> String {
    format!("{why}, so the rest is built locally")
}

/// Who really decides, when a nix daemon runs the builds: the daemon when it does not trust
/// us, nix when a builder could not be verified as the daemon will reach it. Empty when
/// nixdispatch's plan stands.
pub(super) fn daemon_words(plan: &Plan, builders: &[Builder], daemon: Daemon) -> String {
    let mut words = String::new();
    let uses_builders = matches!(plan.mode, Mode::Remote | Mode::Substitute);
    let unverified: Vec<&str> = builders
        .iter()
        .filter(|b| b.unverified().is_some() && b.alive() == Some(true))
        .map(|b| b.host())
        .collect();
    let unchecked: Vec<&str> = builders
        .iter()
        .filter(|b| b.unverified().is_some() && b.alive() != Some(true))
        .map(|b| b.host())
        .collect();
    if daemon.decides && plan.mode != Mode::Noop {
        words.push_str(
            "; the nix daemon decides: it does not trust you, so it uses its own builders and \
             substituters whatever is passed (trusted-users)",
        );
    }
    if uses_builders && !unverified.is_empty() {
        let verb = if unverified.len() == 1 { "is" } else { "are" };
        words.push_str(&format!(
            "; {} {verb} alive but not verified: the nix daemon connects as root with root's key, \
             which nixdispatch cannot use, so nix decides",
            unverified.join(", ")
        ));
    }
    if uses_builders && !unchecked.is_empty() {
        let verb = if unchecked.len() == 1 { "was" } else { "were" };
        words.push_str(&format!(
            "; {} {verb} not checked (nixdispatch could reach neither its sshd nor root's ssh): \
             nix decides",
            unchecked.join(", ")
        ));
    }
    words
}

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

    /// `--mode remote` when no reachable builder takes `drv`.
    pub(super) fn cannot_build_remotely(&self, drv: &Derivation) -> String {
        format!(
            "--mode remote, but no reachable builder can build {}: {}",
            system_and_features(drv),
            self.why_none_takes(drv)
        )
    }

    /// `--mode remote` when no builder is reachable.
    pub(super) fn none_reachable(&self) -> String {
        format!(
            "--mode remote, but no builder is reachable ({})",
            self.why_unreachable()
        )
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

    /// The reason of a `--mode local` plan.
    pub(super) fn forced_local_reason(
        &self,
        to_build: &[&Derivation],
        builders: &BuilderViews<'_>,
    ) -> String {
        if to_build.is_empty() {
            format!(
                "--mode local: nothing needs building; {}",
                self.sources_sentence(builders)
            )
        } else {
            format!(
                "--mode local: {} will be built here",
                derivations(to_build.len())
            )
        }
    }

    /// The reason of a `--mode remote` plan.
    pub(super) fn forced_remote_reason(
        &self,
        to_build: &[&Derivation],
        chosen: &HashMap<&StorePath, &Builder>,
        builders: &BuilderViews<'_>,
    ) -> String {
        if to_build.is_empty() {
            format!(
                "--mode remote: nothing needs building; {}",
                self.sources_sentence(builders)
            )
        } else {
            format!(
                "--mode remote: {}",
                remote_reason(to_build, chosen, builders)
            )
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

/// `through a and b`: the builders a remote plan uses.
pub(super) fn through(hosts: &[&str]) -> String {
    format!("through {}", join_and(hosts))
}

/// One candidate's estimate in words: `about 12 s here (… to copy back …)`.
pub(super) fn estimate_why(costed: &super::cost::Costed, what: &str) -> String {
    format!(
        "{} {what}{}",
        super::cost::about(costed.secs),
        copy_clause(costed)
    )
}

/// The reason of a local plan chosen because it is clearly faster than the builders.
pub(super) fn cheaper_here(
    to_build: usize,
    local: &super::cost::Costed,
    remote: &super::cost::Costed,
    through: &str,
) -> String {
    format!(
        "{} must be built: {} here against {} {through}{}",
        derivations(to_build),
        super::cost::about(local.secs),
        super::cost::about(remote.secs),
        copy_clause(remote),
    )
}

/// What a remote plan's reason adds when a history was weighed and the builders stay.
pub(super) fn remote_against_here(
    remote: &super::cost::Costed,
    local: &super::cost::Costed,
    through: &str,
) -> String {
    format!(
        "{} {through} against {} here",
        super::cost::about(remote.secs),
        super::cost::about(local.secs)
    )
}

/// ` (12.0 MB to copy back at 1.0 MB/s)`, or nothing when nothing is copied.
fn copy_clause(costed: &super::cost::Costed) -> String {
    super::cost::copy_words(costed).map_or(String::new(), |w| format!(" ({w})"))
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
