//! The CI step on the lab: `examples/daily.yml`'s `run:` lines, with `GITHUB_ACTIONS=true` and
//! `GITHUB_STEP_SUMMARY` in a temporary file. They write groups, annotations, the step summary
//! and the result files; what they push with `--push-to` and `--sign-key` is then substituted
//! by another client with `require-sigs = true` that trusts the key, and nothing is built twice.

mod common;

use common::{lab, lab_or_skip, run_limited, Nixdispatch, Run, BOUND};
use nixdispatch_lab::{skip_unless_root, ClientNix, Lab, LabOptions};
use std::path::{Path, PathBuf};

/// The `run:` lines of the example workflow, in order (single-line commands).
fn workflow_commands() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/daily.yml"))
        .expect("examples/daily.yml");
    text.lines()
        .filter_map(|l| l.trim_start().strip_prefix("run: "))
        .map(str::to_owned)
        .collect()
}

/// A flake with three checks (one fails on purpose) and one home configuration.
fn write_ci_flake(lab: &Lab, dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let flake = format!(
        r#"{{
  outputs = {{ self }}:
    let
      mk = name: fail: deps: derivation {{
        inherit name deps;
        system = "x86_64-linux";
        builder = "/bin/sh";
        nonce = "{nonce}";
        args = [ "-c" (if fail
          then "echo step one of ${{name}}; echo ci check ${{name}} fails on purpose >&2; exit 1"
          else "echo building ${{name}}; echo ${{name}} $nonce > $out") ];
      }};
    in {{
      checks.x86_64-linux = {{
        a = mk "ci-a" false [ ];
        b = mk "ci-b" false [ ];
        # After a and b: when a failing build stops while others run, nix's log does not
        # always say which one failed (seen with Nix 2.8 and 2.26, local --keep-going).
        broken = mk "ci-broken" true [ self.checks.x86_64-linux.a self.checks.x86_64-linux.b ];
      }};
      homeConfigurations.alice.activationPackage = mk "ci-home-alice" false [ ];
    }};
}}
"#,
        nonce = lab.nonce()
    );
    std::fs::write(dir.join("flake.nix"), flake).expect("write flake");
}

fn sh(lab: &Lab, v: ClientNix, cwd: &Path, cmd: &str, env: &[(&str, String)]) -> Run {
    let mut c = lab.client_command(v, "sh");
    c.args(["-c", cmd]).current_dir(cwd);
    for (k, val) in env {
        c.env(k, val);
    }
    run_limited(c, BOUND)
}

/// A new signing key pair `ci-lab-1` in `dir/key.sec` and `dir/key.pub` (made by the 2.8
/// client's nix-store).
fn signing_key(lab: &Lab, dir: &Path) -> (PathBuf, PathBuf) {
    let (sec, public) = (dir.join("key.sec"), dir.join("key.pub"));
    let line = format!(
        "nix-store --generate-binary-cache-key ci-lab-1 {} {}",
        sec.display(),
        public.display()
    );
    let gen = sh(lab, ClientNix::V2_8, dir, &line, &[]);
    assert_eq!(gen.code, Some(0), "{gen:?}");
    (sec, public)
}

#[test]
fn the_daily_workflow_reports_to_github_and_fills_a_signed_cache() {
    if skip_unless_root("the_daily_workflow_reports_to_github_and_fills_a_signed_cache") {
        return;
    }
    // The runner and the workstation that substitutes afterwards, each with its own store.
    daily_workflow(ClientNix::V2_26, ClientNix::V2_8);
}

#[test]
fn the_daily_workflow_on_a_nix_2_8_runner() {
    if skip_unless_root("the_daily_workflow_on_a_nix_2_8_runner") {
        return;
    }
    daily_workflow(ClientNix::V2_8, ClientNix::V2_26);
}

