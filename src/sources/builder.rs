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
use std::time::Duration;

/// Paths per remote command: one round trip each, far below the remote ARG_MAX.
const BATCH: usize = 1000;

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
    let deadline = connection.query_timeout();
    for batch in paths.chunks(BATCH) {
        if !connection.control_path().exists() {
            // ssh's keepalives closed the master: the link stopped passing packets.
            return Err("stopped answering: the connection went silent and was closed".to_owned());
        }
        let out = bounded(
            deadline,
            "nix-store --check-validity",
            connection
                .session()
                .command("nix-store")
                .args(["--check-validity", "--print-invalid"])
                .args(batch.iter().map(|p| p.as_str()))
                .output(),
        )
        .await?;
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
        let out = bounded(
            deadline,
            "nix path-info",
            connection
                .session()
                .command("nix")
                .args([
                    "--extra-experimental-features",
                    "nix-command",
                    "path-info",
                    "--json",
                ])
                .args(valid.iter().map(|p| p.as_str()))
                .output(),
        )
        .await?;
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

/// One remote command with a deadline: a builder that answered the probe and then stalls (a
/// wedged disk, a link that stopped passing packets) must not hold the plan. Dropping the
/// command's future kills its local ssh client.
async fn bounded(
    deadline: Duration,
    what: &str,
    run: impl std::future::Future<Output = Result<std::process::Output, openssh::Error>>,
) -> Result<std::process::Output, String> {
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(err)) => Err(format!("the connection broke: {err}")),
        Err(_) => Err(format!(
            "stopped answering: `{what}` gave no answer within {}s",
            deadline.as_secs_f64().round()
        )),
    }
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
