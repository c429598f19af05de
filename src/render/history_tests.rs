//! Expected times and `--logs` in the renderers, on recorded nix logs.

use super::tests::Captured;
use super::*;
use crate::cli::LogsArg;
use crate::history::History;
use crate::monitor::Monitor;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    crate::log::recordings::read(&path)
}

/// Replays `log` into `renderer` with `history`; returns what the run recorded for the history.
fn replay(log: &str, renderer: Box<dyn Render + Send>, history: Option<History>) -> History {
    let mut monitor = Monitor::new(renderer);
    monitor.keep_record();
    if let Some(h) = history {
        monitor.set_history(Arc::new(h), None);
    }
    monitor.set_header("remote", "a reason");
    let mut now = Instant::now();
    for line in log.lines() {
        now += Duration::from_millis(10);
        monitor.feed_line(line, now);
    }
    let (_, record) = monitor.finish_recorded(now);
    record.learned
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_run_records_what_it_took_and_the_next_run_expects_it() {
    let log = data("nix-2.8-remote-build-chain.log");
    let first = Captured::default();
    let learned = replay(
        &log,
        Box::new(JsonRenderer::new(Box::new(first.clone()), 0)),
        None,
    );
    let events = json_lines(&first.text());
    let starts: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "build_start")
        .collect();
    assert!(!starts.is_empty());
    assert!(starts.iter().all(|e| e.get("expected_secs").is_none()));
    assert!(events.iter().all(|e| e["event"] != "estimate"));
    let name = starts[0]["name"].as_str().unwrap();
    let host = starts[0]["host"].as_str().unwrap();
    assert!(learned.build_secs(name, host).is_some(), "{learned:?}");

    let second = Captured::default();
    replay(
        &log,
        Box::new(JsonRenderer::new(Box::new(second.clone()), 0)),
        Some(learned.clone()),
    );
    let events = json_lines(&second.text());
    for start in events.iter().filter(|e| e["event"] == "build_start") {
        assert!(start["expected_secs"].as_f64().is_some(), "{start}");
    }

    let plain = Captured::default();
    replay(
        &log,
        Box::new(PlainRenderer::new(Box::new(plain.clone()), 0)),
        Some(learned),
    );
    let text = plain.text();
    assert!(text.contains(&format!("building {name} on")), "{text}");
    assert!(text.contains("(expected "), "{text}");
}

#[test]
fn logs_all_shows_every_build_line_and_none_hides_failed_builds_lines() {
    let chain = data("nix-2.8-build-chain.log");
    let run = |log: &str, logs: LogsArg| {
        let out = Captured::default();
        replay(
            log,
            Box::new(PlainRenderer::new(Box::new(out.clone()), 0).with_logs(logs)),
            None,
        );
        out.text()
    };
    let default = run(&chain, LogsArg::Failed);
    assert!(
        !default.contains("chain-a> chain-a: compiling"),
        "{default}"
    );
    let all = run(&chain, LogsArg::All);
    assert!(all.contains("nd-chain-a> chain-a: compiling"), "{all}");

    let fail = data("nix-2.8-build-fail.log");
    let failed = run(&fail, LogsArg::Failed);
    assert!(failed.contains("nd-fail> fail: line 14"), "{failed}");
    let none = run(&fail, LogsArg::None);
    assert!(none.contains("nd-fail.drv failed"), "named still: {none}");
    assert!(!none.contains("nd-fail> fail:"), "{none}");

    // JSON: every line as a build_log event with `all`, none by default.
    let json = |logs: LogsArg| {
        let out = Captured::default();
        replay(
            &chain,
            Box::new(JsonRenderer::new(Box::new(out.clone()), 0).with_logs(logs)),
            None,
        );
        json_lines(&out.text())
            .iter()
            .filter(|e| e["event"] == "build_log")
            .count()
    };
    assert_eq!(json(LogsArg::Failed), 0);
    assert!(json(LogsArg::All) > 0);
}

#[test]
fn the_summary_says_bytes_and_time_per_source() {
    let out = Captured::default();
    replay(
        &data("nix-2.8-substitute-http.log"),
        Box::new(PlainRenderer::new(Box::new(out.clone()), 0)),
        None,
    );
    let text = out.text();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("from http"))
        .unwrap_or_else(|| panic!("no per-source line:\n{text}"));
    assert!(line.contains("paths, ") && line.contains(" in "), "{line}");
}

