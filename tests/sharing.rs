//! nix rides nixdispatch's ssh masters: a remote build opens one connection to seasmoke (the
//! probe's), where plain nix opens one per derivation. Plain nix beside nixdispatch says what
//! right is: the same builder, the same chain, both built on seasmoke.

mod common;

use common::{lab_with, Nixdispatch};
use nixdispatch_lab::ClientNix;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(180);

#[test]
fn a_remote_build_rides_the_probe_connection_on_every_client() {
    let Some(lab) = lab_with(|o| o.latency = Duration::from_millis(5)) else {
        return;
    };
    for v in ClientNix::ALL {
        let spec = lab.builder_spec_with_host_key();

        // Plain nix: one ssh connection per derivation (the build hook's).
        lab.renew_nonce().expect("new nonce");
        let before = lab.builder_connections();
        let mut plain = lab.client_command(v, "nix");
        plain
            .args(["build", "--no-link", "--max-jobs", "0", "--builders"])
            .arg(&spec)
            .arg(lab.flake_ref("chain"));
        let out = plain.output().expect("plain nix runs");
        assert!(out.status.success(), "{v:?}: plain nix failed: {out:?}");
        let plain_connections = lab.builder_connections() - before;

        // nixdispatch: the probe's master, and nothing else.
        lab.renew_nonce().expect("new nonce");
        let before = lab.builder_connections();
        let run = Nixdispatch::on(&lab)
            .client(v)
            .builder(&spec)
            .plain()
            .arg("build")
            .attr("chain")
            .bound(BOUND)
            .expect_exit(0);
        assert!(run.stderr.contains("mode: remote"), "{v:?}: {run:?}");
        assert!(
            run.stderr.contains("on seasmoke"),
            "{v:?}: built elsewhere: {run:?}"
        );
        let used = lab.builder_connections() - before;
        assert_eq!(
            used, 1,
            "{v:?}: {used} ssh connections (plain nix: {plain_connections})"
        );
        assert!(
            plain_connections >= 3,
            "{v:?}: plain nix used {plain_connections}"
        );
    }
}
