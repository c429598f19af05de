//! nix's `--log-format internal-json` log: one stderr line in, one typed [`Event`] out.
//!
//! nix writes `@nix {json}` lines (preceded by `<N>` when it runs with `IN_SYSTEMD=1`), mixed
//! with whatever else reaches its stderr (ssh warnings, `nh`'s own lines). [`parse_line`] never
//! fails: anything it does not understand becomes [`Event::Plain`] so the user still sees it.

mod event;
mod lines;
mod parse;
#[cfg(test)]
pub(crate) mod recordings;
mod types;

pub use event::{Activity, ActivityId, ActivityResult, Event, Field, Message, Progress, Start};
pub use lines::{shown, text, Lines, MAX_LINE, SHOWN_OF_CUT, TRUNCATED};
pub use parse::parse_line;
pub use types::{ActivityType, ResultType, Verbosity};

/// `text` without ANSI escape sequences: nix colours its error messages even in internal-json,
/// and plain output, JSON and summaries must not carry escape codes.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters... final byte in @..~
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] ... BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' || (c == '\u{1b}' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            // Any other escape: drop ESC and the one character after it.
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_nix_error_colours() {
        let text = "\u{1b}[31;1merror:\u{1b}[0m builder for '\u{1b}[35;1m/nix/store/x.drv\u{1b}[0m' failed";
        assert_eq!(
            strip_ansi(text),
            "error: builder for '/nix/store/x.drv' failed"
        );
        assert_eq!(strip_ansi("plain é"), "plain é");
        assert_eq!(strip_ansi("cut \u{1b}"), "cut ");
        assert_eq!(
            strip_ansi("\u{1b}]8;;http://x\u{7}link\u{1b}]8;;\u{1b}\\"),
            "link"
        );
    }
}
