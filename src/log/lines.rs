//! Cutting a log into lines with a cap on each line's length: a stream without newlines (a
//! gigabyte of garbage, a binary written to stderr) costs [`MAX_LINE`] bytes, not the stream.
//!
//! The one line splitter of the program: `monitor` cuts its stdin with it and
//! [`crate::child`] the pipes of nix, nh and activation scripts, so the same bytes are shown the
//! same way ([`shown`]) whichever way they arrive.

use std::borrow::Cow;

/// The longest line kept, in bytes. nix's longest real lines (an error with its trace, a
/// `msg` with a long log excerpt) are a few KiB; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 256 * 1024;

/// Marks a line whose end was dropped.
pub const TRUNCATED: &str = " …[line truncated]";

/// How much of a line cut at [`MAX_LINE`] is shown.
pub const SHOWN_OF_CUT: usize = 4096;

/// A line as text: invalid UTF-8 becomes U+FFFD.
pub fn text(line: &[u8]) -> Cow<'_, str> {
    // Checking first is faster than the lossy reading on the valid lines nearly all are.
    match std::str::from_utf8(line) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// How a line is shown: as it is, or, when it was cut at [`MAX_LINE`], its start marked with
/// [`TRUNCATED`]; nix's JSON lines are unreadable once cut and are dropped (`None`).
pub fn shown(line: &[u8], cut: bool) -> Option<Cow<'_, str>> {
    if !cut {
        return Some(text(line));
    }
    let start = String::from_utf8_lossy(&line[..line.len().min(SHOWN_OF_CUT)]);
    let json = start
        .trim_start_matches(|c: char| c == '<' || c == '>' || c.is_ascii_digit())
        .starts_with("@nix ");
    (!json).then(|| Cow::Owned(format!("{start}{TRUNCATED}")))
}

/// Lines cut from a byte stream that arrives in chunks of any size, kept in one buffer as they
/// were read (one copy of each chunk and one allocation for many lines, not one per line), then
/// the unfinished line. Each line keeps at most its `max` first bytes; the rest, up to the
/// newline, is dropped and the line marked cut. Newlines are not part of the lines.
#[derive(Debug, Default)]
pub struct Lines {
    max: usize,
    /// The chunks read: the finished lines with their newlines, then the unfinished line (at
    /// most `max` bytes of it).
    bytes: Vec<u8>,
    /// Each finished line: where it starts and ends in `bytes`, and whether it was cut.
    lines: Vec<(usize, usize, bool)>,
    /// Where the unfinished line starts in `bytes`.
    start: usize,
    /// Whether the unfinished line passed `max`: the rest of it, up to its newline, is dropped.
    skipping: bool,
}

impl Lines {
    /// No lines yet; each line will keep at most `max` bytes.
    pub fn new(max: usize) -> Self {
        Lines {
            max,
            ..Lines::default()
        }
    }

