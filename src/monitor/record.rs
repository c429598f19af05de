//! What became of each build and store path in a run, kept for the result file and the
//! history: taken from the happenings the monitor's state reports, as they are drawn.

use super::{store_path_name, Happening, TransferKind};
use crate::history::{BuildSample, CopySample, Direction, Recording};
use std::collections::BTreeMap;

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
    /// Each build: how it ended and where (`local` or a builder's store URI).
    pub builds: BTreeMap<String, (BuildEnd, String)>,
    /// Each store path that came from elsewhere, and from where.
    pub fetched: BTreeMap<String, String>,
    /// What the run's builds and copies took, for the history ([`crate::history`]).
    pub learned: Recording,
}

impl RunRecord {
    /// Adds what these happenings (one draw's worth) say: how builds ended, where paths came
    /// from, what builds and copies took.
    pub fn note(&mut self, happenings: &[Happening]) {
        learn(&mut self.learned, happenings);
        for h in happenings {
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
                    self.fetched.insert(path.clone(), peer.clone());
                    continue;
                }
                _ => continue,
            };
            self.builds.insert(drv.clone(), (end, host.clone()));
        }
    }
}

/// Adds what these happenings say about times to the run's history recording: each build's
/// time and outcome per name and host, each copy's bytes and time per store.
fn learn(learned: &mut Recording, happenings: &[Happening]) {
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
