//! Never hang, never lie, part two (issue 23): caches that are away (refused, stalled), a
//! builder that is this machine under another name, two hosts that list each other, a daemon
//! that does not say whether it trusts us. Each test runs the real binary on the lab with plain
//! nix beside it; bounds catch hangs, they are never speed targets.

mod common;

use common::{alice, bin, daemon, lab, nixdispatch, run_limited, skipped, Run, BOUND};
use nixdispatch_lab::{ClientNix, DaemonOptions, Lab, LabOptions, RefusedCache, StalledCache};
use std::time::Duration;

/// How long plain nix is given where it is expected to hang: long enough to show it does.
const PLAIN_NIX_HANGS: Duration = Duration::from_secs(30);

/// Plain `nix build --no-link ARGS` as vermax, bounded by `limit`.
fn plain_nix(lab: &Lab, v: ClientNix, args: &[&str], limit: Duration) -> Run {
    let mut cmd = lab.client_command(v, "nix");
    cmd.args(["build", "--no-link"]).args(args);
    run_limited(cmd, limit)
}

/// The stderr lines that name `what`.
fn lines_naming<'a>(run: &'a Run, what: &str) -> Vec<&'a str> {
    run.stderr.lines().filter(|l| l.contains(what)).collect()
}

/// The output of `nix build --json`'s first result (nixdispatch prints it as nix does).
fn out_path(run: &Run) -> String {
    run.json()[0]["outputs"]["out"]
        .as_str()
        .unwrap_or_else(|| panic!("no output path: {run:?}"))
        .to_owned()
}

/// A lab whose client substitutes from the lab's HTTP cache and from `away`.
fn lab_with_cache(away: &str) -> Lab {
    lab(LabOptions {
        http_cache: true,
        extra_nix_config: format!("extra-substituters = {away}\n"),
        ..Default::default()
    })
}

// ----- 1. a cache that refuses connections ------------------------------------------------

fn refused_cache_costs_no_retries(v: ClientNix) {
    let refused = RefusedCache::start().expect("a refused port");
    let url = refused.url();
    let lab = lab_with_cache(&url);

    // Plain nix: retries nix-cache-info before building (Nix 2.8: about 4.4 s).
    let plain = plain_nix(&lab, v, &[&lab.flake_ref("hello")], BOUND);
    assert_eq!(plain.code, Some(0), "plain nix: {plain:?}");
    eprintln!(
        "nix {}: plain nix with a refused cache: {:.1}s, {} lines naming it",
        v.version(),
        plain.elapsed.as_secs_f64(),
        lines_naming(&plain, &url).len()
    );

    left_out_in_one_line(&lab, v, &url, "cannot connect", "refused");
}

