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
    /// The derivations behind them (empty when nothing was missing), for the run's estimate.
    pub graph: plan::Graph,
    /// The NAR size of each path the plan copies from a cache or a builder, where the source
    /// said: the total of a copy whose progress nix does not report (2.8 over ssh-ng).
    pub nar_sizes: std::collections::BTreeMap<String, u64>,
    /// The history, when the planner read it (something was missing, `--mode auto`): read
    /// once per run, then handed to the display for its expected times.
    pub history: Option<std::sync::Arc<crate::history::History>>,
    /// The one warning for a history that could not be read.
    pub history_warning: Option<String>,
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
    /// The contract's JSON view.
    pub fn report(&self) -> PlanReport<'_> {
        PlanReport {
            mode: self.plan.mode,
            reason: &self.plan.reason,
            builders: &self.builders,
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
        self.builders
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
        crate::history::RunEstimate::for_plan(&self.plan, &self.graph, history, |host| {
            self.job_slots(host, local_max_jobs)
        })
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
        graph: plan::Graph::default(),
        nar_sizes: Default::default(),
        history: None,
        history_warning: None,
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
        let _phase = crate::timing::phase("evaluation");
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
    // (crate::early_holdings), while the probe still runs.
    // And the local store's answer for every path of the graph, which the store queries need
    // once the probe is done.
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
    let mut planned = plan_graph(settings, &installables, graph, how.rebuild, ahead, early).await?;
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
        sources::local::valid_paths(&settings.nix, &sources::graph_paths(graph)),
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
    mut early: crate::early_holdings::EarlyHoldings,
) -> Result<Planned> {
    let mut wanted_valid = if ahead.is_some() {
        // The noop check found something missing: the local store is asked once, below.
        Default::default()
    } else {
        crate::timing::timed(
            "local-validity",
            sources::local::valid_paths(&settings.nix, &graph.wanted),
        )
        .await?
    };
    if rebuild {
        // Valid or not, the installables themselves are built again.
        wanted_valid.clear();
    }
    let mut substituters = None;
    let mut history = None;
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
            // The local store is asked about every path while the probe runs.
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
            let sources::Gathered {
                mut availability,
                mut warnings,
                dead_substituters,
            } = crate::timing::timed(
                "store-queries",
                sources::gather_with(&settings.nix, &nix_config, &graph, &builders, &infos, valid),
            )
            .await?;
            let (live, lines) = leave_out_dead(
                &nix_config.substituters,
                &settings.nix_config.substituters,
                &dead_substituters,
            );
            substituters = live;
            warnings.extend(lines);
            warnings.extend(builders.iter().filter_map(loop_warning));
            warnings.extend(notes);
            if settings
                .daemon
                .as_ref()
                .is_some_and(|d| d.trusted == Some(true))
            {
                crate::timing::timed(
                    "holdings-through-daemon",
                    ask_through_daemon(
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
            if settings.forced == plan::Forced::Auto {
                let _phase = crate::timing::phase("history-load");
                history = settings.state_dir.as_deref().map(crate::history::load);
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
    let knowledge = history.as_ref().map_or_else(Default::default, |loaded| {
        let local_jobs = local_job_slots(&settings.nix_config.max_jobs) as u32;
        knowledge(&loaded.history, &graph, &builders, local_jobs)
    });
    let input = PlanInput {
        graph,
        availability,
        builders,
        forced: settings.forced,
        local_system: settings.nix_config.system.clone(),
        knowledge,
    };
    let mut plan = {
        let _phase = crate::timing::phase("plan");
        plan::plan(&input)?
    };
    plan.substituters = substituters;
    explain_daemon(&mut plan, &input.builders, settings.daemon.as_ref());
    // One line names a builder left out as this machine or as one that would pass builds back
    // here: the reason, when it says why no builder took the build; else a warning.
    warnings.retain(|w| {
        !input.builders.iter().any(|b| {
            matches!(
                b.failure,
                Some(probe::ProbeFailure::ThisMachine | probe::ProbeFailure::ForwardsBack(_))
            ) && w.starts_with(&format!("builder {}", b.host()))
                && plan
                    .reason
                    .contains(&format!("{}: {}", b.host(), b.failure_words()))
        })
    });
    let nar_sizes = nar_sizes(&plan, &input.availability);
    Ok(Planned {
        plan,
        builders: input.builders,
        warnings,
        installables: Vec::new(),
        systems: Default::default(),
        wanted,
        session_installables,
        graph: input.graph,
        nar_sizes,
        history_warning: history.as_ref().and_then(|l| l.warning.clone()),
        history: history.map(|l| std::sync::Arc::new(l.history)),
    })
}

/// What `history` knows that bears on this graph and these builders, as the planner asks it
/// ([`plan::Knowledge`]): build times of the graph's names here and on each reachable builder,
/// the sizes their outputs had when copied, each builder's link speed and its speed against
/// this machine (measured on names both have built: the machines line's speed factor ranks
/// builders against each other, not against here, so it is not used), and this run's round
/// trips.
fn knowledge(
    history: &crate::history::History,
    graph: &plan::Graph,
    builders: &[Builder],
    local_jobs: u32,
) -> plan::Knowledge {
    use crate::history::host_key;
    use plan::cost::LOCAL;
    let live: Vec<&Builder> = builders.iter().filter(|b| b.reachable).collect();
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

/// For builders verified by the daemon but out of our own ssh's reach: the daemon, with root's
/// ssh, says what their stores hold (the build hook copies such outputs back, unbuilt). The
/// same answer settles a check of root's ssh the probe left to it
/// ([`Builder::root_check_pending`]): a builder root's ssh cannot reach is taken out here.
async fn ask_through_daemon(
    settings: &Settings,
    graph: &plan::Graph,
    builders: &mut [Builder],
    availability: &mut Availability,
    early: &mut crate::early_holdings::EarlyHoldings,
) {
    let missing: Vec<crate::store_path::StorePath> = sources::graph_paths(graph)
        .into_iter()
        .filter(|p| !availability.valid_locally.contains(p))
        .collect();
    let limit = settings.deadlines().through_daemon;
    let missing = &missing;
    let mut asks = Vec::new();
    for (i, b) in builders.iter().enumerate().filter(|(_, b)| {
        b.reachable && b.verified && (b.connection.is_none() || b.root_check_pending)
    }) {
        // Asked already while the probe ran (the same answer: see crate::early_holdings).
        let started = early.take(b.machine.uri.as_ref());
        asks.push(async move {
            let early = match started {
                Some(started) => started.answer().await,
                None => None,
            };
            let held = match early {
                Some(held) => held,
                None => probe::through_daemon::held(&b.machine, missing, limit).await,
            };
            (i, held)
        });
    }
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
                    nar_size: None,
                });
            }
        }
    }
}

