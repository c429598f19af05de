//! The front half shared by `plan`, `build`, `home` and `os`: evaluate, look at the local store,
//! and only when something is missing, probe the builders and ask every source. It gathers;
//! [`crate::plan`] decides.
//!
//! Beside it: `through_daemon` (a trusting daemon asked, with root's ssh, what each builder
//! holds), `warnings` (dead caches left out, builders that loop back here, `--builder` a
//! daemon ignores).

use crate::builder::Builder;
use crate::nix::installables::expand_attribute_sets;
use crate::plan::{self, Availability, Plan, PlanInput};
use crate::probe;
use crate::settings::Settings;
use crate::sources;
use crate::Result;
use serde::Serialize;
use std::ffi::OsString;

mod through_daemon;
mod warnings;

pub use warnings::{ignored_builder, MAYBE_IGNORED_BUILDER};

fn input_wanted(graph: &plan::Graph) -> Vec<crate::store_path::StorePath> {
    graph.wanted.clone()
}

/// A plan and what it was made from.
pub struct Planned {
    /// The decision.
    pub plan: Plan,
    /// What it was decided from: every configured builder as probed (empty when nothing was
    /// missing: no SSH at all), the derivations behind the outputs (empty when the noop check
    /// answered), where paths are. A fallback is planned again from it.
    pub input: PlanInput,
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
    /// The NAR size of each path the plan copies from a cache or a builder, where the source
    /// said: the total of a copy whose progress nix does not report (2.8 over ssh-ng).
    pub nar_sizes: std::collections::BTreeMap<String, u64>,
    /// The history, when the planner read it (something was missing, `--mode auto`): read
    /// once per run, then handed to the display for its expected times.
    pub history: Option<std::sync::Arc<crate::history::History>>,
    /// The one warning for a history that could not be read.
    pub history_warning: Option<String>,
    /// The sessions on the builders, asked during the store queries when the run builds
    /// ([`Evaluation::builds`]).
    pub sessions: crate::session::Lookahead,
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
}

impl Planned {
    /// Every configured builder as probed and planned with (empty when nothing was missing);
    /// dispatch reads these.
    pub fn builders(&self) -> &[Builder] {
        &self.input.builders
    }

    /// The plan that finishes the run here after `why` (a builder went away mid-run): the
    /// planner again, told so.
    pub fn fall_back(&self, why: &str) -> Result<Plan> {
        let input = PlanInput {
            fell_back: Some(why.to_owned()),
            ..self.input.clone()
        };
        Ok(plan::plan(&input)?)
    }

    /// The contract's JSON view.
    pub fn report(&self) -> PlanReport<'_> {
        PlanReport {
            mode: self.plan.mode,
            reason: &self.plan.reason,
            builders: self.builders(),
            counts: &self.plan.counts,
            paths: &self.plan.paths,
            warnings: &self.warnings,
        }
    }

    /// How many jobs `host` runs at once: a builder's `maxJobs`, or for `local` nix's
    /// `max-jobs` (`auto`: the CPUs); at least 1.
    pub fn job_slots(&self, host: &str, local_max_jobs: &str) -> usize {
        if host == "local" {
            return local_job_slots(local_max_jobs);
        }
        self.builders()
            .iter()
            .find(|b| b.machine.uri == host)
            .map_or(1, |b| (b.machine.max_jobs as usize).max(1))
    }

    /// The estimate of this plan's steps from `history` ([`crate::history::RunEstimate`]).
    pub fn run_estimate(
        &self,
        history: &crate::history::History,
        local_max_jobs: &str,
    ) -> crate::history::RunEstimate {
        crate::history::RunEstimate::for_plan(&self.plan, &self.input.graph, history, |host| {
            self.job_slots(host, local_max_jobs)
        })
    }

    /// The machines of the reachable builders, for nix's `builders` setting.
    pub fn live_builders(&self) -> Vec<crate::machines::Machine> {
        self.builders()
            .iter()
            .filter(|b| b.reachable())
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
    /// nix's `--fallback` (the plan's reason says what it does).
    pub fallback: bool,
    /// The plan is built (not only shown): the builders' sessions are listed during the store
    /// queries ([`Planned::sessions`]).
    pub builds: bool,
}

