//! `nixdispatch probe` and `plan` end to end: the real binary, as vermax, against a real seasmoke
//! (sshd + Nix 2.26 behind the lab's proxy), a real HTTP cache and real faults.

mod common;

use common::{lab, lab_or_skip, lab_with, Nixdispatch};
use nixdispatch_lab::{skip_unless_root, ClientNix, Fault, Lab, LabOptions};
use std::time::Duration;

const V: ClientNix = ClientNix::V2_8;

fn plan_json(lab: &Lab, v: ClientNix, attr: &str, extra: &[&str]) -> serde_json::Value {
    let run = Nixdispatch::on(lab).client(v).seasmoke().arg("--json");
    run.args(extra).arg("plan").attr(attr).expect_exit(0).json()
}

/// Nix 2.8 with seasmoke: `--builder SPEC ARGS`.
fn on_seasmoke<'a>(lab: &'a Lab, args: &[&str]) -> Nixdispatch<'a> {
    Nixdispatch::on(lab).seasmoke().args(args)
}

#[test]
fn probe_reports_the_builder() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        let run = Nixdispatch::on(&lab)
            .client(v)
            .seasmoke()
            .args(["--json", "probe"])
            .expect_exit(0);
        let b = &run.json()["builders"][0];
        assert_eq!(b["uri"], "ssh-ng://seasmoke");
        assert_eq!(b["host"], "seasmoke");
        assert_eq!(b["reachable"], true, "{run:?}");
        assert_eq!(b["nix_version"], "2.26.3");
        assert_eq!(b["trusted"], true);
        assert!(b["rtt_ms"].as_f64().is_some_and(|ms| ms > 0.0));
        assert!(b["systems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "x86_64-linux"));
        assert!(b["error"].is_null());
    }
}

#[test]
fn empty_builder_means_remote() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        let plan = plan_json(&lab, v, "chain", &[]);
        assert_eq!(plan["mode"], "remote", "{plan}");
        assert_eq!(plan["counts"]["to_build"], 3);
        assert_eq!(plan["builders"][0]["reachable"], true);
        let paths = plan["paths"].as_array().unwrap();
        assert_eq!(paths.len(), 3);
        assert!(paths
            .iter()
            .all(|p| p["source"] == "build" && p["from"] == "ssh-ng://seasmoke"));
        assert!(plan["reason"].as_str().unwrap().contains("seasmoke"));
    }
}

#[test]
fn builder_holding_the_outputs_means_substitute() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    lab.build_on_builder(&lab.flake_ref("wide"))
        .expect("seed seasmoke");
    let plan = plan_json(&lab, V, "wide", &[]);
    assert_eq!(plan["mode"], "substitute", "{plan}");
    assert_eq!(plan["counts"]["to_build"], 0);
    assert!(plan["counts"]["from_builders"].as_u64().unwrap() > 0);
    assert!(plan["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["source"] == "builder"));
}

#[test]
fn everything_local_is_noop_without_ssh() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mut build = lab.client_command(V, "nix");
    build.args(["build", "--no-link", &lab.flake_ref("hello")]);
    assert!(build.status().expect("nix runs").success());
    let before = lab.builder_connections();
    let plan = plan_json(&lab, V, "hello", &[]);
    assert_eq!(plan["mode"], "noop", "{plan}");
    assert_eq!(plan["paths"].as_array().unwrap().len(), 0);
    assert_eq!(
        lab.builder_connections(),
        before,
        "noop must open no SSH connection"
    );
}

#[test]
fn paths_in_the_http_cache_count_as_from_caches() {
    let Some(lab) = lab_with(|o| o.http_cache = true) else {
        return;
    };
    lab.push_to_cache(&lab.flake_ref("chain"))
        .expect("fill the cache");
    let plan = plan_json(&lab, V, "chain", &[]);
    assert_eq!(plan["mode"], "substitute", "{plan}");
    // chain-3's runtime closure is itself (its deps are build-time only in the fixture).
    assert!(plan["counts"]["from_caches"].as_u64().unwrap() >= 1);
    assert_eq!(plan["counts"]["to_build"], 0);
    let cache = lab.cache_url();
    assert!(plan["paths"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["source"] == "cache"
            && p["from"]
                .as_str()
                .unwrap()
                .starts_with(cache.trim_end_matches('/'))));
}

