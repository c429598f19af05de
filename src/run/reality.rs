//! The plan against what nix really did: after a run, where the log says each derivation was
//! built, compared with where the plan said. A daemon decides for itself when it cannot reach a
//! builder (it builds here instead) or does not trust us (it uses its own builders), so the two
//! can differ; one line says so, naming both.

use crate::monitor::Summary;
use crate::plan::Plan;
use std::collections::BTreeMap;

/// `Some(line)` when nix built somewhere other than the plan said. `host` names a builder URI.
pub fn compare(plan: &Plan, summary: &Summary, host: impl Fn(&str) -> String) -> Option<String> {
    let mut planned: BTreeMap<String, u64> = BTreeMap::new();
    for b in &plan.builds {
        let at = b.from.as_deref().map_or_else(|| "here".to_owned(), &host);
        *planned.entry(at).or_default() += 1;
    }
    let mut actual: BTreeMap<String, u64> = BTreeMap::new();
    // Outputs a builder handed back without building (`reused`) are the copies the plan
    // expects from a builder's store: only real builds count.
    for (uri, n) in &summary.built {
        let at = if uri == "local" {
            "here".to_owned()
        } else {
            host(uri)
        };
        *actual.entry(at).or_default() += n;
    }
    let here = |m: &BTreeMap<String, u64>| m.get("here").copied().unwrap_or(0);
    let remote = |m: &BTreeMap<String, u64>| {
        m.iter()
            .filter(|(k, _)| *k != "here")
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    // Only what changes the meaning: work done here that the plan put elsewhere, or remote work
    // the plan kept here. Fewer builds than planned (something was substituted) is fine.
    let differs = here(&actual) > here(&planned) || remote(&actual) > remote(&planned);
    if !differs {
        return None;
    }
    Some(format!(
        "nix did not follow the plan: planned {}, nix built {}",
        describe(&planned),
        describe(&actual)
    ))
}

fn describe(at: &BTreeMap<String, u64>) -> String {
    if at.values().all(|n| *n == 0) {
        return "nothing".to_owned();
    }
    let mut parts: Vec<String> = at
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(where_, n)| {
            let what = if *n == 1 {
                "1 derivation".to_owned()
            } else {
                format!("{n} derivations")
            };
            if where_ == "here" {
                format!("{what} here")
            } else {
                format!("{what} on {where_}")
            }
        })
        .collect();
    parts.sort();
    parts.join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Counts, Mode, PlannedBuild};
    use crate::store_path::StorePath;

    fn plan(froms: &[Option<&str>]) -> Plan {
        Plan {
            mode: Mode::Remote,
            reason: String::new(),
            counts: Counts::default(),
            paths: Vec::new(),
            builds: froms
                .iter()
                .enumerate()
                .map(|(i, f)| PlannedBuild {
                    drv: StorePath::parse(&format!(
                        "/nix/store/{}-d{i}.drv",
                        char::from(b'a' + i as u8).to_string().repeat(32)
                    ))
                    .unwrap_or_else(|e| panic!("{e}")),
                    from: f.map(String::from),
                })
                .collect(),
            builder_substituters: Vec::new(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
            may_build_locally: true,
        }
    }

    fn summary(built: &[(&str, u64)]) -> Summary {
        Summary {
            ok: true,
            built: built.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            reused: BTreeMap::new(),
            substituted: BTreeMap::new(),
            copied_from: BTreeMap::new(),
            copied_to: BTreeMap::new(),
            bytes_downloaded: 0,
            from_sources: BTreeMap::new(),
            failed: Vec::new(),
            cancelled: Vec::new(),
            builds_cancelled: 0,
            errors: Vec::new(),
            elapsed_secs: 0.0,
        }
    }

    fn host(uri: &str) -> String {
        uri.trim_start_matches("ssh-ng://").to_owned()
    }

    #[test]
    fn built_here_what_the_plan_sent_away() {
        let p = plan(&[Some("ssh-ng://seasmoke")]);
        let line = compare(&p, &summary(&[("local", 1)]), host);
        assert_eq!(
            line.as_deref(),
            Some("nix did not follow the plan: planned 1 derivation on seasmoke, nix built 1 derivation here")
        );
    }

    #[test]
    fn as_planned_says_nothing() {
        let p = plan(&[Some("ssh-ng://seasmoke"), None]);
        let s = summary(&[("local", 1), ("ssh-ng://seasmoke", 1)]);
        assert_eq!(compare(&p, &s, host), None);
        // Fewer builds than planned (something came from a cache after all) is not a surprise.
        assert_eq!(compare(&p, &summary(&[]), host), None);
    }

    #[test]
    fn built_remotely_what_the_plan_kept_here() {
        let p = plan(&[None, None]);
        let line = compare(&p, &summary(&[("ssh-ng://other", 2)]), host);
        assert_eq!(
            line.as_deref(),
            Some("nix did not follow the plan: planned 2 derivations here, nix built 2 derivations on other")
        );
    }
}
