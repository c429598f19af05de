//! The real setup (issue 11): vermax runs a nix-daemon as root; alice, a non-root user, runs
//! nixdispatch and plain nix through it; the builder key is root's alone (mode 600 in
//! /root/.ssh), and root's known_hosts is not alice's. Plain nix is the baseline of every row.

mod common;

use common::terminal::Terminal;
use common::{alice, bin, daemon, daemon_with, lab, lab_or_skip, run_limited, Run, BOUND};
use nixdispatch_lab::{
    skip_unless_root, DaemonClient, DaemonOptions, Fault, Lab, LabOptions, Sudo,
};
use std::time::Duration;

fn plain_nix(client: &DaemonClient<'_>, args: &[&str]) -> Run {
    let mut cmd = client.command("nix");
    cmd.args(args);
    run_limited(cmd, BOUND)
}

/// The output path `nix build --json` put on stdout (nixdispatch prints result paths).
fn out_path(run: &Run) -> String {
    run.stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("/nix/store/"))
        .unwrap_or_else(|| panic!("no result path: {run:?}"))
        .to_owned()
}

fn local_builds(run: &Run) -> Vec<String> {
    run.json_lines()
        .iter()
        .filter(|e| e["event"] == "build_start" && e["host"] == "local")
        .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn fresh_build_goes_to_seasmoke_as_plain_nix_does() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon(&lab, DaemonOptions::default());

    // Baseline: plain nix as alice builds on seasmoke through the daemon.
    let chain = lab.flake_ref("chain");
    let plain = plain_nix(
        &client,
        &["build", "--no-link", "--print-out-paths", &chain],
    );
    assert_eq!(plain.code, Some(0), "plain nix: {plain:?}");
    assert!(
        lab.builder_has(&out_path(&plain)),
        "plain nix built elsewhere"
    );

    lab.renew_nonce().expect("fresh paths");
    let run = alice(&client, &["--json", "build", &lab.flake_ref("chain")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let events = run.json_lines();
    assert_eq!(events[0]["mode"], "remote", "{run:?}");
    assert!(local_builds(&run).is_empty(), "built locally: {run:?}");
    // alice has no ssh of her own to seasmoke; the daemon, which trusts her, verified it with
    // root's ssh.
    let probe = alice(&client, &["--json", "probe"]);
    let b = &probe.json()["builders"][0];
    assert_eq!(b["identity"], "root", "{probe:?}");
    assert_eq!(b["alive"], true, "{probe:?}");
    assert_eq!(b["verified"], true, "{probe:?}");
    assert_eq!(b["reachable"], true, "{probe:?}");
}

#[test]
fn a_result_seasmoke_holds_is_copied_not_rebuilt() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon(&lab, DaemonOptions::default());
    let held = lab
        .build_on_builder(&lab.flake_ref("chain"))
        .expect("seed seasmoke");
    // alice cannot reach seasmoke herself; the daemon (it trusts her) says what it holds.
    let plan = alice(&client, &["--json", "plan", &lab.flake_ref("chain")]);
    assert_eq!(plan.json()["counts"]["from_builders"], 3, "{plan:?}");
    assert_eq!(plan.json()["counts"]["to_build"], 0, "{plan:?}");
    let run = alice(&client, &["--json", "build", &lab.flake_ref("chain")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_ne!(run.json_lines()[0]["mode"], "local", "{run:?}");
    assert!(local_builds(&run).is_empty(), "rebuilt locally: {run:?}");
    for p in &held {
        assert!(client.has(p), "{p} did not come back");
    }
}

#[test]
fn mode_remote_works_with_root_only_credentials() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon(&lab, DaemonOptions::default());
    let chain = lab.flake_ref("chain");
    let run = alice(&client, &["--mode", "remote", "--json", "build", &chain]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.json_lines()[0]["mode"], "remote", "{run:?}");
    assert!(local_builds(&run).is_empty(), "built locally: {run:?}");
}

#[test]
fn doctor_passes_a_healthy_daemon_setup_with_a_canary() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon(&lab, DaemonOptions::default());
    let run = alice(&client, &["doctor"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stdout
            .contains("built a canary on ssh-ng://root@seasmoke"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("error"), "{run:?}");
}

#[test]
fn a_down_builder_means_a_local_build_within_the_connect_timeout() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon(&lab, DaemonOptions::default());
    for fault in [Fault::Down, Fault::Tarpit] {
        lab.renew_nonce().expect("fresh paths");
        lab.set_fault(fault);
        let hello = lab.flake_ref("hello");
        let run = alice(
            &client,
            &["--connect-timeout", "2", "--json", "build", &hello],
        );
        lab.set_fault(Fault::None);
        assert_eq!(run.code, Some(0), "{fault:?}: {run:?}");
        assert_eq!(run.json_lines()[0]["mode"], "local", "{fault:?}: {run:?}");
        assert!(run.elapsed < Duration::from_secs(60), "{fault:?}: {run:?}");
    }
}

#[test]
fn roots_missing_host_key_is_named_by_doctor_and_the_build() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon_with(&lab, |o| {
        o.user_ssh = true;
        o.root_known_host = false;
    });
    // alice's own ssh works: the probe as her succeeds, but that is not the daemon's view.
    // Plain nix: the daemon's ssh fails, nix says only "cannot build on", and builds here.
    let plain = plain_nix(&client, &["build", &lab.flake_ref("hello")]);
    assert_eq!(plain.code, Some(0), "{plain:?}");
    assert!(plain.stderr.contains("cannot build on"), "{plain:?}");

    // Without sudo or the journal, ssh's own words stay in the daemon's log: doctor says what
    // nix says, that it is root's ssh, and how to see and fix it.
    let doctor = alice(&client, &["doctor"]);
    assert_eq!(doctor.code, Some(2), "{doctor:?}");
    assert!(
        doctor.stdout.contains("failed to start SSH connection"),
        "{doctor:?}"
    );
    assert!(doctor.stdout.contains("publicHostKey"), "{doctor:?}");
    assert!(
        doctor.stdout.contains("journalctl -u nix-daemon"),
        "{doctor:?}"
    );

    // The daemon, which trusts alice, told nixdispatch that root's ssh fails: the build stays
    // here from the start, and the reason says why.
    lab.renew_nonce().expect("fresh paths");
    let run = alice(&client, &["--json", "build", &lab.flake_ref("hello")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = &run.json_lines()[0];
    assert_eq!(plan["mode"], "local", "{run:?}");
    let reason = plan["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("root's ssh"), "{reason}");
    assert!(
        reason.contains("failed to start SSH connection"),
        "{reason}"
    );

    // An untrusted alice: the daemon answers nothing for her, so nix decides; nixdispatch
    // does as well as plain nix and says where nix did not follow the plan.
    drop(client);
    let client = daemon_with(&lab, |o| {
        o.trusted = false;
        o.user_ssh = true;
        o.root_known_host = false;
    });
    lab.renew_nonce().expect("fresh paths");
    let hello = lab.flake_ref("hello");
    let run = alice(&client, &["--progress", "plain", "build", &hello]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("cannot build on"), "{run:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("did not follow the plan") && l.contains("seasmoke")),
        "{run:?}"
    );

    // Told to build nothing here, nix fails: the last line is the daemon's ssh failure, not
    // nix's pointer to the manual ("remote machines may not have all required system features").
    lab.renew_nonce().expect("fresh paths");
    let hello = lab.flake_ref("hello");
    let plain_build = ["--progress", "plain", "build", &hello];
    let run = alice(
        &client,
        &[&plain_build[..], &["--", "--max-jobs", "0"]].concat(),
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    let last = run.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("failed to start SSH connection to 'root@seasmoke'"),
        "{run:?}"
    );
}

#[test]
fn an_untrusted_user_is_told_the_daemon_decides() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon_with(&lab, |o| o.trusted = false);
    let ping = plain_nix(&client, &["store", "ping"]);
    assert!(
        ping.stdout.contains("Trusted: 0") || ping.stderr.contains("Trusted: 0"),
        "{ping:?}"
    );
    let other = "ssh-ng://other x86_64-linux - 4 1";
    let chain = lab.flake_ref("chain");
    let run = alice(&client, &["--builder", other, "--json", "plan", &chain]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("--builder has no effect"), "{run:?}");
    let plan = run.json();
    let reason = plan["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("the nix daemon decides"), "{reason}");
    assert_eq!(plan["builders"][0]["host"], "seasmoke", "{run:?}");
    assert_eq!(
        plan["builders"].as_array().map(Vec::len),
        Some(1),
        "{run:?}"
    );

    // And the build does what the plan says: on the daemon's builder. nix's own `--builders`
    // among build's words is ignored by the daemon the same way, and said the same way.
    let build = alice(
        &client,
        &[
            "--json",
            "build",
            &lab.flake_ref("chain"),
            "--builders",
            other,
        ],
    );
    assert_eq!(build.code, Some(0), "{build:?}");
    assert!(local_builds(&build).is_empty(), "built locally: {build:?}");
    assert!(
        build.stdout.contains("--builders has no effect"),
        "{build:?}"
    );

    let doctor = alice(&client, &["doctor"]);
    assert_eq!(doctor.code, Some(0), "{doctor:?}");
    assert!(doctor.stdout.contains("does not trust you"), "{doctor:?}");
    assert!(doctor.stdout.contains("built a canary"), "{doctor:?}");
}

#[test]
fn with_sudo_roots_missing_host_key_is_named_and_the_build_stays_here() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon_with(&lab, |o| {
        o.root_known_host = false;
        o.sudo = Sudo::NoPassword;
    });
    let doctor = alice(&client, &["doctor"]);
    assert_eq!(doctor.code, Some(2), "{doctor:?}");
    let text = doctor.stdout.to_lowercase();
    assert!(text.contains("root's ssh"), "{doctor:?}");
    assert!(text.contains("host key verification failed"), "{doctor:?}");
    assert!(doctor.stdout.contains("publicHostKey"), "{doctor:?}");

    let run = alice(&client, &["--json", "build", &lab.flake_ref("hello")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = &run.json_lines()[0];
    assert_eq!(plan["mode"], "local", "{run:?}");
    assert!(
        plan["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("root's ssh"),
        "{run:?}"
    );
    let probe = alice(&client, &["--json", "probe"]);
    let b = &probe.json()["builders"][0];
    assert_eq!(b["verified"], true, "{probe:?}");
    assert_eq!(b["identity"], "root", "{probe:?}");

    // Fixed: root knows the host key; doctor is happy without a canary (sudo verified it).
    let mut client = client;
    client.set_root_known_host(true).expect("known_hosts");
    let doctor = alice(&client, &["doctor"]);
    assert_eq!(doctor.code, Some(0), "{doctor:?}");
}

/// A flake whose `nixosConfigurations.vermax` takes `secs` to build (here, `--mode local`)
/// and whose switch-to-configuration writes `markers/os-ACTION`.
fn slow_os_flake(client: &DaemonClient<'_>, markers: &std::path::Path, secs: u32) -> String {
    let dir = client.user_home().join("osflake");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let flake = format!(
        r#"{{
  outputs = {{ self }}: {{
    nixosConfigurations.vermax.config.system.build.toplevel = derivation {{
      name = "nixos-system-vermax-slow"; system = "x86_64-linux"; builder = "/bin/sh";
      nonce = "{nonce}";
      args = [ "-c" ''
        /bin/sleep {secs}
        /bin/mkdir -p "$out/bin" "$out/sw/bin"
        echo 25.05.lab > "$out/nixos-version"
        printf '#!/bin/sh\nexit 0\n' > "$out/init"
        /bin/cat > "$out/bin/switch-to-configuration" <<EOS
        #!/bin/sh
        echo "\$1 \$(id -u)" > {markers}/os-\$1
        EOS
        /bin/chmod +x "$out/init" "$out/bin/switch-to-configuration"
      '' ];
    }};
  }};
}}
"#,
        markers = markers.display()
    );
    std::fs::write(dir.join("flake.nix"), flake).expect("flake");
    format!("path:{}", dir.display())
}

/// Runs `cmd` on a pseudo-terminal (`script`), typing alice's password at every sudo prompt.
/// Returns the exit code, the terminal's output and how many prompts were answered.
fn on_a_terminal(cmd: std::process::Command, limit: Duration) -> (Option<i32>, String, usize) {
    use std::io::Write;
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = String::from("exec env -i");
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            line += &format!(
                " {}",
                quote(&std::ffi::OsString::from(format!(
                    "{}={}",
                    k.to_string_lossy(),
                    v.to_string_lossy()
                )))
            );
        }
    }
    line += &format!(" {}", quote(cmd.get_program()));
    for a in cmd.get_args() {
        line += &format!(" {}", quote(a));
    }
    let mut script = std::process::Command::new("script");
    script
        .args(["-qefc", &line, "/dev/null"])
        .current_dir(cmd.get_current_dir().unwrap_or(std::path::Path::new("/")));
    let Terminal {
        mut child,
        mut stdin,
        screen: rx,
    } = Terminal::start(script);
    let t0 = std::time::Instant::now();
    let mut out = String::new();
    let mut answered = 0;
    let code = loop {
        while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            out += &String::from_utf8_lossy(&chunk);
        }
        let prompts = out.matches("password for alice").count();
        if prompts > answered {
            let _ = stdin.write_all(format!("{}\n", nixdispatch_lab::daemon::PASSWORD).as_bytes());
            let _ = stdin.flush();
            answered = prompts;
        }
        if let Some(s) = child.try_wait().expect("wait") {
            std::thread::sleep(Duration::from_millis(100));
            while let Ok(chunk) = rx.try_recv() {
                out += &String::from_utf8_lossy(&chunk);
            }
            break s.code();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            break None;
        }
    };
    (code, out, answered)
}

/// `nixdispatch --via VIA --mode local os switch` of a 4-second build, run as alice on a terminal
/// with sudo asking for her password (see [`on_a_terminal`]).
fn os_switch_as_alice_on_a_terminal(
    lab: &Lab,
    via: &str,
    limit: Duration,
) -> (Option<i32>, String, usize) {
    os_switch_as_alice_drawn(lab, via, "plain", limit)
}

/// [`os_switch_as_alice_on_a_terminal`] with the display `--progress PROGRESS`.
fn os_switch_as_alice_drawn(
    lab: &Lab,
    via: &str,
    progress: &str,
    limit: Duration,
) -> (Option<i32>, String, usize) {
    // 0.02 minutes: the timestamp lapses 1.2 s after the password, long before the build ends.
    let client = daemon_with(lab, |o| {
        o.sudo = Sudo::Password;
        o.sudo_timeout_minutes = 0.02;
    });
    let flake = slow_os_flake(&client, &lab.markers_dir(), 4);
    let mut cmd = client.nixdispatch(bin());
    cmd.args(["--via", via, "--mode", "local", "--progress", progress])
        .args(["os", "switch", "--flake", &flake, "-H", "vermax"]);
    on_a_terminal(cmd, limit)
}

/// Issue 20, prompts get through: the second prompt comes after the build, while the bars or
/// the tree are drawn; it must be on the terminal and answerable (the answer is typed only once
/// the prompt's words are seen, so a hidden prompt would end the run unanswered).
fn sudo_prompt_gets_through(progress: &str) {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let (code, out, answered) = os_switch_as_alice_drawn(&lab, "nix", progress, BOUND);
    assert_eq!(code, Some(0), "{progress}: exit {code:?}: {out}");
    assert_eq!(
        answered, 2,
        "{progress}: one prompt before the build, one at activation under the display: {out}"
    );
    assert_eq!(
        lab.marker("os-switch").as_deref(),
        Some("switch 0"),
        "{progress}: {out}"
    );
}

#[test]
fn a_sudo_prompt_gets_through_the_bars() {
    sudo_prompt_gets_through("bar");
}

#[test]
fn a_sudo_prompt_gets_through_the_tree() {
    sudo_prompt_gets_through("tree");
}

#[test]
fn os_switch_as_alice_activates_after_a_build_longer_than_sudos_timestamp() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let (code, out, answered) = os_switch_as_alice_on_a_terminal(&lab, "nix", BOUND);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        answered, 2,
        "one prompt before the build, one at activation: {out}"
    );
    assert!(out.contains("asking again to activate"), "{out}");
    assert_eq!(
        lab.marker("os-switch").as_deref(),
        Some("switch 0"),
        "{out}"
    );
}

