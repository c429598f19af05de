//! `nixdispatch stats`: what the history has learned: per host, how many builds of which
//! derivations and their median times; per store, the copies and the bandwidth; per builder,
//! the probe round trip. Reads the history only: no nix, no ssh.

use crate::history::{History, HISTORY_FILE};
use crate::render::text::{bytes, duration};
use crate::Result;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Prints the learned table (JSON with `--json`); a history that cannot be read is one
/// warning on stderr and an empty table.
pub fn run(dir: Option<&Path>, json: bool) -> Result<i32> {
    let (history, path) = match dir {
        Some(dir) => {
            let loaded = crate::history::load(dir);
            if let Some(w) = &loaded.warning {
                crate::output::stderr_line(&format!("nixdispatch: warning: {w}"));
            }
            (loaded.history, Some(dir.join(HISTORY_FILE)))
        }
        None => (History::new(), None),
    };
    if json {
        crate::output::stdout_line(&document(&history, path.as_deref()).to_string(), false)?;
    } else {
        for line in lines(&history, path.as_deref()) {
            crate::output::stdout_line(&line, true)?;
        }
    }
    Ok(0)
}

/// One host's builds: per derivation name, (builds, failed, median seconds).
type HostTable<'a> = BTreeMap<&'a str, (usize, usize, Option<f64>)>;

fn per_host(history: &History) -> BTreeMap<&str, HostTable<'_>> {
    let mut hosts: BTreeMap<&str, HostTable<'_>> = BTreeMap::new();
    for ((name, host), samples) in &history.builds {
        let failed = samples.iter().filter(|s| !s.ok).count();
        hosts.entry(host.as_str()).or_default().insert(
            name.as_str(),
            (samples.len(), failed, history.build_secs(name, host)),
        );
    }
    hosts
}

/// Per store: (copies, bytes, seconds, bytes per second).
fn per_store(history: &History) -> BTreeMap<&str, (usize, u64, f64, Option<f64>)> {
    let mut stores: BTreeMap<&str, (usize, u64, f64, Option<f64>)> = BTreeMap::new();
    for ((_, store), samples) in &history.copies {
        let entry = stores.entry(store.as_str()).or_default();
        entry.0 += samples.len();
        entry.1 = entry
            .1
            .saturating_add(samples.iter().map(|s| s.bytes).sum::<u64>());
        entry.2 += samples.iter().map(|s| s.secs).sum::<f64>();
    }
    for (store, entry) in stores.iter_mut() {
        entry.3 = history.bandwidth(store);
    }
    stores
}

fn secs(s: f64) -> String {
    duration(Duration::try_from_secs_f64(s).unwrap_or_default())
}

/// The table for people.
fn lines(history: &History, path: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    match path {
        Some(p) => out.push(format!("history: {}", p.display())),
        None => out.push("history: none (neither XDG_STATE_HOME nor HOME is set)".to_string()),
    }
    if history.is_empty() {
        out.push("nothing learned yet: every build, home and os run adds to it".to_string());
        return out;
    }
    for (host, names) in per_host(history) {
        let builds: usize = names.values().map(|v| v.0).sum();
        let failed: usize = names.values().map(|v| v.1).sum();
        let failed = match failed {
            0 => String::new(),
            n => format!(", {n} failed"),
        };
        out.push(format!(
            "builds {}: {builds} of {} derivations{failed}",
            crate::render::text::where_built(host),
            names.len()
        ));
        let width = names.keys().map(|n| n.len()).max().unwrap_or(0).min(48);
        for (name, (n, failed, median)) in names {
            let median = median.map_or("no successful build".to_string(), |m| {
                format!("median {}", secs(m))
            });
            let failed = match failed {
                0 => String::new(),
                f => format!(", {f} failed"),
            };
            out.push(format!("  {name:<width$}  {median} ({n} builds{failed})"));
        }
    }
    let stores = per_store(history);
    if !stores.is_empty() {
        out.push("copies:".to_string());
        for (store, (n, total, time, rate)) in stores {
            let rate = rate.map_or(String::new(), |r| format!(", {}/s", bytes(r as u64)));
            out.push(format!(
                "  {store}: {n} paths, {} in {}{rate}",
                bytes(total),
                secs(time)
            ));
        }
    }
    if !history.probes.is_empty() {
        out.push("builders:".to_string());
        let mut probes: Vec<_> = history.probes.iter().collect();
        probes.sort_by(|a, b| a.0.cmp(b.0));
        for (builder, samples) in probes {
            let rtt = history
                .rtt_ms(builder)
                .map_or(String::new(), |r| format!("round trip {r:.1} ms, "));
            out.push(format!("  {builder}: {rtt}{} probes", samples.len()));
        }
    }
    out
}

