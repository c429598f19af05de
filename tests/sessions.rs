//! Build sessions on seasmoke end to end (issue 21): the real binary as vermax, a real seasmoke
//! (Nix 2.26, and 2.34 where named). A session outlives its client; the next run of the same
//! derivations picks it up; `--detach` and `attach`; Ctrl-C cancels with nothing left on the
//! builder; `sessions --json` in the contract's shape; unknown ids are exit 2.

mod common;

use common::{lab, nixdispatch, Background, BOUND};
use nixdispatch_lab::{skip_unless_root, BuilderNix, ClientNix, Fault, Fixture, Lab, LabOptions};
use std::time::{Duration, Instant};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

const SIGKILL: i32 = 9;

/// A lab whose flake has `NAME`, a derivation that ticks for `secs` seconds.
fn slow_lab(name: &str, secs: u32, builder: BuilderNix) -> Lab {
    lab(LabOptions {
        fixtures: vec![Fixture::slow(name, secs)],
        builder_nix: builder,
        ..LabOptions::default()
    })
}

/// `nixdispatch --builder SPEC --progress plain [--remote-via session] build ATTR` in the
/// background, as vermax with Nix `v`.
fn session_build(lab: &Lab, v: ClientNix, attr: &str, extra: &[&str]) -> Background {
    let spec = lab.builder_spec();
    let attr = lab.flake_ref(attr);
    let mut args = vec![
        "--builder",
        &spec,
        "--progress",
        "plain",
        "--remote-via",
        "session",
    ];
    args.push("build");
    args.extend_from_slice(extra);
    args.push(&attr);
    Background::nixdispatch(lab, v, &args)
}

/// The id in a "session ID started on seasmoke" line.
fn started_id(run: &mut Background) -> String {
    assert!(
        run.wait_for("started on seasmoke", Duration::from_secs(90)),
        "no session started: {:#?}",
        run.seen
    );
    let line = run
        .seen
        .iter()
        .rev()
        .find(|l| l.contains("started on seasmoke"))
        .cloned()
        .unwrap_or_default();
    line.split_whitespace()
        .skip_while(|w| *w != "session")
        .nth(1)
        .unwrap_or_else(|| panic!("no id in {line:?}"))
        .to_owned()
}

