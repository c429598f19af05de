//! The verdict, the plan and the host key check say what is true (issue 9), end to end on the
//! lab: the real binary as vermax, real nix beside it where nix is the reference.

mod common;

use common::{lab_or_skip, plain_nix_run, run_limited, Nixdispatch, BOUND};
use nixdispatch_lab::{ClientNix, Lab, LabOptions};

/// Makes seasmoke's only substituter an HTTP URL that is not a binary cache (404 for
/// `nix-cache-info`): its nix then warns "does not appear to be a binary cache" on every store
/// session, and Nix 2.26's build hook relays that warning at level error.
fn give_seasmoke_a_substituter_that_is_not_a_cache(lab: &Lab) {
    let conf = lab.dir().join("seasmoke/etc-nix/nix.conf");
    let mut text = std::fs::read_to_string(&conf).expect("seasmoke's nix.conf");
    // The last assignment wins in nix.conf.
    text.push_str(&format!("substituters = {}/not-a-cache\n", lab.cache_url()));
    std::fs::write(&conf, text).expect("write seasmoke's nix.conf");
}

#[test]
fn a_warning_relayed_at_error_level_does_not_fail_a_successful_build() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    give_seasmoke_a_substituter_that_is_not_a_cache(&lab);
    let spec = lab.builder_spec();

    // Plain nix beside: the same remote build succeeds and relays the warning as an error.
    let hello = lab.flake_ref("hello");
    let json_log = ["--log-format", "internal-json", "-v"];
    let remote_only = ["--max-jobs", "0", "--builders", &spec, &hello];
    let args = [&["build", "--no-link"][..], &json_log, &remote_only].concat();
    let plain = plain_nix_run(&lab, ClientNix::V2_26, &args);
    assert_eq!(plain.code, Some(0), "plain nix: {plain:?}");
    assert!(
        plain
            .stderr
            .lines()
            .any(|l| l.contains(r#""level":0"#)
                && l.contains("does not appear to be a binary cache")),
        "the scenario needs nix to relay the warning at level 0: {plain:?}"
    );

    lab.renew_nonce().expect("fresh paths");
    let on_2_26 = || {
        Nixdispatch::on(&lab)
            .client(ClientNix::V2_26)
            .builder(&spec)
    };
    let run = on_2_26()
        .args(["--json", "build"])
        .attr("chain")
        .expect_exit(0);
    let events = run.json_lines();
    let summary = events.last().cloned().unwrap_or_default();
    assert_eq!(summary["event"], "summary", "{run:?}");
    assert_eq!(summary["ok"], true, "{run:?}");
    assert_eq!(summary["built"]["ssh-ng://seasmoke"], 3, "{run:?}");
    assert!(
        events.iter().any(|e| e["event"] == "message"
            && e["level"] == "warn"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("does not appear to be a binary cache"))),
        "the warning is shown, as a warning: {run:?}"
    );

    lab.renew_nonce().expect("fresh paths");
    let run = on_2_26().plain().arg("build").attr("chain").expect_exit(0);
    assert!(
        run.stderr.lines().any(|l| l.starts_with("done in")),
        "{run:?}"
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("failed in")),
        "{run:?}"
    );
}