fn daily_workflow(runner: ClientNix, workstation: ClientNix) {
    let lab = lab(LabOptions::default());
    lab.install_nixdispatch(common::bin()).expect("install");
    let ci = lab.dir().join("ci");
    let flake = ci.join("repo");
    write_ci_flake(&lab, &flake);
    let cache = ci.join("cache");
    let (sec, public) = signing_key(&lab, &ci);
    let public_key = std::fs::read_to_string(&public).expect("public key");
    let summary = ci.join("step-summary.md");
    let env = [
        ("GITHUB_ACTIONS", "true".to_owned()),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("FLAKE", format!("path:{}", flake.display())),
        ("PUSH_TO", format!("file://{}", cache.display())),
        ("SIGN_KEY", sec.display().to_string()),
    ];

    let commands = workflow_commands();
    let ours: Vec<&String> = commands
        .iter()
        .filter(|c| c.starts_with("nix flake update") || c.starts_with("nixdispatch"))
        .collect();
    assert_eq!(ours.len(), 3, "{commands:?}");

    let update = sh(&lab, runner, &flake, ours[0], &env);
    assert_eq!(update.code, Some(0), "{update:?}");

    // The checks: one fails, so the step fails; the two others build, are annotated in
    // groups, reported, and pushed.
    let checks = sh(&lab, runner, &flake, ours[1], &env);
    assert_eq!(checks.code, Some(1), "{checks:?}");
    for want in [
        "::group::ci-a on local",
        "::group::ci-b on local",
        "::group::ci-broken on local",
        "::endgroup::",
        "::error title=build of ci-broken failed on local::",
        "step one of ci-broken",
    ] {
        assert!(checks.stderr.contains(want), "no {want:?}: {checks:?}");
    }
    for wrong in ["title=build of ci-a failed", "title=build of ci-b failed"] {
        assert!(!checks.stderr.contains(wrong), "{wrong:?}: {checks:?}");
    }
    let md = std::fs::read_to_string(&summary).expect("step summary written");
    assert!(md.contains("### nixdispatch: failed"), "{md}");
    assert!(md.contains("| built on | paths |"), "{md}");
    assert!(md.contains("| ci-broken | local |"), "{md}");
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(flake.join("checks.json")).expect("checks.json"),
    )
    .expect("checks.json is JSON");
    let status = |name: &str| {
        results["installables"]
            .as_array()
            .expect("installables")
            .iter()
            .find(|r| r["installable"].as_str().unwrap_or("").ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {results}"))
            .clone()
    };
    assert_eq!(status("\"a\"")["status"], "built", "{results}");
    assert_eq!(status("\"a\"")["builtOn"], "local", "{results}");
    assert_eq!(status("\"b\"")["status"], "built", "{results}");
    assert_eq!(status("\"broken\"")["status"], "failed", "{results}");
    assert_eq!(results["ok"], false);

    // The home configurations: attribute set of configurations, JUnit report.
    let homes = sh(&lab, runner, &flake, ours[2], &env);
    assert_eq!(homes.code, Some(0), "{homes:?}");
    let junit = std::fs::read_to_string(flake.join("homes.xml")).expect("homes.xml");
    assert!(junit.contains("tests=\"1\" failures=\"0\""), "{junit}");
    assert!(junit.contains("alice"), "{junit}");
    let md = std::fs::read_to_string(&summary).expect("step summary");
    assert!(md.contains("### nixdispatch: done"), "appended: {md}");

    // Another machine (the other client, its own store) substitutes all of it, signatures
    // required and checked, building nothing.
    let strict = format!(
        "{}substituters = file://{}\ntrusted-public-keys = {}\nrequire-sigs = true\n",
        lab.client_nix_config(),
        cache.display(),
        public_key.trim()
    );
    for attr in [
        "checks.x86_64-linux.a",
        "checks.x86_64-linux.b",
        "homeConfigurations.alice.activationPackage",
    ] {
        let mut c = lab.client_command(workstation, "nix");
        c.args(["build", "--no-link", "--json"])
            .arg(format!("path:{}#{attr}", flake.display()))
            .env("NIX_CONFIG", &strict);
        let got = run_limited(c, BOUND);
        assert_eq!(got.code, Some(0), "{attr}: {got:?}");
        assert!(
            !got.stderr.contains("building '"),
            "{attr} was built again instead of substituted: {got:?}"
        );
        assert!(got.stderr.contains("copying path"), "{attr}: {got:?}");
        let json: serde_json::Value = serde_json::from_str(&got.stdout).expect("nix build --json");
        let out = json[0]["outputs"]["out"].as_str().unwrap_or_default();
        assert!(lab.client_has(workstation, out), "{attr}: {got:?}");
    }
    // The key matters: a client trusting another key does not take them.
    let other = format!(
        "{}substituters = file://{}\ntrusted-public-keys = {}\nrequire-sigs = true\n",
        lab.client_nix_config(),
        cache.display(),
        lab.cache_public_key()
    );
    lab.reset_client(workstation).expect("empty store");
    let mut c = lab.client_command(workstation, "nix");
    c.args(["build", "--no-link", "-L"])
        .arg(format!("path:{}#checks.x86_64-linux.a", flake.display()))
        .env("NIX_CONFIG", &other);
    let got = run_limited(c, BOUND);
    assert!(
        got.stderr.contains("building '") && !got.stderr.contains("copying path"),
        "an untrusted signature was accepted: {got:?}"
    );
}

#[test]
fn push_to_a_builder_store_carries_the_signature() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let dir = lab.dir().join("ci");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (sec, public) = signing_key(&lab, &dir);
    let key = sec.display().to_string();
    let push = |v: ClientNix| {
        Nixdispatch::on(&lab)
            .client(v)
            .seasmoke()
            .args(["--mode", "local", "build"])
            .attr("hello")
            .args(["--no-link", "--json", "--push", "--sign-key", &key])
            .run()
    };
    // seasmoke requires signatures by keys it trusts (nix's default), and does not trust this
    // one yet: the push is refused, and said to be, not forced through.
    lab.renew_nonce().expect("fresh paths");
    let refused = push(ClientNix::V2_8);
    assert_eq!(refused.code, Some(0), "--push only warns: {refused:?}");
    assert!(
        refused
            .stderr
            .contains("lacks a signature by a trusted key")
            && refused.stderr.contains("pushing to seasmoke failed"),
        "{refused:?}"
    );
    // The builder host trusts the key (builderHost.signingKeyFile's public half, in NixOS).
    let conf = lab.dir().join("seasmoke/etc-nix/nix.conf");
    let mut text = std::fs::read_to_string(&conf).expect("seasmoke's nix.conf");
    let public_key = std::fs::read_to_string(&public).expect("public key");
    text += &format!("extra-trusted-public-keys = {}\n", public_key.trim());
    std::fs::write(&conf, text).expect("write nix.conf");
    for v in ClientNix::ALL {
        lab.renew_nonce().expect("fresh paths");
        let run = push(v);
        assert_eq!(run.code, Some(0), "{v:?}: {run:?}");
        let out = run.json()[0]["outputs"]["out"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(lab.builder_has(&out), "{v:?}: not pushed: {run:?}");
        let mut c = lab.builder_command("nix");
        c.args(["path-info", "--sigs", &out]);
        let sigs = run_limited(c, BOUND);
        assert!(
            sigs.stdout.contains("ci-lab-1:"),
            "{v:?}: seasmoke's copy is not signed: {sigs:?}\n{run:?}"
        );
        assert!(!run.stderr.contains("--no-check-sigs"), "{v:?}: {run:?}");
    }
}
