//! What past runs took: build times per derivation name and host, copy times and sizes per
//! source, probe round trips per builder. Read once when a run starts (a value the planner and
//! the renderers get), written once when it ends, from the monitor's run record
//! (ARCHITECTURE.md, "Wave 3"). It never decides anything by itself.
//!
//! Its parts: [`file`] (the on-disk format), [`store`] (where it lives, loading, saving under a
//! lock with merge, bounds), [`estimate`] (a whole run's expected time from a plan).
//!
//! Keys are the derivation's name without its hash (`hello-2.12`, as nix-output-monitor keys
//! it) and the host that built it (`local`, or the builder's store URI without its query), so a
//! new version of the same package with a new hash is still known.

pub mod estimate;
mod file;
pub mod store;

pub use estimate::{RunEstimate, Step, StepKind};
pub use store::{load, save, state_dir, Loaded, HISTORY_FILE};

use std::collections::{HashMap, VecDeque};

/// How many samples are kept per key (nix-output-monitor keeps 10 too); older ones are dropped.
pub const SAMPLES_PER_KEY: usize = 10;
/// How many samples the whole history keeps at most (about 8 MiB on disk); past it the oldest
/// samples are dropped, whatever their key.
pub const MAX_SAMPLES: usize = 100_000;
/// The longest key text kept (a name or a host); longer ones are not recorded.
pub const MAX_KEY_LEN: usize = 512;

/// One build of a derivation on a host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildSample {
    /// When it ended, seconds since the Unix epoch.
    pub at: u64,
    /// How long it took, seconds; `None` for a failure (its time says nothing of a success).
    pub secs: Option<f64>,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Which way a copy went, seen from this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Into this store (a substitution, or a builder's output copied back).
    From,
    /// From this store to another (inputs sent to a builder).
    To,
}

/// One store path copied between this machine and another store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CopySample {
    /// When it ended, seconds since the Unix epoch.
    pub at: u64,
    /// Which way.
    pub direction: Direction,
    /// Bytes moved as nix reported them (0 when it did not say).
    pub bytes: u64,
    /// How long it took, seconds.
    pub secs: f64,
}

/// One probe of a builder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeSample {
    /// When, seconds since the Unix epoch.
    pub at: u64,
    /// The round trip, milliseconds.
    pub rtt_ms: f64,
}

/// A (name, host) or (name, store) key.
pub type Key = (String, String);

/// Everything the history knows, or what one run adds to it ([`Recording`] is the same type).
///
/// Samples of a key are oldest first, at most [`SAMPLES_PER_KEY`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Builds per (derivation name, host).
    pub builds: HashMap<Key, VecDeque<BuildSample>>,
    /// Copies per (store path name, other store).
    pub copies: HashMap<Key, VecDeque<CopySample>>,
    /// Probes per builder URI.
    pub probes: HashMap<String, VecDeque<ProbeSample>>,
    /// Bytes per second per store, worked out once when first asked (emptied by every add).
    rates: std::sync::OnceLock<HashMap<String, f64>>,
}

/// What one run adds to the history: built up as the run goes, saved once at its end.
pub type Recording = History;

/// The host key of a store or builder URI: `local` for this machine, else the URI without its
/// query (`ssh-ng://root@seasmoke:2222?ssh-key=…` → `ssh-ng://root@seasmoke:2222`), so the same
/// builder is the same key whatever options its machines line carries.
pub fn host_key(uri: &str) -> String {
    if uri.is_empty() || uri == "local" {
        return "local".to_string();
    }
    uri.split('?').next().unwrap_or(uri).to_string()
}

/// The seconds from the Unix epoch to now (0 on a clock before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn push_bounded<T>(samples: &mut VecDeque<T>, sample: T) {
    samples.push_back(sample);
    while samples.len() > SAMPLES_PER_KEY {
        samples.pop_front();
    }
}

fn key_ok(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_KEY_LEN
        && !text.contains(['\t', '\n', '\r'])
        && !text.chars().any(char::is_control)
}

