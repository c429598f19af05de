//! `nixdispatch monitor`: draw a `nix … --log-format internal-json -v` log read on stdin, like
//! `nom --json`. The back half of the pipeline alone: log → monitor → render.

use crate::log::{read_capped, MAX_LINE, TRUNCATED};
use crate::monitor::{Monitor, Summary};
use crate::settings::Display;
use crate::{Error, Result};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How often the display is refreshed while no line arrives (elapsed times, spinners).
const TICK: Duration = Duration::from_millis(200);

/// Roughly how much of the log one batch carries from the reading thread (and the size of its
/// read buffer).
const BATCH_BYTES: usize = 256 * 1024;

/// Reads nix's log from stdin to its end, showing it as `--progress`/`--json` ask; exit 0, or
/// a failed-run error (exit 1) when the log reported a failed build or an error of nix's own
/// that ended the run (relayed warnings at error level do not count).
pub fn run(display: &Display) -> Result<i32> {
    if display.terminal.stdin {
        return Err(Error::input(
            "`nixdispatch monitor` reads nix's log on stdin; pipe it in: \
             nix build --log-format internal-json -v ... |& nixdispatch monitor",
        ));
    }
    let mut monitor = Monitor::new(display.renderer());

    // Lines are read on their own thread so the display keeps ticking while nix is quiet. They
    // travel in batches (one channel hand-over per batch, not per line: a big log is mostly
    // tiny progress lines); a batch goes as soon as no whole line is left buffered, so a live log is
    // shown as it comes. Each line is capped and few batches wait: garbage on stdin costs a
    // few MiB at most.
    let (lines, incoming) = mpsc::sync_channel::<std::io::Result<Vec<(Vec<u8>, bool)>>>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::BufReader::with_capacity(BATCH_BYTES, std::io::stdin());
        let mut batch = Vec::new();
        let mut bytes = 0;
        loop {
            let mut line = Vec::new();
            match read_capped(&mut stdin, &mut line, MAX_LINE) {
                Ok(None) => break,
                Ok(Some(truncated)) => {
                    bytes += line.len();
                    batch.push((line, truncated));
                    // Without a whole line buffered, the next read may wait on the writer.
                    if bytes >= BATCH_BYTES || !stdin.buffer().contains(&b'\n') {
                        bytes = 0;
                        if lines.send(Ok(std::mem::take(&mut batch))).is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    let _ = lines.send(Ok(std::mem::take(&mut batch)));
                    let _ = lines.send(Err(err));
                    return;
                }
            }
        }
        let _ = lines.send(Ok(batch));
    });
    let mut cut = 0u64;
    loop {
        match incoming.recv_timeout(TICK) {
            Ok(Ok(batch)) => {
                for (line, truncated) in batch {
                    if !truncated {
                        monitor.feed_line(&String::from_utf8_lossy(&line), Instant::now());
                        continue;
                    }
                    cut += 1;
                    if let Some(shown) = oversized(&line) {
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
    let summary = monitor.finish(Instant::now());
    if summary.ok {
        Ok(0)
    } else {
        Err(Error::Failed(failure_line(&summary)))
    }
}

/// How a line cut at [`MAX_LINE`] is shown: nix's JSON lines are unreadable once cut and are
/// dropped; other lines show their start.
fn oversized(line: &[u8]) -> Option<String> {
    /// How much of a cut line is shown.
    const SHOWN: usize = 4096;
    let text = String::from_utf8_lossy(&line[..line.len().min(SHOWN)]);
    let json = text
        .trim_start_matches(|c: char| c == '<' || c == '>' || c.is_ascii_digit())
        .starts_with("@nix ");
    (!json).then(|| format!("{text}{TRUNCATED}"))
}

/// The one line that names what failed in the monitored run.
fn failure_line(summary: &Summary) -> String {
    let names: Vec<&str> = summary
        .failed
        .iter()
        .map(|f| crate::monitor::store_path_name(&f.drv))
        .collect();
    let cancelled = match summary.builds_cancelled {
        0 => String::new(),
        1 => "; 1 build cancelled (nix stopped it unfinished)".to_string(),
        n => format!("; {n} builds cancelled (nix stopped them unfinished)"),
    };
    let line = match (names.as_slice(), summary.errors.first()) {
        ([], Some(error)) => format!(
            "the monitored nix run reported an error: {}",
            super::error_headline(error)
        ),
        ([], None) => "the monitored nix run failed".to_string(),
        ([one], _) => format!("the monitored nix run failed: the build of {one} failed"),
        (many, _) => format!(
            "the monitored nix run failed: {} builds failed ({})",
            many.len(),
            many.join(", ")
        ),
    };
    format!("{line}{cancelled}")
}
