//! The front half shared by `plan`, `build`, `home` and `os`: evaluate, look at the local store,
//! and only when something is missing, probe the builders and ask every source.

use crate::builder::Builder;
use crate::nix::installables::expand_attribute_sets;
use crate::plan::{self, Availability, Plan, PlanInput};
use crate::probe;
use crate::settings::{DaemonClient, Settings};
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
    /// Every configured builder as probed and planned with (empty when nothing was missing:
    /// no SSH at all); dispatch reads these.
    pub builders: Vec<Builder>,
    /// Sources that could not be asked.
    pub warnings: Vec<String>,
    /// The installables as built: attribute sets opened into their members.
    pub installables: Vec<String>,
    /// The systems of the derivations involved (for pushing to builders that fit).
    pub systems: std::collections::BTreeSet<String>,
    /// The top-level outputs the run realises.
    pub wanted: Vec<crate::store_path::StorePath>,
    /// The same outputs as `DRV^OUT,...` installables for a build session on a builder
    /// ([`crate::session`]); empty when one cannot be named safely.
    pub session_installables: Vec<String>,
}

/// `plan --json`, exactly CONTRACT.md's shape.
#[derive(Serialize)]
pub struct PlanReport<'a> {
    mode: plan::Mode,
    reason: &'a str,
    builders: &'a [Builder],
    counts: &'a plan::Counts,
    paths: &'a [plan::PlannedPath],
    /// Sources that could not be asked, paths a cache holds that nix would refuse, settings
    /// nix will ignore: one line each.
    warnings: &'a [String],
    /// What each candidate mode would take, when the history was consulted.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    estimates: &'a [plan::Estimate],
}

impl Planned {
    /// The contract's JSON view.
    pub fn report(&self) -> PlanReport<'_> {
        PlanReport {
            mode: self.plan.mode,
            reason: &self.plan.reason,
            builders: &self.builders,
            counts: &self.plan.counts,
            paths: &self.plan.paths,
            warnings: &self.warnings,
            estimates: &self.plan.estimates,
        }
    }

    /// The machines of the reachable builders, for nix's `builders` setting.
    pub fn live_builders(&self) -> Vec<crate::machines::Machine> {
        self.builders
            .iter()
            .filter(|b| b.reachable)
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
    /// The noop check found something missing ([`crate::run::noop`]): the builders are probed
    /// while nix evaluates, and the local store is asked once.
    pub missing: bool,
}

/// The plan of a run the noop check found to be a noop, and built ([`crate::run::noop`]).
pub fn noop_planned(
    settings: &Settings,
    installables: &[String],
    done: &crate::run::noop::Done,
) -> Planned {
    let outputs = crate::nix::build_json::out_paths(&done.stdout).len();
    Planned {
        plan: crate::run::noop::noop_plan(outputs, settings),
        builders: Vec::new(),
        warnings: ignored_builder_warning(settings).into_iter().collect(),
        installables: installables.to_vec(),
        systems: Default::default(),
        wanted: Vec::new(),
        session_installables: Vec::new(),
    }
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
    let asked = installables;
    let mut installables = installables.to_vec();
    let mut notes = Vec::new();
    let evaluate = async {
        match settings
            .nix
            .derivation_graph_with(&installables, how.eval_args)
            .await
        {
            Ok(graph) => Ok(graph),
            Err(err) => {
                // Only when nix cannot show them: opening attribute sets costs an evaluation.
                match expand_attribute_sets(&settings.nix, &installables, how.eval_args).await? {
                    Some((members, skipped)) if !members.is_empty() => {
                        let graph = settings
                            .nix
                            .derivation_graph_with(&members, how.eval_args)
                            .await?;
                        installables = members;
                        notes = skipped;
                        Ok(graph)
                    }
                    _ => Err(err),
                }
            }
        }
    };
    // Known to miss something (crate::run::noop): the probe's handshakes and the flake's
    // substitution settings need not wait for the evaluation.
    let ahead = async {
        if how.missing {
            let (builders, substitution) = futures::join!(
                probe_builders(settings),
                // Opened attribute sets name the same flakes.
                effective_substitution(settings, asked)
            );
            Some(Ahead {
                builders,
                substitution,
            })
        } else {
            None
        }
    };
    let (graph, ahead) = futures::join!(evaluate, ahead);
    let graph: plan::Graph = graph?;
    let systems = graph
        .derivations
        .values()
        .map(|d| d.system.clone())
        .filter(|s| !s.is_empty())
        .collect();
    let mut planned = plan_graph(settings, &installables, graph, how.rebuild, ahead).await?;
    planned.installables = installables;
    planned.systems = systems;
    planned.warnings.extend(notes);
    Ok(planned)
}

