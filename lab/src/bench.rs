//! `nixdispatch-lab bench`: nixdispatch against plain nix, measured on fresh labs.
//!
//! Every scenario runs both tools as real processes on the same lab, in the same run, each time
//! on fresh store paths (a new nonce in the fixture flake, re-seeded where the scenario needs a
//! seeded builder), and reports the median wall time of each side and the ratio
//! nixdispatch / plain nix (below 1: nixdispatch is faster). The order of the two sides
//! alternates from run to run, so neither always runs first.
//!
//! Wall time is measured with [`Instant`] around the whole client process, the lab's wrapper
//! (`unshare` into vermax's mount namespace, `chroot` for 2.26) included on both sides. Beside
//! the time, each measurement records the TCP connections seasmoke's proxy accepted (every ssh
//! session is one) and the requests the HTTP cache served while it ran.
//!
//! Scenarios (X is a fixture of the lab flake; `<spec>` is [`Lab::builder_spec`]):
//! 1. `noop`: X is valid locally (built just before, untimed).
//!    `nix build --no-link --builders '<spec>' X` vs `nixdispatch --builder '<spec>' build X`.
//!    nixdispatch must open no ssh connection.
//! 2. `remote`: X = `chain` (3 derivations), seasmoke empty, latency added each way.
//!    `nix build --no-link --max-jobs 0 --builders '<spec>' X` vs
//!    `nixdispatch --builder '<spec>' build X`.
//! 3. `held`: seasmoke already holds X (built there, signed, untimed); the client has nothing.
//!    Plain nix in remote mode (it sends the builds to seasmoke, which finds them valid, and
//!    copies the outputs back) vs nixdispatch (which substitutes from seasmoke's store).
//! 4. `down` / `tarpit`: seasmoke refuses connections / accepts TCP and never answers.
//!    `nix build --no-link --builders '<spec>' X` with nix's defaults (local jobs allowed) vs
//!    `nixdispatch --builder '<spec>' build X`. Plain nix is killed at the cap and reported as
//!    `> cap`; once it hits the cap it is not run again.
//! 5. `plan`: a wide fixture (`wideN`, N leaves under one root), half of the leaves on seasmoke,
//!    none locally, the HTTP cache as substituter. `nixdispatch --builder '<spec>' plan --json X`
//!    vs `nix build --dry-run --builders '<spec>' X`, each side on its own fresh paths and with
//!    nix's own caches in `~/.cache` emptied first. Reports paths per second, ssh connections and
//!    cache requests, and for scale one bare ssh session and `nixdispatch probe` alone.
//!
//! Scenarios 1-3 run with both clients (Nix 2.8 and Nix 2.26), 4-5 with Nix 2.8.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nixdispatch_lab::{ClientNix, Fault, Fixture, Lab, LabError, LabOptions};

/// The usage text of `nixdispatch-lab bench`.
pub const USAGE: &str = "\
usage: nixdispatch-lab bench --nixdispatch PATH [--runs N] [--latency-ms MS] [--cap-secs S]
                             [--wide N] [--only LIST] [--json]

Measures nixdispatch against plain nix on fresh labs, both in the same run, and prints medians and
ratios (nixdispatch / plain nix; below 1 means nixdispatch is faster). Needs root.

  --nixdispatch PATH   the binary under test (default: nixdispatch next to this program)
  --runs N             fresh runs per scenario and side, median reported (default 3)
  --latency-ms MS      one-way delay added each way to seasmoke (default 30)
  --cap-secs S         plain nix is killed after this long in the down/tarpit rows (default 120)
  --wide N             leaves of the planning fixture, half of them on seasmoke (default 500)
  --only LIST          comma-separated scenarios: noop,remote,held,down,tarpit,plan (default all)
  --json               one JSON document on stdout instead of the table (progress stays on stderr)";

const ALL_SCENARIOS: [&str; 6] = ["noop", "remote", "held", "down", "tarpit", "plan"];

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

struct Config {
    bin: PathBuf,
    runs: usize,
    latency: Duration,
    cap: Duration,
    wide: usize,
    only: Vec<String>,
    json: bool,
}

impl Config {
    fn wants(&self, scenario: &str) -> bool {
        self.only.iter().any(|s| s == scenario)
    }
}

/// How one measured process ended.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Ok,
    Failed(i32),
    /// Killed at the cap.
    Capped,
}

/// One timed run of one side.
#[derive(Clone, Debug)]
struct Sample {
    secs: f64,
    outcome: Outcome,
    /// TCP connections seasmoke's proxy accepted meanwhile (each ssh session is one).
    ssh: u64,
    /// Requests the HTTP cache served meanwhile.
    cache: usize,
    /// nixdispatch's mode, from its `mode: ...` line or its plan JSON.
    mode: Option<String>,
    /// Paths the tool decided about (scenario `plan` only).
    paths: Option<u64>,
    /// Paths the tool says it will build (scenario `plan` only).
    to_build: Option<u64>,
    /// Paths nixdispatch takes from the builder's store (scenario `plan` only).
    from_builders: Option<u64>,
    /// What the process printed.
    stdout: String,
    stderr: String,
}

