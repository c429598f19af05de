//! Smoke tests of the two-host lab (`nixdispatch-lab`): real sshd, real nix, real stores, real
//! HTTP. Each test starts its own lab; they run in parallel.
//!
//! They need root. Without root they skip with a printed reason, except with `CI=true`, where
//! they fail.

mod common;

use common::{run_output, Background};
use std::io::Read;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nixdispatch_lab::{ClientNix, Fault, Fixture, Lab, LabOptions};

fn run(c: Command) -> Output {
    run_output(c, Duration::from_secs(120)).0
}

fn show(o: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `ssh seasmoke CMD` from the 2.8 client, with the lab's ssh config.
fn ssh(lab: &Lab, extra: &[&str], remote: &str) -> Command {
    let mut c = lab.client_command(ClientNix::V2_8, "ssh");
    c.arg("-F")
        .arg(lab.ssh_config())
        .args(extra)
        .arg("seasmoke")
        .arg(remote);
    c
}

/// The `out` paths in the output of `nix build --json` (Nix 2.8 and 2.26 agree on this shape).
fn out_paths(json: &str) -> Vec<String> {
    json.split("\"out\":\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(String::from)
        .collect()
}

/// The lab, or `None` when the test is skipped (see [`common::skipped`]).
fn start(opts: LabOptions) -> Option<Lab> {
    if common::skipped() {
        return None;
    }
    let t0 = Instant::now();
    let lab = Lab::start(opts).expect("the lab starts (run scripts/lab-deps first)");
    eprintln!("Lab::start: {:?} ({})", t0.elapsed(), lab.dir().display());
    Some(lab)
}

#[test]
fn seasmoke_answers_ssh_through_the_proxy_and_drop_cleans_up() {
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    let dir = lab.dir().to_path_buf();

    let o = run(ssh(&lab, &[], "nix --version; hostname"));
    assert!(o.status.success(), "{}", show(&o));
    assert!(
        stdout(&o).contains("nix (Nix) 2.26.3") && stdout(&o).contains("seasmoke"),
        "{}",
        show(&o)
    );
    assert!(lab.builder_connections() >= 1, "ssh went through the proxy");

    // Both clients reach the builder's store with nix itself (NIX_SSHOPTS carries -F).
    for v in ClientNix::ALL {
        let mut c = lab.client_command(v, "nix");
        c.args(["store", "ping", "--store", "ssh-ng://seasmoke"]);
        let o = run(c);
        // Nix 2.8 prints this on stderr, 2.26 on stdout.
        let both = stdout(&o) + &stderr(&o);
        assert!(o.status.success(), "{v:?}: {}", show(&o));
        assert!(both.contains("Version: 2.26.3"), "{v:?}: {}", show(&o));
        if v == ClientNix::V2_26 {
            assert!(both.contains("Trusted: 1"), "{}", show(&o));
        }
    }

    // A client process still running when the lab goes: Drop ends it too.
    let mut straggler = lab.client_command(ClientNix::V2_26, "sleep");
    let mut straggler = straggler.arg("600").spawn().expect("spawn sleep");

    let t0 = Instant::now();
    drop(lab);
    eprintln!("Lab drop: {:?}", t0.elapsed());
    assert!(!dir.exists(), "lab dir removed");
    let marker = format!("NIXDISPATCH_LAB={}", dir.display());
    let leftovers: Vec<_> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("environ"))
                .map(|env| env.split(|&b| b == 0).any(|x| x == marker.as_bytes()))
                .unwrap_or(false)
        })
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "processes left: {leftovers:?}");
    let gone = straggler.try_wait().expect("wait");
    assert!(gone.is_some(), "the client process outlived the lab");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&*dir.to_string_lossy()), "mounts left");
}

