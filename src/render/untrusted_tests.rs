//! What a build, a remote host or a configuration wrote reaches the screen neutralised and
//! without secrets, in every renderer: no OSC (title, clipboard), no cursor movement, no
//! passwords or access tokens; colour only on a colour terminal.

use super::tests::Captured;
use super::{BarRenderer, JsonRenderer, PlainRenderer, Render, SilentRenderer, TermSize};
use crate::monitor::Monitor;
use indicatif::{ProgressDrawTarget, TermLike};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sets the window title, writes the clipboard, clears the screen, moves the cursor.
const HOSTILE: &str = "\u{1b}]0;owned\u{7}\u{1b}]52;c;ZXZpbA==\u{1b}\\\u{1b}[2J\u{1b}[H\u{9b}5A\r";

/// A log in which every string nix relays carries control sequences and secrets.
fn hostile_log() -> Vec<String> {
    let e = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let drv = format!("/nix/store/{}-evil.drv", "a".repeat(32));
    let machine = format!("ssh-ng://root@seasmoke{HOSTILE}");
    vec![
        format!(r#"@nix {{"action":"start","id":1,"level":3,"parent":0,"text":"","type":104,"fields":[]}}"#),
        format!(
            r#"@nix {{"action":"start","id":2,"level":3,"parent":1,"text":"building","type":105,"fields":[{},{},1,1]}}"#,
            e(&drv),
            e(&machine)
        ),
        format!(r#"@nix {{"action":"result","id":2,"type":104,"fields":[{}]}}"#, e(&format!("build{HOSTILE}Phase"))),
        format!(r#"@nix {{"action":"result","id":2,"type":101,"fields":[{}]}}"#, e(&format!("log{HOSTILE} line"))),
        format!(
            r#"@nix {{"action":"msg","level":1,"msg":{}}}"#,
            e(&format!("warning: 'https://alice:HUNTER2@cache.example' does not appear to be a binary cache{HOSTILE}"))
        ),
        format!("ssh says{HOSTILE} hello, access-tokens = github.com=ghp_TOKEN1"),
        format!(r#"@nix {{"action":"result","id":1,"type":105,"fields":[0,1,0,1]}}"#),
        format!(
            r#"@nix {{"action":"msg","level":0,"msg":{}}}"#,
            e(&format!("error: build of '{drv}' on 'https://bob:HUNTER2@h' failed{HOSTILE}"))
        ),
        r#"@nix {"action":"stop","id":2}"#.to_string(),
        r#"@nix {"action":"stop","id":1}"#.to_string(),
    ]
}

fn feed(renderer: Box<dyn Render + Send>) {
    let mut monitor = Monitor::new(renderer);
    monitor.set_header("remote", &format!("seasmoke{HOSTILE} is reachable"));
    monitor.message(&format!("nh: activating{HOSTILE}"));
    let mut now = Instant::now();
    for line in hostile_log() {
        now += Duration::from_millis(100);
        monitor.feed_line(&line, now);
        monitor.tick(now);
    }
    monitor.finish(now + Duration::from_secs(1));
}

/// The escape sequences left in `text` other than colour (SGR), and any secret.
fn problems(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for secret in ["HUNTER2", "ghp_TOKEN1"] {
        if text.contains(secret) {
            found.push(format!("secret {secret}"));
        }
    }
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| c.is_control() && c != '\n' && c != '\t') {
        let tail = &rest[i..];
        let sgr = tail.starts_with("\u{1b}[")
            && tail[2..]
                .find(|c: char| !(c.is_ascii_digit() || c == ';'))
                .is_some_and(|end| tail[2 + end..].starts_with('m'));
        if !sgr {
            found.push(format!("{:?}", &tail[..tail.len().min(12)]));
        }
        rest = &tail[tail.chars().next().map_or(1, char::len_utf8)..];
    }
    found
}

/// A terminal that records every string written to it.
#[derive(Clone, Default, Debug)]
struct Recorder(Arc<Mutex<String>>);

impl Recorder {
    fn text(&self) -> String {
        self.0.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

impl TermLike for Recorder {
    fn width(&self) -> u16 {
        100
    }
    fn height(&self) -> u16 {
        40
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(&format!("{line}\n"))
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        if let Ok(mut t) = self.0.lock() {
            t.push_str(text);
        }
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn bars_on_a_colour_terminal_show_no_control_sequences_and_no_secrets() {
    for verbose in [0, 2] {
        let term = Recorder::default();
        let out = Captured::default();
        feed(Box::new(
            BarRenderer::new(
                ProgressDrawTarget::term_like(Box::new(term.clone())),
                Box::new(out.clone()),
                true,
                verbose,
            )
            .with_size(TermSize {
                cols: 100,
                rows: 40,
            }),
        ));
        let shown = format!("{}{}", term.text(), out.text());
        assert!(shown.contains("does not appear"), "{shown}");
        assert!(shown.contains("ssh says"), "{shown}");
        assert_eq!(problems(&shown), Vec::<String>::new(), "{shown:?}");
    }
}

#[test]
fn plain_silent_and_json_show_no_control_sequences_and_no_secrets() {
    for verbose in [0, 2] {
        let plain = Captured::default();
        feed(Box::new(PlainRenderer::new(
            Box::new(plain.clone()),
            verbose,
        )));
        let text = plain.text();
        assert!(
            text.contains("does not appear") && text.contains("ssh says"),
            "{text}"
        );
        assert_eq!(problems(&text), Vec::<String>::new(), "{text:?}");

        let silent = Captured::default();
        feed(Box::new(SilentRenderer::new(Box::new(silent.clone()))));
        assert_eq!(
            problems(&silent.text()),
            Vec::<String>::new(),
            "{:?}",
            silent.text()
        );

        let json = Captured::default();
        feed(Box::new(JsonRenderer::new(Box::new(json.clone()), verbose)));
        let text = json.text();
        assert!(text.contains("ssh says"), "{text}");
        for line in text.lines() {
            assert!(
                serde_json::from_str::<serde_json::Value>(line).is_ok(),
                "{line}"
            );
        }
        assert_eq!(problems(&text), Vec::<String>::new(), "{text:?}");
    }
}
