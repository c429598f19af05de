//! The substituters and keys nix will really use for this run, which are not always the ones
//! `nix config show` lists:
//!
//! - a flake's `nixConfig` adds or replaces them for commands on that flake, when nix accepts it
//!   (`accept-flake-config`, or a "yes, always" saved in `trusted-settings.json()`); only the
//!   flake named on the command line counts, never its inputs' `nixConfig`;
//! - a nix daemon that does not trust the user keeps its own substituters and keys, and takes
//!   the user's extra substituters only when they are in its `trusted-substituters`.

use crate::nix::config::NixConfig;
use crate::nix::Nix;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The `nixConfig` settings that decide where paths are substituted from and which are taken.
const RELEVANT: [&str; 5] = [
    "substituters",
    "extra-substituters",
    "trusted-public-keys",
    "extra-trusted-public-keys",
    "require-sigs",
];

/// What `~/.local/share/nix/trusted-settings.json()` holds: setting name, then value as nix
/// joins it (list items separated by one space), then whether the user trusted it for good.
pub type TrustedSettings = BTreeMap<String, BTreeMap<String, bool>>;

/// The config nix will use for substitution in this run, and one line per adjustment that
/// the user should know about.
pub async fn effective(
    nix: &Nix,
    config: &NixConfig,
    installables: &[String],
    untrusted_daemon_client: bool,
) -> (NixConfig, Vec<String>) {
    let saved = read_trusted_settings();
    let mut flake_settings = Vec::new();
    let mut notes = Vec::new();
    // Read even when nix will not apply it: a flake that declares a cache nix is going to
    // ignore is worth a line (two nix calls, only when something is missing).
    for flake in flake_refs(installables) {
        match flake_config(nix, &flake).await {
            Ok(settings) => flake_settings.extend(settings),
            Err(why) => notes.push(format!(
                "the nixConfig of {flake} was not read ({why}): planned without it"
            )),
        }
    }
    let (config, more) = apply(config, &flake_settings, &saved, untrusted_daemon_client);
    notes.extend(more);
    (config, notes)
}

/// The flake references among installables (`path:/x#pkg` → `path:/x`, `.#pkg` → `.`),
/// each once. Store paths and `.drv` installables are not flakes.
pub fn flake_refs(installables: &[String]) -> Vec<String> {
    let mut refs: Vec<String> = Vec::new();
    for installable in installables {
        let flake = match installable.split_once('#') {
            Some((flake, _)) => flake,
            None if installable.starts_with('/') || installable.contains('^') => continue,
            None => installable.as_str(),
        };
        let flake = if flake.is_empty() { "." } else { flake };
        if !refs.iter().any(|r| r == flake) {
            refs.push(flake.to_owned());
        }
    }
    refs
}

/// Reads a flake's substitution settings from its `nixConfig`, as `(name, value)` with list
/// values joined by spaces (nix's own spelling, which `trusted-settings.json()` keys on).
async fn flake_config(nix: &Nix, flake: &str) -> Result<Vec<(String, String)>, String> {
    let file = match local_flake_file(flake) {
        Some(file) => file,
        None => flake_file_from_metadata(nix, flake).await?,
    };
    flake_file_config(nix, &file).await
}

/// The `flake.nix` of a flake in a local directory (`path:/x`, `/x`, `./x`, `.`) without a
/// query, read in place: the same file nix copies to the store, without the `nix flake
/// metadata` call that finding the copy costs. `None` for anything else (git, tarballs,
/// registry names, `?dir=`), and when the directory has no `flake.nix` (nix then looks in the
/// parent directories).
fn local_flake_file(flake: &str) -> Option<PathBuf> {
    if flake.contains('?') || flake.contains('#') {
        return None;
    }
    let dir = match flake.strip_prefix("path:") {
        Some(dir) => dir,
        None if flake.starts_with('/') || flake == "." || flake.starts_with("./") => flake,
        None => return None,
    };
    // Absolute, as `import` needs.
    let file = std::fs::canonicalize(PathBuf::from(dir).join("flake.nix")).ok()?;
    file.is_file().then_some(file)
}

