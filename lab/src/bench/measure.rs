//! Timing one process on a lab, rounds of sides, and the statistics of the samples.
//!
//! Wall time is measured with [`Instant`] around the whole client process, the lab's wrapper
//! (`unshare` into vermax's mount namespace, `chroot` for 2.26/2.34 and the daemon variant)
//! included on every side. Beside the time, each measurement records the TCP connections
//! seasmoke's proxy accepted (every ssh session is one, and so is a bare TCP liveness check) and
//! the requests the HTTP cache served while it ran.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nixdispatch_lab::Lab;
use serde::Serialize;

use super::{interrupted, STOP};

/// How one measured process ended.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "outcome", content = "exit")]
pub enum Outcome {
    /// Exit 0.
    Ok,
    /// Another exit code (-1: killed by a signal).
    Failed(i32),
    /// Killed at the cap.
    Capped,
}

/// One timed run of one side.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Wall time (the cap when capped).
    pub secs: f64,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// TCP connections seasmoke's proxy accepted meanwhile (each ssh session is one).
    #[serde(rename = "ssh_connections")]
    pub ssh: u64,
    /// Of those, the ones seasmoke's sshd let in ("Accepted publickey" in its log): real ssh
    /// sessions, as opposed to bare TCP liveness checks closed before authentication.
    #[serde(rename = "ssh_authenticated")]
    pub ssh_auth: u64,
    /// Requests the HTTP cache served meanwhile.
    #[serde(rename = "cache_requests")]
    pub cache: u64,
    /// nixdispatch's mode, from its `mode: ...` line or its plan JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Paths the tool decided about (plan rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<u64>,
    /// Paths the tool says it will build (plan rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_build: Option<u64>,
    /// Paths nixdispatch takes from the builder's store (plan rows only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_builders: Option<u64>,
    /// nixdispatch's phases, from its `phase NAME: start +S s, took T s` lines on stderr
    /// (`RUST_LOG=nixdispatch::timing=debug`, see src/timing.rs); empty for plain nix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<PhaseTime>,
    /// What the process printed on stdout.
    #[serde(skip)]
    pub stdout: String,
    /// What the process printed on stderr.
    #[serde(skip)]
    pub stderr: String,
}

/// Runs `cmd` to the end (or to `cap`: SIGTERM to its process group, SIGKILL 5 s later) and
/// times it. Output goes to temporary files; on failure its tail is printed on stderr.
pub fn measure(lab: &Lab, mut cmd: Command, cap: Duration, label: &str) -> Result<Sample, String> {
    let mut out = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
    let mut err = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?)
        .process_group(0);
    let ssh0 = lab.builder_connections();
    let auth0 = authenticated(lab);
    let cache0 = lab.cache_requests().len();
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{label}: cannot start: {e}"))?;
    let pgid = child.id() as i32;
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        let deadline = Instant::now() + cap;
        loop {
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() < deadline && !STOP.load(Ordering::SeqCst) {
                        continue;
                    }
                }
                _ => return false,
            }
            // SAFETY: signals to the process group we created for the child.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
            if let Err(mpsc::RecvTimeoutError::Timeout) =
                done_rx.recv_timeout(Duration::from_secs(5))
            {
                // SAFETY: as above.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
            return true;
        }
    });
    let status = child.wait().map_err(|e| format!("{label}: wait: {e}"))?;
    let elapsed = t0.elapsed();
    let _ = done_tx.send(());
    let capped = killer.join().unwrap_or(false);
    let ssh = lab.builder_connections() - ssh0;
    let ssh_auth = authenticated(lab).saturating_sub(auth0);
    let cache = lab.cache_requests().len().saturating_sub(cache0) as u64;
    let stdout = read_all(&mut out);
    let stderr = read_all(&mut err);
    let outcome = if capped {
        Outcome::Capped
    } else if status.success() {
        Outcome::Ok
    } else {
        Outcome::Failed(status.code().unwrap_or(-1))
    };
    if let Outcome::Failed(code) = outcome {
        if !STOP.load(Ordering::SeqCst) {
            eprintln!("bench: {label} failed (exit {code}); the end of its output:");
            let text = format!("{stdout}{stderr}");
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(20)..] {
                eprintln!("    {l}");
            }
        }
    }
    let mode = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mode: "))
        .and_then(|m| m.split_whitespace().next())
        .map(String::from)
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_str(stdout.trim()).ok()?;
            Some(v.get("mode")?.as_str()?.to_string())
        });
    Ok(Sample {
        secs: if capped {
            cap.as_secs_f64()
        } else {
            elapsed.as_secs_f64()
        },
        outcome,
        ssh,
        ssh_auth,
        cache,
        mode,
        paths: None,
        to_build: None,
        from_builders: None,
        phases: phases(&stderr),
        stdout,
        stderr,
    })
}

