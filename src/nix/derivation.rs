//! The derivation graph of installables, read without building anything: `nix show-derivation -r`
//! (before 2.15) or `nix derivation show -r` (2.15 and later), one evaluation for all installables.
//!
//! Shapes read (recorded from real binaries in `tests/data/formats/`):
//! - up to 2.31: `{"/nix/store/…drv": {outputs, inputDrvs, inputSrcs, env, system}}`, with
//!   `inputDrvs` values `["out"]` (before 2.18) or `{"outputs": ["out"], "dynamicOutputs": {}}`;
//! - 2.32 (format 3): the same with store path base names everywhere;
//! - 2.33+ (format 4): `{"version": 4, "derivations": {BASENAME: {…, "inputs": {"srcs": […],
//!   "drvs": {…}}}}}`.

use super::graph::{Derivation, Graph};
use super::Nix;
use crate::store_path::StorePath;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

impl Nix {
    /// Evaluates the installables and returns every derivation in their closure; the wanted
    /// paths are the outputs of the derivations nothing else in the graph depends on (the
    /// installables themselves). An installable that does not evaluate is `Error::Input` (exit 2).
    pub async fn derivation_graph(&self, installables: &[String]) -> Result<Graph> {
        self.derivation_graph_with(installables, &[]).await
    }

    /// [`Nix::derivation_graph`] with nix's evaluation flags as the user typed them for
    /// `nix build` (`-f FILE`, `--expr`, `--arg`, `--override-input`, `--impure`, ...).
    pub async fn derivation_graph_with(
        &self,
        installables: &[String],
        eval_args: &[std::ffi::OsString],
    ) -> Result<Graph> {
        // Evaluation flags such as -f belong to the subcommand: after its words.
        let show = self.derivation_show_args(installables);
        let (command, insts) = show.split_at(show.len() - installables.len());
        let mut args: Vec<std::ffi::OsString> = command.iter().map(Into::into).collect();
        args.extend(eval_args.iter().cloned());
        args.extend(insts.iter().map(Into::into));
        let out = self.output("nix", &args).await.map_err(|err| match err {
            Error::Input(msg) => Error::Input(format!(
                "{} does not evaluate: {msg}",
                installables.join(" ")
            )),
            other => other,
        })?;
        let json: Value = serde_json::from_slice(&out).map_err(|err| {
            Error::input(format!("nix printed derivations we cannot read: {err}"))
        })?;
        parse_graph(&json)
    }

    /// `derivation show -r INSTALLABLES` as this version spells it.
    fn derivation_show_args(&self, installables: &[String]) -> Vec<String> {
        let mut args: Vec<String> = if self.caps.derivation_show {
            vec!["derivation".into(), "show".into(), "-r".into()]
        } else {
            vec!["show-derivation".into(), "-r".into()]
        };
        for inst in installables {
            // From 2.15 a bare `.drv` path means the file itself; `^*` means its outputs.
            if self.caps.derivation_show && inst.ends_with(".drv") {
                args.push(format!("{inst}^*"));
            } else {
                args.push(inst.clone());
            }
        }
        args
    }
}

/// Reads `nix derivation show -r` JSON (every version's shape) into a [`Graph`].
pub fn parse_graph(json: &Value) -> Result<Graph> {
    let Some(map) = derivation_map(json) else {
        return Err(Error::input(format!(
            "nix printed derivations in a shape nixdispatch cannot read (a JSON {}{}): please report it with `nix --version`",
            kind(json),
            json.get("version")
                .map(|v| format!(" with version {v}"))
                .unwrap_or_default()
        )));
    };
    let mut derivations = BTreeMap::new();
    for (key, drv) in map {
        let path = store_path(key)?;
        derivations.insert(path.clone(), parse_derivation(path, drv)?);
    }
    let depended_on: BTreeSet<&StorePath> = derivations
        .values()
        .flat_map(|d: &Derivation| d.input_drvs.keys())
        .collect();
    let wanted = derivations
        .values()
        .filter(|d| !depended_on.contains(&d.path))
        .flat_map(|d| d.outputs.values().cloned())
        .collect();
    Ok(Graph {
        derivations,
        wanted,
    })
}