/// One line of the table: a scenario on one client, both sides.
struct Row {
    key: &'static str,
    title: String,
    client: ClientNix,
    nix_cmd: String,
    nd_cmd: String,
    nix: Vec<Sample>,
    nd: Vec<Sample>,
    notes: Vec<String>,
    /// Reference measurements without a counterpart: (what, command, samples).
    extras: Vec<(String, String, Vec<Sample>)>,
}

impl Row {
    fn new(key: &'static str, title: &str, client: ClientNix, nix_cmd: &str, nd_cmd: &str) -> Row {
        Row {
            key,
            title: title.to_string(),
            client,
            nix_cmd: nix_cmd.to_string(),
            nd_cmd: nd_cmd.to_string(),
            nix: Vec::new(),
            nd: Vec::new(),
            notes: Vec::new(),
            extras: Vec::new(),
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
    let load_before = loadavg();
    let t0 = Instant::now();
    let mut rows = Vec::new();
    let mut nix_connect_timeout = None;

    // Scenarios 1-3 share one lab per client: a signing builder (so nixdispatch may substitute
    // from it in `held`), latency on the way to seasmoke, builders only on the command line.
    for v in ClientNix::ALL {
        if !(cfg.wants("noop") || cfg.wants("remote") || cfg.wants("held")) {
            break;
        }
        let lab = start(&LabOptions {
            latency: cfg.latency,
            builder_signs: true,
            ..LabOptions::default()
        })?;
        nix_connect_timeout.get_or_insert_with(|| connect_timeout(&lab));
        if cfg.wants("noop") {
            rows.push(noop(&cfg, &lab, v)?);
        }
        if cfg.wants("remote") {
            rows.push(remote(&cfg, &lab, v)?);
        }
        if cfg.wants("held") {
            rows.push(held(&cfg, &lab, v)?);
        }
    }
    if cfg.wants("down") {
        rows.push(unreachable(&cfg, Fault::Down)?);
    }
    if cfg.wants("tarpit") {
        rows.push(unreachable(&cfg, Fault::Tarpit)?);
    }
    if cfg.wants("plan") {
        rows.push(plan(&cfg)?);
    }
    let took = t0.elapsed();
    let load_after = loadavg();
    let nix_connect_timeout = nix_connect_timeout.unwrap_or_else(|| {
        start(&LabOptions::default())
            .map(|lab| connect_timeout(&lab))
            .unwrap_or_default()
    });
    let meta = Meta {
        date: utc_date(started),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_before,
        load_after,
        took,
        nix_connect_timeout,
    };
    if cfg.json {
        println!("{}", json(&cfg, &meta, &rows));
    } else {
        print!("{}", table(&cfg, &meta, &rows));
    }
    let failed: usize = rows
        .iter()
        .flat_map(|r| r.nix.iter().chain(&r.nd))
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .count();
    if failed > 0 {
        return Err(format!(
            "bench: {failed} measured runs failed (their output is above)"
        ));
    }
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Config, String> {
    let mut cfg = Config {
        bin: PathBuf::new(),
        runs: 3,
        latency: Duration::from_millis(30),
        cap: Duration::from_secs(120),
        wide: 500,
        only: ALL_SCENARIOS.iter().map(|s| s.to_string()).collect(),
        json: false,
    };
    let mut bin = None;
    let mut i = 0;
    let number = |name: &str, v: Option<&String>| -> Result<u64, String> {
        let v = v.ok_or(format!("{name} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{name} {v:?}: a whole number is needed"))
    };
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
            "--runs" => cfg.runs = number(a, v)?.max(1) as usize,
            "--latency-ms" => cfg.latency = Duration::from_millis(number(a, v)?),
            "--cap-secs" => cfg.cap = Duration::from_secs(number(a, v)?.max(1)),
            "--wide" => cfg.wide = (number(a, v)? as usize).max(2),
            "--only" => {
                let list = v.ok_or("--only needs a list")?;
                cfg.only = list.split(',').map(|s| s.trim().to_string()).collect();
                if let Some(bad) = cfg
                    .only
                    .iter()
                    .find(|s| !ALL_SCENARIOS.contains(&s.as_str()))
                {
                    return Err(format!(
                        "--only: unknown scenario {bad:?} (one of {})",
                        ALL_SCENARIOS.join(", ")
                    ));
                }
            }
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

fn start(opts: &LabOptions) -> Result<Lab, String> {
    Lab::start(opts.clone()).map_err(|e| match e {
        LabError::NotRoot => e.to_string(),
        other => format!("the lab did not start: {other}"),
    })
}

fn interrupted() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("bench: interrupted".into())
    } else {
        Ok(())
    }
}

fn lab_err(what: &str) -> impl Fn(LabError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// nix's `connect-timeout` in the lab client's `NIX_CONFIG` ("(unset)" when absent).
fn connect_timeout(lab: &Lab) -> String {
    lab.client_nix_config()
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "connect-timeout").then(|| v.trim().to_string())
        })
        .unwrap_or_else(|| "(unset)".into())
}