/// One phase of a nixdispatch run, as its stderr said.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseTime {
    /// The phase's name (`settings`, `evaluation`, `probe`, `nix-build`, ...).
    pub name: String,
    /// Its start, seconds after nixdispatch started.
    pub start_secs: f64,
    /// How long it took, in seconds.
    pub took_secs: f64,
}

/// The phase lines of nixdispatch's stderr (src/timing.rs writes them: `phase NAME: start
/// +0.123 s, took 0.045 s` after tracing's level and target), in the order they ended.
pub fn phases(stderr: &str) -> Vec<PhaseTime> {
    stderr
        .lines()
        .filter(|l| l.contains("nixdispatch::timing"))
        .filter_map(|l| {
            let rest = &l[l.find(": phase ")? + ": phase ".len()..];
            let (name, rest) = rest.split_once(": start +")?;
            let (start, rest) = rest.split_once(" s, took ")?;
            let took = rest.trim_end().strip_suffix(" s")?;
            Some(PhaseTime {
                name: name.trim().to_string(),
                start_secs: start.trim().parse().ok()?,
                took_secs: took.trim().parse().ok()?,
            })
        })
        .collect()
}

/// Sessions seasmoke's sshd has authenticated so far.
fn authenticated(lab: &Lab) -> u64 {
    lab.builder_log()
        .lines()
        .filter(|l| l.contains("Accepted publickey"))
        .count() as u64
}

fn read_all(f: &mut File) -> String {
    let _ = f.seek(SeekFrom::Start(0));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// One measurement with progress on stderr. `prepare` runs first, untimed.
pub fn one(
    lab: &Lab,
    what: &str,
    prepare: &dyn Fn() -> Result<(), String>,
    cmd: Command,
    cap: Duration,
) -> Result<Sample, String> {
    interrupted()?;
    prepare()?;
    let s = measure(lab, cmd, cap, what)?;
    interrupted()?;
    let end = match s.outcome {
        Outcome::Ok => String::new(),
        Outcome::Failed(c) => format!(" FAILED (exit {c})"),
        Outcome::Capped => " killed at the cap".into(),
    };
    let mode = s
        .mode
        .as_deref()
        .map(|m| format!(", mode {m}"))
        .unwrap_or_default();
    eprintln!(
        "bench:   {what}: {:.2} s{end}{mode}, {} ssh connection(s) ({} authenticated), \
         {} cache request(s)",
        s.secs, s.ssh, s.ssh_auth, s.cache
    );
    Ok(s)
}

/// One side of a round: what to prepare (untimed, before each of its runs) and what to run.
pub struct Side<'a> {
    /// Shown in the progress lines ("plain nix", "nixdispatch", ...).
    pub label: &'a str,
    /// Runs before each measurement of this side, untimed.
    pub prepare: &'a dyn Fn() -> Result<(), String>,
    /// The measured command.
    pub cmd: &'a dyn Fn() -> Command,
}

/// The longest any measured run may take outside the tarpit rows.
pub const NO_CAP: Duration = Duration::from_secs(900);

