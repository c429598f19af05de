//! `nixdispatch monitor` end to end: the real binary reading recorded nix logs on stdin.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn data(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

fn recordings() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data(""))
        .unwrap_or_else(|e| panic!("{}: {e}", data("").display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "log"));
    files.sort();
    assert!(!files.is_empty(), "no recordings in {}", data("").display());
    files
}

/// The bytes of the recording (or written log) at `path`; a missing or empty one fails the
/// test (a test fed nothing would pass for nothing).
fn recording(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    bytes
}

/// Runs `nixdispatch monitor ARGS` with `stdin` as its standard input.
fn monitor(stdin: Stdio, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nixdispatch"))
        .arg("monitor")
        .args(args)
        .stdin(stdin)
        .env_remove("NO_COLOR")
        .output()
        .unwrap_or_else(|e| panic!("cannot run nixdispatch: {e}"))
}

fn monitor_file(path: &Path, args: &[&str]) -> Output {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let len = file.metadata().map_or(0, |m| m.len());
    assert!(len > 0, "{} is empty", path.display());
    monitor(Stdio::from(file), args)
}

/// `nixdispatch ARGS monitor` reading the recording `tests/data/NAME`.
fn recorded(name: &str, args: &[&str]) -> Output {
    monitor_file(&data(name), args)
}

