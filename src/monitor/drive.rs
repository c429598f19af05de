//! Feeding a whole log to a [`Monitor`]: the read loop of `nixdispatch monitor` (stdin) and of
//! anything else that has the log as a byte stream.

use super::{Monitor, Summary};
use crate::log::{shown, text, Lines, MAX_LINE};
use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the display is refreshed while no line arrives (elapsed times, spinners).
const TICK: Duration = Duration::from_millis(200);

/// The most one read takes from the input: the lines it finishes go to the monitor together.
/// As much as a pipe holds on Linux; it also bounds how many lines one batch has (a stream of
/// empty lines makes a batch of 64Ki lines, ~1.5 MiB of line ends).
const READ_BYTES: usize = 64 * 1024;

/// How many batches of lines may wait between the reading thread and the monitor.
const BATCHES_WAITING: usize = 4;

/// Feeds every line of `input` to `monitor` until the end of the input, then finishes it and
/// returns the summary (`summary.ok` is what the log says, see [`Monitor::finish`]).
///
/// Lines are read on a thread of their own, so the display keeps ticking while the writer is
/// quiet. Memory stays bounded whatever comes: each line is kept up to [`MAX_LINE`] bytes
/// (nix's JSON lines cut there are dropped, other lines show their start) and few lines wait.
/// Invalid UTF-8 is read lossily, never rejected. A read error ends the input early, said in
/// one line; the summary covers what was read.
pub fn drive(input: impl Read + Send + 'static, mut monitor: Monitor) -> Summary {
    // Lines travel in batches, one channel hand-over for all the lines a read finished (a big
    // log is mostly tiny progress lines), and as soon as the read is done, so a live log is
    // shown as it comes.
    let (batches, incoming) = mpsc::sync_channel::<std::io::Result<Lines>>(BATCHES_WAITING);
    std::thread::spawn(move || read_batches(input, &batches));
    let mut cut = 0u64;
    loop {
        match incoming.recv_timeout(TICK) {
            Ok(Ok(batch)) => {
                // The lines of one read arrived together: one time for all of them.
                let now = Instant::now();
                for (line, truncated) in batch.lines() {
                    if !truncated {
                        monitor.feed_line(&text(line), now);
                        continue;
                    }
                    cut += 1;
                    if let Some(shown) = shown(line, true) {
                        monitor.feed_line(&shown, now);
                    }
                }
            }
            Ok(Err(err)) => {
                monitor.message(&format!("nixdispatch: reading stdin stopped: {err}"));
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => monitor.tick(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if cut > 0 {
        monitor.message(&format!(
            "nixdispatch: {cut} log line(s) longer than {} KiB were cut (nix's JSON ones dropped)",
            MAX_LINE / 1024
        ));
    }
    monitor.finish(Instant::now())
}

/// The reading thread: sends the lines of `input` as they are read, until its end, a read
/// error (sent after the lines before it) or the monitor hanging up.
fn read_batches(mut input: impl Read, batches: &mpsc::SyncSender<std::io::Result<Lines>>) {
    let mut lines = Lines::new(MAX_LINE);
    let mut chunk = vec![0u8; READ_BYTES];
    loop {
        match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                lines.push(&chunk[..n]);
                // The next read may wait on the writer: what is finished goes now.
                if lines.has_lines() && batches.send(Ok(lines.take())).is_err() {
                    return;
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => {
                let _ = batches.send(Ok(lines.take()));
                let _ = batches.send(Err(err));
                return;
            }
        }
    }
    lines.finish();
    let _ = batches.send(Ok(lines.take()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::PlainRenderer;
    use std::sync::{Arc, Mutex};

    /// What a renderer wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut out) = self.0.lock() {
                out.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Gives its chunks one read at a time, then fails.
    struct Chunks(Vec<&'static [u8]>);

    impl Read for Chunks {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("the pipe broke"));
            }
            let chunk = self.0.remove(0);
            buf[..chunk.len()].copy_from_slice(chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_read_error_ends_the_log_after_the_lines_before_it() {
        let out = Written::default();
        let monitor = Monitor::new(Box::new(PlainRenderer::new(Box::new(out.clone()), 0)));
        let input = Chunks(vec![b"line o", b"ne\nline two\nhalf a l", b"ine"]);
        let summary = drive(input, monitor);
        assert!(summary.ok);
        let text = out.0.lock().map(|o| o.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        assert!(text.contains("line one\nline two\n"), "{text}");
        assert!(!text.contains("half a line"), "{text}");
        assert!(
            text.contains("reading stdin stopped: the pipe broke"),
            "{text}"
        );
    }

    fn oversized(line: &[u8]) -> Option<String> {
        shown(line, true).map(|s| s.into_owned())
    }

    #[test]
    fn cut_json_lines_are_dropped_other_cut_lines_show_their_start() {
        use crate::log::{SHOWN_OF_CUT, TRUNCATED};
        assert_eq!(oversized(b"<3>@nix {\"action\":"), None);
        assert_eq!(oversized(b"@nix {"), None);
        let shown = oversized(&[b'x'; 10_000]).unwrap_or_default();
        assert!(shown.starts_with(&"x".repeat(SHOWN_OF_CUT)));
        assert!(shown.ends_with(TRUNCATED));
        assert_eq!(shown.len(), SHOWN_OF_CUT + TRUNCATED.len());
    }
}