/// The `drv` of every entry in a summary's list.
fn drvs(list: &serde_json::Value) -> Vec<&str> {
    list.as_array()
        .map(|a| a.iter().filter_map(|f| f["drv"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_build_nix_cancels_because_another_failed_is_said_to_be_cancelled() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        // Two independent derivations at once, no --keep-going: `fail` fails after a few lines,
        // nix stops `slow` (600 s of ticks) unfinished.
        let (fail, slow) = (lab.flake_ref("fail"), lab.flake_ref("slow"));
        let run = Nixdispatch::on(&lab)
            .client(v)
            .args(["--mode", "local", "--json", "build", &fail, &slow])
            .args(["--", "--max-jobs", "2"])
            .expect_exit(1);
        let events = run.json_lines();
        let summary = events.last().cloned().unwrap_or_default();
        assert_eq!(summary["event"], "summary", "{v:?}: {run:?}");
        assert_eq!(summary["ok"], false);
        let failed = drvs(&summary["failed"]);
        assert!(
            matches!(failed.as_slice(), [one] if one.ends_with("-fail.drv")),
            "{v:?}: {run:?}"
        );
        let cancelled = drvs(&summary["cancelled"]);
        assert!(
            matches!(cancelled.as_slice(), [one] if one.ends_with("-slow.drv")),
            "{v:?}: {run:?}"
        );
        assert!(
            run.stderr.contains("the build of fail failed"),
            "{v:?}: {run:?}"
        );
    }
}

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn a_pinned_host_key_on_an_explicit_port_22_is_found_by_ssh() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // The URI says port 22; `-o Port=` in NIX_SSHOPTS comes first on ssh's command line and
    // wins (ssh keeps the first value), so the connection still reaches seasmoke's proxy port.
    // The lab's ssh config sets `HostKeyAlias seasmoke`: ssh looks the key up as `seasmoke`,
    // the name it also uses for a real port 22, never `[seasmoke]:22`.
    let sshopts = format!(
        "-F {} -o Port={}",
        lab.ssh_config().display(),
        lab.builder_port()
    );
    let spec = |key: &str| format!("ssh-ng://seasmoke:22 x86_64-linux - 2 1 - - {key}");
    let probe = |spec: &str| {
        let run = Nixdispatch::on(&lab)
            .env("NIX_SSHOPTS", &sshopts)
            .builder(spec);
        run.args(["probe", "--json"]).run()
    };
    let pinned = spec(&base64(lab.builder_host_key()));
    let run = probe(&pinned);
    let builder = run.json()["builders"][0].clone();
    assert_eq!(builder["reachable"], true, "{run:?}");

    // Still strict: another key on port 22 is refused.
    lab.set_fault(nixdispatch_lab::Fault::HostKeyChanged);
    let run = probe(&pinned);
    let builder = run.json()["builders"][0].clone();
    assert_eq!(builder["reachable"], false, "{run:?}");
    assert!(
        builder["error"]
            .as_str()
            .is_some_and(|e| e.contains("host key")),
        "{run:?}"
    );
}

#[test]
fn a_host_key_field_that_cannot_be_decoded_is_exit_2_naming_line_and_field() {
    for key in [
        "notbase64!".to_string(),
        base64("ssh-ed25519 not-a-key!"),
        base64("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ"),
    ] {
        let out = std::process::Command::new(common::bin())
            .args([
                "--builder",
                &format!("ssh-ng://seasmoke x86_64-linux - 2 1 - - {key}"),
                "probe",
            ])
            .output()
            .expect("run nixdispatch");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}: {stderr}");
        assert!(
            stderr.contains("--builder, line 1, field 8 (publicHostKey)"),
            "{key}: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

/// The client's NIX_CONFIG with its substituters, keys and `extra` lines given here instead.
fn client_config(lab: &Lab, extra: &str) -> String {
    let mut config: String = lab
        .client_nix_config()
        .lines()
        .filter(|l| !l.starts_with("substituters") && !l.starts_with("trusted-public-keys"))
        .map(|l| format!("{l}\n"))
        .collect();
    config.push_str(extra);
    config.push('\n');
    config
}

/// Runs `nixdispatch ARGS` as vermax `v` with `NIX_CONFIG` set to `config`.
fn nixdispatch_with(lab: &Lab, v: ClientNix, config: &str, args: &[&str]) -> common::Run {
    let run = Nixdispatch::on(lab).client(v).env("NIX_CONFIG", config);
    run.args(args).run()
}

/// Runs plain `nix ARGS` as vermax `v` with `NIX_CONFIG` set to `config`.
fn nix_with(lab: &Lab, v: ClientNix, config: &str, args: &[&str]) -> common::Run {
    let mut cmd = lab.client_command(v, "nix");
    cmd.env("NIX_CONFIG", config).args(args);
    run_limited(cmd, BOUND)
}

/// Builds `attr` in the cache-filling store and copies it into `LABDIR/NAME` as a `file://`
/// binary cache, signed with the lab cache's key when `signed`. Returns the output path.
fn push_to(lab: &Lab, attr: &str, dir: &std::path::Path, signed: bool) -> String {
    let mut build = lab.upstream_command("nix");
    build.args([
        "build",
        "--no-link",
        "--print-out-paths",
        &lab.flake_ref(attr),
    ]);
    let run = run_limited(build, BOUND);
    assert_eq!(run.code, Some(0), "{run:?}");
    let path = run.stdout.trim().to_owned();
    let mut to = format!("file://{}?compression=none", dir.display());
    if signed {
        to += &format!(
            "&secret-key={}",
            lab.dir().join("upstream/signing.sec").display()
        );
    }
    let mut copy = lab.upstream_command("nix");
    copy.args(["copy", "--to", &to, &path]);
    let run = run_limited(copy, BOUND);
    assert_eq!(run.code, Some(0), "{run:?}");
    path
}

fn plan_json(run: &common::Run) -> serde_json::Value {
    assert_eq!(run.code, Some(0), "{run:?}");
    run.json()
}

#[test]
fn a_substituter_with_trusted_1_is_planned_as_the_source_of_its_unsigned_paths() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // The lab's HTTP cache, holding `hello` without any signature.
    let hello = push_to(&lab, "hello", &lab.cache_dir(), false);
    let cache = lab.cache_url();
    let key = lab.cache_public_key().to_owned();
    let trusted = client_config(
        &lab,
        &format!("substituters = {cache}?trusted=1\ntrusted-public-keys = {key}"),
    );
    let untrusted = client_config(
        &lab,
        &format!("substituters = {cache}\ntrusted-public-keys = {key}"),
    );
    let installable = lab.flake_ref("hello");
    let dry_run = ["build", "--dry-run", "--no-link", &installable];
    let build_l = ["build", "--no-link", "-L", &installable];
    for v in ClientNix::ALL {
        // Plain nix's dry run: it will be fetched.
        let dry = nix_with(&lab, v, &trusted, &dry_run);
        assert_eq!(dry.code, Some(0), "{v:?}: {dry:?}");
        assert!(dry.stderr.contains("will be fetched"), "{v:?}: {dry:?}");

        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &trusted,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["mode"], "substitute", "{v:?}: {plan}");
        assert_eq!(plan["counts"]["to_build"], 0, "{v:?}: {plan}");
        assert_eq!(plan["counts"]["from_caches"], 1, "{v:?}: {plan}");
        assert_eq!(plan["paths"][0]["source"], "cache", "{v:?}: {plan}");

        // require-sigs = false takes it from any cache too.
        let no_sigs = client_config(
            &lab,
            &format!("substituters = {cache}\ntrusted-public-keys = {key}\nrequire-sigs = false"),
        );
        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &no_sigs,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["counts"]["from_caches"], 1, "{v:?}: {plan}");

        // Without ?trusted=1 nix refuses it and builds: the plan says both.
        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &untrusted,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["counts"]["to_build"], 1, "{v:?}: {plan}");
        assert_eq!(plan["counts"]["from_caches"], 0, "{v:?}: {plan}");
        let warnings = plan["warnings"].to_string();
        assert!(
            warnings.contains(&format!("cache {cache} has hello"))
                && warnings.contains("it is not signed")
                && warnings.contains("?trusted=1"),
            "{v:?}: {plan}"
        );

        // And nix does as planned: with ?trusted=1 it fetches, built nothing.
        let run = nixdispatch_with(&lab, v, &trusted, &["--json", "build", &installable]);
        assert_eq!(run.code, Some(0), "{v:?}: {run:?}");
        let summary = run.json_lines().last().cloned().unwrap_or_default();
        assert_eq!(summary["built"], serde_json::json!({}), "{v:?}: {run:?}");
        assert!(lab.client_has(v, &hello), "{v:?}");

        // Without it, plain nix refuses the unsigned substitute and builds, as planned.
        lab.reset_client(v).expect("empty the client's store");
        let real = nix_with(&lab, v, &untrusted, &build_l);
        assert_eq!(real.code, Some(0), "{v:?}: {real:?}");
        assert!(
            // 2.8: "is not signed by any of the keys"; 2.26: "as it's not signed by any of the keys".
            real.stderr.contains("not signed by any of the keys"),
            "{v:?}: {real:?}"
        );
        assert!(real.stderr.contains("building '"), "{v:?}: {real:?}");
    }
}

