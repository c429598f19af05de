//! The version matrix end to end: client {2.8, 2.26, 2.34} x builder {2.26, 2.34} x runner
//! {nix, nh where it runs}, each cell the real nixdispatch on a real lab.
//!
//! One cell runs, on one lab: `plan --json` and `build` in each mode (remote, noop, substitute
//! from the builder's store, local with the builder down), then `home switch` and `os switch`
//! through each runner the client has (nh needs Nix 2.20+: not on 2.8).
//!
//! The cells that matter most run in the default `cargo test` (the README says which); the
//! rest are `#[ignore]`d and run with `just matrix` (`cargo test --test matrix -- --ignored`).
//! 2.8 and 2.26 clients against the 2.26 builder are also covered by tests/build.rs and
//! tests/plan.rs in the default run.

mod common;

use common::{lab, lab_or_skip, switch_via, Nixdispatch, Run};
use nixdispatch_lab::{skip_unless_root, BuilderNix, ClientNix, Fault, Lab, LabOptions};

/// What part of a cell to run.
#[derive(Clone, Copy, PartialEq)]
enum Parts {
    /// plan and build in every mode.
    Builds,
    /// That, plus home and os switch through every runner.
    Everything,
}

/// The result path: `build … --json` prints nix's own result JSON (as `nix build --json`);
/// `home` and `os` print the path.
fn result_path(run: &Run) -> String {
    if let Ok(serde_json::Value::Array(results)) = serde_json::from_str(&run.stdout) {
        if let Some(out) = results.first().and_then(|r| r["outputs"]["out"].as_str()) {
            return out.to_owned();
        }
    }
    run.stdout
        .lines()
        .find(|l| l.starts_with("/nix/store/"))
        .unwrap_or_else(|| panic!("no result path printed: {run:?}"))
        .to_owned()
}

fn build(lab: &Lab, v: ClientNix, attr: &str) -> Run {
    Nixdispatch::on(lab)
        .client(v)
        .seasmoke()
        .args(["--connect-timeout", "3"])
        .plain()
        .arg("build")
        .attr(attr)
        .arg("--json")
        .run()
}

/// `--builder SPEC --json plan ATTR` on Nix `v`.
fn plan(lab: &Lab, v: ClientNix, spec: &str, attr: &str) -> Run {
    let run = Nixdispatch::on(lab).client(v).builder(spec);
    run.args(["--json", "plan"]).attr(attr).run()
}

/// Asserts the run succeeded in `mode` and returns its result path.
fn built_in(run: &Run, mode: &str, cell: &str) -> String {
    assert_eq!(run.code, Some(0), "{cell}: {run:?}");
    assert!(
        run.stderr.contains(&format!("mode: {mode}")),
        "{cell}: expected mode {mode}: {run:?}"
    );
    assert!(
        !run.stderr.contains("cannot read"),
        "{cell}: a format was not understood: {run:?}"
    );
    result_path(run)
}

fn cell(client: ClientNix, builder: BuilderNix, parts: Parts) {
    let name = format!(
        "client {} x builder {}",
        client.version(),
        builder.version()
    );
    let lab = lab(LabOptions {
        builder_nix: builder,
        ..LabOptions::default()
    });
    let spec = lab.builder_spec();

    // Plan: the derivation graph (every `derivation show` shape) and the builder's store.
    lab.renew_nonce().expect("fresh paths");
    let plan = self::plan(&lab, client, &spec, "chain");
    assert_eq!(plan.code, Some(0), "{name}: plan: {plan:?}");
    let plan = plan.json();
    assert_eq!(plan["mode"], "remote", "{name}: {plan}");
    assert_eq!(plan["counts"]["to_build"], 3, "{name}: {plan}");
    let version = plan["builders"][0]["nix_version"].as_str().unwrap_or("");
    assert!(
        version.starts_with(builder.version()),
        "{name}: the builder reports {version:?}"
    );
    assert_eq!(
        plan["builders"][0]["trusted"], true,
        "{name}: the builder's store info: {plan}"
    );

    // Remote: built on the builder, copied back.
    let out = built_in(&build(&lab, client, "chain"), "remote", &name);
    assert!(lab.builder_has(&out), "{name}: not built on the builder");
    assert!(lab.client_has(client, &out), "{name}: did not come back");

    // Noop: all valid here, nothing asked of anyone.
    built_in(&build(&lab, client, "chain"), "noop", &name);

    // Substitute: the builder holds it already (its path-info JSON is read).
    let held = lab
        .build_on_builder(&lab.flake_ref("wide"))
        .expect("seed the builder");
    let plan = self::plan(&lab, client, &spec, "wide").json();
    assert_eq!(plan["mode"], "substitute", "{name}: {plan}");
    assert_eq!(plan["counts"]["to_build"], 0, "{name}: {plan}");
    built_in(&build(&lab, client, "wide"), "substitute", &name);
    for p in &held {
        assert!(lab.client_has(client, p), "{name}: {p} was not copied");
    }

    // Local when the builder is down.
    lab.renew_nonce().expect("fresh paths");
    lab.set_fault(Fault::Down);
    let out = built_in(&build(&lab, client, "chain"), "local", &name);
    lab.set_fault(Fault::None);
    assert!(lab.client_has(client, &out));
    assert!(
        !lab.builder_has(&out),
        "{name}: built on the builder while down"
    );

    if parts == Parts::Builds {
        return;
    }
    let runners: &[&str] = if client.has_nh() {
        &["nix", "nh"]
    } else {
        &["nix"]
    };
    for via in runners {
        lab.renew_nonce().expect("fresh paths");
        let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
        let run = switch_via(&lab, client, via).home_switch().run();
        assert_eq!(run.code, Some(0), "{name} via {via}: home: {run:?}");
        let marker = lab
            .marker("home-activated")
            .unwrap_or_else(|| panic!("{name} via {via}: home not activated: {run:?}"));
        assert!(
            lab.builder_has(marker.trim()),
            "{name} via {via}: home not built on the builder"
        );
        if *via == "nh" {
            // nh 4.4 warns on every run with a Nix older than 2.31.2 ("Nix version nix (Nix)
            // 2.26.3 is older than the recommended minimum version 2.31.2"): seen on 2.26,
            // gone on 2.34.
            let warned = run.stderr.contains("recommended minimum version 2.31.2");
            assert_eq!(
                warned,
                client == ClientNix::V2_26,
                "{name}: nh's version warning: {run:?}"
            );
        }

        let _ = std::fs::remove_file(lab.markers_dir().join("os-switch"));
        let _ = std::fs::remove_file(lab.markers_dir().join("os-test"));
        let run = switch_via(&lab, client, via).os_switch().run();
        assert_eq!(run.code, Some(0), "{name} via {via}: os: {run:?}");
        common::assert_os_switched(&lab, &format!("{name} via {via}"), &run);
    }
}

