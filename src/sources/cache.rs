//! Binary caches (nix's `substituters`): which of these paths does each one hold, asked in bulk.
//!
//! `http(s)://` caches are asked for `<hash>.narinfo` with many requests in flight at once over
//! one client (HTTP/2 multiplexes them where the server can); `file://` caches are read directly.
//! Other store types (s3, ssh, daemon) are not asked: the plan treats their paths as unknown and
//! nix may still substitute them.
//!
//! Trust is judged as nix's substitution goal judges it, not as `nix build --dry-run` shows it:
//! the dry run lists a cache's unsigned paths as "will be fetched" (it does not check
//! signatures), while the real build warns "not signed by any of the keys in
//! 'trusted-public-keys'" and builds them (seen with 2.8 and 2.26). A store with no `Priority`
//! in `nix-cache-info` and no `?priority=` has priority 0, asked before cache.nixos.org's 40.

use super::narinfo::{acceptable, NarInfo};
use crate::plan::CacheHit;
use crate::store_path::StorePath;
use futures::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::time::Duration;

/// What one cache holds: the paths nix would take from it, and the paths it holds that nix
/// would refuse (with why).
#[derive(Debug, Default)]
struct Held {
    accepted: BTreeMap<StorePath, CacheHit>,
    refused: BTreeMap<StorePath, String>,
}

/// One cache's answer: what it holds, or why it could not be asked.
type Answer = Result<Held, Unasked>;

/// Why a cache could not be asked.
#[derive(Debug, Clone)]
pub struct Unasked {
    /// One human reason.
    why: String,
    /// It refused the connection or did not answer `nix-cache-info` in time: nix would spend
    /// retries on it (about 4 s refused, minutes stalled), so it is left out of the run.
    dead: bool,
}

impl Unasked {
    fn other(why: impl Into<String>) -> Unasked {
        Unasked {
            why: why.into(),
            dead: false,
        }
    }
}

/// One entry of nix's `substituters`, with the store settings in its query string that decide
/// whether nix takes unsigned paths from it and in which order it is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Substituter {
    /// The URI as configured, query included (how nix names it in its log).
    pub uri: String,
    /// The URI without its query string.
    pub base: String,
    /// `?trusted=1`: nix accepts its paths without a trusted signature.
    pub trusted: bool,
    /// `?priority=N`: wins over the cache's own `Priority` in `nix-cache-info`.
    pub priority: Option<i64>,
}

impl Substituter {
    /// Reads the settings nix reads from a substituter URI's query (`trusted`, `priority`);
    /// other parameters are kept in `uri` and otherwise ignored.
    pub fn parse(uri: &str) -> Substituter {
        let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
        let mut substituter = Substituter {
            uri: uri.to_owned(),
            base: base.trim_end_matches('/').to_owned(),
            trusted: false,
            priority: None,
        };
        for pair in query.split('&') {
            match pair.split_once('=') {
                // nix's boolean settings read "true"/"1" and "false"/"0".
                Some(("trusted", value)) => substituter.trusted = matches!(value, "1" | "true"),
                Some(("priority", value)) => substituter.priority = value.parse().ok(),
                _ => {}
            }
        }
        substituter
    }
}

/// Requests in flight per cache.
const CONCURRENCY: usize = 64;

/// The most a cache's `nix-cache-info` may take, connection included. A cache that refuses the
/// connection or says nothing by then is dead for this run: nix itself would retry a refused
/// one for about 4 s (Nix 2.8, four tries with back-off) and wait up to
/// `stalled-download-timeout` (300 s) on a silent one, then retry (seen here, 2026-12-04).
pub const CACHE_INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// The most the whole batch of questions to the caches may take (each request also has its own
/// timeout): what is not answered by then counts as unknown, and the run goes on.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(60);

