//! The history end to end, on the lab: a first run knows nothing and says no number; a second
//! run of the same names with new hashes carries `expected_secs` per step and for the whole
//! run; copies carry their bytes; the history file is private; `stats` shows what was learned.
//! On the Nix 2.8 client and the Nix 2.34 client.

mod common;

use common::terminal::Terminal;
use common::{bin, lab, run_limited, Run, BOUND};
use nixdispatch_lab::{skip_unless_root, ClientNix, Fixture, Lab, LabOptions};
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Runs nixdispatch as vermax `v` with its history in `state`.
fn run(lab: &Lab, v: ClientNix, state: &Path, args: &[&str]) -> Run {
    let mut cmd = lab.nixdispatch(v, bin());
    cmd.env("XDG_STATE_HOME", state).args(args);
    run_limited(cmd, BOUND)
}

/// The events of a `--json build` that succeeded.
fn events(run: &Run) -> Vec<Value> {
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json_lines()
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// A state directory of the lab's own, visible inside every client's root.
fn state_dir(lab: &Lab, v: ClientNix) -> PathBuf {
    lab.dir().join(format!("state-{}", v.version()))
}

#[test]
fn a_second_run_of_the_same_names_carries_expected_times_per_step_and_for_the_run() {
    if skip_unless_root(
        "a_second_run_of_the_same_names_carries_expected_times_per_step_and_for_the_run",
    ) {
        return;
    }
    let lab = lab(LabOptions {
        fixtures: vec![
            Fixture::chain("eta", 3).build_secs(1.0),
            Fixture::wide("etawide", 4).build_secs(1.0),
        ],
        ..LabOptions::default()
    });
    let spec = lab.builder_spec();
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        let state = state_dir(&lab, v);
        for fixture in ["eta", "etawide"] {
            let installable = lab.flake_ref(fixture);
            let args = [
                "--builder",
                &spec,
                "--json",
                "build",
                "--no-link",
                &installable,
            ];
            lab.renew_nonce().expect("fresh paths");
            let plan_args = ["--builder", &spec, "--json", "plan", &installable];
            let before = run(&lab, v, &state, &plan_args);
            assert_eq!(before.code, Some(0), "{before:?}");
            let estimate = &before.json()["estimates"][0];
            assert!(estimate["secs"].is_null(), "nothing known yet: {estimate}");
            assert!(estimate["why"].as_str().is_some(), "{estimate}");
            let first = events(&run(&lab, v, &state, &args));
            assert_eq!(first[0]["event"], "plan", "{first:?}");
            assert_eq!(first[0]["mode"], "remote", "{first:?}");
            assert!(
                first[0].get("expected_secs").is_none(),
                "{v:?} {fixture}: a first run has no estimate: {:?}",
                first[0]
            );
            let starts = of(&first, "build_start");
            assert!(!starts.is_empty(), "{first:?}");
            assert!(
                starts.iter().all(|e| e.get("expected_secs").is_none()),
                "{v:?}: no history, no number: {starts:?}"
            );
            assert!(of(&first, "estimate").is_empty(), "{first:?}");

            // The same names with new hashes.
            lab.renew_nonce().expect("fresh paths");
            let planned = run(&lab, v, &state, &plan_args);
            let estimate = &planned.json()["estimates"][0];
            assert_eq!(estimate["mode"], "remote", "{estimate}");
            assert!(estimate["secs"].as_f64().is_some(), "{v:?}: {estimate}");
            let t = std::time::Instant::now();
            let second_run = run(&lab, v, &state, &args);
            let took = t.elapsed();
            let second = events(&second_run);
            let plan = &second[0];
            let expected = plan["expected_secs"]
                .as_f64()
                .unwrap_or_else(|| panic!("{v:?} {fixture}: no estimate: {plan}"));
            assert!(
                plan.get("estimate_partial").is_none(),
                "every step is known: {plan}"
            );
            let starts = of(&second, "build_start");
            assert!(!starts.is_empty(), "{second:?}");
            for s in &starts {
                assert!(s["expected_secs"].as_f64().is_some(), "{v:?}: {s}");
            }
            // Updated as steps end, down to nothing left.
            let updates: Vec<f64> = of(&second, "estimate")
                .iter()
                .filter_map(|e| e["expected_secs"].as_f64())
                .collect();
            assert!(!updates.is_empty(), "{second:?}");
            assert_eq!(updates.last(), Some(&0.0), "{updates:?}");
            if std::env::var_os("HISTORY_TEST_TRACE").is_some() {
                for e in &second {
                    eprintln!("  {} {} {}", e["event"], e["name"], e["secs"]);
                }
            }
            let summary = second.last().expect("a summary");
            let elapsed = summary["elapsed_secs"].as_f64().unwrap_or(0.0);
            eprintln!(
                "client {}: {fixture}: whole-run estimate at start {expected:.2}s; nix's part of the run took {elapsed:.2}s ({:+.0}%), the whole command {:.2}s; updates {updates:?}",
                v.version(),
                (expected - elapsed) / elapsed.max(1e-9) * 100.0,
                took.as_secs_f64(),
            );
        }

        // The history file is private, and `stats` shows what was learned.
        let file = state.join("nixdispatch/history");
        let mode = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let stats = run(&lab, v, &state, &["--json", "stats"]);
        assert_eq!(stats.code, Some(0), "{stats:?}");
        let doc = stats.json();
        let hosts = doc["hosts"].as_array().expect("hosts");
        let names: Vec<&str> = hosts
            .iter()
            .flat_map(|h| h["derivations"].as_array().into_iter().flatten())
            .filter_map(|d| d["name"].as_str())
            .collect();
        for name in ["eta-1", "eta-2", "eta-3", "etawide-leaf-1", "etawide"] {
            assert!(names.contains(&name), "{name} not in {doc}");
        }
        assert!(
            hosts.iter().any(|h| h["host"] != "local"),
            "built on seasmoke: {doc}"
        );
        assert!(
            !doc["builders"].as_array().expect("builders").is_empty(),
            "the probe's round trip: {doc}"
        );
        let text = run(&lab, v, &state, &["stats"]);
        assert!(text.stdout.contains("median"), "{text:?}");
    }
}

