//! What a nix run is doing, from its log: builds, substitutions, copies, failures.
//!
//! [`State::update`] is the pure core: one [`crate::log::Event`] and the time it was read in, "did
//! anything visible change?" out. [`Monitor`] joins a state to a [`crate::render::Render`]er and
//! is what commands feed nix's stderr lines to.

mod drive;
mod live;
mod names;
mod record;
mod render;
mod state;
mod summary;

pub use crate::store_path::short_name as store_path_name;
pub use drive::drive;
pub use live::Monitor;
pub use names::{drv_paths_in, host_of};
pub use record::{BuildEnd, RunRecord};
pub use render::Render;
pub use state::{
    is_forwarded_warning, Counts, Happening, RunningBuild, State, Transfer, TransferKind,
};
pub use summary::{CancelledBuild, FailedBuild, SourceTotals, Summary};

/// How many of a running build's last log lines are kept, to show when it fails.
pub const LOG_TAIL_LINES: usize = 20;
/// How many failed builds the summary lists (more are counted, not kept).
pub const MAX_FAILED_KEPT: usize = 50;
/// How many error messages the summary keeps.
pub const MAX_ERRORS_KEPT: usize = 50;
/// How many finished builds are remembered in case a later error says they failed.
const RECENT_BUILDS_KEPT: usize = 64;
/// How many activities (builds, transfers, aggregates) are followed at once at most.
const MAX_RUNNING: usize = 4096;
/// How many builds are followed at once at most (each keeps a log tail).
const MAX_RUNNING_BUILDS: usize = 512;
/// The most bytes of a running build's log tail kept.
const LOG_TAIL_BYTES: usize = 16 * 1024;
/// How many distinct builders and stores are named in counts; more are counted together.
const MAX_PEERS: usize = 256;
/// The name the stores past [`MAX_PEERS`] are counted under.
const OTHER_PEERS: &str = "(other stores)";
/// The longest string from the log the state keeps (store paths, host names, log tail lines);
/// error messages keep four times as much.
const MAX_KEPT_TEXT: usize = 4096;
/// How many undrained happenings a state holds before dropping the oldest.
const MAX_HAPPENINGS: usize = 4096;

#[cfg(test)]
mod tests;
