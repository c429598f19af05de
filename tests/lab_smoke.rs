//! Smoke tests of the two-host lab (nixdispatch-lab): real sshd, real nix, real stores.
//! They need root; without it they skip with a printed reason, except with CI=true where they fail.

use std::process::Output;
use std::time::{Duration, Instant};

use nixdispatch_lab::{skip_unless_root, ClientNix, Lab, LabOptions};

fn run(mut c: std::process::Command) -> Output {
    let o = c.output().expect("spawn");
    o
}

fn text(o: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn ssh_reaches_seasmoke_and_remote_build_from_nix_2_8() {
    if skip_unless_root("ssh_reaches_seasmoke_and_remote_build_from_nix_2_8") {
        return;
    }
    let t0 = Instant::now();
    let lab = Lab::start(LabOptions::default()).expect("lab starts");
    eprintln!("Lab::start took {:?}", t0.elapsed());

    let mut ssh = lab.client_command(ClientNix::V2_8, "ssh");
    ssh.args([
        "-F",
        &lab.ssh_config().to_string_lossy(),
        "seasmoke",
        "nix --version; hostname",
    ]);
    let o = run(ssh);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("2.26.3") && out.contains("seasmoke"), "{out}");

    let mut b = lab.client_command(ClientNix::V2_8, "nix");
    b.args([
        "build",
        "--no-link",
        "--json",
        "--max-jobs",
        "0",
        "--builders",
    ])
    .arg(lab.builder_spec())
    .arg(lab.flake_ref("chain"));
    let t1 = Instant::now();
    let o = run(b);
    eprintln!("remote build took {:?}", t1.elapsed());
    assert!(o.status.success(), "{}", text(&o));
    let _ = Duration::ZERO;
}