#[test]
fn a_failure_is_said_once_in_one_block_and_one_summary_line() {
    for file in [
        "nix-2.8-keep-going-one-fails.log",
        "nix-2.8-build-fail.log",
        "nix-2.26-remote-build-one-fails.log",
        "nix-2.34-remote-build-fail.log",
    ] {
        let out = Captured::default();
        replay(
            &data(file),
            Box::new(PlainRenderer::new(Box::new(out.clone()), 0)),
            None,
        );
        let text = out.text();
        let blocks = text.lines().filter(|l| l.starts_with("build of ")).count();
        assert_eq!(blocks, 1, "{file}: one block:\n{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("FAILED: ")).count(),
            1,
            "{file}: one summary line:\n{text}"
        );
        assert!(!text.contains("error: builder for"), "{file}:\n{text}");
        assert!(!text.contains("Cannot build"), "{file}:\n{text}");
        assert!(
            text.contains("the whole log: nix log /nix/store/"),
            "{file}:\n{text}"
        );
        assert!(
            text.contains("exit code 1"),
            "{file}: nix's reason kept:\n{text}"
        );
    }
}

mod tree {
    use super::super::frame::{tree_frame, FrameInput, TermSize};
    use crate::history::estimate::{Group, Step, StepKind};
    use crate::history::{History, RunEstimate};
    use crate::log::parse_line;
    use crate::monitor::State;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    const DRV: [&str; 4] = [
        "/nix/store/11111111111111111111111111111111-app-1.0.drv",
        "/nix/store/22222222222222222222222222222222-lib-2.0.drv",
        "/nix/store/33333333333333333333333333333333-zlib-1.3.drv",
        "/nix/store/44444444444444444444444444444444-docs-1.0.drv",
    ];

    fn step(name: &str, secs: Option<f64>, deps: &[usize]) -> Step {
        Step {
            name: name.to_string(),
            place: "ssh-ng://seasmoke".to_string(),
            kind: StepKind::Build,
            group: 0,
            secs,
            deps: deps.to_vec(),
        }
    }

    /// app needs lib and docs, lib needs zlib; zlib is done, lib runs, app and docs wait.
    fn state(t0: Instant) -> State {
        let steps = vec![
            step("app-1.0", Some(4.0), &[1, 3]),
            step("lib-2.0", Some(10.0), &[2]),
            step("zlib-1.3", Some(1.0), &[]),
            step("docs-1.0", None, &[]),
        ];
        let keys = DRV
            .iter()
            .enumerate()
            .map(|(i, d)| (d.to_string(), i))
            .collect();
        let groups = vec![Group {
            jobs: 1,
            polls: true,
        }];
        let mut state = State::new();
        state.set_history(
            Arc::new(History::new()),
            Some(RunEstimate::new(steps, groups, keys)),
        );
        let start = |id: u32, drv: &str| {
            format!(
                r#"@nix {{"action":"start","id":{id},"level":3,"type":105,"text":"","fields":["{drv}","ssh-ng://seasmoke",1,1]}}"#
            )
        };
        state.update(&parse_line(&start(1, DRV[2])), t0);
        state.update(&parse_line(r#"@nix {"action":"stop","id":1}"#), t0);
        state.update(&parse_line(&start(2, DRV[1])), t0 + Duration::from_secs(1));
        state.clear_happenings();
        state
    }

    fn draw(state: &State, t0: Instant, rows: usize) -> Vec<String> {
        tree_frame(
            state,
            &FrameInput {
                header: Some(("remote", "4 derivations")),
                elapsed: Duration::from_secs(4),
                now: t0 + Duration::from_secs(4),
                size: TermSize { cols: 60, rows },
                color: false,
                estimate: state.run_estimate(t0 + Duration::from_secs(4)),
            },
        )
    }

    #[test]
    fn the_tree_shows_what_runs_waits_and_is_done_with_hosts_and_times() {
        let t0 = Instant::now();
        let lines = draw(&state(t0), t0, 20);
        let tree: Vec<&str> = lines.iter().skip(2).map(String::as_str).collect();
        assert_eq!(
            tree,
            [
                "  · app-1.0 on seasmoke ~4.0s",
                "    · docs-1.0 on seasmoke",
                "    ⏵ lib-2.0 on seasmoke 3.0s of ~10s",
                "      ✓ zlib-1.3 on seasmoke",
            ],
            "{lines:#?}"
        );
        assert!(lines[0].contains("≥"), "partial: docs is new: {}", lines[0]);
    }

    #[test]
    fn a_short_terminal_keeps_the_running_steps_and_counts_the_rest() {
        let t0 = Instant::now();
        let lines = draw(&state(t0), t0, 5);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("⏵ lib-2.0")), "{lines:#?}");
        assert!(lines.last().unwrap().contains("not shown"), "{lines:#?}");
    }
}