// ----- the default run: the cells that matter most ------------------------------------------

#[test]
fn client_2_34_with_builder_2_34_plans_builds_and_switches_via_nix_and_nh() {
    if skip_unless_root("client_2_34_with_builder_2_34_plans_builds_and_switches_via_nix_and_nh") {
        return;
    }
    cell(ClientNix::V2_34, BuilderNix::V2_34, Parts::Everything);
}

#[test]
fn client_2_8_with_builder_2_34_plans_and_builds_in_every_mode() {
    if skip_unless_root("client_2_8_with_builder_2_34_plans_and_builds_in_every_mode") {
        return;
    }
    cell(ClientNix::V2_8, BuilderNix::V2_34, Parts::Builds);
}

#[test]
fn client_2_34_with_builder_2_26_plans_and_builds_in_every_mode() {
    if skip_unless_root("client_2_34_with_builder_2_26_plans_and_builds_in_every_mode") {
        return;
    }
    cell(ClientNix::V2_34, BuilderNix::V2_26, Parts::Builds);
}

/// Ports in builder URIs: Nix 2.31+ takes `ssh-ng://host:port`; an older client nix cannot, and
/// the plan says so in one line instead of handing nix a builder it will fail on.
#[test]
fn ports_in_builder_uris_work_on_2_34_and_are_refused_with_the_version_on_2_26() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // The host key in the machines line: no ssh config entry names 127.0.0.1.
    let host_key = lab
        .builder_spec_with_host_key()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    let spec = format!(
        "ssh-ng://root@127.0.0.1:{} x86_64-linux {}/client_key 2 1 - - {host_key}",
        lab.builder_port(),
        lab.dir().display()
    );
    lab.renew_nonce().expect("fresh paths");
    let run = Nixdispatch::on(&lab)
        .client(ClientNix::V2_34)
        .builder(&spec)
        .plain()
        .arg("build")
        .attr("chain")
        .arg("--json")
        .run();
    let out = built_in(&run, "remote", "2.34 with a port");
    assert!(lab.builder_has(&out), "2.34: not built on the builder");

    lab.renew_nonce().expect("fresh paths");
    let run = plan(&lab, ClientNix::V2_26, &spec, "chain");
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = run.json();
    assert_eq!(plan["mode"], "local", "{plan}");
    let error = plan["builders"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("2.31") && error.contains("2.26.3"),
        "the reason names the version needed and found: {plan}"
    );

    // doctor says the same, as an error with its fix.
    let doctor = |v| Nixdispatch::on(&lab).client(v).builder(&spec).arg("doctor");
    let run = doctor(ClientNix::V2_26).expect_exit(2);
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("reachable, but the port in") && all.contains("Nix 2.31 or later"),
        "{run:?}"
    );
    let run = doctor(ClientNix::V2_34).run();
    assert!(
        !format!("{}{}", run.stdout, run.stderr).contains("2.31"),
        "{run:?}"
    );
}

// ----- `just matrix`: every other cell ----------------------------------------------------

#[test]
#[ignore = "the full matrix: `just matrix`"]
fn matrix_client_2_8_builder_2_26() {
    cell(ClientNix::V2_8, BuilderNix::V2_26, Parts::Everything);
}

#[test]
#[ignore = "the full matrix: `just matrix`"]
fn matrix_client_2_26_builder_2_26() {
    cell(ClientNix::V2_26, BuilderNix::V2_26, Parts::Everything);
}

#[test]
#[ignore = "the full matrix: `just matrix`"]
fn matrix_client_2_34_builder_2_26() {
    cell(ClientNix::V2_34, BuilderNix::V2_26, Parts::Everything);
}

#[test]
#[ignore = "the full matrix: `just matrix`"]
fn matrix_client_2_8_builder_2_34() {
    cell(ClientNix::V2_8, BuilderNix::V2_34, Parts::Everything);
}

#[test]
#[ignore = "the full matrix: `just matrix`"]
fn matrix_client_2_26_builder_2_34() {
    cell(ClientNix::V2_26, BuilderNix::V2_34, Parts::Everything);
}

/// nh runs `nix config show` (Nix 2.20+): asking for it on Nix 2.8 is one line naming both
/// versions, exit 2, before anything is built or activated.
#[test]
fn nh_on_nix_2_8_is_refused_with_the_version_needed() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
    let run = Nixdispatch::on(&lab)
        .seasmoke()
        .via("nh")
        .home_switch()
        .expect_exit(2);
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("Nix 2.20") && last.contains("2.8.0") && last.contains("--via nix"),
        "{run:?}"
    );
    assert!(lab.marker("home-activated").is_none(), "{run:?}");
}