/// What the caches hold, and what went wrong asking them.
#[derive(Debug, Default)]
pub struct CacheAnswers {
    /// For each path held by some cache, the first cache (in nix's priority order) and references.
    pub hits: BTreeMap<StorePath, CacheHit>,
    /// Paths some cache holds but nix would take from none of them (unsigned, or signed by
    /// no trusted key), with the first such cache and why: they are built or copied instead.
    pub refused: BTreeMap<StorePath, (String, String)>,
    /// One line per cache that could not be asked, and per cache whose paths nix would refuse.
    pub warnings: Vec<String>,
    /// The caches that refused the connection or did not answer `nix-cache-info` within
    /// [`CACHE_INFO_TIMEOUT`], as configured (query included), with why: nix is not to be
    /// handed them.
    pub dead: Vec<(String, String)>,
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
    /// `None` when nix would take this path from `substituter`, else why not. As nix's
    /// substitution goal decides: a trusted substituter (`?trusted=1`) needs no signature;
    /// otherwise `require-sigs = false`, a content address, or a signature by a trusted key.
    fn refusal(&self, info: &NarInfo, substituter: &Substituter) -> Option<String> {
        let names: Vec<&str> = self.key_names.iter().map(String::as_str).collect();
        if substituter.trusted
            || acceptable(
                &info.signatures,
                info.ca.is_some(),
                &names,
                self.require_sigs,
            )
        {
            return None;
        }
        let signers: Vec<&str> = info
            .signatures
            .iter()
            .filter_map(|s| s.split_once(':').map(|(name, _)| name))
            .collect();
        Some(if signers.is_empty() {
            "it is not signed".to_owned()
        } else {
            format!(
                "it is signed only by {}, not a key in trusted-public-keys",
                signers.join(", ")
            )
        })
    }
}

/// The `nix-cache-info` of each HTTP cache, asked ahead of the narinfo questions (while nix
/// evaluates and the builders are probed), by the URI as configured: a cache that is away
/// then costs the run nothing beyond what evaluation takes anyway.
#[derive(Debug, Clone, Default)]
pub struct CacheInfos(BTreeMap<String, Result<String, Unasked>>);

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(20))
        .user_agent(concat!("nixdispatch/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Asks every HTTP cache among `substituters` for its `nix-cache-info`, all at once, each
/// within [`CACHE_INFO_TIMEOUT`].
pub async fn cache_infos(substituters: &[String]) -> CacheInfos {
    let Ok(client) = http_client() else {
        return CacheInfos::default();
    };
    let asks = substituters.iter().filter_map(|uri| {
        let base = Substituter::parse(uri).base;
        let http = base.starts_with("http://") || base.starts_with("https://");
        let client = &client;
        http.then_some(async move { (uri.clone(), fetch_cache_info(client, &base).await) })
    });
    CacheInfos(futures::future::join_all(asks).await.into_iter().collect())
}

/// Asks every cache about every path; the first cache by priority wins for each path. A cache
/// whose `nix-cache-info` is in `infos` is not asked for it again.
pub async fn query(
    substituters: &[String],
    paths: &[StorePath],
    trust: &Trust,
    infos: &CacheInfos,
) -> CacheAnswers {
    let mut answers = CacheAnswers::default();
    if paths.is_empty() || substituters.is_empty() {
        return answers;
    }
    let client = match http_client() {
        Ok(c) => c,
        Err(err) => {
            answers
                .warnings
                .push(format!("cannot start an HTTP client: {err}"));
            return answers;
        }
    };
    let substituters: Vec<Substituter> =
        substituters.iter().map(|u| Substituter::parse(u)).collect();
    let deadline = tokio::time::Instant::now() + BATCH_DEADLINE;
    let per_cache = substituters.iter().map(|substituter| async {
        // A little after the per-request deadline, so what was answered in time is kept.
        let hard = deadline + Duration::from_secs(2);
        let ask = ask_cache(&client, substituter, paths, trust, deadline, infos);
        match tokio::time::timeout_at(hard, ask).await {
            Ok(answer) => answer,
            Err(_) => (
                i64::MAX,
                substituter.uri.clone(),
                Err(Unasked::other(format!(
                    "no answer within {}s",
                    BATCH_DEADLINE.as_secs()
                ))),
            ),
        }
    });
    let mut results: Vec<(i64, usize, String, Answer)> = futures::future::join_all(per_cache)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, (prio, uri, res))| (prio, i, uri, res))
        .collect();
    // nix tries substituters by ascending priority, then in configured order (a stable sort),
    // and takes a path from the first one that has it and that it accepts it from.
    results.sort_by_key(|(prio, i, _, _)| (*prio, *i));
    let mut refused_by_cache: Vec<(String, Vec<(StorePath, String)>)> = Vec::new();
    for (_, _, uri, res) in results {
        match res {
            Ok(held) => {
                for (path, hit) in held.accepted {
                    answers.hits.entry(path).or_insert(hit);
                }
                refused_by_cache.push((uri, held.refused.into_iter().collect()));
            }
            Err(Unasked { why, dead: true }) => answers.dead.push((uri, why)),
            Err(Unasked { why, .. }) => answers
                .warnings
                .push(format!("cache {uri} was not asked: {why}")),
        }
    }
    for (uri, refused) in refused_by_cache {
        let refused: Vec<(StorePath, String)> = refused
            .into_iter()
            .filter(|(path, _)| !answers.hits.contains_key(path))
            .collect();
        let Some((first, why)) = refused.first() else {
            continue;
        };
        answers
            .warnings
            .push(refusal_warning(&uri, first, why, refused.len()));
        for (path, why) in refused {
            answers
                .refused
                .entry(path)
                .or_insert_with(|| (uri.clone(), why));
        }
    }
    answers
}

