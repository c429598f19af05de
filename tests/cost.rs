//! Choosing by cost (issue 22): with what the history learned, `--mode auto` weighs sending the
//! builds to seasmoke against building here. On the lab, seasmoke sits behind a slow link (the
//! proxy's bandwidth cap) and the builds are quick with large outputs: once the history knows
//! both sides, the plan builds here and its reason names both estimates. The first time, with
//! nothing known, the choice is the presence rule's and the reason says no estimate was used.
//! Tests assert choices and the reason's shape, never a time (clients 2.8, 2.26, 2.34).

mod common;

use common::{bin, lab_or_skip, run_limited, Run, BOUND};
use nixdispatch_lab::{ClientNix, Fixture, Lab, LabOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// nixdispatch as vermax with its own state directory (the history), bounded.
fn run(lab: &Lab, v: ClientNix, state: &Path, args: &[&str]) -> Run {
    let mut cmd = lab.nixdispatch(v, bin());
    cmd.env("XDG_STATE_HOME", state).args(args);
    run_limited(cmd, BOUND)
}

fn plan_event(run: &Run) -> Value {
    assert_eq!(run.code, Some(0), "{run:?}");
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "plan", "{run:?}");
    events[0].clone()
}

fn state_dir(lab: &Lab, v: ClientNix) -> PathBuf {
    lab.dir().join(format!("cost-state-{}", v.version()))
}

#[test]
fn quick_builds_with_big_outputs_behind_a_slow_link_build_here_once_the_history_knows() {
    // Two quick leaves of 1 MB each and their root; seasmoke behind 400 kB/s each way.
    let Some(lab) = lab_or_skip(LabOptions {
        bandwidth: Some(400_000),
        fixtures: vec![Fixture::wide("heavy", 2).output_bytes(1_000_000)],
        ..LabOptions::default()
    }) else {
        return;
    };
    let spec = lab.builder_spec();
    let heavy = lab.flake_ref("heavy");
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        let state = state_dir(&lab, v);
        let auto = ["--builder", &spec, "--json", "build", "--no-link", &heavy];

        // Nothing known: the presence rule, and the reason says so.
        lab.renew_nonce().expect("fresh paths");
        let first = plan_event(&run(&lab, v, &state, &auto));
        assert_eq!(first["mode"], "remote", "{v:?}: {first}");
        let reason = first["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("no estimate was used"), "{v:?}: {reason}");

        // Built here once (seasmoke away for this run): the history knows this side too.
        lab.renew_nonce().expect("fresh paths");
        let local = ["--mode", "local", "--json", "build", "--no-link", &heavy];
        assert_eq!(plan_event(&run(&lab, v, &state, &local))["mode"], "local");

        // Both sides known, the same names with new hashes: building here wins.
        lab.renew_nonce().expect("fresh paths");
        let plan = run(
            &lab,
            v,
            &state,
            &["--builder", &spec, "--json", "plan", &heavy],
        );
        assert_eq!(plan.code, Some(0), "{plan:?}");
        let doc = plan.json();
        assert_eq!(doc["mode"], "local", "{v:?}: {doc}");
        let reason = doc["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(" here against ") && reason.contains("through seasmoke"),
            "{v:?}: the reason names both estimates: {reason}"
        );
        assert!(reason.contains("to copy back at"), "{v:?}: {reason}");
        let modes: Vec<&Value> = doc["estimates"]
            .as_array()
            .map(|a| a.iter().map(|e| &e["mode"]).collect())
            .unwrap_or_default();
        assert_eq!(modes, ["local", "remote"], "{v:?}: {doc}");
        assert!(doc["estimates"][1]["secs"].as_f64().is_some(), "{doc}");

        eprintln!("{v:?}: {reason}; estimates {}", doc["estimates"]);

        // And the build does what the plan says: everything here, nothing from seasmoke.
        let built = run(&lab, v, &state, &auto);
        eprintln!("{v:?}: built here in {:?}", built.elapsed);
        let event = plan_event(&built);
        assert_eq!(event["mode"], "local", "{v:?}: {built:?}");
        assert!(
            built
                .json_lines()
                .iter()
                .filter(|e| e["event"] == "build_start")
                .all(|e| e["host"] == "local"),
            "{v:?}: {built:?}"
        );
    }
}

#[test]
fn a_forced_mode_weighs_nothing() {
    let Some(lab) = lab_or_skip(LabOptions {
        fixtures: vec![Fixture::wide("light", 2)],
        ..LabOptions::default()
    }) else {
        return;
    };
    let spec = lab.builder_spec();
    let v = ClientNix::V2_8;
    let state = state_dir(&lab, v);
    let light = lab.flake_ref("light");
    let forced = [
        "--builder",
        &spec,
        "--mode",
        "remote",
        "--json",
        "plan",
        &light,
    ];
    let plan = run(&lab, v, &state, &forced);
    assert_eq!(plan.code, Some(0), "{plan:?}");
    let doc = plan.json();
    assert_eq!(doc["mode"], "remote", "{doc}");
    let reason = doc["reason"].as_str().unwrap_or_default();
    assert!(!reason.contains("estimate"), "{reason}");
    assert_eq!(doc["estimates"].as_array().map(Vec::len), Some(1), "{doc}");
}
