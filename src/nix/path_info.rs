//! `nix path-info --json`: which of the asked paths a store holds, with their references,
//! signatures and content address, in every shape nix has printed (recorded in
//! `tests/data/formats/path-info-*.json`):
//!
//! | nix | command | shape |
//! |---|---|---|
//! | 2.8 .. 2.18, Lix | `--json` | `[{"path": "/nix/store/…", "references": [...], "signatures": [...], "ca": "fixed:…"}]`, `{"path", "valid": false}` for a missing path |
//! | 2.19 .. 2.32 | `--json` | `{"/nix/store/…": {...} \| null}` |
//! | 2.33+ | `--json --json-format 1` (bare `--json`: the same, plus a deprecation warning on every call) | as 2.19, each entry also carrying `version: 1` and `storeDir` |
//! | 2.33+ | `--json --json-format 2` | `{"version": 2, "storeDir": "/nix/store", "info": {BASENAME: {...} \| null}}`, references as base names, `ca` structured (`{"method": "nar", "hash": "sha256-…"}`) |
//! | 2.35+ | `--json --json-format 3` | as 2, signatures structured (`{"keyName": …, "sig": …}`) |
//!
//! We ask for format 2 where nix offers `--json-format` ([`args`]), so no warning is printed;
//! the reader takes every shape whatever was asked, so a wrong guess costs nothing.

use super::capabilities::Capabilities;
use crate::store_path::StorePath;
use serde_json::{Map, Value};

/// One valid path as `nix path-info --json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathInfo {
    /// The path.
    pub path: StorePath,
    /// What it refers to.
    pub references: Vec<StorePath>,
    /// Its signatures, as `keyName:base64` whatever the format printed.
    pub signatures: Vec<String>,
    /// Whether it is content-addressed (then it needs no signature to be trusted).
    pub content_addressed: bool,
    /// Its NAR size in bytes, when nix said.
    pub nar_size: Option<u64>,
}

/// The `nix path-info` arguments that ask for JSON in the form this nix reads best: with
/// `--json-format 2` where offered (2.33+: avoids the deprecation warning), plain `--json`
/// otherwise (and when the version is unknown).
pub fn args(caps: Option<Capabilities>) -> &'static [&'static str] {
    if caps.is_some_and(|c| c.path_info_json_format) {
        &["path-info", "--json", "--json-format", "2"]
    } else {
        &["path-info", "--json"]
    }
}

/// The arguments to retry with when nix refused `--json-format` (a fork that numbers itself
/// 2.33+ without having it).
pub const FALLBACK_ARGS: &[&str] = &["path-info", "--json"];

/// Every valid path in `nix path-info --json` output of any shape; missing paths (`null`,
/// `valid: false`) and entries that are not store paths are left out. `store_dir` is used for
/// base names unless the output names its own `storeDir`.
pub fn parse(json: &Value, store_dir: &str) -> Vec<PathInfo> {
    match json {
        Value::Array(items) => items
            .iter()
            .filter(|i| i.get("valid").and_then(Value::as_bool) != Some(false))
            .filter_map(|i| entry(i.get("path")?.as_str()?, i, store_dir))
            .collect(),
        Value::Object(map) => {
            if let (Some(Value::Object(info)), true) =
                (map.get("info"), map.contains_key("version"))
            {
                let dir = map
                    .get("storeDir")
                    .and_then(Value::as_str)
                    .unwrap_or(store_dir);
                keyed(info, dir)
            } else {
                keyed(map, store_dir)
            }
        }
        _ => Vec::new(),
    }
}

fn keyed(map: &Map<String, Value>, store_dir: &str) -> Vec<PathInfo> {
    map.iter()
        .filter(|(_, v)| v.is_object())
        .filter_map(|(k, v)| {
            let dir = v
                .get("storeDir")
                .and_then(Value::as_str)
                .unwrap_or(store_dir);
            entry(k, v, dir)
        })
        .collect()
}

