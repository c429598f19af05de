//! Where a run's time goes: each phase (settings, the trust check, the noop check, evaluation,
//! the probe, the store queries, the plan, the sudo prompt, nix's run, the copy back, the
//! history) logs one line when it ends, with its start as an offset from the process's start
//! and its duration. `-vv` shows them on stderr (target `nixdispatch::timing`, so
//! `RUST_LOG=nixdispatch::timing=debug` shows them alone); stdout and `--json` never carry them.
//!
//! A line reads `phase NAME: start +0.123 s, took 0.045 s`; [`parse_line`] reads it back (the
//! lab's bench builds its per-phase table from them).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Instant;

/// The tracing target of the phase lines.
pub const TARGET: &str = "nixdispatch::timing";

static START: OnceLock<Instant> = OnceLock::new();

/// Marks the process's start (the first call wins); offsets are measured from it.
pub fn start() {
    let _ = START.get_or_init(Instant::now);
}

fn origin() -> Instant {
    *START.get_or_init(Instant::now)
}

/// One phase under way: logs its line when dropped (finished, failed or cancelled alike).
#[must_use = "the phase ends when this is dropped"]
pub struct Phase {
    name: &'static str,
    started: Instant,
}

/// Starts phase `name`.
pub fn phase(name: &'static str) -> Phase {
    Phase {
        name,
        started: Instant::now(),
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        let start = self
            .started
            .saturating_duration_since(origin())
            .as_secs_f64();
        let took = self.started.elapsed().as_secs_f64();
        tracing::debug!(target: TARGET, "{}", line(self.name, start, took));
    }
}

/// Awaits `fut` as phase `name`.
pub async fn timed<F: Future>(name: &'static str, fut: F) -> F::Output {
    let _phase = phase(name);
    fut.await
}

/// The line of one phase.
pub fn line(name: &str, start_secs: f64, took_secs: f64) -> String {
    format!("phase {name}: start +{start_secs:.3} s, took {took_secs:.3} s")
}

/// One phase as read back from a line of stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseLine {
    /// The phase's name.
    pub name: String,
    /// Its start, seconds from the process's start.
    pub start_secs: f64,
    /// Its duration in seconds.
    pub took_secs: f64,
}

/// Reads a phase line out of a line of stderr (tracing's level and target before it, colour
/// escapes or not); `None` for any other line.
pub fn parse_line(line: &str) -> Option<PhaseLine> {
    let clean = crate::log::strip_ansi(line);
    let rest = &clean[clean.find("phase ")? + "phase ".len()..];
    let (name, rest) = rest.split_once(": start +")?;
    let (start, rest) = rest.split_once(" s, took ")?;
    let took = rest.trim_end().strip_suffix(" s")?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some(PhaseLine {
        name: name.to_owned(),
        start_secs: start.trim().parse().ok().filter(|s: &f64| s.is_finite())?,
        took_secs: took.trim().parse().ok().filter(|s: &f64| s.is_finite())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_back() {
        let l = line("evaluation", 0.1234, 0.5);
        assert_eq!(l, "phase evaluation: start +0.123 s, took 0.500 s");
        let read = parse_line(&format!(" DEBUG {TARGET}: {l}")).expect("a phase line");
        assert_eq!(read.name, "evaluation");
        assert!((read.start_secs - 0.123).abs() < 1e-9);
        assert!((read.took_secs - 0.5).abs() < 1e-9);
    }

    #[test]
    fn coloured_lines_read_back() {
        let l = format!(
            "\x1b[34mDEBUG\x1b[0m \x1b[2m{TARGET}\x1b[0m: phase plan: start +1.000 s, took 0.002 s"
        );
        assert_eq!(parse_line(&l).expect("a phase line").name, "plan");
    }

    #[test]
    fn other_lines_are_not_phases() {
        for l in [
            "",
            "phase",
            "phase : start +1 s, took 2 s",
            "phase x: start +nan s, took 1 s",
            "phase x: start +1 s, took 2",
            "DEBUG nixdispatch::run: running argv=[\"nix\"]",
            "phase a b: start +1 s, took 2 s",
        ] {
            assert_eq!(parse_line(l), None, "{l:?}");
        }
    }

    #[test]
    fn a_phase_measures_from_the_start() {
        start();
        let p = phase("x");
        assert!(p.started >= origin());
    }
}