/// The substituters to hand nix when some are dead (`None`: nix's own will do), and one line
/// per dead one. A daemon that does not trust us still takes a `substituters` list made of its
/// own substituters and trusted-substituters (nix's daemon filters the list, it does not drop
/// it), which is all `configured` holds for such a user ([`sources::substituters::apply`]).
/// Seen here (2026-12-04): untrusted clients of Nix 2.8 and 2.26 daemons whose substituters
/// included a silent cache built without waiting on it.
///
/// A dead cache that only a flake's `nixConfig` adds (not in `nix_own`, nix's configuration
/// without the flake) cannot be left out: nix applies the flake's `extra-substituters` after
/// the command line. Its line says what nix will spend on it instead.
fn leave_out_dead(
    configured: &[String],
    nix_own: &[String],
    dead: &[(String, String)],
) -> (Option<Vec<String>>, Vec<String>) {
    if dead.is_empty() {
        return (None, Vec::new());
    }
    let lines = dead
        .iter()
        .map(|(uri, why)| {
            if nix_own.contains(uri) {
                format!(
                    "cache {uri} is left out of this run: {why} (nix itself would spend \
                     retries, or minutes, on it)"
                )
            } else {
                format!(
                    "cache {uri} ({why}) comes from the flake's nixConfig, which nix applies \
                     after nixdispatch's options: nix will still try it, about 4 s of retries \
                     when it refuses, up to stalled-download-timeout (300 s) and retries when \
                     it stays silent; remove it from the flake's nixConfig"
                )
            }
        })
        .collect();
    let live = configured
        .iter()
        .filter(|s| !dead.iter().any(|(d, _)| d == *s))
        .cloned()
        .collect();
    (Some(live), lines)
}