#[test]
fn the_cache_with_the_lower_priority_number_is_the_planned_source() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let second = lab.dir().join("second-cache");
    push_to(&lab, "hello", &lab.cache_dir(), true);
    push_to(&lab, "hello", &second, true);
    let http = lab.cache_url();
    let file = format!("file://{}", second.display());
    let key = lab.cache_public_key().to_owned();
    let installable = lab.flake_ref("hello");
    let build_v = ["build", "--no-link", "-v", &installable];
    let v = ClientNix::V2_8;
    for (first, second_prio, expected) in [(50, 10, file.clone()), (10, 50, http.clone())] {
        let config = client_config(
            &lab,
            &format!(
                "substituters = {http}?priority={first} {file}?priority={second_prio}\n\
                 trusted-public-keys = {key}"
            ),
        );
        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &config,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["paths"][0]["source"], "cache", "{plan}");
        let from = plan["paths"][0]["from"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(from.starts_with(&expected), "{expected}: {plan}");

        // Plain nix beside: it fetches from the same cache.
        let real = nix_with(&lab, v, &config, &build_v);
        assert_eq!(real.code, Some(0), "{real:?}");
        assert!(
            real.stderr
                .lines()
                .any(|l| l.contains("copying path") && l.contains(&format!("from '{expected}"))),
            "{expected}: {real:?}"
        );
        lab.reset_client(v).expect("empty the client's store");
    }
}

