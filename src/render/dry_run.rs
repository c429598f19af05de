//! `--dry-run`: what nix would build and fetch, in nix's own words, with where the plan takes
//! each path from.

use crate::plan::{Plan, Source};

/// The lines of `--dry-run`: the plan's mode, then nix's "will be built" / "will be fetched"
/// lists, each path with where it comes from.
pub fn lines(plan: &Plan) -> Vec<String> {
    let mut lines = vec![format!(
        "nixdispatch: mode: {} — {}",
        plan.mode, plan.reason
    )];
    let count = |n: usize, one: &str, many: &str| {
        if n == 1 {
            one.to_owned()
        } else {
            many.replace('N', &n.to_string())
        }
    };
    if !plan.builds.is_empty() {
        lines.push(count(
            plan.builds.len(),
            "this derivation will be built:",
            "these N derivations will be built:",
        ));
        for b in &plan.builds {
            lines.push(format!(
                "  {} (on {})",
                b.drv,
                b.from.as_deref().unwrap_or("here")
            ));
        }
    }
    let fetched: Vec<_> = plan
        .paths
        .iter()
        .filter(|p| p.source != Source::Build)
        .collect();
    if !fetched.is_empty() {
        lines.push(count(
            fetched.len(),
            "this path will be fetched:",
            "these N paths will be fetched:",
        ));
        for p in fetched {
            lines.push(format!(
                "  {} (from {})",
                p.path,
                p.from.as_deref().unwrap_or("?")
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Counts, Mode, PlannedBuild, PlannedPath};
    use crate::store_path::StorePath;

    fn sp(text: &str) -> StorePath {
        StorePath::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn dry_run_says_what_nix_says_with_the_plan() {
        let drv = sp("/nix/store/00000000000000000000000000000000-x.drv");
        let out = sp("/nix/store/11111111111111111111111111111111-y");
        let plan = Plan {
            mode: Mode::Remote,
            reason: "1 must be built".into(),
            counts: Counts::default(),
            paths: vec![PlannedPath {
                path: out.clone(),
                source: Source::Cache,
                from: Some("http://cache".into()),
            }],
            builds: vec![PlannedBuild {
                drv: drv.clone(),
                from: Some("ssh-ng://seasmoke".into()),
            }],
            builder_substituters: Vec::new(),
            daemon_decides: false,
            substituters: None,
            estimates: Vec::new(),
            may_build_locally: true,
        };
        assert_eq!(
            lines(&plan),
            [
                "nixdispatch: mode: remote — 1 must be built".to_owned(),
                "this derivation will be built:".to_owned(),
                format!("  {drv} (on ssh-ng://seasmoke)"),
                "this path will be fetched:".to_owned(),
                format!("  {out} (from http://cache)"),
            ]
        );
    }
}
