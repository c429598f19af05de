//! Where each missing store path can come from, asked in bulk and in parallel: the local store
//! ([`local`]), the binary caches ([`cache`]) and every reachable builder's store ([`builder`]).
//! The cost grows with round trips, not with paths.

pub mod builder;
pub mod cache;
pub mod local;
pub mod narinfo;
pub mod remote;
pub mod substituters;

use crate::builder::Builder;
use crate::nix::config::NixConfig;
use crate::nix::Nix;
use crate::plan::{Availability, Graph};
use crate::store_path::StorePath;
use crate::Result;
use std::collections::BTreeSet;

/// The paths of `batch` that `nix-store --check-validity --print-invalid` did not print, in
/// order: that command prints each invalid path on a line of its own and nothing else.
pub fn valid_in_batch<'a>(
    batch: &'a [StorePath],
    print_invalid_output: &str,
) -> Vec<&'a StorePath> {
    let invalid: BTreeSet<&str> = print_invalid_output.lines().map(str::trim).collect();
    batch
        .iter()
        .filter(|p| !invalid.contains(p.as_str()))
        .collect()
}

/// Every store path the graph can need: all outputs and all input sources.
pub fn graph_paths(graph: &Graph) -> Vec<StorePath> {
    let set: BTreeSet<&StorePath> = graph
        .derivations
        .values()
        .flat_map(|d| d.outputs.values().chain(d.input_srcs.iter()))
        .chain(graph.wanted.iter())
        .collect();
    set.into_iter().cloned().collect()
}

/// What the sources said.
#[derive(Debug, Default)]
pub struct Gathered {
    /// Where each path is.
    pub availability: Availability,
    /// One line per source that could not be asked.
    pub warnings: Vec<String>,
    /// The substituters that refused the connection or said nothing in time, with why
    /// ([`cache::CacheAnswers::dead`]).
    pub dead_substituters: Vec<(String, String)>,
}

/// Asks the local store, then (for what it lacks) the caches and the builders at once.
pub async fn gather(
    nix: &Nix,
    config: &NixConfig,
    graph: &Graph,
    builders: &[Builder],
    infos: &cache::CacheInfos,
) -> Result<Gathered> {
    gather_with(nix, config, graph, builders, infos, None).await
}

/// [`gather`], with the local store's answer for [`graph_paths`] of this graph when it was
/// asked already (while the builders were probed).
pub async fn gather_with(
    nix: &Nix,
    config: &NixConfig,
    graph: &Graph,
    builders: &[Builder],
    infos: &cache::CacheInfos,
    known_valid: Option<BTreeSet<StorePath>>,
) -> Result<Gathered> {
    let all = graph_paths(graph);
    let valid_locally = match known_valid {
        Some(valid) => valid,
        None => local::valid_paths(nix, &all).await?,
    };
    let missing: Vec<StorePath> = all
        .into_iter()
        .filter(|p| !valid_locally.contains(p))
        .collect();

    let trust = cache::Trust {
        key_names: config
            .trusted_key_names()
            .iter()
            .map(|s| s.to_string())
            .collect(),
        require_sigs: config.require_sigs,
    };
    let key_names = config.trusted_key_names();
    let caches = cache::query(&config.substituters, &missing, &trust, infos);
    let stores = futures::future::join_all(builders.iter().filter_map(|b| {
        let connection = b.connection().cloned()?;
        let missing = &missing;
        let key_names = &key_names;
        Some(async move {
            let res = builder::query(
                &connection,
                b.id,
                b.nix_version.as_deref(),
                missing,
                key_names,
                config.require_sigs,
            )
            .await;
            (b.host().to_owned(), res)
        })
    }));
    let (caches, stores) = futures::join!(caches, stores);

    let mut availability = Availability {
        valid_locally,
        ..Default::default()
    };
    let mut warnings = caches.warnings;
    availability.in_caches = caches.hits;
    for (host, res) in stores {
        match res {
            Ok(hits) => {
                for (path, hit) in hits {
                    availability.on_builders.entry(path).or_default().push(hit);
                }
            }
            Err(why @ builder::QueryError::Silent(_)) => warnings.push(format!(
                "builder {host} {why}: what it holds counts as unknown"
            )),
            Err(why) => warnings.push(format!("{host}'s store was not asked: {why}")),
        }
    }
    Ok(Gathered {
        availability,
        warnings,
        dead_substituters: caches.dead,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(name: &str, c: char) -> StorePath {
        StorePath::parse(&format!("/nix/store/{}-{name}", c.to_string().repeat(32)))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn valid_in_batch_drops_the_printed_paths() {
        let batch = [sp("a", 'a'), sp("b", 'b'), sp("c", 'c')];
        let printed = format!("{}\n{}\r\n", batch[2], batch[0]);
        assert_eq!(valid_in_batch(&batch, &printed), [&batch[1]]);
        assert_eq!(valid_in_batch(&batch, "").len(), 3);
        assert!(valid_in_batch(&[], "whatever").is_empty());
    }
}
