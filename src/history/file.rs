//! The history file's format: lines of tab-separated fields, one sample a line, a first line
//! that names the format and a last line that counts the samples (a file cut short is told
//! apart from a whole one).
//!
//! ```text
//! nixdispatch-history 1
//! b NAME HOST AT SECS|- 1|0          a build: ended at AT (Unix seconds), took SECS, ok or not
//! c NAME STORE f|t AT BYTES SECS     a copy from (f) or to (t) STORE
//! r BUILDER AT RTT_MS                a probe
//! end COUNT
//! ```
//!
//! (fields separated by one tab each).
//!
//! Plain text was chosen over JSON for speed and for people: parsing is a split per line (no
//! escaping: keys with tabs or newlines are never recorded), and 100,000 samples load and
//! save in tens of milliseconds (see `store::tests::tens_of_thousands_of_keys_load_and_save`).

use super::{BuildSample, CopySample, Direction, History, ProbeSample};
use std::fmt::Write;

/// The first line of a history file of this version.
pub const MAGIC: &str = "nixdispatch-history 1";

/// Why a file is not a history this version can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged(pub String);

/// The file's text for `history`; keys sorted, so the same history is the same text.
pub fn encode(history: &History) -> String {
    let mut out = String::with_capacity(history.len() * 64 + 64);
    let _ = writeln!(out, "{MAGIC}");
    let mut count = 0usize;
    let mut builds: Vec<_> = history.builds.iter().collect();
    builds.sort_by(|a, b| a.0.cmp(b.0));
    for ((name, host), samples) in builds {
        for s in samples {
            let secs = s.secs.map_or("-".to_string(), |t| format!("{t:.3}"));
            let _ = writeln!(
                out,
                "b\t{name}\t{host}\t{}\t{secs}\t{}",
                s.at,
                u8::from(s.ok)
            );
            count += 1;
        }
    }
    let mut copies: Vec<_> = history.copies.iter().collect();
    copies.sort_by(|a, b| a.0.cmp(b.0));
    for ((name, store), samples) in copies {
        for s in samples {
            let dir = match s.direction {
                Direction::From => 'f',
                Direction::To => 't',
            };
            let _ = writeln!(
                out,
                "c\t{name}\t{store}\t{dir}\t{}\t{}\t{:.3}",
                s.at, s.bytes, s.secs
            );
            count += 1;
        }
    }
    let mut probes: Vec<_> = history.probes.iter().collect();
    probes.sort_by(|a, b| a.0.cmp(b.0));
    for (builder, samples) in probes {
        for s in samples {
            let _ = writeln!(out, "r\t{builder}\t{}\t{:.3}", s.at, s.rtt_ms);
            count += 1;
        }
    }
    let _ = writeln!(out, "end\t{count}");
    out
}

/// Reads a history file's text; any line it cannot read makes the whole file [`Damaged`].
pub fn decode(text: &str) -> Result<History, Damaged> {
    let mut lines = text.lines();
    match lines.next() {
        Some(MAGIC) => {}
        Some(first) if first.starts_with("nixdispatch-history ") => {
            return Err(Damaged(format!("written in another format ({first})")))
        }
        _ => return Err(Damaged("not a nixdispatch history".to_string())),
    }
    let mut history = History::new();
    // The file is sorted by key: samples of one key are gathered and stored together, so a
    // key is looked up (and its text copied) once, not once per sample.
    let mut builds: (&str, &str, Vec<BuildSample>) = ("", "", Vec::new());
    let mut copies: (&str, &str, Vec<CopySample>) = ("", "", Vec::new());
    for (count, line) in lines.enumerate() {
        let line_no = count + 2;
        let bad = || Damaged(format!("line {line_no} cannot be read"));
        let mut fields = [""; 8];
        let mut n = 0;
        for field in line.split('\t') {
            if n == fields.len() {
                return Err(bad());
            }
            fields[n] = field;
            n += 1;
        }
        match &fields[..n] {
            ["b", name, host, at, secs, ok] => {
                let secs = match *secs {
                    "-" => None,
                    s => Some(s.parse::<f64>().map_err(|_| bad())?),
                };
                let ok = match *ok {
                    "1" => true,
                    "0" => false,
                    _ => return Err(bad()),
                };
                let at = at.parse().map_err(|_| bad())?;
                if (builds.0, builds.1) != (*name, *host) {
                    history.add_builds(builds.0, builds.1, &builds.2);
                    builds = (name, host, Vec::new());
                }
                builds.2.push(BuildSample { at, secs, ok });
            }
            ["c", name, store, dir, at, bytes, secs] => {
                let direction = match *dir {
                    "f" => Direction::From,
                    "t" => Direction::To,
                    _ => return Err(bad()),
                };
                let sample = CopySample {
                    at: at.parse().map_err(|_| bad())?,
                    direction,
                    bytes: bytes.parse().map_err(|_| bad())?,
                    secs: secs.parse().map_err(|_| bad())?,
                };
                if (copies.0, copies.1) != (*name, *store) {
                    history.add_copies(copies.0, copies.1, &copies.2);
                    copies = (name, store, Vec::new());
                }
                copies.2.push(sample);
            }
            ["r", builder, at, rtt] => {
                let sample = ProbeSample {
                    at: at.parse().map_err(|_| bad())?,
                    rtt_ms: rtt.parse().map_err(|_| bad())?,
                };
                history.add_probe(builder, sample);
            }
            ["end", n] => {
                if n.parse::<usize>().ok() != Some(count) {
                    return Err(Damaged(format!(
                        "it says it holds {n} samples and holds {count}"
                    )));
                }
                history.add_builds(builds.0, builds.1, &builds.2);
                history.add_copies(copies.0, copies.1, &copies.2);
                return Ok(history);
            }
            _ => return Err(bad()),
        }
    }
    Err(Damaged("it was cut short (no end line)".to_string()))
}
