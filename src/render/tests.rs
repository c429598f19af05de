//! Every recording in tests/data replayed through the monitor and all renderers.

use super::*;
use crate::monitor::{Monitor, Summary};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A writer whose bytes the test can read back after the renderer is gone.
#[derive(Clone, Default)]
pub(super) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    pub(super) fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn recordings() -> Vec<PathBuf> {
    crate::log::recordings::all()
}

/// Replays a recording with 10 ms between lines; returns the summary.
fn replay(path: &Path, renderer: Box<dyn Render + Send>) -> Summary {
    let text = crate::log::recordings::read(path);
    let mut monitor = Monitor::new(renderer);
    monitor.set_header(
        "local",
        "nothing can be substituted and no builder is configured",
    );
    monitor.message("a message of the caller's own");
    let start = Instant::now();
    let mut now = start;
    for line in text.lines() {
        now += Duration::from_millis(10);
        monitor.feed_line(line, now);
        monitor.tick(now);
    }
    assert_eq!(
        monitor.state().live_activities(),
        0,
        "{}: activities left running",
        path.display()
    );
    monitor.finish(now)
}

#[test]
fn every_recording_renders_in_every_renderer() {
    for path in recordings() {
        let name = path.display();
        let plain_out = Captured::default();
        let plain = replay(
            &path,
            Box::new(PlainRenderer::new(Box::new(plain_out.clone()), 2)),
        );
        let plain_text = plain_out.text();
        assert!(
            !plain_text.contains('\u{1b}'),
            "{name}: escape codes in plain output:\n{plain_text}"
        );
        assert!(plain_text.contains("mode: local"), "{name}: no header");

        let json_out = Captured::default();
        let json = replay(
            &path,
            Box::new(JsonRenderer::new(Box::new(json_out.clone()), 1)),
        );
        let json_text = json_out.text();
        let events: Vec<serde_json::Value> = json_text
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: not JSON: {l}: {e}"))
            })
            .collect();
        assert_eq!(
            events.first().and_then(|e| e["event"].as_str()),
            Some("plan"),
            "{name}"
        );
        let last = events.last().cloned().unwrap_or_default();
        assert_eq!(last["event"], "summary", "{name}");
        assert_eq!(last["ok"], serde_json::json!(json.ok), "{name}");

        let bar_out = Captured::default();
        let bar = replay(
            &path,
            Box::new(BarRenderer::new(
                indicatif::ProgressDrawTarget::hidden(),
                Box::new(bar_out.clone()),
                true,
                1,
            )),
        );
        assert!(
            bar_out.text().contains("mode:"),
            "{name}: the summary block repeats the header"
        );

        let silent_out = Captured::default();
        let silent = replay(
            &path,
            Box::new(SilentRenderer::new(Box::new(silent_out.clone()))),
        );
        if silent.ok {
            assert_eq!(
                silent_out.text(),
                "",
                "{name}: --progress none prints nothing on success"
            );
        } else {
            assert!(
                !silent_out.text().is_empty(),
                "{name}: --progress none shows errors"
            );
        }

        // The renderer never changes what happened.
        for other in [&json, &bar, &silent] {
            assert_eq!(
                (&plain.built, &plain.substituted, &plain.failed),
                (&other.built, &other.substituted, &other.failed)
            );
        }
        // A failed build always fails the run; an error message alone may not (relayed
        // warnings, "error (ignored)"), but a failed run always has a build or error to show.
        if plain.ok {
            assert!(plain.failed.is_empty(), "{name}");
        } else {
            assert!(
                !plain.failed.is_empty() || !plain.errors.is_empty(),
                "{name}"
            );
        }
    }
}

fn summary_of(file: &str) -> (Summary, String, Vec<serde_json::Value>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let plain_out = Captured::default();
    let summary = replay(
        &path,
        Box::new(PlainRenderer::new(Box::new(plain_out.clone()), 0)),
    );
    let json_out = Captured::default();
    replay(
        &path,
        Box::new(JsonRenderer::new(Box::new(json_out.clone()), 0)),
    );
    let events = json_out
        .text()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (summary, plain_out.text(), events)
}

