//! Binary caches (nix's `substituters`): which of these paths does each one hold, asked in bulk.
//!
//! `http(s)://` caches are asked for `<hash>.narinfo` with many requests in flight at once over
//! one client (HTTP/2 multiplexes them where the server can); `file://` caches are read directly.
//! Other store types (s3, ssh, daemon) are not asked: the plan treats their paths as unknown and
//! nix may still substitute them.

use super::narinfo::{acceptable, NarInfo};
use crate::plan::CacheHit;
use crate::store_path::StorePath;
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::time::Duration;

/// One cache's answer: its hits, or why it could not be asked.
type Answer = Result<BTreeMap<StorePath, CacheHit>, String>;

/// Requests in flight per cache.
const CONCURRENCY: usize = 64;

/// What the caches hold, and what went wrong asking them.
#[derive(Debug, Default)]
pub struct CacheAnswers {
    /// For each path held by some cache, the first cache (in nix's priority order) and references.
    pub hits: BTreeMap<StorePath, CacheHit>,
    /// One line per cache that could not be asked.
    pub warnings: Vec<String>,
}

/// The trust rules nix applies to substitutes.
#[derive(Debug, Clone)]
pub struct Trust {
    /// Names of `trusted-public-keys`.
    pub key_names: Vec<String>,
    /// `require-sigs`.
    pub require_sigs: bool,
}

impl Trust {
    fn accepts(&self, info: &NarInfo) -> bool {
        let names: Vec<&str> = self.key_names.iter().map(String::as_str).collect();
        acceptable(
            &info.signatures,
            info.ca.is_some(),
            &names,
            self.require_sigs,
        )
    }
}

/// Asks every cache about every path; the first cache by priority wins for each path.
pub async fn query(substituters: &[String], paths: &[StorePath], trust: &Trust) -> CacheAnswers {
    let mut answers = CacheAnswers::default();
    if paths.is_empty() || substituters.is_empty() {
        return answers;
    }
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("nixdispatch/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(err) => {
            answers
                .warnings
                .push(format!("cannot start an HTTP client: {err}"));
            return answers;
        }
    };
    let per_cache = substituters
        .iter()
        .map(|uri| ask_cache(&client, uri, paths, trust));
    let mut results: Vec<(i64, usize, String, Answer)> = futures::future::join_all(per_cache)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, (prio, uri, res))| (prio, i, uri, res))
        .collect();
    // nix tries substituters by ascending priority, then in configured order.
    results.sort_by_key(|(prio, i, _, _)| (*prio, *i));
    for (_, _, uri, res) in results {
        match res {
            Ok(hits) => {
                for (path, hit) in hits {
                    answers.hits.entry(path).or_insert(hit);
                }
            }
            Err(why) => answers
                .warnings
                .push(format!("cache {uri} was not asked: {why}")),
        }
    }
    answers
}

async fn ask_cache(
    client: &reqwest::Client,
    uri: &str,
    paths: &[StorePath],
    trust: &Trust,
) -> (i64, String, Answer) {
    let base = uri
        .split('?')
        .next()
        .unwrap_or(uri)
        .trim_end_matches('/')
        .to_owned();
    let result = if base.starts_with("http://") || base.starts_with("https://") {
        ask_http(client, &base, uri, paths, trust).await
    } else if let Some(dir) = base.strip_prefix("file://") {
        ask_dir(dir, uri, paths, trust).await
    } else {
        Err("only http(s):// and file:// caches are asked".to_owned())
    };
    match result {
        Ok((prio, hits)) => (prio, uri.to_owned(), Ok(hits)),
        Err(why) => (i64::MAX, uri.to_owned(), Err(why)),
    }
}

/// Reads `Priority` from `nix-cache-info` text (nix's default is 50).
fn priority(cache_info: &str) -> i64 {
    cache_info
        .lines()
        .find_map(|l| l.strip_prefix("Priority:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(50)
}

async fn ask_http(
    client: &reqwest::Client,
    base: &str,
    uri: &str,
    paths: &[StorePath],
    trust: &Trust,
) -> Result<(i64, BTreeMap<StorePath, CacheHit>), String> {
    let info = client
        .get(format!("{base}/nix-cache-info"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|err| short_http_error(&err))?;
    let info = super::remote::capped_text(info)
        .await
        .map_err(|err| short_http_error(&err))?;
    let hits = ask_each(paths, uri, trust, |name| async move {
        let resp = client.get(format!("{base}/{name}")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        super::remote::capped_text(resp).await.ok()
    })
    .await;
    Ok((priority(&info), hits))
}

async fn ask_dir(
    dir: &str,
    uri: &str,
    paths: &[StorePath],
    trust: &Trust,
) -> Result<(i64, BTreeMap<StorePath, CacheHit>), String> {
    let info = tokio::fs::read_to_string(format!("{dir}/nix-cache-info"))
        .await
        .map_err(|err| format!("cannot read {dir}/nix-cache-info: {err}"))?;
    let hits = ask_each(paths, uri, trust, |name| async move {
        tokio::fs::read_to_string(format!("{dir}/{name}"))
            .await
            .ok()
    })
    .await;
    Ok((priority(&info), hits))
}

/// Fetches `<hash>.narinfo` for every path with `fetch` (None = absent), many at once, and
/// keeps the ones nix would accept from this cache.
async fn ask_each<F, Fut>(
    paths: &[StorePath],
    uri: &str,
    trust: &Trust,
    fetch: F,
) -> BTreeMap<StorePath, CacheHit>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let fetch = &fetch;
    stream::iter(paths)
        .map(|path| async move {
            let text = fetch(format!("{}.narinfo", path.hash_part())).await?;
            hit_from(&text, path, uri, trust)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|x| async move { x })
        .collect()
        .await
}

fn hit_from(
    text: &str,
    path: &StorePath,
    uri: &str,
    trust: &Trust,
) -> Option<(StorePath, CacheHit)> {
    let info = NarInfo::parse(text, path.store_dir())?;
    if info.store_path != path.as_str() || !trust.accepts(&info) {
        return None;
    }
    Some((
        path.clone(),
        CacheHit {
            uri: uri.to_owned(),
            references: info.references,
        },
    ))
}

fn short_http_error(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "cannot connect".to_owned()
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else if let Some(status) = err.status() {
        format!("HTTP {status}")
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_priority() {
        assert_eq!(
            priority("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"),
            40
        );
        assert_eq!(priority("StoreDir: /nix/store\n"), 50);
    }
}