/// `runs` rounds of every side; round i starts with side i mod n, so no side always goes
/// first. `each_run` runs once before each round (untimed). Returns the samples per side.
pub fn rounds(
    lab: &Lab,
    heading: &str,
    runs: usize,
    each_run: &dyn Fn() -> Result<(), String>,
    sides: &[Side<'_>],
) -> Result<Vec<Vec<Sample>>, String> {
    eprintln!("bench: {heading}, {runs} run(s)");
    let width = sides.iter().map(|s| s.label.len()).max().unwrap_or(0);
    let mut out: Vec<Vec<Sample>> = sides.iter().map(|_| Vec::new()).collect();
    for i in 0..runs {
        interrupted()?;
        each_run()?;
        for k in 0..sides.len() {
            let j = (i + k) % sides.len();
            let side = &sides[j];
            let what = format!("run {}/{runs} {:<width$}", i + 1, side.label);
            out[j].push(one(lab, &what, side.prepare, (side.cmd)(), NO_CAP)?);
        }
    }
    Ok(out)
}

// ----- statistics ------------------------------------------------------------------------------

/// The median of the samples' times; `capped` when a capped run decides it.
#[derive(Clone, Copy, Debug)]
pub struct Median {
    /// Seconds.
    pub secs: f64,
    /// A run killed at the cap is part of the median: the real time is longer.
    pub capped: bool,
}

/// The median wall time (a capped run counts as the longest).
pub fn median(samples: &[Sample]) -> Option<Median> {
    if samples.is_empty() {
        return None;
    }
    let mut s: Vec<&Sample> = samples.iter().collect();
    s.sort_by(|a, b| {
        let key = |x: &Sample| {
            if x.outcome == Outcome::Capped {
                f64::INFINITY
            } else {
                x.secs
            }
        };
        key(a).total_cmp(&key(b))
    });
    let n = s.len();
    let mid: Vec<&Sample> = if n % 2 == 1 {
        vec![s[n / 2]]
    } else {
        vec![s[n / 2 - 1], s[n / 2]]
    };
    Some(Median {
        secs: mid.iter().map(|x| x.secs).sum::<f64>() / mid.len() as f64,
        capped: mid.iter().any(|x| x.outcome == Outcome::Capped),
    })
}

/// The median of whole numbers (the upper one of an even count).
pub fn median_u64(v: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = v.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

/// nixdispatch / plain nix and how sure it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Ratio {
    /// Both sides finished.
    Exact(f64),
    /// Plain nix hit the cap: the ratio is at most this.
    Below(f64),
    /// nixdispatch hit the cap: the ratio is at least this.
    Above(f64),
}

impl Ratio {
    /// The number, whichever bound it is.
    pub fn value(self) -> f64 {
        match self {
            Ratio::Exact(r) | Ratio::Below(r) | Ratio::Above(r) => r,
        }
    }
}

/// nixdispatch / plain nix of the medians; `None` when either is missing or both capped.
pub fn ratio(nd: Option<Median>, nix: Option<Median>) -> Option<Ratio> {
    let (a, b) = (nd?, nix?);
    if b.secs <= 0.0 {
        return None;
    }
    let r = a.secs / b.secs;
    match (a.capped, b.capped) {
        (false, true) => Some(Ratio::Below(r)),
        (true, false) => Some(Ratio::Above(r)),
        (true, true) => None,
        (false, false) => Some(Ratio::Exact(r)),
    }
}

#[cfg(test)]
pub(crate) fn sample(secs: f64, outcome: Outcome) -> Sample {
    Sample {
        secs,
        outcome,
        ssh: 0,
        ssh_auth: 0,
        cache: 0,
        mode: None,
        paths: None,
        to_build: None,
        from_builders: None,
        phases: Vec::new(),
        stdout: String::new(),
        stderr: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        let m = median(&[
            sample(3.0, Outcome::Ok),
            sample(1.0, Outcome::Ok),
            sample(2.0, Outcome::Ok),
        ])
        .unwrap();
        assert_eq!(m.secs, 2.0);
        assert!(!m.capped);
        let capped = median(&[sample(120.0, Outcome::Capped)]);
        let nd = median(&[sample(3.0, Outcome::Ok)]);
        assert_eq!(ratio(nd, capped), Some(Ratio::Below(0.025)));
        assert_eq!(median_u64([3, 1, 2].into_iter()), Some(2));
    }

    #[test]
    fn phases_are_read_from_stderr() {
        let err = "mode: remote\n DEBUG nixdispatch::timing: phase settings: start +0.002 s, \
                   took 0.040 s\nwarning: x\n DEBUG nixdispatch::timing: phase nix-build: \
                   start +0.500 s, took 2.000 s\n";
        let p = phases(err);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "settings");
        assert_eq!(p[0].took_secs, 0.04);
        assert_eq!(p[1].start_secs, 0.5);
        assert!(phases("phase x: start +1 s, took 1 s").is_empty());
    }

    #[test]
    fn samples_serialise_with_their_outcome() {
        let mut s = sample(1.5, Outcome::Failed(1));
        s.mode = Some("remote".into());
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["exit"], 1);
        assert_eq!(v["mode"], "remote");
        assert_eq!(v["ssh_connections"], 0);
        assert!(v.get("paths").is_none());
        let v = serde_json::to_value(sample(1.0, Outcome::Ok)).unwrap();
        assert_eq!(v["outcome"], "ok");
    }
}
