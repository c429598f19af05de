//! The output boundary: everything nixdispatch writes passes through here on its way out.
//!
//! - [`clean`]: [`crate::redact`]s secrets and [`neutralise`]s terminal control sequences in
//!   text that a remote host, a build or a user's configuration wrote (nix's messages, builders'
//!   log lines, `ssh`/`nh`/activation lines, a builder's version and systems strings), so a
//!   build cannot set the terminal's title or clipboard (OSC 0/52), move the cursor or clear
//!   the screen. Colour (SGR) may be kept for terminals that show it.
//! - [`stdout_line`]: one line on stdout; a closed stdout (`nixdispatch probe | head -1`)
//!   becomes [`Error::StdoutClosed`], which ends the run quietly instead of panicking.
//! - [`stderr_line`] and [`RedactingStderr`]: error lines and tracing, best effort and redacted.

use crate::redact::redact;
use crate::{Error, Result};
use std::borrow::Cow;
use std::io::Write;

/// `text` ready to be shown: secrets redacted, control sequences removed (colour kept when
/// `keep_colour`), line breaks and tabs kept.
pub fn clean(text: &str, keep_colour: bool) -> Cow<'_, str> {
    match redact(text) {
        Cow::Borrowed(text) => neutralise(text, keep_colour),
        Cow::Owned(text) => Cow::Owned(neutralise(&text, keep_colour).into_owned()),
    }
}

/// Whether `c` needs looking at: a C0 control other than newline and tab, DEL, or a C1 control.
fn special(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t') || c == '\u{7f}'
}

/// `text` without terminal control: escape sequences (CSI, OSC, DCS, APC, PM, SOS, and their
/// 8-bit C1 forms) and control characters are removed, except newlines and tabs, and SGR
/// colour sequences (`ESC [ 1;31 m`) when `keep_colour`.
pub fn neutralise(text: &str, keep_colour: bool) -> Cow<'_, str> {
    if !text.chars().any(special) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !special(c) {
            out.push(c);
            continue;
        }
        let introducer = match c {
            '\u{1b}' => match chars.next() {
                Some('[') => '\u{9b}',
                Some(']') => '\u{9d}',
                Some('P') => '\u{90}',
                Some('X') => '\u{98}',
                Some('^') => '\u{9e}',
                Some('_') => '\u{9f}',
                // Any other escape: ESC and the character after it go.
                _ => continue,
            },
            other => other,
        };
        match introducer {
            // CSI: parameters 0x30-0x3F, intermediates 0x20-0x2F, one final byte 0x40-0x7E.
            '\u{9b}' => {
                let mut body = String::new();
                let mut last = None;
                while let Some(&n) = chars.peek() {
                    if ('\u{20}'..='\u{3f}').contains(&n) {
                        body.push(n);
                        chars.next();
                    } else {
                        if ('\u{40}'..='\u{7e}').contains(&n) {
                            last = Some(n);
                            chars.next();
                        }
                        break;
                    }
                }
                let colour = last == Some('m')
                    && body
                        .chars()
                        .all(|b| b.is_ascii_digit() || b == ';' || b == ':');
                if keep_colour && colour {
                    out.push_str("\u{1b}[");
                    out.push_str(&body);
                    out.push('m');
                }
            }
            // String sequences: everything up to BEL, ESC \ or ST goes.
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => {
                while let Some(n) = chars.next() {
                    if n == '\u{7}' || n == '\u{9c}' {
                        break;
                    }
                    if n == '\u{1b}' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            // Any other control character (CR, BS, BEL, ...) goes.
            _ => {}
        }
    }
    Cow::Owned(out)
}

/// One encoded JSON document made safe to print: secrets redacted, and DEL and the C1 controls
/// (which serde_json leaves raw; U+009B is CSI on many terminals) escaped as `\u00XX`. The
/// value stays the same: such characters can only stand inside JSON strings.
pub fn json_text(json: &str) -> Cow<'_, str> {
    let json = redact(json);
    if !json.chars().any(|c| ('\u{7f}'..='\u{9f}').contains(&c)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if ('\u{7f}'..='\u{9f}').contains(&c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes one line on stdout: text for people (`human`) [`clean`]ed, JSON through
/// [`json_text`].
pub fn stdout_line(text: &str, human: bool) -> Result<()> {
    let text = if human {
        clean(text, false)
    } else {
        json_text(text)
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(closed_or_io)
}

/// Writes `text` as it is on stdout (a completion script), ending the run quietly when stdout
/// is closed.
pub fn stdout_raw(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(closed_or_io)
}

fn closed_or_io(err: std::io::Error) -> Error {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        Error::StdoutClosed
    } else {
        Error::io("writing to stdout", err)
    }
}

/// Writes one line on stderr, cleaned; a closed stderr is ignored (there is nowhere to say so).
pub fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(text, false));
}