/// `sessions --all --json` as vermax.
fn sessions(lab: &Lab, v: ClientNix) -> Vec<serde_json::Value> {
    let spec = lab.builder_spec();
    let run = nixdispatch(
        lab,
        v,
        &["--builder", &spec, "--json", "sessions", "--all"],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()["sessions"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no sessions array: {run:?}"))
}

/// The state of session `id` as `sessions --json` says, polled until it is not `running`
/// (at most `limit`).
fn state_after_running(lab: &Lab, v: ClientNix, id: &str, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let all = sessions(lab, v);
        let state = all
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["state"].as_str().unwrap_or("").to_owned())
            .unwrap_or_else(|| "absent".to_owned());
        if state != "running" || t0.elapsed() > limit {
            return state;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// What of a session runs on seasmoke: its supervisor, nix, the build's ticking shell.
fn session_processes(lab: &Lab) -> Vec<String> {
    lab.builder_processes()
        .into_iter()
        .filter(|c| c.contains("supervise") || c.contains("nix") || c.contains("sleep"))
        .collect()
}

#[test]
fn a_killed_client_leaves_the_session_building_and_the_next_run_only_copies() {
    if skip_unless_root("a_killed_client_leaves_the_session_building_and_the_next_run_only_copies")
    {
        return;
    }
    let lab = slow_lab("slow8", 8, BuilderNix::default());
    for v in [ClientNix::V2_8, ClientNix::V2_34] {
        lab.renew_nonce().expect("fresh paths");
        let mut run = session_build(&lab, v, "slow8", &["--json"]);
        let id = started_id(&mut run);
        assert!(
            run.wait_for("building slow8 on seasmoke", Duration::from_secs(60))
                || run.saw("building slow8"),
            "{:#?}",
            run.seen
        );
        std::thread::sleep(Duration::from_secs(1));
        // The terminal closed: the client's whole process group dies at once.
        // SAFETY: kill only sends a signal, to the group the test started.
        unsafe { kill(-(run.child.id() as i32), SIGKILL) };
        let _ = run.child.wait();
        let listed = sessions(&lab, v);
        let ours = listed
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{v:?}: session {id} not listed: {listed:#?}"));
        assert_eq!(ours["state"], "running", "{v:?}: {ours}");
        // The contract's shape.
        assert_eq!(ours["builder"], "ssh-ng://seasmoke");
        assert!(ours["started"].as_str().is_some_and(|s| s.ends_with('Z')));
        assert!(ours["drvs"][0]
            .as_str()
            .is_some_and(|d| d.ends_with(".drv")));
        let out = ours["outputs"][0].as_str().unwrap_or_default().to_owned();
        assert!(out.starts_with("/nix/store/"), "{ours}");
        assert!(ours["log_lines"].as_u64().is_some());
        // The builder finishes without its client.
        let state = state_after_running(&lab, v, &id, Duration::from_secs(90));
        assert_eq!(state, "done", "{v:?}");
        assert!(lab.builder_has(&out), "{v:?}: seasmoke did not build {out}");
        assert!(!lab.client_has(v, &out));
        // The next run, as plain as it gets: copies, builds nothing.
        let spec = lab.builder_spec();
        let again = nixdispatch(
            &lab,
            v,
            &[
                "--builder",
                &spec,
                "--progress",
                "plain",
                "build",
                "--json",
                &lab.flake_ref("slow8"),
            ],
            BOUND,
        );
        assert_eq!(again.code, Some(0), "{v:?}: {again:?}");
        assert!(lab.client_has(v, &out), "{v:?}: {again:?}");
        assert!(
            !again.stderr.contains("built slow8 on seasmoke in")
                && again.stderr.contains("copied slow8 from ssh-ng://seasmoke"),
            "{v:?}: built again: {again:?}"
        );
        // The builder built once: one session of these derivations, and it ran once.
        let of_it = sessions(&lab, v)
            .into_iter()
            .filter(|s| s["outputs"][0] == out.as_str())
            .count();
        assert_eq!(of_it, 1, "{v:?}");
    }
}

#[test]
fn detach_returns_once_it_runs_and_attach_follows_to_the_end() {
    if skip_unless_root("detach_returns_once_it_runs_and_attach_follows_to_the_end") {
        return;
    }
    let lab = slow_lab("slow4", 4, BuilderNix::V2_34);
    let v = ClientNix::V2_26;
    let spec = lab.builder_spec();
    let attr = lab.flake_ref("slow4");
    let detached = nixdispatch(
        &lab,
        v,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "build",
            "--detach",
            &attr,
        ],
        BOUND,
    );
    assert_eq!(detached.code, Some(0), "{detached:?}");
    let id = detached.stdout.trim().to_owned();
    assert!(!id.is_empty() && !id.contains(' '), "{detached:?}");
    assert!(
        detached
            .stderr
            .contains(&format!("nixdispatch attach {id}")),
        "{detached:?}"
    );
    let attached = nixdispatch(
        &lab,
        v,
        &["--builder", &spec, "--progress", "plain", "attach", &id],
        BOUND,
    );
    assert_eq!(attached.code, Some(0), "{attached:?}");
    assert!(
        attached.stderr.contains("building slow4 on seasmoke"),
        "{attached:?}"
    );
    let out = attached.stdout.trim().to_owned();
    assert!(lab.client_has(v, &out), "{attached:?}");
    // Used up: no longer this machine's open session, still listed with --all.
    let open = nixdispatch(&lab, v, &["--builder", &spec, "--json", "sessions"], BOUND);
    assert_eq!(
        open.json()["sessions"].as_array().map(Vec::len),
        Some(0),
        "{open:?}"
    );
    assert_eq!(sessions(&lab, v).len(), 1);
}

#[test]
fn ctrl_c_cancels_the_session_and_leaves_nothing_on_the_builder() {
    if skip_unless_root("ctrl_c_cancels_the_session_and_leaves_nothing_on_the_builder") {
        return;
    }
    let lab = slow_lab("slow60", 60, BuilderNix::default());
    let v = ClientNix::V2_8;
    let mut run = session_build(&lab, v, "slow60", &[]);
    let id = started_id(&mut run);
    assert!(
        run.wait_for("building slow60 on seasmoke", Duration::from_secs(60))
            || run.saw("building slow60"),
        "{:#?}",
        run.seen
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !session_processes(&lab).is_empty(),
        "the session is not running"
    );
    run.ctrl_c();
    let status = run.exit(Duration::from_secs(90));
    assert_eq!(status.code(), Some(130), "{:#?}", run.seen);
    assert!(
        run.saw(&format!("session {id} on seasmoke cancelled")),
        "{:#?}",
        run.seen
    );
    let left = session_processes(&lab);
    assert!(left.is_empty(), "left on seasmoke: {left:#?}");
    assert!(sessions(&lab, v).is_empty(), "its directory is still there");
}

#[test]
fn unknown_or_malformed_session_ids_are_exit_2() {
    if skip_unless_root("unknown_or_malformed_session_ids_are_exit_2") {
        return;
    }
    let lab = lab(LabOptions::default());
    let spec = lab.builder_spec();
    for args in [
        vec!["attach", "20000101-000000-00000000"],
        vec!["cancel", "20000101-000000-00000000"],
        vec!["cancel", "a;reboot"],
        vec!["attach"],
    ] {
        let mut all = vec!["--builder", spec.as_str()];
        all.extend(args.iter().copied());
        let run = nixdispatch(&lab, ClientNix::V2_8, &all, BOUND);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "{args:?}: {run:?}");
    }
}

#[test]
fn two_runs_of_the_same_derivations_share_one_session() {
    if skip_unless_root("two_runs_of_the_same_derivations_share_one_session") {
        return;
    }
    let lab = slow_lab("slow3", 3, BuilderNix::default());
    let mut first = session_build(&lab, ClientNix::V2_8, "slow3", &[]);
    let mut second = session_build(&lab, ClientNix::V2_34, "slow3", &[]);
    for run in [&mut first, &mut second] {
        let status = run.exit(Duration::from_secs(120));
        assert!(status.success(), "{status}: {:#?}", run.seen);
    }
    let joined = [&first, &second]
        .iter()
        .filter(|r| r.saw("already builds these derivations"))
        .count();
    assert_eq!(joined, 1, "{:#?}\n{:#?}", first.seen, second.seen);
    assert_eq!(sessions(&lab, ClientNix::V2_8).len(), 1);
}

#[test]
fn a_restarted_builder_loses_the_session_and_the_next_run_builds_again() {
    if skip_unless_root("a_restarted_builder_loses_the_session_and_the_next_run_builds_again") {
        return;
    }
    let lab = slow_lab("slow30", 30, BuilderNix::default());
    let v = ClientNix::V2_8;
    let mut run = session_build(&lab, v, "slow30", &[]);
    let id = started_id(&mut run);
    // SAFETY: kill only sends a signal, to the group the test started.
    unsafe { kill(-(run.child.id() as i32), SIGKILL) };
    let _ = run.child.wait();
    lab.restart_builder().expect("seasmoke restarts");
    let state = state_after_running(&lab, v, &id, Duration::from_secs(10));
    assert_eq!(state, "lost");
    // A shorter build of the same derivations is not possible: cancel-free, build it again
    // and stop once it runs (the point is the new session, not the 30 s).
    let mut again = session_build(&lab, v, "slow30", &[]);
    let new_id = started_id(&mut again);
    assert_ne!(new_id, id);
    assert!(
        again.wait_for("building slow30 on seasmoke", Duration::from_secs(60))
            || again.saw("building slow30"),
        "{:#?}",
        again.seen
    );
    assert!(
        again.saw(&format!("session {id} on seasmoke was lost")),
        "{:#?}",
        again.seen
    );
    again.ctrl_c();
    assert_eq!(again.exit(Duration::from_secs(60)).code(), Some(130));
}

#[test]
fn a_builder_killed_mid_session_finishes_locally() {
    if skip_unless_root("a_builder_killed_mid_session_finishes_locally") {
        return;
    }
    let lab = slow_lab("slow6", 6, BuilderNix::default());
    let mut run = session_build(&lab, ClientNix::V2_8, "slow6", &[]);
    started_id(&mut run);
    std::thread::sleep(Duration::from_secs(2));
    lab.kill_builder();
    let status = run.exit(Duration::from_secs(120));
    assert!(status.success(), "{status}: {:#?}", run.seen);
    assert!(run.saw("finishing the build locally"), "{:#?}", run.seen);
}

#[test]
fn a_stalled_link_ends_the_run_with_the_session_id_and_the_session_goes_on() {
    if skip_unless_root("a_stalled_link_ends_the_run_with_the_session_id_and_the_session_goes_on") {
        return;
    }
    let lab = slow_lab("slow20", 20, BuilderNix::default());
    let v = ClientNix::V2_8;
    let spec = lab.builder_spec();
    let attr = lab.flake_ref("slow20");
    let mut run = Background::nixdispatch(
        &lab,
        v,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "--remote-via",
            "session",
            "--silent-timeout",
            "4",
            "build",
            &attr,
        ],
    );
    let id = started_id(&mut run);
    std::thread::sleep(Duration::from_secs(1));
    lab.set_fault(Fault::Stall);
    let status = run.exit(Duration::from_secs(120));
    lab.set_fault(Fault::None);
    assert_eq!(status.code(), Some(1), "{:#?}", run.seen);
    let last = run.seen.last().cloned().unwrap_or_default();
    assert!(
        last.contains(&format!("session {id} keeps building there")),
        "{:#?}",
        run.seen
    );
    let state = sessions(&lab, v)
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .map(|s| s["state"].as_str().unwrap_or("").to_owned());
    assert!(
        matches!(state.as_deref(), Some("running" | "done")),
        "{state:?}"
    );
}

#[test]
fn cancel_stops_a_detached_session_and_a_failed_one_shows_its_failure_once() {
    if skip_unless_root("cancel_stops_a_detached_session_and_a_failed_one_shows_its_failure_once") {
        return;
    }
    let lab = slow_lab("slow60", 60, BuilderNix::default());
    let v = ClientNix::V2_8;
    let spec = lab.builder_spec();
    let detach = |attr: &str| {
        let run = nixdispatch(
            &lab,
            v,
            &[
                "--builder",
                &spec,
                "build",
                "--detach",
                &lab.flake_ref(attr),
            ],
            BOUND,
        );
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stdout.trim().to_owned()
    };
    // cancel ID: nothing of it left on seasmoke.
    let id = detach("slow60");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !session_processes(&lab).is_empty(),
        "the session is not running"
    );
    let cancelled = nixdispatch(&lab, v, &["--builder", &spec, "cancel", &id], BOUND);
    assert_eq!(cancelled.code, Some(0), "{cancelled:?}");
    let left = session_processes(&lab);
    assert!(left.is_empty(), "left on seasmoke: {left:#?}");
    assert!(sessions(&lab, v).is_empty());
    // A failed session: the next run shows its failure (exit 1), the one after builds again.
    let id = detach("fail");
    assert_eq!(
        state_after_running(&lab, v, &id, Duration::from_secs(60)),
        "failed"
    );
    let plain = |attr: &str| {
        nixdispatch(
            &lab,
            v,
            &[
                "--builder",
                &spec,
                "--progress",
                "plain",
                "build",
                &lab.flake_ref(attr),
            ],
            BOUND,
        )
    };
    let shown = plain("fail");
    assert_eq!(shown.code, Some(1), "{shown:?}");
    assert!(shown.stderr.contains(&format!("session {id}")), "{shown:?}");
    assert!(shown.stderr.contains("fails on purpose"), "{shown:?}");
    let again = plain("fail");
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(
        !again.stderr.contains(&format!("session {id}")),
        "{again:?}"
    );
}

