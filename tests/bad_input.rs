//! Bad input and hostile surroundings, at the command line: one clear line and exit 2 with
//! nothing run for what a user typed wrong; no panic for a closed pipe; a few MiB of memory for
//! a gigabyte of garbage; no secret and no terminal control on the way out.

mod common;

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nixdispatch")
}

/// nixdispatch with `args`, its ssh isolated from the machine's config, no stdin.
fn nixdispatch(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env("NIX_SSHOPTS", "-F /dev/null -p 1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    cmd
}

fn run(mut cmd: Command) -> Output {
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the contract for bad input: exit 2, one line on stderr naming `what`, no panic.
fn assert_bad_input(out: &Output, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(what), "{what:?} not named in: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains('\u{1b}'), "raw escape in: {err:?}");
}

/// A pipe whose reading end is already closed: any write to the other end fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: pipe just opened both descriptors and nothing else owns them.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    writer
}

/// Runs `cmd` with stdout on a pipe nobody reads (`| head -0`), stdin from `input`.
fn with_closed_stdout(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = common::spawn(
        &mut cmd,
        Stdio::piped(),
        Stdio::from(closed_pipe()),
        Stdio::piped(),
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let log = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nix-2.26-local-chain.log"),
    )
    .unwrap_or_else(|_| b"@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"hi\"}\n".to_vec());
    let unreachable = "ssh://nixdispatch-test@127.0.0.1";
    let cases: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["completions", "bash"], b""),
        (vec!["--builder", unreachable, "probe"], b""),
        (vec!["--json", "--builder", unreachable, "probe"], b""),
        (vec!["--json", "monitor"], &log),
    ];
    for (args, input) in cases {
        let out = with_closed_stdout(nixdispatch(&args), input);
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        assert!(!err.contains("Broken pipe"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
        if args[args.len() - 1] != "monitor" {
            assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
            assert_eq!(err, "", "{args:?}");
        }
    }
}

#[test]
fn option_shaped_hosts_are_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("ran");
    for spec in [
        format!("ssh://-oProxyCommand=touch${{IFS}}{}", marker.display()),
        format!(
            "ssh-ng://-oProxyCommand=touch${{IFS}}{}@host",
            marker.display()
        ),
        "-oProxyCommand=true".to_string(),
    ] {
        let out = run(nixdispatch(&[&format!("--builder={spec}"), "probe"]));
        assert_bad_input(&out, "--builder");
        assert!(!marker.exists(), "{spec} ran ssh's ProxyCommand");
    }
}

#[test]
fn control_characters_and_odd_whitespace_in_specs_are_refused() {
    for spec in [
        "ssh://host\u{1b}]0;title\u{7}",
        "ssh://ho\u{7f}st",
        "ssh://ho\u{a0}st x86_64-linux",
        "ssh://host x86_64-linux\u{1b}[2J",
    ] {
        let out = run(nixdispatch(&["--builder", spec, "probe"]));
        assert_bad_input(&out, "--builder");
    }
}

#[test]
fn unknown_store_schemes_are_refused() {
    for spec in ["foo://host x86_64-linux", "sssh://host", "ssh+ng://host"] {
        let out = run(nixdispatch(&["--builder", spec, "probe"]));
        assert_bad_input(&out, "scheme");
    }
}

#[test]
fn missing_or_unreadable_key_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-key");
    let spec = format!("ssh://host x86_64-linux {}", missing.display());
    let out = run(nixdispatch(&["--builder", &spec, "probe"]));
    assert_bad_input(&out, "no-such-key");
    // A directory is no key file (as root, file modes do not stop reading).
    let spec = format!("ssh://host x86_64-linux {}", dir.path().display());
    let out = run(nixdispatch(&["--builder", &spec, "probe"]));
    assert_bad_input(&out, &dir.path().display().to_string());
}

#[test]
fn nix_missing_from_path_is_one_line_and_exit_2() {
    let empty = tempfile::tempdir().expect("tempdir");
    for args in [&["plan", "."][..], &["probe"], &["build", "."]] {
        let mut cmd = nixdispatch(args);
        cmd.env("PATH", empty.path());
        let out = run(cmd);
        assert_bad_input(&out, "nix is not on PATH");
    }
}

#[test]
fn an_installable_that_does_not_evaluate_is_exit_2() {
    if std::process::Command::new("nix")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "nix is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("flake.nix"),
        "{ outputs = _: { broken = throw \"no such thing\"; }; }",
    )
    .expect("write");
    for installable in [
        format!("path:{}#broken", dir.path().display()),
        format!("path:{}#nothing", dir.path().display()),
        "path:/nonexistent/nowhere#x".to_string(),
    ] {
        let mut cmd = nixdispatch(&["--builder", "", "plan", &installable]);
        cmd.env("NIX_CONFIG", "substituters =");
        let out = run(cmd);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{installable}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

/// Peak resident memory of a finished child, in KiB (wait4's rusage).
fn wait_peak_kib(child: &mut std::process::Child) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid is our own unreaped child; status and usage are valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(
        pid,
        child.id() as i32,
        "wait4: {}",
        std::io::Error::last_os_error()
    );
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}

