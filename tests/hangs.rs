//! Never hang: every wait bounded, in every phase, whatever the builder or the child does
//! (issue 8). Each test runs the real binary on the lab and bounds it generously: several times
//! the timeout under test, never a speed target.

mod common;

use common::procs::{self, lab_processes};
use common::terminal::Terminal;
use common::{bin, lab_or_skip, lab_with, run_limited, Background, Nixdispatch};
use nixdispatch_lab::{Fault, Fixture, Lab, LabOptions};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Client-side processes of this lab still alive (nix, nh, ssh and its masters, activation
/// scripts, nixdispatch); seasmoke's own are not counted.
fn client_processes(lab: &Lab) -> Vec<String> {
    lab_processes(lab.dir())
        .into_iter()
        .filter(|p| {
            let client = [
                "nix ",
                "nix-store",
                "nixdispatch",
                "ssh ",
                "activate",
                "sleep",
            ]
            .iter()
            .any(|w| p.cmdline.contains(w));
            let seasmoke = p.cmdline.contains("sshd") || p.cmdline.contains("nix-daemon");
            p.here && client && !p.zombie && !seasmoke
        })
        .map(|p| p.cmdline)
        .collect()
}

/// Asserts that nothing of the run is left, allowing a moment for the last reaping.
fn assert_nothing_left(lab: &Lab) {
    let t0 = Instant::now();
    loop {
        let left = client_processes(lab);
        if left.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "left running: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until a client process of this lab whose command line contains every one of `words`
/// runs; false after `limit`.
fn wait_for_process(lab: &Lab, words: &[&str], limit: Duration) -> bool {
    procs::wait_for_process(lab.dir(), words, limit)
}

/// Makes seasmoke's sshd run every session command of the client's key through a wrapper that
/// hangs (forever, as far as the test goes) on commands containing `hang_on`, after touching
/// `LABDIR/seasmoke/hung`. Everything else runs as usual.
fn builder_hangs_on(lab: &Lab, hang_on: &str) -> PathBuf {
    builder_wraps(lab, hang_on, "exec /bin/sleep 3600")
}

/// Like [`builder_hangs_on`], but the command runs after a pause of two seconds: time for the
/// test to stall the link while the answer is on its way.
fn builder_pauses_on(lab: &Lab, pause_on: &str) -> PathBuf {
    builder_wraps(lab, pause_on, "/bin/sleep 2")
}

fn builder_wraps(lab: &Lab, hang_on: &str, then: &str) -> PathBuf {
    let d = lab.dir().display().to_string();
    let wrapper = lab.dir().join("seasmoke/hang-wrapper");
    let hung = lab.dir().join("seasmoke/hung");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\ncase \"$SSH_ORIGINAL_COMMAND\" in\n  *'{hang_on}'*) echo > {d}/seasmoke/hung; {then} ;;\nesac\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n"
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod the wrapper");
    let key = std::fs::read_to_string(lab.dir().join("client_key.pub")).expect("client key");
    std::fs::write(
        lab.dir().join("seasmoke/authorized_keys"),
        format!("command=\"{}\" {key}", wrapper.display()),
    )
    .expect("write authorized_keys");
    hung
}

/// `--builder SEASMOKE plan --json CHAIN`.
fn plan_chain(lab: &Lab) -> Nixdispatch<'_> {
    Nixdispatch::on(lab)
        .seasmoke()
        .args(["plan", "--json"])
        .attr("chain")
}

// ----- 1. a builder that answers the probe, then stalls ------------------------------------

#[test]
fn a_builder_whose_store_query_never_returns_does_not_hold_the_plan() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let hung = builder_hangs_on(&lab, "--check-validity");
    // The default connect timeout (3 s): each store query gets 15 s.
    let run = plan_chain(&lab).bound(Duration::from_secs(90)).run();
    assert!(
        hung.exists(),
        "the query never reached the builder: {run:?}"
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let warning: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("stopped answering"))
        .collect();
    assert_eq!(warning.len(), 1, "one line names the builder: {run:?}");
    assert!(warning[0].contains("seasmoke"), "{run:?}");
    // The run goes on as nix would: the builder is still the one to build on.
    let plan = run.json();
    assert_eq!(plan["mode"], "remote", "{run:?}");
}

/// Waits for the wrapper's mark, failing after a minute.
fn wait_for_file(path: &std::path::Path) {
    let t0 = Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_link_that_stalls_during_the_store_query_does_not_hold_the_plan() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mark = builder_pauses_on(&lab, "--check-validity");
    let cmd = plan_chain(&lab).command();
    let stall = {
        let mark = mark.clone();
        std::thread::spawn(move || wait_for_file(&mark))
    };
    let waiter = std::thread::spawn(move || run_limited(cmd, Duration::from_secs(90)));
    let _ = stall.join();
    // The query is on the builder; its answer will not make it back.
    lab.set_fault(Fault::Stall);
    let run = waiter.join().expect("run");
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains("seasmoke") && l.contains("warning")),
        "one line names the builder: {run:?}"
    );
    assert_eq!(run.json()["mode"], "remote", "{run:?}");
    lab.set_fault(Fault::None);
}