fn count_events(events: &[serde_json::Value], name: &str) -> usize {
    events.iter().filter(|e| e["event"] == name).count()
}

#[test]
fn chain_builds_three_derivations_locally() {
    for file in ["nix-2.8-build-chain.log", "nix-2.26-build-chain.log"] {
        let (summary, plain, events) = summary_of(file);
        assert!(summary.ok, "{file}");
        assert_eq!(summary.built.get("local"), Some(&3), "{file}");
        assert!(
            summary.substituted.is_empty() && summary.failed.is_empty(),
            "{file}"
        );
        assert_eq!(count_events(&events, "build_start"), 3, "{file}");
        assert_eq!(count_events(&events, "build_done"), 3, "{file}");
        assert!(
            plain.contains("building nd-chain-a locally"),
            "{file}:\n{plain}"
        );
        assert!(
            plain.contains("built nd-chain-c locally in"),
            "{file}:\n{plain}"
        );
        assert!(
            plain.contains("built 3 derivations: 3 locally"),
            "{file}:\n{plain}"
        );
        // Talkative evaluation chatter stays out of the default display.
        assert!(!plain.contains("evaluating file"), "{file}:\n{plain}");
    }
}

#[test]
fn failing_build_keeps_its_last_log_lines() {
    for file in ["nix-2.8-build-fail.log", "nix-2.26-build-fail.log"] {
        let (summary, plain, events) = summary_of(file);
        assert!(!summary.ok, "{file}");
        assert_eq!(
            summary.built.get("local"),
            Some(&1),
            "{file}: chain-a built"
        );
        assert_eq!(summary.failed.len(), 1, "{file}");
        let failed = &summary.failed[0];
        assert!(failed.drv.ends_with("-nd-fail.drv"), "{file}");
        assert_eq!(failed.host, "local");
        assert_eq!(failed.log.len(), crate::monitor::LOG_TAIL_LINES, "{file}");
        assert_eq!(
            failed.log.last().map(String::as_str),
            Some("fail: error: something went wrong")
        );
        assert_eq!(summary.errors.len(), 1, "{file}");
        assert!(
            summary.errors[0].contains("failed with exit code 1"),
            "{file}"
        );
        assert_eq!(count_events(&events, "build_failed"), 1, "{file}");
        assert_eq!(count_events(&events, "build_done"), 1, "{file}");
        assert!(plain.contains("nd-fail> fail: line 25"), "{file}:\n{plain}");
        assert!(
            plain.contains(
                "FAILED: /nix/store/9pyk6vw9wk58lwp82vzgrwfsxz9gcqzn-nd-fail.drv locally"
            ),
            "{file}"
        );
    }
}

#[test]
fn substitution_counts_paths_and_bytes_per_cache() {
    for (file, cache) in [
        ("nix-2.8-substitute-http.log", "http://127.0.0.1:18931"),
        ("nix-2.26-substitute-http.log", "http://127.0.0.1:18931"),
        ("nix-2.8-substitute-file.log", "file:///tmp/ndrec/cache"),
    ] {
        let (summary, plain, events) = summary_of(file);
        assert!(summary.ok, "{file}");
        assert!(summary.built.is_empty(), "{file}");
        assert_eq!(summary.substituted.get(cache), Some(&2), "{file}");
        assert!(
            summary.copied_from.is_empty() && summary.copied_to.is_empty(),
            "{file}"
        );
        // The 6 MiB path's NAR; the small one reported no progress.
        assert!(
            summary.bytes_downloaded >= 6 * 1024 * 1024,
            "{file}: {}",
            summary.bytes_downloaded
        );
        assert_eq!(count_events(&events, "substitute_start"), 2, "{file}");
        assert_eq!(count_events(&events, "substitute_done"), 2, "{file}");
        assert!(
            plain.contains(&format!("fetched nd-big from {cache} (6.00 MiB")),
            "{file}:\n{plain}"
        );
    }
}

