//! Builders' stores: which of these paths does each reachable builder hold, over the probe's
//! connection: per batch of paths, one remote `nix-store --check-validity --print-invalid`, then
//! one `nix path-info --json` for the valid ones only (references and signatures), in the JSON
//! format the builder's nix prints best (`crate::nix::path_info`).
//!
//! `nix path-info` on paths the builder lacks first runs nix's `queryMissing` there, which asks
//! every substituter of the builder about each missing path (a narinfo request per path to
//! cache.nixos.org on a typical builder) and prints "don't know how to build these paths".
//! `nix-store --check-validity` only reads the builder's database.

use super::narinfo::acceptable;
use crate::nix::capabilities::{rejected_as_unknown, Capabilities};
use crate::plan::BuilderHit;
use crate::probe::Connection;
use crate::store_path::StorePath;
use serde_json::Value;
use std::collections::BTreeMap;

/// Paths per remote command: one round trip each, far below the remote ARG_MAX.
const BATCH: usize = 1000;

/// Asks one builder about the paths. `trusted_key_names`/`require_sigs` are the LOCAL nix's
/// rules: they decide whether nix would take the path as a substitute from that builder.
///
/// `nix_version` is the builder's as the probe read it: it picks the `nix path-info` JSON format
/// to ask for (see `crate::nix::path_info`).
pub async fn query(
    connection: &Connection,
    uri: &str,
    nix_version: Option<&str>,
    paths: &[StorePath],
    trusted_key_names: &[&str],
    require_sigs: bool,
) -> Result<BTreeMap<StorePath, BuilderHit>, String> {
    let mut hits = BTreeMap::new();
    let mut caps = nix_version.and_then(Capabilities::of_text);
    for batch in paths.chunks(BATCH) {
        let out = connection
            .session()
            .command("nix-store")
            .args(["--check-validity", "--print-invalid"])
            .args(batch.iter().map(|p| p.as_str()))
            .output()
            .await
            .map_err(|err| format!("the connection broke: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`nix-store --check-validity` failed on the builder: {}",
                crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        let valid = super::valid_in_batch(batch, &String::from_utf8_lossy(&out.stdout));
        if valid.is_empty() {
            continue;
        }
        let mut args = crate::nix::path_info::args(caps);
        let mut out = path_info(connection, args, &valid).await?;
        if !out.status.success()
            && args != crate::nix::path_info::FALLBACK_ARGS
            && rejected_as_unknown(&String::from_utf8_lossy(&out.stderr))
        {
            // A nix that numbers itself 2.33+ without `--json-format` (a fork): plain --json,
            // for this batch and the next ones.
            caps = None;
            args = crate::nix::path_info::FALLBACK_ARGS;
            out = path_info(connection, args, &valid).await?;
        }
        if !out.status.success() {
            return Err(format!(
                "`nix path-info` failed on the builder: {}",
                crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        let json: Value = serde_json::from_slice(&out.stdout)
            .map_err(|err| format!("the builder's `nix path-info --json` is unreadable: {err}"))?;
        let store_dir = valid.first().map_or("/nix/store", |p| p.store_dir());
        for info in crate::nix::path_info::parse(&json, store_dir) {
            let substitutable = acceptable(
                &info.signatures,
                info.content_addressed,
                trusted_key_names,
                require_sigs,
            );
            hits.insert(
                info.path,
                BuilderHit {
                    uri: uri.to_owned(),
                    references: info.references,
                    substitutable,
                },
            );
        }
    }
    Ok(hits)
}

/// `nix path-info ARGS PATHS...` on the builder.
async fn path_info(
    connection: &Connection,
    args: &[&str],
    paths: &[&StorePath],
) -> Result<std::process::Output, String> {
    connection
        .session()
        .command("nix")
        .args(["--extra-experimental-features", "nix-command"])
        .args(args)
        .args(paths.iter().map(|p| p.as_str()))
        .output()
        .await
        .map_err(|err| format!("the connection broke: {err}"))
}