/// The command line of this lab's client-side ssh control master, once one runs.
fn master_cmdline(lab: &Lab) -> Option<String> {
    let marker = format!("NIXDISPATCH_LAB={}", lab.dir().display());
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let environ = std::fs::read(e.path().join("environ")).ok()?;
            if !environ.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.starts_with("ssh ") && cmdline.contains(" -M ")).then_some(cmdline)
        })
}

#[test]
fn keepalives_are_added_to_the_master_only_where_the_user_set_none() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let hung = builder_hangs_on(&lab, "--check-validity");
    let master_while_querying = |lab: &Lab| {
        let _ = std::fs::remove_file(&hung);
        let mut run = plan_chain_with_connect_timeout_60(lab).background();
        run.wait_for_file(&hung, Duration::from_secs(60));
        let cmdline = master_cmdline(lab).expect("a master runs while the query hangs");
        run.ctrl_c();
        let _ = run.exit_within(Duration::from_secs(20));
        cmdline
    };
    let ours = master_while_querying(&lab);
    assert!(
        ours.contains("ServerAliveInterval=5") && ours.contains("ServerAliveCountMax=3"),
        "{ours}"
    );
    // The user's ssh config (here the lab's, through NIX_SSHOPTS=-F) sets its own: it stands.
    let config = lab.ssh_config();
    let mut text = std::fs::read_to_string(&config).expect("ssh_config");
    text.push_str("\nHost *\n    ServerAliveInterval 9\n");
    std::fs::write(&config, text).expect("ssh_config");
    let theirs = master_while_querying(&lab);
    assert!(!theirs.contains("ServerAlive"), "{theirs}");
}

/// `plan CHAIN` on seasmoke with a connect timeout of 60 s: a store query's deadline (5x) is
/// far away.
fn plan_chain_with_connect_timeout_60(lab: &Lab) -> Nixdispatch<'_> {
    Nixdispatch::on(lab)
        .seasmoke()
        .args(["--connect-timeout", "60", "plan"])
        .attr("chain")
}

// ----- 2. a builder that goes silent in the middle of a build --------------------------------

fn silent_builder_run(lab: &Lab, extra: &[&str]) -> Background {
    let mut run = Nixdispatch::on(lab)
        .seasmoke()
        .plain()
        // nix's build hook, whose link the watchdog guards: a session would go on building on
        // seasmoke and the run would end with its id (tests/sessions.rs).
        .args(["--remote-via", "hook", "--silent-timeout", "5", "build"])
        .args(extra)
        .attr("slow20")
        .background();
    run.expect_line("building slow20 on seasmoke", Duration::from_secs(60));
    // Let it tick for a while (its log lines flow), then the link stops passing packets.
    std::thread::sleep(Duration::from_secs(3));
    lab.set_fault(Fault::Stall);
    run
}

