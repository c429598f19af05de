//! Feeding a whole log to a [`Monitor`]: the read loop of `nixdispatch monitor` (stdin) and of
//! anything else that has the log as a byte stream.

use super::{Monitor, Summary};
use crate::log::{append_capped, MAX_LINE, TRUNCATED};
use std::io::{BufReader, Read};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the display is refreshed while no line arrives (elapsed times, spinners).
const TICK: Duration = Duration::from_millis(200);

/// Roughly how much of the log one batch carries from the reading thread (and the size of its
/// read buffer).
const BATCH_BYTES: usize = 256 * 1024;

/// How many batches may wait between the reading thread and the monitor.
const BATCHES_WAITING: usize = 4;

/// How much of a line cut at [`MAX_LINE`] is shown.
const SHOWN_OF_CUT: usize = 4096;

/// Lines read together: their bytes one after another, and where each ends.
#[derive(Default)]
struct Batch {
    bytes: Vec<u8>,
    /// For each line, where its bytes end in `bytes` and whether it was cut at [`MAX_LINE`].
    lines: Vec<(usize, bool)>,
}

impl Batch {
    /// The lines of the batch and whether each was cut.
    fn lines(&self) -> impl Iterator<Item = (&[u8], bool)> {
        let mut start = 0;
        self.lines.iter().map(move |&(end, cut)| {
            let line = &self.bytes[start..end];
            start = end;
            (line, cut)
        })
    }
}

/// Feeds every line of `input` to `monitor` until the end of the input, then finishes it and
/// returns the summary (`summary.ok` is what the log says, see [`Monitor::finish`]).
///
/// Lines are read on a thread of their own, so the display keeps ticking while the writer is
/// quiet. Memory stays bounded whatever comes: each line is kept up to [`MAX_LINE`] bytes
/// (nix's JSON lines cut there are dropped, other lines show their start) and few lines wait.
/// Invalid UTF-8 is read lossily, never rejected. A read error ends the input early, said in
/// one line; the summary covers what was read.
pub fn drive(input: impl Read + Send + 'static, mut monitor: Monitor) -> Summary {
    // Lines travel in batches (one channel hand-over per batch, not per line: a big log is
    // mostly tiny progress lines); a batch goes as soon as no whole line is left buffered, so a
    // live log is shown as it comes.
    let (batches, incoming) = mpsc::sync_channel::<std::io::Result<Batch>>(BATCHES_WAITING);
    std::thread::spawn(move || read_batches(input, &batches));
    let mut cut = 0u64;
    loop {
        match incoming.recv_timeout(TICK) {
            Ok(Ok(batch)) => {
                for (line, truncated) in batch.lines() {
                    if !truncated {
                        monitor.feed_line(&String::from_utf8_lossy(line), Instant::now());
                        continue;
                    }
                    cut += 1;
                    if let Some(shown) = oversized(line) {
                        monitor.feed_line(&shown, Instant::now());
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

/// The reading thread: sends `input`'s lines in batches until its end, a read error (sent
/// after the lines before it) or the monitor hanging up.
fn read_batches(input: impl Read, batches: &mpsc::SyncSender<std::io::Result<Batch>>) {
    let mut input = BufReader::with_capacity(BATCH_BYTES, input);
    let mut batch = Batch::default();
    loop {
        match append_capped(&mut input, &mut batch.bytes, MAX_LINE) {
            Ok(None) => break,
            Ok(Some(truncated)) => {
                batch.lines.push((batch.bytes.len(), truncated));
                // Without a whole line buffered, the next read may wait on the writer.
                if batch.bytes.len() >= BATCH_BYTES || !input.buffer().contains(&b'\n') {
                    let full = std::mem::replace(
                        &mut batch,
                        Batch {
                            bytes: Vec::with_capacity(BATCH_BYTES + BATCH_BYTES / 4),
                            lines: Vec::new(),
                        },
                    );
                    if batches.send(Ok(full)).is_err() {
                        return;
                    }
                }
            }
            Err(err) => {
                let _ = batches.send(Ok(batch));
                let _ = batches.send(Err(err));
                return;
            }
        }
    }
    let _ = batches.send(Ok(batch));
}

/// How a line cut at [`MAX_LINE`] is shown: nix's JSON lines are unreadable once cut and are
/// dropped; other lines show their start.
fn oversized(line: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN_OF_CUT)]);
    let json = text
        .trim_start_matches(|c: char| c == '<' || c == '>' || c.is_ascii_digit())
        .starts_with("@nix ");
    (!json).then(|| format!("{text}{TRUNCATED}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_json_lines_are_dropped_other_cut_lines_show_their_start() {
        assert_eq!(oversized(b"<3>@nix {\"action\":"), None);
        assert_eq!(oversized(b"@nix {"), None);
        let shown = oversized(&[b'x'; 10_000]).unwrap_or_default();
        assert!(shown.starts_with(&"x".repeat(SHOWN_OF_CUT)));
        assert!(shown.ends_with(TRUNCATED));
        assert_eq!(shown.len(), SHOWN_OF_CUT + TRUNCATED.len());
    }
}
