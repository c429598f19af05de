//! What each candidate plan would take, from what the history learned: pure, no I/O.
//!
//! The walk says where each path *can* come from; this says how long each way would take when
//! the history knows enough, so that `--mode auto` can pick the fastest instead of the first
//! that works (a few quick builds behind a slow link are faster here than on a builder whose
//! outputs must come back over that link). The model, kept small on purpose:
//!
//! - a build takes the history's typical time for its name on that host; a name never built on
//!   one side is scaled by that builder's measured speed against this machine (names both have
//!   built); nothing else is guessed: a build with neither is unknown, and so is the plan;
//! - builds run in dependency order on each host's job slots (list scheduling over the
//!   derivation graph), so a chain costs its critical path and a wide set its slots' share;
//! - a build on a builder also costs its outputs' copy back (typical bytes for its name over the
//!   link's measured bandwidth) and the build hook's round trips; the link is shared, so the
//!   whole run is never shorter than all its bytes over that bandwidth;
//! - copies from caches are the same whichever way the builds go, so they are left out of the
//!   comparison; but a path both a cache and a reachable builder's store hold comes from the
//!   builder when its link was measured clearly faster for the path's NAR size
//!   ([`builder_over_cache`]; a large output behind a slow cache, a builder on the LAN).
//!
//! The estimate is compared, never trusted blindly: a local plan replaces the presence rule's
//! remote one only when it is clearly shorter ([`SWITCH_MARGIN`], [`SWITCH_MIN_GAIN`]), and every run's real times go
//! back into the history, so a wrong estimate corrects the next choice.

use super::graph::Derivation;
use super::Mode;
use crate::store_path::StorePath;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// The host a local build is recorded under in the history.
pub const LOCAL: &str = "local";

/// Round trips nix's build hook spends per derivation sent to a builder (ask to accept, copy the
/// inputs' validity question, copy them, start, copy the outputs back): a small constant of the
/// hook's protocol, times the measured round trip.
pub const HOOK_ROUND_TRIPS: f64 = 5.0;

/// How much shorter a local plan must be estimated than the remote one the presence rule picks
/// before it replaces it: estimates are noisy, and a wrong switch costs more than a missed one.
pub const SWITCH_MARGIN: f64 = 0.8;

/// And by how many seconds at least: a run of quick builds is not taken from the builder the
/// user set up to save a second (their builder may be busy, their laptop on battery).
pub const SWITCH_MIN_GAIN: f64 = 2.0;

/// What the history knows that bears on this run: filled by planning for the names in the
/// graph only. Empty (the default) when no history was consulted; the planner then decides by
/// presence alone, as before there was a history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Knowledge {
    /// A history was consulted: the reason says when it did not know enough.
    pub consulted: bool,
    /// Typical seconds to build a derivation, by (name without hash, host): host [`LOCAL`] or
    /// the builder's URI as written.
    pub build_secs: HashMap<(String, String), f64>,
    /// Typical bytes of all of a derivation's outputs together, by name.
    pub output_bytes: HashMap<String, u64>,
    /// Bytes per second measured from each builder and cache (by URI as written) to here.
    pub bandwidth: HashMap<String, f64>,
    /// How many times faster than this machine each builder (by URI) built the names both built.
    pub speed_vs_local: HashMap<String, f64>,
    /// Measured round trip to each builder (by URI), in seconds.
    pub rtt_secs: HashMap<String, f64>,
    /// Build slots here (nix's `max-jobs`; at least 1).
    pub local_jobs: u32,
}

/// The contract's `estimates` entry: one candidate mode and what it would take.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// The candidate.
    pub mode: Mode,
    /// Seconds the builds and their copies would take, or null when the history does not know.
    pub secs: Option<f64>,
    /// One human line: what the number is made of, or what is unknown.
    pub why: String,
}

/// Where one derivation of a candidate plan is built.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement<'a> {
    /// The builder's URI (history key), or `None` for here.
    pub uri: Option<&'a str>,
    /// The host as people know it (reasons).
    pub host: &'a str,
    /// Its job slots.
    pub jobs: u32,
}