/// nixdispatch builds `#chain` with the dead cache `url` configured: it finishes, one line
/// names the cache as left out and says `why`, and nix never tried it (no other line names it).
fn left_out_in_one_line(lab: &Lab, v: ClientNix, url: &str, why: &str, kind: &str) {
    let run = nixdispatch(
        lab,
        v,
        &[
            "--progress",
            "plain",
            "build",
            "--no-link",
            &lab.flake_ref("chain"),
        ],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let named = lines_naming(&run, url);
    assert_eq!(named.len(), 1, "one line, and nix never tried it: {run:?}");
    assert!(named[0].contains("left out of this run"), "{run:?}");
    assert!(named[0].contains(why), "{run:?}");
    eprintln!(
        "nix {}: nixdispatch with a {kind} cache: {:.1}s",
        v.version(),
        run.elapsed.as_secs_f64()
    );
}

#[test]
fn a_refused_cache_costs_nix_2_8_no_retries() {
    if skipped() {
        return;
    }
    refused_cache_costs_no_retries(ClientNix::V2_8);
}

#[test]
fn a_refused_cache_costs_nix_2_26_no_retries() {
    if skipped() {
        return;
    }
    refused_cache_costs_no_retries(ClientNix::V2_26);
}

#[test]
fn a_refused_cache_costs_nix_2_34_no_retries() {
    if skipped() {
        return;
    }
    refused_cache_costs_no_retries(ClientNix::V2_34);
}

// ----- 2. a cache that accepts and never answers ------------------------------------------

fn stalled_cache_does_not_hold_the_run(v: ClientNix, with_plain_nix: bool) {
    let stalled = StalledCache::start().expect("a stalled port");
    let url = stalled.url();
    let lab = lab_with_cache(&url);

    if with_plain_nix {
        // Plain nix waits on it (stalled-download-timeout is 300 s): killed at the bound.
        let plain = plain_nix(&lab, v, &[&lab.flake_ref("hello")], PLAIN_NIX_HANGS);
        assert_eq!(
            plain.code, None,
            "plain nix was expected to hang: {plain:?}"
        );
        eprintln!(
            "nix {}: plain nix with a stalled cache still waiting at {:.0}s",
            v.version(),
            plain.elapsed.as_secs_f64()
        );
    }

    left_out_in_one_line(&lab, v, &url, "no answer to nix-cache-info", "stalled");
}

#[test]
fn a_stalled_cache_does_not_hold_nix_2_8() {
    if skipped() {
        return;
    }
    stalled_cache_does_not_hold_the_run(ClientNix::V2_8, true);
}

#[test]
fn a_stalled_cache_does_not_hold_nix_2_26() {
    if skipped() {
        return;
    }
    stalled_cache_does_not_hold_the_run(ClientNix::V2_26, false);
}

#[test]
fn a_stalled_cache_does_not_hold_nix_2_34() {
    if skipped() {
        return;
    }
    stalled_cache_does_not_hold_the_run(ClientNix::V2_34, true);
}

#[test]
fn an_untrusted_client_of_a_nix_2_26_daemon_leaves_a_stalled_cache_out_too() {
    if skipped() {
        return;
    }
    untrusted_daemon_client_leaves_a_stalled_cache_out(false);
}

#[test]
fn an_untrusted_client_of_a_nix_2_8_daemon_leaves_a_stalled_cache_out_too() {
    if skipped() {
        return;
    }
    untrusted_daemon_client_leaves_a_stalled_cache_out(true);
}

fn untrusted_daemon_client_leaves_a_stalled_cache_out(nix_2_8: bool) {
    let stalled = StalledCache::start().expect("a stalled port");
    let url = stalled.url();
    let lab = lab(LabOptions::default());
    // The daemon's own substituters: alice cannot add any, but may narrow them.
    let client = daemon(
        &lab,
        DaemonOptions {
            trusted: false,
            extra_nix_config: format!("extra-substituters = {url}\n"),
            this_machine_nix: nix_2_8,
            ..Default::default()
        },
    );
    let run = alice(
        &client,
        &[
            "--mode",
            "local",
            "--progress",
            "plain",
            "build",
            "--no-link",
            &lab.flake_ref("chain"),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let named = lines_naming(&run, &url);
    assert_eq!(named.len(), 1, "{run:?}");
    assert!(named[0].contains("left out of this run"), "{run:?}");
}

// ----- 3. a builder that is this machine; hosts that list each other ------------------------

fn builder_that_is_this_machine_is_left_out(v: ClientNix) {
    let lab = lab(LabOptions::default());
    let _vermax = lab.start_vermax_sshd(v).unwrap_or_else(|e| panic!("{e}"));
    let spec = lab.vermax_spec();

    // Plain nix: waits forever on its own lock (NixOS/nix#2029); killed at the bound.
    let plain = plain_nix(
        &lab,
        v,
        &[
            "--builders",
            &spec,
            "--max-jobs",
            "0",
            &lab.flake_ref("hello"),
        ],
        PLAIN_NIX_HANGS,
    );
    assert_eq!(
        plain.code, None,
        "plain nix was expected to hang: {plain:?}"
    );

    let run = nixdispatch(
        &lab,
        v,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "build",
            "--no-link",
            "--json",
            &lab.flake_ref("chain"),
        ],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let named = lines_naming(&run, "this machine under another name");
    assert_eq!(named.len(), 1, "one line names why: {run:?}");
    // The mode's reason says it: no builder is left.
    assert!(named[0].starts_with("mode: local"), "{run:?}");
    assert!(named[0].contains("vermax: this machine"), "{run:?}");
    let out = out_path(&run);
    assert!(lab.client_has(v, &out), "built here: {run:?}");
}

#[test]
fn a_builder_that_is_this_machine_is_left_out_on_nix_2_8() {
    if skipped() {
        return;
    }
    builder_that_is_this_machine_is_left_out(ClientNix::V2_8);
}

#[test]
fn a_builder_that_is_this_machine_is_left_out_on_nix_2_26() {
    if skipped() {
        return;
    }
    builder_that_is_this_machine_is_left_out(ClientNix::V2_26);
}

#[test]
fn a_builder_that_is_this_machine_is_left_out_on_nix_2_34() {
    if skipped() {
        return;
    }
    builder_that_is_this_machine_is_left_out(ClientNix::V2_34);
}

#[test]
fn a_fleet_list_that_names_both_hosts_builds_on_each_with_nix_2_8() {
    if skipped() {
        return;
    }
    fleet_list_builds_on_each(ClientNix::V2_8);
}

#[test]
fn a_fleet_list_that_names_both_hosts_builds_on_each_with_nix_2_34() {
    if skipped() {
        return;
    }
    fleet_list_builds_on_each(ClientNix::V2_34);
}

/// vermax (client `v`) and seasmoke (Nix 2.26) with the same builder list, both in it.
fn fleet_list_builds_on_each(v: ClientNix) {
    let lab = lab(LabOptions::default());
    let _vermax = lab.start_vermax_sshd(v).unwrap_or_else(|e| panic!("{e}"));
    // The same list on both hosts, each host in it, as one nix.buildMachines for a fleet.
    let fleet = format!("{} ; {}", lab.builder_spec(), lab.vermax_spec());
    let seasmoke_conf = lab.dir().join("seasmoke/etc-nix/nix.conf");
    let conf = std::fs::read_to_string(&seasmoke_conf).expect("seasmoke's nix.conf");
    std::fs::write(&seasmoke_conf, format!("{conf}builders = {fleet}\n")).expect("write");

    // On vermax: vermax is itself, so the build goes to seasmoke.
    let mut cmd = lab.nixdispatch(v, bin());
    cmd.env(
        "NIX_CONFIG",
        format!("{}builders = {fleet}\n", lab.client_nix_config()),
    )
    .args([
        "--progress",
        "plain",
        "build",
        "--no-link",
        "--json",
        &lab.flake_ref("chain"),
    ]);
    let on_vermax = run_limited(cmd, BOUND);
    assert_eq!(on_vermax.code, Some(0), "{on_vermax:?}");
    assert_eq!(
        lines_naming(&on_vermax, "warning: builder vermax is this machine").len(),
        1,
        "{on_vermax:?}"
    );
    let out = out_path(&on_vermax);
    assert!(lab.builder_has(&out), "built on seasmoke: {on_vermax:?}");

    // On seasmoke, the same list: seasmoke is itself, so the build goes to vermax.
    let installed = lab
        .install_nixdispatch(bin())
        .expect("nixdispatch in the lab");
    let mut cmd = lab.seasmoke_client_command(&installed.to_string_lossy());
    cmd.args([
        "--progress",
        "plain",
        "build",
        "--no-link",
        "--json",
        &lab.flake_ref("wide"),
    ]);
    let on_seasmoke = run_limited(cmd, BOUND);
    assert_eq!(on_seasmoke.code, Some(0), "{on_seasmoke:?}");
    assert_eq!(
        lines_naming(&on_seasmoke, "warning: builder seasmoke is this machine").len(),
        1,
        "{on_seasmoke:?}"
    );
    let out = out_path(&on_seasmoke);
    assert!(lab.client_has(v, &out), "built on vermax: {on_seasmoke:?}");
}

// ----- 4. a daemon that does not say whether it trusts us -----------------------------------

fn nix_2_8_daemon(lab: &Lab, trusted: bool) -> nixdispatch_lab::DaemonClient<'_> {
    daemon(
        lab,
        DaemonOptions {
            trusted,
            this_machine_nix: true,
            ..Default::default()
        },
    )
}

#[test]
fn an_untrusted_user_of_a_nix_2_8_daemon_gets_a_true_plan() {
    if skipped() {
        return;
    }
    let lab = lab(LabOptions::default());
    let client = nix_2_8_daemon(&lab, false);
    // Plain nix: the daemon does not say whether it trusts alice.
    let mut ping = client.command("nix");
    ping.args(["store", "ping"]);
    let ping = run_limited(ping, BOUND);
    assert_eq!(ping.code, Some(0), "{ping:?}");
    assert!(!ping.stderr.contains("Trusted"), "{ping:?}");

    let spec = lab.builder_spec();
    let run = alice(
        &client,
        &[
            "--builder",
            &spec,
            "plan",
            "--json",
            &lab.flake_ref("chain"),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = run.json();
    // The daemon ignores alice's --builder: she is told, and the plan is on its own builders.
    assert!(
        run.stderr.contains("--builder has no effect"),
        "the daemon's distrust was found out: {run:?}"
    );
    let builders = plan["builders"].as_array().cloned().unwrap_or_default();
    assert!(
        builders
            .iter()
            .all(|b| b["uri"] == "ssh-ng://root@seasmoke"),
        "planned on the daemon's builders only: {run:?}"
    );
    let reason = plan["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the nix daemon decides"), "{run:?}");
    // Nothing is called alive or reachable that nobody checked.
    for b in &builders {
        if b["alive"] != true {
            assert!(!reason.contains("alive"), "{run:?}");
            assert!(!reason.contains("is reachable"), "{run:?}");
        }
    }
    let mut human = client.nixdispatch(bin());
    human.args(["--builder", &spec, "plan", &lab.flake_ref("chain")]);
    let human = run_limited(human, BOUND);
    assert_eq!(human.code, Some(0), "{human:?}");
    for line in human.stdout.lines().chain(human.stderr.lines()) {
        if line.contains("seasmoke") && line.contains("alive") {
            assert!(
                builders.iter().any(|b| b["alive"] == true),
                "'alive' for a builder nobody checked: {human:?}"
            );
        }
    }
}

#[test]
fn a_trusted_user_of_a_nix_2_8_daemon_keeps_her_builder() {
    if skipped() {
        return;
    }
    let lab = lab(LabOptions::default());
    let client = nix_2_8_daemon(&lab, true);
    let spec = lab.builder_spec();
    let run = alice(
        &client,
        &[
            "--builder",
            &spec,
            "plan",
            "--json",
            &lab.flake_ref("chain"),
        ],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stderr.contains("--builder has no effect"), "{run:?}");
    assert!(
        !run.stderr.contains("trusts you"),
        "trust was found out: {run:?}"
    );
    let plan = run.json();
    assert_eq!(plan["builders"][0]["uri"], "ssh-ng://seasmoke", "{run:?}");
}

// ----- 5. doctor prints no round trip it did not measure ------------------------------------

#[test]
fn doctor_prints_no_round_trip_it_did_not_measure() {
    if skipped() {
        return;
    }
    let lab = lab(LabOptions::default());
    // alice has no ssh of her own: the daemon (root's ssh) verifies seasmoke, nothing of
    // ours measures a round trip.
    let client = daemon(&lab, DaemonOptions::default());
    let run = alice(&client, &["doctor"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("builder seasmoke"))
        .unwrap_or_else(|| panic!("no builder line: {run:?}"));
    assert!(line.contains("rtt unknown"), "{run:?}");
    assert!(!run.stdout.contains("0.0 ms"), "{run:?}");

    // Measured, it is a number: root's own doctor run, its own ssh.
    let mut probe = lab.nixdispatch(ClientNix::V2_8, bin());
    probe.args(["--builder", &lab.builder_spec(), "probe"]);
    let probe = run_limited(probe, BOUND);
    assert_eq!(probe.code, Some(0), "{probe:?}");
    assert!(probe.stdout.contains(" ms "), "{probe:?}");
}

#[test]
fn a_refused_cache_from_the_flake_is_named_with_what_nix_will_spend() {
    if skipped() {
        return;
    }
    let refused = RefusedCache::start().expect("a refused port");
    let url = refused.url();
    let lab = lab(LabOptions {
        extra_nix_config: "accept-flake-config = true\n".into(),
        ..Default::default()
    });
    let dir = lab.dir().join("flake-with-config");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("flake.nix"),
        format!(
            "{{\n  nixConfig.extra-substituters = [ \"{url}\" ];\n  outputs = {{ self }}: {{\n    \
             packages.x86_64-linux.default = derivation {{ name = \"flake-config-{}\"; \
             system = \"x86_64-linux\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo hi > $out\" ]; }};\n  }};\n}}\n",
            lab.nonce()
        ),
    )
    .expect("write the flake");
    let installable = format!("path:{}#default", dir.display());
    let run = nixdispatch(
        &lab,
        ClientNix::V2_8,
        &["--progress", "plain", "build", "--no-link", &installable],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let ours: Vec<&str> = lines_naming(&run, "nix will still try it");
    assert_eq!(ours.len(), 1, "{run:?}");
    assert!(ours[0].contains(&url), "{run:?}");
    // And nix did: its retries name the cache.
    assert!(lines_naming(&run, &url).len() > 1, "{run:?}");
}

#[test]
fn a_builder_that_would_pass_builds_back_here_is_left_out() {
    if skipped() {
        return;
    }
    // seasmoke as a NixOS builder whose build user (root here) is not trusted, and whose own
    // builders list vermax: nix hands it whole derivations, which it passes back.
    let v = ClientNix::V2_34;
    let lab = lab(LabOptions {
        builder_daemon_trusted_users: Some("nobody".into()),
        ..Default::default()
    });
    let _vermax = lab.start_vermax_sshd(v).unwrap_or_else(|e| panic!("{e}"));
    let conf = lab.dir().join("seasmoke/etc-nix/nix.conf");
    let text = std::fs::read_to_string(&conf).expect("seasmoke's nix.conf");
    std::fs::write(&conf, format!("{text}builders = {}\n", lab.vermax_spec())).expect("write");
    lab.restart_builder().unwrap_or_else(|e| panic!("{e}"));
    let spec = lab.builder_spec();

    let run = nixdispatch(
        &lab,
        v,
        &["--builder", &spec, "plan", &lab.flake_ref("hello")],
        BOUND,
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    // `plan` prints the reason, then each builder's line: both say it.
    let named: Vec<&str> = run
        .stdout
        .lines()
        .chain(run.stderr.lines())
        .filter(|l| l.contains("NixOS/nix#10740"))
        .collect();
    assert!(named[0].starts_with("mode: local"), "{run:?}");
    assert!(named[0].contains("vermax, this machine"), "{run:?}");

    // The build finishes here.
    let build = nixdispatch(
        &lab,
        v,
        &[
            "--builder",
            &spec,
            "--progress",
            "plain",
            "build",
            "--no-link",
            "--json",
            &lab.flake_ref("chain"),
        ],
        BOUND,
    );
    assert_eq!(build.code, Some(0), "{build:?}");
    assert!(lab.client_has(v, &out_path(&build)), "{build:?}");

    // Plain nix: the derivation goes to seasmoke, which passes it back here, where this very
    // build holds its output's lock (NixOS/nix#10740).
    let plain = plain_nix(
        &lab,
        v,
        &[
            "--builders",
            &spec,
            "--max-jobs",
            "0",
            &lab.flake_ref("hello"),
        ],
        PLAIN_NIX_HANGS,
    );
    eprintln!("plain nix through a builder that forwards back: {plain:?}");
    assert_eq!(
        plain.code, None,
        "plain nix was expected to hang: {plain:?}"
    );
}
