//! What became of each build and store path in a run, kept for the result file and the CI
//! summary: a renderer wrapper that reads the happenings and draws nothing itself.

use super::Render;
use crate::monitor::{Happening, State, Summary, TransferKind};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildEnd {
    /// Built.
    Built,
    /// A builder already had it and handed it back.
    Reused,
    /// Failed.
    Failed,
    /// Stopped before it finished (another build failed, Ctrl-C, a builder went away).
    Cancelled,
}

/// What a run did, per derivation and per store path.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// The plan's mode and reason, as shown.
    pub mode: String,
    /// Why that mode.
    pub reason: String,
    /// Each build: how it ended and where (`local` or a builder's store URI).
    pub builds: BTreeMap<String, (BuildEnd, String)>,
    /// Each store path that came from elsewhere, and from where.
    pub fetched: BTreeMap<String, String>,
    /// What the run's builds and copies took, for the history ([`crate::history`]).
    pub learned: crate::history::Recording,
}

/// The shared record a [`Recorder`] fills.
pub type SharedRecord = Arc<Mutex<RunRecord>>;

/// Passes everything to the renderer inside and keeps a [`RunRecord`].
pub struct Recorder {
    inner: Box<dyn Render + Send>,
    record: SharedRecord,
}

impl Recorder {
    /// Wraps `inner`; read the record through the returned handle after the run.
    pub fn new(inner: Box<dyn Render + Send>) -> (Recorder, SharedRecord) {
        let record = SharedRecord::default();
        (
            Recorder {
                inner,
                record: record.clone(),
            },
            record,
        )
    }
}

/// Locks a record, whatever a panicking holder left behind.
pub fn lock(record: &SharedRecord) -> std::sync::MutexGuard<'_, RunRecord> {
    record.lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds what these happenings say about times to the run's history recording: each build's
/// time and outcome per name and host, each copy's bytes and time per store.
fn learn(learned: &mut crate::history::Recording, happenings: &[Happening]) {
    use crate::history::{BuildSample, CopySample, Direction};
    use crate::monitor::store_path_name;
    let mut at = None;
    let mut now = || *at.get_or_insert_with(crate::history::unix_now);
    for h in happenings {
        match h {
            Happening::BuildFinished {
                drv_path,
                host,
                elapsed,
            } => learned.add_build(
                store_path_name(drv_path),
                host,
                BuildSample {
                    at: now(),
                    secs: Some(elapsed.as_secs_f64()),
                    ok: true,
                },
            ),
            Happening::BuildFailed { build } => learned.add_build(
                store_path_name(&build.drv),
                &build.host,
                BuildSample {
                    at: now(),
                    secs: None,
                    ok: false,
                },
            ),
            Happening::TransferFinished {
                kind,
                path,
                peer,
                bytes,
                elapsed,
                ..
            } => learned.add_copy(
                store_path_name(path),
                peer,
                CopySample {
                    at: now(),
                    direction: match kind {
                        TransferKind::CopyTo => Direction::To,
                        TransferKind::Substitute | TransferKind::CopyFrom => Direction::From,
                    },
                    bytes: *bytes,
                    secs: elapsed.as_secs_f64(),
                },
            ),
            _ => {}
        }
    }
}

impl Render for Recorder {
    fn expected(&mut self, estimate: Option<crate::history::estimate::Estimate>) {
        self.inner.expected(estimate);
    }

    fn header(&mut self, mode: &str, reason: &str) {
        {
            let mut r = lock(&self.record);
            r.mode = mode.to_owned();
            r.reason = reason.to_owned();
        }
        self.inner.header(mode, reason);
    }

    fn message(&mut self, text: &str) {
        self.inner.message(text);
    }

    fn draw(&mut self, state: &State, now: Instant) {
        {
            let mut r = lock(&self.record);
            learn(&mut r.learned, state.happenings());
            for h in state.happenings() {
                let (drv, end, host) = match h {
                    Happening::BuildFinished { drv_path, host, .. } => {
                        (drv_path, BuildEnd::Built, host)
                    }
                    Happening::BuildReused { drv_path, host } => (drv_path, BuildEnd::Reused, host),
                    Happening::BuildCancelled { drv_path, host, .. } => {
                        (drv_path, BuildEnd::Cancelled, host)
                    }
                    Happening::BuildFailed { build } => (&build.drv, BuildEnd::Failed, &build.host),
                    Happening::TransferFinished {
                        kind: TransferKind::Substitute | TransferKind::CopyFrom,
                        path,
                        peer,
                        ..
                    } => {
                        r.fetched.insert(path.clone(), peer.clone());
                        continue;
                    }
                    _ => continue,
                };
                r.builds.insert(drv.clone(), (end, host.clone()));
            }
        }
        self.inner.draw(state, now);
    }

    fn finish(&mut self, state: &State, summary: &Summary) {
        self.inner.finish(state, summary);
    }

    fn abandon(&mut self, state: &State, summary: &Summary) {
        self.inner.abandon(state, summary);
    }
}