#[test]
fn nix_copy_counts_paths_sent() {
    // The outputs' runtime closures are themselves: `chain` is one path, `chain big` two.
    for (file, cache, paths) in [
        (
            "nix-2.26-copy-to-file-cache.log",
            "file:///tmp/ndrec/cache226",
            1,
        ),
        (
            "nix-2.8-copy-to-file-cache.log",
            "file:///tmp/ndrec/cache",
            2,
        ),
    ] {
        let (summary, plain, events) = summary_of(file);
        assert!(summary.ok, "{file}");
        assert_eq!(summary.copied_to.get(cache), Some(&paths), "{file}");
        assert!(
            summary.substituted.is_empty() && summary.copied_from.is_empty(),
            "{file}"
        );
        assert_eq!(count_events(&events, "copy_done"), paths as usize, "{file}");
        assert!(events
            .iter()
            .any(|e| e["event"] == "copy_start" && e["from"] == "local" && e["to"] == cache));
        assert!(
            plain.contains(&format!("copied nd-chain-c to {cache}")),
            "{file}:\n{plain}"
        );
    }
}

#[test]
fn evaluation_error_fails_the_run_without_builds() {
    for file in ["nix-2.8-eval-error.log", "nix-2.26-eval-error.log"] {
        let (summary, plain, _) = summary_of(file);
        assert!(!summary.ok, "{file}");
        assert!(
            summary.built.is_empty() && summary.failed.is_empty(),
            "{file}"
        );
        assert!(
            summary.errors[0].contains("nd-fixture: this attribute does not evaluate"),
            "{file}"
        );
        assert!(plain.contains("error:"), "{file}:\n{plain}");
    }
}

#[test]
fn systemd_prefixed_stream_is_understood() {
    let (summary, plain, _) = summary_of("nix-2.26-build-in-systemd.log");
    assert_eq!(summary.built.get("local"), Some(&1));
    assert!(!plain.contains("<3>"), "{plain}");
}

#[test]
fn choosing_a_renderer() {
    use crate::cli::ProgressArg::*;
    let kind = |p, json, quiet, tty| choose(p, json, quiet, tty, false).kind;
    assert_eq!(kind(Auto, false, false, true), RendererKind::Bar);
    assert_eq!(kind(Auto, false, false, false), RendererKind::Plain);
    assert_eq!(kind(Bar, false, false, false), RendererKind::Plain);
    assert_eq!(kind(Tree, false, false, true), RendererKind::Tree);
    assert_eq!(kind(Tree, false, false, false), RendererKind::Plain);
    assert_eq!(kind(Plain, false, false, true), RendererKind::Plain);
    assert_eq!(kind(None, false, false, true), RendererKind::Silent);
    assert_eq!(kind(Auto, false, true, true), RendererKind::Silent);
    assert_eq!(kind(Bar, true, false, true), RendererKind::Json);
    assert!(choose(Auto, false, false, true, false).color);
    assert!(!choose(Auto, false, false, true, true).color);
    assert!(!choose(Plain, false, false, true, false).color);
    assert!(no_color_requested(Some(std::ffi::OsStr::new("1"))));
    assert!(!no_color_requested(Some(std::ffi::OsStr::new(""))));
    assert!(!no_color_requested(Option::None));
}

#[test]
fn remote_builds_count_where_they_ran() {
    const SEASMOKE: &str = "ssh-ng://seasmoke";
    for (file, built) in [
        ("nix-2.8-remote-build-chain.log", 3),
        ("nix-2.26-remote-build-chain.log", 3),
        ("nix-2.8-remote-build-wide.log", 5),
        ("nix-2.26-remote-build-slow.log", 1),
    ] {
        let (summary, plain, events) = summary_of(file);
        assert!(summary.ok, "{file}");
        assert_eq!(
            summary.built,
            [(SEASMOKE.to_string(), built)].into(),
            "{file}: the builder's own relayed activities are not local builds"
        );
        // nix 2.26 names the store of the hook's copies `ssh-ng://`: the running build's machine stands in.
        assert_eq!(
            summary.copied_from,
            [(SEASMOKE.to_string(), built)].into(),
            "{file}"
        );
        assert!(
            summary.reused.is_empty() && summary.substituted.is_empty(),
            "{file}"
        );
        assert_eq!(
            count_events(&events, "build_start"),
            built as usize,
            "{file}"
        );
        assert!(
            plain.contains(&format!("built {built} derivation")),
            "{file}:\n{plain}"
        );
        assert!(plain.contains("on seasmoke"), "{file}:\n{plain}");
    }
}