#[test]
fn a_builder_that_goes_silent_mid_build_is_left_and_the_build_finishes_locally() {
    let Some(lab) = lab_with(|o| o.fixtures = vec![Fixture::slow("slow20", 20)]) else {
        return;
    };
    let mut run = silent_builder_run(&lab, &[]);
    // Detection takes the silent timeout (5 s) plus a keepalive or two, then 20 s locally.
    let (code, _) = run.exit_within(Duration::from_secs(150));
    assert_eq!(code, Some(0), "{:#?}", run.seen);
    assert!(
        run.saw("builder seasmoke stopped answering"),
        "{:#?}",
        run.seen
    );
    assert!(run.saw("finishing the build locally"), "{:#?}", run.seen);
    lab.set_fault(Fault::None);
    assert_nothing_left(&lab);
}

#[test]
fn a_silent_builder_with_no_local_fallback_fails_clearly() {
    let Some(lab) = lab_with(|o| o.fixtures = vec![Fixture::slow("slow20", 20)]) else {
        return;
    };
    let flag = no_local_fallback_flag();
    let mut run = silent_builder_run(&lab, &[flag]);
    let (code, _) = run.exit_within(Duration::from_secs(90));
    assert_eq!(code, Some(1), "{:#?}", run.seen);
    let last = run.seen.last().cloned().unwrap_or_default();
    assert!(
        last.contains("seasmoke stopped answering") && last.contains("not finishing locally"),
        "the last line says what happened: {:#?}",
        run.seen
    );
    assert!(!run.saw("finishing the build locally"), "{:#?}", run.seen);
    lab.set_fault(Fault::None);
    assert_nothing_left(&lab);
}

/// The build flag that turns the local fallback off, as this binary spells it (it is being
/// renamed from `--no-fallback` to `--no-local-fallback`).
fn no_local_fallback_flag() -> &'static str {
    let help = Command::new(bin())
        .args(["build", "--help"])
        .output()
        .expect("build --help");
    if String::from_utf8_lossy(&help.stdout).contains("--no-local-fallback") {
        "--no-local-fallback"
    } else {
        "--no-fallback"
    }
}

// ----- 3. invalid UTF-8 and a flood of lines from a child -------------------------------------

/// Writes a flake whose home configuration's activation script is `script` (sh), and returns
/// its `path:` reference.
fn home_flake(lab: &Lab, name: &str, script: &str) -> String {
    let flake = format!(
        r#"{{
  outputs = {{ self }}:
    let
      system = "x86_64-linux";
      script = builtins.toFile "activate" ''
{script}
      '';
      home = derivation {{
        inherit system script;
        name = "home-{name}";
        nonce = "{nonce}";
        builder = "/bin/sh";
        args = [ "-c" "/bin/mkdir -p $out; /bin/cp $script $out/activate; /bin/chmod +x $out/activate" ];
      }};
      hc = {{ activationPackage = home; config.home.activationPackage = home; }};
    in {{
      homeConfigurations."root@vermax" = hc;
      homeConfigurations.root = hc;
    }};
}}
"#,
        nonce = lab.nonce()
    );
    write_flake(lab, name, &flake)
}

/// Writes `text` as `LABDIR/NAME/flake.nix` and returns its `path:` reference.
fn write_flake(lab: &Lab, name: &str, text: &str) -> String {
    let dir = lab.dir().join(name);
    std::fs::create_dir_all(&dir).expect("flake dir");
    std::fs::write(dir.join("flake.nix"), text).expect("flake.nix");
    format!("path:{}", dir.display())
}

/// `home switch` of `flake`, built here and activated through nix, with plain progress.
fn home_switch_locally<'a>(lab: &'a Lab, flake: &str) -> Nixdispatch<'a> {
    Nixdispatch::on(lab)
        .args(["--mode", "local", "--via", "nix"])
        .plain()
        .args(["home", "switch", "--flake", flake])
}