/// The map from derivation path to derivation: the wrapper's `derivations` (format 4, Nix
/// 2.33+: `{"version": 4, "derivations": {...}}`), or the whole object (earlier formats, whose
/// keys are all store paths; a key `derivations` there would not be one).
fn derivation_map(json: &Value) -> Option<&serde_json::Map<String, Value>> {
    let map = json.as_object()?;
    match map.get("derivations") {
        Some(Value::Object(inner)) if map.contains_key("version") => Some(inner),
        Some(_) => None,
        None if map.contains_key("version") => None,
        None => Some(map),
    }
}

fn kind(json: &Value) -> &'static str {
    match json {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "boolean",
        Value::Null => "null",
    }
}

/// Newer nix versions print store paths without the store directory.
fn store_path(text: &str) -> Result<StorePath> {
    StorePath::parse_in("/nix/store", text)
        .map_err(|err| Error::input(format!("nix printed a store path we cannot read: {err}")))
}

fn parse_derivation(path: StorePath, drv: &Value) -> Result<Derivation> {
    let mut outputs = BTreeMap::new();
    if let Some(outs) = drv.get("outputs").and_then(Value::as_object) {
        for (name, out) in outs {
            // Floating content-addressed outputs have no path before they are built.
            if let Some(p) = out.get("path").and_then(Value::as_str) {
                outputs.insert(name.clone(), store_path(p)?);
            }
        }
    }
    // Format 4 (2.33+) nests the inputs: {"inputs": {"drvs": {...}, "srcs": [...]}}.
    let nested = drv.get("inputs");
    let mut input_drvs = BTreeMap::new();
    let drvs = drv
        .get("inputDrvs")
        .or_else(|| nested.and_then(|i| i.get("drvs")));
    if let Some(inputs) = drvs.and_then(Value::as_object) {
        for (p, names) in inputs {
            // 2.8: ["out"]; 2.18+: {"outputs": ["out"], "dynamicOutputs": {}}.
            let names = names.get("outputs").unwrap_or(names);
            let names = names
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            input_drvs.insert(store_path(p)?, names);
        }
    }
    let input_srcs = drv
        .get("inputSrcs")
        .or_else(|| nested.and_then(|i| i.get("srcs")))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(store_path)
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let env = drv.get("env");
    let env_str = |key: &str| {
        env.and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    Ok(Derivation {
        path,
        outputs,
        input_drvs,
        input_srcs,
        system: drv
            .get("system")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        required_features: env_str("requiredSystemFeatures")
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
        prefer_local: env_str("preferLocalBuild") == "1",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "/nix/store/5w0l1ja77sh8ynga6wvibzal2aa2b643-a.drv";
    const B: &str = "/nix/store/r7xczr6d0h95mrc9qxky6kvj6gsjy295-b.drv";

    #[test]
    fn reads_nix_2_8_shape() {
        let json = serde_json::json!({
            A: {"outputs": {"out": {"path": "/nix/store/mprq6n8lsbcxlwkmg7aal7ynrk5wrjsr-a"}},
                "inputSrcs": [], "inputDrvs": {}, "system": "x86_64-linux",
                "env": {"preferLocalBuild": "1"}},
            B: {"outputs": {"out": {"path": "/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-b"}},
                "inputSrcs": [], "inputDrvs": {A: ["out"]}, "system": "x86_64-linux",
                "env": {"requiredSystemFeatures": "kvm big-parallel"}}
        });
        let g = parse_graph(&json).unwrap();
        assert_eq!(g.derivations.len(), 2);
        assert_eq!(g.wanted.len(), 1);
        assert_eq!(
            g.wanted[0].as_str(),
            "/nix/store/9incy9bg56h0xskhrvsp948vyrwm5xiy-b"
        );
        let b = &g.derivations[&StorePath::parse(B).unwrap()];
        assert_eq!(b.required_features, ["kvm", "big-parallel"]);
        assert!(g.derivations[&StorePath::parse(A).unwrap()].prefer_local);
    }

    #[test]
    fn reads_newer_shape_with_base_names() {
        let json = serde_json::json!({
            "r7xczr6d0h95mrc9qxky6kvj6gsjy295-b.drv": {
                "outputs": {"out": {"path": "9incy9bg56h0xskhrvsp948vyrwm5xiy-b"}},
                "inputSrcs": [], "system": "x86_64-linux",
                "inputDrvs": {"5w0l1ja77sh8ynga6wvibzal2aa2b643-a.drv": {"outputs": ["out"], "dynamicOutputs": {}}}
            }
        });
        let g = parse_graph(&json).unwrap();
        let b = &g.derivations[&StorePath::parse(B).unwrap()];
        assert_eq!(b.input_drvs[&StorePath::parse(A).unwrap()], ["out"]);
    }

    #[test]
    fn garbage_is_an_input_error() {
        assert!(parse_graph(&serde_json::json!([1, 2])).is_err());
        // A wrapper whose inner map is missing is not read as a map of derivations.
        let err = parse_graph(&serde_json::json!({"version": 9, "drvs": {}})).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
    }

    fn recorded(name: &str) -> Value {
        let file = format!("{}/tests/data/formats/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    /// `tests/data/formats/chain.nix`'s `c` (needs b, needs a), recorded with `nix
    /// show-derivation -r -f chain.nix c` (2.8) and `nix derivation show -r ...` (2.26, 2.34):
    /// every version's output reads to the same graph.
    #[test]
    fn every_recorded_version_reads_to_the_same_graph() {
        let a = "/nix/store/x3nxi4a6vf0xx210scln0cipw1fv1845-a.drv";
        let b = "/nix/store/k3r046ckx6fbw7lfgwf2ar2lcxrgqdkz-b.drv";
        let c = "/nix/store/xigj6bil5bilh73fc6hrgzpscwjpqn4h-c.drv";
        let mut graphs = Vec::new();
        for file in [
            "derivation-show-2.8.json",
            "derivation-show-2.26.json",
            "derivation-show-2.34.json",
            "derivation-show-2.34-tty.json",
        ] {
            let g = parse_graph(&recorded(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(g.derivations.len(), 3, "{file}");
            assert_eq!(
                g.wanted.iter().map(StorePath::as_str).collect::<Vec<_>>(),
                ["/nix/store/6xgppb9108hakzfgpd7fymlw6ajlq6h1-c"],
                "{file}"
            );
            let dc = &g.derivations[&StorePath::parse(c).unwrap()];
            assert_eq!(
                dc.input_drvs[&StorePath::parse(b).unwrap()],
                ["out"],
                "{file}"
            );
            assert_eq!(dc.required_features, ["big-parallel"], "{file}");
            assert!(dc.prefer_local, "{file}");
            let db = &g.derivations[&StorePath::parse(b).unwrap()];
            assert!(
                db.input_drvs.contains_key(&StorePath::parse(a).unwrap()),
                "{file}"
            );
            graphs.push(g);
        }
        for g in &graphs[1..] {
            assert_eq!(g.derivations, graphs[0].derivations);
        }
    }

    #[test]
    fn reads_format_4_input_sources() {
        // 2.33+: inputs nested, sources as base names.
        let json = serde_json::json!({"version": 4, "derivations": {
            "r7xczr6d0h95mrc9qxky6kvj6gsjy295-b.drv": {
                "outputs": {"out": {"path": "9incy9bg56h0xskhrvsp948vyrwm5xiy-b"}},
                "inputs": {"srcs": ["3kqs82dyiay178lrv2p1kxw92gy88zdz-srcfile"], "drvs": {}},
                "system": "x86_64-linux", "env": {}, "version": 4}}});
        let g = parse_graph(&json).unwrap();
        let b = &g.derivations[&StorePath::parse(B).unwrap()];
        assert_eq!(
            b.input_srcs[0].as_str(),
            "/nix/store/3kqs82dyiay178lrv2p1kxw92gy88zdz-srcfile"
        );
    }
}
