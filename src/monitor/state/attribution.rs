//! Which build failed: nix counts failures on its `Builds` aggregate and names failed builds in
//! its error text, but never says which stopped activity failed. Decided here from the counters,
//! the stop order and the error messages, with guesses corrected when a later error says so.

use super::{bounded, RunningBuild, State};
use crate::log::{ActivityId, ActivityType};
use crate::monitor::names::drv_paths_in;
use crate::monitor::{
    CancelledBuild, FailedBuild, Happening, MAX_ERRORS_KEPT, MAX_FAILED_KEPT, MAX_KEPT_TEXT,
    MAX_RUNNING_BUILDS, RECENT_BUILDS_KEPT,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Whether an error-level message is in fact a warning: nix relays the plain stderr lines of
/// its build hook and of a builder's store (`warning: '…' does not appear to be a binary
/// cache`, `warning: error: SQLite database '…' is busy`) at level error (seen with 2.26).
pub fn is_forwarded_warning(text: &str) -> bool {
    text.trim_start().starts_with("warning:")
}

/// How a build that stopped without failing ended, as far as nix's counters tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// nix counted it done and the builder was seen working on it.
    Built,
    /// nix counted it done, but the builder only handed back outputs it already had.
    Reused,
    /// nix stopped it unfinished (another build failed, Ctrl-C, the builder went away).
    Cancelled,
}

/// A stopped build, kept briefly in case a later error message says it failed after all.
#[derive(Debug, Clone)]
pub(super) struct RecentBuild {
    drv_path: String,
    host: String,
    log_tail: VecDeque<String>,
    ending: Ending,
}

/// A stopped build nix counted a failure for while other builds could have been the one that
/// failed (nix stops the builds it abandons in no telling order): decided when an error names
/// it, when the counters leave no doubt, or at the end of the log.
#[derive(Debug, Clone)]
pub(super) struct PendingBuild {
    drv_path: String,
    host: String,
    log_tail: VecDeque<String>,
    elapsed: Duration,
}

impl State {
    /// Decides how a stopped build ended. nix does not say, but it counts: a success or a
    /// failure reaches the `Builds` aggregate just before the build's activity stops, and a
    /// build stopped without either was abandoned (cancelled). Error messages that name a
    /// running build win over the counters. When nix counted a failure and other builds were
    /// running too, the stop alone cannot say which one failed (nix stops the builds it
    /// abandons in no telling order, seen with 2.8 and 2.26): the build waits in `pending`
    /// until an error names it or the log ends ([`State::settle`]).
    pub(super) fn finish_build(&mut self, id: ActivityId, build: RunningBuild, now: Instant) {
        let nix = self.aggregate(ActivityType::Builds);
        let named = self.failing.remove(&id);
        // A remote build's time is the builder's own (its relayed activity), without the hook's
        // copies around it; else the whole activity.
        let elapsed = match build.worked {
            Some((_, Some(took))) => took,
            _ => now.saturating_duration_since(build.started),
        };
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
    pub(super) fn unattributed_failures(&self) -> u64 {
        let nix = self.aggregate(ActivityType::Builds);
        nix.failed
            .saturating_sub(self.failures_attributed + self.failing.len() as u64)
    }

    /// Counts a build that ended without failing, tells the renderers, and remembers it in case
    /// a later error says it failed after all.
    pub(super) fn record_ending(
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
    pub(super) fn remember(&mut self, build: RecentBuild) {
        if self.recent_builds.len() >= RECENT_BUILDS_KEPT {
            self.recent_builds.pop_front();
        }
        self.recent_builds.push_back(build);
    }

    /// Takes back what [`State::record_ending`] counted for a build that failed after all.
    pub(super) fn uncount(&mut self, build: &RecentBuild) {
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
    pub(super) fn decide_pending(&mut self, at_end: bool) {
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

    /// The log has ended: decides the stopped builds a counted failure could still belong to
    /// (the last of them nix stopped failed, the earlier ones were cancelled).
    pub fn settle(&mut self) {
        self.decide_pending(true);
    }

    pub(super) fn record_failure(
        &mut self,
        drv_path: String,
        host: String,
        log_tail: VecDeque<String>,
    ) {
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

    /// An error message: kept for the summary; a build it names failed. `report` is true for
    /// nix's own error reports (`raw_msg`), false for plain lines (relayed from a builder).
    pub(super) fn error(&mut self, text: &str, report: bool) {
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

    /// Whether `drv` is a build of this run the state follows or followed (running, recently
    /// ended, waiting for a verdict, or failed): a failure of it is shown by the state's own
    /// [`super::Happening::BuildFailed`], so nix's report of the same failure need not be.
    pub fn knows_build(&self, drv: &str) -> bool {
        self.builds.values().any(|b| b.drv_path == drv)
            || self.recent_builds.iter().any(|b| b.drv_path == drv)
            || self.pending.iter().any(|b| b.drv_path == drv)
            || self.failed.iter().any(|b| b.drv == drv)
    }

    /// nix's "builder for 'X' failed" names the build that really failed. When X was taken as
    /// done while the counters pinned the failure on another build (with `--keep-going`, nix
    /// stops a build's activity when it lets go of it, not when it ends, seen with 2.8 and
    /// 2.26), the two swap: X failed, the guessed one was built. Returns whether it swapped.
    pub(super) fn correct_guess(&mut self, drv: &str) -> bool {
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
}
