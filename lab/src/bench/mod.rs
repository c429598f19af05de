//! `nixdispatch-lab bench`: nixdispatch against plain nix, measured on fresh labs.
//!
//! Every row runs both tools as real processes on the same lab, in the same run, each time on
//! fresh store paths (a new nonce in the fixture flake, re-seeded where the row needs a seeded
//! builder), and reports the median wall time of each side, the ratio nixdispatch / plain nix
//! (below 1: nixdispatch is faster), the target for that ratio and whether it was met.
//! The order of the sides rotates from run to run, so neither always runs first.
//!
//! - [`scenarios`]: what each row runs (noop, remote chains, held, down, tarpit, plan, daemon).
//! - [`cost`]: the rows of choosing by cost (slow link, fast link, slow cache, first run, a
//!   noisy link's regret).
//! - [`measure`]: timing one process, counting ssh sessions (TCP connections seasmoke's proxy
//!   accepted) and HTTP cache requests meanwhile; rounds of sides; medians.
//! - [`report`]: the text table, `--json` (serde_json), and the generated part of
//!   `BENCHMARKS.md` (`--markdown FILE`).

mod cost;
mod measure;
mod report;
mod scenarios;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nixdispatch_lab::{BuilderNix, ClientNix};

/// The usage text of `nixdispatch-lab bench`.
pub const USAGE: &str = "\
usage: nixdispatch-lab bench --nixdispatch PATH [--runs N] [--long-runs N] [--latency-ms MS]
                             [--cap-secs S] [--only LIST] [--clients LIST] [--builders LIST]
                             [--chains LIST] [--wide LIST] [--json] [--markdown FILE]

Measures nixdispatch against plain nix on fresh labs, both in the same run, and prints medians,
ratios (nixdispatch / plain nix; below 1 means nixdispatch is faster) and the target of each row
(met or missed). Needs root.

  --nixdispatch PATH   the binary under test (default: nixdispatch next to this program)
  --runs N             fresh runs per row and side, median reported (default 3)
  --long-runs N        runs of the long rows (10 s or more per run): chains of 10+ derivations,
                       plans of 2,000+ paths, the daemon rows (default 1)
  --latency-ms MS      one-way delay added each way to seasmoke (default 30)
  --cap-secs S         plain nix is killed after this long in the tarpit rows (default 10)
  --only LIST          comma-separated scenarios (default all):
                       noop,remote,session,held,down,tarpit,plan,daemon,cost
  --clients LIST       Nix clients (default 2.8,2.26,2.34; the daemon rows run on 2.26 and 2.34)
  --builders LIST      seasmoke's Nix (default 2.26,2.34): every row runs on the first; each
                       further one (rows keyed ROW@VERSION) runs the short rows of the remote,
                       session, held and plan scenarios (the shortest chain, held, the smallest
                       plan), which keeps the default bench near 40 minutes
  --chains LIST        derivations per chain in the remote rows (default 3,6,10,30)
  --wide LIST          paths of the planning fixtures, half of them on seasmoke (default 500,5000)
  --json               one JSON document on stdout instead of the table (progress stays on stderr)
  --markdown FILE      also write the generated tables into FILE (BENCHMARKS.md) between its
                       markers, keeping the hand-written text around them";

/// Every scenario, in the order they run.
pub const ALL_SCENARIOS: [&str; 9] = [
    "noop", "remote", "session", "held", "down", "tarpit", "plan", "daemon", "cost",
];

/// Set by SIGINT/SIGTERM/SIGHUP: the bench stops at the next measurement.
pub static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// What one bench run measures, from the command line.
pub struct Config {
    /// The nixdispatch binary under test.
    pub bin: PathBuf,
    /// Runs per side of the ordinary rows.
    pub runs: usize,
    /// Runs per side of the long rows.
    pub long_runs: usize,
    /// One-way delay added each way to seasmoke.
    pub latency: Duration,
    /// The most plain nix may take in the tarpit rows.
    pub cap: Duration,
    /// Scenarios to run.
    pub only: Vec<String>,
    /// Clients to run them on.
    pub clients: Vec<ClientNix>,
    /// seasmoke's Nix: every row on the first, the short rows on the others.
    pub builders: Vec<BuilderNix>,
    /// Chain lengths of the remote rows.
    pub chains: Vec<usize>,
    /// Path counts of the planning rows.
    pub wide: Vec<usize>,
    /// `--json`.
    pub json: bool,
    /// `--markdown FILE`.
    pub markdown: Option<PathBuf>,
    /// The command line, for the report's "reproduce with".
    pub argv: Vec<String>,
}

impl Config {
    /// Whether the scenario was asked for.
    pub fn wants(&self, scenario: &str) -> bool {
        self.only.iter().any(|s| s == scenario)
    }

    /// Runs for a row; `long` rows get `--long-runs`.
    pub fn runs_for(&self, long: bool) -> usize {
        if long {
            self.long_runs
        } else {
            self.runs
        }
    }
}