#[test]
fn os_switch_as_alice_through_nh_gets_its_sudo_prompt_to_the_terminal() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let (code, out, answered) =
        os_switch_as_alice_on_a_terminal(&lab, "nh", Duration::from_secs(90));
    assert_eq!(code, Some(0), "{out}");
    // Once before the build (nixdispatch), once by nh at activation (the timestamp lapsed).
    assert_eq!(answered, 2, "{out}");
    // nh 4.4's switch is `switch-to-configuration test`, then `boot`, as root.
    assert_eq!(lab.marker("os-test").as_deref(), Some("test 0"), "{out}");
    assert_eq!(lab.marker("os-boot").as_deref(), Some("boot 0"), "{out}");
}

#[test]
fn her_own_ssh_tells_what_seasmoke_holds_but_does_not_verify_roots() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let client = daemon_with(&lab, |o| {
        o.user_ssh = true;
        // Untrusted: the daemon answers nothing for her, so only her own ssh can tell.
        o.trusted = false;
    });
    lab.build_on_builder(&lab.flake_ref("chain"))
        .expect("seed seasmoke");
    let run = alice(&client, &["--json", "plan", &lab.flake_ref("chain")]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let plan = run.json();
    // The same store answered through her ssh: the held outputs come from seasmoke.
    assert_eq!(plan["counts"]["from_builders"], 3, "{run:?}");
    assert_eq!(plan["counts"]["to_build"], 0, "{run:?}");
    let b = &plan["builders"][0];
    assert_eq!(b["verified"], false, "{run:?}");
    assert_eq!(b["identity"], "root", "{run:?}");
    assert!(
        b["note"]
            .as_str()
            .unwrap_or_default()
            .contains("your own ssh reaches it"),
        "{run:?}"
    );
    let build = alice(&client, &["--json", "build", &lab.flake_ref("chain")]);
    assert_eq!(build.code, Some(0), "{build:?}");
    assert!(
        local_builds(&build).is_empty(),
        "rebuilt locally: {build:?}"
    );
}

#[test]
fn the_daemon_variant_runs_on_the_nix_2_34_root_too() {
    if skip_unless_root("the_daemon_variant_runs_on_the_nix_2_34_root_too") {
        return;
    }
    // The sid root (Nix 2.34) that scripts/lab-deps builds beside the trixie one.
    let sid = nixdispatch_lab::trixie_root().with_file_name("sid");
    let lab = lab(LabOptions::default());
    let client = daemon_with(&lab, |o| o.root = Some(sid));
    let version = plain_nix(&client, &["--version"]);
    assert!(version.stdout.contains("2.34"), "{version:?}");
    let chain = lab.flake_ref("chain");
    let plain = plain_nix(&client, &["build", "--print-out-paths", &chain]);
    assert_eq!(plain.code, Some(0), "{plain:?}");
    assert!(
        lab.builder_has(&out_path(&plain)),
        "not built on seasmoke: {plain:?}"
    );
    let ping = plain_nix(&client, &["store", "info"]);
    assert!(
        format!("{}{}", ping.stdout, ping.stderr).contains("Trusted: 1"),
        "{ping:?}"
    );
}
