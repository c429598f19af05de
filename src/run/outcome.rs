//! What became of each installable (built, fetched, valid, failed, cancelled, and where), for
//! the result file and for pushing what a failed `--keep-going` run realised.

use super::NixRequest;
use crate::dispatch::Target;
use crate::monitor::{BuildEnd, RunRecord};
use crate::nix::installables::Derived;
use crate::plan::{Plan, Source};
use crate::render::result_file::{InstallableResult, Status};
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What became of each installable (attribute sets opened), from the plan and the log.
pub(super) async fn outcomes(
    settings: &Settings,
    request: &NixRequest,
    target: &Target,
    plan: &Plan,
    record: &RunRecord,
    nix_json: Option<&[u8]>,
) -> Vec<InstallableResult> {
    let ok = nix_json.is_some();
    let installables = target.installables().unwrap_or_default();
    // A successful `nix build --json` names each installable's derivation and outputs, in
    // order; after a failure nix prints nothing, so each is asked for on its own.
    let derived =
        match nix_json.and_then(|j| crate::nix::build_json::derived(j, installables.len())) {
            Some(d) => d,
            None => {
                crate::nix::installables::installable_derivations(
                    settings.nix(),
                    &installables,
                    &request.eval_args,
                )
                .await
            }
        };
    let mut results = results(&installables, &derived, record, plan, ok);
    // The store has the last word: when parallel builds stop together nix's log cannot always
    // say which one failed, but an output that is valid now was realised.
    let outputs: Vec<crate::store_path::StorePath> = derived
        .iter()
        .flatten()
        .flat_map(|(_, outs)| outs.values().cloned())
        .collect();
    if let Ok(valid) = crate::sources::local::valid_paths(settings.nix(), &outputs).await {
        let valid: std::collections::BTreeSet<&str> = valid.iter().map(|p| p.as_str()).collect();
        settle(&mut results, |p| valid.contains(p));
    }
    results
}

/// The outputs that were realised (built, fetched or already valid), to push after a failure.
pub(super) fn realised(outcome: &[InstallableResult]) -> Vec<PathBuf> {
    outcome
        .iter()
        .filter(|r| matches!(r.status, Status::Built | Status::Fetched | Status::Valid))
        .flat_map(|r| r.outputs.values().map(PathBuf::from))
        .collect()
}

/// What became of each installable, from the plan, what the log showed and the verdict.
pub(super) fn results(
    installables: &[String],
    derived: &[Derived],
    record: &RunRecord,
    plan: &Plan,
    ok: bool,
) -> Vec<InstallableResult> {
    let planned: BTreeMap<&str, (&Source, Option<&str>)> = plan
        .paths
        .iter()
        .map(|p| (p.path.as_str(), (&p.source, p.from.as_deref())))
        .collect();
    installables
        .iter()
        .enumerate()
        .map(|(i, installable)| {
            let (drv, outputs): (Option<String>, BTreeMap<String, String>) =
                match derived.get(i).cloned().flatten() {
                    Some((drv, outs)) => (
                        Some(drv.as_str().to_owned()),
                        outs.into_iter()
                            .map(|(k, v)| (k, v.as_str().to_owned()))
                            .collect(),
                    ),
                    None if installable.starts_with('/') && !installable.ends_with(".drv") => (
                        None,
                        BTreeMap::from([("out".to_owned(), installable.clone())]),
                    ),
                    None => (None, BTreeMap::new()),
                };
            let mut built_on = None;
            let mut fetched_from = None;
            let logged = drv.as_ref().and_then(|d| record.builds.get(d));
            let fetched = outputs.values().find_map(|p| record.fetched.get(p));
            let in_plan = outputs.values().find_map(|p| planned.get(p.as_str()));
            let status = match (logged, fetched, in_plan) {
                (Some((end, host)), _, _) => match end {
                    BuildEnd::Built => {
                        built_on = Some(host.clone());
                        Status::Built
                    }
                    BuildEnd::Reused => {
                        fetched_from = Some(host.clone());
                        Status::Fetched
                    }
                    BuildEnd::Failed => {
                        built_on = Some(host.clone());
                        Status::Failed
                    }
                    BuildEnd::Cancelled => Status::Cancelled,
                },
                (None, Some(peer), _) => {
                    fetched_from = Some(peer.clone());
                    Status::Fetched
                }
                (None, None, Some(_)) if !ok => Status::Cancelled,
                (None, None, Some((Source::Build, from))) => {
                    built_on = Some(from.unwrap_or("local").to_owned());
                    Status::Built
                }
                (None, None, Some((_, from))) => {
                    fetched_from = from.map(str::to_owned);
                    Status::Fetched
                }
                (None, None, None) if outputs.is_empty() && !ok => Status::Cancelled,
                (None, None, None) => Status::Valid,
            };
            InstallableResult {
                installable: installable.clone(),
                drv_path: drv,
                outputs,
                status,
                built_on,
                fetched_from,
            }
        })
        .collect()
}