/// What is asked while nix evaluates, once the run is known to miss something.
struct Ahead {
    builders: Vec<Builder>,
    substitution: (crate::nix::config::NixConfig, Vec<String>),
}

/// The substituters and keys nix will really use: the flake's nixConfig, the daemon's say.
async fn effective_substitution(
    settings: &Settings,
    installables: &[String],
) -> (crate::nix::config::NixConfig, Vec<String>) {
    // The daemon's answer to `nix store ping`, read once in Settings.
    let untrusted = settings.daemon.as_ref().is_some_and(|d| d.decides());
    sources::substituters::effective(&settings.nix, &settings.nix_config, installables, untrusted)
        .await
}

/// Every configured builder, probed (none with `--mode local`).
async fn probe_builders(settings: &Settings) -> Vec<Builder> {
    if settings.forced == plan::Forced::Local {
        return Vec::new();
    }
    // A daemon that trusts us is asked what each builder holds (`ask_through_daemon`), which
    // checks root's ssh too.
    let mut probed = probe::probe_for(settings, &settings.builders, true).await;
    // A builder our ssh reached but this nix cannot talk to (a port in the URI before
    // 2.31) is not reachable for nix. One that did not answer keeps the probe's reason.
    for b in probed.iter_mut().filter(|b| b.reachable) {
        if let Some(why) = settings.nix.cannot_use_builder(&b.machine) {
            b.reachable = false;
            b.failure = Some(probe::ProbeFailure::NixCannotUse(why));
            b.connection = None;
        }
    }
    probed
}

async fn plan_graph(
    settings: &Settings,
    installables: &[String],
    graph: plan::Graph,
    rebuild: bool,
    ahead: Option<Ahead>,
) -> Result<Planned> {
    let mut wanted_valid = if ahead.is_some() {
        // The noop check found something missing: the local store is asked once, below.
        Default::default()
    } else {
        sources::local::valid_paths(&settings.nix, &graph.wanted).await?
    };
    if rebuild {
        // Valid or not, the installables themselves are built again.
        wanted_valid.clear();
    }
    let (availability, builders, warnings) =
        if ahead.is_none() && wanted_valid.len() == graph.wanted.len() {
            // Everything is here: no probe, no SSH connection, no cache query.
            let availability = Availability {
                valid_locally: wanted_valid,
                ..Default::default()
            };
            (availability, Vec::new(), Vec::new())
        } else {
            let untrusted = settings.daemon.as_ref().is_some_and(|d| d.decides());
            // The probe's handshakes and the flake's settings (a nix call or two) at once.
            let (mut builders, (nix_config, notes)) = match ahead {
                Some(ahead) => (ahead.builders, ahead.substitution),
                None => {
                    futures::join!(
                        probe_builders(settings),
                        effective_substitution(settings, installables)
                    )
                }
            };
            let (mut availability, mut warnings) =
                sources::gather(&settings.nix, &nix_config, &graph, &builders).await?;
            warnings.extend(notes);
            if settings
                .daemon
                .as_ref()
                .is_some_and(|d| d.trusted == Some(true))
            {
                ask_through_daemon(settings, &graph, &mut builders, &mut availability).await;
            }
            if rebuild {
                for wanted in &graph.wanted {
                    availability.valid_locally.remove(wanted);
                    availability.in_caches.remove(wanted);
                    availability.on_builders.remove(wanted);
                }
            }
            if untrusted {
                // The daemon ignores builders-use-substitutes and extra substituters from us: a
                // builder's store can only serve what its build hook copies back. The plan's reason
                // says the daemon decides (`explain_daemon`).
                for hits in availability.on_builders.values_mut() {
                    for hit in hits {
                        hit.substitutable = false;
                    }
                }
            }
            (availability, builders, warnings)
        };
    let mut warnings = warnings;
    if let Some(w) = ignored_builder_warning(settings) {
        warnings.insert(0, w);
    }
    let wanted = input_wanted(&graph);
    let session_installables = session_installables(&graph);
    let input = PlanInput {
        graph,
        availability,
        builders,
        forced: settings.forced,
        local_system: settings.nix_config.system.clone(),
        knowledge: Default::default(),
    };
    let mut plan = plan::plan(&input)?;
    explain_daemon(&mut plan, &input.builders, settings.daemon.as_ref());
    Ok(Planned {
        plan,
        builders: input.builders,
        warnings,
        installables: Vec::new(),
        systems: Default::default(),
        wanted,
        session_installables,
    })
}

