//! `nixdispatch plan`: decide and explain; builds and copies nothing.

use super::probe::describe;
use crate::cli::PlanArgs;
use crate::plan::Source;
use crate::planning::{make_plan, Planned};
use crate::settings::Settings;
use crate::Result;

/// Plans and prints the plan (JSON: CONTRACT.md's `plan --json`).
pub async fn run(settings: &Settings, args: &PlanArgs) -> Result<i32> {
    let planned = make_plan(settings, &args.installables).await?;
    if settings.json {
        // stdout is the JSON document; what could not be asked still deserves a line.
        for w in &planned.warnings {
            crate::output::stderr_line(&format!("nixdispatch: warning: {w}"));
        }
        let text = serde_json::to_string(&planned.report())
            .map_err(|e| crate::Error::input(format!("cannot print the plan: {e}")))?;
        crate::output::stdout_line(&text, false)?;
        return Ok(0);
    }
    print_human(settings, &planned)?;
    Ok(0)
}

fn print_human(settings: &Settings, planned: &Planned) -> Result<()> {
    let println = |text: String| crate::output::stdout_line(&text, true);
    let plan = &planned.plan;
    println(format!("mode: {} ({})", plan.mode, plan.reason))?;
    for b in &planned.builders {
        println(format!(
            "  builder {}",
            describe(b, settings.daemon.is_some())
        ))?;
    }
    for w in &planned.warnings {
        println(format!("  warning: {w}"))?;
    }
    let c = &plan.counts;
    println(format!(
        "  {} valid locally, {} from caches, {} from builders, {} to build",
        c.valid_locally, c.from_caches, c.from_builders, c.to_build
    ))?;
    if settings.verbosity < 0 {
        return Ok(());
    }
    for p in &plan.paths {
        let (verb, place) = match (&p.source, &p.from) {
            (Source::Build, None) => ("build", "here".to_owned()),
            (Source::Build, Some(from)) => ("build", format!("on {from}")),
            (Source::Cache, from) => ("fetch", format!("from {}", from.as_deref().unwrap_or("?"))),
            (Source::Builder, from) => ("copy", format!("from {}", from.as_deref().unwrap_or("?"))),
        };
        println(format!("  {verb:<5} {}  {place}", p.path))?;
    }
    Ok(())
}
