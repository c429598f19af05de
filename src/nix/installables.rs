//! Installables that are attribute sets of derivations (`.#checks.x86_64-linux`,
//! `.#homeConfigurations`), opened into one installable per derivation, as nix-fast-build
//! does for `checks.<system>`; and which derivation each installable stands for.

use super::Nix;
use crate::store_path::StorePath;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ffi::OsString;

/// For an attribute set, what to append to each member's name to reach its derivation: `""`
/// for a derivation, `.activationPackage` for a home-manager configuration,
/// `.config.system.build.toplevel` for a NixOS one, null for anything else. Null when the value
/// is itself a derivation (or not an attribute set).
const MEMBERS: &str = r#"x:
  let
    isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
    suffix = v:
      if isDrv v then ""
      else if builtins.isAttrs v && v ? activationPackage then ".activationPackage"
      else if builtins.isAttrs v && v ? config && builtins.isAttrs v.config
        && (v.config.system.build.toplevel or null) != null
      then ".config.system.build.toplevel"
      else null;
  in
  if builtins.isAttrs x && !(isDrv x) then builtins.mapAttrs (n: suffix) x else null"#;

/// The installables, with every attribute set of derivations replaced by its members (in name
/// order); `None` when none of them is such a set. Members that are not derivations are left
/// out and named in the returned notes.
pub async fn expand_attribute_sets(
    nix: &Nix,
    installables: &[String],
    eval_args: &[OsString],
) -> Result<Option<(Vec<String>, Vec<String>)>> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let mut any = false;
    for inst in installables {
        let members = if inst.starts_with('/') {
            None
        } else {
            members(nix, inst, eval_args).await
        };
        match members {
            Some(map) => {
                any = true;
                for (name, suffix) in map {
                    match suffix {
                        Some(suffix) => out.push(member(inst, &name, &suffix)?),
                        None => notes.push(format!("{inst}: {name} is not a derivation, skipped")),
                    }
                }
            }
            None => out.push(inst.clone()),
        }
    }
    Ok(any.then_some((out, notes)))
}

async fn members(
    nix: &Nix,
    inst: &str,
    eval_args: &[OsString],
) -> Option<BTreeMap<String, Option<String>>> {
    let mut args: Vec<OsString> = vec!["eval".into(), "--json".into()];
    args.extend(eval_args.iter().cloned());
    args.extend([inst.into(), "--apply".into(), MEMBERS.into()]);
    let out = nix.output("nix", &args).await.ok()?;
    match serde_json::from_slice::<Value>(&out).ok()? {
        Value::Object(map) => Some(
            map.into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned)))
                .collect(),
        ),
        _ => None,
    }
}

/// `INST."NAME"SUFFIX`, with `#` added for a flake reference that has no fragment yet.
fn member(inst: &str, name: &str, suffix: &str) -> Result<String> {
    let quoted = quote_attr(name).map_err(|e| Error::Input(e.to_string()))?;
    Ok(format!("{inst}.{quoted}{suffix}"))
}

/// A name nix cannot select in an attribute path: a `"` cannot be quoted there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the configuration name {0:?} contains '\"', which nix cannot select in an attribute path: rename the configuration")]
pub struct UnquotableName(pub String);

/// `"NAME"` for an attribute path inside a flake fragment. Nix percent-decodes the fragment
/// and then splits it on dots outside quotes (no escapes inside quotes), so the name is quoted
/// and characters a URL fragment cannot hold are percent-encoded; `@`, `.` and the like stay.
pub fn quote_attr(name: &str) -> Result<String, UnquotableName> {
    if name.contains('"') {
        return Err(UnquotableName(name.to_owned()));
    }
    let mut quoted = String::from("\"");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c) {
            quoted.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                quoted.push_str(&format!("%{b:02X}"));
            }
        }
    }
    quoted.push('"');
    Ok(quoted)
}

/// The derivation and outputs an installable stands for (None: a plain store path, or unknown).
pub type Derived = Option<(StorePath, BTreeMap<String, StorePath>)>;

/// The derivation (and its outputs) each installable stands for, in the installables' order;
/// `None` for one that is a plain store path or that nix cannot show on its own. A few
/// evaluations run at once (after a failed `--keep-going` run of many checks).
pub async fn installable_derivations(
    nix: &Nix,
    installables: &[String],
    eval_args: &[OsString],
) -> Vec<Derived> {
    use futures::stream::{self, StreamExt};
    stream::iter(installables)
        .map(|inst| installable_derivation(nix, inst, eval_args))
        .buffered(4)
        .collect()
        .await
}

async fn installable_derivation(
    nix: &Nix,
    inst: &str,
    eval_args: &[OsString],
) -> Option<(StorePath, BTreeMap<String, StorePath>)> {
    let mut args: Vec<OsString> = if nix.version.at_least(2, 15) {
        vec!["derivation".into(), "show".into()]
    } else {
        vec!["show-derivation".into()]
    };
    args.extend(eval_args.iter().cloned());
    if nix.version.at_least(2, 15) && inst.ends_with(".drv") {
        args.push(format!("{inst}^*").into());
    } else {
        args.push(inst.into());
    }
    let out = nix.output("nix", &args).await.ok()?;
    let json: Value = serde_json::from_slice(&out).ok()?;
    let graph = super::derivation::parse_graph(&json).ok()?;
    let drv = graph.derivations.into_values().next()?;
    Some((drv.path, drv.outputs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_quoted_attributes() {
        assert_eq!(
            member("path:/f#checks.x86_64-linux", "a b", "").unwrap(),
            "path:/f#checks.x86_64-linux.\"a%20b\""
        );
        assert_eq!(
            member(".#homeConfigurations", "me@host", ".activationPackage").unwrap(),
            ".#homeConfigurations.\"me@host\".activationPackage"
        );
    }
}