/// The nix daemon that runs our builds, as the plan needs it (its trust, read once in
/// Settings).
fn daemon(settings: &Settings) -> Option<plan::Daemon> {
    settings.daemon().map(|d| plan::Daemon {
        decides: d.decides(),
    })
}

/// The input of a plan the noop check answered: `outputs` outputs, all valid.
fn checked_noop(settings: &Settings, outputs: usize) -> PlanInput {
    PlanInput {
        local_system: settings.nix_config().system.clone(),
        daemon: daemon(settings),
        checked_noop: Some(outputs),
        ..PlanInput::default()
    }
}

/// The plan of a noop with `outputs` outputs (the noop check's own invocation is this plan's).
pub fn noop_plan(settings: &Settings, outputs: usize) -> Result<Plan> {
    Ok(plan::plan(&checked_noop(settings, outputs))?)
}

/// The plan of a run the noop check found to be a noop, and built with `outputs` outputs
/// (`crate::run::noop`).
pub fn noop_planned(
    settings: &Settings,
    installables: &[String],
    outputs: usize,
) -> Result<Planned> {
    let input = checked_noop(settings, outputs);
    Ok(Planned {
        plan: plan::plan(&input)?,
        input,
        warnings: warnings::ignored_builder_warning(settings)
            .into_iter()
            .collect(),
        installables: installables.to_vec(),
        systems: Default::default(),
        wanted: Vec::new(),
        session_installables: Vec::new(),
        nar_sizes: Default::default(),
        history: None,
        history_warning: None,
        sessions: Default::default(),
    })
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
        let _phase = crate::timing::phase("evaluation");
        match settings
            .nix()
            .derivation_graph_with(&installables, how.eval_args)
            .await
        {
            Ok(graph) => Ok(graph),
            Err(err) => {
                // Only when nix cannot show them: opening attribute sets costs an evaluation.
                match expand_attribute_sets(settings.nix(), &installables, how.eval_args).await? {
                    Some((members, skipped)) if !members.is_empty() => {
                        let graph = settings
                            .nix()
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
            let (builders, (substitution, infos)) = futures::join!(
                crate::timing::timed("probe", probe_builders(settings)),
                // Opened attribute sets name the same flakes.
                crate::timing::timed("substituters", substitution_and_caches(settings, asked))
            );
            Some(Ahead {
                builders,
                substitution,
                infos,
                valid: None,
            })
        } else {
            None
        }
    };
    // The builders' holdings, asked of a trusting daemon as soon as the paths are known
    // (crate::early_holdings), while the probe still runs; and the local store's answer for
    // every path of the graph, which the store queries need once the probe is done.
    let evaluate = async {
        let graph: plan::Graph = evaluate.await?;
        let early = crate::early_holdings::EarlyHoldings::start(settings, &graph, how.missing);
        let valid = if how.missing {
            Some(all_valid(settings, &graph).await?)
        } else {
            None
        };
        Ok::<_, crate::Error>((graph, early, valid))
    };
    let (evaluated, ahead) = futures::join!(evaluate, ahead);
    let (graph, early, valid) = evaluated?;
    let systems = graph
        .derivations
        .values()
        .map(|d| d.system.clone())
        .filter(|s| !s.is_empty())
        .collect();
    let ahead = ahead.map(|mut a| {
        a.valid = valid;
        a
    });
    let mut planned = plan_graph(settings, &installables, graph, how, ahead, early).await?;
    planned.installables = installables;
    planned.systems = systems;
    planned.warnings.extend(notes);
    Ok(planned)
}

/// What is asked while nix evaluates, once the run is known to miss something.
struct Ahead {
    builders: Vec<Builder>,
    substitution: (crate::nix::config::NixConfig, Vec<String>),
    infos: sources::cache::CacheInfos,
    /// The local store's answer for every path of the graph, asked while the probe ran.
    valid: Option<std::collections::BTreeSet<crate::store_path::StorePath>>,
}

/// Which of the graph's paths ([`sources::graph_paths`]) are valid here.
async fn all_valid(
    settings: &Settings,
    graph: &plan::Graph,
) -> Result<std::collections::BTreeSet<crate::store_path::StorePath>> {
    crate::timing::timed(
        "local-validity",
        sources::local::valid_paths(settings.nix(), &sources::graph_paths(graph)),
    )
    .await
}

/// [`effective_substitution`], then each HTTP cache's `nix-cache-info` (while the builders
/// are probed and nix evaluates).
async fn substitution_and_caches(
    settings: &Settings,
    installables: &[String],
) -> (
    (crate::nix::config::NixConfig, Vec<String>),
    sources::cache::CacheInfos,
) {
    let substitution = effective_substitution(settings, installables).await;
    let infos = sources::cache::cache_infos(&substitution.0.substituters).await;
    (substitution, infos)
}

/// The substituters and keys nix will really use: the flake's nixConfig, the daemon's say.
async fn effective_substitution(
    settings: &Settings,
    installables: &[String],
) -> (crate::nix::config::NixConfig, Vec<String>) {
    // The daemon's answer to `nix store ping`, read once in Settings.
    let untrusted = settings.daemon().is_some_and(|d| d.decides());
    sources::substituters::effective(
        settings.nix(),
        settings.nix_config(),
        installables,
        untrusted,
    )
    .await
}

/// Every configured builder, probed (none with `--mode local`).
async fn probe_builders(settings: &Settings) -> Vec<Builder> {
    if settings.forced() == plan::Forced::Local {
        return Vec::new();
    }
    // A daemon that trusts us is asked what each builder holds (`ask_through_daemon`), which
    // checks root's ssh too.
    let mut probed = probe::probe_for(settings, settings.builders(), true).await;
    // A builder our ssh reached but this nix cannot talk to (a port in the URI before
    // 2.31) is not reachable for nix. One that did not answer keeps the probe's reason.
    for b in probed.iter_mut().filter(|b| b.reachable()) {
        if let Some(why) = settings.nix().cannot_use_builder(&b.machine) {
            b.leave_out(probe::ProbeFailure::NixCannotUse(why));
        }
    }
    probed
}

async fn plan_graph(
    settings: &Settings,
    installables: &[String],
    graph: plan::Graph,
    how: Evaluation<'_>,
    ahead: Option<Ahead>,
    mut early: crate::early_holdings::EarlyHoldings,
) -> Result<Planned> {
    let rebuild = how.rebuild;
    let mut wanted_valid = if ahead.is_some() {
        // The noop check found something missing: the local store is asked once, below.
        Default::default()
    } else {
        crate::timing::timed(
            "local-validity",
            sources::local::valid_paths(settings.nix(), &graph.wanted),
        )
        .await?
    };
    if rebuild {
        // Valid or not, the installables themselves are built again.
        wanted_valid.clear();
    }
    let mut substituters = None;
    let mut configured_substituters = Vec::new();
    let mut history = None;
    let mut sessions = crate::session::Lookahead::default();
    let (availability, builders, warnings) =
        if ahead.is_none() && wanted_valid.len() == graph.wanted.len() {
            // Everything is here: no probe, no SSH connection, no cache query.
            let availability = Availability {
                valid_locally: wanted_valid,
                ..Default::default()
            };
            (availability, Vec::new(), Vec::new())
        } else {
            // The probe's handshakes and the flake's settings (a nix call or two) at once;
            // the local store is asked about every path while the probe runs.
            let (mut builders, ((nix_config, notes), infos), valid) = match ahead {
                Some(ahead) => (
                    ahead.builders,
                    (ahead.substitution, ahead.infos),
                    ahead.valid,
                ),
                None => {
                    // Something is missing: a trusting daemon is asked what the builders
                    // hold while they are probed, as after the noop check.
                    early = crate::early_holdings::EarlyHoldings::start(settings, &graph, true);
                    let (builders, substitution, valid) = futures::join!(
                        crate::timing::timed("probe", probe_builders(settings)),
                        crate::timing::timed(
                            "substituters",
                            substitution_and_caches(settings, installables)
                        ),
                        all_valid(settings, &graph)
                    );
                    (builders, substitution, Some(valid?))
                }
            };
            if how.builds {
                sessions = crate::session::Lookahead::start(
                    builders
                        .iter()
                        .filter_map(|b| Some((b.machine.uri.as_ref(), b.connection()?))),
                );
            }
            let sources::Gathered {
                mut availability,
                mut warnings,
                dead_substituters,
            } = crate::timing::timed(
                "store-queries",
                sources::gather_with(
                    settings.nix(),
                    &nix_config,
                    &graph,
                    &builders,
                    &infos,
                    valid,
                ),
            )
            .await?;
            let (live, lines) = warnings::leave_out_dead(
                &nix_config.substituters,
                &settings.nix_config().substituters,
                &dead_substituters,
            );
            substituters = live;
            configured_substituters.clone_from(&nix_config.substituters);
            warnings.extend(lines);
            warnings.extend(builders.iter().filter_map(warnings::loop_warning));
            warnings.extend(notes);
            if settings.daemon().is_some_and(|d| d.trusted == Some(true)) {
                crate::timing::timed(
                    "holdings-through-daemon",
                    through_daemon::ask(
                        settings,
                        &graph,
                        &mut builders,
                        &mut availability,
                        &mut early,
                    ),
                )
                .await;
            }
            if rebuild {
                for wanted in &graph.wanted {
                    availability.valid_locally.remove(wanted);
                    availability.in_caches.remove(wanted);
                    availability.on_builders.remove(wanted);
                }
            }
            // What earlier runs took weighs the choice between here and the builders.
            if settings.forced() == plan::Forced::Auto {
                let _phase = crate::timing::phase("history-load");
                history = settings.state_dir().map(crate::history::load);
            }
            (availability, builders, warnings)
        };
    let mut warnings = warnings;
    if let Some(w) = warnings::ignored_builder_warning(settings) {
        warnings.insert(0, w);
    }
    let wanted = input_wanted(&graph);
    let session_installables = session_installables(&graph);
    let knowledge = history.as_ref().map_or_else(Default::default, |loaded| {
        let local_jobs = local_job_slots(&settings.nix_config().max_jobs) as u32;
        knowledge(
            &loaded.history,
            &graph,
            &availability,
            &builders,
            local_jobs,
        )
    });
    let input = PlanInput {
        graph,
        availability,
        builders,
        forced: settings.forced(),
        local_system: settings.nix_config().system.clone(),
        knowledge,
        daemon: daemon(settings),
        nix_fallback: how.fallback,
        substituters,
        configured_substituters,
        checked_noop: None,
        fell_back: None,
    };
    let plan = {
        let _phase = crate::timing::phase("plan");
        plan::plan(&input)?
    };
    warnings::drop_said_in_reason(&mut warnings, &input.builders, &plan.reason);
    let nar_sizes = nar_sizes(&plan, &input.availability);
    Ok(Planned {
        plan,
        input,
        warnings,
        installables: Vec::new(),
        systems: Default::default(),
        wanted,
        session_installables,
        nar_sizes,
        history_warning: history.as_ref().and_then(|l| l.warning.clone()),
        sessions,
        history: history.map(|l| std::sync::Arc::new(l.history)),
    })
}

/// What `history` knows that bears on this graph and these builders, as the planner asks it
/// ([`plan::Knowledge`]): build times of the graph's names here and on each reachable builder,
/// the sizes their outputs had when copied, each builder's link speed and its speed against
/// this machine (measured on names both have built: the machines line's speed factor ranks
/// builders against each other, not against here, so it is not used), and this run's round
/// trips; and the download rate of each cache holding one of the graph's paths (learned from
/// its substitutions: bytes over seconds), so a path a slow cache and a fast builder both hold
/// can come from the builder.
fn knowledge(
    history: &crate::history::History,
    graph: &plan::Graph,
    availability: &Availability,
    builders: &[Builder],
    local_jobs: u32,
) -> plan::Knowledge {
    use crate::history::host_key;
    use plan::cost::LOCAL;
    let live: Vec<&Builder> = builders.iter().filter(|b| b.reachable()).collect();
    let mut k = plan::Knowledge {
        consulted: true,
        local_jobs: local_jobs.max(1),
        ..Default::default()
    };
    // The largest size each store path name had when copied (nix did not always say: 0).
    let mut copied: std::collections::HashMap<&str, u64> = Default::default();
    for ((name, _), samples) in &history.copies {
        if let Some(bytes) = samples.iter().rev().map(|s| s.bytes).find(|b| *b > 0) {
            let best = copied.entry(name.as_str()).or_default();
            *best = (*best).max(bytes);
        }
    }
    for drv in graph.derivations.values() {
        let name = drv.path.display_name();
        for host in std::iter::once(LOCAL).chain(live.iter().map(|b| b.machine.uri.as_str())) {
            if let Some(secs) = history.build_secs(name, host) {
                k.build_secs
                    .insert((name.to_owned(), host.to_owned()), secs);
            }
        }
        let sizes: Option<Vec<u64>> = drv
            .outputs
            .values()
            .map(|out| copied.get(out.display_name()).copied())
            .collect();
        if let Some(sizes) = sizes.filter(|s| !s.is_empty()) {
            k.output_bytes.insert(name.to_owned(), sizes.iter().sum());
        }
    }
    for hit in availability.in_caches.values() {
        if !k.bandwidth.contains_key(&hit.uri) {
            if let Some(rate) = history.bandwidth(&hit.uri) {
                k.bandwidth.insert(hit.uri.clone(), rate);
            }
        }
    }
    for b in &live {
        let uri = b.machine.uri.as_str();
        if let Some(rate) = history.bandwidth(uri) {
            k.bandwidth.insert(uri.to_owned(), rate);
        }
        if let Some(rtt) = b.rtt_ms {
            k.rtt_secs.insert(uri.to_owned(), rtt / 1000.0);
        }
        let there = host_key(uri);
        let ratios: Vec<f64> = history
            .builds
            .keys()
            .filter(|(_, host)| *host == there)
            .filter_map(|(name, _)| {
                let here = history.build_secs(name, LOCAL)?;
                let remote = history.build_secs(name, uri)?;
                (remote > 0.0).then(|| here / remote)
            })
            .collect();
        if let Some(speed) = crate::history::median(ratios) {
            k.speed_vs_local.insert(uri.to_owned(), speed);
        }
    }
    k
}

/// nix's `max-jobs` as build slots here (`auto`: the CPUs; at least 1).
fn local_job_slots(max_jobs: &str) -> usize {
    match max_jobs.trim() {
        "auto" => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n.parse::<usize>().unwrap_or(1).max(1),
    }
}

/// The NAR size of each path `plan` copies, as its source said.
fn nar_sizes(
    plan: &plan::Plan,
    availability: &Availability,
) -> std::collections::BTreeMap<String, u64> {
    plan.paths
        .iter()
        .filter_map(|p| {
            let size = match p.source {
                plan::Source::Cache => availability.in_caches.get(&p.path)?.nar_size,
                plan::Source::Builder => availability
                    .on_builders
                    .get(&p.path)?
                    .iter()
                    .find_map(|h| h.nar_size),
                plan::Source::Build => None,
            }?;
            Some((p.path.as_str().to_string(), size))
        })
        .collect()
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