#[test]
fn each_fault_gives_local_with_its_error_within_the_bound() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let cases = [
        (Fault::Down, "connection refused"),
        (Fault::Tarpit, "timed out"),
        (Fault::HostKeyChanged, "host key"),
        (Fault::AuthRefused, "authentication failed"),
    ];
    let inst = lab.flake_ref("chain");
    for (fault, error) in cases {
        lab.set_fault(fault);
        // Several times the connect timeout: catches a hang, asserts no speed.
        let run = on_seasmoke(&lab, &["--connect-timeout", "2", "--json", "plan", &inst])
            .bound(Duration::from_secs(30))
            .run();
        assert_eq!(run.code, Some(0), "{fault:?}: {run:?}");
        let plan = run.json();
        assert_eq!(plan["mode"], "local", "{fault:?}: {plan}");
        let b = &plan["builders"][0];
        assert_eq!(b["reachable"], false);
        let got = b["error"].as_str().unwrap_or_default();
        assert!(
            got.contains(error),
            "{fault:?}: error {got:?} lacks {error:?}"
        );
        assert!(
            plan["reason"].as_str().unwrap().contains("seasmoke"),
            "{plan}"
        );
        assert!(plan["paths"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["source"] == "build" && p["from"].is_null()));
    }
    lab.set_fault(Fault::None);
}

#[test]
fn builders_come_from_nix_config_when_not_given() {
    let Some(lab) = lab_with(|o| o.configure_builders_in_nix = true) else {
        return;
    };
    for v in ClientNix::ALL {
        let run = Nixdispatch::on(&lab)
            .client(v)
            .args(["--json", "probe"])
            .expect_exit(0);
        assert_eq!(run.json()["builders"][0]["reachable"], true, "{run:?}");
    }
}

#[test]
fn impossible_forced_modes_exit_3() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let inst = lab.flake_ref("chain");
    let run = on_seasmoke(&lab, &["--mode", "substitute", "plan", &inst]).expect_exit(3);
    assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run:?}");
    lab.set_fault(Fault::Down);
    let run = on_seasmoke(&lab, &["--mode", "remote", "plan", &inst]).expect_exit(3);
    assert!(run.stderr.contains("connection refused"), "{run:?}");
}

#[test]
fn bad_input_exits_2_and_runs_nothing() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let inst = lab.flake_ref("chain");
    let marker = lab.dir().join("markers/option-injection");
    let hostile = format!(
        "ssh://-oProxyCommand=touch${{IFS}}{} x86_64-linux",
        marker.display()
    );
    let before = lab.builder_connections();
    for spec in [
        hostile.as_str(),
        "ssh://sea\u{7}smoke x86_64-linux",
        "ssh-ng://seasmoke x86_64-linux - eight",
    ] {
        let run = Nixdispatch::on(&lab)
            .builder(spec)
            .args(["plan", &inst])
            .run();
        assert_eq!(run.code, Some(2), "{spec}: {run:?}");
        assert_eq!(run.stderr.trim().lines().count(), 1, "one line: {run:?}");
    }
    assert!(
        !marker.exists(),
        "an option-shaped host must never reach ssh"
    );
    assert_eq!(lab.builder_connections(), before);
    let run = on_seasmoke(&lab, &["plan"]).attr("nope").expect_exit(2);
    assert!(run.stderr.contains("nope"), "{run:?}");
}

#[test]
fn ctrl_c_while_probing_exits_130_and_closes_ssh() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    lab.set_fault(Fault::Tarpit);
    let inst = lab.flake_ref("chain");
    let mut cmd = on_seasmoke(&lab, &["--connect-timeout", "30", "plan", &inst]).command();
    let mut child = common::spawn(
        &mut cmd,
        std::process::Stdio::null(),
        std::process::Stdio::null(),
        std::process::Stdio::piped(),
    );
    // Wait until the probe is stuck on the tarpit.
    let t0 = std::time::Instant::now();
    while lab.builder_connections() == 0 && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(25),
            "did not stop on Ctrl-C while probing"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130));
    std::thread::sleep(Duration::from_millis(300));
    let ssh_left = std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.starts_with("ssh ")
                && c.contains("nixdispatch-ssh-")
                && c.contains(&lab.dir().display().to_string())
        })
        .count();
    assert_eq!(ssh_left, 0, "ssh processes of the probe outlived it");
}

#[test]
fn a_thousand_long_paths_are_asked_of_the_builder_without_passing_the_argument_limit() {
    if skip_unless_root("a_thousand_long_paths_are_asked_of_the_builder") {
        return;
    }
    // 1,001 paths of ~230 bytes: ~235 KiB, past the 128 KiB that one remote shell argument
    // may hold, had they gone on one `nix-store --check-validity` command line.
    let name = format!("long{}", "n".repeat(176));
    let lab = lab(LabOptions {
        fixtures: vec![nixdispatch_lab::Fixture::wide(&name, 1000)],
        ..LabOptions::default()
    });
    let inst = lab.flake_ref(&name);
    let run = on_seasmoke(&lab, &["plan", &inst]).expect_exit(0);
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("was not asked")
            && !run.stderr.contains("too long"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1001 to build"), "{}", run.stdout);
}
