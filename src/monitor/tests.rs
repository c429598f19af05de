//! The state on hand-written streams: what the recordings here cannot show yet.

use super::*;
use crate::log::{parse_line, Verbosity};
use std::time::{Duration, Instant};

/// Feeds `lines` one millisecond apart; returns the state and the end time.
fn feed(lines: &[String]) -> (State, Instant) {
    let mut state = State::new();
    let mut now = Instant::now();
    for line in lines {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
    }
    (state, now)
}

fn start(id: u64, ty: u64, fields: &str) -> String {
    format!(
        r#"@nix {{"action":"start","id":{id},"level":3,"parent":0,"text":"","type":{ty},"fields":{fields}}}"#
    )
}

fn stop(id: u64) -> String {
    format!(r#"@nix {{"action":"stop","id":{id}}}"#)
}

fn result(id: u64, ty: u64, fields: &str) -> String {
    format!(r#"@nix {{"action":"result","id":{id},"type":{ty},"fields":{fields}}}"#)
}

const DRV: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv";
const OUT: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-hello-2.12";
const SRC: &str = "/nix/store/cccccccccccccccccccccccccccccccc-hello-2.12.tar.gz";
const SEASMOKE: &str = "ssh-ng://seasmoke";

#[test]
fn remote_build_with_copies_both_ways() {
    let lines = vec![
        start(1, 102, "[]"),
        start(2, 104, "[]"),
        result(2, 105, "[0,1,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#)),
        result(2, 105, "[0,1,1,0]"),
        // The source goes to the builder, the output comes back.
        start(4, 100, &format!(r#"["{SRC}","local","{SEASMOKE}"]"#)),
        result(4, 105, "[100,200,0,0]"),
        result(4, 105, "[200,200,0,0]"),
        stop(4),
        result(3, 104, r#"["buildPhase"]"#),
        result(3, 101, r#"["\u001b[1mcompiling\u001b[0m hello.c"]"#),
        start(5, 100, &format!(r#"["{OUT}","{SEASMOKE}","local"]"#)),
        result(5, 105, "[50,300,0,0]"),
        stop(5),
        result(2, 105, "[1,1,0,0]"),
        stop(3),
        stop(2),
        stop(1),
    ];
    let (state, now) = feed(&lines);
    let summary = state.summary(now);
    assert!(summary.ok);
    assert_eq!(summary.built.get(SEASMOKE), Some(&1));
    assert_eq!(summary.copied_to.get(SEASMOKE), Some(&1));
    assert_eq!(summary.copied_from.get(SEASMOKE), Some(&1));
    assert!(summary.substituted.is_empty());
    // Bytes that arrived here: the output's 300 (its expected size), not the 200 sent away.
    assert_eq!(summary.bytes_downloaded, 300);
    assert_eq!(state.live_activities(), 0);
    assert_eq!(host_of(SEASMOKE), "seasmoke");
}

#[test]
fn running_build_shows_host_phase_and_last_line() {
    let lines = vec![
        start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#)),
        result(3, 104, r#"["configurePhase"]"#),
        result(3, 101, r#"["checking for gcc... gcc"]"#),
    ];
    let (state, _) = feed(&lines);
    let running: Vec<&RunningBuild> = state.running_builds().collect();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].name, "hello-2.12");
    assert_eq!(running[0].host, SEASMOKE);
    assert_eq!(running[0].phase.as_deref(), Some("configurePhase"));
    assert_eq!(running[0].last_line(), Some("checking for gcc... gcc"));
    assert_eq!(state.builds().running, 1);
}

#[test]
fn substitution_from_a_builder_store() {
    let lines = vec![
        start(7, 108, &format!(r#"["{OUT}","{SEASMOKE}"]"#)),
        start(8, 100, &format!(r#"["{OUT}","{SEASMOKE}","local"]"#)),
        result(8, 105, "[4096,4096,0,0]"),
        stop(8),
        stop(7),
    ];
    let (state, now) = feed(&lines);
    let summary = state.summary(now);
    assert_eq!(summary.substituted.get(SEASMOKE), Some(&1));
    assert!(
        summary.copied_from.is_empty(),
        "the copy inside a substitution is not a second transfer"
    );
    assert_eq!(summary.bytes_downloaded, 4096);
}

#[test]
fn error_message_naming_a_finished_build_marks_it_failed() {
    // No Builds aggregate (a partial stream): only the message tells.
    let lines = vec![
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        result(3, 101, r#"["make: *** [all] Error 1"]"#),
        stop(3),
        format!(
            r#"@nix {{"action":"msg","level":0,"msg":"\u001b[31;1merror:\u001b[0m builder for '\u001b[35;1m{DRV}\u001b[0m' failed with exit code 2"}}"#
        ),
    ];
    let (state, now) = feed(&lines);
    let summary = state.summary(now);
    assert!(!summary.ok);
    assert!(summary.built.is_empty());
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].host, "local");
    assert_eq!(
        summary.failed[0].log,
        vec!["make: *** [all] Error 1".to_string()]
    );
    assert_eq!(
        summary.errors,
        vec![format!(
            "error: builder for '{DRV}' failed with exit code 2"
        )]
    );
}

#[test]
fn unknown_and_uninteresting_activities_change_nothing() {
    let mut state = State::new();
    let now = Instant::now();
    for line in [
        start(1, 150, r#"["x"]"#),
        result(1, 105, "[1,2,0,0]"),
        result(1, 142, "[1]"),
        start(2, 109, &format!(r#"["{OUT}","https://cache.nixos.org"]"#)),
        result(99, 101, r#"["a line for an activity never started"]"#),
        stop(1),
        stop(2),
        stop(12345),
    ] {
        assert!(!state.update(&parse_line(&line), now), "{line}");
    }
    assert_eq!(state.live_activities(), 0);
    assert_eq!(state.summary(now).built_total(), 0);
    assert!(state.happenings().is_empty());
}

#[test]
fn passthrough_lines_are_kept_for_the_renderer() {
    let mut state = State::new();
    let now = Instant::now();
    assert!(state.update(
        &parse_line("Warning: Permanently added 'seasmoke' (ED25519)"),
        now
    ));
    assert_eq!(
        state.happenings(),
        [Happening::Passthrough(
            "Warning: Permanently added 'seasmoke' (ED25519)".into()
        )]
    );
    state.clear_happenings();
    assert!(state.happenings().is_empty());
}

#[test]
fn memory_stays_flat_on_an_endless_stream() {
    let mut state = State::new();
    let mut now = Instant::now();
    let builds = 20_000u64;
    for n in 0..builds {
        now += Duration::from_micros(10);
        let id = 10 + n * 4;
        let drv = format!("/nix/store/{:032}-pkg-{n}.drv", n);
        for line in [
            start(id, 105, &format!(r#"["{drv}","",1,1]"#)),
            result(id, 101, r#"["a line"]"#),
            result(id, 104, r#"["buildPhase"]"#),
            start(
                id + 1,
                109,
                &format!(r#"["{OUT}","https://cache.nixos.org"]"#),
            ),
            stop(id + 1),
            start(
                id + 2,
                108,
                &format!(
                    r#"["/nix/store/{:032}-dep-{n}","https://cache.nixos.org"]"#,
                    n
                ),
            ),
            stop(id + 2),
            r#"@nix {"action":"msg","level":1,"msg":"warning: something"}"#.to_string(),
            stop(id),
        ] {
            state.update(&parse_line(&line), now);
        }
        assert!(state.live_activities() <= 3);
    }
    assert!(
        state.happenings().len() <= MAX_HAPPENINGS,
        "undrained happenings are bounded"
    );
    assert!(state.recent_builds_len() <= RECENT_BUILDS_KEPT);
    let summary = state.summary(now);
    assert_eq!(summary.built.get("local"), Some(&builds));
    assert_eq!(
        summary.substituted.get("https://cache.nixos.org"),
        Some(&builds)
    );
    assert_eq!(state.live_activities(), 0);
}

#[test]
fn failed_list_and_errors_are_bounded() {
    let mut state = State::new();
    let now = Instant::now();
    for n in 0..(MAX_ERRORS_KEPT as u64 + 10) {
        state.update(
            &parse_line(&format!(
                r#"@nix {{"action":"msg","level":0,"msg":"error: number {n}","raw_msg":"number {n}"}}"#
            )),
            now,
        );
    }
    assert_eq!(state.errors().len(), MAX_ERRORS_KEPT);
    assert!(state.has_failed());
}

#[test]
fn hostless_store_uris_are_named_from_the_known_stores() {
    // nix 2.26 substituting from `ssh-ng://seasmoke` calls it `ssh-ng://` in its log.
    let text = crate::log::recordings::named("nix-2.26-substitute-from-builder.log");
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let (state, now) = feed(&lines);
    assert_eq!(
        state.summary(now).substituted,
        [("ssh-ng://".to_string(), 3)].into()
    );

    let mut state = State::new();
    state.set_known_stores(["https://cache.nixos.org".to_string(), SEASMOKE.to_string()]);
    let mut now = Instant::now();
    for line in &lines {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
    }
    let summary = state.summary(now);
    assert_eq!(summary.substituted, [(SEASMOKE.to_string(), 3)].into());
    assert!(summary.bytes_downloaded > 4000);

    // Two candidates with the scheme: no guess.
    let mut state = State::new();
    state.set_known_stores([SEASMOKE.to_string(), "ssh-ng://other".to_string()]);
    for line in &lines {
        state.update(&parse_line(line), now);
    }
    assert_eq!(
        state.summary(now).substituted,
        [("ssh-ng://".to_string(), 3)].into()
    );
}

#[test]
fn damaged_and_reordered_streams_never_panic() {
    for file in [
        "nix-2.26-build-fail.log",
        "nix-2.26-remote-build-chain.log",
        "nix-2.8-substitute-file.log",
    ] {
        let text = crate::log::recordings::named(file);
        let lines: Vec<&str> = text.lines().collect();
        let now = Instant::now();
        // Every line cut short at many places (as a killed nix leaves its last line).
        let mut state = State::new();
        for line in lines.iter().take(120) {
            for (cut, _) in line.char_indices().step_by(5) {
                state.update(&parse_line(&line[..cut]), now);
            }
        }
        // The stream backwards: stops before starts, results for unknown activities.
        let mut state = State::new();
        for line in lines.iter().rev() {
            state.update(&parse_line(line), now);
        }
        let _ = state.summary(now);
        // Every line twice: duplicate starts and stops.
        let mut state = State::new();
        for line in &lines {
            state.update(&parse_line(line), now);
            state.update(&parse_line(line), now);
        }
        let _ = state.summary(now);
    }
}

fn msg(level: u64, text: &str) -> String {
    format!(
        r#"@nix {{"action":"msg","level":{level},"msg":{}}}"#,
        serde_json::Value::String(text.to_string())
    )
}

/// An error nix itself reports (with `raw_msg`, as its top-level errors have), not a line it
/// relays from a builder.
fn report(text: &str) -> String {
    format!(
        r#"@nix {{"action":"msg","level":0,"msg":{},"raw_msg":{}}}"#,
        serde_json::Value::String(format!("error: {text}")),
        serde_json::Value::String(text.to_string())
    )
}

const DRV_B: &str = "/nix/store/dddddddddddddddddddddddddddddddd-other-1.0.drv";

#[test]
fn the_build_an_error_names_failed_whatever_stops_first() {
    // nix 2.26 without --keep-going: "build of B failed" while A and B still run, the failure
    // counter, then A stopped unfinished before B.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#)),
        start(4, 105, &format!(r#"["{DRV_B}","{SEASMOKE}",1,1]"#)),
        result(4, 101, r#"["make: *** Error 1"]"#),
        result(2, 105, "[0,2,2,0]"),
        msg(
            0,
            &format!("\u{1b}[31;1merror:\u{1b}[0m build of '{DRV_B}' on '{SEASMOKE}' failed"),
        ),
        result(2, 105, "[0,1,1,1]"),
        stop(3),
        stop(4),
        result(2, 105, "[0,0,0,1]"),
        stop(2),
    ];
    let (state, now) = feed(&lines);
    let summary = state.summary(now);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].drv, DRV_B);
    assert_eq!(summary.failed[0].log, vec!["make: *** Error 1".to_string()]);
    assert!(summary.built.is_empty() && summary.reused.is_empty());
    let counts = state.builds();
    assert_eq!((counts.done, counts.failed), (0, 1));
}

#[test]
fn builds_nix_stops_without_counting_were_cancelled() {
    // Ctrl-C: nix stops every build; neither done nor failed moves.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        result(3, 101, r#"["compiling"]"#),
        start(4, 105, &format!(r#"["{DRV_B}","",1,1]"#)),
        result(2, 105, "[0,2,2,0]"),
        stop(4),
        stop(3),
        report("interrupted by the user"),
    ];
    let mut state = State::new();
    let mut now = Instant::now();
    let mut cancelled = Vec::new();
    for line in &lines {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
        for h in state.happenings() {
            if let Happening::BuildCancelled { drv_path, host, .. } = h {
                cancelled.push((drv_path.clone(), host.clone()));
            }
        }
        state.clear_happenings();
    }
    assert_eq!(
        cancelled,
        [
            (DRV_B.to_string(), "local".to_string()),
            (DRV.to_string(), "local".to_string())
        ]
    );
    let summary = state.summary(now);
    assert!(summary.built.is_empty() && summary.failed.is_empty());
    assert!(!summary.ok, "the error still fails the run");
}

#[test]
fn a_later_error_naming_a_cancelled_build_makes_it_failed() {
    let lines = vec![
        start(2, 104, "[]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        stop(3),
        msg(
            0,
            &format!("error: builder for '{DRV}' failed with exit code 1"),
        ),
    ];
    let (state, now) = feed(&lines);
    let summary = state.summary(now);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].drv, DRV);
}

#[test]
fn a_retry_keeps_what_the_first_attempt_finished() {
    // First attempt: one build on seasmoke and its copy back, then the builder vanishes.
    let first = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#)),
        result(3, 101, r#"["building"]"#),
        start(5, 100, &format!(r#"["{OUT}","{SEASMOKE}","local"]"#)),
        result(5, 105, "[300,300,0,0]"),
        stop(5),
        result(2, 105, "[1,2,0,0]"),
        stop(3),
        report("Nix daemon disconnected unexpectedly (maybe it crashed?)"),
    ];
    let (state, now) = feed(&first);
    assert!(state.has_failed());
    let mut state = state.next_attempt();
    assert!(!state.has_failed(), "the retry alone decides");
    assert_eq!(state.builds().done, 1);
    // Second attempt: nix's counters start again; one local build is left.
    let second = vec![
        start(12, 104, "[]"),
        result(12, 105, "[0,1,0,0]"),
        start(13, 105, &format!(r#"["{DRV_B}","",1,1]"#)),
    ];
    let mut now = now;
    for line in &second {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
    }
    let counts = state.builds();
    assert_eq!(
        (counts.done, counts.running, counts.expected),
        (1, 1, 2),
        "the display counts both attempts"
    );
    for line in [result(12, 105, "[1,1,0,0]"), stop(13), stop(12)] {
        now += Duration::from_millis(1);
        state.update(&parse_line(&line), now);
    }
    let summary = state.summary(now);
    assert!(summary.ok);
    assert_eq!(
        summary.built,
        [(SEASMOKE.to_string(), 1), ("local".to_string(), 1)].into()
    );
    assert_eq!(summary.copied_from.get(SEASMOKE), Some(&1));
    assert_eq!(summary.bytes_downloaded, 300);
    assert!(summary.elapsed_secs >= 0.013, "{}", summary.elapsed_secs);
}

#[test]
fn peers_name_where_transfers_came_from() {
    let lines = vec![
        start(7, 108, &format!(r#"["{OUT}","https://cache.nixos.org"]"#)),
        stop(7),
        start(8, 108, &format!(r#"["{SRC}","{SEASMOKE}"]"#)),
    ];
    let (state, _) = feed(&lines);
    assert_eq!(
        state
            .peers(TransferKind::Substitute)
            .into_iter()
            .collect::<Vec<_>>(),
        ["https://cache.nixos.org", SEASMOKE]
    );
    assert!(state.peers(TransferKind::CopyTo).is_empty());
}

#[test]
fn warnings_nix_relays_at_error_level_are_warnings() {
    // A successful run's log carried this (relayed from a store at level 0); and Nix 2.26's
    // build hook relays a builder's warnings the same way.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,1,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        msg(
            0,
            "\u{1b}[35;1mwarning:\u{1b}[0m error: SQLite database '/nix/var/nix/db/db.sqlite' is busy",
        ),
        msg(0, "warning: 'http://127.0.0.1:9/x' does not appear to be a binary cache"),
        result(2, 105, "[1,1,0,0]"),
        stop(3),
        stop(2),
    ];
    let mut state = State::new();
    let mut now = Instant::now();
    let mut levels = Vec::new();
    for line in &lines {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
        for h in state.happenings() {
            if let Happening::Message { level, .. } = h {
                levels.push(*level);
            }
        }
        state.clear_happenings();
    }
    assert_eq!(levels, [Verbosity::Warn, Verbosity::Warn]);
    assert!(state.errors().is_empty());
    assert!(!state.has_failed());
    assert!(state.summary(now).ok);
    assert_eq!(state.summary(now).built.get("local"), Some(&1));
}

#[test]
fn an_error_line_relayed_from_a_builder_does_not_decide_the_run() {
    // Plain level-0 lines (no raw_msg) are relayed ones: "error (ignored)", a builder's own
    // messages. They are shown as errors, but only failed builds or nix's own error fail.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,1,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        msg(0, "error (ignored): error: cannot connect to 'ssh://gone'"),
        result(2, 105, "[1,1,0,0]"),
        stop(3),
    ];
    let (state, now) = feed(&lines);
    assert_eq!(state.errors().len(), 1);
    assert!(state.summary(now).ok);
}

#[test]
fn an_error_of_nix_s_own_that_ends_the_run_fails_it() {
    let (state, now) = feed(&[report("undefined variable 'x'")]);
    assert!(!state.summary(now).ok);
    // An error nix went on from (a substituter failed, it built instead) does not.
    let (state, now) = feed(&[
        report("unable to download 'http://cache/x.narinfo'"),
        start(2, 104, "[]"),
        result(2, 105, "[0,1,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        result(2, 105, "[1,1,0,0]"),
        stop(3),
    ]);
    assert!(state.summary(now).ok);
}

#[test]
fn the_closing_build_of_list_does_not_turn_a_cancelled_build_into_a_failure() {
    // nix's closing "build of 'A^out', 'B^out' failed" lists every top-level goal that did not
    // succeed, cancelled ones too; drv paths as 2.8 prints them.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        start(4, 105, &format!(r#"["{DRV_B}","",1,1]"#)),
        result(2, 105, "[0,1,1,1]"),
        stop(4),
        stop(3),
        report(&format!("builder for '{DRV}' failed with exit code 1")),
        report(&format!("build of '{DRV_B}', '{DRV}' failed")),
    ];
    let mut state = State::new();
    let mut now = Instant::now();
    let mut happenings = Vec::new();
    for line in &lines {
        now += Duration::from_millis(1);
        state.update(&parse_line(line), now);
        happenings.extend(state.happenings().iter().cloned());
        state.clear_happenings();
    }
    let summary = state.summary(now);
    assert_eq!(
        summary
            .failed
            .iter()
            .map(|f| f.drv.as_str())
            .collect::<Vec<_>>(),
        [DRV]
    );
    assert_eq!(
        summary
            .cancelled
            .iter()
            .map(|c| c.drv.as_str())
            .collect::<Vec<_>>(),
        [DRV_B]
    );
    assert!(happenings
        .iter()
        .any(|h| matches!(h, Happening::BuildCancelled { drv_path, .. } if drv_path == DRV_B)));
    assert!(!summary.ok);
}

#[test]
fn an_undecided_stop_is_decided_when_the_log_ends() {
    // The stream ends before nix names the failed build: the one nix stopped last failed.
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","",1,1]"#)),
        start(4, 105, &format!(r#"["{DRV_B}","",1,1]"#)),
        result(2, 105, "[0,1,1,1]"),
        stop(4),
        stop(3),
    ];
    let (mut state, now) = feed(&lines);
    assert!(
        state.has_failed(),
        "a counted failure fails the run at once"
    );
    state.settle();
    let summary = state.summary(now);
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].drv, DRV);
    assert_eq!(summary.builds_cancelled, 1);
}

#[test]
fn a_quiet_build_in_a_session_log_is_built_there_not_reused() {
    // A session's log, relocated: the builder's own nix built it (no log line, no phase).
    let lines = vec![
        start(2, 104, "[]"),
        result(2, 105, "[0,1,0,0]"),
        start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#)),
        result(2, 105, "[1,1,0,0]"),
        stop(3),
        stop(2),
    ];
    // Through the build hook the same stream is an output seasmoke already had.
    let (hook, now) = feed(&lines);
    assert_eq!(hook.summary(now).reused.get(SEASMOKE), Some(&1));
    let mut session = State::new();
    session.builds_run_there(SEASMOKE);
    let mut now = Instant::now();
    for line in &lines {
        now += Duration::from_millis(1);
        session.update(&parse_line(line), now);
    }
    let summary = session.summary(now);
    assert_eq!(summary.built.get(SEASMOKE), Some(&1), "{summary:?}");
    assert!(summary.reused.is_empty(), "{summary:?}");
}

#[test]
fn a_copy_over_another_name_of_a_builders_link_is_credited_to_the_builder() {
    // A session's outputs come home over `ssh://seasmoke` from `ssh-ng://seasmoke` (nix 2.34's
    // copy activity and its end).
    let lines = [
        r#"@nix {"action":"start","fields":["/nix/store/h492pfb09kdldlqgb1i8ia652kscrscc-chain-1","ssh://seasmoke","local"],"id":7,"level":3,"text":"copying path '/nix/store/h492pfb09kdldlqgb1i8ia652kscrscc-chain-1' from 'ssh://seasmoke'","type":100}"#,
        r#"@nix {"action":"stop","id":7}"#,
    ];
    let mut state = State::new();
    state.same_link("ssh://seasmoke?ssh-key=/k", SEASMOKE);
    let now = Instant::now();
    for line in lines {
        state.update(&parse_line(line), now);
    }
    let summary = state.summary(now);
    assert_eq!(summary.copied_from, [(SEASMOKE.to_string(), 1)].into());
}

#[test]
fn a_remote_build_takes_the_builders_time_not_the_hooks_copies() {
    // The hook's activity spans sending the source, the build there (relayed, machine "") and
    // bringing the output back; the history wants the build alone.
    let steps: Vec<(u64, String)> = vec![
        (0, start(2, 104, "[]")),
        (0, result(2, 105, "[0,1,0,0]")),
        (0, start(3, 105, &format!(r#"["{DRV}","{SEASMOKE}",1,1]"#))),
        (
            0,
            start(4, 100, &format!(r#"["{SRC}","local","{SEASMOKE}"]"#)),
        ),
        (400, stop(4)),
        (0, start(9, 105, &format!(r#"["{DRV}","",1,1]"#))),
        (250, stop(9)),
        (
            0,
            start(5, 100, &format!(r#"["{OUT}","{SEASMOKE}","local"]"#)),
        ),
        (700, stop(5)),
        (0, result(2, 105, "[1,1,0,0]")),
        (0, stop(3)),
    ];
    let mut state = State::new();
    let mut now = Instant::now();
    let mut finished = None;
    for (after_ms, line) in &steps {
        now += Duration::from_millis(*after_ms);
        state.update(&parse_line(line), now);
        for happening in state.happenings() {
            if let Happening::BuildFinished { elapsed, host, .. } = happening {
                finished = Some((host.clone(), *elapsed));
            }
        }
        state.clear_happenings();
    }
    assert_eq!(
        finished,
        Some((SEASMOKE.to_string(), Duration::from_millis(250)))
    );
}
