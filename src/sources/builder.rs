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
use crate::builder::BuilderId;
use crate::nix::capabilities::{rejected_as_unknown, Capabilities};
use crate::plan::BuilderHit;
use crate::probe::Connection;
use crate::store_path::StorePath;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// Why a builder's store could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The builder stopped answering mid-query (a silent link, a wedged store): what it holds
    /// counts as unknown.
    #[error("stopped answering: {0}")]
    Silent(String),
    /// It answered, but not with what was asked (a failing command, a broken connection, an
    /// unreadable answer).
    #[error("{0}")]
    Failed(String),
}

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
///
/// `nix_version` is the builder's as the probe read it: it picks the `nix path-info` JSON format
/// to ask for (see `crate::nix::path_info`).
pub async fn query(
    connection: &Connection,
    builder: BuilderId,
    nix_version: Option<&str>,
    paths: &[StorePath],
    trusted_key_names: &[&str],
    require_sigs: bool,
) -> Result<BTreeMap<StorePath, BuilderHit>, QueryError> {
    use futures::StreamExt;
    let caps = nix_version.and_then(Capabilities::of_text);
    let rules = (trusted_key_names, require_sigs);
    // Batches go out together over the one connection: the round trips do not add up as the
    // paths grow (a few at a time, well under sshd's MaxSessions of 10).
    let mut answers = futures::stream::iter(batches(paths))
        .map(|batch| query_batch(connection, builder, caps, batch, rules))
        .buffer_unordered(CONCURRENT_BATCHES);
    let mut hits = BTreeMap::new();
    while let Some(answer) = answers.next().await {
        hits.extend(answer?);
    }
    Ok(hits)
}

/// Batches asked of one builder at once.
const CONCURRENT_BATCHES: usize = 4;

/// One batch: which paths the builder holds, then their references and signatures.
async fn query_batch(
    connection: &Connection,
    builder: BuilderId,
    caps: Option<Capabilities>,
    batch: &[StorePath],
    (trusted_key_names, require_sigs): (&[&str], bool),
) -> Result<Vec<(StorePath, BuilderHit)>, QueryError> {
    let deadline = connection.query_timeout();
    if !connection.control_path().exists() {
        // ssh's keepalives closed the master: the link stopped passing packets.
        return Err(QueryError::Silent(
            "the connection went silent and was closed".to_owned(),
        ));
    }
    let out = bounded(
        deadline,
        "nix-store --check-validity",
        super::remote::output(
            connection
                .session()
                .command("nix-store")
                .args(["--check-validity", "--print-invalid"])
                .args(batch.iter().map(|p| p.as_str())),
            super::remote::MAX_ANSWER,
        ),
    )
    .await?;
    if !out.status.success() {
        return Err(QueryError::Failed(format!(
            "`nix-store --check-validity` failed on the builder: {}",
            crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    let valid = super::valid_in_batch(batch, &String::from_utf8_lossy(&out.stdout));
    if valid.is_empty() {
        return Ok(Vec::new());
    }
    // `valid` is a part of `batch`: within the same byte budget.
    let args = crate::nix::path_info::args(caps);
    let mut out = path_info(connection, args, &valid).await?;
    if !out.status.success()
        && args != crate::nix::path_info::FALLBACK_ARGS
        && rejected_as_unknown(&String::from_utf8_lossy(&out.stderr))
    {
        // A nix that numbers itself 2.33+ without `--json-format` (a fork): plain --json.
        out = path_info(connection, crate::nix::path_info::FALLBACK_ARGS, &valid).await?;
    }
    if !out.status.success() {
        return Err(QueryError::Failed(format!(
            "`nix path-info` failed on the builder: {}",
            crate::nix::last_error_line(&String::from_utf8_lossy(&out.stderr))
        )));
    }
    let json: Value = serde_json::from_slice(&out.stdout).map_err(|err| {
        QueryError::Failed(format!(
            "the builder's `nix path-info --json` is unreadable: {err}"
        ))
    })?;
    let store_dir = valid.first().map_or("/nix/store", |p| p.store_dir());
    Ok(crate::nix::path_info::parse(&json, store_dir)
        .into_iter()
        .map(|info| {
            let substitutable = acceptable(
                &info.signatures,
                info.content_addressed,
                trusted_key_names,
                require_sigs,
            );
            (
                info.path,
                BuilderHit {
                    builder,
                    references: info.references,
                    substitutable,
                    nar_size: info.nar_size,
                },
            )
        })
        .collect())
}

/// One remote command with a deadline: a builder that answered the probe and then stalls (a
/// wedged disk, a link that stopped passing packets) must not hold the plan. Dropping the
/// command's future kills its local ssh client.
async fn bounded(
    deadline: Duration,
    what: &str,
    run: impl std::future::Future<Output = Result<std::process::Output, openssh::Error>>,
) -> Result<std::process::Output, QueryError> {
    match tokio::time::timeout(deadline, run).await {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(err)) => Err(QueryError::Failed(format!("the connection broke: {err}"))),
        Err(_) => Err(QueryError::Silent(format!(
            "`{what}` gave no answer within {}s",
            deadline.as_secs_f64().round()
        ))),
    }
}

/// `nix path-info ARGS PATHS...` on the builder.
async fn path_info(
    connection: &Connection,
    args: &[&str],
    paths: &[&StorePath],
) -> Result<std::process::Output, QueryError> {
    bounded(
        connection.query_timeout(),
        "nix path-info",
        super::remote::output(
            connection
                .session()
                .command("nix")
                .args(["--extra-experimental-features", "nix-command"])
                .args(args)
                .args(paths.iter().map(|p| p.as_str())),
            super::remote::MAX_ANSWER,
        ),
    )
    .await
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
}