/// A costed candidate.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Costed {
    /// The whole candidate, seconds.
    pub secs: f64,
    /// Bytes copied back from builders.
    pub copy_bytes: u64,
    /// The slowest link used, bytes per second (for the reason).
    pub bandwidth: Option<f64>,
}

/// Estimates building `to_build` with each derivation placed by `place`; `Err` lists what the
/// history does not know (names with host), at most a few.
pub(super) fn estimate<'d, 'p>(
    to_build: &[&'d Derivation],
    place: impl Fn(&Derivation) -> Placement<'p>,
    knows: &Knowledge,
) -> Result<Costed, Vec<String>> {
    let mut unknown = Vec::new();
    let mut durations: HashMap<&StorePath, (f64, Placement<'p>)> = HashMap::new();
    let mut copy_bytes = 0u64;
    let mut link_secs: BTreeMap<&'p str, f64> = BTreeMap::new();
    let mut bandwidth: Option<f64> = None;
    for drv in to_build {
        let name = drv.path.display_name();
        let at = place(drv);
        let Some(build) = build_secs(knows, name, at.uri) else {
            unknown.push(format!("{name} on {}", at.host));
            continue;
        };
        let mut secs = build;
        if let Some(uri) = at.uri {
            let bytes = knows.output_bytes.get(name).copied();
            let link = knows.bandwidth.get(uri).copied().filter(|b| *b > 0.0);
            match (bytes, link) {
                (Some(bytes), Some(link)) => {
                    let copy = bytes as f64 / link;
                    secs += copy;
                    copy_bytes += bytes;
                    *link_secs.entry(uri).or_default() += copy;
                    bandwidth = Some(bandwidth.map_or(link, |b: f64| b.min(link)));
                }
                (None, _) => unknown.push(format!("the size of {name}")),
                (_, None) => unknown.push(format!("the link to {}", at.host)),
            }
            secs += HOOK_ROUND_TRIPS * knows.rtt_secs.get(uri).copied().unwrap_or(0.0);
        }
        durations.insert(&drv.path, (secs, at));
    }
    if !unknown.is_empty() {
        unknown.sort();
        unknown.dedup();
        return Err(unknown);
    }
    let makespan = schedule(to_build, &durations, knows.local_jobs.max(1));
    // One link carries every copy from its builder: never faster than its bytes allow.
    let link_bound = link_secs.values().copied().fold(0.0, f64::max);
    Ok(Costed {
        secs: makespan.max(link_bound),
        copy_bytes,
        bandwidth,
    })
}

/// Typical build time of `name` on `uri` (`None`: here), scaled from the other side by the
/// builder's measured speed when only that side has built it.
fn build_secs(knows: &Knowledge, name: &str, uri: Option<&str>) -> Option<f64> {
    let key = |host: &str| (name.to_owned(), host.to_owned());
    let host = uri.unwrap_or(LOCAL);
    if let Some(secs) = knows.build_secs.get(&key(host)) {
        return Some(*secs);
    }
    match uri {
        Some(uri) => {
            let here = knows.build_secs.get(&key(LOCAL))?;
            let speed = knows.speed_vs_local.get(uri).filter(|s| **s > 0.0)?;
            Some(here / speed)
        }
        None => {
            // Built only on builders: the fastest-known conversion back to here.
            knows
                .speed_vs_local
                .iter()
                .filter(|(_, s)| **s > 0.0)
                .filter_map(|(uri, speed)| knows.build_secs.get(&key(uri)).map(|t| t * speed))
                .min_by(f64::total_cmp)
        }
    }
}

/// List scheduling in dependency order: each build starts when its inputs among `to_build` are
/// done and a slot of its host is free; returns when the last one ends.
fn schedule(
    to_build: &[&Derivation],
    durations: &HashMap<&StorePath, (f64, Placement<'_>)>,
    local_jobs: u32,
) -> f64 {
    let by_path: BTreeMap<&StorePath, &Derivation> =
        to_build.iter().map(|d| (&d.path, *d)).collect();
    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for drv in by_path.values() {
        visit(drv, &by_path, &mut seen, &mut order);
    }
    let mut slots: HashMap<Option<&str>, Vec<f64>> = HashMap::new();
    let mut finished: HashMap<&StorePath, f64> = HashMap::new();
    let mut end: f64 = 0.0;
    for drv in order {
        let Some((secs, at)) = durations.get(&drv.path) else {
            continue;
        };
        let ready = drv
            .input_drvs
            .keys()
            .filter_map(|d| finished.get(d))
            .copied()
            .fold(0.0, f64::max);
        let jobs = if at.uri.is_some() {
            at.jobs
        } else {
            local_jobs
        };
        let pool = slots
            .entry(at.uri)
            .or_insert_with(|| vec![0.0; jobs.max(1) as usize]);
        let (slot, free) = pool
            .iter()
            .copied()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap_or((0, 0.0));
        let done = ready.max(free) + secs;
        if let Some(s) = pool.get_mut(slot) {
            *s = done;
        }
        finished.insert(&drv.path, done);
        end = end.max(done);
    }
    end
}

/// Depth-first: inputs before the derivations that use them (the graph is acyclic).
fn visit<'a>(
    drv: &'a Derivation,
    by_path: &BTreeMap<&'a StorePath, &'a Derivation>,
    seen: &mut std::collections::HashSet<&'a StorePath>,
    order: &mut Vec<&'a Derivation>,
) {
    if !seen.insert(&drv.path) {
        return;
    }
    for input in drv.input_drvs.keys() {
        if let Some(dep) = by_path.get(input) {
            visit(dep, by_path, seen, order);
        }
    }
    order.push(drv);
}

/// One path the walk takes from a builder's store although a cache holds it too: the builder's
/// link was measured clearly faster for a copy of this size (the reason names both).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Fetch {
    /// The builder, as people know it.
    pub host: String,
    /// The cache passed over.
    pub cache: String,
    /// The NAR's bytes.
    pub bytes: u64,
    /// The copy from the builder's store, seconds.
    pub builder_secs: f64,
    /// The copy from the cache, seconds.
    pub cache_secs: f64,
}

/// Seconds to copy `bytes` from `uri` (a cache or a builder, as written) at its measured
/// bandwidth, plus a round trip when one was measured; `None` when the link was never measured.
fn fetch_secs(knows: &Knowledge, uri: &str, bytes: u64) -> Option<f64> {
    let rate = knows.bandwidth.get(uri).copied().filter(|b| *b > 0.0)?;
    Some(bytes as f64 / rate + knows.rtt_secs.get(uri).copied().unwrap_or(0.0))
}

/// Whether a path of `bytes` the cache at `cache` holds comes clearly faster from the store of
/// the builder at `builder` (same margins as choosing a local build: a fifth and
/// [`SWITCH_MIN_GAIN`] shorter). `None` when either link was never measured, the size is
/// unknown, or no history was consulted: then the cache, as nix would.
pub(super) fn builder_over_cache(
    knows: &Knowledge,
    bytes: Option<u64>,
    cache: &str,
    builder: &str,
    host: &str,
) -> Option<Fetch> {
    if !knows.consulted {
        return None;
    }
    let bytes = bytes.filter(|b| *b > 0)?;
    let cache_secs = fetch_secs(knows, cache, bytes)?;
    let builder_secs = fetch_secs(knows, builder, bytes)?;
    let clearly =
        builder_secs < cache_secs * SWITCH_MARGIN && cache_secs - builder_secs >= SWITCH_MIN_GAIN;
    clearly.then(|| Fetch {
        host: host.to_owned(),
        cache: cache.to_owned(),
        bytes,
        builder_secs,
        cache_secs,
    })
}

/// "1 path (10.0 MB) from seasmoke's store rather than http://cache: about 1 s against about
/// 10 s", one clause per builder and cache.
pub(super) fn fetch_words(fetches: &[Fetch]) -> Option<String> {
    let mut groups: BTreeMap<(&str, &str), (usize, u64, f64, f64)> = BTreeMap::new();
    for f in fetches {
        let g = groups.entry((&f.host, &f.cache)).or_default();
        g.0 += 1;
        g.1 += f.bytes;
        g.2 += f.builder_secs;
        g.3 += f.cache_secs;
    }
    let clauses: Vec<String> = groups
        .into_iter()
        .map(|((host, cache), (n, b, there, cached))| {
            let paths = if n == 1 {
                "1 path".to_owned()
            } else {
                format!("{n} paths")
            };
            format!(
                "{paths} ({}) from {host}'s store rather than {cache}: {} against {}",
                bytes(b),
                about(there),
                about(cached)
            )
        })
        .collect();
    (!clauses.is_empty()).then(|| clauses.join("; "))
}

/// "about 4 s", "about 2.5 min": an estimate as people read it.
pub fn about(secs: f64) -> String {
    if secs < 1.0 {
        "under 1 s".to_owned()
    } else if secs < 90.0 {
        format!("about {secs:.0} s")
    } else {
        format!("about {:.1} min", secs / 60.0)
    }
}

/// Bytes as people read them (decimal units, as link speeds are given).
pub fn bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} kB", n / 1e3)
    } else {
        format!("{n:.0} B")
    }
}

