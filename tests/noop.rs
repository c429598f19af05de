//! The fast paths of issue 14, end to end on the lab: a noop `build` is one nix process and no
//! ssh connection (the noop check, `src/run/noop.rs`), nix's version and settings are asked once per
//! nix binary and configuration (`src/nix/cache.rs`), and a run the check finds not to be a noop
//! still plans and builds where it should. Behaviour only: no test here asserts a time.

mod common;

use common::{alice, bin, daemon_with, lab_or_skip, run_limited, Nixdispatch, Run, BOUND};
use nixdispatch_lab::{ClientNix, Lab, LabOptions};

const V: ClientNix = ClientNix::V2_8;

/// Runs nixdispatch as vermax (Nix 2.8, the host's own root: strace is there) under
/// `strace -f -e trace=execve` and returns the run and the programs it executed.
fn traced(lab: &Lab, args: &[&str]) -> (Run, Vec<String>) {
    let dest = lab.install_nixdispatch(bin()).expect("install nixdispatch");
    let trace = tempfile::NamedTempFile::new().expect("temp file");
    let trace_path = trace.path().to_string_lossy().into_owned();
    let mut cmd = lab.client_command(V, "strace");
    cmd.args(["-f", "-qq", "-e", "trace=execve", "-o", &trace_path])
        .arg(&dest)
        .args(args);
    let run = run_limited(cmd, BOUND);
    let text = std::fs::read_to_string(trace.path()).unwrap_or_default();
    // `PID execve("/usr/bin/nix", ["nix", ...], ...) = 0`: the successful executions.
    let programs = text
        .lines()
        .filter(|l| l.contains("execve(") && l.trim_end().ends_with("= 0"))
        .filter_map(|l| l.split('"').nth(1))
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_owned())
        .collect();
    (run, programs)
}

/// How many builds the JSON events say started.
fn builds_started(events: &[serde_json::Value]) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == "build_start")
        .count()
}

fn build_locally(lab: &Lab, attr: &str) {
    let mut build = lab.client_command(V, "nix");
    build.args(["build", "--no-link", &lab.flake_ref(attr)]);
    assert!(build.status().expect("nix runs").success());
}

#[test]
fn a_noop_build_is_one_nix_process_and_no_ssh() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    build_locally(&lab, "chain");
    let (spec, x) = (lab.builder_spec(), lab.flake_ref("chain"));
    let args = [
        "--builder",
        &spec,
        "--progress",
        "plain",
        "build",
        "--json",
        &x,
    ];
    // The first run asks nix's version and settings and keeps them.
    let (first, _) = traced(&lab, &args);
    assert_eq!(first.code, Some(0), "{first:?}");
    let before = lab.builder_connections();
    let (run, programs) = traced(&lab, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .contains("mode: noop — everything is already in the local store"),
        "{run:?}"
    );
    assert!(run.stderr.contains("nothing to build or fetch"), "{run:?}");
    // stdout is nix's --json result, as for any build.
    let json = run.json();
    assert!(
        json[0]["outputs"]["out"]
            .as_str()
            .is_some_and(|p| p.contains("chain-3")),
        "{run:?}"
    );
    let nix: Vec<&String> = programs
        .iter()
        .filter(|p| p.starts_with("nix") && *p != "nixdispatch")
        .collect();
    assert_eq!(nix, ["nix"], "one nix process, the build: {programs:?}");
    assert!(
        !programs.iter().any(|p| p == "ssh"),
        "no ssh on a noop: {programs:?}"
    );
    assert_eq!(
        lab.builder_connections(),
        before,
        "noop opened an ssh connection"
    );
}

#[test]
fn a_noop_with_a_result_file_reports_the_outputs_as_valid() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    build_locally(&lab, "hello");
    let file = lab.dir().join("home/result.json");
    let file_arg = file.to_string_lossy().into_owned();
    let run = Nixdispatch::on(&lab)
        .args(["--json", "build", "--result-file", &file_arg])
        .attr("hello")
        .expect_exit(0);
    let events = run.json_lines();
    assert_eq!(events[0]["event"], "plan", "{run:?}");
    assert_eq!(events[0]["mode"], "noop", "{run:?}");
    assert_eq!(events.last().unwrap()["event"], "summary", "{run:?}");
    assert_eq!(events.last().unwrap()["ok"], true, "{run:?}");
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("result file")).unwrap();
    assert_eq!(result["ok"], true, "{result}");
    assert_eq!(result["mode"], "noop", "{result}");
    assert_eq!(result["installables"][0]["status"], "valid", "{result}");
    // The link nix makes without --no-link, in the working directory (the lab's home).
    // (vermax's /nix is its own: the link is read, not followed.)
    let link = std::fs::read_link(lab.dir().join("home/result")).expect("a result link");
    assert!(link.to_string_lossy().contains("hello"), "{link:?}");
}

#[test]
fn after_the_check_finds_something_missing_the_run_plans_and_builds_remotely() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec();
    lab.renew_nonce().expect("fresh paths");
    let before = lab.builder_connections();
    let chain = lab.flake_ref("chain");
    let (run, programs) = traced(&lab, &["--builder", &spec, "--json", "build", &chain]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let events = run.json_lines();
    assert_eq!(events[0]["mode"], "remote", "{run:?}");
    let builds: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "build_start")
        .collect();
    assert_eq!(builds.len(), 3, "{run:?}");
    assert!(
        builds.iter().all(|e| e["host"] == "ssh-ng://seasmoke"),
        "{run:?}"
    );
    // nix's ssh rode the probe's master, opened after the check: one connection in all.
    assert_eq!(lab.builder_connections() - before, 1, "{run:?}");
    // The check, then the planning and the build: nix build twice.
    let nix_builds = programs.iter().filter(|p| *p == "nix").count();
    assert!(nix_builds >= 2, "{programs:?}");
}