/// The table for programs.
fn document(history: &History, path: Option<&Path>) -> Value {
    let hosts: Vec<Value> = per_host(history)
        .into_iter()
        .map(|(host, names)| {
            let derivations: Vec<Value> = names
                .iter()
                .map(|(name, (n, failed, median))| {
                    json!({"name": name, "builds": n, "failed": failed, "median_secs": median})
                })
                .collect();
            json!({
                "host": host,
                "builds": names.values().map(|v| v.0).sum::<usize>(),
                "failed": names.values().map(|v| v.1).sum::<usize>(),
                "derivations": derivations,
            })
        })
        .collect();
    let stores: Vec<Value> = per_store(history)
        .into_iter()
        .map(|(store, (n, total, time, rate))| {
            json!({"store": store, "copies": n, "bytes": total, "secs": time, "bytes_per_sec": rate})
        })
        .collect();
    let mut probes: Vec<_> = history.probes.iter().collect();
    probes.sort_by(|a, b| a.0.cmp(b.0));
    let builders: Vec<Value> = probes
        .into_iter()
        .map(|(uri, samples)| {
            json!({"uri": uri, "probes": samples.len(), "rtt_ms": history.rtt_ms(uri)})
        })
        .collect();
    json!({
        "path": path.map(|p| p.display().to_string()),
        "hosts": hosts,
        "stores": stores,
        "builders": builders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{BuildSample, CopySample, Direction, ProbeSample};

    fn sample() -> History {
        let mut h = History::new();
        for secs in [2.0, 4.0, 3.0] {
            h.add_build(
                "hello-2.12",
                "ssh-ng://seasmoke",
                BuildSample {
                    at: 1,
                    secs: Some(secs),
                    ok: true,
                },
            );
        }
        h.add_build(
            "broken-1",
            "local",
            BuildSample {
                at: 1,
                secs: None,
                ok: false,
            },
        );
        h.add_copy(
            "hello-2.12",
            "http://cache",
            CopySample {
                at: 1,
                direction: Direction::From,
                bytes: 2 << 20,
                secs: 2.0,
            },
        );
        h.add_probe(
            "ssh-ng://seasmoke",
            ProbeSample {
                at: 1,
                rtt_ms: 12.0,
            },
        );
        h
    }

    #[test]
    fn the_table_names_hosts_medians_and_bandwidth() {
        let text = lines(&sample(), Some(Path::new("/s/history"))).join("\n");
        assert!(text.contains("history: /s/history"), "{text}");
        assert!(
            text.contains("builds on seasmoke: 3 of 1 derivations"),
            "{text}"
        );
        assert!(
            text.contains("hello-2.12  median 3.0s (3 builds)"),
            "{text}"
        );
        assert!(
            text.contains("builds locally: 1 of 1 derivations, 1 failed"),
            "{text}"
        );
        assert!(text.contains("no successful build"), "{text}");
        assert!(
            text.contains("http://cache: 1 paths, 2.00 MiB in 2.0s, 1.00 MiB/s"),
            "{text}"
        );
        assert!(text.contains("round trip 12.0 ms"), "{text}");
        let empty = lines(&History::new(), None).join("\n");
        assert!(empty.contains("nothing learned yet"), "{empty}");
    }

    #[test]
    fn the_json_has_hosts_stores_and_builders() {
        let doc = document(&sample(), None);
        assert_eq!(doc["hosts"][1]["host"], "ssh-ng://seasmoke", "{doc}");
        assert_eq!(doc["hosts"][1]["derivations"][0]["median_secs"], 3.0);
        assert_eq!(
            doc["hosts"][0]["derivations"][0]["median_secs"],
            Value::Null
        );
        assert_eq!(doc["stores"][0]["bytes_per_sec"], 1048576.0);
        assert_eq!(doc["builders"][0]["rtt_ms"], 12.0);
    }
}