#[test]
fn an_activation_script_printing_latin1_and_20000_lines_is_drained_to_the_end() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let markers = lab.markers_dir();
    let flake = home_flake(
        &lab,
        "latin1",
        &format!(
            "#!/bin/sh\nprintf 'caf\\351 au lait\\n'\ni=0\nwhile [ \"$i\" -lt 20000 ]; do echo \"activation line $i\"; i=$((i + 1)); done\n/bin/mkdir -p {m}\necho done > {m}/latin1-activated\n",
            m = markers.display()
        ),
    );
    let run = home_switch_locally(&lab, &flake).run();
    assert_eq!(
        run.code,
        Some(0),
        "exit {:?}: {}",
        run.code,
        tail(&run.stderr)
    );
    assert!(
        lab.marker("latin1-activated").is_some(),
        "the activation did not run to its end: {}",
        tail(&run.stderr)
    );
    assert!(
        run.stderr.contains("caf\u{FFFD} au lait"),
        "the Latin-1 byte is shown as a replacement character: {}",
        tail(&run.stderr)
    );
    assert!(
        run.stderr.contains("activation line 19999"),
        "{}",
        tail(&run.stderr)
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

// ----- 4. builder specs that include what is not a machines file ------------------------------

/// `--builder SPEC` must end at once with exit 2 and one line naming the file. No lab needed:
/// the spec is checked before nix is asked anything.
fn refused_builder(spec: &str, names: &str) {
    let mut cmd = Command::new(bin());
    cmd.args(["--builder", spec, "plan", "."]);
    let run = run_limited(cmd, Duration::from_secs(30));
    assert_eq!(run.code, Some(2), "{spec}: {run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{spec}: one line: {run:?}");
    assert!(lines[0].contains(names), "{spec}: names {names}: {run:?}");
}

#[test]
fn a_builder_include_of_dev_zero_a_fifo_or_a_multiplying_include_exits_2() {
    refused_builder("@/dev/zero", "/dev/zero");

    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("machines.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    refused_builder(&format!("@{}", fifo.display()), &fifo.display().to_string());

    // A file that includes itself, and files that include the next one ten times per level.
    let me = dir.path().join("self");
    std::fs::write(&me, format!("@{}\n", me.display()).repeat(10)).expect("write");
    refused_builder(&format!("@{}", me.display()), &me.display().to_string());
    for level in 0..8 {
        let next = dir.path().join(format!("level{}", level + 1));
        std::fs::write(
            dir.path().join(format!("level{level}")),
            format!("@{}\n", next.display()).repeat(10),
        )
        .expect("write");
    }
    refused_builder(
        &format!("@{}", dir.path().join("level0").display()),
        "level",
    );
    let big = dir.path().join("big");
    std::fs::write(&big, "# nothing but a comment\n".repeat(100_000)).expect("write");
    refused_builder(&format!("@{}", big.display()), &big.display().to_string());
}

// ----- 5. Ctrl-C in every phase, and two runs at once ----------------------------------------

/// Ctrl-C now, then: exit 130 within a bound far above "a second or two", nothing left.
fn ctrl_c_ends_it(lab: &Lab, run: &mut Background, phase: &str) {
    run.ctrl_c();
    let (code, took) = run.exit_within(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{phase}: {:#?}", run.seen);
    eprintln!("{phase}: exit 130 {took:?} after Ctrl-C");
    assert_nothing_left(lab);
}

#[test]
fn ctrl_c_while_probing_a_tarpit_builder() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    lab.set_fault(Fault::Tarpit);
    let mut run = Nixdispatch::on(&lab)
        .seasmoke()
        .args(["--connect-timeout", "300", "plan"])
        .attr("chain")
        .background();
    assert!(
        wait_for_process(&lab, &["ssh", "-M"], Duration::from_secs(60)),
        "the probe never started"
    );
    std::thread::sleep(Duration::from_millis(500));
    ctrl_c_ends_it(&lab, &mut run, "probe");
    lab.set_fault(Fault::None);
}

#[test]
fn ctrl_c_while_a_store_query_hangs() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let hung = builder_hangs_on(&lab, "--check-validity");
    // A long connect timeout: the query deadline (5x) is far away.
    let mut run = plan_chain_with_connect_timeout_60(&lab).background();
    run.wait_for_file(&hung, Duration::from_secs(60));
    ctrl_c_ends_it(&lab, &mut run, "store query");
}

#[test]
fn ctrl_c_while_evaluating() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // An evaluation that takes minutes of CPU and little memory.
    let flake = write_flake(
        &lab,
        "slow-eval",
        r#"{
  outputs = { self }: {
    packages.x86_64-linux.default = derivation {
      system = "x86_64-linux";
      name = "slow-eval";
      builder = "/bin/sh";
      n = toString (builtins.foldl' (acc: i: builtins.seq (builtins.length (builtins.genList (x: x) 2000)) (acc + 1)) 0 (builtins.genList (x: x) 5000000));
    };
  };
}
"#,
    );
    let mut run = Nixdispatch::on(&lab).args(["build", &flake]).background();
    // The first evaluation is the noop check's `nix build --max-jobs 0` (src/run/noop.rs).
    assert!(
        wait_for_process(
            &lab,
            &["nix", "build", "--max-jobs 0"],
            Duration::from_secs(60)
        ) || wait_for_process(&lab, &["nix", "show-derivation"], Duration::from_secs(5))
            || wait_for_process(&lab, &["nix", "derivation"], Duration::from_secs(5)),
        "the evaluation never started"
    );
    std::thread::sleep(Duration::from_secs(2));
    ctrl_c_ends_it(&lab, &mut run, "evaluation");
}

#[test]
fn ctrl_c_twice_while_building_ends_it() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mut run = Background::building_on_seasmoke(&lab, "slow");
    std::thread::sleep(Duration::from_secs(1));
    run.ctrl_c();
    std::thread::sleep(Duration::from_millis(100));
    ctrl_c_ends_it(&lab, &mut run, "build, second Ctrl-C");
}

