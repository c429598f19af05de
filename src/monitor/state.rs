//! The monitor's state and its pure update step.
//!
//! The state is one struct; its jobs live in modules of their own: [`outbox`] (what happened,
//! for line-by-line renderers), [`attribution`] (which build failed, from nix's counters and
//! error text), [`stores`] (which store a URI in the log means) and [`view`] (what renderers
//! read).

mod attribution;
mod eta;
mod outbox;
mod stores;
mod view;

pub use attribution::is_forwarded_warning;
pub use outbox::Happening;

use super::names::is_local_store;
use super::store_path_name;
use super::summary::{CancelledBuild, FailedBuild, SourceTotals};
use super::{LOG_TAIL_BYTES, LOG_TAIL_LINES, MAX_KEPT_TEXT, MAX_RUNNING, MAX_RUNNING_BUILDS};
use crate::history::estimate::Estimate;
use crate::history::{History, RunEstimate};
use crate::log::{
    strip_ansi, Activity, ActivityId, ActivityResult, ActivityType, Event, Progress, Verbosity,
};
use attribution::{PendingBuild, RecentBuild};
use outbox::Outbox;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stores::host_key;

/// A derivation being built right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningBuild {
    /// The derivation.
    pub drv_path: String,
    /// Its name without hash and `.drv`, for display.
    pub name: String,
    /// The builder's store URI, or `"local"`.
    pub host: String,
    /// The phase the builder last announced (`buildPhase`, ...), if any.
    pub phase: Option<String>,
    /// When the build started.
    pub started: Instant,
    /// Its last log lines, oldest first, at most [`LOG_TAIL_LINES`].
    pub log_tail: VecDeque<String>,
    /// Whether the builder was seen working on it (its own build activity, log lines, phases).
    /// A remote build never seen working was the builder handing back an output it already had.
    pub seen_working: bool,
    /// How long it should take, when the history knows (the median of its earlier builds of
    /// the same name on the same host).
    pub expected_time: Option<Duration>,
    /// The plan says the builder already has its outputs: nix's build hook only copies them.
    pub copy_back: bool,
    /// The builder's own activity for this build, relayed by the build hook: when it started
    /// and, once done, how long it took. The hook's activity around it also spans copying the
    /// inputs there and the outputs back; this is the build alone.
    pub worked: Option<(Instant, Option<Duration>)>,
}

impl RunningBuild {
    /// Since when this build has been building: for a remote one, from the builder's own
    /// activity on (before it the hook copies the inputs, shown as transfers).
    pub fn building_since(&self) -> Instant {
        self.worked.map_or(self.started, |(since, _)| since)
    }

    /// The last line the builder printed, if any.
    pub fn last_line(&self) -> Option<&str> {
        self.log_tail.back().map(String::as_str)
    }
}

/// Which way a store path is moving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// Fetched from a substituter (a binary cache, or a builder's store used as one).
    Substitute,
    /// Copied into this store from another store (a builder returning a build result).
    CopyFrom,
    /// Copied from this store to another (inputs sent to a builder, `nix copy --to`).
    CopyTo,
}

/// A store path on its way into or out of this store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Which way.
    pub kind: TransferKind,
    /// The store path.
    pub path: String,
    /// Its name without hash, for display.
    pub name: String,
    /// The other store: the source (substituter, builder) or the destination.
    pub peer: String,
    /// Bytes copied so far.
    pub done: u64,
    /// Bytes expected (0 while unknown).
    pub expected: u64,
    /// When it started.
    pub started: Instant,
    /// How long it should take, when the history knows.
    pub expected_time: Option<Duration>,
}

/// Totals of one kind of activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Finished.
    pub done: u64,
    /// Under way.
    pub running: u64,
    /// Failed.
    pub failed: u64,
    /// Expected in all (done + running + failed + still to come), as far as known.
    pub expected: u64,
    /// Bytes moved so far (transfers only).
    pub bytes_done: u64,
    /// Bytes expected in all (transfers only; 0 while unknown).
    pub bytes_expected: u64,
}