/// The median of some numbers (the mean of the middle two for an even count); `None` for none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 0 {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records a build of derivation `name` on `host` (`local` or a builder URI).
    pub fn add_build(&mut self, name: &str, host: &str, sample: BuildSample) {
        let host = host_key(host);
        if !key_ok(name) || !key_ok(&host) || sample.secs.is_some_and(|s| !s.is_finite()) {
            return;
        }
        push_bounded(
            self.builds.entry((name.to_string(), host)).or_default(),
            sample,
        );
    }

    /// Records builds of `name` on `host`, oldest first, looking the key up once (loading).
    pub(crate) fn add_builds(&mut self, name: &str, host: &str, samples: &[BuildSample]) {
        let host = host_key(host);
        if samples.is_empty() || !key_ok(name) || !key_ok(&host) {
            return;
        }
        let kept = self.builds.entry((name.to_string(), host)).or_default();
        for s in samples.iter().filter(|s| s.secs.is_none_or(f64::is_finite)) {
            push_bounded(kept, *s);
        }
    }

    /// Records copies of `name` from or to `store`, oldest first, looking the key up once.
    pub(crate) fn add_copies(&mut self, name: &str, store: &str, samples: &[CopySample]) {
        let store = host_key(store);
        if samples.is_empty() || !key_ok(name) || !key_ok(&store) {
            return;
        }
        self.rates = std::sync::OnceLock::new();
        let kept = self.copies.entry((name.to_string(), store)).or_default();
        for s in samples
            .iter()
            .filter(|s| s.secs.is_finite() && s.secs >= 0.0)
        {
            push_bounded(kept, *s);
        }
    }

    /// Records a copy of store path `name` from or to `store`.
    pub fn add_copy(&mut self, name: &str, store: &str, sample: CopySample) {
        let store = host_key(store);
        if !key_ok(name) || !key_ok(&store) || !sample.secs.is_finite() || sample.secs < 0.0 {
            return;
        }
        self.rates = std::sync::OnceLock::new();
        push_bounded(
            self.copies.entry((name.to_string(), store)).or_default(),
            sample,
        );
    }

    /// The names of copies into this store whose size nix did not report (Nix 2.8 says no
    /// bytes for an output its build hook copies back over ssh-ng).
    pub fn unsized_copies(&self) -> Vec<&str> {
        self.copies
            .iter()
            .filter(|(_, s)| {
                s.iter()
                    .any(|s| s.bytes == 0 && s.direction == Direction::From)
            })
            .map(|((name, _), _)| name.as_str())
            .collect()
    }

    /// Gives every copy of `name` into this store that had no size the size `bytes` (its NAR
    /// size, read from this store once it arrived), so the link's bandwidth is learned too.
    pub fn size_copies(&mut self, name: &str, bytes: u64) {
        for ((n, _), samples) in self.copies.iter_mut() {
            if n != name {
                continue;
            }
            for s in samples.iter_mut() {
                if s.bytes == 0 && s.direction == Direction::From {
                    s.bytes = bytes;
                }
            }
        }
        self.rates = std::sync::OnceLock::new();
    }

    /// Records a probe of `builder`.
    pub fn add_probe(&mut self, builder: &str, sample: ProbeSample) {
        let builder = host_key(builder);
        if !key_ok(&builder) || !sample.rtt_ms.is_finite() {
            return;
        }
        push_bounded(self.probes.entry(builder).or_default(), sample);
    }

    /// Whether it holds no sample at all.
    pub fn is_empty(&self) -> bool {
        self.builds.is_empty() && self.copies.is_empty() && self.probes.is_empty()
    }

    /// How many samples it holds.
    pub fn len(&self) -> usize {
        self.builds.values().map(VecDeque::len).sum::<usize>()
            + self.copies.values().map(VecDeque::len).sum::<usize>()
            + self.probes.values().map(VecDeque::len).sum::<usize>()
    }

    /// Adds every sample of `other` (a run's [`Recording`]) after this history's own, keeping
    /// [`SAMPLES_PER_KEY`] per key.
    pub fn merge(&mut self, other: &History) {
        for ((name, host), samples) in &other.builds {
            for s in samples {
                self.add_build(name, host, *s);
            }
        }
        for ((name, store), samples) in &other.copies {
            for s in samples {
                self.add_copy(name, store, *s);
            }
        }
        for (builder, samples) in &other.probes {
            for s in samples {
                self.add_probe(builder, *s);
            }
        }
    }

    /// Drops the oldest samples, whatever their key, until at most `max` remain.
    pub fn bound(&mut self, max: usize) {
        let total = self.len();
        if total <= max {
            return;
        }
        let mut times: Vec<u64> = Vec::with_capacity(total);
        times.extend(self.builds.values().flatten().map(|s| s.at));
        times.extend(self.copies.values().flatten().map(|s| s.at));
        times.extend(self.probes.values().flatten().map(|s| s.at));
        self.rates = std::sync::OnceLock::new();
        let drop = total - max;
        // The newest time among those that go: older ones all go, of this one only as many as
        // are needed.
        let (_, cutoff, _) = times.select_nth_unstable(drop - 1);
        let cutoff = *cutoff;
        let older = times.iter().filter(|t| **t < cutoff).count();
        let mut ties = drop - older;
        let mut keep = |at: u64| {
            if at < cutoff {
                false
            } else if at == cutoff && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        };
        for samples in self.builds.values_mut() {
            samples.retain(|s| keep(s.at));
        }
        for samples in self.copies.values_mut() {
            samples.retain(|s| keep(s.at));
        }
        for samples in self.probes.values_mut() {
            samples.retain(|s| keep(s.at));
        }
        self.builds.retain(|_, s| !s.is_empty());
        self.copies.retain(|_, s| !s.is_empty());
        self.probes.retain(|_, s| !s.is_empty());
    }

    // --- The read API: what estimates (ETAs, the cost-based planner) ask. `None` is unknown.

    /// The expected seconds of building derivation `name` on `host` (`local` or a builder
    /// URI): the median of its successful builds there.
    pub fn build_secs(&self, name: &str, host: &str) -> Option<f64> {
        let samples = self.builds.get(&(name.to_string(), host_key(host)))?;
        median(
            samples
                .iter()
                .filter(|s| s.ok)
                .filter_map(|s| s.secs)
                .collect(),
        )
    }

    /// How many builds of `name` on `host` are known, and how many failed.
    pub fn build_count(&self, name: &str, host: &str) -> (usize, usize) {
        self.builds
            .get(&(name.to_string(), host_key(host)))
            .map_or((0, 0), |s| (s.len(), s.iter().filter(|s| !s.ok).count()))
    }

    /// The expected seconds of copying store path `name` from or to `store`: the median of its
    /// earlier copies there; else, when its size is known (`bytes`, or the size earlier copies
    /// of it had), that size at the store's bandwidth.
    pub fn copy_secs(&self, name: &str, store: &str, bytes: Option<u64>) -> Option<f64> {
        let samples = self.copies.get(&(name.to_string(), host_key(store)));
        if let Some(secs) = samples.and_then(|s| median(s.iter().map(|s| s.secs).collect())) {
            return Some(secs);
        }
        let bytes = bytes
            .or_else(|| samples.and_then(|s| s.back()).map(|s| s.bytes))
            .filter(|b| *b > 0)?;
        let rate = self.bandwidth(store)?;
        Some(bytes as f64 / rate)
    }

    /// The bytes per second of copies from and to `store` (a cache or builder URI): all its
    /// copies' bytes over all their seconds, copies that moved no bytes (nix did not say how
    /// many) left out. `None` when none is known.
    pub fn bandwidth(&self, store: &str) -> Option<f64> {
        self.rates
            .get_or_init(|| {
                let mut sums: HashMap<&str, (u64, f64)> = HashMap::new();
                for ((_, store), samples) in &self.copies {
                    for s in samples.iter().filter(|s| s.bytes > 0) {
                        let sum = sums.entry(store.as_str()).or_default();
                        sum.0 = sum.0.saturating_add(s.bytes);
                        sum.1 += s.secs;
                    }
                }
                sums.into_iter()
                    .filter(|(_, (bytes, secs))| *bytes > 0 && *secs > 0.0)
                    .map(|(store, (bytes, secs))| (store.to_string(), bytes as f64 / secs))
                    .collect()
            })
            .get(&host_key(store))
            .copied()
    }

    /// Every store copies went from or to, with its bandwidth when known (for `stats`).
    pub fn stores(&self) -> std::collections::BTreeSet<&str> {
        self.copies.keys().map(|(_, s)| s.as_str()).collect()
    }

    /// The median probe round trip to `builder`, milliseconds.
    pub fn rtt_ms(&self, builder: &str) -> Option<f64> {
        let samples = self.probes.get(&host_key(builder))?;
        median(samples.iter().map(|s| s.rtt_ms).collect())
    }
}

#[cfg(test)]
mod tests;
