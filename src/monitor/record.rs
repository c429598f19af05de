//! What became of each build and store path in a run, kept for the result file and the
//! history: taken from the happenings the monitor's state reports, as they are drawn.

use super::{store_path_name, Happening, TransferKind};
use crate::history::{BuildSample, CopySample, Direction, Recording};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

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
    /// Per peer, when its last copy ended: the link time already credited to a copy.
    link_busy_until: HashMap<String, Instant>,
}

impl RunRecord {
    /// Adds what these happenings (one draw's worth) say: how builds ended, where paths came
    /// from, what builds and copies took.
    pub fn note(&mut self, happenings: &[Happening]) {
        self.note_at(happenings, Instant::now());
    }

    /// [`RunRecord::note`] of happenings seen at `now`.
    fn note_at(&mut self, happenings: &[Happening], now: Instant) {
        learn(
            &mut self.learned,
            &mut self.link_busy_until,
            happenings,
            now,
        );
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

/// The link time of a copy from or to `peer` that took `elapsed` and ended at `now`: the part
/// of it no earlier copy of the run over the same link was already credited with. Nix 2.26+
/// starts every path's copy activity at once and moves the paths one after the other, so the
/// second of two 2.5 s copies reports 5 s; summed, the link would look half as fast as it is.
/// Copies that never overlap (nix 2.8's hook) keep their whole time.
fn link_time(
    busy_until: &mut HashMap<String, Instant>,
    peer: &str,
    elapsed: Duration,
    now: Instant,
) -> Duration {
    let start = now.checked_sub(elapsed).unwrap_or(now);
    let from = busy_until.get(peer).map_or(start, |busy| start.max(*busy));
    let busy = busy_until.entry(peer.to_owned()).or_insert(now);
    *busy = (*busy).max(now);
    now.saturating_duration_since(from)
}

/// Adds what these happenings say about times to the run's history recording: each build's
/// time and outcome per name and host, each copy's bytes and link time per store.
fn learn(
    learned: &mut Recording,
    busy_until: &mut HashMap<String, Instant>,
    happenings: &[Happening],
    seen: Instant,
) {
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
                    secs: link_time(busy_until, peer, *elapsed, seen).as_secs_f64(),
                },
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy(path: &str, secs: f64) -> Happening {
        Happening::TransferFinished {
            kind: TransferKind::CopyFrom,
            path: format!("/nix/store/{}-{path}", "a".repeat(32)),
            peer: "ssh-ng://seasmoke".into(),
            bytes: 1_000_000,
            total_bytes: None,
            elapsed: Duration::from_secs_f64(secs),
        }
    }

    fn secs_of(record: &RunRecord, name: &str) -> Vec<f64> {
        record
            .learned
            .copies
            .iter()
            .filter(|((n, _), _)| n == name)
            .flat_map(|(_, samples)| samples.iter().map(|s| (s.secs * 100.0).round() / 100.0))
            .collect()
    }

    #[test]
    fn copies_nix_starts_together_are_credited_the_link_time_each_really_took() {
        // nix 2.26+: both copies start at 0; one ends at 2.5 s, the other at 5 s.
        let t0 = Instant::now();
        let mut record = RunRecord::default();
        record.note_at(&[copy("one", 2.5)], t0 + Duration::from_millis(2500));
        record.note_at(&[copy("two", 5.0)], t0 + Duration::from_millis(5000));
        assert_eq!(secs_of(&record, "one"), [2.5]);
        assert_eq!(secs_of(&record, "two"), [2.5]);
        // nix 2.8's hook: one after the other, each its own time.
        let mut record = RunRecord::default();
        record.note_at(&[copy("one", 2.5)], t0 + Duration::from_millis(2500));
        record.note_at(&[copy("two", 2.5)], t0 + Duration::from_millis(5000));
        assert_eq!(secs_of(&record, "two"), [2.5]);
    }
}