/// What nixdispatch knows about a running activity. Activities it does not follow are not kept.
#[derive(Debug, Clone)]
enum Live {
    /// A `Builds` or `CopyPaths` aggregate and its latest progress.
    Aggregate(ActivityType, Progress),
    /// The `Realise` activity (expected sizes arrive on it).
    Realise,
    /// A `CopyPath` that carries the bytes of the substitution with this id.
    CopyFor(ActivityId),
    /// A remote builder's own activity for the build with this id.
    SameBuildAs(ActivityId),
}

/// Everything the monitor knows about a run, updated one event at a time.
///
/// Pure: no I/O, no clock (time is passed in). Memory stays flat on an endless stream: finished
/// activities are folded into counters and short bounded lists.
#[derive(Debug, Clone, Default)]
pub struct State {
    started: Option<Instant>,
    last: Option<Instant>,
    live: HashMap<ActivityId, Live>,
    builds: BTreeMap<ActivityId, RunningBuild>,
    transfers: BTreeMap<ActivityId, Transfer>,
    /// Progress of aggregates that have stopped, per aggregate type.
    folded: HashMap<ActivityType, Progress>,
    expected_bytes: HashMap<ActivityType, u64>,
    builds_done: u64,
    builds_failed: u64,
    /// How many of nix's counted failures have been matched to a stopped build.
    failures_attributed: u64,
    /// How many of nix's counted successes have been matched to a stopped build.
    done_attributed: u64,
    /// Running builds an error message named as failed: their stop is a failure whatever the
    /// counters say (nix names the failed build before it stops the others).
    failing: BTreeSet<ActivityId>,
    /// Builds finished by earlier attempts of the same run ([`State::next_attempt`]); nix's
    /// counters start again from zero in each attempt.
    builds_carried: u64,
    transfers_done: HashMap<TransferKind, u64>,
    transfer_bytes_done: HashMap<TransferKind, u64>,
    built: BTreeMap<String, u64>,
    reused: BTreeMap<String, u64>,
    substituted: BTreeMap<String, u64>,
    copied_from: BTreeMap<String, u64>,
    copied_to: BTreeMap<String, u64>,
    /// Paths, bytes and seconds per source of what arrived.
    from_sources: BTreeMap<String, SourceTotals>,
    sources: BTreeSet<String>,
    known_stores: Vec<String>,
    /// Other names of a store's link ([`State::same_link`]): `(alias, name)`.
    aliases: Vec<(String, String)>,
    /// Builders whose builds this log shows as the builder's own nix ran them (a session's log,
    /// relocated): there a build is always real work, never the build hook's copy-back.
    builds_run_there: BTreeSet<String>,
    recent_builds: VecDeque<RecentBuild>,
    failed: Vec<FailedBuild>,
    /// Stopped builds that may be the failure nix counted, oldest stop first.
    pending: Vec<PendingBuild>,
    /// Failures decided by nix's counters alone (no error named them yet), by derivation: an
    /// error of nix's naming another build that was taken as done corrects them.
    guessed: Vec<String>,
    /// Builds nix stopped unfinished (at most [`MAX_FAILED_KEPT`]).
    cancelled: Vec<CancelledBuild>,
    builds_cancelled: u64,
    /// Whether nix sent progress for its `Builds` aggregate in this attempt (every nix since
    /// 2.0 does; partial or hand-made streams may not).
    builds_counted: bool,
    /// nix's own error report (an error with `raw_msg`) that nothing started after: what ended
    /// the run (an evaluation error, "Unable to start any build", an interrupt).
    fatal: Option<String>,
    errors: Vec<String>,
    happenings: Outbox,
    /// The distinct builder and store names seen, at most [`MAX_PEERS`]; later ones are
    /// counted under [`OTHER_PEERS`], so every per-peer map stays small.
    peers: BTreeSet<String>,
    /// The NAR size of each path the plan copies ([`State::set_sizes`]).
    sizes: HashMap<String, u64>,
    /// What earlier runs took, for each step's expected time ([`State::set_history`]).
    history: Option<Arc<History>>,
    /// This run's steps, for the whole run's estimate.
    eta: Option<Box<RunEstimate>>,
    /// The whole run's estimate as last worked out, and when; `None` inside while unknown.
    estimate: Option<(Instant, Option<Estimate>)>,
    /// A step started or ended since the estimate was worked out.
    estimate_stale: bool,
}