#[test]
fn ctrl_c_while_activating() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let flake = home_flake(
        &lab,
        "slow-activation",
        "#!/bin/sh\necho 'activation starts'\n/bin/sleep 600\n",
    );
    let mut run = home_switch_locally(&lab, &flake).background();
    run.expect_line("activation starts", Duration::from_secs(90));
    ctrl_c_ends_it(&lab, &mut run, "activation");
}

#[test]
fn ctrl_c_while_pushing() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let hung = builder_hangs_on(&lab, "nix-daemon");
    let mut run = push_hello(&lab, &[]).background();
    run.wait_for_file(&hung, Duration::from_secs(90));
    std::thread::sleep(Duration::from_millis(500));
    ctrl_c_ends_it(&lab, &mut run, "push");
}

#[test]
fn a_builder_that_goes_silent_during_the_push_does_not_hold_the_run() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let mark = builder_pauses_on(&lab, "nix-daemon");
    let mut run = push_hello(&lab, &["--silent-timeout", "5"]).background();
    run.wait_for_file(&mark, Duration::from_secs(60));
    lab.set_fault(Fault::Stall);
    let (code, _) = run.exit_within(Duration::from_secs(90));
    assert_eq!(code, Some(0), "the build itself succeeded: {:#?}", run.seen);
    assert!(
        run.saw("nothing pushed to seasmoke") && run.saw("stopped answering"),
        "{:#?}",
        run.seen
    );
    lab.set_fault(Fault::None);
    assert_nothing_left(&lab);
}

/// `hello` built here and pushed to seasmoke, with more `flags` before `--progress plain`.
fn push_hello<'a>(lab: &'a Lab, flags: &[&str]) -> Nixdispatch<'a> {
    Nixdispatch::on(lab)
        .seasmoke()
        .args(["--mode", "local"])
        .args(flags)
        .plain()
        .args(["build", "--push"])
        .attr("hello")
}