#[test]
fn a_flake_s_own_cache_is_planned_when_nix_accepts_its_nix_config() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    lab.push_to_cache(&lab.flake_ref("hello"))
        .expect("fill the cache");
    // A flake that publishes its cache and key in nixConfig, like a flake input does.
    let dir = lab.dir().join("home/with-cache");
    std::fs::create_dir_all(&dir).expect("flake dir");
    std::fs::write(
        dir.join("flake.nix"),
        format!(
            r#"{{
  nixConfig = {{
    extra-substituters = [ "{}" ];
    extra-trusted-public-keys = [ "{}" ];
  }};
  inputs.fixtures.url = "{}";
  outputs = {{ self, fixtures }}: {{
    packages.x86_64-linux.hello = fixtures.packages.x86_64-linux.hello;
  }};
}}
"#,
            lab.cache_url(),
            lab.cache_public_key(),
            lab.flake()
        ),
    )
    .expect("write flake.nix");
    let installable = format!("path:{}#hello", dir.display());
    let build_v = ["build", "--no-link", "-v", &installable];
    for v in ClientNix::ALL {
        // No substituters and no keys of the user's own: only the flake brings them.
        let accept = client_config(&lab, "substituters =\naccept-flake-config = true");
        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &accept,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["mode"], "substitute", "{v:?}: {plan}");
        assert_eq!(plan["paths"][0]["source"], "cache", "{v:?}: {plan}");
        assert_eq!(plan["paths"][0]["from"], lab.cache_url(), "{v:?}: {plan}");

        let refuse = client_config(&lab, "substituters =\naccept-flake-config = false");
        let plan = plan_json(&nixdispatch_with(
            &lab,
            v,
            &refuse,
            &["--json", "plan", &installable],
        ));
        assert_eq!(plan["counts"]["to_build"], 1, "{v:?}: {plan}");
        assert!(
            plan["warnings"].to_string().contains("accept-flake-config"),
            "{v:?}: {plan}"
        );

        // Plain nix beside, with accept-flake-config: it fetches from the flake's cache.
        let real = nix_with(&lab, v, &accept, &build_v);
        assert_eq!(real.code, Some(0), "{v:?}: {real:?}");
        assert!(
            real.stderr
                .lines()
                .any(|l| l.contains("copying path")
                    && l.contains(&format!("from '{}", lab.cache_url()))),
            "{v:?}: {real:?}"
        );
    }
}