/// `text` cut to `max` bytes (at a character boundary): what the state keeps of a string
/// that came from the log.
fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl State {
    /// An empty state, before the first line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event; returns whether anything a renderer shows changed.
    ///
    /// `now` is when the event was read; it is the only clock the state uses.
    pub fn update(&mut self, event: &Event, now: Instant) -> bool {
        self.started.get_or_insert(now);
        self.last = Some(now);
        let changed = self.apply(event, now);
        if self.estimate_stale {
            self.refresh_estimate(now);
        }
        changed
    }

    #[inline(always)]
    fn apply(&mut self, event: &Event, now: Instant) -> bool {
        match event {
            Event::Start(start) => self.start(start.id, start.parent, &start.activity, now),
            Event::Stop { id } => self.stop(*id, now),
            Event::Result { id, result } => self.result(*id, result),
            Event::Message(message) => {
                let text = strip_ansi(&message.text);
                let level = if message.level == Verbosity::Error && is_forwarded_warning(&text) {
                    Verbosity::Warn
                } else {
                    message.level
                };
                if level == Verbosity::Error {
                    self.error(&text, message.raw.is_some());
                }
                self.happen(Happening::Message { level, text });
                true
            }
            Event::Plain(line) => {
                self.happen(Happening::Passthrough(line.clone()));
                true
            }
        }
    }

    fn start(
        &mut self,
        id: ActivityId,
        parent: Option<ActivityId>,
        activity: &Activity,
        now: Instant,
    ) -> bool {
        if matches!(
            activity,
            Activity::Build { .. } | Activity::Substitute { .. } | Activity::CopyPath { .. }
        ) {
            // nix went on working after its error: that error did not end the run.
            self.fatal = None;
        }
        // A garbage stream that starts activities and never stops them must not grow the
        // state: past this many, new ones are not followed (a real run has far fewer at once).
        if self.live.len() + self.builds.len() + self.transfers.len() >= MAX_RUNNING
            || (self.builds.len() >= MAX_RUNNING_BUILDS
                && matches!(activity, Activity::Build { .. }))
        {
            return false;
        }
        match activity {
            // While a build runs, new aggregates are the build hook's own copies or the remote
            // nix's log relayed through it (its Realise, Builds, CopyPaths): counting them would
            // count the same work twice.
            Activity::Builds | Activity::CopyPaths | Activity::Realise
                if !self.builds.is_empty() =>
            {
                false
            }
            Activity::Builds | Activity::CopyPaths => {
                self.live.insert(
                    id,
                    Live::Aggregate(activity.activity_type(), Progress::default()),
                );
                false
            }
            Activity::Realise => {
                self.live.insert(id, Live::Realise);
                false
            }
            Activity::Build {
                drv_path, machine, ..
            } => {
                // The builder's own activity for a derivation we already follow as a remote
                // build (relayed by the build hook, machine ""): the same build, seen from there.
                let outer = self
                    .builds
                    .iter_mut()
                    .find(|(_, b)| b.host != "local" && b.drv_path == *drv_path);
                if let Some((outer_id, outer)) = outer {
                    outer.seen_working = true;
                    outer.worked = Some((now, None));
                    let outer_id = *outer_id;
                    self.step_began_work(drv_path, now);
                    self.live.insert(id, Live::SameBuildAs(outer_id));
                    return false;
                }
                let host = self.peer(&host_key(machine));
                let drv_path = &bounded(drv_path, MAX_KEPT_TEXT);
                let run_there = self.builds_run_there.contains(&host);
                let copy_back = host != "local" && !run_there && self.is_copy_back(drv_path);
                let expected = if copy_back {
                    self.expected_copy_back(drv_path)
                } else {
                    self.expected_build(drv_path, &host)
                };
                self.step_started(drv_path, now);
                self.builds.insert(
                    id,
                    RunningBuild {
                        drv_path: drv_path.clone(),
                        name: store_path_name(drv_path).to_string(),
                        host: host.clone(),
                        phase: None,
                        started: now,
                        log_tail: VecDeque::new(),
                        seen_working: machine.is_empty() || run_there,
                        expected_time: expected,
                        copy_back,
                        worked: None,
                    },
                );
                self.happen(Happening::BuildStarted {
                    drv_path: drv_path.clone(),
                    host,
                    expected,
                    copy_back,
                });
                true
            }
            Activity::Substitute { path, substituter } => {
                let substituter = self.named_store(substituter);
                self.begin_transfer(id, TransferKind::Substitute, path, &substituter, now);
                true
            }
            Activity::CopyPath { path, from, to } => {
                // The copy inside a substitution carries its bytes: link it to the substitution
                // (by parent on 2.18+, by path before).
                let owner = parent
                    .filter(|p| self.transfers.contains_key(p))
                    .or_else(|| {
                        self.transfers
                            .iter()
                            .rev()
                            .find(|(_, t)| t.kind == TransferKind::Substitute && t.path == *path)
                            .map(|(id, _)| *id)
                    });
                if let Some(owner) = owner {
                    self.live.insert(id, Live::CopyFor(owner));
                    return false;
                }
                if is_local_store(from) {
                    let to = self.named_store(to);
                    self.begin_transfer(id, TransferKind::CopyTo, path, &to, now);
                } else {
                    let from = self.named_store(from);
                    self.begin_transfer(id, TransferKind::CopyFrom, path, &from, now);
                }
                true
            }
            _ => false,
        }
    }

    /// The state for another nix run of the same job (the retry after a builder vanished):
    /// what the earlier run finished (builds, substitutions, copies, bytes) and when the job
    /// started are kept, so the summary covers all of it; its failures, errors and unfinished
    /// activities are dropped, so the retry alone decides whether the job failed.
    pub fn next_attempt(&self) -> State {
        State {
            started: self.started,
            last: self.last,
            builds_done: self.builds_done,
            builds_carried: self.builds_done,
            transfers_done: self.transfers_done.clone(),
            transfer_bytes_done: self.transfer_bytes_done.clone(),
            built: self.built.clone(),
            reused: self.reused.clone(),
            substituted: self.substituted.clone(),
            copied_from: self.copied_from.clone(),
            copied_to: self.copied_to.clone(),
            from_sources: self.from_sources.clone(),
            sources: self.sources.clone(),
            known_stores: self.known_stores.clone(),
            aliases: self.aliases.clone(),
            builds_run_there: self.builds_run_there.clone(),
            peers: self.peers.clone(),
            sizes: self.sizes.clone(),
            history: self.history.clone(),
            ..State::default()
        }
    }

    fn begin_transfer(
        &mut self,
        id: ActivityId,
        kind: TransferKind,
        path: &str,
        peer: &str,
        now: Instant,
    ) {
        let peer = &self.peer(peer);
        let path = &bounded(path, MAX_KEPT_TEXT);
        if kind != TransferKind::CopyTo {
            self.sources.insert(peer.to_string());
        }
        let expected = self.expected_copy(path, peer);
        let total_bytes = self.sizes.get(path).copied();
        self.step_started(path, now);
        self.transfers.insert(
            id,
            Transfer {
                kind,
                path: path.to_string(),
                name: store_path_name(path).to_string(),
                peer: peer.to_string(),
                done: 0,
                expected: total_bytes.unwrap_or(0),
                started: now,
                expected_time: expected,
            },
        );
        self.happen(Happening::TransferStarted {
            kind,
            path: path.to_string(),
            peer: peer.to_string(),
            expected,
            total_bytes,
        });
    }

    fn result(&mut self, id: ActivityId, result: &ActivityResult) -> bool {
        let build_id = match self.live.get(&id) {
            Some(Live::SameBuildAs(outer)) => *outer,
            _ => id,
        };
        if let Some(build) = self.builds.get_mut(&build_id) {
            return match result {
                ActivityResult::BuildLogLine(line) | ActivityResult::PostBuildLogLine(line) => {
                    let line = bounded(&strip_ansi(line), MAX_KEPT_TEXT);
                    build.seen_working = true;
                    if build.log_tail.len() >= LOG_TAIL_LINES {
                        build.log_tail.pop_front();
                    }
                    build.log_tail.push_back(line.clone());
                    while build.log_tail.iter().map(String::len).sum::<usize>() > LOG_TAIL_BYTES {
                        build.log_tail.pop_front();
                    }
                    let drv_path = build.drv_path.clone();
                    self.happen(Happening::BuildLog { drv_path, line });
                    true
                }
                ActivityResult::SetPhase(phase) => {
                    build.phase = Some(phase.clone());
                    build.seen_working = true;
                    let drv_path = build.drv_path.clone();
                    self.happen(Happening::BuildPhase {
                        drv_path,
                        phase: phase.clone(),
                    });
                    true
                }
                _ => false,
            };
        }
        let transfer_id = match self.live.get(&id) {
            Some(Live::CopyFor(owner)) => *owner,
            _ => id,
        };
        if let (Some(transfer), ActivityResult::Progress(progress)) =
            (self.transfers.get_mut(&transfer_id), result)
        {
            transfer.done = progress.done;
            // nix's total where it gives one, else the size the plan knew.
            if progress.expected > 0 {
                transfer.expected = progress.expected;
            }
            return true;
        }
        match (self.live.get_mut(&id), result) {
            (Some(Live::Aggregate(kind, latest)), ActivityResult::Progress(progress)) => {
                if *kind == ActivityType::Builds {
                    self.builds_counted = true;
                }
                let changed = latest != progress;
                *latest = *progress;
                changed
            }
            (
                Some(Live::Realise),
                ActivityResult::SetExpected {
                    activity_type,
                    expected,
                },
            ) => {
                let old = self.expected_bytes.insert(*activity_type, *expected);
                old != Some(*expected)
            }
            (_, ActivityResult::UntrustedPath(path)) => {
                self.happen(Happening::Message {
                    level: Verbosity::Warn,
                    text: format!("path '{path}' is not signed by a trusted key"),
                });
                true
            }
            (_, ActivityResult::CorruptedPath(path)) => {
                self.happen(Happening::Message {
                    level: Verbosity::Error,
                    text: format!(
                        "path '{path}' is corrupted (its contents do not match its hash)"
                    ),
                });
                true
            }
            _ => false,
        }
    }

    fn stop(&mut self, id: ActivityId, now: Instant) -> bool {
        if let Some(build) = self.builds.remove(&id) {
            self.step_ended(&build.drv_path);
            self.finish_build(id, build, now);
            return true;
        }
        if let Some(transfer) = self.transfers.remove(&id) {
            self.finish_transfer(transfer, now);
            return true;
        }
        match self.live.remove(&id) {
            Some(Live::SameBuildAs(outer)) => {
                if let Some(build) = self.builds.get_mut(&outer) {
                    if let Some((from, took @ None)) = &mut build.worked {
                        *took = Some(now.saturating_duration_since(*from));
                    }
                }
                false
            }
            Some(Live::Aggregate(kind, progress)) => {
                let folded = self.folded.entry(kind).or_default();
                folded.done += progress.done;
                folded.expected += progress.expected;
                folded.failed += progress.failed;
                true
            }
            _ => false,
        }
    }

    fn finish_transfer(&mut self, transfer: Transfer, now: Instant) {
        self.step_ended(&transfer.path);
        let bytes = transfer.done.max(transfer.expected);
        *self.transfers_done.entry(transfer.kind).or_default() += 1;
        *self.transfer_bytes_done.entry(transfer.kind).or_default() += bytes;
        let per_peer = match transfer.kind {
            TransferKind::Substitute => &mut self.substituted,
            TransferKind::CopyFrom => &mut self.copied_from,
            TransferKind::CopyTo => &mut self.copied_to,
        };
        *per_peer.entry(transfer.peer.clone()).or_default() += 1;
        let elapsed = now.saturating_duration_since(transfer.started);
        if transfer.kind != TransferKind::CopyTo {
            let totals = self.from_sources.entry(transfer.peer.clone()).or_default();
            totals.paths += 1;
            totals.bytes = totals.bytes.saturating_add(bytes);
            totals.secs += elapsed.as_secs_f64();
        }
        self.happen(Happening::TransferFinished {
            kind: transfer.kind,
            path: transfer.path,
            peer: transfer.peer,
            bytes,
            total_bytes: (transfer.expected > 0).then_some(transfer.expected),
            elapsed,
        });
    }
}
