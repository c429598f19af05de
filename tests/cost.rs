//! Choosing by cost (issue 22): with what the history learned, `--mode auto` weighs sending the
//! builds to seasmoke against building here. On the lab, seasmoke sits behind a slow link (the
//! proxy's bandwidth cap) and the builds are quick with large outputs: once the history knows
//! both sides, the plan builds here and its reason names both estimates. The first time, with
//! nothing known, the choice is the presence rule's and the reason says no estimate was used.
//! Plain nix runs beside it in the same lab, free to build here too: it sends the builds to
//! seasmoke and copies them back. A large output both a slow HTTP cache (capped by the lab) and
//! seasmoke's store hold comes from seasmoke once both links were measured.
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
        let first_run = run(&lab, v, &state, &auto);
        let first = plan_event(&first_run);
        assert_eq!(first["mode"], "remote", "{v:?}: {first}");
        // What the history learns of the link (for the note; never asserted, a time).
        for e in first_run
            .json_lines()
            .iter()
            .filter(|e| e["event"] == "copy_done")
        {
            eprintln!(
                "{v:?}: copied back {} ({} B) in {} s",
                e["name"], e["bytes"], e["secs"]
            );
        }
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

        // Plain nix on the same fresh paths, nix's defaults (local jobs allowed): the build hook
        // sends every build to seasmoke, and the outputs come back over the slow link.
        let plain = plain_nix(
            &lab,
            v,
            &["build", "--no-link", "--json", "--builders", &spec, &heavy],
        );
        let plain_outs = out_paths(&plain);
        assert!(!plain_outs.is_empty(), "{v:?}: {plain:?}");
        for out in &plain_outs {
            assert!(
                lab.builder_has(out),
                "{v:?}: plain nix built {out} on seasmoke: {plain:?}"
            );
        }

        // And the build does what the plan says: everything here, nothing from seasmoke.
        lab.renew_nonce().expect("fresh paths");
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
        // The same outputs, valid here now: plain nix only names them.
        let ours = out_paths(&plain_nix(
            &lab,
            v,
            &["build", "--no-link", "--json", &heavy],
        ));
        assert!(!ours.is_empty(), "{v:?}: {built:?}");
        for out in &ours {
            assert!(
                !lab.builder_has(out),
                "{v:?}: nixdispatch built {out} here: {built:?}"
            );
        }
    }
}

/// Plain nix as vermax, bounded.
fn plain_nix(lab: &Lab, v: ClientNix, args: &[&str]) -> Run {
    let mut cmd = lab.client_command(v, "nix");
    cmd.args(args);
    let run = run_limited(cmd, BOUND);
    assert_eq!(run.code, Some(0), "{v:?}: plain nix {args:?}: {run:?}");
    run
}

/// The output paths `nix build --json` printed.
fn out_paths(run: &Run) -> Vec<String> {
    run.json()
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["outputs"].as_object().into_iter().flatten())
        .filter_map(|(_, p)| p.as_str().map(String::from))
        .collect()
}

#[test]
fn a_large_output_behind_a_slow_cache_comes_from_a_builder_measured_faster() {
    // The cache serves at 1 MB/s; seasmoke's link is not capped. seasmoke signs, so its store
    // is a substituter nix accepts.
    let Some(lab) = lab_or_skip(LabOptions {
        http_cache: true,
        builder_signs: true,
        fixtures: vec![
            Fixture::single("held").output_bytes(6_000_000),
            Fixture::single("sized").output_bytes(2_000_000),
        ],
        ..LabOptions::default()
    }) else {
        return;
    };
    lab.set_cache_bandwidth(Some(1_000_000));
    let spec = lab.builder_spec();
    let held = lab.flake_ref("held");
    let sized = lab.flake_ref("sized");
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        let state = lab.dir().join(format!("cost-cache-state-{}", v.version()));
        let both_hold = || {
            lab.renew_nonce().expect("fresh paths");
            lab.push_to_cache(&held).expect("the cache holds it");
            lab.build_on_builder(&held).expect("seasmoke holds it");
        };
        let build = ["--builder", &spec, "--json", "build", "--no-link", &held];

        // Nothing measured: the cache first, as nix goes, and the reason says nothing of it.
        both_hold();
        let first = run(&lab, v, &state, &build);
        let event = plan_event(&first);
        assert_eq!(event["mode"], "substitute", "{v:?}: {first:?}");
        let reason = event["reason"].as_str().unwrap_or_default();
        assert!(!reason.contains("rather than"), "{v:?}: {reason}");

        // One build on seasmoke copied back: the history measures seasmoke's link too.
        lab.renew_nonce().expect("fresh paths");
        let remote = run(
            &lab,
            v,
            &state,
            &["--builder", &spec, "--json", "build", "--no-link", &sized],
        );
        assert_eq!(plan_event(&remote)["mode"], "remote", "{v:?}: {remote:?}");

        // Both links measured: seasmoke's store, and the reason names both estimates.
        both_hold();
        let plan = run(
            &lab,
            v,
            &state,
            &["--builder", &spec, "--json", "plan", &held],
        );
        assert_eq!(plan.code, Some(0), "{plan:?}");
        let doc = plan.json();
        let reason = doc["reason"].as_str().unwrap_or_default();
        eprintln!("{v:?}: {reason}");
        assert_eq!(doc["mode"], "substitute", "{v:?}: {doc}");
        assert!(
            reason.contains("from seasmoke's store rather than http://127.0.0.1:")
                && reason.contains(" against "),
            "{v:?}: {reason}"
        );
        let sources: Vec<&Value> = doc["paths"]
            .as_array()
            .map(|a| a.iter().map(|p| &p["source"]).collect())
            .unwrap_or_default();
        assert_eq!(sources, ["builder"], "{v:?}: {doc}");

        // And nix does it: the NAR never leaves the cache, seasmoke's store serves it.
        let before = lab.cache_requests().len();
        let built = run(&lab, v, &state, &build);
        assert_eq!(plan_event(&built)["mode"], "substitute", "{v:?}: {built:?}");
        let nars: Vec<String> = lab.cache_requests()[before..]
            .iter()
            .filter(|r| r.starts_with("GET /nar/"))
            .cloned()
            .collect();
        assert!(
            nars.is_empty(),
            "{v:?}: fetched from the cache: {nars:?}\n{built:?}"
        );
        let from: Vec<String> = built
            .json_lines()
            .iter()
            .filter(|e| e["event"] == "substitute_done" || e["event"] == "copy_done")
            .filter_map(|e| e["from"].as_str().map(String::from))
            .collect();
        assert!(
            !from.is_empty() && from.iter().all(|f| f.starts_with("ssh-ng://")),
            "{v:?}: {from:?}\n{built:?}"
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
