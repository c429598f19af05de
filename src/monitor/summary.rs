//! What a run did, once it is over: the last thing every renderer shows.

use serde::Serialize;
use std::collections::BTreeMap;

/// The outcome of a monitored nix run: where things were built, where they came from, what failed.
///
/// Serialized as the `{"event":"summary",...}` JSON line, so its field names are part of the
/// command-line contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Whether the run succeeded: nix's exit status where nixdispatch ran nix (`build`, `home`,
    /// `os`), else (`monitor`) what the log says: no failed build and no error of nix's own
    /// that ended the run. Never message levels. The exit code follows it.
    pub ok: bool,
    /// Derivations built, per builder store URI (`"local"` for this machine).
    pub built: BTreeMap<String, u64>,
    /// Derivations a builder already had built: nix sent them to it as builds, it handed the
    /// outputs back without building (per builder store URI).
    pub reused: BTreeMap<String, u64>,
    /// Store paths substituted, per substituter URI.
    pub substituted: BTreeMap<String, u64>,
    /// Store paths copied into this store from another store (a builder's), per source URI.
    pub copied_from: BTreeMap<String, u64>,
    /// Store paths copied from this store to another (inputs sent to a builder, `nix copy --to`),
    /// per destination URI.
    pub copied_to: BTreeMap<String, u64>,
    /// Bytes of store paths (NAR size, as nix reports copy progress) that arrived in this store by
    /// substitution or copy.
    pub bytes_downloaded: u64,
    /// Per source (substituter or builder URI) of the paths that arrived: how many, their
    /// bytes and the seconds their copies took.
    pub from_sources: BTreeMap<String, SourceTotals>,
    /// Builds that failed, with their last log lines (at most [`super::MAX_FAILED_KEPT`]).
    pub failed: Vec<FailedBuild>,
    /// Builds nix stopped unfinished, e.g. because another one failed (without
    /// `--keep-going`) or the run was interrupted (at most [`super::MAX_FAILED_KEPT`]).
    pub cancelled: Vec<CancelledBuild>,
    /// How many builds nix stopped unfinished, all of them.
    pub builds_cancelled: u64,
    /// Error messages nix printed, without colour codes (at most [`super::MAX_ERRORS_KEPT`]).
    pub errors: Vec<String>,
    /// Seconds from the first line of the log to the end of the run.
    pub elapsed_secs: f64,
}

/// What came from one source in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SourceTotals {
    /// Store paths.
    pub paths: u64,
    /// Their bytes, as nix reported them (0 where it did not).
    pub bytes: u64,
    /// The seconds their copies took, added up.
    pub secs: f64,
}

/// A build that failed, with what is needed to see why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedBuild {
    /// The derivation.
    pub drv: String,
    /// Where it was built: the builder's store URI, or `"local"`.
    pub host: String,
    /// Its last log lines (at most [`super::LOG_TAIL_LINES`]), oldest first.
    pub log: Vec<String>,
}

/// A build nix stopped before it finished; it neither failed nor produced its outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CancelledBuild {
    /// The derivation.
    pub drv: String,
    /// Where it was running: the builder's store URI, or `"local"`.
    pub host: String,
}

impl Summary {
    /// How many derivations were built, wherever.
    pub fn built_total(&self) -> u64 {
        self.built.values().sum()
    }

    /// How many store paths were substituted, from any substituter.
    pub fn substituted_total(&self) -> u64 {
        self.substituted.values().sum()
    }
}