/// Corrects what the log suggested with what the store says now: a "failed" installable whose
/// outputs are all valid was built; a "built" or "fetched" one whose outputs are not valid
/// failed.
pub(super) fn settle(results: &mut [InstallableResult], is_valid: impl Fn(&str) -> bool) {
    for r in results.iter_mut() {
        if r.outputs.is_empty() || r.drv_path.is_none() {
            continue;
        }
        let all_valid = r.outputs.values().all(|p| is_valid(p));
        match r.status {
            Status::Failed if all_valid => r.status = Status::Built,
            Status::Built | Status::Fetched if !all_valid => {
                r.status = Status::Failed;
                r.fetched_from = None;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ResultFormat;
    use crate::plan::{Counts, PlannedPath};
    use crate::render::result_file::{render, ResultFile};
    use crate::store_path::StorePath;

    fn sp(c: char, name: &str) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}-{name}", c.to_string().repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn statuses_come_from_the_log_then_the_plan() {
        let a = (
            sp('a', "a.drv"),
            BTreeMap::from([("out".into(), sp('b', "a"))]),
        );
        let c = (
            sp('c', "c.drv"),
            BTreeMap::from([("out".into(), sp('d', "c"))]),
        );
        let e = (
            sp('i', "e.drv"),
            BTreeMap::from([("out".into(), sp('j', "e"))]),
        );
        let g = (
            sp('k', "g.drv"),
            BTreeMap::from([("out".into(), sp('l', "g"))]),
        );
        let mut record = RunRecord::default();
        record.builds.insert(
            a.0.as_str().into(),
            (BuildEnd::Built, "ssh-ng://seasmoke".into()),
        );
        record
            .builds
            .insert(c.0.as_str().into(), (BuildEnd::Failed, "local".into()));
        record
            .fetched
            .insert(sp('j', "e").as_str().into(), "http://cache".into());
        let plan = Plan {
            mode: crate::plan::Mode::Remote,
            reason: String::new(),
            counts: Counts::default(),
            paths: vec![PlannedPath {
                path: sp('l', "g"),
                source: Source::Build,
                from: None,
            }],
            builds: Vec::new(),
            builder_substituters: Vec::new(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
            may_build_locally: true,
        };
        let names: Vec<String> = ["a", "c", "e", "g"].map(String::from).to_vec();
        let derived = vec![Some(a), Some(c), Some(e), Some(g)];
        let r = results(&names, &derived, &record, &plan, false);
        let st: Vec<Status> = r.iter().map(|r| r.status).collect();
        assert_eq!(
            st,
            [
                Status::Built,
                Status::Failed,
                Status::Fetched,
                Status::Cancelled
            ]
        );
        assert_eq!(r[0].built_on.as_deref(), Some("ssh-ng://seasmoke"));
        assert_eq!(r[2].fetched_from.as_deref(), Some("http://cache"));
        let ok = results(
            &names[3..],
            &derived[3..],
            &RunRecord::default(),
            &plan,
            true,
        );
        assert_eq!(ok[0].status, Status::Built);
        let plan_empty = Plan {
            paths: Vec::new(),
            ..plan
        };
        let valid = results(
            &names[3..],
            &derived[3..],
            &RunRecord::default(),
            &plan_empty,
            true,
        );
        assert_eq!(valid[0].status, Status::Valid);
        let file = ResultFile {
            ok: false,
            mode: "remote",
            reason: "",
            installables: &r,
        };
        let junit = render(ResultFormat::Junit, &file);
        assert!(
            junit.contains("tests=\"4\" failures=\"1\" skipped=\"1\""),
            "{junit}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&render(ResultFormat::Json, &file)).unwrap();
        assert_eq!(json["installables"][1]["status"], "failed");
    }
}