#[test]
fn builder_handing_back_what_it_had_is_not_a_build() {
    let (summary, plain, events) = summary_of("nix-2.8-remote-copy-back.log");
    assert!(summary.ok);
    assert!(summary.built.is_empty(), "{:?}", summary.built);
    assert_eq!(
        summary.reused,
        [("ssh-ng://seasmoke".to_string(), 3)].into()
    );
    assert_eq!(
        summary.copied_from,
        [("ssh-ng://seasmoke".to_string(), 3)].into()
    );
    assert_eq!(count_events(&events, "build_reused"), 3);
    assert!(
        plain.contains("chain-1 was already built on seasmoke: copied here, not rebuilt"),
        "{plain}"
    );
    assert!(
        plain.contains("reused 3 derivations a builder had already built: 3 on seasmoke"),
        "{plain}"
    );
}

#[test]
fn remote_failure_names_the_builder_and_keeps_the_log() {
    let (summary, plain, _) = summary_of("nix-2.26-remote-build-fail.log");
    assert!(!summary.ok);
    assert!(summary.built.is_empty());
    assert_eq!(summary.failed.len(), 1);
    assert_eq!(summary.failed[0].host, "ssh-ng://seasmoke");
    assert_eq!(
        summary.failed[0].log.last().map(String::as_str),
        Some("error: fail fails on purpose (nixdispatch lab fixture)")
    );
    assert_eq!(summary.failed[0].log.len(), 4);
    assert!(
        plain.contains("FAILED: /nix/store/vlb5id6g817yqc0784bscxrdyzdvnkvi-fail.drv on seasmoke"),
        "{plain}"
    );
}

#[test]
fn unreachable_builder_is_an_error_with_ssh_lines_shown() {
    let (summary, plain, events) = summary_of("nix-2.26-remote-builder-down.log");
    assert!(!summary.ok);
    assert!(summary.built.is_empty() && summary.failed.is_empty());
    assert!(
        summary
            .errors
            .iter()
            .any(|e| e.contains("failed to start SSH connection to 'seasmoke'")),
        "{:?}",
        summary.errors
    );
    assert!(
        plain.contains("ssh: connect to host 127.0.0.1 port"),
        "{plain}"
    );
    assert!(events.iter().any(|e| e["event"] == "log"
        && e["line"]
            .as_str()
            .is_some_and(|l| l.starts_with("ssh: connect"))));
}