/// The `flake.nix` of any flake: where `nix flake metadata` says its source is.
async fn flake_file_from_metadata(nix: &Nix, flake: &str) -> Result<PathBuf, String> {
    let meta = nix
        .output("nix", ["flake", "metadata", "--json", flake])
        .await
        .map_err(|e| e.to_string())?;
    let meta: serde_json::Value =
        serde_json::from_slice(&meta).map_err(|e| format!("nix flake metadata: {e}"))?;
    let source = meta["path"]
        .as_str()
        .ok_or("nix flake metadata printed no source path")?;
    // A flake in a subdirectory of its source (`?dir=sub`).
    let url = meta["resolvedUrl"]
        .as_str()
        .or(meta["url"].as_str())
        .unwrap_or_default();
    let dir = url
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("dir="))
        .unwrap_or_default();
    Ok(PathBuf::from(source).join(dir).join("flake.nix"))
}

/// The substitution settings in a `flake.nix`'s `nixConfig`.
async fn flake_file_config(
    nix: &Nix,
    file: &std::path::Path,
) -> Result<Vec<(String, String)>, String> {
    let names = RELEVANT
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(" ");
    // nix's own conversion of nixConfig values: lists joined by spaces, booleans as words.
    let expr = format!(
        "let c = (import {file}).nixConfig or {{}}; \
             str = v: if builtins.isList v then builtins.concatStringsSep \" \" (map str v) \
                 else if builtins.isBool v then (if v then \"true\" else \"false\") \
                 else toString v; \
         in builtins.listToAttrs (map (n: {{ name = n; value = str c.${{n}}; }}) \
             (builtins.filter (n: c ? ${{n}}) [ {names} ]))",
        file = nix_string(&file.to_string_lossy())
    );
    let out = nix
        .output("nix", ["eval", "--json", "--impure", "--expr", &expr])
        .await
        .map_err(|e| e.to_string())?;
    let values: BTreeMap<String, String> =
        serde_json::from_slice(&out).map_err(|e| format!("nix eval: {e}"))?;
    Ok(values.into_iter().collect())
}

