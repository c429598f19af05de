//! From one stderr line to an [`Event`]. Total: every input gives an event, nothing panics.

use super::event::{Activity, ActivityId, ActivityResult, Event, Field, Message, Progress, Start};
use super::types::{ActivityType, ResultType, Verbosity};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// Parses one line of nix's stderr (with or without its line ending).
///
/// `@nix {json}` lines (optionally preceded by systemd's `<N>` level prefix) become typed events;
/// everything else, including malformed JSON and actions this version does not know, becomes
/// [`Event::Plain`] with the line as it was (minus the line ending and a `<N>` prefix).
///
/// The hot path (nearly every line of a big build is a `Progress` result) deserializes straight
/// into [`Wire`], borrowing strings from the line; only a line whose values have unexpected
/// types (a string `id`, a float field, a duplicate key) goes through the lenient
/// `serde_json::Value` reading, which gives the same event for every line the fast one accepts.
pub fn parse_line(line: &str) -> Event {
    let line = line.trim_end_matches(['\n', '\r']);
    let line = strip_systemd_prefix(line);
    let Some(json) = line.strip_prefix("@nix ") else {
        return Event::Plain(line.to_string());
    };
    progress_result(json)
        .or_else(|| json_event(json))
        .unwrap_or_else(|| Event::Plain(line.to_string()))
}

/// The event of one `@nix` line's JSON, read by serde: `None` when it is not one.
fn json_event(json: &str) -> Option<Event> {
    match serde_json::from_str::<Wire<'_>>(json) {
        Ok(wire) => wire.into_event(),
        Err(_) => match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(object)) => Wire::lenient(&object).and_then(Wire::into_event),
            _ => None,
        },
    }
}

