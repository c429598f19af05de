//! What a nix run is doing, from its log: builds, substitutions, copies, failures.
//!
//! [`State::update`] is the pure core: one [`crate::log::Event`] and the time it was read in, "did
//! anything visible change?" out. [`Monitor`] joins a state to a [`crate::render::Render`]er and
//! is what commands feed nix's stderr lines to.

mod live;
mod names;
mod state;
mod summary;

pub use live::{drive, Monitor};
pub use names::{drv_paths_in, host_of, store_path_name};
pub use state::{
    is_forwarded_warning, Counts, Happening, RunningBuild, State, Transfer, TransferKind,
};
pub use summary::{CancelledBuild, FailedBuild, Summary};

/// How many of a running build's last log lines are kept, to show when it fails.
pub const LOG_TAIL_LINES: usize = 20;
/// How many failed builds the summary lists (more are counted, not kept).
pub const MAX_FAILED_KEPT: usize = 50;
/// How many error messages the summary keeps.
pub const MAX_ERRORS_KEPT: usize = 50;
/// How many finished builds are remembered in case a later error says they failed.
const RECENT_BUILDS_KEPT: usize = 64;
/// How many undrained happenings a state holds before dropping the oldest.
const MAX_HAPPENINGS: usize = 4096;

#[cfg(test)]
mod tests;
