//! Fixed costs (issue 24): what nixdispatch asks once per run instead of starting nix for it
//! must never keep an answer that changed. The daemon's trust is asked over its socket each run
//! (src/nix/daemon_trust.rs): a daemon restarted with other `trusted-users` changes the verdict
//! of the very next run, both ways, on the Nix 2.26 and 2.34 daemons.

mod common;

use common::{alice, daemon_with, lab_or_skip, Run};
use nixdispatch_lab::{DaemonClient, LabOptions};

/// alice's plan with a `--builder` of her own: a trusting daemon takes it, one that does not
/// trust her ignores it and its builders decide.
fn plan_with_her_builder(client: &DaemonClient<'_>, chain: &str) -> Run {
    let other = "ssh-ng://other x86_64-linux - 4 1";
    let run = alice(
        client,
        &["-vv", "--builder", other, "--json", "plan", chain],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

fn trusted_verdict(run: &Run) -> bool {
    let plan = run.json();
    let reason = plan["reason"].as_str().unwrap_or_default().to_owned();
    let ignored = run.stderr.contains("--builder has no effect");
    let decides = reason.contains("the nix daemon decides");
    assert_eq!(ignored, decides, "one verdict: {run:?}");
    if ignored {
        assert_eq!(plan["builders"][0]["host"], "seasmoke", "{run:?}");
    } else {
        assert_eq!(plan["builders"][0]["host"], "other", "{run:?}");
    }
    // The phase lines of -vv name the trust check, on stderr only.
    assert!(run.stderr.contains("phase trust-check: start +"), "{run:?}");
    assert!(!run.stdout.contains("phase "), "{run:?}");
    !ignored
}

/// Rewrites `trusted-users` in vermax's nix.conf and restarts the daemon.
fn set_trusted(client: &mut DaemonClient<'_>, alice_too: bool) {
    let file = client.etc_nix().join("nix.conf");
    let text = std::fs::read_to_string(&file).expect("nix.conf");
    let line = if alice_too {
        "trusted-users = root alice"
    } else {
        "trusted-users = root"
    };
    let text: Vec<&str> = text
        .lines()
        .map(|l| {
            if l.starts_with("trusted-users") {
                line
            } else {
                l
            }
        })
        .collect();
    std::fs::write(&file, text.join("\n") + "\n").expect("writing nix.conf");
    client.restart().expect("the daemon restarts");
}

fn trust_follows_the_daemon(root: Option<std::path::PathBuf>) {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mut client = daemon_with(&lab, |o| {
        o.trusted = true;
        o.root = root;
    });
    let chain = lab.flake_ref("chain");
    let first = plan_with_her_builder(&client, &chain);
    assert!(trusted_verdict(&first), "trusted at first: {first:?}");
    // The same daemon socket path and nix, restarted without alice in trusted-users.
    set_trusted(&mut client, false);
    let after = plan_with_her_builder(&client, &chain);
    assert!(
        !trusted_verdict(&after),
        "a trusted verdict outlived the daemon that gave it: {after:?}"
    );
    // And back: an untrusted verdict is not kept either.
    set_trusted(&mut client, true);
    let again = plan_with_her_builder(&client, &chain);
    assert!(trusted_verdict(&again), "trusted again: {again:?}");
}

#[test]
fn a_restarted_daemon_with_other_trusted_users_changes_the_verdict() {
    trust_follows_the_daemon(None);
}

#[test]
fn a_restarted_daemon_with_other_trusted_users_changes_the_verdict_on_nix_2_34() {
    trust_follows_the_daemon(Some(nixdispatch_lab::sid_root()));
}