    /// Takes the next chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        let mut chunk = chunk;
        if self.skipping {
            let Some(newline) = memchr::memchr(b'\n', chunk) else {
                return;
            };
            self.lines.push((self.start, self.start + self.max, true));
            self.start = self.bytes.len();
            self.skipping = false;
            chunk = &chunk[newline + 1..];
        }
        let base = self.bytes.len();
        self.bytes.extend_from_slice(chunk);
        for newline in memchr::memchr_iter(b'\n', chunk) {
            let end = base + newline;
            let cut = end - self.start > self.max;
            let kept = if cut { self.start + self.max } else { end };
            self.lines.push((self.start, kept, cut));
            self.start = end + 1;
        }
        if self.bytes.len() - self.start > self.max {
            self.bytes.truncate(self.start + self.max);
            self.skipping = true;
        }
    }

    /// The stream has ended: an unfinished line with anything in it becomes the last line.
    pub fn finish(&mut self) {
        if self.bytes.len() > self.start || self.skipping {
            self.lines
                .push((self.start, self.bytes.len(), self.skipping));
            self.start = self.bytes.len();
            self.skipping = false;
        }
    }

    /// Whether a finished line is waiting.
    pub fn has_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// The finished lines, oldest first, each with whether it was cut.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], bool)> {
        self.lines
            .iter()
            .map(|&(start, end, cut)| (&self.bytes[start..end], cut))
    }

    /// Hands over the finished lines; the unfinished one stays to be continued.
    pub fn take(&mut self) -> Lines {
        let mut unfinished = Vec::with_capacity(self.bytes.capacity());
        unfinished.extend_from_slice(&self.bytes[self.start..]);
        self.bytes.truncate(self.start);
        self.start = 0;
        Lines {
            max: self.max,
            bytes: std::mem::replace(&mut self.bytes, unfinished),
            lines: std::mem::take(&mut self.lines),
            start: 0,
            skipping: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(lines: &Lines) -> Vec<(String, bool)> {
        lines
            .lines()
            .map(|(l, cut)| (String::from_utf8_lossy(l).into_owned(), cut))
            .collect()
    }

    fn line(text: &str, cut: bool) -> (String, bool) {
        (text.to_string(), cut)
    }

    #[test]
    fn long_lines_are_cut_and_the_next_line_is_intact() {
        let text = format!("{}\nshort\n\nlast", "x".repeat(100));
        for size in [1, 3, 7, 10, 11, 1000] {
            let mut lines = Lines::new(10);
            let mut seen = Vec::new();
            for chunk in text.as_bytes().chunks(size) {
                lines.push(chunk);
                seen.extend(collect(&lines.take()));
            }
            lines.finish();
            seen.extend(collect(&lines.take()));
            assert_eq!(
                seen,
                [
                    line("xxxxxxxxxx", true),
                    line("short", false),
                    line("", false),
                    line("last", false)
                ],
                "chunks of {size}"
            );
            assert!(!lines.has_lines());
        }
    }

    #[test]
    fn a_final_newline_ends_the_stream_without_an_empty_line() {
        let mut lines = Lines::new(10);
        lines.push(b"a\nb\n");
        lines.finish();
        assert_eq!(collect(&lines), [line("a", false), line("b", false)]);
        let mut lines = Lines::new(10);
        lines.finish();
        assert!(!lines.has_lines());
    }

    #[test]
    fn the_unfinished_line_stays_when_the_finished_ones_are_taken() {
        let mut lines = Lines::new(100);
        lines.push(b"one\ntw");
        assert_eq!(collect(&lines.take()), [line("one", false)]);
        assert!(!lines.has_lines());
        lines.push(b"o\n");
        assert_eq!(collect(&lines.take()), [line("two", false)]);
    }

    #[test]
    fn a_line_cut_across_chunks_keeps_exactly_the_cap() {
        let mut lines = Lines::new(4);
        lines.push(b"ab");
        lines.take();
        lines.push(b"cdef");
        lines.take();
        lines.push(b"gh\nij\n");
        assert_eq!(
            collect(&lines.take()),
            [line("abcd", true), line("ij", false)]
        );
        lines.push(b"klmnopq");
        lines.finish();
        assert_eq!(collect(&lines.take()), [line("klmn", true)]);
    }

    #[test]
    fn lines_of_exactly_the_cap_are_whole() {
        let mut lines = Lines::new(4);
        lines.push(b"abcd\nef");
        lines.push(b"gh");
        lines.push(b"\nijklm\n");
        assert_eq!(
            collect(&lines.take()),
            [line("abcd", false), line("efgh", false), line("ijkl", true)]
        );
    }

    #[test]
    fn a_whole_line_is_shown_as_it_is_invalid_utf8_replaced() {
        assert_eq!(shown(b"caf\xe9", false).as_deref(), Some("caf\u{fffd}"));
        assert_eq!(shown(b"@nix {}", false).as_deref(), Some("@nix {}"));
    }

    #[test]
    fn what_is_kept_stays_bounded_on_a_stream_without_newlines() {
        let mut lines = Lines::new(10);
        for _ in 0..1000 {
            lines.push(&[b'x'; 100]);
            assert!(lines.bytes.len() <= 10);
        }
        lines.push(b"\n");
        assert_eq!(collect(&lines.take()), [line("xxxxxxxxxx", true)]);
    }
}