/// One line for a builder that is this machine (left out by the probe), or that may pass what
/// it is given back here (NixOS/nix#10740), with the fix.
fn loop_warning(b: &Builder) -> Option<String> {
    let host = b.host();
    match &b.failure {
        Some(probe::ProbeFailure::ThisMachine) => {
            return Some(format!("builder {host} is {}", b.failure_words()))
        }
        Some(probe::ProbeFailure::ForwardsBack(_)) => {
            return Some(format!("builder {host}: {}", b.failure_words()))
        }
        _ => {}
    }
    if !(b.reachable && b.may_forward) {
        return None;
    }
    let (who, fix) = match b.machine.uri.ssh().and_then(|a| a.user.clone()) {
        Some(user) => (user.clone(), user),
        None => ("the user nix logs in as".to_owned(), "that user".to_owned()),
    };
    Some(format!(
        "builder {host} does not trust {who} and has builders of its own, so nix hands it whole \
         derivations, which it may pass on; if its builders include this machine, both wait \
         forever (NixOS/nix#10740): add {fix} to {host}'s trusted-users (it then builds what it \
         is given itself), or leave this machine out of {host}'s builders"
    ))
}

/// [`IGNORED_BUILDER`], when `--builder` was given to a daemon that ignores it; when the
/// daemon's trust could not be told, that it may.
fn ignored_builder_warning(settings: &Settings) -> Option<String> {
    let daemon = settings.daemon.as_ref()?;
    if daemon.ignored_cli_builders {
        return Some(IGNORED_BUILDER.to_owned());
    }
    let per_run = settings.builders_origin == "--builder";
    (per_run && daemon.trusted.is_none()).then(|| MAYBE_IGNORED_BUILDER.to_owned())
}

/// The warning for `--builder` given to a daemon whose trust is unknown.
pub const MAYBE_IGNORED_BUILDER: &str = "the nix daemon does not say whether it trusts you \
(Nix before 2.15) and nixdispatch could not tell: if it does not, it ignores --builder and uses \
its own builders; add yourself to trusted-users (nix.settings.trusted-users on NixOS) to be sure";

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
        .filter(|s| s.unverified().is_some() && s.alive == Some(true))
        .map(|s| s.host())
        .collect();
    let unchecked: Vec<&str> = states
        .iter()
        .filter(|s| s.unverified().is_some() && s.alive != Some(true))
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
    if uses_builders && !unchecked.is_empty() {
        let verb = if unchecked.len() == 1 { "was" } else { "were" };
        plan.reason.push_str(&format!(
            "; {} {verb} not checked (nixdispatch could reach neither its sshd nor root's ssh): \
             nix decides",
            unchecked.join(", ")
        ));
    }
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
        b.alive = Some(true);
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
            substituters: None,
            estimates: Vec::new(),
        }
    }

    #[test]
    fn dead_substituters_are_left_out_with_one_line_each() {
        let configured: Vec<String> = ["http://a", "http://dead", "file:///c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            leave_out_dead(&configured, &configured, &[]),
            (None, Vec::new())
        );
        let dead = vec![("http://dead".to_owned(), "cannot connect".to_owned())];
        let (live, lines) = leave_out_dead(&configured, &configured, &dead);
        assert_eq!(
            live,
            Some(vec!["http://a".to_owned(), "file:///c".to_owned()])
        );
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("cache http://dead is left out of this run: cannot connect"),
            "{lines:?}"
        );
        // Added by the flake: nix adds it back after the command line, so the line says so.
        let (_, lines) = leave_out_dead(&configured, &configured[..1], &dead);
        assert!(lines[0].contains("nix will still try it"), "{lines:?}");
    }

    #[test]
    fn a_builder_that_may_forward_back_is_named_with_the_fix() {
        let mut b = state(false);
        assert_eq!(loop_warning(&b), None);
        b.may_forward = true;
        let line = loop_warning(&b).unwrap_or_default();
        assert!(line.contains("NixOS/nix#10740"), "{line}");
        assert!(
            line.contains("add root to seasmoke's trusted-users"),
            "{line}"
        );
        b.reachable = false;
        b.failure = Some(probe::ProbeFailure::ThisMachine);
        let line = loop_warning(&b).unwrap_or_default();
        assert!(
            line.starts_with("builder seasmoke is this machine under another name"),
            "{line}"
        );
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