/// A Nix string literal for `text`.
fn nix_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("\\$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `$XDG_DATA_HOME/nix/trusted-settings.json()` (or `~/.local/share/...`); empty when absent or
/// unreadable (nix then asks, or ignores the flake's settings without a terminal).
fn read_trusted_settings() -> TrustedSettings {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")));
    base.and_then(|b| std::fs::read(b.join("nix/trusted-settings.json()")).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Applies the flake's settings nix would accept, then what a daemon that does not trust the
/// user keeps. Pure: every rule is a unit test.
pub fn apply(
    config: &NixConfig,
    flake_settings: &[(String, String)],
    saved: &TrustedSettings,
    untrusted_daemon_client: bool,
) -> (NixConfig, Vec<String>) {
    let mut out = config.clone();
    let mut notes = Vec::new();
    for (name, value) in flake_settings {
        if !RELEVANT.contains(&name.as_str()) {
            continue;
        }
        let saved_yes = saved
            .get(name)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(false);
        if !config.accept_flake_config && !saved_yes {
            notes.push(format!(
                "the flake's nixConfig sets {name} = {value}, which nix ignores without \
                 accept-flake-config (or your yes at its prompt); planned without it"
            ));
            continue;
        }
        let words = value.split_whitespace().map(str::to_owned);
        match name.as_str() {
            "substituters" => out.substituters = words.collect(),
            "extra-substituters" => extend_unique(&mut out.substituters, words),
            "trusted-public-keys" => out.trusted_public_keys = words.collect(),
            "extra-trusted-public-keys" => extend_unique(&mut out.trusted_public_keys, words),
            "require-sigs" => out.require_sigs = value.trim() != "false",
            _ => {}
        }
    }
    if untrusted_daemon_client {
        // nix's daemon: a user's substituters count only if listed in its own `substituters`
        // or `trusted-substituters` (also with a trailing slash); keys and require-sigs are its own.
        let allowed = |s: &str| {
            config
                .substituters
                .iter()
                .chain(&config.trusted_substituters)
                .any(|a| a == s || a.trim_end_matches('/') == s.trim_end_matches('/'))
        };
        let (kept, dropped): (Vec<String>, Vec<String>) =
            out.substituters.into_iter().partition(|s| allowed(s));
        for s in dropped {
            notes.push(format!(
                "the nix daemon does not trust you, so it ignores the substituter {s}: \
                 add it to the daemon's trusted-substituters, or yourself to trusted-users"
            ));
        }
        out.substituters = kept;
        out.trusted_public_keys = config.trusted_public_keys.clone();
        out.require_sigs = config.require_sigs;
    }
    (out, notes)
}

fn extend_unique(list: &mut Vec<String>, words: impl Iterator<Item = String>) {
    for w in words {
        if !list.contains(&w) {
            list.push(w);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(accept: bool) -> NixConfig {
        NixConfig {
            substituters: vec!["https://cache.example".into()],
            trusted_public_keys: vec!["cache.example-1:AAAA".into()],
            require_sigs: true,
            accept_flake_config: accept,
            ..NixConfig::default()
        }
    }

    fn flake() -> Vec<(String, String)> {
        vec![
            (
                "extra-substituters".into(),
                "http://127.0.0.1:9 http://127.0.0.1:8".into(),
            ),
            ("extra-trusted-public-keys".into(), "lab-1:BBBB".into()),
            ("bash-prompt".into(), "x".into()),
        ]
    }

    #[test]
    fn flake_refs_are_the_part_before_the_hash() {
        let inst: Vec<String> = [
            "path:/x#a",
            "path:/x#b",
            ".#c",
            "#d",
            "/nix/store/aaa-x.drv^out",
            "/nix/store/aaa-y",
            "github:o/r",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(flake_refs(&inst), ["path:/x", ".", "github:o/r"]);
    }

    #[test]
    fn accepted_flake_settings_add_substituters_and_keys() {
        let (c, notes) = apply(&config(true), &flake(), &TrustedSettings::new(), false);
        assert_eq!(
            c.substituters,
            [
                "https://cache.example",
                "http://127.0.0.1:9",
                "http://127.0.0.1:8"
            ]
        );
        assert_eq!(
            c.trusted_public_keys,
            ["cache.example-1:AAAA", "lab-1:BBBB"]
        );
        assert!(notes.is_empty(), "{notes:?}");
        // `substituters` (without extra-) replaces.
        let (c, _) = apply(
            &config(true),
            &[("substituters".into(), "http://only".into())],
            &TrustedSettings::new(),
            false,
        );
        assert_eq!(c.substituters, ["http://only"]);
    }

    #[test]
    fn without_accept_flake_config_only_saved_answers_count() {
        let (c, notes) = apply(&config(false), &flake(), &TrustedSettings::new(), false);
        assert_eq!(c.substituters, ["https://cache.example"]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("accept-flake-config"));
        let saved: TrustedSettings = serde_json::from_str(
            r#"{"extra-substituters":{"http://127.0.0.1:9 http://127.0.0.1:8":true},
                "extra-trusted-public-keys":{"lab-1:BBBB":false}}"#,
        )
        .unwrap_or_default();
        let (c, notes) = apply(&config(false), &flake(), &saved, false);
        assert_eq!(c.substituters.len(), 3);
        assert_eq!(c.trusted_public_keys, ["cache.example-1:AAAA"]);
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn an_untrusted_daemon_client_keeps_only_trusted_substituters() {
        let mut base = config(true);
        base.trusted_substituters = vec!["http://127.0.0.1:9/".into()];
        let (c, notes) = apply(&base, &flake(), &TrustedSettings::new(), true);
        assert_eq!(
            c.substituters,
            ["https://cache.example", "http://127.0.0.1:9"]
        );
        assert_eq!(c.trusted_public_keys, ["cache.example-1:AAAA"]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("http://127.0.0.1:8"), "{notes:?}");
    }

    #[test]
    fn local_flakes_are_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_string_lossy().into_owned();
        assert_eq!(local_flake_file(&format!("path:{path}")), None);
        std::fs::write(dir.path().join("flake.nix"), "{ outputs = _: {}; }").unwrap();
        let file = std::fs::canonicalize(dir.path().join("flake.nix")).unwrap();
        assert_eq!(
            local_flake_file(&format!("path:{path}")),
            Some(file.clone())
        );
        assert_eq!(local_flake_file(&path), Some(file));
        for other in [
            format!("path:{path}?dir=sub"),
            format!("git+file://{path}"),
            "github:o/r".to_owned(),
            "nixpkgs".to_owned(),
        ] {
            assert_eq!(local_flake_file(&other), None, "{other}");
        }
    }

    #[test]
    fn nix_strings_are_escaped() {
        assert_eq!(nix_string("/a\"b$c\\"), "\"/a\\\"b\\$c\\\\\"");
    }
}