/// One line for a cache whose paths nix would refuse: which cache, which path, why, the fix.
fn refusal_warning(uri: &str, first: &StorePath, why: &str, count: usize) -> String {
    let others = match count {
        0 | 1 => String::new(),
        2 => " and 1 more path".to_owned(),
        n => format!(" and {} more paths", n - 1),
    };
    format!(
        "cache {uri} has {}{others}, but nix will refuse {}: {why}; \
         {} built or copied instead (add the cache's public key to trusted-public-keys, \
         or ?trusted=1 to the substituter if you trust it)",
        first.name(),
        if count > 1 { "them" } else { "it" },
        if count > 1 {
            "they will be"
        } else {
            "it will be"
        },
    )
}

async fn ask_cache(
    client: &reqwest::Client,
    substituter: &Substituter,
    paths: &[StorePath],
    trust: &Trust,
    deadline: tokio::time::Instant,
    infos: &CacheInfos,
) -> (i64, String, Answer) {
    let base = substituter.base.as_str();
    let result = if base.starts_with("http://") || base.starts_with("https://") {
        let info = match infos.0.get(&substituter.uri) {
            Some(info) => info.clone(),
            None => fetch_cache_info(client, base).await,
        };
        match info {
            Ok(info) => ask_http(client, base, info, substituter, paths, trust, deadline).await,
            Err(unasked) => Err(unasked),
        }
    } else if let Some(dir) = base.strip_prefix("file://") {
        ask_dir(dir, substituter, paths, trust, deadline).await
    } else {
        Err(Unasked::other(
            "only http(s):// and file:// caches are asked",
        ))
    };
    let uri = substituter.uri.clone();
    match result {
        Ok((info, held)) => {
            let prio = substituter.priority.unwrap_or_else(|| priority(&info));
            (prio, uri, Ok(held))
        }
        Err(why) => (i64::MAX, uri, Err(why)),
    }
}