#[test]
fn two_runs_at_once_do_not_disturb_each_other() {
    let Some(lab) = lab_with(|o| {
        o.fixtures = vec![Fixture::slow("slowa", 600), Fixture::slow("slowb", 6)];
        o.builder_max_jobs = 4;
    }) else {
        return;
    };
    // The second starts once the first has opened the fresh client store: two nix 2.8
    // processes creating its database at once can fail with "SQLite database ... is busy".
    let mut first = Background::building_on_seasmoke(&lab, "slowa");
    let mut second = Background::building_on_seasmoke(&lab, "slowb");
    first.ctrl_c();
    let (code, _) = first.exit_within(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{:#?}", first.seen);
    let (code, _) = second.exit_within(Duration::from_secs(120));
    assert_eq!(code, Some(0), "the other run went on: {:#?}", second.seen);
    assert!(
        !second.saw("finishing the build locally"),
        "{:#?}",
        second.seen
    );
    assert_nothing_left(&lab);
}

#[test]
fn ctrl_c_on_a_terminal_ends_the_run_and_leaves_the_terminal_clean() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    let inner = Nixdispatch::on(&lab)
        .seasmoke()
        .args(["--progress", "bar", "build"])
        .attr("slow")
        .command();
    let mut words: Vec<String> = vec![inner.get_program().to_string_lossy().into_owned()];
    words.extend(inner.get_args().map(|a| a.to_string_lossy().into_owned()));
    let line = shlex::try_join(words.iter().map(String::as_str)).expect("quote");
    // script(1) gives the run a real terminal; a 0x03 byte typed into it is a real Ctrl-C.
    let mut cmd = Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"]);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let Terminal {
        mut child,
        mut stdin,
        screen: rx,
    } = Terminal::start(cmd);
    let mut screen = Vec::new();
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&screen).contains("slow") {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{}",
            String::from_utf8_lossy(&screen)
        );
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(100)) {
            screen.extend(bytes);
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    use std::io::Write;
    stdin.write_all(&[3]).expect("type Ctrl-C");
    stdin.flush().expect("flush");
    let t1 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if t1.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!(
                "still running 20 s after Ctrl-C: {}",
                String::from_utf8_lossy(&screen)
            );
        }
        screen.extend(rx.try_iter().flatten());
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(200));
    screen.extend(rx.try_iter().flatten());
    let text = String::from_utf8_lossy(&screen);
    assert_eq!(status.code(), Some(130), "{text}");
    // The cursor is not left hidden, and the last thing drawn is the ending, not a bar.
    let hidden = text.rfind("\u{1b}[?25l");
    let shown = text.rfind("\u{1b}[?25h");
    assert!(
        hidden.is_none() || shown > hidden,
        "cursor left hidden: {text:?}"
    );
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default();
    assert!(
        last.contains("interrupted"),
        "last line: {last:?}\n{text:?}"
    );
    assert_nothing_left(&lab);
}

#[test]
fn ctrl_c_while_evaluation_builds_an_import_leaves_nothing() {
    let Some(lab) = lab_or_skip(LabOptions::default()) else {
        return;
    };
    // Import from derivation: evaluating the package first builds (here) a derivation that
    // sleeps; nix starts that builder in a session of its own, with a clean environment, so it
    // is found by its unique sleep time.
    let tag = format!(
        "600.{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let flake = write_flake(
        &lab,
        "ifd",
        &format!(
            r#"{{
  outputs = {{ self }}: let
    system = "x86_64-linux";
    slow = derivation {{
      inherit system;
      name = "ifd-slow";
      builder = "/bin/sh";
      args = [ "-c" "/bin/sleep {tag}; echo '\"x\"' > $out" ];
    }};
  in {{
    packages.${{system}}.default = derivation {{
      inherit system;
      name = "after-ifd";
      builder = "/bin/sh";
      x = import slow;
    }};
  }};
}}
"#
        ),
    );
    let sleeping = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                std::fs::read(e.path().join("cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains(&tag))
                    .unwrap_or(false)
            })
    };
    let mut run = Nixdispatch::on(&lab).args(["build", &flake]).background();
    let t0 = Instant::now();
    while !sleeping() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the import's build never started: {:#?}",
            run.seen
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    ctrl_c_ends_it(&lab, &mut run, "evaluation building an import");
    let t1 = Instant::now();
    while sleeping() {
        assert!(
            t1.elapsed() < Duration::from_secs(5),
            "the import's builder was left running"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_silent_timeout_that_is_not_a_number_of_seconds_is_exit_2() {
    for bad in ["0", "-5", "nan"] {
        let mut cmd = Command::new(bin());
        cmd.arg(format!("--silent-timeout={bad}"))
            .args(["plan", "."]);
        let run = run_limited(cmd, Duration::from_secs(30));
        assert_eq!(run.code, Some(2), "{bad}: {run:?}");
        assert!(run.stderr.contains("--silent-timeout"), "{bad}: {run:?}");
    }
}