#[test]
fn remote_build_on_seasmoke_from_both_clients() {
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        // A fresh nonce per client: each client really builds on seasmoke.
        lab.renew_nonce().expect("new nonce");
        let mut c = lab.client_command(v, "nix");
        // 2.26 gets the machines line that pins seasmoke's host key (base64, last field).
        let spec = match v {
            ClientNix::V2_8 => lab.builder_spec(),
            ClientNix::V2_26 | ClientNix::V2_34 => lab.builder_spec_with_host_key(),
        };
        c.args(["build", "--no-link", "--json", "-L", "--max-jobs", "0"])
            .arg("--builders")
            .arg(spec)
            .arg(lab.flake_ref("chain"));
        let t0 = Instant::now();
        let o = run(c);
        eprintln!("{v:?}: remote build of a 3-chain: {:?}", t0.elapsed());
        assert!(o.status.success(), "{v:?}: {}", show(&o));
        let err = stderr(&o);
        assert!(err.contains("on 'ssh-ng://seasmoke'"), "{v:?}: {err}");
        let paths = out_paths(&stdout(&o));
        assert_eq!(paths.len(), 1, "{paths:?}");
        assert!(paths[0].ends_with("-chain-3"), "{paths:?}");
        assert!(lab.builder_has(&paths[0]), "{v:?}: built on seasmoke");
        assert!(lab.client_has(v, &paths[0]), "{v:?}: copied back");
        assert!(
            !lab.client_has(other(v), &paths[0]),
            "client stores are separate"
        );
    }
}

fn other(v: ClientNix) -> ClientNix {
    match v {
        ClientNix::V2_8 => ClientNix::V2_26,
        ClientNix::V2_26 | ClientNix::V2_34 => ClientNix::V2_8,
    }
}

#[test]
fn clients_fetch_from_the_http_cache() {
    let Some(lab) = start(LabOptions {
        http_cache: true,
        ..LabOptions::default()
    }) else {
        return;
    };
    let pushed = lab.push_to_cache(&lab.flake_ref("wide")).expect("push");
    assert_eq!(pushed.len(), 1);
    for v in ClientNix::ALL {
        let mut c = lab.client_command(v, "nix");
        // No builders, no local builds: it can only come from the cache.
        c.args(["build", "--no-link", "--json", "--max-jobs", "0"])
            .arg(lab.flake_ref("wide"));
        let o = run(c);
        assert!(o.status.success(), "{v:?}: {}", show(&o));
        assert_eq!(out_paths(&stdout(&o)), pushed);
        assert!(lab.client_has(v, &pushed[0]), "{v:?}");
        assert!(
            stderr(&o).contains(&lab.cache_url()) || !stderr(&o).contains("building"),
            "{}",
            show(&o)
        );
    }
    let log = lab.cache_requests();
    let hash = &pushed[0]["/nix/store/".len()..][..32];
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("/{hash}.narinfo 200"))),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("/nar/")), "{log:?}");
}

