//! The command line itself: what CONTRACT.md promises before any nix or ssh is involved.

mod common;

use std::process::{Command, Output};

fn nixdispatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixdispatch"))
        .args(args)
        .env_remove("NIX_SSHOPTS")
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_contract_command() {
    let out = nixdispatch(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in common::CONTRACT_COMMANDS {
        assert!(
            text.contains(&format!("  {cmd} ")),
            "--help lacks {cmd}:\n{text}"
        );
    }
    for opt in [
        "--builder",
        "--mode",
        "--connect-timeout",
        "--via",
        "--json",
        "--progress",
        "--verbose",
        "--quiet",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}");
    }
}

#[test]
fn every_subcommand_has_help() {
    for cmd in common::CONTRACT_COMMANDS {
        let out = nixdispatch(&[cmd, "--help"]);
        assert!(
            out.status.success(),
            "{cmd} --help failed: {}",
            stderr(&out)
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(nixdispatch(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        nixdispatch(&["--mode", "sideways", "probe"]).status.code(),
        Some(2)
    );
    assert_eq!(nixdispatch(&["build"]).status.code(), Some(2));
}

#[test]
fn committed_completions_are_current() {
    for (shell, file) in [
        ("bash", "nixdispatch.bash"),
        ("zsh", "_nixdispatch"),
        ("fish", "nixdispatch.fish"),
    ] {
        let out = nixdispatch(&["completions", shell]);
        assert!(out.status.success());
        let committed = std::fs::read(format!("{}/completions/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("completions are committed");
        assert!(
            out.stdout == committed,
            "completions/{file} is stale: run `just completions` and commit"
        );
    }
}