/// The wanted outputs as `DRV^OUT,...` installables, one per derivation; empty when one of
/// them has no producer in the graph or cannot be passed to a builder's shell.
fn session_installables(graph: &plan::Graph) -> Vec<String> {
    let index = graph.output_index();
    let mut by_drv: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for out in &graph.wanted {
        let Some((drv, name)) = index.producer(out) else {
            return Vec::new();
        };
        by_drv
            .entry(drv.path.as_str())
            .or_default()
            .push(name.to_owned());
    }
    let mut all = Vec::new();
    for (drv, outputs) in by_drv {
        match crate::session::remote::drv_installable(drv, &outputs) {
            Ok(i) => all.push(i),
            Err(_) => return Vec::new(),
        }
    }
    all
}

/// For builders verified by the daemon but out of our own ssh's reach: the daemon, with root's
/// ssh, says what their stores hold (the build hook copies such outputs back, unbuilt). The
/// same answer settles a check of root's ssh the probe left to it
/// ([`Builder::root_check_pending`]): a builder root's ssh cannot reach is taken out here.
async fn ask_through_daemon(
    settings: &Settings,
    graph: &plan::Graph,
    builders: &mut [Builder],
    availability: &mut Availability,
) {
    let missing: Vec<crate::store_path::StorePath> = sources::graph_paths(graph)
        .into_iter()
        .filter(|p| !availability.valid_locally.contains(p))
        .collect();
    let limit = settings.deadlines().through_daemon;
    let missing = &missing;
    let asks = builders
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            b.reachable && b.verified && (b.connection.is_none() || b.root_check_pending)
        })
        .map(|(i, b)| async move {
            let held = probe::through_daemon::held(&b.machine, missing, limit).await;
            (i, held)
        });
    let answers = futures::future::join_all(asks).await;
    for (i, held) in answers {
        let b = &mut builders[i];
        let pending = std::mem::take(&mut b.root_check_pending);
        let held = match held {
            Ok(held) => {
                if pending {
                    b.alive = Some(true);
                }
                held
            }
            Err(reason) => {
                if pending {
                    b.reachable = false;
                    b.failure = Some(probe::ProbeFailure::RootSsh(reason));
                    b.connection = None;
                }
                continue;
            }
        };
        if b.connection.is_some() {
            // Our own ssh already said what its store holds (`sources::gather`).
            continue;
        }
        for path in held {
            let Ok(path) = crate::store_path::StorePath::parse(&path) else {
                continue;
            };
            let hits = availability.on_builders.entry(path).or_default();
            if !hits.iter().any(|h| h.builder == b.id) {
                hits.push(plan::BuilderHit {
                    builder: b.id,
                    references: Vec::new(),
                    substitutable: false,
                });
            }
        }
    }
}