// ----- measuring -------------------------------------------------------------------------------

/// Runs `cmd` to the end (or to `cap`: SIGTERM to its process group, SIGKILL 5 s later) and
/// times it. Output goes to temporary files; on failure its tail is printed on stderr.
fn measure(lab: &Lab, mut cmd: Command, cap: Duration, label: &str) -> Result<Sample, String> {
    let mut out = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
    let mut err = tempfile::tempfile().map_err(|e| format!("temporary file: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().map_err(|e| e.to_string())?)
        .stderr(err.try_clone().map_err(|e| e.to_string())?)
        .process_group(0);
    let ssh0 = lab.builder_connections();
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
    let cache = lab.cache_requests().len().saturating_sub(cache0);
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
        .or_else(|| json_str(&stdout, "mode"));
    Ok(Sample {
        secs: if capped {
            cap.as_secs_f64()
        } else {
            elapsed.as_secs_f64()
        },
        outcome,
        ssh,
        cache,
        mode,
        paths: None,
        to_build: None,
        from_builders: None,
        stdout,
        stderr,
    })
}

fn read_all(f: &mut File) -> String {
    let _ = f.seek(SeekFrom::Start(0));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// One measurement with progress on stderr. `prepare` runs first, untimed.
fn one(
    cfg: &Config,
    lab: &Lab,
    what: &str,
    prepare: &dyn Fn() -> Result<(), String>,
    cmd: Command,
    cap: Option<Duration>,
) -> Result<Sample, String> {
    interrupted()?;
    prepare()?;
    let s = measure(
        lab,
        cmd,
        cap.unwrap_or(cfg.cap.max(Duration::from_secs(600))),
        what,
    )?;
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
        "bench:   {what}: {:.2} s{end}{mode}, {} ssh connection(s), {} cache request(s)",
        s.secs, s.ssh, s.cache
    );
    Ok(s)
}

/// When a scenario's `prepare` runs.
#[derive(Clone, Copy, PartialEq)]
enum Prepare {
    /// Before each side: each side gets its own fresh paths.
    EachSide,
    /// Once per run: both sides of a run see the same fresh paths (for read-only scenarios).
    EachRun,
}

/// `runs` rounds of both sides, alternating which goes first.
fn pairs(
    cfg: &Config,
    lab: &Lab,
    row: &mut Row,
    when: Prepare,
    prepare: &dyn Fn() -> Result<(), String>,
    nix: &dyn Fn() -> Command,
    nd: &dyn Fn() -> Command,
) -> Result<(), String> {
    eprintln!(
        "bench: {} (Nix {} client), {} runs",
        row.title,
        row.client.version(),
        cfg.runs
    );
    let nothing = || Ok(());
    let per_side: &dyn Fn() -> Result<(), String> = match when {
        Prepare::EachSide => prepare,
        Prepare::EachRun => &nothing,
    };
    for i in 0..cfg.runs {
        if when == Prepare::EachRun {
            interrupted()?;
            prepare()?;
        }
        let run = format!("run {}/{}", i + 1, cfg.runs);
        let nix_first = i % 2 == 0;
        for side in [nix_first, !nix_first] {
            if side {
                let what = format!("{run} plain nix  ");
                row.nix.push(one(cfg, lab, &what, per_side, nix(), None)?);
            } else {
                let what = format!("{run} nixdispatch");
                row.nd.push(one(cfg, lab, &what, per_side, nd(), None)?);
            }
        }
    }
    Ok(())
}

fn renew(lab: &Lab) -> Result<(), String> {
    lab.renew_nonce()
        .map(|_| ())
        .map_err(lab_err("renewing the nonce"))
}

fn nix_cmd(lab: &Lab, v: ClientNix, args: &[&str]) -> Command {
    let mut c = lab.client_command(v, "nix");
    c.args(args);
    c
}

fn nd_cmd(cfg: &Config, lab: &Lab, v: ClientNix, args: &[&str]) -> Command {
    let mut c = lab.nixdispatch(v, &cfg.bin);
    c.args(["--progress", "plain"]).args(args);
    c
}

// ----- scenarios -------------------------------------------------------------------------------

fn noop(cfg: &Config, lab: &Lab, v: ClientNix) -> Result<Row, String> {
    let mut row = Row::new(
        "noop",
        "noop: #chain already valid locally",
        v,
        "nix build --no-link --builders '<spec>' X",
        "nixdispatch --builder '<spec>' build X",
    );
    let x = lab.flake_ref("chain");
    let spec = lab.builder_spec();
    // Fresh paths each run, built locally (untimed) so both sides find them valid. That leaves
    // nix's evaluation cache warm, as after a real edit-build cycle.
    let prepare = || -> Result<(), String> {
        renew(lab)?;
        let mut c = nix_cmd(lab, v, &["build", "--no-link", &x]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        match c.status() {
            Ok(s) if s.success() => Ok(()),
            other => Err(format!("noop: building {x} locally first: {other:?}")),
        }
    };
    pairs(
        cfg,
        lab,
        &mut row,
        Prepare::EachRun,
        &prepare,
        &|| nix_cmd(lab, v, &["build", "--no-link", "--builders", &spec, &x]),
        &|| nd_cmd(cfg, lab, v, &["--builder", &spec, "build", &x]),
    )?;
    note_modes(&mut row);
    let ssh: u64 = row.nd.iter().map(|s| s.ssh).sum();
    if ssh == 0 {
        row.notes
            .push("nixdispatch opened no ssh connection (as it must)".into());
    } else {
        row.notes.push(format!(
            "BUG: nixdispatch opened {ssh} ssh connection(s) with nothing to do"
        ));
    }
    Ok(row)
}

fn remote(cfg: &Config, lab: &Lab, v: ClientNix) -> Result<Row, String> {
    let ms = cfg.latency.as_millis();
    let mut row = Row::new(
        "remote",
        &format!("remote: build #chain (3 drvs) on seasmoke, {ms} ms each way"),
        v,
        "nix build --no-link --max-jobs 0 --builders '<spec>' X",
        "nixdispatch --builder '<spec>' build X",
    );
    let x = lab.flake_ref("chain");
    let spec = lab.builder_spec();
    pairs(
        cfg,
        lab,
        &mut row,
        Prepare::EachSide,
        &|| renew(lab),
        &|| {
            nix_cmd(
                lab,
                v,
                &[
                    "build",
                    "--no-link",
                    "--max-jobs",
                    "0",
                    "--builders",
                    &spec,
                    &x,
                ],
            )
        },
        &|| nd_cmd(cfg, lab, v, &["--builder", &spec, "build", &x]),
    )?;
    note_modes(&mut row);
    Ok(row)
}

fn held(cfg: &Config, lab: &Lab, v: ClientNix) -> Result<Row, String> {
    let mut row = Row::new(
        "held",
        "held: seasmoke already holds #chain (signed), the client nothing",
        v,
        "nix build --no-link --max-jobs 0 --builders '<spec>' X",
        "nixdispatch --builder '<spec>' build X",
    );
    let x = lab.flake_ref("chain");
    let spec = lab.builder_spec();
    let seed = || -> Result<(), String> {
        renew(lab)?;
        lab.build_on_builder(&x)
            .map(|_| ())
            .map_err(lab_err("seeding seasmoke"))
    };
    pairs(
        cfg,
        lab,
        &mut row,
        Prepare::EachSide,
        &seed,
        &|| {
            nix_cmd(
                lab,
                v,
                &[
                    "build",
                    "--no-link",
                    "--max-jobs",
                    "0",
                    "--builders",
                    &spec,
                    &x,
                ],
            )
        },
        &|| nd_cmd(cfg, lab, v, &["--builder", &spec, "build", &x]),
    )?;
    note_modes(&mut row);
    Ok(row)
}

/// Scenario 4: seasmoke down or tarpitted, nix with its defaults (local jobs allowed).
fn unreachable(cfg: &Config, fault: Fault) -> Result<Row, String> {
    let v = ClientNix::V2_8;
    let (key, title) = match fault {
        Fault::Down => (
            "down",
            "down: seasmoke refuses connections, build #chain".to_string(),
        ),
        _ => (
            "tarpit",
            "tarpit: seasmoke accepts TCP, never answers; build #chain".to_string(),
        ),
    };
    let mut row = Row::new(
        key,
        &title,
        v,
        "nix build --no-link --builders '<spec>' X   (nix defaults: local jobs allowed)",
        "nixdispatch --builder '<spec>' build X",
    );
    // A lab of its own: a tarpitted nix may leave ssh sessions behind; Drop ends them all.
    let lab = start(&LabOptions {
        latency: cfg.latency,
        ..LabOptions::default()
    })?;
    lab.set_fault(fault);
    let x = lab.flake_ref("chain");
    let spec = lab.builder_spec();
    let nix = || nix_cmd(&lab, v, &["build", "--no-link", "--builders", &spec, &x]);
    let nd = || nd_cmd(cfg, &lab, v, &["--builder", &spec, "build", &x]);
    let prepare = || renew(&lab);
    if fault == Fault::Down {
        pairs(cfg, &lab, &mut row, Prepare::EachSide, &prepare, &nix, &nd)?;
    } else {
        // nixdispatch first (bounded by its connect timeout), then plain nix up to the cap.
        eprintln!(
            "bench: {title} (Nix 2.8 client), {} runs; plain nix capped at {} s",
            cfg.runs,
            cfg.cap.as_secs()
        );
        for i in 0..cfg.runs {
            let what = format!("run {}/{} nixdispatch", i + 1, cfg.runs);
            row.nd
                .push(one(cfg, &lab, &what, &prepare, nd(), Some(cfg.cap))?);
        }
        for i in 0..cfg.runs {
            let what = format!("run {}/{} plain nix  ", i + 1, cfg.runs);
            let s = one(cfg, &lab, &what, &prepare, nix(), Some(cfg.cap))?;
            let capped = s.outcome == Outcome::Capped;
            row.nix.push(s);
            if capped {
                row.notes.push(format!(
                    "plain nix was still waiting for seasmoke after {} s and was killed; \
                     not run again",
                    cfg.cap.as_secs()
                ));
                break;
            }
        }
    }
    note_modes(&mut row);
    drop(lab);
    Ok(row)
}

/// Scenario 5: the cost of deciding, on a wide fixture half of which seasmoke holds.
fn plan(cfg: &Config) -> Result<Row, String> {
    let v = ClientNix::V2_8;
    let n = cfg.wide;
    let name = format!("wide{n}");
    let full = Fixture::wide(&name, n);
    let half = Fixture::wide(&name, n / 2);
    let mut row = Row::new(
        "plan",
        &format!(
            "plan: #{name} ({n} leaves + root), {} leaves on seasmoke, none local, HTTP cache on",
            n / 2
        ),
        v,
        "nix build --dry-run --builders '<spec>' X",
        "nixdispatch --builder '<spec>' plan --json X",
    );
    let lab = start(&LabOptions {
        latency: cfg.latency,
        http_cache: true,
        fixtures: vec![full.clone()],
        ..LabOptions::default()
    })?;
    // Something in the cache, so that it has a nix-cache-info and both tools really ask it.
    lab.push_to_cache(&lab.flake_ref("hello"))
        .map_err(lab_err("filling the HTTP cache"))?;
    let x = lab.flake_ref(&name);
    let spec = lab.builder_spec();
    let cache_dir = lab.dir().join("home/.cache/nix");
    // The leaves of wideN/2 are the first N/2 leaves of wideN (same names, same attributes), so
    // building the smaller fixture on seasmoke seeds exactly half of the bigger one's leaves.
    let seed = || -> Result<(), String> {
        renew(&lab)?;
        lab.add_fixture(half.clone())
            .map_err(lab_err("writing the flake"))?;
        let t = Instant::now();
        // Like Lab::build_on_builder, with both of seasmoke's cores.
        let mut c = lab.builder_command("nix");
        c.args(["build", "--no-link", "--max-jobs", "2", &x])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = c.output().map_err(|e| format!("seeding seasmoke: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "seeding seasmoke: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        eprintln!(
            "bench:   (seeded {} leaves on seasmoke in {:.1?})",
            n / 2,
            t.elapsed()
        );
        lab.add_fixture(full.clone())
            .map_err(lab_err("writing the flake"))
    };
    let clear = || -> Result<(), String> {
        match std::fs::remove_dir_all(&cache_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("emptying {}: {e}", cache_dir.display())),
        }
    };
    // Each side plans its own fresh paths (its own nonce, its own seeding): whoever evaluates a
    // flake first pays for copying its source and writing its .drv files, so sharing paths
    // would favour the second. nix's caches in ~/.cache (evaluation, narinfo) are emptied too.
    pairs(
        cfg,
        &lab,
        &mut row,
        Prepare::EachSide,
        &seed,
        &|| {
            let _ = clear();
            nix_cmd(&lab, v, &["build", "--dry-run", "--builders", &spec, &x])
        },
        &|| {
            let _ = clear();
            nd_cmd(cfg, &lab, v, &["--builder", &spec, "plan", "--json", &x])
        },
    )?;
    for s in &mut row.nd {
        let count = |k: &str| json_num(&s.stdout, k);
        let parts = ["valid_locally", "from_caches", "from_builders", "to_build"].map(count);
        s.paths = parts.iter().copied().sum::<Option<u64>>();
        s.from_builders = parts[2];
        s.to_build = parts[3];
    }
    for s in &mut row.nix {
        let built = dry_run_count(&s.stderr, "will be built");
        let fetched = dry_run_count(&s.stderr, "will be fetched");
        s.to_build = Some(built);
        s.paths = Some(built + fetched);
    }
    // For scale: what one ssh session to seasmoke costs at this latency, and nixdispatch's
    // probe alone (one ssh master, nix's version and trust on seasmoke).
    let mut ssh = Vec::new();
    let mut probe = Vec::new();
    let ssh_config = lab.ssh_config().display().to_string();
    for i in 0..cfg.runs {
        let what = format!("run {}/{} ssh seasmoke true", i + 1, cfg.runs);
        let mut c = lab.client_command(v, "ssh");
        c.args(["-F", &ssh_config, "seasmoke", "true"]);
        ssh.push(one(cfg, &lab, &what, &|| Ok(()), c, None)?);
        let what = format!("run {}/{} nixdispatch probe", i + 1, cfg.runs);
        let c = nd_cmd(cfg, &lab, v, &["--builder", &spec, "probe"]);
        probe.push(one(cfg, &lab, &what, &|| Ok(()), c, None)?);
    }
    row.extras.push((
        "one ssh session".into(),
        "ssh -F LAB/ssh_config seasmoke true".into(),
        ssh,
    ));
    row.extras.push((
        "nixdispatch's probe alone".into(),
        "nixdispatch --builder '<spec>' probe".into(),
        probe,
    ));
    if let (Some(nd), Some(nix)) = (row.nd.last(), row.nix.last()) {
        row.notes.push(format!(
            "nixdispatch: {} paths decided, {} from seasmoke's store, {} to build",
            opt_num(nd.paths),
            opt_num(nd.from_builders),
            opt_num(nd.to_build)
        ));
        row.notes.push(format!(
            "plain nix: {} paths decided, {} to build (it does not look into a builder's store)",
            opt_num(nix.paths),
            opt_num(nix.to_build)
        ));
    }
    drop(lab);
    Ok(row)
}

fn opt_num(n: Option<u64>) -> String {
    n.map_or("?".into(), |n| n.to_string())
}

/// "these 501 derivations will be built:" -> 501; "this derivation will be built:" -> 1.
fn dry_run_count(text: &str, what: &str) -> u64 {
    text.lines()
        .filter(|l| l.contains(what))
        .map(|l| {
            let l = l.trim();
            if l.starts_with("this ") {
                1
            } else {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            }
        })
        .sum()
}

fn note_modes(row: &mut Row) {
    let modes: Vec<String> = row
        .nd
        .iter()
        .map(|s| s.mode.clone().unwrap_or_else(|| "?".into()))
        .collect();
    let mut uniq = modes.clone();
    uniq.dedup();
    row.notes.push(format!(
        "nixdispatch chose mode {}",
        if uniq.len() == 1 {
            uniq[0].clone()
        } else {
            modes.join("/")
        }
    ));
}

// ----- JSON scraps (the lab crate has no JSON library) -----------------------------------------

fn json_str(text: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":\"");
    let i = text.find(&pat)? + pat.len();
    let rest = &text[i..];
    Some(rest[..rest.find('"')?].to_string())
}

fn json_num(text: &str, key: &str) -> Option<u64> {
    let pat = format!("\"{key}\":");
    let i = text.find(&pat)? + pat.len();
    let digits: String = text[i..]
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

// ----- statistics and output -------------------------------------------------------------------

/// The median of the samples' times; `capped` when a capped run decides it.
struct Median {
    secs: f64,
    capped: bool,
}

fn median(samples: &[Sample]) -> Option<Median> {
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

fn median_u64(v: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = v.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn fmt_secs(m: &Option<Median>) -> String {
    match m {
        None => "-".into(),
        Some(m) if m.capped => format!("> {:.0} s", m.secs),
        Some(m) => format!("{:.2} s", m.secs),
    }
}

/// nixdispatch / plain nix, as text ("< 0.03" when plain nix hit the cap).
fn ratio(nd: &Option<Median>, nix: &Option<Median>) -> (String, Option<f64>) {
    match (nd, nix) {
        (Some(a), Some(b)) if b.secs > 0.0 => {
            let r = a.secs / b.secs;
            match (a.capped, b.capped) {
                (false, true) => (format!("< {r:.3}"), Some(r)),
                (true, false) => (format!("> {r:.2}"), Some(r)),
                (true, true) => ("?".into(), None),
                (false, false) => (format!("{r:.2}"), Some(r)),
            }
        }
        _ => ("-".into(), None),
    }
}

fn failures(samples: &[Sample]) -> String {
    let failed = samples
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Failed(_)))
        .count();
    if failed == 0 {
        String::new()
    } else {
        format!(" ({failed}/{} FAILED)", samples.len())
    }
}

struct Meta {
    date: String,
    cores: usize,
    load_before: String,
    load_after: String,
    took: Duration,
    nix_connect_timeout: String,
}

fn table(cfg: &Config, meta: &Meta, rows: &[Row]) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "\nnixdispatch vs plain nix, {} ({} cores, load {} before, {} after), {} runs each, \
         median wall time; {} ms added each way to seasmoke; bench took {:.0} s",
        meta.date,
        meta.cores,
        meta.load_before,
        meta.load_after,
        cfg.runs,
        cfg.latency.as_millis(),
        meta.took.as_secs_f64()
    );
    let _ = writeln!(
        o,
        "ratio = nixdispatch / plain nix (below 1: nixdispatch is faster); ssh = connections \
         to seasmoke per run (median)\n"
    );
    let _ = writeln!(
        o,
        "{:<9} {:<6} {:>12} {:>12} {:>8} {:>9} {:>9}",
        "scenario", "client", "plain nix", "nixdispatch", "ratio", "ssh nix", "ssh nd"
    );
    let _ = writeln!(o, "{}", "-".repeat(71));
    for r in rows {
        let (nix, nd) = (median(&r.nix), median(&r.nd));
        let ssh = |s: &[Sample]| {
            median_u64(s.iter().map(|x| x.ssh)).map_or("-".into(), |n| n.to_string())
        };
        let _ = writeln!(
            o,
            "{:<9} {:<6} {:>12} {:>12} {:>8} {:>9} {:>9}{}{}",
            r.key,
            r.client.version(),
            fmt_secs(&nix),
            fmt_secs(&nd),
            ratio(&nd, &nix).0,
            ssh(&r.nix),
            ssh(&r.nd),
            failures(&r.nix),
            failures(&r.nd),
        );
    }
    if let Some(r) = rows.iter().find(|r| r.key == "plan") {
        let _ = writeln!(o, "\nplanning cost ({}):", r.title);
        for (who, s) in [("plain nix  ", &r.nix), ("nixdispatch", &r.nd)] {
            let m = median(s);
            let paths = median_u64(s.iter().filter_map(|x| x.paths));
            let rate = match (&m, paths) {
                (Some(m), Some(p)) if m.secs > 0.0 => format!("{:.0}", p as f64 / m.secs),
                _ => "?".into(),
            };
            let _ = writeln!(
                o,
                "  {who}  {}  {} paths decided = {rate} paths/s, {} ssh connection(s), \
                 {} HTTP cache request(s)",
                fmt_secs(&m),
                opt_num(paths),
                opt_num(median_u64(s.iter().map(|x| x.ssh))),
                opt_num(median_u64(s.iter().map(|x| x.cache as u64))),
            );
        }
    }
    for r in rows {
        for (what, cmd, s) in &r.extras {
            let _ = writeln!(
                o,
                "  for scale: {what} ({cmd}): {} median, {} ssh connection(s)",
                fmt_secs(&median(s)),
                opt_num(median_u64(s.iter().map(|x| x.ssh))),
            );
        }
    }
    let _ = writeln!(o, "\nper run, in seconds (plain nix | nixdispatch):");
    for r in rows {
        let list = |s: &[Sample]| {
            s.iter()
                .map(|x| match x.outcome {
                    Outcome::Ok => format!("{:.2}", x.secs),
                    Outcome::Failed(c) => format!("{:.2}(exit {c})", x.secs),
                    Outcome::Capped => format!(">{:.0}", x.secs),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let _ = writeln!(
            o,
            "  {:<9} {:<5} {} | {}",
            r.key,
            r.client.version(),
            list(&r.nix),
            list(&r.nd)
        );
    }
    let _ = writeln!(
        o,
        "\nwhat each row measures (X = the fixture, <spec> = seasmoke's machines line):"
    );
    let mut seen = Vec::new();
    for r in rows {
        if seen.contains(&r.key) {
            continue;
        }
        seen.push(r.key);
        let clients: Vec<&str> = rows
            .iter()
            .filter(|q| q.key == r.key)
            .map(|q| q.client.version())
            .collect();
        let _ = writeln!(o, "  {:<9} {} [Nix {}]", r.key, r.title, clients.join(", "));
        let _ = writeln!(o, "            plain nix:   {}", r.nix_cmd);
        let _ = writeln!(o, "            nixdispatch: {}", r.nd_cmd);
        for q in rows.iter().filter(|q| q.key == r.key) {
            for n in &q.notes {
                let _ = writeln!(o, "            - [{}] {n}", q.client.version());
            }
        }
    }
    let _ = writeln!(
        o,
        "\nnix's connect-timeout in the lab's NIX_CONFIG: {} s. nix applies it to binary-cache \
         (HTTP) connections only; its ssh to a builder has no timeout of its own, which is why \
         a tarpitted builder can hold plain nix until the cap.",
        meta.nix_connect_timeout
    );
    let _ = writeln!(
        o,
        "Wall time includes the lab's client wrapper (unshare, and chroot for 2.26) on both sides. \
         Every run used fresh store paths (a new nonce in the fixture flake)."
    );
    o
}

fn json(cfg: &Config, meta: &Meta, rows: &[Row]) -> String {
    let side = |cmd: &str, s: &[Sample]| -> String {
        let m = median(s);
        let mut o = String::from("{");
        let _ = write!(o, "\"command\":{},", json_escape(cmd));
        let _ = write!(
            o,
            "\"median_secs\":{},\"median_capped\":{},",
            m.as_ref()
                .map_or("null".into(), |m| format!("{:.4}", m.secs)),
            m.as_ref().is_some_and(|m| m.capped)
        );
        let runs: Vec<String> = s
            .iter()
            .map(|x| {
                let (outcome, code) = match x.outcome {
                    Outcome::Ok => ("ok", None),
                    Outcome::Failed(c) => ("failed", Some(c)),
                    Outcome::Capped => ("capped", None),
                };
                let mut r = format!(
                    "{{\"secs\":{:.4},\"outcome\":\"{outcome}\",\"ssh_connections\":{},\
                     \"cache_requests\":{}",
                    x.secs, x.ssh, x.cache
                );
                if let Some(c) = code {
                    let _ = write!(r, ",\"exit\":{c}");
                }
                if let Some(m) = &x.mode {
                    let _ = write!(r, ",\"mode\":{}", json_escape(m));
                }
                for (k, v) in [
                    ("paths", x.paths),
                    ("to_build", x.to_build),
                    ("from_builders", x.from_builders),
                ] {
                    if let Some(v) = v {
                        let _ = write!(r, ",\"{k}\":{v}");
                    }
                }
                r.push('}');
                r
            })
            .collect();
        let _ = write!(o, "\"runs\":[{}]}}", runs.join(","));
        o
    };
    let rows_json: Vec<String> = rows
        .iter()
        .map(|r| {
            let (nix, nd) = (median(&r.nix), median(&r.nd));
            let notes: Vec<String> = r.notes.iter().map(|n| json_escape(n)).collect();
            let extras: Vec<String> = r
                .extras
                .iter()
                .map(|(what, cmd, s)| {
                    format!(
                        "{{\"what\":{},\"measured\":{}}}",
                        json_escape(what),
                        side(cmd, s)
                    )
                })
                .collect();
            format!(
                "{{\"scenario\":{},\"title\":{},\"client\":\"{}\",\"plain_nix\":{},\
                 \"nixdispatch\":{},\"ratio\":{},\"notes\":[{}],\"extras\":[{}]}}",
                json_escape(r.key),
                json_escape(&r.title),
                r.client.version(),
                side(&r.nix_cmd, &r.nix),
                side(&r.nd_cmd, &r.nd),
                ratio(&nd, &nix)
                    .1
                    .map_or("null".into(), |x| format!("{x:.4}")),
                notes.join(","),
                extras.join(",")
            )
        })
        .collect();
    format!(
        "{{\"date\":{},\"cores\":{},\"loadavg_before\":{},\"loadavg_after\":{},\"took_secs\":{:.1},\
         \"runs_per_side\":{},\"latency_ms\":{},\"cap_secs\":{},\"nix_connect_timeout\":{},\
         \"rows\":[{}]}}",
        json_escape(&meta.date),
        meta.cores,
        json_escape(&meta.load_before),
        json_escape(&meta.load_after),
        meta.took.as_secs_f64(),
        cfg.runs,
        cfg.latency.as_millis(),
        cfg.cap.as_secs(),
        json_escape(&meta.nix_connect_timeout),
        rows_json.join(",")
    )
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

/// `YYYY-MM-DD HH:MM UTC`.
fn utc_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: f64, outcome: Outcome) -> Sample {
        Sample {
            secs,
            outcome,
            ssh: 0,
            cache: 0,
            mode: None,
            paths: None,
            to_build: None,
            from_builders: None,
            stdout: String::new(),
            stderr: String::new(),
        }
    }

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
        assert_eq!(ratio(&nd, &capped).0, "< 0.025");
        assert_eq!(fmt_secs(&capped), "> 120 s");
    }

    #[test]
    fn scraps() {
        assert_eq!(
            dry_run_count(
                "these 501 derivations will be built:\n  /nix/store/x",
                "will be built"
            ),
            501
        );
        assert_eq!(
            dry_run_count("this derivation will be built:", "will be built"),
            1
        );
        let j = r#"{"mode":"remote","counts":{"valid_locally":0,"from_caches":0,"from_builders":250,"to_build":251}}"#;
        assert_eq!(json_str(j, "mode").as_deref(), Some("remote"));
        assert_eq!(json_num(j, "from_builders"), Some(250));
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01 00:00 UTC");
        assert_eq!(
            utc_date(UNIX_EPOCH + Duration::from_secs(1_709_251_200)),
            "2024-03-01 00:00 UTC"
        );
    }
}