#[test]
fn the_version_cache_follows_the_nix_binary() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let cache = lab.dir().join("home/.cache/nixdispatch/nix.json");
    let plan_hello = || Nixdispatch::on(&lab).args(["--json", "plan"]).attr("hello");
    plan_hello().expect_exit(0);
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&cache).expect("cache file")).unwrap()
    };
    let kept = read();
    assert!(
        kept["version"]
            .as_str()
            .is_some_and(|v| v.contains("2.8.0")),
        "{kept}"
    );
    let binary = kept["binary"].as_str().unwrap_or_default().to_owned();
    assert!(binary.contains("/nix "), "{kept}");
    // nothing but nix's own settings is kept
    assert!(
        kept["config"]
            .as_str()
            .is_some_and(|c| c.contains("system = ")),
        "{kept}"
    );
    assert!(
        !kept["config"]
            .as_str()
            .unwrap_or_default()
            .contains("trusted-users"),
        "{kept}"
    );
    // Answers kept for another binary are not used: nix is asked again and the file rewritten.
    let mut other = kept.clone();
    other["binary"] = "/nix/store/other-nix/bin/nix dev=1 ino=1".into();
    other["version"] = "nix (Nix) 2.34.8".into();
    std::fs::write(&cache, other.to_string()).unwrap();
    plan_hello().expect_exit(0);
    let again = read();
    assert_eq!(again["binary"], binary.as_str(), "{again}");
    assert!(
        again["version"]
            .as_str()
            .is_some_and(|v| v.contains("2.8.0")),
        "{again}"
    );
    // A cache that is not JSON is ignored.
    std::fs::write(&cache, "garbage").unwrap();
    plan_hello().expect_exit(0);
}

#[test]
fn an_untrusted_daemon_clients_noop_check_never_builds() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon_with(&lab, |o| o.trusted = false);
    let before = lab.builder_connections();
    // The daemon has builders of its own and ignores non-empty ones from alice: had the check
    // built (on seasmoke, or here), the run would report a noop with no builds in its log.
    let run = alice(&client, &["--json", "build", &lab.flake_ref("chain")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let events = run.json_lines();
    assert_ne!(events[0]["mode"], "noop", "{run:?}");
    let builds = builds_started(&events);
    assert_eq!(builds, 3, "{run:?}");
    assert!(lab.builder_connections() > before);
    // Now it is a noop, and stays one.
    let connections = lab.builder_connections();
    let again = alice(&client, &["--json", "build", &lab.flake_ref("chain")]);
    assert_eq!(again.code, Some(0), "{again:?}");
    let events = again.json_lines();
    assert_eq!(events[0]["mode"], "noop", "{again:?}");
    assert!(
        !events.iter().any(|e| e["event"] == "build_start"),
        "{again:?}"
    );
    assert_eq!(lab.builder_connections(), connections, "{again:?}");
}

#[test]
fn a_noop_home_switch_through_nix_still_activates() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let flake = lab.flake();
    let switch = ["home", "switch", "--flake", &flake, "-c", "root@vermax"];
    let args = [&["--via", "nix", "--progress", "plain"][..], &switch].concat();
    Nixdispatch::on(&lab).args(&args).expect_exit(0);
    let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
    let (run, programs) = traced(&lab, &args);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("mode: noop"), "{run:?}");
    let marker = lab
        .marker("home-activated")
        .unwrap_or_else(|| panic!("not activated: {run:?}"));
    // The result path is printed, as for any home switch.
    assert!(run.stdout.contains(marker.trim()), "{run:?}");
    assert!(programs.iter().any(|p| p == "activate"), "{programs:?}");
    let nix = programs.iter().filter(|p| *p == "nix").count();
    assert_eq!(nix, 1, "one nix process, the build: {programs:?}");
}

/// The check on current Nix (2.26 and 2.34 clients): what it reads of nix's failing check
/// ("will be built", "unable to start any build", 2.33's "Cannot build") and of its success.
/// A fresh build still goes to seasmoke as planned; the same build again is a noop that opens
/// no ssh connection.
#[test]
fn the_check_reads_current_nix_both_ways() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let spec = lab.builder_spec();
    for v in [ClientNix::V2_26, ClientNix::V2_34] {
        lab.renew_nonce().expect("fresh paths");
        let on_seasmoke = || Nixdispatch::on(&lab).client(v).builder(&spec);
        let build = || {
            on_seasmoke()
                .args(["--json", "build", "--no-link"])
                .attr("chain")
        };
        let run = build().expect_exit(0);
        let events = run.json_lines();
        assert_eq!(events[0]["mode"], "remote", "{v:?}: {run:?}");
        let builds = builds_started(&events);
        assert_eq!(builds, 3, "{v:?}: {run:?}");

        let connections = lab.builder_connections();
        let again = build().expect_exit(0);
        let events = again.json_lines();
        assert_eq!(events[0]["mode"], "noop", "{v:?}: {again:?}");
        assert_eq!(
            lab.builder_connections(),
            connections,
            "{v:?}: a noop went to seasmoke: {again:?}"
        );
    }
}
