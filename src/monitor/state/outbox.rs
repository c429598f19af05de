//! The outbox: what happened in the last updates, for renderers that print one line per
//! event (plain, JSON). [`crate::monitor::Monitor`] hands them to the renderer, then clears them.

use super::{State, TransferKind};
use crate::log::Verbosity;
use crate::monitor::{FailedBuild, MAX_HAPPENINGS};
use std::time::Duration;

/// Something that happened in the last update, for renderers that print one line per event
/// (plain, JSON). [`crate::monitor::Monitor`] hands them to the renderer, then clears them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Happening {
    /// A build started.
    BuildStarted {
        /// The derivation.
        drv_path: String,
        /// Builder store URI or `"local"`.
        host: String,
        /// How long it should take, when the history knows.
        expected: Option<Duration>,
        /// The plan says the builder already has its outputs: nix's build hook only copies
        /// them here (a copy, shown as one).
        copy_back: bool,
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
        /// How long it should take, when the history knows.
        expected: Option<Duration>,
        /// Its size, when the plan knows it (the source's NAR size).
        total_bytes: Option<u64>,
    },
    /// A store path arrived or was sent.
    TransferFinished {
        /// Which way.
        kind: TransferKind,
        /// The store path.
        path: String,
        /// The other store.
        peer: String,
        /// Bytes copied, as far as nix reported them (else its size as the plan knew it).
        bytes: u64,
        /// Its size, when nix or the plan said.
        total_bytes: Option<u64>,
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

/// The happenings not shown yet, oldest first, at most [`MAX_HAPPENINGS`].
#[derive(Debug, Clone, Default)]
pub(super) struct Outbox(Vec<Happening>);

impl Outbox {
    fn push(&mut self, happening: Happening) {
        if self.0.len() >= MAX_HAPPENINGS {
            // Nobody is draining them (a state used without a renderer): keep the newest half.
            self.0.drain(..MAX_HAPPENINGS / 2);
        }
        self.0.push(happening);
    }
}

impl State {
    /// Puts what just happened in the outbox.
    pub(super) fn happen(&mut self, happening: Happening) {
        self.happenings.push(happening);
    }

    /// The happenings of the updates since the last [`State::clear_happenings`], oldest first.
    pub fn happenings(&self) -> &[Happening] {
        &self.happenings.0
    }

    /// Forgets the happenings once a renderer has shown them.
    pub fn clear_happenings(&mut self) {
        self.happenings.0.clear();
    }
}