#[test]
fn each_fault_is_really_seen() {
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    let limit = Duration::from_secs(20);

    lab.set_fault(Fault::Down);
    let (o, _) = run_output(ssh(&lab, &[], "true"), limit);
    assert!(
        !o.status.success() && stderr(&o).contains("Connection refused"),
        "{}",
        show(&o)
    );

    lab.set_fault(Fault::Tarpit);
    let (o, took) = run_output(ssh(&lab, &["-o", "ConnectTimeout=2"], "true"), limit);
    assert!(!o.status.success(), "{}", show(&o));
    assert!(took < Duration::from_secs(10), "bounded: {took:?}");
    assert!(stderr(&o).contains("timed out"), "{}", show(&o));

    lab.set_fault(Fault::HostKeyChanged);
    let (o, _) = run_output(ssh(&lab, &[], "true"), limit);
    assert!(
        !o.status.success() && stderr(&o).contains("Host key verification failed"),
        "{}",
        show(&o)
    );
    // Nix sees it too, also when the machines line pins the real host key.
    let mut c = lab.client_command(ClientNix::V2_26, "nix");
    c.args(["store", "ping", "--store", "ssh-ng://seasmoke"]);
    let (o, _) = run_output(c, limit);
    assert!(!o.status.success(), "{}", show(&o));

    lab.set_fault(Fault::AuthRefused);
    let (o, _) = run_output(ssh(&lab, &[], "true"), limit);
    assert!(
        !o.status.success() && stderr(&o).contains("Permission denied"),
        "{}",
        show(&o)
    );

    lab.set_fault(Fault::None);
    let (o, _) = run_output(ssh(&lab, &[], "true"), limit);
    assert!(o.status.success(), "recovered: {}", show(&o));

    // The builder killed in the middle of a build: the build fails, the connection drops.
    let mut c = lab.client_command(ClientNix::V2_8, "nix");
    c.args(["build", "--no-link", "-L", "--max-jobs", "0", "--builders"])
        .arg(lab.builder_spec())
        .arg(lab.flake_ref("slow"));
    let mut build = Background::start(c);
    // Wait until seasmoke is building (the slow fixture prints "tick N" every second).
    assert!(
        build.wait_for("tick 1", Duration::from_secs(60)),
        "the build never ticked on seasmoke: {:#?}",
        build.seen
    );
    let killed_at = Instant::now();
    lab.kill_builder();
    assert!(!lab.builder_running());
    let status = build.exit_by(killed_at + Duration::from_secs(30));
    let log = build.seen.join("\n");
    let Some(status) = status else {
        panic!("nix build did not notice the builder died within 30 s:\n{log}");
    };
    eprintln!("nix build ended {:?} after the kill", killed_at.elapsed());
    assert!(!status.success(), "{log}");
    let (o, _) = run_output(ssh(&lab, &["-o", "ConnectTimeout=2"], "true"), limit);
    assert!(!o.status.success(), "killed: {}", show(&o));

    lab.restart_builder().expect("restart");
    let (o, _) = run_output(ssh(&lab, &[], "true"), limit);
    assert!(o.status.success(), "restarted: {}", show(&o));
}

#[test]
fn latency_proxy_adds_the_delay() {
    let delay = Duration::from_millis(100);
    let Some(lab) = start(LabOptions {
        latency: delay,
        ..LabOptions::default()
    }) else {
        return;
    };
    // The SSH banner crosses the proxy once (server to client).
    let t0 = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", lab.builder_port())).expect("connect");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).expect("banner");
    let banner = t0.elapsed();
    assert_eq!(&buf, b"SSH-");
    assert!(banner >= delay, "banner after {banner:?}");

    // A whole ssh session takes several round trips, each at least two delays.
    let (o, with_delay) = run_output(ssh(&lab, &[], "true"), Duration::from_secs(30));
    assert!(o.status.success(), "{}", show(&o));
    assert!(with_delay > delay * 6, "ssh with delay: {with_delay:?}");

    lab.set_latency(Duration::ZERO);
    let (o, without) = run_output(ssh(&lab, &[], "true"), Duration::from_secs(30));
    assert!(o.status.success(), "{}", show(&o));
    eprintln!("ssh seasmoke true: {with_delay:?} with {delay:?} each way, {without:?} without");
    assert!(without < with_delay);
}

#[test]
fn bandwidth_cap_holds_every_byte_to_its_rate() {
    let Some(lab) = start(LabOptions {
        bandwidth: Some(250_000),
        ..LabOptions::default()
    }) else {
        return;
    };
    assert_eq!(lab.bandwidth(), Some(250_000));
    // 1 MB from seasmoke through a 250 kB/s link cannot arrive in less than 4 s; the cap is a
    // floor the proxy guarantees, so this asserts the lab's behaviour, not a speed.
    let remote = "head -c 1000000 /dev/zero";
    let (o, capped) = run_output(ssh(&lab, &[], remote), Duration::from_secs(60));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(o.stdout.len(), 1_000_000);
    assert!(
        capped >= Duration::from_secs(4),
        "1 MB at 250 kB/s in {capped:?}"
    );

    lab.set_bandwidth(None);
    let (o, free) = run_output(ssh(&lab, &[], remote), Duration::from_secs(60));
    assert!(o.status.success(), "{}", show(&o));
    assert_eq!(o.stdout.len(), 1_000_000);
    eprintln!("1 MB from seasmoke: {capped:?} at 250 kB/s, {free:?} unlimited");
    assert!(free < capped);
}

