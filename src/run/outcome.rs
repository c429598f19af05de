//! What became of each installable (built, fetched, valid, failed, cancelled, and where), for
//! the result file and for pushing what a failed `--keep-going` run realised.

use super::NixRequest;
use crate::dispatch::Target;
use crate::plan::Plan;
use crate::render;
use crate::render::record::SharedRecord;
use crate::render::result_file::{InstallableResult, Status};
use crate::settings::Settings;
use std::path::PathBuf;

/// What became of each installable (attribute sets opened), from the plan and the log.
pub(super) async fn outcomes(
    settings: &Settings,
    request: &NixRequest,
    target: &Target,
    plan: &Plan,
    record: &SharedRecord,
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
    let record = render::record::lock(record).clone();
    let mut results = render::result_file::results(&installables, &derived, &record, plan, ok);
    // The store has the last word: when parallel builds stop together nix's log cannot always
    // say which one failed, but an output that is valid now was realised.
    let outputs: Vec<crate::store_path::StorePath> = derived
        .iter()
        .flatten()
        .flat_map(|(_, outs)| outs.values().cloned())
        .collect();
    if let Ok(valid) = crate::sources::local::valid_paths(settings.nix(), &outputs).await {
        let valid: std::collections::BTreeSet<&str> = valid.iter().map(|p| p.as_str()).collect();
        render::result_file::settle(&mut results, |p| valid.contains(p));
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