/// "12 MB to copy back at 1.0 MB/s", when the candidate copies anything back.
pub(super) fn copy_words(costed: &Costed) -> Option<String> {
    let rate = costed.bandwidth?;
    (costed.copy_bytes > 0).then(|| {
        format!(
            "{} to copy back at {}/s",
            bytes(costed.copy_bytes),
            bytes(rate as u64)
        )
    })
}

/// "no estimate was used: the history has no build of hello on seasmoke (and 2 more)".
pub(super) fn unknown_words(unknown: &[String]) -> String {
    match unknown {
        [] => "no estimate was used".to_owned(),
        [one] => format!("no estimate was used: the history does not know {one}"),
        [one, rest @ ..] => format!(
            "no estimate was used: the history does not know {one} (and {} more)",
            rest.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drv(name: &str, inputs: &[&str]) -> Derivation {
        let path = |n: &str| {
            StorePath::parse(&format!("/nix/store/{}-{n}.drv", "a".repeat(32)))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        Derivation {
            path: path(name),
            outputs: Default::default(),
            input_drvs: inputs
                .iter()
                .map(|i| (path(i), vec!["out".into()]))
                .collect(),
            input_srcs: Vec::new(),
            system: "x86_64-linux".into(),
            required_features: Vec::new(),
            prefer_local: false,
        }
    }

    const SEASMOKE: &str = "ssh-ng://seasmoke";

    fn here(_: &Derivation) -> Placement<'static> {
        Placement {
            uri: None,
            host: "here",
            jobs: 1,
        }
    }

    fn there(_: &Derivation) -> Placement<'static> {
        Placement {
            uri: Some(SEASMOKE),
            host: "seasmoke",
            jobs: 2,
        }
    }

    fn knows(entries: &[(&str, &str, f64)]) -> Knowledge {
        Knowledge {
            consulted: true,
            build_secs: entries
                .iter()
                .map(|(n, h, s)| ((n.to_string(), h.to_string()), *s))
                .collect(),
            local_jobs: 1,
            ..Knowledge::default()
        }
    }

    #[test]
    fn a_chain_costs_its_critical_path_and_a_wide_set_its_slots() {
        let (a, b, c) = (drv("a", &[]), drv("b", &["a"]), drv("c", &["b"]));
        let k = knows(&[("a", LOCAL, 2.0), ("b", LOCAL, 3.0), ("c", LOCAL, 4.0)]);
        let chain = estimate(&[&a, &b, &c], here, &k).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(chain.secs, 9.0);

        let wide: Vec<Derivation> = (0..4).map(|i| drv(&format!("w{i}"), &[])).collect();
        let refs: Vec<&Derivation> = wide.iter().collect();
        let mut k = knows(&[]);
        for i in 0..4 {
            k.build_secs.insert((format!("w{i}"), LOCAL.into()), 5.0);
        }
        k.local_jobs = 2;
        let two = estimate(&refs, here, &k).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(two.secs, 10.0, "four 5 s builds on two slots");
    }

    #[test]
    fn a_remote_build_pays_its_copy_back_and_the_link_bounds_the_run() {
        let (a, b) = (drv("a", &[]), drv("b", &[]));
        let mut k = knows(&[("a", SEASMOKE, 1.0), ("b", SEASMOKE, 1.0)]);
        k.output_bytes.insert("a".into(), 6_000_000);
        k.output_bytes.insert("b".into(), 6_000_000);
        k.bandwidth.insert(SEASMOKE.into(), 1_000_000.0);
        let costed = estimate(&[&a, &b], there, &k).unwrap_or_else(|e| panic!("{e:?}"));
        // Two slots build both at once, but one link carries 12 MB at 1 MB/s.
        assert_eq!(costed.secs, 12.0);
        assert_eq!(costed.copy_bytes, 12_000_000);
        assert_eq!(
            copy_words(&costed).as_deref(),
            Some("12.0 MB to copy back at 1.0 MB/s")
        );
    }

    #[test]
    fn a_name_built_on_one_side_only_is_scaled_by_the_measured_speed() {
        let a = drv("a", &[]);
        let mut k = knows(&[("a", LOCAL, 8.0)]);
        k.output_bytes.insert("a".into(), 0);
        k.bandwidth.insert(SEASMOKE.into(), 1e6);
        k.speed_vs_local.insert(SEASMOKE.into(), 4.0);
        let remote = estimate(&[&a], there, &k).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(remote.secs, 2.0);

        let mut k = knows(&[("a", SEASMOKE, 2.0)]);
        k.speed_vs_local.insert(SEASMOKE.into(), 4.0);
        let local = estimate(&[&a], here, &k).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(local.secs, 8.0);
    }

    #[test]
    fn what_the_history_does_not_know_is_never_guessed() {
        let (a, b) = (drv("a", &[]), drv("b", &[]));
        let k = knows(&[("a", LOCAL, 1.0)]);
        let unknown = estimate(&[&a, &b], here, &k).expect_err("b was never built");
        assert_eq!(unknown, vec!["b on here".to_string()]);
        let unknown = estimate(&[&a], there, &k).expect_err("no speed, no size, no link");
        assert_eq!(unknown, vec!["a on seasmoke".to_string()]);
        assert_eq!(
            unknown_words(&unknown),
            "no estimate was used: the history does not know a on seasmoke"
        );
    }

    #[test]
    fn a_builder_clearly_faster_than_the_cache_is_preferred_with_both_numbers() {
        const CACHE: &str = "http://cache";
        let mut k = knows(&[]);
        k.bandwidth.insert(CACHE.into(), 1_000_000.0);
        k.bandwidth.insert(SEASMOKE.into(), 50_000_000.0);
        let f = builder_over_cache(&k, Some(10_000_000), CACHE, SEASMOKE, "seasmoke")
            .unwrap_or_else(|| panic!("10 s against 0.2 s"));
        assert_eq!((f.cache_secs, f.builder_secs), (10.0, 0.2));
        assert_eq!(
            fetch_words(&[f]).as_deref(),
            Some("1 path (10.0 MB) from seasmoke's store rather than http://cache: under 1 s against about 10 s")
        );
        // A small path saves under two seconds: the cache, as nix would.
        assert_eq!(
            builder_over_cache(&k, Some(1_000_000), CACHE, SEASMOKE, "seasmoke"),
            None
        );
        // A close call keeps the cache.
        k.bandwidth.insert(SEASMOKE.into(), 1_100_000.0);
        assert_eq!(
            builder_over_cache(&k, Some(10_000_000), CACHE, SEASMOKE, "seasmoke"),
            None
        );
        // Unknown size, unmeasured link, or no history: never guessed.
        k.bandwidth.insert(SEASMOKE.into(), 50_000_000.0);
        assert_eq!(
            builder_over_cache(&k, None, CACHE, SEASMOKE, "seasmoke"),
            None
        );
        assert_eq!(
            builder_over_cache(&k, Some(10_000_000), "http://other", SEASMOKE, "seasmoke"),
            None
        );
        k.consulted = false;
        assert_eq!(
            builder_over_cache(&k, Some(10_000_000), CACHE, SEASMOKE, "seasmoke"),
            None
        );
    }

    #[test]
    fn numbers_read_as_people_say_them() {
        assert_eq!(about(0.4), "under 1 s");
        assert_eq!(about(4.2), "about 4 s");
        assert_eq!(about(150.0), "about 2.5 min");
        assert_eq!(bytes(45_000_000), "45.0 MB");
        assert_eq!(bytes(1_100), "1 kB");
    }
}