/// Stderr for tracing: every record redacted (`-vv` prints nix's argv, which may carry
/// `access-tokens`), and write errors swallowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // tracing-subscriber's fmt layer writes each record with one `write_all`.
        let text = String::from_utf8_lossy(buf);
        let _ = std::io::stderr()
            .lock()
            .write_all(clean(&text, true).as_bytes());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_control_from_builds_is_removed() {
        let hostile = "a\u{1b}]0;pwned title\u{7}b\u{1b}]52;c;ZXZpbA==\u{1b}\\c\u{1b}[2J\u{1b}[1;1Hd\re\u{8}f\u{9b}5Ag\u{9d}0;x\u{9c}h";
        assert_eq!(neutralise(hostile, false), "abcdefgh");
        assert_eq!(neutralise(hostile, true), "abcdefgh");
    }

    #[test]
    fn colour_is_kept_only_when_asked() {
        let coloured = "\u{1b}[31;1merror:\u{1b}[0m x";
        assert_eq!(neutralise(coloured, true), coloured);
        assert_eq!(neutralise(coloured, false), "error: x");
        assert_eq!(neutralise("tab\tand\nline é", false), "tab\tand\nline é");
        assert_eq!(neutralise("cut \u{1b}", true), "cut ");
        assert_eq!(neutralise("cut \u{1b}]0;never ends", true), "cut ");
    }

    #[test]
    fn json_keeps_its_value_and_loses_raw_c1_controls() {
        let value = serde_json::json!({"t": "a\u{9b}5A\u{7f}b https://u:pw@h"});
        let text = json_text(&value.to_string()).into_owned();
        assert!(!text.contains('\u{9b}') && !text.contains("pw@"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back["t"], "a\u{9b}5A\u{7f}b https://u:***@h");
    }

    #[test]
    fn clean_redacts_and_neutralises() {
        assert_eq!(
            clean("\u{1b}]0;t\u{7}https://u:pw@h/", false),
            "https://u:***@h/"
        );
    }

    proptest::proptest! {
        #[test]
        fn nothing_but_colour_newlines_and_tabs_survives(text in "(\\PC|\\p{Cc}|\u{1b}\\[[0-9;?]{0,6}[@-~]|\u{1b}\\][^\u{7}]{0,8}\u{7}){0,40}") {
            for keep in [false, true] {
                let shown = neutralise(&text, keep).into_owned();
                let mut rest = shown.as_str();
                while let Some(i) = rest.find(special) {
                    let tail = &rest[i..];
                    let body = tail.strip_prefix("\u{1b}[").unwrap_or("");
                    let end = body.find(|c: char| !(c.is_ascii_digit() || c == ';' || c == ':'));
                    proptest::prop_assert!(keep && end.is_some_and(|e| body[e..].starts_with('m')), "{shown:?}");
                    rest = &tail[1..];
                }
                proptest::prop_assert_eq!(neutralise(&shown, keep).into_owned(), shown.clone());
            }
        }

        #[test]
        fn redaction_never_panics_and_removes_passwords(
            noise in "(\\PC|://|:|@|/|access-tokens|=| |\"){0,40}",
            secret in "[A-Z]{16}",
            other in "\\PC{0,20}",
        ) {
            let _ = redact(&noise);
            for text in [
                format!("{other} 'https://u:{secret}@h/x' {noise}"),
                format!("{noise} \"access-tokens\", \"h={secret}\""),
                format!("{other} access-tokens = h={secret}\n{noise}"),
            ] {
                let shown = redact(&text);
                proptest::prop_assert!(!shown.contains(&secret), "{text:?} -> {shown:?}");
            }
        }
    }
}