#[test]
fn drive_reads_a_whole_stream() {
    let bytes = crate::log::recordings::named("nix-2.8-build-chain.log").into_bytes();
    let out = Captured::default();
    let monitor = Monitor::new(Box::new(JsonRenderer::new(Box::new(out.clone()), 0)));
    let summary = crate::monitor::drive(std::io::Cursor::new(bytes), monitor);
    assert_eq!(summary.built_total(), 3);
    assert!(out
        .text()
        .lines()
        .last()
        .is_some_and(|l| l.starts_with(r#"{"event":"summary""#)));
}

#[test]
fn a_monitor_can_move_to_the_task_reading_nix() {
    fn assert_send<T: Send>() {}
    assert_send::<Monitor>();
    assert_send::<BarRenderer>();
}

#[test]
fn one_failure_among_parallel_remote_builds_is_named_right() {
    // failmix: three ticking leaves and failmix-bad on seasmoke; failmix-bad fails, nix stops
    // the others unfinished (no --keep-going), in an order that does not say which failed.
    for file in [
        "nix-2.26-remote-build-one-fails.log",
        "nix-2.8-remote-build-one-fails.log",
    ] {
        let (summary, plain, events) = summary_of(file);
        assert!(!summary.ok, "{file}");
        assert_eq!(summary.failed.len(), 1, "{file}: {:?}", summary.failed);
        assert!(
            summary.failed[0].drv.ends_with("-failmix-bad.drv"),
            "{file}: {:?}",
            summary.failed[0]
        );
        assert_eq!(summary.failed[0].host, "ssh-ng://seasmoke");
        assert!(
            summary.built.is_empty() && summary.reused.is_empty(),
            "{file}: nothing finished: {:?} {:?}",
            summary.built,
            summary.reused
        );
        assert_eq!(count_events(&events, "build_cancelled"), 3, "{file}");
        assert_eq!(count_events(&events, "build_done"), 0, "{file}");
        assert!(
            plain.contains("cancelled failmix-leaf-1 on seasmoke after"),
            "{file}:\n{plain}"
        );
        assert!(!plain.contains("built failmix"), "{file}:\n{plain}");
    }
}

#[test]
fn a_builder_killed_mid_build_fails_one_build_and_cancels_the_rest() {
    let (summary, plain, events) = summary_of("nix-2.26-remote-builder-killed.log");
    assert!(!summary.ok);
    assert!(summary.built.is_empty(), "{:?}", summary.built);
    assert_eq!(summary.failed.len(), 1);
    assert!(summary.failed[0].drv.ends_with("-slowwide-leaf-3.drv"));
    assert_eq!(count_events(&events, "build_cancelled"), 3);
    // nix says "Nix daemon disconnected unexpectedly" once per running build: shown once.
    assert_eq!(
        plain
            .matches("Nix daemon disconnected unexpectedly")
            .count(),
        1,
        "{plain}"
    );
    assert!(
        plain.contains("(3 repeated nix messages not shown)"),
        "{plain}"
    );
    let disconnected = events
        .iter()
        .filter(|e| {
            e["event"] == "message"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("Nix daemon disconnected"))
        })
        .count();
    assert_eq!(disconnected, 4, "JSON keeps every message");
}

#[test]
fn an_interrupted_nix_built_nothing() {
    let (summary, _, events) = summary_of("nix-2.26-remote-build-interrupted.log");
    assert!(!summary.ok);
    assert!(summary.built.is_empty() && summary.failed.is_empty());
    assert_eq!(count_events(&events, "build_cancelled"), 4);
}

#[test]
fn repeated_warnings_that_differ_only_in_derivations_are_shown_once() {
    use crate::log::Verbosity;
    let mut repeats = super::text::Repeats::default();
    let warning = |name: &str| {
        format!(
            "Failed to find a machine for remote build!\nderivation: {}-{name}.drv\n1 available machines:",
            "x".repeat(32)
        )
    };
    assert!(repeats.admit(Verbosity::Warn, &warning("leaf-1")));
    assert!(!repeats.admit(Verbosity::Warn, &warning("leaf-2")));
    assert!(repeats.admit(Verbosity::Warn, "warning: something else"));
    assert!(repeats.admit(
        Verbosity::Error,
        "error: builder for '/nix/store/a.drv' failed"
    ));
    assert!(repeats.admit(
        Verbosity::Error,
        "error: builder for '/nix/store/b.drv' failed"
    ));
    assert!(!repeats.admit(
        Verbosity::Error,
        "error: builder for '/nix/store/b.drv' failed"
    ));
    assert!(repeats.admit(Verbosity::Info, "same"));
    assert!(repeats.admit(Verbosity::Info, "same"));
    assert_eq!(
        repeats.hidden_line().as_deref(),
        Some("(2 repeated nix messages not shown)")
    );
}

#[test]
fn log_lines_for_display_lose_escapes_carriage_returns_and_tabs() {
    use super::text::{clean_line, fit};
    assert_eq!(clean_line("\u{1b}[1mgcc\u{1b}[0m\t-c x.c"), "gcc -c x.c");
    assert_eq!(clean_line("10%\r50%\r100% done\r\n"), "100% done");
    assert_eq!(fit("hello world", 8), "hello w…");
    assert_eq!(fit("hello", 5), "hello");
    assert_eq!(fit("日本語テキスト", 7), "日本語…");
    assert_eq!(fit("x", 0), "");
}

#[test]
fn a_warning_nix_relays_at_error_level_does_not_fail_the_run() {
    // Nix 2.26 client, remote build on seasmoke whose substituter is an HTTP URL that is not a
    // binary cache: the build hook relays the builder's warning at level 0 (error), 3 times.
    let file = "nix-2.26-remote-build-forwarded-warning.log";
    let (summary, plain, events) = summary_of(file);
    assert!(summary.ok, "{file}: {:?}", summary.errors);
    assert_eq!(
        summary.built.get("ssh-ng://seasmoke"),
        Some(&3),
        "{file}: {:?}",
        summary.built
    );
    assert!(summary.failed.is_empty() && summary.errors.is_empty());
    assert!(
        plain.contains("does not appear to be a binary cache"),
        "{file}: the warning is still shown:\n{plain}"
    );
    assert!(plain
        .lines()
        .last()
        .is_some_and(|l| l.starts_with("done in")));
    let warnings: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| {
            e["event"] == "message"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("does not appear to be a binary cache"))
        })
        .collect();
    assert!(!warnings.is_empty(), "{file}: {events:?}");
    assert!(
        warnings.iter().all(|e| e["level"] == "warn"),
        "{file}: {warnings:?}"
    );
}

