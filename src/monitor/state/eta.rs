//! Expected times: each step's from the history, and the whole run's from its steps
//! ([`crate::history::estimate`]), worked out again as steps start and end.

use super::State;
use crate::history::estimate::Estimate;
use crate::history::{History, RunEstimate, StepKind};
use crate::store_path::short_name;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Above this many steps, the whole run's estimate is worked out at most once per
/// [`SLOW_REFRESH`] (each time costs a schedule of every remaining step).
const STEPS_REFRESHED_EVERY_TIME: usize = 2000;
const SLOW_REFRESH: Duration = Duration::from_secs(1);

impl State {
    /// What earlier runs took, and this run's steps: each build and copy then carries its
    /// expected time, and [`State::run_estimate`] says what the whole run has left. Call once,
    /// before feeding lines.
    pub fn set_history(&mut self, history: Arc<History>, run: Option<RunEstimate>) {
        self.history = Some(history);
        self.eta = run.filter(|r| !r.is_empty()).map(Box::new);
        self.estimate_stale = self.eta.is_some();
    }

    /// The size of each store path the plan copies (the sources' NAR sizes): a copy whose
    /// progress nix does not report (Nix 2.8 over `ssh-ng://`) still has a total and bytes.
    pub fn set_sizes(&mut self, sizes: impl IntoIterator<Item = (String, u64)>) {
        self.sizes = sizes.into_iter().collect();
    }

    /// This run's steps and where each is, when the run was planned ([`State::set_history`]):
    /// what `--progress tree` draws.
    pub fn run_steps(&self) -> Option<&RunEstimate> {
        self.eta.as_deref()
    }

    /// The whole run's remaining time as of `now`, when the history knows any of its steps.
    pub fn run_estimate(&self, now: Instant) -> Option<Estimate> {
        if let Some(eta) = &self.eta {
            if self.estimate.is_none() {
                return eta.remaining(now);
            }
        }
        let (at, estimate) = self.estimate?;
        let estimate = estimate?;
        let since = now.saturating_duration_since(at).as_secs_f64();
        Some(Estimate {
            secs: (estimate.secs - since).max(0.0),
            partial: estimate.partial,
        })
    }

    pub(super) fn expected_build(&self, drv_path: &str, host: &str) -> Option<Duration> {
        let secs = self
            .history
            .as_ref()?
            .build_secs(short_name(drv_path), host)?;
        Duration::try_from_secs_f64(secs).ok()
    }

    pub(super) fn expected_copy(&self, path: &str, peer: &str) -> Option<Duration> {
        let secs = self
            .history
            .as_ref()?
            .copy_secs(short_name(path), peer, None)?;
        Duration::try_from_secs_f64(secs).ok()
    }

    /// Whether the plan says `drv`'s outputs are copied back from a builder that has them.
    pub(super) fn is_copy_back(&self, drv_path: &str) -> bool {
        self.eta
            .as_ref()
            .is_some_and(|eta| eta.kind_of(drv_path) == Some(StepKind::Copy))
    }

    /// The expected time of a copy-back, from the run's steps (the history's copy time).
    pub(super) fn expected_copy_back(&self, drv_path: &str) -> Option<Duration> {
        let secs = self.eta.as_ref()?.expected_secs(drv_path)?;
        Duration::try_from_secs_f64(secs).ok()
    }

    pub(super) fn step_started(&mut self, key: &str, now: Instant) {
        if let Some(eta) = &mut self.eta {
            eta.started(key, now);
            self.estimate_stale = true;
        }
    }

    pub(super) fn step_began_work(&mut self, key: &str, now: Instant) {
        if let Some(eta) = &mut self.eta {
            eta.began_work(key, now);
            self.estimate_stale = true;
        }
    }

    pub(super) fn step_ended(&mut self, key: &str) {
        if let Some(eta) = &mut self.eta {
            eta.ended(key);
            self.estimate_stale = true;
        }
    }

    #[cold]
    pub(super) fn refresh_estimate(&mut self, now: Instant) {
        let Some(eta) = &self.eta else {
            self.estimate_stale = false;
            return;
        };
        let recent = self
            .estimate
            .is_some_and(|(at, _)| now.saturating_duration_since(at) < SLOW_REFRESH);
        if eta.len() > STEPS_REFRESHED_EVERY_TIME && recent {
            return;
        }
        self.estimate = Some((now, eta.remaining(now)));
        self.estimate_stale = false;
    }
}