/// `nixdispatch-lab bench ARGS`.
pub fn run(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let cfg = parse_args(args)?;
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
    let started = SystemTime::now();
    let load_before = report::loadavg();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let outcome = scenarios::all(&cfg, &mut rows);
    if let Err(e) = &outcome {
        if rows.is_empty() {
            return Err(e.clone());
        }
        eprintln!("bench: stopped early ({e}); reporting the rows measured so far");
    }
    let meta = report::Meta::collect(&cfg, started, load_before, t0.elapsed());
    if cfg.json {
        println!("{}", report::json(&cfg, &meta, &rows));
    } else {
        print!("{}", report::table(&cfg, &meta, &rows));
    }
    if let Some(file) = &cfg.markdown {
        if outcome.is_ok() {
            report::write_markdown(file, &report::markdown(&cfg, &meta, &rows))?;
            eprintln!("bench: wrote {}", file.display());
        } else {
            eprintln!(
                "bench: {} left as it was (the bench did not finish)",
                file.display()
            );
        }
    }
    outcome?;
    let failed: usize = rows
        .iter()
        .flat_map(|r| r.nix.iter().chain(&r.nd))
        .filter(|s| matches!(s.outcome, measure::Outcome::Failed(_)))
        .count();
    if failed > 0 {
        return Err(format!(
            "bench: {failed} measured runs failed (their output is above)"
        ));
    }
    Ok(())
}

fn list<T>(
    name: &str,
    v: Option<&String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, String> {
    let v = v.ok_or(format!("{name} needs a list"))?;
    v.split(',')
        .map(|s| {
            parse(s.trim()).ok_or(format!(
                "{name}: {:?} is not one of the accepted values (see --help)",
                s.trim()
            ))
        })
        .collect()
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut cfg = Config {
        bin: PathBuf::new(),
        runs: 3,
        long_runs: 1,
        latency: Duration::from_millis(30),
        cap: Duration::from_secs(10),
        only: ALL_SCENARIOS.iter().map(|s| s.to_string()).collect(),
        clients: ClientNix::EVERY.to_vec(),
        builders: BuilderNix::ALL.to_vec(),
        chains: vec![3, 6, 10, 30],
        wide: vec![500, 5000],
        json: false,
        markdown: None,
        argv: args.to_vec(),
    };
    let mut bin = None;
    let mut i = 0;
    let number = |name: &str, v: Option<&String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{name} {v:?}: a whole number is needed"))
    };
    let count = |s: &str| s.parse::<usize>().ok().filter(|n| *n >= 1);
    while i < args.len() {
        let a = args[i].as_str();
        let v = args.get(i + 1);
        match a {
            "--json" => {
                cfg.json = true;
                i += 1;
                continue;
            }
            "--nixdispatch" => bin = Some(PathBuf::from(v.ok_or("--nixdispatch needs a path")?)),
            "--markdown" => cfg.markdown = Some(PathBuf::from(v.ok_or("--markdown needs a file")?)),
            "--runs" => cfg.runs = number(a, v)?.max(1) as usize,
            "--long-runs" => cfg.long_runs = number(a, v)?.max(1) as usize,
            "--latency-ms" => cfg.latency = Duration::from_millis(number(a, v)?),
            "--cap-secs" => cfg.cap = Duration::from_secs(number(a, v)?.max(1)),
            "--only" => {
                cfg.only = list(a, v, |s| ALL_SCENARIOS.contains(&s).then(|| s.to_string()))?
            }
            "--clients" => {
                cfg.clients = list(a, v, |s| {
                    ClientNix::EVERY.into_iter().find(|c| c.version() == s)
                })?
            }
            "--builders" => {
                cfg.builders = list(a, v, |s| {
                    BuilderNix::ALL.into_iter().find(|b| b.version() == s)
                })?
            }
            "--chains" => cfg.chains = list(a, v, count)?,
            "--wide" => cfg.wide = list(a, v, |s| count(s).filter(|n| *n >= 2))?,
            other => return Err(format!("bench: unexpected argument {other:?}\n\n{USAGE}")),
        }
        i += 2;
    }
    cfg.bin = match bin {
        Some(b) => b,
        None => std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join("nixdispatch")))
            .filter(|p| p.exists())
            .ok_or("bench: --nixdispatch PATH is needed")?,
    };
    if !cfg.bin.is_file() {
        return Err(format!(
            "bench: --nixdispatch {}: no such file",
            cfg.bin.display()
        ));
    }
    Ok(cfg)
}

/// `Err("bench: interrupted")` once a signal asked to stop.
pub fn interrupted() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("bench: interrupted".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lists_are_checked() {
        let bin = "/bin/sh";
        let cfg = parse_args(&args(&[
            "--nixdispatch",
            bin,
            "--clients",
            "2.26,2.34",
            "--chains",
            "6",
            "--only",
            "remote,daemon",
            "--builders",
            "2.34",
        ]))
        .unwrap();
        assert_eq!(cfg.builders, vec![BuilderNix::V2_34]);
        assert_eq!(cfg.clients, vec![ClientNix::V2_26, ClientNix::V2_34]);
        assert_eq!(cfg.chains, vec![6]);
        assert!(cfg.wants("daemon") && !cfg.wants("plan"));
        assert!(parse_args(&args(&["--nixdispatch", bin, "--clients", "2.9"])).is_err());
        assert!(parse_args(&args(&["--nixdispatch", bin, "--builders", "2.8"])).is_err());
        let cfg = parse_args(&args(&["--nixdispatch", bin])).unwrap();
        assert_eq!(cfg.builders, BuilderNix::ALL.to_vec());
        assert!(parse_args(&args(&["--nixdispatch", bin, "--only", "fast"])).is_err());
        assert!(parse_args(&args(&["--nixdispatch", bin, "--wide", "1"])).is_err());
    }
}
