//! The monitor's state and its pure update step.

use super::names::{drv_paths_in, is_local_store, store_path_name};
use super::summary::{CancelledBuild, FailedBuild, Summary};
use super::{
    LOG_TAIL_BYTES, MAX_KEPT_TEXT, MAX_PEERS, MAX_RUNNING, MAX_RUNNING_BUILDS, OTHER_PEERS,
};
use super::{LOG_TAIL_LINES, MAX_ERRORS_KEPT, MAX_FAILED_KEPT, MAX_HAPPENINGS, RECENT_BUILDS_KEPT};
use crate::log::{
    strip_ansi, Activity, ActivityId, ActivityResult, ActivityType, Event, Progress, Verbosity,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Where a build runs, as the summary keys it: the builder's store URI, or `"local"`.
fn host_key(machine: &str) -> String {
    if machine.is_empty() {
        "local".to_string()
    } else {
        machine.to_string()
    }
}

/// Whether an error-level message is in fact a warning: nix relays the plain stderr lines of
/// its build hook and of a builder's store (`warning: '…' does not appear to be a binary
/// cache`, `warning: error: SQLite database '…' is busy`) at level error (seen with 2.26).
pub fn is_forwarded_warning(text: &str) -> bool {
    text.trim_start().starts_with("warning:")
}

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
}

impl RunningBuild {
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
}

/// How a build that stopped without failing ended, as far as nix's counters tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// nix counted it done and the builder was seen working on it.
    Built,
    /// nix counted it done, but the builder only handed back outputs it already had.
    Reused,
    /// nix stopped it unfinished (another build failed, Ctrl-C, the builder went away).
    Cancelled,
}

/// A stopped build, kept briefly in case a later error message says it failed after all.
#[derive(Debug, Clone)]
struct RecentBuild {
    drv_path: String,
    host: String,
    log_tail: VecDeque<String>,
    ending: Ending,
}

/// A stopped build nix counted a failure for while other builds could have been the one that
/// failed (nix stops the builds it abandons in no telling order): decided when an error names
/// it, when the counters leave no doubt, or at the end of the log.
#[derive(Debug, Clone)]
struct PendingBuild {
    drv_path: String,
    host: String,
    log_tail: VecDeque<String>,
    elapsed: Duration,
}