fn entry(path: &str, info: &Value, store_dir: &str) -> Option<PathInfo> {
    let path = StorePath::parse_in(store_dir, path).ok()?;
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
    let signatures = info
        .get("signatures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(signature).collect())
        .unwrap_or_default();
    let content_addressed = info.get("ca").is_some_and(|v| !v.is_null());
    let nar_size = info.get("narSize").and_then(Value::as_u64);
    Some(PathInfo {
        path,
        references,
        signatures,
        content_addressed,
        nar_size,
    })
}

/// `"name:base64"` (formats up to 2), or `{"keyName": "name", "sig": "base64"}` (format 3).
fn signature(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => {
            let name = o.get("keyName")?.as_str()?;
            let sig = o.get("sig")?.as_str()?;
            Some(format!("{name}:{sig}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/63arh0rdbsv1b7a5g586sc5s4w6z7hb2-a";
    const B: &str = "/nix/store/zi7rp7v5y5wc0hq17spcdfsdd9wl39bf-b";
    const SRC: &str = "/nix/store/3kqs82dyiay178lrv2p1kxw92gy88zdz-srcfile";

    fn recorded(name: &str) -> Value {
        let file = format!("{}/tests/data/formats/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// The same three valid paths and one missing one, asked of every version: the same answer.
    fn check(infos: &[PathInfo]) {
        let paths: Vec<&str> = infos.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(infos.len(), 3, "{paths:?}");
        for p in [A, B, SRC] {
            assert!(paths.contains(&p), "{p} missing from {paths:?}");
        }
        let get = |p: &str| infos.iter().find(|i| i.path.as_str() == p).unwrap();
        assert!(
            get(SRC).content_addressed,
            "srcfile was added with nix-store --add"
        );
        assert!(!get(A).content_addressed);
        assert!(
            get(A).nar_size.is_some_and(|n| n > 0),
            "every version says narSize"
        );
        assert!(get(A).signatures.is_empty());
        let sigs = &get(B).signatures;
        assert_eq!(sigs.len(), 1);
        assert!(sigs[0].starts_with("rec-1:"), "{sigs:?}");
    }

    #[test]
    fn reads_nix_2_8_array() {
        check(&parse(&recorded("path-info-2.8.json"), "/nix/store"));
    }

    #[test]
    fn reads_nix_2_26_object() {
        check(&parse(&recorded("path-info-2.26.json"), "/nix/store"));
    }

    #[test]
    fn reads_nix_2_34_bare_json_and_format_1() {
        check(&parse(&recorded("path-info-2.34.json"), "/nix/store"));
        check(&parse(
            &recorded("path-info-2.34-format1.json"),
            "/nix/store",
        ));
    }

    #[test]
    fn reads_nix_2_34_format_2_wrapper_with_base_names() {
        let infos = parse(&recorded("path-info-2.34-format2.json"), "/elsewhere");
        // The wrapper's storeDir wins over the caller's guess.
        check(&infos);
    }

    #[test]
    fn reads_pretty_printed_output_from_a_terminal() {
        // 2.29+ indents --json output when stdout is a terminal (recorded with script(1)).
        check(&parse(
            &recorded("path-info-2.34-format2-tty.json"),
            "/nix/store",
        ));
    }

    #[test]
    fn bare_json_warns_on_2_34_so_we_ask_for_a_format() {
        let stderr = std::fs::read_to_string(format!(
            "{}/tests/data/formats/path-info-2.34.stderr",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert!(stderr.contains("'--json' without '--json-format' is deprecated"));
        let new = Capabilities::of_text("2.34.8");
        assert_eq!(args(new), ["path-info", "--json", "--json-format", "2"]);
        assert_eq!(args(Capabilities::of_text("2.26.3")), FALLBACK_ARGS);
        assert_eq!(args(None), FALLBACK_ARGS);
        // Lix numbers itself 2.9x but has no --json-format.
        assert_eq!(
            args(Capabilities::of_text("nix-store (Lix, like Nix) 2.91.1")),
            FALLBACK_ARGS
        );
    }

    #[test]
    fn reads_structured_signatures_of_format_3() {
        // Nix 2.35 release notes: signatures as {keyName, sig}.
        let json = serde_json::json!({"version": 3, "storeDir": "/nix/store", "info": {
            "zi7rp7v5y5wc0hq17spcdfsdd9wl39bf-b": {"ca": null, "references": ["63arh0rdbsv1b7a5g586sc5s4w6z7hb2-a"],
              "signatures": [{"keyName": "lab-1", "sig": "AAAA"}]},
            "0000000000000000000000000000000a-missing": null}});
        let infos = parse(&json, "/nix/store");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].signatures, ["lab-1:AAAA"]);
        assert_eq!(infos[0].references[0].as_str(), A);
    }

    #[test]
    fn reads_the_lix_shape() {
        // Lix (forked from Nix 2.18) keeps 2.18's array: lix/nix/path-info.cc prints
        // `pathInfoToJSON(paths, ..., AllowInvalid)`, `{"path", "valid": false}` for a missing
        // path. Lix cannot run here, so this is its shape from the source.
        let json = serde_json::json!([
            {"path": A, "narSize": 120, "references": [], "signatures": ["lix-1:AAAA"], "ca": null},
            {"path": "/nix/store/0000000000000000000000000000000a-missing", "valid": false}
        ]);
        let infos = parse(&json, "/nix/store");
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].signatures, ["lix-1:AAAA"]);
    }

    #[test]
    fn garbage_gives_nothing() {
        assert!(parse(&serde_json::json!("x"), "/nix/store").is_empty());
        assert!(parse(&serde_json::json!({"not a path": {}}), "/nix/store").is_empty());
    }
}
