//! `nixdispatch build`, `home` and `os` end to end: the real binary, as vermax (Nix 2.8 and
//! Nix 2.26 + nh), against a real seasmoke. Each test checks where the build really happened.

mod common;

use common::procs::lab_processes;
use common::{lab_or_skip, lab_with, switch_via, Background, Nixdispatch};
use nixdispatch_lab::{ClientNix, Fault, Fixture, Lab, LabOptions};
use std::time::Duration;

/// The first output of `build … --json` (nix's result JSON; Nix 2.8 has no --print-out-paths).
fn result_path(run: &common::Run) -> String {
    run.json()[0]["outputs"]["out"]
        .as_str()
        .unwrap_or_else(|| panic!("no result path printed: {run:?}"))
        .to_owned()
}

#[test]
fn remote_mode_builds_on_seasmoke() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        lab.renew_nonce().expect("fresh paths");
        let run = Nixdispatch::on(&lab)
            .client(v)
            .seasmoke()
            .plain()
            .args(["build", "--json"])
            .attr("chain")
            .expect_exit(0);
        assert!(run.stderr.contains("mode: remote"), "{run:?}");
        let out = result_path(&run);
        assert!(lab.builder_has(&out), "{v:?}: seasmoke did not build {out}");
        assert!(
            lab.client_has(v, &out),
            "{v:?}: the result did not come back"
        );
    }
}

#[test]
fn substitute_mode_copies_from_seasmoke_and_json_ends_with_a_summary() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let held = lab
        .build_on_builder(&lab.flake_ref("wide"))
        .expect("seed seasmoke");
    let run = Nixdispatch::on(&lab)
        .seasmoke()
        .args(["--json", "build"])
        .attr("wide")
        .expect_exit(0);
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "plan", "{run:?}");
    assert_eq!(events[0]["mode"], "substitute");
    assert_eq!(events.last().unwrap()["event"], "summary", "{run:?}");
    for p in &held {
        assert!(lab.client_has(ClientNix::V2_8, p), "{p} was not copied");
    }
}

#[test]
fn local_mode_when_seasmoke_is_down_does_not_hang() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for fault in [Fault::Down, Fault::Tarpit] {
        lab.renew_nonce().expect("fresh paths");
        lab.set_fault(fault);
        let run = Nixdispatch::on(&lab)
            .seasmoke()
            .args(["--connect-timeout", "2"])
            .plain()
            .args(["build", "--json"])
            .attr("chain")
            .bound(Duration::from_secs(60))
            .run();
        assert_eq!(run.code, Some(0), "{fault:?}: {run:?}");
        assert!(run.stderr.contains("mode: local"), "{run:?}");
        let out = result_path(&run);
        assert!(lab.client_has(ClientNix::V2_8, &out));
        lab.set_fault(Fault::None);
        assert!(
            !lab.builder_has(&out),
            "{fault:?}: built on seasmoke although it was down"
        );
    }
}

#[test]
fn a_failing_build_exits_1_with_its_log() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let run = Nixdispatch::build_on_seasmoke(&lab, "fail").expect_exit(1);
    assert!(
        run.stderr.contains("fails on purpose"),
        "the build's log is shown: {run:?}"
    );
    assert!(
        run.stderr.contains("seasmoke"),
        "where it was built is shown: {run:?}"
    );
    let last = run.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("fail") && last.contains("failed"),
        "last line names it: {last}"
    );
}

fn home(lab: &Lab, v: ClientNix, via: &str, extra: &[&str]) -> common::Run {
    switch_via(lab, v, via).home_switch().args(extra).run()
}

#[test]
fn home_switch_activates_through_nix_and_through_nh() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for (v, via) in [
        (ClientNix::V2_8, "nix"),
        (ClientNix::V2_26, "nix"),
        (ClientNix::V2_26, "nh"),
    ] {
        lab.renew_nonce().expect("fresh paths");
        let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
        let run = home(&lab, v, via, &[]);
        assert_eq!(run.code, Some(0), "{v:?} via {via}: {run:?}");
        let marker = lab
            .marker("home-activated")
            .unwrap_or_else(|| panic!("{v:?} via {via}: not activated: {run:?}"));
        assert!(
            lab.builder_has(marker.trim()),
            "{v:?} via {via}: not built on seasmoke"
        );
    }
}

#[test]
fn a_failed_build_never_activates() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
    // Local mode with no local build slots: nix cannot build, the build step fails.
    let run = home(
        &lab,
        ClientNix::V2_8,
        "nix",
        &["--mode", "local", "--", "--max-jobs", "0"],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        lab.marker("home-activated").is_none(),
        "activated after a failed build: {run:?}"
    );
}

#[test]
fn os_switch_sets_the_profile_and_switches() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for (v, via) in [(ClientNix::V2_8, "nix"), (ClientNix::V2_26, "nh")] {
        lab.renew_nonce().expect("fresh paths");
        let run = switch_via(&lab, v, via).os_switch().run();
        assert_eq!(run.code, Some(0), "{v:?} via {via}: {run:?}");
        common::assert_os_switched(&lab, &format!("{v:?} via {via}"), &run);
    }
}

#[test]
fn builder_killed_mid_build_finishes_locally() {
    let Some(lab) = lab_with(|o| o.fixtures = vec![Fixture::slow("slow6", 6)]) else {
        return;
    };
    let mut run = Background::building_on_seasmoke(&lab, "slow6");
    // Let the remote build get going (it ticks for 6 s).
    std::thread::sleep(Duration::from_secs(2));
    lab.kill_builder();
    let status = run.exit(Duration::from_secs(120));
    assert!(status.success(), "{status}: {:#?}", run.seen);
    assert!(
        run.seen
            .iter()
            .any(|l| l.contains("finishing the build locally")),
        "{:#?}",
        run.seen
    );
}

#[test]
fn ctrl_c_exits_130_and_leaves_no_processes() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mut run = Background::building_on_seasmoke(&lab, "slow");
    std::thread::sleep(Duration::from_secs(1));
    run.interrupt();
    let status = run.exit(Duration::from_secs(90));
    assert_eq!(status.code(), Some(130));
    std::thread::sleep(Duration::from_millis(300));
    let left = client_processes(&lab);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// Client-side nix and ssh processes of this lab still alive (seasmoke's own are not counted).
fn client_processes(lab: &Lab) -> Vec<String> {
    lab_processes(lab.dir())
        .into_iter()
        .filter(|p| {
            let client = [
                "nix build",
                "nix __build-remote",
                "nixdispatch",
                "ssh seasmoke",
            ]
            .iter()
            .any(|w| p.cmdline.contains(w));
            client && !p.zombie && !p.cmdline.contains("sshd")
        })
        .map(|p| p.cmdline)
        .collect()
}
