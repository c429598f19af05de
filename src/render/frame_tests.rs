//! Frames of the live display as text, and what the bar renderer leaves on a terminal.

use super::frame::{frame, FrameInput, TermSize};
use super::text::display_width;
use super::{BarRenderer, Render};
use crate::log::{parse_line, strip_ansi};
use crate::monitor::{Monitor, State};
use indicatif::{ProgressDrawTarget, TermLike};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SEASMOKE: &str = "ssh-ng://seasmoke";
const CACHE: &str = "https://cache.nixos.org";

fn start(id: u64, ty: u64, fields: &str) -> String {
    format!(
        r#"@nix {{"action":"start","id":{id},"level":3,"parent":0,"text":"","type":{ty},"fields":{fields}}}"#
    )
}

fn result(id: u64, ty: u64, fields: &str) -> String {
    format!(r#"@nix {{"action":"result","id":{id},"type":{ty},"fields":{fields}}}"#)
}

fn drv(name: &str) -> String {
    format!("/nix/store/{}-{name}.drv", "a".repeat(32))
}

fn out(name: &str) -> String {
    format!("/nix/store/{}-{name}", "b".repeat(32))
}

/// A remote build in full swing, 12 s in: 4 of 21 built, three running (one on seasmoke in
/// its build phase with a log line, one local, one with a very long name), an output coming
/// back from seasmoke and a 6 MiB download from the cache.
fn busy_state(t0: Instant) -> State {
    let mut state = State::new();
    let at = |secs: u64| t0 + Duration::from_secs(secs);
    let lines: Vec<(u64, String)> = vec![
        (0, start(1, 102, "[]")),
        (0, start(2, 104, "[]")),
        (0, start(3, 103, "[]")),
        (0, result(2, 105, "[4,21,3,0]")),
        (0, result(3, 105, "[0,2,1,0]")),
        (0, result(1, 106, "[100,6291456]")),
        (
            1,
            start(
                10,
                105,
                &format!(r#"["{}","{SEASMOKE}",1,1]"#, drv("hello-2.12")),
            ),
        ),
        (2, result(10, 104, r#"["buildPhase"]"#)),
        (
            3,
            result(
                10,
                101,
                r#"["\u001b[1mgcc\u001b[0m -O2 -c hello.c\r  CC hello.o"]"#,
            ),
        ),
        (
            5,
            start(11, 105, &format!(r#"["{}","",1,1]"#, drv("other-1.0"))),
        ),
        (
            9,
            start(
                12,
                105,
                &format!(
                    r#"["{}","{SEASMOKE}",1,1]"#,
                    drv("a-very-long-derivation-name-that-does-not-fit-1.0")
                ),
            ),
        ),
        (
            10,
            start(
                20,
                100,
                &format!(r#"["{}","{SEASMOKE}","local"]"#, out("zlib-1.3")),
            ),
        ),
        (11, result(20, 105, "[307200,1048576,0,0]")),
        (
            4,
            start(
                30,
                108,
                &format!(r#"["{}","{CACHE}"]"#, out("source.tar.gz")),
            ),
        ),
        (
            4,
            start(
                31,
                100,
                &format!(r#"["{}","{CACHE}","local"]"#, out("source.tar.gz")),
            ),
        ),
        (11, result(31, 105, "[2097152,6291456,0,0]")),
    ];
    for (secs, line) in lines {
        state.update(&parse_line(&line), at(secs));
    }
    state.clear_happenings();
    state
}

fn render(state: &State, t0: Instant, cols: usize, rows: usize, color: bool) -> Vec<String> {
    frame(
        state,
        &FrameInput {
            header: Some((
                "remote",
                "21 derivations must be built and seasmoke is reachable",
            )),
            elapsed: Duration::from_secs(12),
            now: t0 + Duration::from_secs(12),
            size: TermSize { cols, rows },
            color,
            estimate: None,
        },
    )
}

fn assert_frame(got: &[String], want: &[&str]) {
    assert_eq!(got, want, "got:\n{}\n", got.join("\n"));
}

#[test]
fn a_busy_remote_build_on_100_columns() {
    let t0 = Instant::now();
    let state = busy_state(t0);
    assert_frame(
        &render(&state, t0, 100, 30, false),
        &[
            "⠋ mode: remote — 21 derivations must be built and seasmoke is reachable                          12s",
            "   builds [====>                    ] 4/21 done, 3 running, 14 waiting",
            "downloads [========>                ] 0/2 paths, 2.00 MiB of 6.00 MiB from cache.nixos.org",
            "   copies [=======>                 ] 0/1 paths, 300.00 KiB of 1.00 MiB from seasmoke",
            "  ⏵ hello-2.12 on seasmoke (buildPhase) 11s: CC hello.o",
            "  ⏵ other-1.0 locally 7.0s",
            "  ⏵ a-very-long-derivation-name-that-does-not-fit-1.0 on seasmoke 3.0s",
            "  ↓ zlib-1.3 300.00 KiB of 1.00 MiB, 150.00 KiB/s, 4.8s left from seasmoke 2.0s",
            "  ↓ source.tar.gz 2.00 MiB of 6.00 MiB, 256.00 KiB/s, 16s left from cache.nixos.org 8.0s",
        ],
    );
}

#[test]
fn a_narrow_terminal_gets_short_lines_never_wrapped_ones() {
    let t0 = Instant::now();
    let state = busy_state(t0);
    let lines = render(&state, t0, 40, 30, false);
    assert_frame(
        &lines,
        &[
            "⠋ mode: remote — 21 derivations mus… 12s",
            "   builds [==>         ] 4/21, 3 running",
            "downloads [====>       ] 0/2, 2.00 MiB",
            "   copies [===>        ] 0/1, 300.00 KiB",
            "  ⏵ hello-2.12 on seasmoke 11s: CC hell…",
            "  ⏵ other-1.0 locally 7.0s",
            "  ⏵ a-very-long-deriva… on seasmoke 3.0s",
            "  ↓ zlib-1.3 300.00 KiB from seasmoke",
            "  ↓ source.tar.gz 2.00 MiB from cache.n…",
        ],
    );
    for cols in [20, 30, 40, 60, 79, 80, 120] {
        for line in render(&state, t0, cols, 30, true) {
            let width = display_width(&strip_ansi(&line));
            assert!(width <= cols, "{width} > {cols}: {line:?}");
        }
    }
}

#[test]
fn a_short_terminal_gets_a_count_of_the_builds_that_do_not_fit() {
    let t0 = Instant::now();
    let mut state = State::new();
    state.update(&parse_line(&start(2, 104, "[]")), t0);
    state.update(&parse_line(&result(2, 105, "[0,30,20,0]")), t0);
    for n in 0..20 {
        let line = start(
            10 + n,
            105,
            &format!(r#"["{}","",1,1]"#, drv(&format!("leaf-{n}"))),
        );
        state.update(&parse_line(&line), t0);
    }
    let lines = render(&state, t0, 100, 10, false);
    assert_eq!(lines.len(), 9, "one row is left for the cursor: {lines:#?}");
    assert_eq!(lines[2], "  ⏵ leaf-0 locally 12s");
    assert_eq!(lines[8], "  … and 14 more");
    // Even a terminal too short for the overall rows gets no more lines than it has.
    assert_eq!(render(&state, t0, 100, 2, false).len(), 1);
}

#[test]
fn colour_is_only_escape_codes_around_the_same_text() {
    let t0 = Instant::now();
    let state = busy_state(t0);
    let plain = render(&state, t0, 100, 30, false);
    let colored = render(&state, t0, 100, 30, true);
    assert!(plain.iter().all(|l| !l.contains('\u{1b}')));
    assert!(colored
        .iter()
        .any(|l| l.contains("\u{1b}[1mremote\u{1b}[0m")));
    let stripped: Vec<String> = colored.iter().map(|l| strip_ansi(l)).collect();
    assert_eq!(stripped, plain);
}

#[test]
fn a_substitution_shows_no_builds_row_however_many_nix_expects() {
    // nix counts the requested derivations as expected builds until their outputs arrive.
    let t0 = Instant::now();
    let mut state = State::new();
    for line in [
        start(2, 104, "[]"),
        result(2, 105, "[0,2,0,0]"),
        start(30, 108, &format!(r#"["{}","{CACHE}"]"#, out("big"))),
    ] {
        state.update(&parse_line(&line), t0);
    }
    let lines = render(&state, t0, 100, 30, false);
    assert_frame(
        &lines,
        &[
            "⠋ mode: remote — 21 derivations must be built and seasmoke is reachable                          12s",
            "downloads [                         ] 0/1 paths from cache.nixos.org",
            "  ↓ big from cache.nixos.org 12s",
        ],
    );
}

/// A terminal emulated just far enough for indicatif: a grid of rows, a cursor, and the
/// deferred wrap real terminals have (a line filled to the last column moves the cursor on
/// only when the next character comes).
#[derive(Debug, Clone)]
struct Screen(Arc<Mutex<ScreenState>>);

#[derive(Debug)]
struct ScreenState {
    cols: usize,
    rows: Vec<Vec<char>>,
    row: usize,
    col: usize,
    wrap_pending: bool,
}

impl Screen {
    fn new(cols: usize) -> Screen {
        Screen(Arc::new(Mutex::new(ScreenState {
            cols,
            rows: vec![Vec::new()],
            row: 0,
            col: 0,
            wrap_pending: false,
        })))
    }

    fn with<R>(&self, f: impl FnOnce(&mut ScreenState) -> R) -> R {
        match self.0.lock() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// The rows that are not blank, trailing blanks removed.
    fn text(&self) -> Vec<String> {
        self.with(|s| {
            s.rows
                .iter()
                .map(|r| r.iter().collect::<String>().trim_end().to_string())
                .filter(|r| !r.is_empty())
                .collect()
        })
    }
}

impl ScreenState {
    fn down(&mut self) {
        self.row += 1;
        while self.rows.len() <= self.row {
            self.rows.push(Vec::new());
        }
    }

    fn put(&mut self, c: char) {
        match c {
            '\n' => {
                self.down();
                self.col = 0;
                self.wrap_pending = false;
            }
            '\r' => {
                self.col = 0;
                self.wrap_pending = false;
            }
            c => {
                if self.wrap_pending {
                    self.down();
                    self.col = 0;
                    self.wrap_pending = false;
                }
                let cols = self.cols;
                let row = &mut self.rows[self.row];
                if row.len() <= self.col {
                    row.resize(self.col + 1, ' ');
                }
                row[self.col] = c;
                if self.col + 1 == cols {
                    self.wrap_pending = true;
                } else {
                    self.col += 1;
                }
            }
        }
    }
}

impl TermLike for Screen {
    fn width(&self) -> u16 {
        self.with(|s| s.cols as u16)
    }
    fn height(&self) -> u16 {
        40
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.with(|s| {
            s.row = s.row.saturating_sub(n);
            s.wrap_pending = false;
        });
        Ok(())
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.with(|s| {
            for _ in 0..n {
                s.down();
            }
            s.wrap_pending = false;
        });
        Ok(())
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.with(|s| s.col = (s.col + n).min(s.cols - 1));
        Ok(())
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.with(|s| s.col = s.col.saturating_sub(n));
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(line)?;
        self.write_str("\n")
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        let text = strip_ansi(text);
        self.with(|s| text.chars().for_each(|c| s.put(c)));
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.with(|s| {
            let row = s.row;
            s.rows[row].clear();
            s.col = 0;
            s.wrap_pending = false;
        });
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A monitor drawing bars on an emulated 60-column terminal, fed the first `lines` lines of
/// the slow remote build recording (one build on seasmoke, ticking).
fn monitor_on_screen(lines: usize) -> (Monitor, Screen, Instant) {
    let screen = Screen::new(60);
    let renderer = BarRenderer::new(
        ProgressDrawTarget::term_like(Box::new(screen.clone())),
        Box::new(std::io::sink()),
        false,
        0,
    )
    .with_size(TermSize { cols: 60, rows: 40 });
    let mut monitor = Monitor::new(Box::new(renderer));
    monitor.set_header(
        "remote",
        "1 derivation must be built and seasmoke is reachable",
    );
    let text = crate::log::recordings::named("nix-2.26-remote-build-slow.log");
    let mut now = Instant::now();
    for line in text.lines().take(lines) {
        now += Duration::from_millis(100);
        monitor.feed_line(line, now);
    }
    monitor.tick(now + Duration::from_secs(1));
    (monitor, screen, now)
}

#[test]
fn the_frame_is_drawn_on_the_terminal_and_never_wider() {
    let (monitor, screen, _) = monitor_on_screen(80);
    let shown = screen.text();
    assert!(
        shown.iter().any(|l| l.starts_with("  ⏵ slow on seasmoke")),
        "{shown:#?}"
    );
    assert!(
        shown.iter().any(|l| l.contains("mode: remote")),
        "{shown:#?}"
    );
    for line in &shown {
        assert!(display_width(line) <= 60, "{line:?}");
    }
    drop(monitor);
}

#[test]
fn an_interrupted_run_leaves_no_bar_lines_behind() {
    let (monitor, screen, _) = monitor_on_screen(80);
    assert!(screen.text().iter().any(|l| l.contains('⏵')));
    // Ctrl-C: the command returns an error and the monitor is dropped unfinished.
    drop(monitor);
    let left = screen.text();
    assert!(
        left.iter()
            .all(|l| !l.contains('⏵') && !l.contains("mode:") && !l.contains("builds")),
        "bar lines left on the terminal: {left:#?}"
    );
}

#[test]
fn a_finished_run_leaves_only_what_was_printed_above_the_frame() {
    let all = crate::log::recordings::named("nix-2.26-remote-build-slow.log")
        .lines()
        .count();
    let (monitor, screen, now) = monitor_on_screen(all);
    monitor.finish(now);
    let left = screen.text();
    assert_eq!(left.len(), 1, "{left:#?}");
    assert!(
        left[0].starts_with("✓ built slow on seasmoke in "),
        "{left:#?}"
    );
}

#[test]
fn an_abandoned_run_still_shows_its_header_and_how_long_it_ran() {
    let out = super::tests::Captured::default();
    let mut renderer = BarRenderer::new(
        ProgressDrawTarget::hidden(),
        Box::new(out.clone()),
        false,
        0,
    );
    renderer.header("local", "no builder is configured");
    let mut state = State::new();
    let t0 = Instant::now();
    state.update(&parse_line(&start(2, 104, "[]")), t0);
    let mut summary = state.summary(t0 + Duration::from_secs(3));
    summary.ok = false;
    renderer.abandon(&state, &summary);
    assert_eq!(
        out.text(),
        "mode: local — no builder is configured\nstopped after 3.0s\n"
    );
}
