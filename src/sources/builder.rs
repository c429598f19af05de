//! Builders' stores: which of these paths does each reachable builder hold, over the probe's
//! connection: per batch of paths, one remote `nix-store --check-validity --print-invalid`, then
//! one `nix path-info --json` for the valid ones only (references and signatures).
//!
//! `nix path-info` on paths the builder lacks first runs nix's `queryMissing` there, which asks
//! every substituter of the builder about each missing path (a narinfo request per path to
//! cache.nixos.org on a typical builder) and prints "don't know how to build these paths".
//! `nix-store --check-validity` only reads the builder's database.

use super::narinfo::acceptable;
use crate::plan::BuilderHit;
use crate::probe::Connection;
use crate::store_path::StorePath;
use serde_json::Value;
use std::collections::BTreeMap;

/// Paths per remote command at most: one round trip each.
const BATCH: usize = 1000;

/// Bytes of paths per remote command at most. ssh hands the builder's shell the whole command
/// as ONE argument (`sh -c 'nix-store ... P1 P2 ...'`), and Linux caps one argument at 128 KiB
/// (MAX_ARG_STRLEN): 1,000 paths with long names pass it ("Argument list too long"). 64 KiB
/// leaves room for quoting and the command itself. (`nix-store --check-validity` takes its
/// paths only as arguments, not on stdin.)
const BATCH_BYTES: usize = 64 * 1024;

/// `paths` cut into batches of at most [`BATCH`] paths and [`BATCH_BYTES`] bytes (a path is
/// counted with its quotes and separating space).
fn batches(paths: &[StorePath]) -> Vec<&[StorePath]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, path) in paths.iter().enumerate() {
        let size = path.as_str().len() + 3;
        if i > start && (i - start >= BATCH || bytes + size > BATCH_BYTES) {
            out.push(&paths[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < paths.len() {
        out.push(&paths[start..]);
    }
    out
}

/// Asks one builder about the paths. `trusted_key_names`/`require_sigs` are the LOCAL nix's
/// rules: they decide whether nix would take the path as a substitute from that builder.
pub async fn query(
    connection: &Connection,
    uri: &str,
    paths: &[StorePath],
    trusted_key_names: &[&str],
    require_sigs: bool,
) -> Result<BTreeMap<StorePath, BuilderHit>, String> {
    let mut hits = BTreeMap::new();
    for batch in batches(paths) {
        let out = super::remote::output(
            connection
                .session()
                .command("nix-store")
                .args(["--check-validity", "--print-invalid"])
                .args(batch.iter().map(|p| p.as_str())),
            super::remote::MAX_ANSWER,
        )
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
        // `valid` is a part of `batch`: within the same byte budget.
        let out = super::remote::output(
            connection
                .session()
                .command("nix")
                .args([
                    "--extra-experimental-features",
                    "nix-command",
                    "path-info",
                    "--json",
                ])
                .args(valid.iter().map(|p| p.as_str())),
            super::remote::MAX_ANSWER,
        )
        .await
        .map_err(|err| format!("the connection broke: {err}"))?;
        if !out.status.success() {
            return Err(format!(
                "`nix path-info` failed on the builder: {}",
                crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
            ));
        }
        let json: Value = serde_json::from_slice(&out.stdout)
            .map_err(|err| format!("the builder's `nix path-info --json` is unreadable: {err}"))?;
        for (path, info) in valid_entries(&json) {
            let Ok(path) = StorePath::parse(&path) else {
                continue;
            };
            let references = info
                .get("references")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .filter_map(|r| StorePath::parse_in(path.store_dir(), r).ok())
                        .collect()
                })
                .unwrap_or_default();
            let signatures: Vec<String> = info
                .get("signatures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let ca = info.get("ca").is_some_and(|v| !v.is_null());
            let substitutable = acceptable(&signatures, ca, trusted_key_names, require_sigs);
            hits.insert(
                path,
                BuilderHit {
                    uri: uri.to_owned(),
                    references,
                    substitutable,
                },
            );
        }
    }
    Ok(hits)
}

/// The valid entries of `nix path-info --json` in every version's shape: an array of objects
/// with `path` (and `valid: false` for missing ones, up to 2.18), or an object keyed by path
/// with `null` for missing ones (2.19+).
fn valid_entries(json: &Value) -> Vec<(String, &Value)> {
    match json {
        Value::Array(items) => items
            .iter()
            .filter(|i| i.get("valid").and_then(Value::as_bool) != Some(false))
            .filter_map(|i| Some((i.get("path")?.as_str()?.to_owned(), i)))
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter(|(_, v)| v.is_object())
            .map(|(k, v)| (k.clone(), v))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_batched_under_one_argument_limit() {
        let name = "x".repeat(200);
        let paths: Vec<StorePath> = (0..1000)
            .map(|i| {
                StorePath::parse(&format!("/nix/store/{:0>32}-{name}", i % 10))
                    .expect("a valid store path")
            })
            .collect();
        let cut = batches(&paths);
        assert!(cut.len() > 1, "1,000 long paths fit no single command");
        assert_eq!(cut.iter().map(|b| b.len()).sum::<usize>(), 1000);
        for batch in &cut {
            let command: usize = batch.iter().map(|p| p.as_str().len() + 3).sum();
            assert!(command <= BATCH_BYTES, "{command} bytes in one command");
        }
        let short: Vec<StorePath> = paths[..3].to_vec();
        assert_eq!(batches(&short), vec![&short[..]]);
        assert!(batches(&[]).is_empty());
    }

    #[test]
    fn reads_both_path_info_shapes() {
        let old = serde_json::json!([
            {"path": "/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-c", "valid": false},
            {"path": "/nix/store/mprq6n8lsbcxlwkmg7aal7ynrk5wrjsr-a", "narSize": 1, "references": []}
        ]);
        let entries = valid_entries(&old);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].0,
            "/nix/store/mprq6n8lsbcxlwkmg7aal7ynrk5wrjsr-a"
        );
        let new = serde_json::json!({
            "/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-c": null,
            "/nix/store/mprq6n8lsbcxlwkmg7aal7ynrk5wrjsr-a": {"narSize": 1, "references": [], "signatures": ["lab:x"]}
        });
        let entries = valid_entries(&new);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].1["signatures"][0], "lab:x");
    }
}