/// Writes about `total` bytes of garbage in the shapes that grow a naive monitor: a line
/// without end, activities started and never stopped (each on its own builder), substitutions
/// from ever new caches, and long plain lines.
fn garbage(out: &mut impl Write, total: usize) -> std::io::Result<()> {
    let mut written = 0;
    let chunk = vec![b'x'; 1 << 20];
    // 64 MiB on one line.
    for _ in 0..64 {
        out.write_all(&chunk)?;
    }
    out.write_all(b"\n")?;
    written += 64 << 20;
    let pad = "p".repeat(2000);
    let mut id = 1u64;
    while written < total {
        let mut block = String::with_capacity(1 << 20);
        while block.len() < (1 << 20) {
            id += 1;
            let drv = format!("/nix/store/{:0>32}-{pad}{id}.drv", id % 7);
            block.push_str(&format!(
                "@nix {{\"action\":\"start\",\"id\":{id},\"level\":3,\"type\":105,\"text\":\"\",\"fields\":[\"{drv}\",\"ssh://h{id}-{pad}\",1,1]}}\n"
            ));
            block.push_str(&format!(
                "@nix {{\"action\":\"result\",\"id\":{id},\"type\":101,\"fields\":[\"{pad}{pad}{pad}\"]}}\n"
            ));
            id += 1;
            block.push_str(&format!(
                "@nix {{\"action\":\"start\",\"id\":{id},\"level\":3,\"type\":108,\"text\":\"\",\"fields\":[\"/nix/store/{:0>32}-x\",\"https://c{id}.invalid/{pad}\"]}}\n@nix {{\"action\":\"stop\",\"id\":{id}}}\n",
                id % 5
            ));
            block.push_str(&format!("plain {pad} {id}\n"));
        }
        out.write_all(block.as_bytes())?;
        written += block.len();
    }
    // A last line cut off in the middle of its JSON.
    out.write_all(b"@nix {\"action\":\"msg\",\"level\":0,\"msg\":\"cut")
}

#[test]
fn a_flood_of_garbage_on_monitor_costs_a_few_mib() {
    let total = 384 << 20;
    let mut child = common::spawn(
        &mut nixdispatch(&["--progress", "plain", "-v", "monitor"]),
        Stdio::piped(),
        Stdio::null(),
        Stdio::null(),
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let started = Instant::now();
    let writer = std::thread::spawn(move || garbage(&mut stdin, total));
    let (code, peak_kib) = wait_peak_kib(&mut child);
    let _ = writer.join();
    eprintln!(
        "monitor read {} MiB of garbage in {:?}, peak RSS {} KiB",
        total >> 20,
        started.elapsed(),
        peak_kib
    );
    assert!(code == 0 || code == 1, "exit {code}");
    // Generous: the program itself is ~10 MiB; the flood must not add hundreds.
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
}

#[test]
fn oversized_and_truncated_log_lines_on_monitor_are_named_not_fatal() {
    let mut input = Vec::new();
    input.extend_from_slice(b"@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"");
    input.extend(std::iter::repeat_n(b'a', 2 << 20));
    input.extend_from_slice(b"\"}\n");
    input.extend(std::iter::repeat_n(b'b', 1 << 20));
    input.extend_from_slice(b"\nafter the long ones\n@nix {\"action\":\"msg\",\"lev");
    let mut child = common::spawn(
        &mut nixdispatch(&["--progress", "plain", "monitor"]),
        Stdio::piped(),
        Stdio::piped(),
        Stdio::piped(),
    );
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    let status = child.wait().expect("wait");
    let _ = writer.join();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("after the long ones"), "{err}");
    assert!(err.contains("2 log line(s) longer than"), "{err}");
    assert!(
        err.lines().all(|l| l.len() < 8192),
        "a line of megabytes was shown"
    );
    assert!(
        err.contains("@nix {\"action\":\"msg\",\"lev"),
        "the cut last line is shown: {err}"
    );
}

#[test]
fn secrets_never_reach_the_output() {
    let log = concat!(
        "@nix {\"action\":\"msg\",\"level\":1,\"msg\":\"warning: 'https://alice:HUNTER2@cache.example' does not appear to be a binary cache\"}\n",
        "ssh: --option access-tokens github.com=ghp_TOKEN1\n",
    );
    for args in [
        &["--progress", "plain", "monitor"][..],
        &["--json", "monitor"],
        &["--progress", "none", "monitor"],
    ] {
        let mut child = common::spawn(
            &mut nixdispatch(args),
            Stdio::piped(),
            Stdio::piped(),
            Stdio::piped(),
        );
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(log.as_bytes()).expect("write");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(
            !all.contains("HUNTER2") && !all.contains("ghp_TOKEN1"),
            "{args:?}: {all}"
        );
    }
    // A credential in a builder spec, and -vv tracing of everything.
    let out = run(nixdispatch(&[
        "-vv",
        "--builder",
        "ssh://alice:HUNTER2@127.0.0.1",
        "probe",
    ]));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!all.contains("HUNTER2"), "{all}");
}

#[test]
fn secrets_in_nix_args_stay_out_of_verbose_logs_and_nix_messages() {
    if nixdispatch_lab::skip_unless_root("secrets_in_nix_args_stay_out_of_verbose_logs") {
        return;
    }
    let lab = common::lab(nixdispatch_lab::LabOptions::default());
    let spec = lab.builder_spec();
    let inst = lab.flake_ref("hello");
    let run = common::nixdispatch(
        &lab,
        nixdispatch_lab::ClientNix::V2_8,
        &[
            "-vv",
            "--builder",
            &spec,
            "build",
            &inst,
            "--",
            "--no-link",
            "--option",
            "access-tokens",
            "github.com=ghp_TOKEN1",
            "--option",
            "extra-substituters",
            "http://alice:HUNTER2@127.0.0.1:1",
        ],
        common::BOUND,
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("access-tokens"),
        "the argv was not logged: {run:?}"
    );
    assert!(
        !all.contains("ghp_TOKEN1") && !all.contains("HUNTER2"),
        "{run:?}"
    );
}