#[test]
fn copies_carry_their_bytes_and_a_second_copy_its_expected_time() {
    if skip_unless_root("copies_carry_their_bytes_and_a_second_copy_its_expected_time") {
        return;
    }
    let lab = lab(LabOptions {
        http_cache: true,
        ..LabOptions::default()
    });
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        let state = state_dir(&lab, v);
        let installable = lab.flake_ref("big");
        for round in 0..2 {
            lab.renew_nonce().expect("fresh paths");
            lab.push_to_cache(&installable).expect("fill the cache");
            let got = events(&run(
                &lab,
                v,
                &state,
                &["--json", "build", "--no-link", &installable],
            ));
            assert_eq!(got[0]["mode"], "substitute", "{got:?}");
            let done = of(&got, "substitute_done");
            let big = done
                .iter()
                .find(|e| e["name"] == "big")
                .unwrap_or_else(|| panic!("{v:?}: big was not fetched: {got:?}"));
            let bytes = big["bytes"].as_u64().unwrap_or(0);
            assert!(bytes >= 4 << 20, "{v:?}: {big}");
            let start = of(&got, "substitute_start")
                .into_iter()
                .find(|e| e["name"] == "big")
                .cloned()
                .expect("a start");
            assert!(start.get("bytes").is_some(), "{start}");
            if round == 0 {
                assert!(start.get("expected_secs").is_none(), "{start}");
            } else {
                assert!(start["expected_secs"].as_f64().is_some(), "{v:?}: {start}");
            }
        }
        let stats = run(&lab, v, &state, &["--json", "stats"]);
        let doc = stats.json();
        let store = &doc["stores"][0];
        assert!(store["bytes"].as_u64().unwrap_or(0) >= 8 << 20, "{doc}");
        assert!(store["bytes_per_sec"].as_f64().is_some(), "{doc}");
    }
}