/// Something that happened in the last update, for renderers that print one line per event
/// (plain, JSON). [`super::Monitor`] hands them to the renderer, then clears them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// A build started.
    BuildStarted {
        /// The derivation.
        drv_path: String,
        /// Builder store URI or `"local"`.
        host: String,
    },
    /// A build finished and nix did not count it as failed.
    BuildFinished {
        /// The derivation.
        drv_path: String,
        /// Builder store URI or `"local"`.
        host: String,
        /// How long it took.
        elapsed: Duration,
    },
    /// A remote build ended without the builder doing any work: it already had the outputs
    /// and handed them back (copied here, not rebuilt).
    BuildReused {
        /// The derivation.
        drv_path: String,
        /// Builder store URI.
        host: String,
    },
    /// nix stopped a build before it finished and without counting it as failed: another
    /// build failed (nix gives up on the rest without `--keep-going`), the run was interrupted,
    /// or the builder went away. Its outputs were not produced.
    BuildCancelled {
        /// The derivation.
        drv_path: String,
        /// Builder store URI or `"local"`.
        host: String,
        /// How long it had been running.
        elapsed: Duration,
    },
    /// A build failed.
    BuildFailed {
        /// What failed, where, and its last log lines.
        build: FailedBuild,
    },
    /// A builder printed a line.
    BuildLog {
        /// The derivation.
        drv_path: String,
        /// The line.
        line: String,
    },
    /// A build entered a phase.
    BuildPhase {
        /// The derivation.
        drv_path: String,
        /// The phase.
        phase: String,
    },
    /// A store path started moving.
    TransferStarted {
        /// Which way.
        kind: TransferKind,
        /// The store path.
        path: String,
        /// The other store.
        peer: String,
    },
    /// A store path arrived or was sent.
    TransferFinished {
        /// Which way.
        kind: TransferKind,
        /// The store path.
        path: String,
        /// The other store.
        peer: String,
        /// Bytes copied, as far as nix reported them.
        bytes: u64,
        /// How long it took.
        elapsed: Duration,
    },
    /// nix logged a message (`msg`), colour codes removed.
    Message {
        /// Its level.
        level: Verbosity,
        /// Its text.
        text: String,
    },
    /// A line that is not part of nix's JSON log (ssh, nh, malformed lines), as it came.
    Passthrough(String),
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
    sources: BTreeSet<String>,
    known_stores: Vec<String>,
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
    happenings: Vec<Happening>,
    /// The distinct builder and store names seen, at most [`MAX_PEERS`]; later ones are
    /// counted under [`OTHER_PEERS`], so every per-peer map stays small.
    peers: BTreeSet<String>,
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

    fn happen(&mut self, happening: Happening) {
        if self.happenings.len() >= MAX_HAPPENINGS {
            // Nobody is draining them (a state used without a renderer): keep the newest half.
            self.happenings.drain(..MAX_HAPPENINGS / 2);
        }
        self.happenings.push(happening);
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
                    let outer_id = *outer_id;
                    self.live.insert(id, Live::SameBuildAs(outer_id));
                    return false;
                }
                let host = self.peer(&host_key(machine));
                let drv_path = &bounded(drv_path, MAX_KEPT_TEXT);
                self.builds.insert(
                    id,
                    RunningBuild {
                        drv_path: drv_path.clone(),
                        name: store_path_name(drv_path).to_string(),
                        host: host.clone(),
                        phase: None,
                        started: now,
                        log_tail: VecDeque::new(),
                        seen_working: machine.is_empty(),
                    },
                );
                self.happen(Happening::BuildStarted {
                    drv_path: drv_path.clone(),
                    host,
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

    /// `name` (a builder or store), or [`OTHER_PEERS`] once [`MAX_PEERS`] others were seen.
    fn peer(&mut self, name: &str) -> String {
        let name = bounded(name, MAX_KEPT_TEXT);
        if self.peers.contains(&name) {
            return name;
        }
        if self.peers.len() >= MAX_PEERS {
            return OTHER_PEERS.to_string();
        }
        self.peers.insert(name.clone());
        name
    }

    /// `uri`, or when it names no host (nix 2.26 says `ssh-ng://` for the build hook's copies)
    /// the machine of the remote builds running now, if they all run on one.
    fn named_store(&self, uri: &str) -> String {
        if !uri.ends_with("://") {
            return uri.to_string();
        }
        let machines: BTreeSet<&str> = self
            .builds
            .values()
            .map(|b| b.host.as_str())
            .filter(|h| *h != "local")
            .collect();
        if let [machine] = machines.into_iter().collect::<Vec<_>>().as_slice() {
            return machine.to_string();
        }
        let known: Vec<&String> = self
            .known_stores
            .iter()
            .filter(|k| k.starts_with(uri))
            .collect();
        match known.as_slice() {
            [store] => store.to_string(),
            _ => uri.to_string(),
        }
    }

    /// Tells the state which stores the run uses (builders, substituters), so it can name the
    /// store where nix does not: nix 2.26 reports `ssh-ng://` for an `ssh-ng://seasmoke`
    /// substituter. A hostless URI is replaced when exactly one known store has its scheme.
    pub fn set_known_stores(&mut self, uris: impl IntoIterator<Item = String>) {
        self.known_stores = uris.into_iter().collect();
    }

    /// The stores given to [`State::set_known_stores`].
    pub fn known_stores(&self) -> &[String] {
        &self.known_stores
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
            sources: self.sources.clone(),
            known_stores: self.known_stores.clone(),
            peers: self.peers.clone(),
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
        self.transfers.insert(
            id,
            Transfer {
                kind,
                path: path.to_string(),
                name: store_path_name(path).to_string(),
                peer: peer.to_string(),
                done: 0,
                expected: 0,
                started: now,
            },
        );
        self.happen(Happening::TransferStarted {
            kind,
            path: path.to_string(),
            peer: peer.to_string(),
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
            transfer.expected = progress.expected;
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
            self.finish_build(id, build, now);
            return true;
        }
        if let Some(transfer) = self.transfers.remove(&id) {
            self.finish_transfer(transfer, now);
            return true;
        }
        match self.live.remove(&id) {
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

    /// Decides how a stopped build ended. nix does not say, but it counts: a success or a
    /// failure reaches the `Builds` aggregate just before the build's activity stops, and a
    /// build stopped without either was abandoned (cancelled). Error messages that name a
    /// running build win over the counters. When nix counted a failure and other builds were
    /// running too, the stop alone cannot say which one failed (nix stops the builds it
    /// abandons in no telling order, seen with 2.8 and 2.26): the build waits in `pending`
    /// until an error names it or the log ends ([`State::settle`]).
    fn finish_build(&mut self, id: ActivityId, build: RunningBuild, now: Instant) {
        let nix = self.aggregate(ActivityType::Builds);
        let named = self.failing.remove(&id);
        let elapsed = now.saturating_duration_since(build.started);
        let ending = if named {
            None
        } else if nix.done > self.done_attributed || !self.builds_counted {
            // Counted done, or no counters to go by (a partial stream): it finished.
            Some(if build.seen_working {
                Ending::Built
            } else {
                Ending::Reused
            })
        } else if self.unattributed_failures() > 0 {
            if self.pending.is_empty() && self.builds.is_empty() {
                None
            } else {
                if self.pending.len() >= MAX_RUNNING_BUILDS {
                    // Only a garbage stream keeps this many undecided: decide them now.
                    self.decide_pending(true);
                }
                self.pending.push(PendingBuild {
                    drv_path: build.drv_path,
                    host: build.host,
                    log_tail: build.log_tail,
                    elapsed,
                });
                self.decide_pending(false);
                return;
            }
        } else {
            Some(Ending::Cancelled)
        };
        let Some(ending) = ending else {
            self.failures_attributed += 1;
            if !named {
                self.guessed.push(build.drv_path.clone());
            }
            self.record_failure(build.drv_path, build.host, build.log_tail);
            self.decide_pending(false);
            return;
        };
        if matches!(ending, Ending::Built | Ending::Reused) {
            self.done_attributed += 1;
            self.builds_done += 1;
        }
        self.record_ending(build.drv_path, build.host, build.log_tail, ending, elapsed);
        self.decide_pending(false);
    }

    /// Failures nix counted that no stopped build has been matched to yet, less those an error
    /// already pinned on a running build.
    fn unattributed_failures(&self) -> u64 {
        let nix = self.aggregate(ActivityType::Builds);
        nix.failed
            .saturating_sub(self.failures_attributed + self.failing.len() as u64)
    }

    /// Counts a build that ended without failing, tells the renderers, and remembers it in case
    /// a later error says it failed after all.
    fn record_ending(
        &mut self,
        drv_path: String,
        host: String,
        log_tail: VecDeque<String>,
        ending: Ending,
        elapsed: Duration,
    ) {
        let happening = match ending {
            Ending::Built => {
                *self.built.entry(host.clone()).or_default() += 1;
                Happening::BuildFinished {
                    drv_path: drv_path.clone(),
                    host: host.clone(),
                    elapsed,
                }
            }
            Ending::Reused => {
                *self.reused.entry(host.clone()).or_default() += 1;
                Happening::BuildReused {
                    drv_path: drv_path.clone(),
                    host: host.clone(),
                }
            }
            Ending::Cancelled => {
                self.builds_cancelled += 1;
                if self.cancelled.len() < MAX_FAILED_KEPT {
                    self.cancelled.push(CancelledBuild {
                        drv: drv_path.clone(),
                        host: host.clone(),
                    });
                }
                Happening::BuildCancelled {
                    drv_path: drv_path.clone(),
                    host: host.clone(),
                    elapsed,
                }
            }
        };
        self.happen(happening);
        self.remember(RecentBuild {
            drv_path,
            host,
            log_tail,
            ending,
        });
    }

    /// Keeps an ended build (at most [`RECENT_BUILDS_KEPT`]) in case an error names it later.
    fn remember(&mut self, build: RecentBuild) {
        if self.recent_builds.len() >= RECENT_BUILDS_KEPT {
            self.recent_builds.pop_front();
        }
        self.recent_builds.push_back(build);
    }

    /// Takes back what [`State::record_ending`] counted for a build that failed after all.
    fn uncount(&mut self, build: &RecentBuild) {
        let counted = match build.ending {
            Ending::Built => Some(&mut self.built),
            Ending::Reused => Some(&mut self.reused),
            Ending::Cancelled => None,
        };
        if let Some(counted) = counted {
            self.builds_done = self.builds_done.saturating_sub(1);
            if let Some(count) = counted.get_mut(&build.host) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counted.remove(&build.host);
                }
            }
        } else {
            self.builds_cancelled = self.builds_cancelled.saturating_sub(1);
            if let Some(i) = self.cancelled.iter().position(|c| c.drv == build.drv_path) {
                self.cancelled.remove(i);
            }
        }
    }

    /// Decides the pending builds the counters now leave no doubt about: none of nix's
    /// failures left for them means they were cancelled; as many failures as pending builds,
    /// with nothing else running, means they all failed. At the end of the log (`at_end`) the
    /// rest is decided too: the failed build is the last one nix stopped (as seen with 2.8 and
    /// 2.26), the earlier ones were cancelled.
    fn decide_pending(&mut self, at_end: bool) {
        if self.pending.is_empty() {
            return;
        }
        let left = self.unattributed_failures().min(self.pending.len() as u64) as usize;
        let all_failed = left == self.pending.len() && self.builds.is_empty();
        if left > 0 && !all_failed && !at_end {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let first_failed = pending.len() - left;
        for (i, build) in pending.into_iter().enumerate() {
            if i >= first_failed {
                self.failures_attributed += 1;
                self.guessed.push(build.drv_path.clone());
                self.record_failure(build.drv_path, build.host, build.log_tail);
            } else {
                self.record_ending(
                    build.drv_path,
                    build.host,
                    build.log_tail,
                    Ending::Cancelled,
                    build.elapsed,
                );
            }
        }
    }

    /// The log has ended: decides what is still undecided (see [`State::decide_pending`]).
    pub fn settle(&mut self) {
        self.decide_pending(true);
    }

    fn record_failure(&mut self, drv_path: String, host: String, log_tail: VecDeque<String>) {
        self.builds_failed += 1;
        let failed = FailedBuild {
            drv: drv_path,
            host,
            log: log_tail.into_iter().collect(),
        };
        if self.failed.len() < MAX_FAILED_KEPT {
            self.failed.push(failed.clone());
        }
        self.happen(Happening::BuildFailed { build: failed });
    }

    fn finish_transfer(&mut self, transfer: Transfer, now: Instant) {
        let bytes = transfer.done.max(transfer.expected);
        *self.transfers_done.entry(transfer.kind).or_default() += 1;
        *self.transfer_bytes_done.entry(transfer.kind).or_default() += bytes;
        let per_peer = match transfer.kind {
            TransferKind::Substitute => &mut self.substituted,
            TransferKind::CopyFrom => &mut self.copied_from,
            TransferKind::CopyTo => &mut self.copied_to,
        };
        *per_peer.entry(transfer.peer.clone()).or_default() += 1;
        self.happen(Happening::TransferFinished {
            kind: transfer.kind,
            path: transfer.path,
            peer: transfer.peer,
            bytes,
            elapsed: now.saturating_duration_since(transfer.started),
        });
    }

    /// An error message: kept for the summary; a build it names failed. `report` is true for
    /// nix's own error reports (`raw_msg`), false for plain lines (relayed from a builder).
    fn error(&mut self, text: &str, report: bool) {
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(bounded(text, 4 * MAX_KEPT_TEXT));
        }
        if report {
            self.fatal = Some(text.to_string());
        }
        for drv in drv_paths_in(text) {
            if self.failed.iter().any(|f| f.drv == drv) {
                continue;
            }
            // A running build named in an error failed (nix 2.26 says "build of X on Y failed"
            // before it stops X and the builds it abandons).
            let running: Vec<ActivityId> = self
                .builds
                .iter()
                .filter(|(_, b)| b.drv_path == drv)
                .map(|(id, _)| *id)
                .collect();
            if !running.is_empty() {
                self.failing.extend(running);
                continue;
            }
            if let Some(index) = self.pending.iter().position(|b| b.drv_path == drv) {
                let build = self.pending.remove(index);
                self.failures_attributed += 1;
                self.record_failure(build.drv_path, build.host, build.log_tail);
                continue;
            }
            // A build taken as done or cancelled failed after all. With nix's counters, only
            // while a failure they count is still unmatched: nix's closing "build of 'A', 'B'
            // failed" also names the builds it cancelled. Without counters (a partial stream)
            // the error is all there is to go by.
            if report && text.contains("builder for '") && self.correct_guess(drv) {
                continue;
            }
            if self.builds_counted && self.unattributed_failures() == 0 {
                continue;
            }
            let Some(index) = self.recent_builds.iter().position(|b| b.drv_path == drv) else {
                continue;
            };
            let Some(build) = self.recent_builds.remove(index) else {
                continue;
            };
            self.uncount(&build);
            if self.builds_counted {
                self.failures_attributed += 1;
            }
            self.record_failure(build.drv_path, build.host, build.log_tail);
        }
        self.decide_pending(false);
    }

    /// nix's "builder for 'X' failed" names the build that really failed. When X was taken as
    /// done while the counters pinned the failure on another build (with `--keep-going`, nix
    /// stops a build's activity when it lets go of it, not when it ends, seen with 2.8 and
    /// 2.26), the two swap: X failed, the guessed one was built. Returns whether it swapped.
    fn correct_guess(&mut self, drv: &str) -> bool {
        let Some(named) = self
            .recent_builds
            .iter()
            .position(|b| b.drv_path == drv && matches!(b.ending, Ending::Built | Ending::Reused))
        else {
            return false;
        };
        let Some(failed) = self
            .guessed
            .last()
            .and_then(|guess| self.failed.iter().position(|f| f.drv == *guess))
        else {
            return false;
        };
        let Some(build) = self.recent_builds.remove(named) else {
            return false;
        };
        self.guessed.pop();
        let wrong = self.failed.remove(failed);
        self.builds_failed = self.builds_failed.saturating_sub(1);
        self.uncount(&build);
        self.record_failure(build.drv_path, build.host, build.log_tail);
        // The guessed one was built: counted as record_ending counts a build.
        self.builds_done += 1;
        *self.built.entry(wrong.host.clone()).or_default() += 1;
        self.remember(RecentBuild {
            drv_path: wrong.drv,
            host: wrong.host,
            log_tail: wrong.log.into_iter().collect(),
            ending: Ending::Built,
        });
        true
    }

    /// The latest progress of an aggregate type: stopped activities plus running ones.
    fn aggregate(&self, kind: ActivityType) -> Progress {
        let mut total = self.folded.get(&kind).copied().unwrap_or_default();
        for live in self.live.values() {
            if let Live::Aggregate(k, p) = live {
                if *k == kind {
                    total.done += p.done;
                    total.expected += p.expected;
                    total.running += p.running;
                    total.failed += p.failed;
                }
            }
        }
        total
    }

    /// The happenings of the updates since the last [`State::clear_happenings`], oldest first.
    pub fn happenings(&self) -> &[Happening] {
        &self.happenings
    }

    /// Forgets the happenings once a renderer has shown them.
    pub fn clear_happenings(&mut self) {
        self.happenings.clear();
    }

    /// The builds under way, oldest first.
    pub fn running_builds(&self) -> impl Iterator<Item = &RunningBuild> {
        self.builds.values()
    }

    /// The transfers under way, oldest first.
    pub fn running_transfers(&self) -> impl Iterator<Item = &Transfer> {
        self.transfers.values()
    }

    /// Build totals: nix's own `Builds` counters where it sent them, else what was seen.
    pub fn builds(&self) -> Counts {
        let nix = self.aggregate(ActivityType::Builds);
        let running = self.builds.len() as u64;
        let done = self.builds_done.max(self.builds_carried + nix.done);
        let failed = self.builds_failed.max(nix.failed);
        Counts {
            done,
            running,
            failed,
            expected: (self.builds_carried + nix.expected).max(done + running + failed),
            ..Counts::default()
        }
    }

    /// Substitution totals (paths and bytes); expected bytes come from nix's `Realise` estimate.
    pub fn downloads(&self) -> Counts {
        let mut counts = self.transfer_counts(&[TransferKind::Substitute]);
        let nix = self.aggregate(ActivityType::CopyPaths);
        counts.expected = counts.expected.max(nix.expected);
        let estimate = self
            .expected_bytes
            .get(&ActivityType::CopyPath)
            .copied()
            .unwrap_or(0);
        counts.bytes_expected = counts.bytes_expected.max(estimate);
        counts
    }

    /// Totals of copies to and from other stores (builders), not substitutions.
    pub fn copies(&self) -> Counts {
        self.transfer_counts(&[TransferKind::CopyFrom, TransferKind::CopyTo])
    }

    fn transfer_counts(&self, kinds: &[TransferKind]) -> Counts {
        let mut counts = Counts::default();
        for kind in kinds {
            counts.done += self.transfers_done.get(kind).copied().unwrap_or(0);
            counts.bytes_done += self.transfer_bytes_done.get(kind).copied().unwrap_or(0);
        }
        counts.bytes_expected = counts.bytes_done;
        for transfer in self.transfers.values().filter(|t| kinds.contains(&t.kind)) {
            counts.running += 1;
            counts.bytes_done += transfer.done;
            counts.bytes_expected += transfer.expected.max(transfer.done);
        }
        counts.expected = counts.done + counts.running;
        counts
    }

    /// The other stores of the transfers of `kind` so far, running or finished: where paths
    /// came from, or went to for [`TransferKind::CopyTo`].
    pub fn peers(&self, kind: TransferKind) -> BTreeSet<&str> {
        let finished = match kind {
            TransferKind::Substitute => &self.substituted,
            TransferKind::CopyFrom => &self.copied_from,
            TransferKind::CopyTo => &self.copied_to,
        };
        finished
            .keys()
            .map(String::as_str)
            .chain(
                self.transfers
                    .values()
                    .filter(|t| t.kind == kind)
                    .map(|t| t.peer.as_str()),
            )
            .collect()
    }

    /// The stores paths came from (substituters and builders), for "from where" displays.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.iter().map(String::as_str)
    }

    /// The builds that failed so far (at most [`MAX_FAILED_KEPT`]).
    pub fn failed_builds(&self) -> &[FailedBuild] {
        &self.failed
    }

    /// nix's error messages so far, colour codes removed (at most [`MAX_ERRORS_KEPT`]).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Whether the log says the run failed so far: a build failed (nix counted it or an error
    /// named it), or nix's own error ended the run (an evaluation error, "Unable to start any
    /// build", an interrupt). Message levels alone never decide: nix relays a builder's
    /// warnings, and its own "error (ignored)" lines, as errors in runs that succeed.
    pub fn has_failed(&self) -> bool {
        self.builds_failed > 0
            || !self.pending.is_empty()
            || self.aggregate(ActivityType::Builds).failed > 0
            || self.fatal.is_some()
    }

    /// The builds nix stopped unfinished so far (at most [`MAX_FAILED_KEPT`]).
    pub fn cancelled_builds(&self) -> &[CancelledBuild] {
        &self.cancelled
    }

    /// Time since the first event, as of `now`.
    pub fn elapsed(&self, now: Instant) -> Duration {
        self.started
            .map_or(Duration::ZERO, |start| now.saturating_duration_since(start))
    }

    /// What the run did so far, as of `now`.
    pub fn summary(&self, now: Instant) -> Summary {
        let bytes_downloaded = [TransferKind::Substitute, TransferKind::CopyFrom]
            .iter()
            .map(|kind| self.transfer_bytes_done.get(kind).copied().unwrap_or(0))
            .sum();
        Summary {
            ok: !self.has_failed(),
            built: self.built.clone(),
            reused: self.reused.clone(),
            substituted: self.substituted.clone(),
            copied_from: self.copied_from.clone(),
            copied_to: self.copied_to.clone(),
            bytes_downloaded,
            failed: self.failed.clone(),
            cancelled: self.cancelled.clone(),
            builds_cancelled: self.builds_cancelled,
            errors: self.errors.clone(),
            elapsed_secs: self.elapsed(now).as_secs_f64(),
        }
    }

    /// How many finished builds are remembered for late failure messages (bounded).
    #[cfg(test)]
    pub(crate) fn recent_builds_len(&self) -> usize {
        self.recent_builds.len()
    }

    /// How many activities are being followed; bounded by what nix runs at once, not by the
    /// length of the log.
    pub fn live_activities(&self) -> usize {
        self.live.len() + self.builds.len() + self.transfers.len()
    }
}
