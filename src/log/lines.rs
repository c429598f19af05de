//! Reading a log line by line with a cap on each line's length: a stream without newlines (a
//! gigabyte of garbage, a binary written to stderr) costs [`MAX_LINE`] bytes, not the stream.

use std::io::BufRead;

/// The longest line kept, in bytes. nix's longest real lines (an error with its trace, a
/// `msg` with a long log excerpt) are a few KiB; the rest of a longer line is dropped.
pub const MAX_LINE: usize = 256 * 1024;

/// Marks a line whose end was dropped.
pub const TRUNCATED: &str = " …[line truncated]";

/// Reads the next line of `input` into `line` (cleared first), keeping at most `max` bytes and
/// skipping the rest up to the newline. Returns `Ok(None)` at the end of the input, else
/// whether the line was cut. The newline itself is not kept.
pub fn read_capped(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    line.clear();
    append_capped(input, line, max)
}

/// Like [`read_capped`], but appends the line to what `buffer` already holds (many lines
/// read into one buffer, one allocation for all of them); `max` caps the appended line.
pub fn append_capped(
    input: &mut impl BufRead,
    buffer: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<bool>> {
    let start = buffer.len();
    let mut truncated = false;
    let mut read_any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(truncated));
        }
        read_any = true;
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buffer.len() - start);
        if chunk.len() > room {
            truncated = true;
        }
        buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
        input.consume(used);
        if done {
            return Ok(Some(truncated));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_next_line_is_intact() {
        let text = format!("{}\nshort\nlast", "x".repeat(100));
        let mut input = std::io::BufReader::with_capacity(7, text.as_bytes());
        let mut line = Vec::new();
        assert_eq!(
            read_capped(&mut input, &mut line, 10).ok(),
            Some(Some(true))
        );
        assert_eq!(line, b"xxxxxxxxxx");
        assert_eq!(
            read_capped(&mut input, &mut line, 10).ok(),
            Some(Some(false))
        );
        assert_eq!(line, b"short");
        assert_eq!(
            read_capped(&mut input, &mut line, 10).ok(),
            Some(Some(false))
        );
        assert_eq!(line, b"last");
        assert_eq!(read_capped(&mut input, &mut line, 10).ok(), Some(None));
    }

    #[test]
    fn appended_lines_are_capped_each_on_its_own() {
        let text = format!("ab\n{}\ncd", "x".repeat(30));
        let mut input = std::io::BufReader::with_capacity(4, text.as_bytes());
        let mut buffer = b"kept".to_vec();
        let mut read = || append_capped(&mut input, &mut buffer, 5).ok();
        assert_eq!(read(), Some(Some(false)));
        assert_eq!(read(), Some(Some(true)));
        assert_eq!(read(), Some(Some(false)));
        assert_eq!(read(), Some(None));
        assert_eq!(buffer, b"keptabxxxxxcd");
    }
}
