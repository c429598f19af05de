//! The verdict, the plan and the host key check say what is true (issue 9), end to end on the
//! lab: the real binary as vermax, real nix beside it where nix is the reference.

mod common;

use common::{lab, nixdispatch, run_limited, BOUND};
use nixdispatch_lab::{skip_unless_root, ClientNix, Lab, LabOptions};

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
    if skip_unless_root("a_warning_relayed_at_error_level_does_not_fail_a_successful_build") {
        return;
    }
    let lab = lab(LabOptions::default());
    give_seasmoke_a_substituter_that_is_not_a_cache(&lab);
    let spec = lab.builder_spec();

    // Plain nix beside: the same remote build succeeds and relays the warning as an error.
    let mut nix = lab.client_command(ClientNix::V2_26, "nix");
    nix.args([
        "build",
        "--no-link",
        "--log-format",
        "internal-json",
        "-v",
        "--max-jobs",
        "0",
        "--builders",
        &spec,
        &lab.flake_ref("hello"),
    ]);
    let plain = run_limited(nix, BOUND);
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
    let run = nixdispatch(
        &lab,
        ClientNix::V2_26,
        &[
            "--builder",
            &spec,
            "--json",
            "build",
            &lab.flake_ref("chain"),
        ],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
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
    let run = nixdispatch(
        &lab,
        ClientNix::V2_26,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "build",
            &lab.flake_ref("chain"),
        ],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.lines().any(|l| l.starts_with("done in")),
        "{run:?}"
    );
    assert!(
        !run.stderr.lines().any(|l| l.starts_with("failed in")),
        "{run:?}"
    );
}

#[test]
fn a_build_nix_cancels_because_another_failed_is_said_to_be_cancelled() {
    if skip_unless_root("a_build_nix_cancels_because_another_failed_is_said_to_be_cancelled") {
        return;
    }
    let lab = lab(LabOptions::default());
    for v in ClientNix::ALL {
        // Two independent derivations at once, no --keep-going: `fail` fails after a few lines,
        // nix stops `slow` (600 s of ticks) unfinished.
        let run = nixdispatch(
            &lab,
            v,
            &[
                "--mode",
                "local",
                "--json",
                "build",
                &lab.flake_ref("fail"),
                &lab.flake_ref("slow"),
                "--",
                "--max-jobs",
                "2",
            ],
            BOUND,
        );
        assert_eq!(run.code, Some(1), "{v:?}: {run:?}");
        let events = run.json_lines();
        let summary = events.last().cloned().unwrap_or_default();
        assert_eq!(summary["event"], "summary", "{v:?}: {run:?}");
        assert_eq!(summary["ok"], false);
        let failed: Vec<&str> = summary["failed"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["drv"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            matches!(failed.as_slice(), [one] if one.ends_with("-fail.drv")),
            "{v:?}: {run:?}"
        );
        let cancelled: Vec<&str> = summary["cancelled"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f["drv"].as_str()).collect())
            .unwrap_or_default();
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
    if skip_unless_root("a_pinned_host_key_on_an_explicit_port_22_is_found_by_ssh") {
        return;
    }
    let lab = lab(LabOptions::default());
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
        let mut cmd = lab.nixdispatch(ClientNix::V2_8, common::bin());
        cmd.env("NIX_SSHOPTS", &sshopts)
            .args(["--builder", spec, "probe", "--json"]);
        run_limited(cmd, BOUND)
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
