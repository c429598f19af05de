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
    if settings.json() {
        // stdout is the JSON document; what could not be asked still deserves a line.
        for w in &planned.warnings {
            crate::output::stderr_line(&format!("nixdispatch: warning: {w}"));
        }
        let mut doc = serde_json::to_value(planned.report())
            .map_err(|e| crate::Error::input(format!("cannot print the plan: {e}")))?;
        if let serde_json::Value::Object(members) = &mut doc {
            members.insert("estimates".into(), estimates(settings, &planned));
        }
        let text = doc.to_string();
        crate::output::stdout_line(&text, false)?;
        return Ok(0);
    }
    print_human(settings, &planned)?;
    Ok(0)
}

/// The contract's `estimates`: first the chosen mode's whole run (builds and copies on the
/// critical path) from the history, or null, and why; then each other mode the planner weighed
/// ([`crate::plan::cost`]).
fn estimates(settings: &Settings, planned: &Planned) -> serde_json::Value {
    let history = match (&planned.history, settings.state_dir()) {
        (Some(history), _) => history.clone(),
        (None, Some(dir)) => std::sync::Arc::new(crate::history::load(dir).history),
        (None, None) => Default::default(),
    };
    let run = planned.run_estimate(&history, &settings.nix_config().max_jobs);
    let (secs, why) = match run.remaining(std::time::Instant::now()) {
        _ if run.is_empty() => (Some(0.0), "nothing to build or copy".to_string()),
        None => (
            None,
            "the history knows none of its builds and copies yet".to_string(),
        ),
        Some(e) if e.partial => (
            None,
            format!(
                "the history knows only part of its builds and copies ({:.1}s for those)",
                e.secs
            ),
        ),
        Some(e) => (
            Some(e.secs),
            format!(
                "critical path of {} builds and copies, from the history",
                run.len()
            ),
        ),
    };
    let chosen = planned.plan.mode;
    // The planner's own number for the chosen mode stands in where the run's steps are not all
    // known (a switch to building here, made from measured speeds).
    let weighed = planned
        .plan
        .estimates
        .iter()
        .find(|e| e.mode == chosen && e.secs.is_some());
    let (secs, why) = match (secs, weighed) {
        (None, Some(e)) => (e.secs, e.why.clone()),
        other => (other.0, why),
    };
    let mut all = vec![serde_json::json!({"mode": chosen, "secs": secs, "why": why})];
    all.extend(
        planned
            .plan
            .estimates
            .iter()
            .filter(|e| e.mode != chosen)
            .filter_map(|e| serde_json::to_value(e).ok()),
    );
    serde_json::Value::Array(all)
}

fn print_human(settings: &Settings, planned: &Planned) -> Result<()> {
    let println = |text: String| crate::output::stdout_line(&text, true);
    let plan = &planned.plan;
    println(format!("mode: {} ({})", plan.mode, plan.reason))?;
    for b in planned.builders() {
        println(format!(
            "  builder {}",
            describe(b, settings.daemon().is_some())
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
    if settings.verbosity() < 0 {
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
