//! `nix build --json`'s result on stdout: `[{"drvPath": DRV, "outputs": {"out": PATH, ...}}]`,
//! one entry per installable in order (`{"path": PATH}` for a plain store path). Read three
//! ways: the result paths for activation and pushing, `--print-out-paths`' lines, and each
//! installable's derivation and outputs for the result file.

use super::installables::Derived;
use crate::store_path::StorePath;
use std::path::PathBuf;

/// The output paths, per entry `out` first (it is what activation runs), then the others.
pub fn outputs(stdout: &[u8]) -> Vec<PathBuf> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice::<serde_json::Value>(stdout)
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|i| i.get("outputs")?.as_object().cloned())
        .flat_map(|outs| {
            let mut v: Vec<(String, PathBuf)> = outs
                .into_iter()
                .filter_map(|(name, p)| Some((name, PathBuf::from(p.as_str()?))))
                .collect();
            // `out` first: it is what activation runs.
            v.sort_by_key(|(name, _)| name != "out");
            v.into_iter().map(|(_, p)| p)
        })
        .collect()
}

/// Every output path in nix's `--print-out-paths` order: by installable, then by output name.
pub fn out_paths(nix_json: &[u8]) -> Vec<String> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_slice(nix_json) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for item in &items {
        if let Some(outs) = item.get("outputs").and_then(|o| o.as_object()) {
            let mut outs: Vec<(&String, &serde_json::Value)> = outs.iter().collect();
            outs.sort_by(|a, b| a.0.cmp(b.0));
            paths.extend(
                outs.into_iter()
                    .filter_map(|(_, p)| p.as_str().map(str::to_owned)),
            );
        } else if let Some(p) = item.get("path").and_then(|p| p.as_str()) {
            paths.push(p.to_owned());
        }
    }
    paths
}

/// Each installable's derivation and outputs, when the result has one entry per installable
/// (`count`); an entry without a derivation is `None`.
pub fn derived(nix_json: &[u8], count: usize) -> Option<Vec<Derived>> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(nix_json).ok()?;
    if items.len() != count {
        return None;
    }
    let derived = items
        .iter()
        .map(|item| {
            let drv = StorePath::parse(item.get("drvPath")?.as_str()?).ok()?;
            let outputs = item
                .get("outputs")?
                .as_object()?
                .iter()
                .filter_map(|(name, p)| Some((name.clone(), StorePath::parse(p.as_str()?).ok()?)))
                .collect();
            Some((drv, outputs))
        })
        .collect();
    Some(derived)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_paths_follow_nix_order() {
        let json = br#"[{"drvPath":"/nix/store/a.drv","outputs":{"out":"/o1","dev":"/d1"}},{"path":"/p2"}]"#;
        assert_eq!(out_paths(json), ["/d1", "/o1", "/p2"]);
        assert!(out_paths(b"").is_empty());
    }
}