/// nix's most frequent line by far (98% of a big run's log), a `Progress` result, read without
/// the JSON parser when it is written exactly as every nix writes it:
/// `{"action":"result","fields":[1,2,0,0],"id":93488553132034,"type":105}`. Any other
/// spelling, or a number that does not fit, is left to [`json_event`] (`None`), which reads the
/// same event from every line this accepts.
fn progress_result(json: &str) -> Option<Event> {
    let rest = json.strip_prefix(r#"{"action":"result","fields":["#)?;
    let (done, rest) = leading_number(rest)?;
    let (expected, rest) = leading_number(rest.strip_prefix(',')?)?;
    let (running, rest) = leading_number(rest.strip_prefix(',')?)?;
    let (failed, rest) = leading_number(rest.strip_prefix(',')?)?;
    let (id, rest) = leading_number(rest.strip_prefix(r#"],"id":"#)?)?;
    (rest == r#","type":105}"#).then_some(Event::Result {
        id: ActivityId(id),
        result: ActivityResult::Progress(Progress {
            done,
            expected,
            running,
            failed,
        }),
    })
}

/// A JSON non-negative integer at the start of `text` that fits in a u64, and what follows it.
fn leading_number(text: &str) -> Option<(u64, &str)> {
    let bytes = text.as_bytes();
    let mut value = 0u64;
    let mut digits = 0;
    while let Some(digit) = bytes.get(digits).filter(|b| b.is_ascii_digit()) {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        digits += 1;
    }
    // JSON allows no leading zero; serde says what such a line is.
    if digits == 0 || (digits > 1 && bytes[0] == b'0') {
        return None;
    }
    Some((value, &text[digits..]))
}

/// Drops the `<N>` syslog level prefix nix adds before every line under `IN_SYSTEMD=1`.
fn strip_systemd_prefix(line: &str) -> &str {
    let bytes = line.as_bytes();
    if bytes.len() >= 3 && bytes[0] == b'<' && bytes[1].is_ascii_digit() && bytes[2] == b'>' {
        &line[3..]
    } else {
        line
    }
}

/// The keys of one `@nix` object that nixdispatch reads; others are skipped.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    action: Cow<'a, str>,
    id: Option<u64>,
    #[serde(rename = "type")]
    kind: Option<u64>,
    level: Option<u64>,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
    parent: Option<u64>,
    fields: Option<Vec<WireField>>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    raw_msg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    file: Option<Cow<'a, str>>,
    line: Option<u64>,
    column: Option<u64>,
    trace: Option<Value>,
}

impl<'a> Wire<'a> {
    /// The same keys read from any JSON object, each ignored when its type is unexpected.
    fn lenient(object: &'a Map<String, Value>) -> Option<Wire<'a>> {
        let string = |key: &str| object.get(key).and_then(Value::as_str).map(Cow::Borrowed);
        let number = |key: &str| object.get(key).and_then(Value::as_u64);
        Some(Wire {
            action: string("action")?,
            id: number("id"),
            kind: number("type"),
            level: number("level"),
            text: string("text"),
            parent: number("parent"),
            fields: match object.get("fields") {
                Some(Value::Array(values)) => Some(values.iter().map(field).collect()),
                _ => None,
            },
            msg: string("msg"),
            raw_msg: string("raw_msg"),
            file: string("file"),
            line: number("line"),
            column: number("column"),
            trace: object.get("trace").cloned(),
        })
    }

    fn into_event(self) -> Option<Event> {
        // A missing level is treated as Info: shown by default, and not an error.
        let level = Verbosity::from_code(self.level.unwrap_or(3));
        let fields = || -> Vec<Field> {
            self.fields
                .unwrap_or_default()
                .into_iter()
                .map(|f| f.0)
                .collect()
        };
        match &*self.action {
            "start" => {
                let id = ActivityId(self.id?);
                let activity_type = ActivityType::from_code(self.kind?);
                Some(Event::Start(Start {
                    id,
                    level,
                    text: self.text.map(Cow::into_owned).unwrap_or_default(),
                    parent: self.parent.filter(|&p| p != 0).map(ActivityId),
                    activity: activity(activity_type, fields()),
                }))
            }
            "stop" => Some(Event::Stop {
                id: ActivityId(self.id?),
            }),
            "result" => {
                let id = ActivityId(self.id?);
                let result_type = ResultType::from_code(self.kind?);
                Some(Event::Result {
                    id,
                    result: result(result_type, fields()),
                })
            }
            "msg" => Some(Event::Message(Message {
                level,
                text: self.msg.map(Cow::into_owned).unwrap_or_default(),
                raw: self.raw_msg.map(Cow::into_owned),
                file: self.file.map(Cow::into_owned),
                line: self.line,
                column: self.column,
                trace: self.trace.as_ref().map(trace).unwrap_or_default(),
            })),
            _ => None,
        }
    }
}

/// One field as nix sends it: a non-negative integer or a string. Anything else fails the fast
/// reading, and the lenient one keeps it as its JSON text.
struct WireField(Field);

impl<'de> Deserialize<'de> for WireField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = WireField;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a non-negative integer or a string")
            }
            fn visit_u64<E>(self, n: u64) -> Result<WireField, E> {
                Ok(WireField(Field::Int(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<WireField, E> {
                Ok(WireField(Field::Str(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<WireField, E> {
                Ok(WireField(Field::Str(s)))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

fn field(value: &Value) -> WireField {
    WireField(match value {
        Value::String(s) => Field::Str(s.clone()),
        Value::Number(n) => match n.as_u64() {
            Some(n) => Field::Int(n),
            None => Field::Str(n.to_string()),
        },
        other => Field::Str(other.to_string()),
    })
}

fn trace(value: &Value) -> Vec<String> {
    let Value::Array(frames) = value else {
        return Vec::new();
    };
    frames
        .iter()
        .filter_map(|frame| match frame {
            Value::Object(frame) => frame
                .get("raw_msg")
                .and_then(Value::as_str)
                .map(str::to_string),
            Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

fn text_at(fields: &[Field], index: usize) -> Option<String> {
    fields.get(index).map(Field::as_text)
}

fn number_at(fields: &[Field], index: usize) -> Option<u64> {
    fields.get(index).and_then(Field::as_u64)
}

fn activity(activity_type: ActivityType, fields: Vec<Field>) -> Activity {
    let typed = match activity_type {
        ActivityType::CopyPath => match (
            text_at(&fields, 0),
            text_at(&fields, 1),
            text_at(&fields, 2),
        ) {
            (Some(path), Some(from), Some(to)) => Some(Activity::CopyPath { path, from, to }),
            _ => None,
        },
        ActivityType::FileTransfer => text_at(&fields, 0).map(|uri| Activity::FileTransfer { uri }),
        ActivityType::Realise => Some(Activity::Realise),
        ActivityType::CopyPaths => Some(Activity::CopyPaths),
        ActivityType::Builds => Some(Activity::Builds),
        ActivityType::Build => text_at(&fields, 0).map(|drv_path| Activity::Build {
            drv_path,
            machine: text_at(&fields, 1).unwrap_or_default(),
            cur_round: number_at(&fields, 2).unwrap_or(1),
            nr_rounds: number_at(&fields, 3).unwrap_or(1),
        }),
        ActivityType::Substitute => match (text_at(&fields, 0), text_at(&fields, 1)) {
            (Some(path), Some(substituter)) => Some(Activity::Substitute { path, substituter }),
            _ => None,
        },
        ActivityType::QueryPathInfo => match (text_at(&fields, 0), text_at(&fields, 1)) {
            (Some(path), Some(cache)) => Some(Activity::QueryPathInfo { path, cache }),
            _ => None,
        },
        ActivityType::PostBuildHook => {
            text_at(&fields, 0).map(|drv_path| Activity::PostBuildHook { drv_path })
        }
        _ => None,
    };
    typed.unwrap_or(Activity::Other {
        activity_type,
        fields,
    })
}

fn result(result_type: ResultType, fields: Vec<Field>) -> ActivityResult {
    let typed = match result_type {
        ResultType::FileLinked => match (number_at(&fields, 0), number_at(&fields, 1)) {
            (Some(bytes), Some(blocks)) => Some(ActivityResult::FileLinked { bytes, blocks }),
            _ => None,
        },
        ResultType::BuildLogLine => text_at(&fields, 0).map(ActivityResult::BuildLogLine),
        ResultType::UntrustedPath => text_at(&fields, 0).map(ActivityResult::UntrustedPath),
        ResultType::CorruptedPath => text_at(&fields, 0).map(ActivityResult::CorruptedPath),
        ResultType::SetPhase => text_at(&fields, 0).map(ActivityResult::SetPhase),
        ResultType::Progress => match (number_at(&fields, 0), number_at(&fields, 1)) {
            (Some(done), Some(expected)) => Some(ActivityResult::Progress(Progress {
                done,
                expected,
                running: number_at(&fields, 2).unwrap_or(0),
                failed: number_at(&fields, 3).unwrap_or(0),
            })),
            _ => None,
        },
        ResultType::SetExpected => match (number_at(&fields, 0), number_at(&fields, 1)) {
            (Some(activity_type), Some(expected)) => Some(ActivityResult::SetExpected {
                activity_type: ActivityType::from_code(activity_type),
                expected,
            }),
            _ => None,
        },
        ResultType::PostBuildLogLine => text_at(&fields, 0).map(ActivityResult::PostBuildLogLine),
        ResultType::FetchStatus => text_at(&fields, 0).map(ActivityResult::FetchStatus),
        ResultType::Other(_) => None,
    };
    typed.unwrap_or(ActivityResult::Other {
        result_type,
        fields,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(line: &str) -> Start {
        match parse_line(line) {
            Event::Start(start) => start,
            other => panic!("not a start: {other:?}"),
        }
    }

    fn result_of(line: &str) -> (ActivityId, ActivityResult) {
        match parse_line(line) {
            Event::Result { id, result } => (id, result),
            other => panic!("not a result: {other:?}"),
        }
    }

    // Lines below are copied from tests/data recordings unless marked synthetic.

    #[test]
    fn progress_lines_read_without_serde_read_as_serde_reads_them() {
        let mut seen = 0;
        for path in crate::log::recordings::all() {
            let text = crate::log::recordings::read(&path);
            for line in text.lines() {
                let Some(json) = strip_systemd_prefix(line).strip_prefix("@nix ") else {
                    continue;
                };
                if let Some(event) = progress_result(json) {
                    seen += 1;
                    assert_eq!(Some(event), json_event(json), "{line}");
                }
            }
        }
        assert!(seen > 1000, "only {seen} progress lines in the recordings");
        // Synthetic: the edges of the fast reading, each read as serde reads it.
        let max = u64::MAX;
        for json in [
            format!(r#"{{"action":"result","fields":[{max},0,0,1],"id":{max},"type":105}}"#),
            r#"{"action":"result","fields":[18446744073709551616,0,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[01,2,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[0,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[0,0,0,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[1,2,0,0],"id":1,"type":105} "#.into(),
            r#"{"action":"result","fields":[1,2,0,0],"id":1,"type":1050}"#.into(),
            r#"{"action":"result","fields":[1,-2,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[1,2.5,0,0],"id":1,"type":105}"#.into(),
            r#"{"action":"result","fields":[1,2,0,0],"id":"1","type":105}"#.into(),
        ] {
            let line = format!("@nix {json}");
            assert_eq!(
                parse_line(&line),
                json_event(&json).unwrap_or_else(|| Event::Plain(line.clone())),
                "{line}"
            );
        }
    }

    #[test]
    fn fast_and_lenient_readings_agree_on_every_recorded_line() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
        let (mut lines, mut fast_hits) = (0, 0);
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            for line in text.lines() {
                let Some(json) = strip_systemd_prefix(line).strip_prefix("@nix ") else {
                    continue;
                };
                lines += 1;
                let object: Map<String, Value> = serde_json::from_str(json).unwrap();
                let lenient = Wire::lenient(&object).and_then(Wire::into_event);
                if let Ok(wire) = serde_json::from_str::<Wire<'_>>(json) {
                    fast_hits += 1;
                    assert_eq!(wire.into_event(), lenient, "{}: {line}", path.display());
                }
            }
        }
        assert!(lines > 1000, "recordings missing: {lines} lines");
        assert_eq!(fast_hits, lines, "every recorded line takes the fast path");
    }

    #[test]
    fn unexpected_value_types_take_the_lenient_path() {
        // Synthetic: a float and a negative field, a string level, a duplicate key.
        let (_, r) = result_of(r#"@nix {"action":"result","fields":[1.5,-2],"id":7,"type":999}"#);
        assert_eq!(
            r,
            ActivityResult::Other {
                result_type: ResultType::from_code(999),
                fields: vec![Field::Str("1.5".into()), Field::Str("-2".into())],
            }
        );
        let s = start(r#"@nix {"action":"start","id":3,"level":"x","type":102,"id":4}"#);
        assert_eq!((s.id, s.level), (ActivityId(4), Verbosity::Info));
    }

    #[test]
    fn local_build_start_from_nix_2_8() {
        let s = start(
            r#"@nix {"action":"start","fields":["/nix/store/50h0af3l3gkcw4c385pxvynq15y8zlxs-nd-chain-a.drv","",1,1],"id":91929480003588,"level":3,"text":"building '/nix/store/50h0af3l3gkcw4c385pxvynq15y8zlxs-nd-chain-a.drv'","type":105}"#,
        );
        assert_eq!(s.id, ActivityId(91929480003588));
        assert_eq!(s.level, Verbosity::Info);
        assert_eq!(s.parent, None);
        assert_eq!(
            s.activity,
            Activity::Build {
                drv_path: "/nix/store/50h0af3l3gkcw4c385pxvynq15y8zlxs-nd-chain-a.drv".into(),
                machine: String::new(),
                cur_round: 1,
                nr_rounds: 1,
            }
        );
    }

    #[test]
    fn copy_path_with_parent_from_nix_2_26() {
        let s = start(
            r#"@nix {"action":"start","fields":["/nix/store/5y6pa3fw8zx4m0g7g1ffvjq23d7dyq1n-nd-big","http://127.0.0.1:18931","local"],"id":93664646791179,"level":3,"parent":93664646791178,"text":"copying path '/nix/store/5y6pa3fw8zx4m0g7g1ffvjq23d7dyq1n-nd-big' from 'http://127.0.0.1:18931'","type":100}"#,
        );
        assert_eq!(s.parent, Some(ActivityId(93664646791178)));
        assert_eq!(
            s.activity,
            Activity::CopyPath {
                path: "/nix/store/5y6pa3fw8zx4m0g7g1ffvjq23d7dyq1n-nd-big".into(),
                from: "http://127.0.0.1:18931".into(),
                to: "local".into(),
            }
        );
    }

    #[test]
    fn parent_zero_means_none_and_absent_fields_are_empty() {
        let s = start(
            r#"@nix {"action":"start","id":93488553132033,"level":0,"parent":0,"text":"","type":102}"#,
        );
        assert_eq!(s.parent, None);
        assert_eq!(s.activity, Activity::Realise);
    }

    #[test]
    fn results_are_typed() {
        let (id, r) = result_of(
            r#"@nix {"action":"result","fields":[1,3,1,0],"id":91929480003585,"type":105}"#,
        );
        assert_eq!(id, ActivityId(91929480003585));
        assert_eq!(
            r,
            ActivityResult::Progress(Progress {
                done: 1,
                expected: 3,
                running: 1,
                failed: 0
            })
        );
        let (_, r) = result_of(
            r#"@nix {"action":"result","fields":[101,6292072],"id":92771293593600,"type":106}"#,
        );
        assert_eq!(
            r,
            ActivityResult::SetExpected {
                activity_type: ActivityType::FileTransfer,
                expected: 6292072
            }
        );
        let (_, r) = result_of(
            r#"@nix {"action":"result","fields":["buildPhase"],"id":91929480003588,"type":104}"#,
        );
        assert_eq!(r, ActivityResult::SetPhase("buildPhase".into()));
        let (_, r) = result_of(
            r#"@nix {"action":"result","fields":["chain-a: compiling"],"id":91929480003588,"type":101}"#,
        );
        assert_eq!(r, ActivityResult::BuildLogLine("chain-a: compiling".into()));
    }

    #[test]
    fn key_order_does_not_matter() {
        // Synthetic: the same stop and result with keys reordered.
        assert_eq!(
            parse_line(r#"@nix {"id":7,"action":"stop"}"#),
            Event::Stop { id: ActivityId(7) }
        );
        let (id, r) =
            result_of(r#"@nix {"type":104,"id":7,"fields":["unpackPhase"],"action":"result"}"#);
        assert_eq!(
            (id, r),
            (
                ActivityId(7),
                ActivityResult::SetPhase("unpackPhase".into())
            )
        );
    }

    #[test]
    fn error_message_with_location() {
        let line = r#"@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\u001b[31;1merror:\u001b[0m nd-fixture: this attribute does not evaluate","raw_msg":"nd-fixture: this attribute does not evaluate"}"#;
        let Event::Message(m) = parse_line(line) else {
            panic!("not a message")
        };
        assert_eq!(m.level, Verbosity::Error);
        assert_eq!(
            m.raw.as_deref(),
            Some("nd-fixture: this attribute does not evaluate")
        );
        assert_eq!((m.file, m.line, m.column), (None, None, None));
        // Synthetic: a located error with a trace, as newer nix versions send.
        let line = r#"@nix {"action":"msg","level":0,"msg":"error: boom","raw_msg":"boom","file":"/f.nix","line":3,"column":7,"trace":[{"raw_msg":"while evaluating x","file":"/f.nix","line":2,"column":1}]}"#;
        let Event::Message(m) = parse_line(line) else {
            panic!("not a message")
        };
        assert_eq!(
            (m.file.as_deref(), m.line, m.column),
            (Some("/f.nix"), Some(3), Some(7))
        );
        assert_eq!(m.trace, vec!["while evaluating x".to_string()]);
    }

    #[test]
    fn systemd_prefix_is_stripped() {
        let line = r#"<3>@nix {"action":"stop","id":93939524698112}"#;
        assert_eq!(
            parse_line(line),
            Event::Stop {
                id: ActivityId(93939524698112)
            }
        );
        assert_eq!(
            parse_line("<4>warning: something"),
            Event::Plain("warning: something".into())
        );
    }

    #[test]
    fn remote_build_synthetic() {
        let s = start(
            r#"@nix {"action":"start","fields":["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv","ssh-ng://seasmoke",1,1],"id":5,"level":3,"parent":0,"text":"building '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.drv' on 'ssh-ng://seasmoke'","type":105}"#,
        );
        let Activity::Build { machine, .. } = s.activity else {
            panic!("not a build")
        };
        assert_eq!(machine, "ssh-ng://seasmoke");
    }

    #[test]
    fn unknown_types_pass_through() {
        let s = start(
            r#"@nix {"action":"start","id":9,"level":3,"text":"something new","type":150,"fields":["x",-1,1.5,null]}"#,
        );
        assert_eq!(
            s.activity,
            Activity::Other {
                activity_type: ActivityType::Other(150),
                fields: vec![
                    Field::Str("x".into()),
                    Field::Str("-1".into()),
                    Field::Str("1.5".into()),
                    Field::Str("null".into())
                ],
            }
        );
        let (_, r) = result_of(r#"@nix {"action":"result","id":9,"type":142,"fields":[1]}"#);
        assert_eq!(
            r,
            ActivityResult::Other {
                result_type: ResultType::Other(142),
                fields: vec![Field::Int(1)]
            }
        );
        // A known type with the wrong shape keeps its fields rather than guessing.
        let (_, r) = result_of(r#"@nix {"action":"result","id":9,"type":105,"fields":["a"]}"#);
        assert!(matches!(
            r,
            ActivityResult::Other {
                result_type: ResultType::Progress,
                ..
            }
        ));
    }

    #[test]
    fn anything_else_is_a_plain_line() {
        for line in [
            "Warning: Permanently added 'seasmoke' (ED25519) to the list of known hosts.",
            "@nix {not json",
            "@nix [1,2]",
            r#"@nix {"action":"fly","id":1}"#,
            r#"@nix {"action":"stop"}"#,
            r#"@nix {"action":"start","id":-4,"type":105}"#,
            "@nix",
            "",
            "<",
            "<3",
            "\u{feff}é<9>",
        ] {
            assert_eq!(parse_line(line), Event::Plain(line.to_string()), "{line:?}");
        }
        assert_eq!(
            parse_line("> building\r\n"),
            Event::Plain("> building".into())
        );
    }
}