/// [`IGNORED_BUILDER`], when `--builder` was given to a daemon that ignores it.
fn ignored_builder_warning(settings: &Settings) -> Option<String> {
    settings
        .daemon
        .as_ref()
        .is_some_and(|d| d.ignored_cli_builders)
        .then(|| IGNORED_BUILDER.to_owned())
}

/// The warning for `--builder` given to an untrusted daemon client.
pub const IGNORED_BUILDER: &str = "--builder has no effect: the nix daemon does not trust you, so \
it ignores per-run builders and uses its own (nix's builders setting, planned with here); add \
yourself to trusted-users (nix.settings.trusted-users on NixOS) to choose builders per run";

/// Says in the plan's reason who really decides: the nix daemon when it does not trust us, nix
/// when a builder could not be verified as the daemon will reach it. Marks the plan so that
/// dispatch passes nothing the daemon would ignore.
pub fn explain_daemon(plan: &mut Plan, states: &[Builder], daemon: Option<&DaemonClient>) {
    let Some(daemon) = daemon else { return };
    let uses_builders = matches!(plan.mode, plan::Mode::Remote | plan::Mode::Substitute);
    let unverified: Vec<&str> = states
        .iter()
        .filter(|s| s.unverified().is_some())
        .map(|s| s.host())
        .collect();
    if daemon.decides() {
        plan.daemon_decides = true;
        if plan.mode != plan::Mode::Noop {
            plan.reason.push_str(
                "; the nix daemon decides: it does not trust you, so it uses its own builders and \
                 substituters whatever is passed (trusted-users)",
            );
        }
    }
    if uses_builders && !unverified.is_empty() {
        let verb = if unverified.len() == 1 { "is" } else { "are" };
        plan.reason.push_str(&format!(
            "; {} {verb} alive but not verified: the nix daemon connects as root with root's key, \
             which nixdispatch cannot use, so nix decides",
            unverified.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machines::parse_machines;
    use crate::plan::{Counts, Mode};

    fn state(unverified: bool) -> Builder {
        let mut none = |_: &std::path::Path| None;
        let machine = parse_machines("ssh-ng://root@seasmoke x86_64-linux", "test", &mut none)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let mut b = Builder::declared(
            crate::builder::BuilderId(0),
            machine,
            crate::probe::Identity::Own("test".into()),
        );
        b.reachable = true;
        b.verified = !unverified;
        b.note = unverified.then(|| "alive; not verified".to_owned());
        b.systems = Vec::new();
        b
    }

    fn plan(mode: Mode) -> Plan {
        Plan {
            mode,
            reason: "1 derivation must be built and seasmoke is reachable".into(),
            counts: Counts::default(),
            paths: Vec::new(),
            builds: Vec::new(),
            builder_substituters: Vec::new(),
            daemon_decides: false,
            estimates: Vec::new(),
        }
    }

    #[test]
    fn a_single_user_plan_is_left_alone() {
        let mut p = plan(Mode::Remote);
        explain_daemon(&mut p, &[state(true)], None);
        assert_eq!(p, plan(Mode::Remote));
    }

    #[test]
    fn an_unverified_builder_leaves_the_choice_to_nix_and_says_so() {
        let mut p = plan(Mode::Remote);
        let daemon = DaemonClient {
            trusted: Some(true),
            ignored_cli_builders: false,
        };
        explain_daemon(&mut p, &[state(true)], Some(&daemon));
        assert!(!p.daemon_decides);
        assert!(
            p.reason.contains("seasmoke is alive but not verified"),
            "{}",
            p.reason
        );
        assert!(p.reason.contains("nix decides"), "{}", p.reason);
    }

    #[test]
    fn an_untrusted_user_is_told_the_daemon_decides() {
        let mut p = plan(Mode::Remote);
        let daemon = DaemonClient {
            trusted: Some(false),
            ignored_cli_builders: true,
        };
        explain_daemon(&mut p, &[state(false)], Some(&daemon));
        assert!(p.daemon_decides);
        assert!(p.reason.contains("the nix daemon decides"), "{}", p.reason);
        assert!(!p.reason.contains("not verified"), "{}", p.reason);
    }
}