#[test]
fn a_build_nix_cancelled_because_another_failed_is_cancelled_not_failed() {
    // `nix build -j2 #fail #slow` (two independent derivations, no --keep-going): `fail` fails
    // after a few lines, nix stops `slow` unfinished. Both versions stop `slow` first.
    for (file, place) in [
        ("nix-2.26-one-fails-one-cancelled.log", "locally"),
        ("nix-2.8-one-fails-one-cancelled.log", "locally"),
        ("nix-2.26-remote-one-fails-one-cancelled.log", "on seasmoke"),
        ("nix-2.8-remote-one-fails-one-cancelled.log", "on seasmoke"),
    ] {
        let (summary, plain, events) = summary_of(file);
        assert!(!summary.ok, "{file}");
        let failed: Vec<&str> = summary.failed.iter().map(|f| f.drv.as_str()).collect();
        assert!(
            matches!(failed.as_slice(), [one] if one.ends_with("-fail.drv")),
            "{file}: {failed:?}"
        );
        let cancelled: Vec<&str> = summary.cancelled.iter().map(|c| c.drv.as_str()).collect();
        assert!(
            matches!(cancelled.as_slice(), [one] if one.ends_with("-slow.drv")),
            "{file}: {cancelled:?}"
        );
        assert_eq!(summary.builds_cancelled, 1, "{file}");
        assert_eq!(count_events(&events, "build_failed"), 1, "{file}");
        assert_eq!(count_events(&events, "build_cancelled"), 1, "{file}");
        assert!(
            plain.contains(&format!("cancelled slow {place} after")),
            "{file}:\n{plain}"
        );
        assert!(
            plain.contains(&format!(
                "cancelled 1 build (nix stopped it unfinished, not failed): slow {place}"
            )),
            "{file}:\n{plain}"
        );
        assert!(!plain.contains("FAILED: /nix/store/3zg83sxlfiwbj3gd406gahrg51zyn5xk-slow.drv"));
    }
}

#[test]
fn with_keep_going_the_others_are_built_not_cancelled() {
    // `nix build -k -j2 #fail #wide` (Nix 2.8): `fail` fails while wide's leaves build on.
    let file = "nix-2.8-keep-going-one-fails.log";
    let (summary, _plain, events) = summary_of(file);
    assert!(!summary.ok);
    assert_eq!(summary.failed.len(), 1, "{:?}", summary.failed);
    assert!(summary.failed[0].drv.ends_with("-fail.drv"));
    assert_eq!(summary.built.get("local"), Some(&5), "{:?}", summary.built);
    assert_eq!(summary.builds_cancelled, 0);
    assert_eq!(count_events(&events, "build_cancelled"), 0);
}
