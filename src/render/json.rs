//! `--json`: one JSON object per line on stdout, the last one always the summary.

use super::text::message_shown;
use super::{Output, Render};
use crate::cli::LogsArg;
use crate::history::estimate::Estimate;
use crate::log::{strip_ansi, Verbosity};
use crate::monitor::{store_path_name, Happening, State, Summary, TransferKind};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Instant;

/// Writes events as JSON lines, for programs: `plan`, `note` (the caller's messages),
/// `build_start`, `build_phase`, `build_done`, `build_reused` (a builder handed back outputs it
/// already had), `build_cancelled` (nix stopped it unfinished), `build_failed`, `substitute_start`,
/// `substitute_done`, `copy_start`, `copy_done`, `message` (nix's errors, warnings and
/// information), `log` (lines that were not part of nix's JSON log), `build_log` (builders'
/// lines, with `-v`), `estimate` (what the whole run has left, after each step that ends,
/// when the history knows any step), and last `summary` (the fields of [`Summary`]).
/// Where the history knows, `plan`, `build_start`, `copy_start` and `substitute_start` carry
/// `expected_secs`; unknown means absent, never a guess. Each line is flushed as
/// it is written so a reader sees events live.
pub struct JsonRenderer {
    out: Output,
    verbose: u8,
    /// The whole run's expected time at its start, for the `plan` event.
    expected: Option<Estimate>,
    logs: LogsArg,
}

impl JsonRenderer {
    /// Writes to `out` (stdout in the program, a buffer in tests); `verbose` adds builders' log
    /// lines.
    pub fn new(out: Output, verbose: u8) -> Self {
        JsonRenderer {
            out,
            verbose,
            expected: None,
            logs: LogsArg::Failed,
        }
    }

    /// The same renderer showing the build logs `--logs` asks for: `all` adds a `build_log`
    /// event per line (as `-v` does), `none` leaves failed builds' `log` empty.
    pub fn with_logs(mut self, logs: LogsArg) -> Self {
        self.logs = logs;
        self
    }

    /// Writes one event object as a line, its `"event"` member first for people reading the
    /// stream (serde_json orders the others alphabetically).
    fn emit(&mut self, value: Value) {
        let line = match value {
            Value::Object(mut object) => match object.remove("event") {
                Some(event) => match Value::Object(object).to_string().strip_prefix('{') {
                    Some("}") | None => format!("{{\"event\":{event}}}"),
                    Some(members) => format!("{{\"event\":{event},{members}"),
                },
                None => Value::Object(object).to_string(),
            },
            other => other.to_string(),
        };
        // A closed stdout must not end the run. Secrets are redacted in the encoded line (the
        // redaction never adds quotes or backslashes, so the line stays valid JSON), raw C1
        // controls escaped.
        let _ = writeln!(self.out, "{}", crate::output::json_text(&line));
        let _ = self.out.flush();
    }
}

fn level_name(level: Verbosity) -> String {
    match level {
        Verbosity::Error => "error".into(),
        Verbosity::Warn => "warn".into(),
        Verbosity::Notice => "notice".into(),
        Verbosity::Info => "info".into(),
        Verbosity::Talkative => "talkative".into(),
        Verbosity::Chatty => "chatty".into(),
        Verbosity::Debug => "debug".into(),
        Verbosity::Vomit => "vomit".into(),
        Verbosity::Other(n) => n.to_string(),
    }
}

/// The JSON event for one happening, or `None` when it has none at this verbosity.
fn event(happening: &Happening, verbose: u8) -> Option<Value> {
    Some(match happening {
        Happening::BuildStarted {
            drv_path,
            host,
            expected,
            copy_back,
        } => {
            let mut value = json!({"event": "build_start", "drv": drv_path, "name": store_path_name(drv_path), "host": host});
            if *copy_back {
                // The plan says the builder has it: nix's build hook only copies it back.
                value["copy_back"] = json!(true);
            }
            with_expected(value, *expected)
        }
        Happening::BuildFinished {
            drv_path,
            host,
            elapsed,
        } => json!({
            "event": "build_done", "drv": drv_path, "name": store_path_name(drv_path), "host": host,
            "secs": elapsed.as_secs_f64(),
        }),
        Happening::BuildReused { drv_path, host } => {
            json!({"event": "build_reused", "drv": drv_path, "name": store_path_name(drv_path), "host": host})
        }
        Happening::BuildCancelled {
            drv_path,
            host,
            elapsed,
        } => json!({
            "event": "build_cancelled", "drv": drv_path, "name": store_path_name(drv_path), "host": host,
            "secs": elapsed.as_secs_f64(),
        }),
        Happening::BuildFailed { build } => json!({
            "event": "build_failed", "drv": build.drv, "name": store_path_name(&build.drv), "host": build.host,
            "log": build.log,
        }),
        Happening::BuildPhase { drv_path, phase } => {
            json!({"event": "build_phase", "drv": drv_path, "phase": phase})
        }
        Happening::BuildLog { drv_path, line } if verbose > 0 => {
            json!({"event": "build_log", "drv": drv_path, "line": line})
        }
        Happening::BuildLog { .. } => return None,
        Happening::TransferStarted {
            kind: TransferKind::Substitute,
            path,
            peer,
            expected,
            total_bytes,
        } => with_total(
            with_expected(
                json!({"event": "substitute_start", "path": path, "name": store_path_name(path), "from": peer, "bytes": 0}),
                *expected,
            ),
            *total_bytes,
        ),
        Happening::TransferStarted {
            kind,
            path,
            peer,
            expected,
            total_bytes,
        } => {
            let (from, to) = ends(*kind, peer);
            with_total(
                with_expected(
                    json!({"event": "copy_start", "path": path, "name": store_path_name(path), "from": from, "to": to, "bytes": 0}),
                    *expected,
                ),
                *total_bytes,
            )
        }
        Happening::TransferFinished {
            kind: TransferKind::Substitute,
            path,
            peer,
            bytes,
            total_bytes,
            elapsed,
        } => with_total(
            json!({
                "event": "substitute_done", "path": path, "name": store_path_name(path), "from": peer,
                "bytes": bytes, "secs": elapsed.as_secs_f64(),
            }),
            *total_bytes,
        ),
        Happening::TransferFinished {
            kind,
            path,
            peer,
            bytes,
            total_bytes,
            elapsed,
        } => {
            let (from, to) = ends(*kind, peer);
            with_total(
                json!({
                    "event": "copy_done", "path": path, "name": store_path_name(path), "from": from, "to": to,
                    "bytes": bytes, "secs": elapsed.as_secs_f64(),
                }),
                *total_bytes,
            )
        }
        Happening::Message { level, text } if message_shown(*level, verbose.max(1)) => {
            json!({"event": "message", "level": level_name(*level), "text": text})
        }
        Happening::Message { .. } => return None,
        Happening::Passthrough(line) => json!({"event": "log", "line": strip_ansi(line)}),
    })
}