/// [`recorded`] with `--progress plain`, which must exit with `code` (what it drew shown if
/// not): what it drew.
fn plain_exit(name: &str, code: i32) -> String {
    let out = recorded(name, &["--progress", "plain"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    stderr
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn json_lines(output: &Output) -> Vec<serde_json::Value> {
    text(&output.stdout)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line: {line}: {e}"))
        })
        .collect()
}

#[test]
fn plain_output_of_a_local_chain() {
    for file in ["nix-2.8-build-chain.log", "nix-2.26-build-chain.log"] {
        let out = monitor_file(&data(file), &["--progress", "plain"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{file}: {stderr}");
        assert!(out.stdout.is_empty(), "{file}: plain output goes to stderr");
        assert!(
            !stderr.contains('\u{1b}'),
            "{file}: escape codes in plain output:\n{stderr}"
        );
        for expected in [
            "building nd-chain-a locally",
            "built nd-chain-b locally in",
            "built 3 derivations: 3 locally",
            "done in",
        ] {
            assert!(
                stderr.contains(expected),
                "{file}: no {expected:?} in:\n{stderr}"
            );
        }
    }
}

#[test]
fn failed_build_exits_1_with_its_log() {
    for file in ["nix-2.8-build-fail.log", "nix-2.26-build-fail.log"] {
        let out = monitor_file(&data(file), &["--progress", "plain"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "{file}: escape codes in plain output:\n{stderr}"
        );
        assert!(
            stderr.contains("nd-fail> fail: error: something went wrong"),
            "{file}:\n{stderr}"
        );
        assert!(
            stderr.contains("failed with exit code 1"),
            "{file}:\n{stderr}"
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert_eq!(
            last,
            "nixdispatch: error: the monitored nix run failed: the build of nd-fail failed"
        );
    }
}

#[test]
fn json_lines_end_with_the_summary() {
    for path in recordings() {
        let name = path.display().to_string();
        let out = monitor_file(&path, &["--json"]);
        let events = json_lines(&out);
        let summary = events.last().unwrap_or_else(|| panic!("{name}: no output"));
        assert_eq!(summary["event"], "summary", "{name}");
        assert_eq!(
            events.iter().filter(|e| e["event"] == "summary").count(),
            1,
            "{name}"
        );
        assert!(events.iter().all(|e| e["event"].is_string()), "{name}");
        let ok = summary["ok"]
            .as_bool()
            .unwrap_or_else(|| panic!("{name}: no ok"));
        assert_eq!(out.status.code(), Some(if ok { 0 } else { 1 }), "{name}");
    }
}

#[test]
fn json_summary_of_a_substitution() {
    let out = recorded("nix-2.26-substitute-http.log", &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let events = json_lines(&out);
    let summary = events.last().cloned().unwrap_or_default();
    assert_eq!(
        summary["substituted"],
        serde_json::json!({"http://127.0.0.1:18931": 2})
    );
    assert_eq!(summary["built"], serde_json::json!({}));
    assert_eq!(summary["failed"], serde_json::json!([]));
    assert!(summary["bytes_downloaded"].as_u64().unwrap_or(0) >= 6 * 1024 * 1024);
    assert!(summary["elapsed_secs"].as_f64().is_some());
    let starts: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "substitute_start")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(starts, ["nd-big", "nd-chain-c"]);
}

#[test]
fn json_failure_event_carries_the_log() {
    let out = recorded("nix-2.8-build-fail.log", &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let events = json_lines(&out);
    let failed = events
        .iter()
        .find(|e| e["event"] == "build_failed")
        .cloned()
        .unwrap_or_default();
    assert_eq!(failed["host"], "local");
    assert_eq!(failed["name"], "nd-fail");
    assert_eq!(failed["log"].as_array().map(Vec::len), Some(20));
    let summary = events.last().cloned().unwrap_or_default();
    assert_eq!(summary["ok"], false);
    assert_eq!(summary["built"], serde_json::json!({"local": 1}));
    assert_eq!(summary["failed"][0]["drv"], failed["drv"]);
}

#[test]
fn progress_none_is_silent_on_success_and_shows_errors() {
    let out = recorded("nix-2.26-build-chain.log", &["--progress", "none"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        text(&out.stderr)
    );

    let out = recorded("nix-2.26-eval-error.log", &["--progress", "none"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("nd-fixture: this attribute does not evaluate"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn auto_without_a_terminal_is_plain() {
    let out = recorded("nix-2.8-substitute-http.log", &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert!(
        stderr.contains("fetched nd-big from http://127.0.0.1:18931 (6.00 MiB"),
        "{stderr}"
    );
    assert!(
        stderr.contains("fetched 2 paths: 2 from http://127.0.0.1:18931"),
        "{stderr}"
    );
}

#[test]
fn anything_on_stdin_is_shown_never_fatal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("garbage.log");
    let mut bytes =
        b"Warning: Permanently added 'seasmoke' (ED25519) to the list of known hosts.\n".to_vec();
    bytes.extend_from_slice(
        b"@nix {\"action\":\"start\",\"id\":1,\"type\":999,\"level\":3,\"text\":\"x\"}\n",
    );
    bytes.extend_from_slice(b"@nix {broken json\n\xff\xfe not utf-8 \x1b[31mred\x1b[0m\n");
    bytes.extend_from_slice(b"<3>@nix {\"action\":\"stop\",\"id\":1}\nno newline at the end");
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("write: {e}"));

    let out = monitor_file(&path, &["--progress", "plain"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("Warning: Permanently added 'seasmoke'"),
        "{stderr}"
    );
    assert!(stderr.contains("@nix {broken json"), "{stderr}");
    assert!(stderr.contains("not utf-8 red"), "{stderr}");
    assert!(stderr.contains("no newline at the end"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");

    let out = monitor_file(&path, &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let events = json_lines(&out);
    let logs = events.iter().filter(|e| e["event"] == "log").count();
    assert_eq!(logs, 4, "{events:?}");
}

#[test]
fn empty_input_is_an_empty_successful_run() {
    let out = monitor(Stdio::null(), &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let events = json_lines(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "summary");
    assert_eq!(events[0]["ok"], true);
}

#[test]
fn the_failed_build_is_named_when_nix_stops_the_others() {
    let stderr = plain_exit("nix-2.26-remote-build-one-fails.log", 1);
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "nixdispatch: error: the monitored nix run failed: the build of failmix-bad failed; 3 builds cancelled (nix stopped them unfinished)"
    );
    assert!(!stderr.contains("built failmix-leaf"), "{stderr}");
    assert!(
        stderr.contains("cancelled failmix-leaf-3 on seasmoke after"),
        "{stderr}"
    );

    let out = recorded("nix-2.26-remote-build-one-fails.log", &["--json"]);
    let events = json_lines(&out);
    let cancelled: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "build_cancelled")
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(
        cancelled,
        ["failmix-leaf-3", "failmix-leaf-2", "failmix-leaf-1"]
    );
}

#[test]
fn plain_output_of_a_builder_killed_mid_build_is_short() {
    let stderr = plain_exit("nix-2.26-remote-builder-killed.log", 1);
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
    assert_eq!(
        stderr.matches("Nix daemon disconnected").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("(3 repeated nix messages not shown)"),
        "{stderr}"
    );
}

// ----- Nix 2.34 (Debian sid), recorded on the lab: vermax-2.34 against seasmoke-2.34 -----------

#[test]
fn nix_2_34_remote_build_is_drawn_like_2_26() {
    let stderr = plain_exit("nix-2.34-remote-build-chain.log", 0);
    for expected in [
        "built chain-3 on seasmoke in",
        "built 3 derivations: 3 on seasmoke",
        "copied 3 paths here: 3 from ssh-ng://seasmoke",
    ] {
        assert!(stderr.contains(expected), "no {expected:?} in:\n{stderr}");
    }
}

#[test]
fn nix_2_34_remote_failure_names_the_build_and_exits_1() {
    let stderr = plain_exit("nix-2.34-remote-build-fail.log", 1);
    assert!(
        stderr.contains("builder failed with exit code 1"),
        "{stderr}"
    );
    assert_eq!(
        stderr.lines().last().unwrap_or_default(),
        "nixdispatch: error: the monitored nix run failed: the build of fail failed"
    );
    let events = json_lines(&recorded("nix-2.34-remote-build-fail.log", &["--json"]));
    let summary = events.last().cloned().unwrap_or_default();
    assert_eq!(summary["ok"], false);
    // As on 2.26: the failed build names the builder by its URI.
    assert_eq!(
        summary["failed"][0]["host"], "ssh-ng://seasmoke",
        "{summary}"
    );
}

#[test]
fn nix_2_34_substitution_from_the_builder_counts_every_path() {
    let out = recorded("nix-2.34-substitute-from-builder.log", &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let summary = json_lines(&out).last().cloned().unwrap_or_default();
    assert_eq!(
        summary["substituted"],
        serde_json::json!({"ssh-ng://seasmoke": 5})
    );
    assert_eq!(summary["built"], serde_json::json!({}));
}

#[test]
fn nix_2_34_substitution_over_http_counts_bytes_and_paths() {
    let out = recorded("nix-2.34-substitute-http.log", &["--json"]);
    assert_eq!(out.status.code(), Some(0));
    let summary = json_lines(&out).last().cloned().unwrap_or_default();
    assert_eq!(
        summary["substituted"],
        serde_json::json!({"http://127.0.0.1:34139": 4})
    );
    assert!(summary["bytes_downloaded"].as_u64().unwrap_or(0) >= 4 * 1024 * 1024);
    let text_out = text(&recorded("nix-2.34-substitute-http.log", &[]).stderr);
    assert!(
        text_out.contains("fetched big from http://127.0.0.1:34139 (4.00 MiB"),
        "{text_out}"
    );
}

/// Activity 113 and results 109/110 mean different things in upstream Nix and Determinate Nix
/// (src/log/types.rs): mixed into a real 2.34 log, they change nothing that is drawn or counted.
#[test]
fn numbers_the_forks_disagree_on_change_nothing() {
    let original = recording(&data("nix-2.34-remote-build-chain.log"));
    let mut mixed = original.clone();
    mixed.extend_from_slice(
        concat!(
            "@nix {\"action\":\"start\",\"id\":990001,\"level\":3,\"parent\":0,\"text\":\"copying source\",\"type\":113,\"fields\":[\"/nix/store/p9g7hmnj7g2sm7wfs4wq98nv6v0n94da-source\"]}\n",
            "@nix {\"action\":\"result\",\"id\":990001,\"type\":109,\"fields\":[\"/nix/store/p9g7hmnj7g2sm7wfs4wq98nv6v0n94da-source\",\"sha256-a\",\"sha256-b\"]}\n",
            "@nix {\"action\":\"result\",\"id\":990001,\"type\":110,\"payload\":{\"success\":false}}\n",
            "@nix {\"action\":\"stop\",\"id\":990001}\n",
        )
        .as_bytes(),
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("mixed.log");
    std::fs::write(&path, &mixed).unwrap_or_else(|e| panic!("write: {e}"));
    let strip_time = |out: &Output| {
        let mut events = json_lines(out);
        for e in &mut events {
            if let Some(o) = e.as_object_mut() {
                o.retain(|k, _| !k.contains("elapsed") && !k.contains("secs"));
            }
        }
        events
    };
    let plain = recorded("nix-2.34-remote-build-chain.log", &["--json"]);
    let with_forks = monitor_file(&path, &["--json"]);
    assert_eq!(with_forks.status.code(), Some(0));
    assert_eq!(strip_time(&with_forks), strip_time(&plain));
    let text_out = text(&monitor_file(&path, &["--progress", "plain"]).stderr);
    assert!(!text_out.contains("copying source"), "{text_out}");
    assert!(!text_out.contains("sha256-a"), "{text_out}");
}

#[test]
fn relayed_warnings_at_error_level_do_not_fail_the_run() {
    let stderr = plain_exit("nix-2.26-remote-build-forwarded-warning.log", 0);
    assert!(
        stderr.contains("does not appear to be a binary cache"),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("done in")),
        "{stderr}"
    );
    let out = recorded("nix-2.26-remote-build-forwarded-warning.log", &["--json"]);
    let events = json_lines(&out);
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["event"], "summary");
    assert_eq!(last["ok"], true, "{last}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn a_cancelled_build_is_reported_as_cancelled() {
    for file in [
        "nix-2.26-one-fails-one-cancelled.log",
        "nix-2.8-one-fails-one-cancelled.log",
    ] {
        let out = monitor_file(&data(file), &["--progress", "plain"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{file}: {stderr}");
        assert_eq!(
            stderr.lines().last().unwrap_or_default(),
            "nixdispatch: error: the monitored nix run failed: the build of fail failed; \
             1 build cancelled (nix stopped it unfinished)",
            "{file}"
        );
        let out = monitor_file(&data(file), &["--json"]);
        let events = json_lines(&out);
        let last = events.last().cloned().unwrap_or_default();
        assert_eq!(last["ok"], false);
        assert_eq!(last["failed"].as_array().map(Vec::len), Some(1), "{file}");
        assert_eq!(last["builds_cancelled"], 1, "{file}");
        assert!(
            last["cancelled"][0]["drv"]
                .as_str()
                .is_some_and(|d| d.ends_with("-slow.drv")),
            "{file}: {last}"
        );
    }
}

/// The reader hands lines over in batches; a line must still be shown while the writer pauses
/// (a live nix that is quiet), not when the next batch fills or the input ends.
#[test]
fn a_line_is_shown_while_the_writer_pauses() {
    use std::io::{BufRead, BufReader, Write};
    let mut monitor = Command::new(common::bin());
    monitor.args(["monitor", "--progress", "plain"]);
    let mut child = common::spawn(&mut monitor, Stdio::piped(), Stdio::null(), Stdio::piped());
    let mut stdin = child.stdin.take().expect("stdin");
    let stderr = child.stderr.take().expect("stderr");
    // Synthetic, shaped like the 2.8 recordings; a whole line and half of the next one.
    stdin
        .write_all(
            b"@nix {\"action\":\"start\",\"fields\":[\"/nix/store/50h0af3l3gkcw4c385pxvynq15y8zlxs-nd-live.drv\",\"\",1,1],\"id\":1,\"level\":3,\"text\":\"building\",\"type\":105}\n@nix {\"action\":",
        )
        .expect("write");
    stdin.flush().expect("flush");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    // A generous bound: the line is due at once; only a batch waiting for more input misses it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(std::time::Duration::from_millis(100)) {
            if line.contains("nd-live") {
                drop(stdin);
                let _ = child.wait();
                return;
            }
            seen.push(line);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the build was not shown while the writer paused: {seen:?}");
}