#[test]
fn a_session_builds_as_many_derivations_at_once_as_the_machines_line_allows() {
    // Two independent leaves of 2 s each, maxJobs 2 on the machines line: nix's build hook
    // would run both on seasmoke at once, so the session must too (seasmoke's own max-jobs is
    // 1, which would build them one after the other). Watched in the session's log, relayed:
    // both leaves start before either is done.
    let lab = lab(LabOptions {
        fixtures: vec![Fixture::wide("pair", 2).build_secs(2.0)],
        builder_max_jobs: 2,
        ..LabOptions::default()
    });
    let spec = lab.builder_spec();
    let attr = lab.flake_ref("pair");
    let run = nixdispatch(
        &lab,
        ClientNix::V2_34,
        &[
            "--builder",
            &spec,
            "--remote-via",
            "session",
            "--json",
            "build",
            "--no-link",
            &attr,
        ],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let events = run.json_lines();
    let leaf = |e: &serde_json::Value| {
        e["drv"]
            .as_str()
            .is_some_and(|d| d.contains("pair-") && !d.ends_with("-pair.drv"))
    };
    let order: Vec<&str> = events
        .iter()
        .filter(|e| leaf(e))
        .filter_map(|e| e["event"].as_str())
        .filter(|e| *e == "build_start" || *e == "build_done")
        .collect();
    assert!(
        run.stdout.contains("session"),
        "the build did not run as a session: {run:?}"
    );
    assert_eq!(
        order.iter().take(2).copied().collect::<Vec<_>>(),
        ["build_start", "build_start"],
        "the leaves ran one after the other: {order:?}\n{run:?}"
    );
    // The outputs come home over `ssh://seasmoke`, the same link: credited to the builder.
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .unwrap_or_else(|| panic!("no summary: {run:?}"));
    assert_eq!(summary["copied_from"]["ssh-ng://seasmoke"], 3, "{summary}");
}

#[test]
fn a_hook_run_takes_up_a_detached_session_of_the_same_derivations() {
    if skip_unless_root("a_hook_run_takes_up_a_detached_session_of_the_same_derivations") {
        return;
    }
    // The session list is asked while the store queries run (session::Lookahead): the hook
    // run still finds the detached session and follows it instead of building again.
    let lab = slow_lab("slow5", 5, BuilderNix::default());
    let v = ClientNix::V2_34;
    let spec = lab.builder_spec();
    let attr = lab.flake_ref("slow5");
    let detached = nixdispatch(
        &lab,
        v,
        &["--builder", &spec, "build", "--detach", &attr],
        BOUND,
    );
    assert_eq!(detached.code, Some(0), "{detached:?}");
    let id = detached.stdout.trim().to_owned();
    let hook = nixdispatch(
        &lab,
        v,
        &[
            "--builder",
            &spec,
            "--remote-via",
            "hook",
            "--progress",
            "plain",
            "build",
            "--no-link",
            "--print-out-paths",
            &attr,
        ],
        BOUND,
    );
    assert_eq!(hook.code, Some(0), "{hook:?}");
    assert!(
        hook.stderr
            .contains(&format!("session {id} on seasmoke already")),
        "{hook:?}"
    );
    let out = hook.stdout.trim().to_owned();
    assert!(lab.client_has(v, &out), "{hook:?}");
    assert_eq!(sessions(&lab, v).len(), 1, "no second session");
}
