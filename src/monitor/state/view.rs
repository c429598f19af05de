//! What renderers and callers read of the state: running activities, totals, failures and
//! the summary.

use super::{Counts, Live, RunningBuild, State, Transfer, TransferKind};
use crate::log::{ActivityType, Progress};
use crate::monitor::{CancelledBuild, FailedBuild, Summary};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

impl State {
    /// The latest progress of an aggregate type: stopped activities plus running ones.
    pub(super) fn aggregate(&self, kind: ActivityType) -> Progress {
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
        let seen_running = self.builds.len() as u64;
        let done = self.builds_done.max(self.builds_carried + nix.done);
        let failed = self.builds_failed.max(nix.failed);
        // nix counts a build done (or failed) before it stops the build's activity: with its
        // counters, a build it counted is not also running, or it would be counted twice
        // ("2/5 done, 1 failed" for 4 derivations).
        let (running, expected) = if self.builds_counted {
            let expected = (self.builds_carried + nix.expected).max(done + failed);
            (seen_running.min(expected - done - failed), expected)
        } else {
            (seen_running, done + seen_running + failed)
        };
        Counts {
            done,
            running,
            failed,
            expected,
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

    pub(super) fn transfer_counts(&self, kinds: &[TransferKind]) -> Counts {
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

    /// The builds that failed so far (at most [`crate::monitor::MAX_FAILED_KEPT`]).
    pub fn failed_builds(&self) -> &[FailedBuild] {
        &self.failed
    }

    /// nix's error messages so far, colour codes removed (at most
    /// [`crate::monitor::MAX_ERRORS_KEPT`]).
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

    /// The builds nix stopped unfinished so far (at most [`crate::monitor::MAX_FAILED_KEPT`]).
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
            from_sources: self.from_sources.clone(),
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