#[test]
fn an_output_the_builder_already_has_is_shown_as_a_copy_not_a_build() {
    if skip_unless_root("an_output_the_builder_already_has_is_shown_as_a_copy_not_a_build") {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        lab.renew_nonce().expect("fresh paths");
        lab.build_on_builder(&lab.flake_ref("wide"))
            .expect("seed seasmoke");
        let state = state_dir(&lab, v);
        let run = run(
            &lab,
            v,
            &state,
            &[
                "--builder",
                &spec,
                "--progress",
                "plain",
                "build",
                "--no-link",
                &lab.flake_ref("wide"),
            ],
        );
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stderr.contains("mode: substitute"), "{run:?}");
        assert!(
            run.stderr
                .contains("copying wide from seasmoke (built there before)"),
            "{v:?}: {run:?}"
        );
        assert!(
            !run.stderr.contains("building wide on"),
            "{v:?}: a copy shown as a build: {run:?}"
        );
    }
}

#[test]
fn a_copy_from_the_builder_has_bytes_and_a_total_on_every_client() {
    if skip_unless_root("a_copy_from_the_builder_has_bytes_and_a_total_on_every_client") {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    // Nix 2.8 reports no byte progress for ssh-ng copies: the builder's NAR size stands in.
    for v in [ClientNix::V2_8, ClientNix::V2_26, ClientNix::V2_34] {
        lab.renew_nonce().expect("fresh paths");
        lab.build_on_builder(&lab.flake_ref("big"))
            .expect("seed seasmoke");
        let got = events(&run(
            &lab,
            v,
            &state_dir(&lab, v),
            &[
                "--builder",
                &spec,
                "--json",
                "build",
                "--no-link",
                &lab.flake_ref("big"),
            ],
        ));
        let done: Vec<&Value> = got
            .iter()
            .filter(|e| {
                (e["event"] == "copy_done" || e["event"] == "substitute_done") && e["name"] == "big"
            })
            .collect();
        assert!(!done.is_empty(), "{v:?}: big was not copied: {got:?}");
        for e in done {
            assert!(e["bytes"].as_u64().unwrap_or(0) >= 4 << 20, "{v:?}: {e}");
            assert!(
                e["total_bytes"].as_u64().unwrap_or(0) >= 4 << 20,
                "{v:?}: {e}"
            );
        }
        let summary = got.last().expect("a summary");
        let from = summary["from_sources"]
            .as_object()
            .expect("per-source totals");
        assert!(
            from.values()
                .any(|t| t["bytes"].as_u64().unwrap_or(0) >= 4 << 20),
            "{v:?}: {summary}"
        );
    }
}

#[test]
fn the_tree_on_a_real_terminal_shows_running_and_waiting_steps_with_times() {
    if skip_unless_root("the_tree_on_a_real_terminal_shows_running_and_waiting_steps_with_times") {
        return;
    }
    let lab = lab(LabOptions {
        fixtures: vec![Fixture::chain("tree", 3).build_secs(1.0)],
        ..LabOptions::default()
    });
    let spec = lab.builder_spec();
    let v = ClientNix::V2_8;
    let state = state_dir(&lab, v);
    let installable = lab.flake_ref("tree");
    lab.renew_nonce().expect("fresh paths");
    let first = run(
        &lab,
        v,
        &state,
        &[
            "--builder",
            &spec,
            "--json",
            "build",
            "--no-link",
            &installable,
        ],
    );
    assert_eq!(first.code, Some(0), "{first:?}");
    lab.renew_nonce().expect("fresh paths");
    let inner = lab.nixdispatch(v, bin());
    let mut words: Vec<String> = vec![inner.get_program().to_string_lossy().into_owned()];
    words.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.extend(
        [
            "--builder",
            &spec,
            "--progress",
            "tree",
            "build",
            "--no-link",
            &installable,
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let line = shlex::try_join(words.iter().map(String::as_str)).expect("quote");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("XDG_STATE_HOME", &state).env("TERM", "xterm");
    let Terminal {
        mut child, screen, ..
    } = Terminal::start(cmd);
    let deadline = std::time::Instant::now() + BOUND;
    let mut shown = Vec::new();
    let status = loop {
        while let Ok(chunk) = screen.try_recv() {
            shown.extend(chunk);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "hung");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    while let Ok(chunk) = screen.recv_timeout(std::time::Duration::from_millis(200)) {
        shown.extend(chunk);
    }
    let text = without_escapes(&String::from_utf8_lossy(&shown));
    assert!(status.success(), "{text}");
    assert!(
        text.contains("⏵ tree-1 on seasmoke"),
        "a running step: {text}"
    );
    assert!(
        text.contains("· tree-3 on seasmoke"),
        "a waiting step: {text}"
    );
    assert!(text.contains(" of ~"), "elapsed beside expected: {text}");
    assert!(text.contains("left"), "the whole run's estimate: {text}");
}

/// `text` without terminal escape sequences (`ESC [ … letter`).
fn without_escapes(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Runs nixdispatch as vermax `v` on a real terminal (script(1)), typing `typed` into it once
/// it asks; whether it exited 0, and what the terminal showed (without escape codes).
fn on_a_terminal(
    lab: &Lab,
    v: ClientNix,
    state: &Path,
    args: &[&str],
    typed: &str,
) -> (bool, String) {
    use std::io::Write;
    let inner = lab.nixdispatch(v, bin());
    let mut words: Vec<String> = vec![inner.get_program().to_string_lossy().into_owned()];
    words.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.extend(args.iter().map(|s| s.to_string()));
    let line = shlex::try_join(words.iter().map(String::as_str)).expect("quote");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("XDG_STATE_HOME", state).env("TERM", "xterm");
    let Terminal {
        mut child,
        mut stdin,
        screen,
    } = Terminal::start(cmd);
    let deadline = std::time::Instant::now() + BOUND;
    let mut shown = Vec::new();
    let mut typed_yet = typed.is_empty();
    let status = loop {
        while let Ok(chunk) = screen.try_recv() {
            shown.extend(chunk);
        }
        if !typed_yet && String::from_utf8_lossy(&shown).contains("[y/N]") {
            stdin.write_all(typed.as_bytes()).expect("type");
            stdin.flush().expect("type");
            typed_yet = true;
        }
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "hung: {}",
            String::from_utf8_lossy(&shown)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    while let Ok(chunk) = screen.recv_timeout(std::time::Duration::from_millis(200)) {
        shown.extend(chunk);
    }
    (
        status.success(),
        without_escapes(&String::from_utf8_lossy(&shown)),
    )
}

#[test]
fn ask_shows_the_plan_and_builds_only_on_yes() {
    if skip_unless_root("ask_shows_the_plan_and_builds_only_on_yes") {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    let v = ClientNix::V2_8;
    let state = state_dir(&lab, v);
    let installable = lab.flake_ref("hello");
    lab.renew_nonce().expect("fresh paths");
    let args = [
        "--builder",
        spec.as_str(),
        "--progress",
        "plain",
        "build",
        "--ask",
        "--json",
        installable.as_str(),
    ];
    // Not on a terminal: exit 2, one line.
    let refused = run(&lab, v, &state, &args);
    assert_eq!(refused.code, Some(2), "{refused:?}");
    assert_eq!(refused.stderr.trim().lines().count(), 1, "{refused:?}");
    assert!(
        refused.stderr.contains("--ask needs a terminal"),
        "{refused:?}"
    );

    let (ok, text) = on_a_terminal(&lab, v, &state, &args, "n\r");
    assert!(ok, "{text}");
    assert!(text.contains("will be built"), "the plan: {text}");
    assert!(text.contains("nothing was built"), "{text}");
    assert!(!text.contains("\"outputs\""), "nix did not run: {text}");

    let (ok, text) = on_a_terminal(&lab, v, &state, &args, "y\r");
    assert!(ok, "{text}");
    assert!(text.contains("built hello"), "{text}");
    let out = text
        .split('"')
        .find(|w| w.starts_with("/nix/store/") && w.ends_with("-hello"))
        .unwrap_or_else(|| panic!("no result path: {text}"));
    assert!(lab.client_has(v, out), "{out}: {text}");
}

#[test]
fn two_runs_at_once_both_keep_their_samples_and_a_damaged_history_is_one_warning() {
    if skip_unless_root(
        "two_runs_at_once_both_keep_their_samples_and_a_damaged_history_is_one_warning",
    ) {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    let v = ClientNix::V2_8;
    let state = state_dir(&lab, v);
    let file = state.join("nixdispatch/history");
    std::fs::create_dir_all(file.parent().expect("a directory")).expect("mkdir");
    std::fs::write(&file, b"name,host,secs\nhello,local,3\n").expect("a foreign file");
    lab.renew_nonce().expect("fresh paths");
    let (chain, wide) = (lab.flake_ref("chain"), lab.flake_ref("wide"));
    let runs: Vec<Run> = std::thread::scope(|s| {
        let both: Vec<_> = [&chain, &wide]
            .into_iter()
            .map(|installable| {
                let (lab, spec, state) = (&lab, &spec, &state);
                s.spawn(move || {
                    run(
                        lab,
                        v,
                        state,
                        &[
                            "--builder",
                            spec,
                            "--progress",
                            "plain",
                            "build",
                            "--no-link",
                            installable,
                        ],
                    )
                })
            })
            .collect();
        both.into_iter().map(|h| h.join().expect("a run")).collect()
    });
    for r in &runs {
        assert_eq!(r.code, Some(0), "{r:?}");
        let warnings = r
            .stderr
            .lines()
            .filter(|l| l.contains("history") && l.contains("ignored"))
            .count();
        assert!(warnings <= 1, "one warning at most: {r:?}");
    }
    assert!(
        runs.iter().any(|r| r.stderr.contains("is ignored")),
        "the foreign file was noticed: {runs:?}"
    );
    let stats = run(&lab, v, &state, &["--json", "stats"]);
    assert_eq!(stats.code, Some(0), "{stats:?}");
    assert!(stats.stderr.is_empty(), "the file was replaced: {stats:?}");
    let doc = stats.json();
    let names: Vec<&str> = doc["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["derivations"].as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str())
        .collect();
    for name in ["chain-1", "chain-3", "wide-leaf-1", "wide"] {
        assert!(names.contains(&name), "{name} was lost: {doc}");
    }
    let mode = std::fs::metadata(&file)
        .expect("history")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn logs_all_shows_every_build_line_and_none_only_names_the_failure() {
    if skip_unless_root("logs_all_shows_every_build_line_and_none_only_names_the_failure") {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    let v = ClientNix::V2_8;
    let state = state_dir(&lab, v);
    lab.renew_nonce().expect("fresh paths");
    let hello = lab.flake_ref("hello");
    let all = run(
        &lab,
        v,
        &state,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "--logs",
            "all",
            "build",
            "--no-link",
            &hello,
        ],
    );
    assert_eq!(all.code, Some(0), "{all:?}");
    assert!(all.stderr.contains("hello> building hello"), "{all:?}");
    let fail = lab.flake_ref("fail");
    let none = run(
        &lab,
        v,
        &state,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "--logs",
            "none",
            "build",
            "--no-link",
            &fail,
        ],
    );
    assert_eq!(none.code, Some(1), "{none:?}");
    assert!(!none.stderr.contains("fail> "), "{none:?}");
    assert!(
        none.stderr.contains("the whole log: nix log /nix/store/"),
        "{none:?}"
    );
    let blocks = none
        .stderr
        .lines()
        .filter(|l| l.starts_with("build of "))
        .count();
    assert_eq!(blocks, 1, "one block: {none:?}");
}