/// Reads `Priority` from `nix-cache-info` text; nix's default for a store is 0 (a cache that
/// names none is asked before cache.nixos.org's 40).
fn priority(cache_info: &str) -> i64 {
    cache_info
        .lines()
        .find_map(|l| l.strip_prefix("Priority:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A cache's `nix-cache-info`: connection, headers and body together within
/// [`CACHE_INFO_TIMEOUT`].
async fn fetch_cache_info(client: &reqwest::Client, base: &str) -> Result<String, Unasked> {
    tokio::time::timeout(CACHE_INFO_TIMEOUT, async {
        let response = client
            .get(format!("{base}/nix-cache-info"))
            .timeout(CACHE_INFO_TIMEOUT)
            .send()
            .await
            .and_then(|r| r.error_for_status())?;
        super::remote::capped_text(response).await
    })
    .await
    .map_err(|_| dead_after_timeout())?
    .map_err(|err| Unasked {
        why: short_http_error(&err),
        dead: err.is_connect() || err.is_timeout(),
    })
}

async fn ask_http(
    client: &reqwest::Client,
    base: &str,
    info: String,
    substituter: &Substituter,
    paths: &[StorePath],
    trust: &Trust,
    deadline: tokio::time::Instant,
) -> Result<(String, Held), Unasked> {
    let held = ask_each(paths, substituter, trust, deadline, |name| async move {
        let resp = client.get(format!("{base}/{name}")).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        super::remote::capped_text(resp).await.ok()
    })
    .await;
    Ok((info, held))
}

async fn ask_dir(
    dir: &str,
    substituter: &Substituter,
    paths: &[StorePath],
    trust: &Trust,
    deadline: tokio::time::Instant,
) -> Result<(String, Held), Unasked> {
    let info = tokio::fs::read_to_string(format!("{dir}/nix-cache-info"))
        .await
        .map_err(|err| Unasked::other(format!("cannot read {dir}/nix-cache-info: {err}")))?;
    let held = ask_each(paths, substituter, trust, deadline, |name| async move {
        tokio::fs::read_to_string(format!("{dir}/{name}"))
            .await
            .ok()
    })
    .await;
    Ok((info, held))
}

/// Fetches `<hash>.narinfo` for every path with `fetch` (None = absent), many at once, and
/// sorts what the cache holds into what nix would take from it and what it would refuse. A
/// fetch still running at `deadline` counts as absent (unknown to the plan), so one slow cache
/// cannot hold the run.
async fn ask_each<F, Fut>(
    paths: &[StorePath],
    substituter: &Substituter,
    trust: &Trust,
    deadline: tokio::time::Instant,
    fetch: F,
) -> Held
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let fetch = &fetch;
    let answers: Vec<(StorePath, Result<CacheHit, String>)> = stream::iter(paths)
        .map(|path| async move {
            let name = format!("{}.narinfo", path.hash_part());
            let text = tokio::time::timeout_at(deadline, fetch(name))
                .await
                .ok()??;
            hit_from(&text, path, substituter, trust)
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(|x| async move { x })
        .collect()
        .await;
    let mut held = Held::default();
    for (path, answer) in answers {
        match answer {
            Ok(hit) => {
                held.accepted.insert(path, hit);
            }
            Err(why) => {
                held.refused.insert(path, why);
            }
        }
    }
    held
}

/// What a cache's narinfo for `path` means: a hit nix would take, or why it would not; `None`
/// when the text is not a narinfo of that path.
fn hit_from(
    text: &str,
    path: &StorePath,
    substituter: &Substituter,
    trust: &Trust,
) -> Option<(StorePath, Result<CacheHit, String>)> {
    let info = NarInfo::parse(text, path.store_dir())?;
    if info.store_path != path.as_str() {
        return None;
    }
    if let Some(why) = trust.refusal(&info, substituter) {
        return Some((path.clone(), Err(why)));
    }
    Some((
        path.clone(),
        Ok(CacheHit {
            uri: substituter.uri.clone(),
            references: info.references,
            nar_size: info.nar_size,
        }),
    ))
}

fn dead_after_timeout() -> Unasked {
    Unasked {
        why: format!(
            "no answer to nix-cache-info within {}s",
            CACHE_INFO_TIMEOUT.as_secs()
        ),
        dead: true,
    }
}

fn short_http_error(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "cannot connect".to_owned()
    } else if err.is_timeout() {
        format!(
            "no answer to nix-cache-info within {}s",
            CACHE_INFO_TIMEOUT.as_secs()
        )
    } else if let Some(status) = err.status() {
        format!("HTTP {status}")
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_cache_that_never_answers_is_cut_off_at_the_deadline() {
        let path = StorePath::parse("/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-c")
            .unwrap_or_else(|e| panic!("{e}"));
        let trust = Trust {
            key_names: Vec::new(),
            require_sigs: false,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let asked = tokio::time::timeout(
            Duration::from_secs(30),
            ask_each(
                &[path],
                &Substituter::parse("file:///hung"),
                &trust,
                deadline,
                |_| std::future::pending::<Option<String>>(),
            ),
        )
        .await;
        assert_eq!(
            asked
                .map(|held| held.accepted.len() + held.refused.len())
                .ok(),
            Some(0)
        );
    }

    #[test]
    fn reads_priority() {
        assert_eq!(
            priority("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"),
            40
        );
        assert_eq!(priority("StoreDir: /nix/store\n"), 0);
    }

    #[test]
    fn reads_the_substituter_settings_nix_reads_from_the_uri() {
        let s = Substituter::parse("http://c.example/sub/?trusted=1&priority=10");
        assert_eq!(s.base, "http://c.example/sub");
        assert!(s.trusted);
        assert_eq!(s.priority, Some(10));
        let s = Substituter::parse("file:///srv/cache?trusted=true");
        assert_eq!((s.base.as_str(), s.trusted), ("file:///srv/cache", true));
        let s = Substituter::parse("https://cache.example?trusted=0&compression=zstd");
        assert!(!s.trusted && s.priority.is_none());
    }

    const NARINFO: &str = "StorePath: /nix/store/fmlmlvvnibcar2c1npxm7b4yds5d6djn-hello\nURL: nar/x.nar\nCompression: none\nNarHash: sha256:0ab63gr7v9vra7c8p586616yv4kgr68akmhyr6n57z2b08kxspck\nNarSize: 296\nReferences: \n";

    fn hello() -> StorePath {
        StorePath::parse("/nix/store/fmlmlvvnibcar2c1npxm7b4yds5d6djn-hello")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn trust(require_sigs: bool) -> Trust {
        Trust {
            key_names: vec!["upstream-lab-1".into()],
            require_sigs,
        }
    }

    #[test]
    fn an_unsigned_path_is_taken_only_from_a_trusted_substituter_or_without_require_sigs() {
        let plain = Substituter::parse("http://127.0.0.1:9");
        let trusted = Substituter::parse("http://127.0.0.1:9?trusted=1");
        let verdict = |s: &Substituter, t: &Trust| {
            hit_from(NARINFO, &hello(), s, t).map(|(_, r)| r.map(|h| h.uri))
        };
        assert_eq!(
            verdict(&plain, &trust(true)),
            Some(Err("it is not signed".to_owned()))
        );
        assert_eq!(
            verdict(&trusted, &trust(true)),
            Some(Ok("http://127.0.0.1:9?trusted=1".to_owned()))
        );
        assert!(matches!(verdict(&plain, &trust(false)), Some(Ok(_))));
        let signed_by_other = format!("{NARINFO}Sig: other-1:AAAA\n");
        let why = hit_from(&signed_by_other, &hello(), &plain, &trust(true))
            .and_then(|(_, r)| r.err())
            .unwrap_or_default();
        assert_eq!(
            why,
            "it is signed only by other-1, not a key in trusted-public-keys"
        );
        let signed = format!("{NARINFO}Sig: upstream-lab-1:AAAA\n");
        assert!(matches!(
            hit_from(&signed, &hello(), &plain, &trust(true)),
            Some((_, Ok(_)))
        ));
    }

    #[test]
    fn the_refusal_warning_names_the_cache_the_path_and_the_fix() {
        let line = refusal_warning("http://127.0.0.1:9", &hello(), "it is not signed", 3);
        assert_eq!(
            line,
            "cache http://127.0.0.1:9 has hello and 2 more paths, but nix will refuse them: \
             it is not signed; they will be built or copied instead (add the cache's public \
             key to trusted-public-keys, or ?trusted=1 to the substituter if you trust it)"
        );
    }
}
