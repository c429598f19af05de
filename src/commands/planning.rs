//! The front half shared by `plan`, `build`, `home` and `os`: evaluate, look at the local store,
//! and only when something is missing, probe the builders and ask every source.

use crate::nix::installables::expand_attribute_sets;
use crate::plan::{self, Availability, BuilderState, Plan, PlanInput};
use crate::probe::{self, BuilderStatus, ProbedBuilder};
use crate::settings::Settings;
use crate::sources;
use crate::Result;
use serde::Serialize;
use std::ffi::OsString;

fn input_wanted(graph: &plan::Graph) -> Vec<crate::store_path::StorePath> {
    graph.wanted.clone()
}

/// A plan and what it was made from.
pub struct Planned {
    /// The decision.
    pub plan: Plan,
    /// Every configured builder as probed (empty when nothing was missing: no SSH at all).
    pub builders: Vec<ProbedBuilder>,
    /// The builders as the planner saw them (dispatch reads these).
    pub states: Vec<BuilderState>,
    /// Sources that could not be asked.
    pub warnings: Vec<String>,
    /// The installables as built: attribute sets opened into their members.
    pub installables: Vec<String>,
    /// The systems of the derivations involved (for pushing to builders that fit).
    pub systems: std::collections::BTreeSet<String>,
    /// The top-level outputs the run realises.
    pub wanted: Vec<crate::store_path::StorePath>,
}

/// `plan --json`, exactly CONTRACT.md's shape.
#[derive(Serialize)]
pub struct PlanReport<'a> {
    mode: plan::Mode,
    reason: &'a str,
    builders: Vec<&'a BuilderStatus>,
    counts: &'a plan::Counts,
    paths: &'a [plan::PlannedPath],
    /// Sources that could not be asked, paths a cache holds that nix would refuse, settings
    /// nix will ignore: one line each.
    warnings: &'a [String],
}

impl Planned {
    /// The contract's JSON view.
    pub fn report(&self) -> PlanReport<'_> {
        PlanReport {
            mode: self.plan.mode,
            reason: &self.plan.reason,
            builders: self.builders.iter().map(|b| &b.status).collect(),
            counts: &self.plan.counts,
            paths: &self.plan.paths,
            warnings: &self.warnings,
        }
    }

    /// The machines of the reachable builders, for nix's `builders` setting.
    pub fn live_builders(&self) -> Vec<crate::machines::Machine> {
        self.builders
            .iter()
            .filter(|b| b.status.reachable)
            .map(|b| b.machine.clone())
            .collect()
    }
}

/// How to evaluate and what to plan for, beyond the installables: `nix build`'s flags.
#[derive(Debug, Clone, Copy, Default)]
pub struct Evaluation<'a> {
    /// nix's evaluation flags as typed (`-f`, `--expr`, `--arg`, `--override-input`, ...).
    pub eval_args: &'a [OsString],
    /// `--rebuild`: the installables' own derivations are built again, valid or not.
    pub rebuild: bool,
}

/// Evaluates the installables and decides where every missing path comes from.
pub async fn make_plan(settings: &Settings, installables: &[String]) -> Result<Planned> {
    make_plan_with(settings, installables, Evaluation::default()).await
}

/// [`make_plan`] with `nix build`'s flags. An installable that is an attribute set of
/// derivations is opened into its members ([`Planned::installables`]).
pub async fn make_plan_with(
    settings: &Settings,
    installables: &[String],
    how: Evaluation<'_>,
) -> Result<Planned> {
    let mut installables = installables.to_vec();
    let mut notes = Vec::new();
    let graph = match settings
        .nix
        .derivation_graph_with(&installables, how.eval_args)
        .await
    {
        Ok(graph) => graph,
        Err(err) => {
            // Only when nix cannot show them: opening attribute sets costs an evaluation.
            match expand_attribute_sets(&settings.nix, &installables, how.eval_args).await? {
                Some((members, skipped)) if !members.is_empty() => {
                    installables = members;
                    notes = skipped;
                    settings
                        .nix
                        .derivation_graph_with(&installables, how.eval_args)
                        .await?
                }
                _ => return Err(err),
            }
        }
    };
    let systems = graph
        .derivations
        .values()
        .map(|d| d.system.clone())
        .filter(|s| !s.is_empty())
        .collect();
    let mut planned = plan_graph(settings, &installables, graph, how.rebuild).await?;
    planned.installables = installables;
    planned.systems = systems;
    planned.warnings.extend(notes);
    Ok(planned)
}

async fn plan_graph(
    settings: &Settings,
    installables: &[String],
    graph: plan::Graph,
    rebuild: bool,
) -> Result<Planned> {
    let mut wanted_valid = sources::local::valid_paths(&settings.nix, &graph.wanted).await?;
    if rebuild {
        // Valid or not, the installables themselves are built again.
        wanted_valid.clear();
    }
    let (availability, builders, warnings) = if wanted_valid.len() == graph.wanted.len() {
        // Everything is here: no probe, no SSH connection, no cache query.
        let availability = Availability {
            valid_locally: wanted_valid,
            ..Default::default()
        };
        (availability, Vec::new(), Vec::new())
    } else {
        let builders = if settings.forced == plan::Forced::Local {
            Vec::new()
        } else {
            let mut probed = probe::probe_all(
                &settings.builders,
                settings.connect_timeout,
                &settings.ssh_opts,
            )
            .await;
            // A builder our ssh reached but this nix cannot talk to (a port in the URI before
            // 2.31) is not reachable for nix. One that did not answer keeps the probe's reason.
            for b in probed.iter_mut().filter(|b| b.status.reachable) {
                if let Some(why) = settings.nix.cannot_use_builder(&b.machine) {
                    b.status.reachable = false;
                    b.status.error = Some(why);
                    b.connection = None;
                }
            }
            probed
        };
        let untrusted =
            crate::nix::is_daemon_client() && settings.nix.local_trust().await == Some(false);
        // The substituters and keys nix will really use: the flake's nixConfig, the daemon's say.
        let (nix_config, notes) = sources::substituters::effective(
            &settings.nix,
            &settings.nix_config,
            installables,
            untrusted,
        )
        .await;
        let (mut availability, mut warnings) =
            sources::gather(&settings.nix, &nix_config, &graph, &builders).await?;
        warnings.extend(notes);
        if rebuild {
            for wanted in &graph.wanted {
                availability.valid_locally.remove(wanted);
                availability.in_caches.remove(wanted);
                availability.on_builders.remove(wanted);
            }
        }
        if untrusted {
            warnings.push(
                "the nix daemon does not trust you, so it ignores the builders and substituters \
                 nixdispatch passes and uses its own: add yourself to trusted-users \
                 (nix.settings.trusted-users on NixOS)"
                    .to_owned(),
            );
        }
        (availability, builders, warnings)
    };
    let wanted = input_wanted(&graph);
    let input = PlanInput {
        graph,
        availability,
        builders: builders.iter().map(builder_state).collect(),
        forced: settings.forced,
        local_system: settings.nix_config.system.clone(),
    };
    let plan = plan::plan(&input)?;
    Ok(Planned {
        plan,
        builders,
        states: input.builders,
        warnings,
        installables: Vec::new(),
        systems: Default::default(),
        wanted,
    })
}

fn builder_state(b: &ProbedBuilder) -> BuilderState {
    BuilderState {
        uri: b.status.uri.clone(),
        host: b.status.host.clone(),
        machine: b.machine.clone(),
        reachable: b.status.reachable,
        error: b.status.error.clone(),
        systems: b.status.systems.clone(),
    }
}