/// `value` with `expected_secs` when the history knows how long the step takes; without it
/// when not (never a guess).
fn with_expected(mut value: Value, expected: Option<std::time::Duration>) -> Value {
    if let (Some(expected), Value::Object(object)) = (expected, &mut value) {
        object.insert("expected_secs".into(), json!(expected.as_secs_f64()));
    }
    value
}

/// `value` with `total_bytes` when the size is known.
fn with_total(mut value: Value, total: Option<u64>) -> Value {
    if let (Some(total), Value::Object(object)) = (total, &mut value) {
        object.insert("total_bytes".into(), json!(total));
    }
    value
}

/// Whether a happening ends a step of the run (the whole run's estimate changes).
fn ends_a_step(happening: &Happening) -> bool {
    matches!(
        happening,
        Happening::BuildFinished { .. }
            | Happening::BuildReused { .. }
            | Happening::BuildCancelled { .. }
            | Happening::BuildFailed { .. }
            | Happening::TransferFinished { .. }
    )
}

/// An estimate's members: `expected_secs`, and `partial` when some steps are not known.
fn estimate_members(value: &mut Value, estimate: &Estimate) {
    if let Value::Object(object) = value {
        object.insert("expected_secs".into(), json!(round_ms(estimate.secs)));
        if estimate.partial {
            object.insert("estimate_partial".into(), json!(true));
        }
    }
}

fn round_ms(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

/// The (from, to) of a copy: this machine's store is `"local"`.
fn ends(kind: TransferKind, peer: &str) -> (&str, &str) {
    match kind {
        TransferKind::CopyTo => ("local", peer),
        TransferKind::CopyFrom | TransferKind::Substitute => (peer, "local"),
    }
}

/// The summary line: `{"event":"summary", ...Summary's fields}`.
#[derive(Serialize)]
struct SummaryEvent<'a> {
    event: &'static str,
    #[serde(flatten)]
    summary: &'a Summary,
}

impl Render for JsonRenderer {
    fn expected(&mut self, estimate: Option<Estimate>) {
        self.expected = estimate;
    }

    fn header(&mut self, mode: &str, reason: &str) {
        let mut plan = json!({"event": "plan", "mode": mode, "reason": reason});
        if let Some(estimate) = &self.expected.take() {
            estimate_members(&mut plan, estimate);
        }
        self.emit(plan);
    }

    fn message(&mut self, text: &str) {
        self.emit(json!({"event": "note", "text": strip_ansi(text)}));
    }

    fn draw(&mut self, state: &State, now: Instant) {
        let mut step_ended = false;
        for happening in state.happenings() {
            step_ended |= ends_a_step(happening);
            let happening = &*super::text::with_logs(happening, self.logs);
            let verbose = match (happening, self.logs) {
                (Happening::BuildLog { .. }, LogsArg::All) => self.verbose.max(1),
                _ => self.verbose,
            };
            if let Some(value) = event(happening, verbose) {
                self.emit(value);
            }
        }
        // What the whole run has left, after each step that ends.
        if let (true, Some(estimate)) = (step_ended, state.run_estimate(now)) {
            let mut value = json!({"event": "estimate"});
            estimate_members(&mut value, &estimate);
            self.emit(value);
        }
    }

    fn finish(&mut self, _state: &State, summary: &Summary) {
        // Serializing plain data cannot fail; should it, a summary line still ends the stream.
        let value = serde_json::to_value(SummaryEvent {
            event: "summary",
            summary,
        })
        .unwrap_or_else(|_| json!({"event": "summary", "ok": summary.ok}));
        self.emit(value);
    }

    fn abandon(&mut self, state: &State, summary: &Summary) {
        // The stream still ends with a summary (ok: false), so readers need no special case.
        self.finish(state, summary);
    }
}