#[test]
fn nh_home_and_os_switch_activate_in_the_2_26_client() {
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    let mut c = lab.client_command(ClientNix::V2_26, "nh");
    c.args(["home", "switch", "--no-nom", "-c", "root@vermax"])
        .arg(lab.flake());
    let o = run(c);
    assert!(o.status.success(), "{}", show(&o));
    let home = lab.marker("home-activated").expect("home marker");
    assert!(home.ends_with("-home-manager-generation"), "{home}");
    assert!(lab.client_has(ClientNix::V2_26, &home));

    let mut c = lab.client_command(ClientNix::V2_26, "nh");
    c.args(["os", "switch", "--no-nom", "-H", "vermax"])
        .arg(lab.flake());
    let o = run(c);
    assert!(o.status.success(), "{}", show(&o));
    let test = lab.marker("os-test").expect("os-test marker");
    let boot = lab.marker("os-boot").expect("os-boot marker");
    assert_eq!(test, boot);
    assert!(test.contains("-nixos-system-vermax"), "{test}");
}

#[test]
fn a_signing_builder_serves_as_a_substituter() {
    // With a custom fixture: two leaves that sleep 0.2 s and write 2 KiB each, under one root.
    let Some(lab) = start(LabOptions {
        builder_signs: true,
        fixtures: vec![Fixture::wide("pair", 2).build_secs(0.2).output_bytes(2048)],
        ..LabOptions::default()
    }) else {
        return;
    };
    let built = lab
        .build_on_builder(&lab.flake_ref("pair"))
        .expect("seed seasmoke");
    // require-sigs stays on: this only works because seasmoke signed what it built.
    let mut c = lab.client_command(ClientNix::V2_26, "nix");
    c.args(["build", "--no-link", "--json", "--max-jobs", "0"])
        .args(["--substituters", "ssh-ng://seasmoke"])
        .arg(lab.flake_ref("pair"));
    let o = run(c);
    assert!(o.status.success(), "{}", show(&o));
    assert!(!stderr(&o).contains("building"), "{}", show(&o));
    assert_eq!(out_paths(&stdout(&o)), built);
    assert!(lab.client_has(ClientNix::V2_26, &built[0]));
    // The closure came along: both leaves, with their 2 KiB of data.
    let mut c = lab.client_command(ClientNix::V2_26, "nix-store");
    c.args(["-q", "--references", &built[0]]);
    let o = run(c);
    let leaves: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(leaves.len(), 2, "{}", show(&o));
    for leaf in &leaves {
        assert!(leaf.contains("-pair-leaf-"), "{leaf}");
        let base = leaf.trim_start_matches("/nix/store/");
        let data = lab
            .client_nix_dir(ClientNix::V2_26)
            .join("store")
            .join(base)
            .join("data");
        assert_eq!(
            std::fs::metadata(&data).map(|m| m.len()).ok(),
            Some(2048),
            "{leaf}"
        );
    }
}

#[test]
fn client_commands_are_the_program_itself_and_get_signals() {
    use std::os::unix::process::ExitStatusExt;
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    for v in ClientNix::ALL {
        let mut c = lab.client_command(v, "sleep");
        let mut child = c.arg("30").spawn().expect("spawn");
        let pid = child.id();
        // The wrapper scripts exec all the way down: the pid becomes `sleep` itself.
        let t0 = Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "{v:?}: pid {pid} never became sleep"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let o = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .output()
            .expect("kill");
        assert!(o.status.success());
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(2), "{v:?}: {status}");
    }
}

#[test]
fn the_nixdispatch_binary_runs_in_both_clients() {
    let Some(lab) = start(LabOptions::default()) else {
        return;
    };
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_nixdispatch"));
    for v in ClientNix::ALL {
        let mut c = lab.nixdispatch(v, bin);
        c.arg("--version");
        let o = run(c);
        assert!(o.status.success(), "{v:?}: {}", show(&o));
        assert!(stdout(&o).contains("nixdispatch"), "{v:?}: {}", show(&o));
    }
}
