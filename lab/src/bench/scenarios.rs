//! What each row runs. X is a fixture of the lab flake; `<spec>` is [`Lab::builder_spec`].
//!
//! 1. `noop`: X (`#chain`) is valid locally (built just before, untimed, which leaves nix's
//!    evaluation cache warm). `nix build --no-link --builders '<spec>' X` vs
//!    `nixdispatch --builder '<spec>' build --no-link X`. nixdispatch must open no ssh
//!    connection. Target ≤ 1.2.
//! 2. `remote` (one row per chain length N, `#chain` for 3, `#chainN` otherwise): seasmoke
//!    empty, latency added each way. `nix build --no-link --max-jobs 0 --builders '<spec>' X` vs
//!    `nixdispatch --builder '<spec>' build --no-link X`. Target ≤ 0.8.
//!    `session` (one row per chain length N, the same fixtures): the same plain nix against
//!    `nixdispatch --builder '<spec>' --remote-via session build --no-link X` (issue 21: one
//!    `nix build` on seasmoke, its log followed, the outputs copied back once); beside the
//!    `remote` rows of the same run it compares the build hook with a session. Target ≤ 0.8.
//! 3. `held`: seasmoke already holds `#chain` (built there, signed, untimed); the client has
//!    nothing. Plain nix in remote mode (the builds go to seasmoke, which finds them valid, and
//!    the outputs are copied back) vs nixdispatch. Target ≤ 0.8.
//! 4. `down` / `tarpit`: seasmoke refuses connections / accepts TCP and never answers.
//!    `nix build --no-link --builders '<spec>' X` with nix's defaults (local jobs allowed) vs
//!    `nixdispatch --builder '<spec>' build --no-link X`. Down: target ≤ 1.2. Tarpit: plain nix
//!    is killed at the cap, once; the target is that nixdispatch's local build starts within
//!    its connect timeout + 0.3 s, checked as nixdispatch's time minus plain nix building X
//!    locally (`--builders ''`, measured beside it).
//! 5. `plan` (one row per size N): `#wideN` (N leaves under one root), half of the leaves on
//!    seasmoke (registered valid there once per lab), none locally, the HTTP cache as substituter.
//!    `nix build --dry-run --builders '<spec>' X` vs `nixdispatch --builder '<spec>' plan --json
//!    X`, on the same paths, after one untimed dry run per client (so the `.drv` files exist for
//!    both sides), with nix's caches in `~/.cache` emptied before every run. Target ≤ 1.5, and
//!    nixdispatch's ssh sessions must not grow with N.
//! 6. `daemon` (clients 2.26 and 2.34): vermax runs a nix-daemon as root, alice (non-root,
//!    trusted) builds `#chain6` through it with seasmoke from `/etc/nix/machines` and root's key,
//!    30 ms each way. Six sides: plain nix with root's ssh as users have it today (no master),
//!    plain nix and nixdispatch with root's ssh configuration as the declarative set-up writes
//!    it (`lib.sshConfig` of nix/lib.nix: ControlMaster auto, ControlPersist), cold (no master
//!    left from the previous run) and warm (a master up, as within ControlPersist of an earlier
//!    build), and nixdispatch with today's. Rows: nixdispatch (declared) vs plain nix today
//!    (target ≤ 0.8), and vs plain nix declared (target ≤ 1.05), cold and warm.
//!
//! seasmoke runs the first Nix of `--builders` (2.26 by default) for every row; each further one
//! (2.34) runs the shortest remote and session chain, held and the smallest plan again, keyed
//! `ROW@2.34`. nixdispatch's runs carry `RUST_LOG=nixdispatch::timing=debug`: its phase lines
//! (src/timing.rs) give the report's table of where its time goes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use nixdispatch_lab::{
    sid_root, trixie_root, BuilderNix, ClientNix, DaemonClient, DaemonOptions, Fault, Fixture, Lab,
    LabError, LabOptions,
};

use super::measure::{median, median_u64, one, ratio, rounds, Outcome, Sample, Side};
use super::{interrupted, Config};

/// What a row's ratio (or time) must reach, from issue 14's table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// nixdispatch / plain nix ≤ this.
    RatioAtMost(f64),
    /// nixdispatch's time minus a local build (the row's `local` extra) ≤ connect timeout +
    /// slack, in seconds.
    LocalStartWithin {
        /// nixdispatch's `--connect-timeout` (its default).
        connect_timeout: f64,
        /// What the issue allows on top.
        slack: f64,
    },
}

/// A measurement without a counterpart, for scale (one bare ssh session, the probe alone, a
/// local build).
pub struct Extra {
    /// Short key (`local`, `ssh`, `probe`, ...).
    pub key: &'static str,
    /// What it is, in words.
    pub what: String,
    /// The command.
    pub command: String,
    /// Its runs.
    pub samples: Vec<Sample>,
}

/// One line of the table: a scenario on one client, both sides.
pub struct Row {
    /// Unique per scenario variant: `noop`, `remote6`, `plan5000`, `daemon-today`, ...
    pub key: String,
    /// The scenario it belongs to (`--only`).
    pub scenario: &'static str,
    /// One line saying what it measures.
    pub title: String,
    /// The client: `2.8`, `2.26`, `2.34`.
    pub client: &'static str,
    /// The plain-nix command.
    pub nix_cmd: String,
    /// The nixdispatch command.
    pub nd_cmd: String,
    /// Plain nix's runs.
    pub nix: Vec<Sample>,
    /// nixdispatch's runs.
    pub nd: Vec<Sample>,
    /// The issue's target.
    pub target: Target,
    /// What was seen (modes chosen, paths decided, ...).
    pub notes: Vec<String>,
    /// Reference measurements.
    pub extras: Vec<Extra>,
}

impl Row {
    fn new(key: &str, scenario: &'static str, title: String, v: ClientNix, target: Target) -> Row {
        Row {
            key: key.to_string(),
            scenario,
            title,
            client: v.version(),
            nix_cmd: String::new(),
            nd_cmd: String::new(),
            nix: Vec::new(),
            nd: Vec::new(),
            target,
            notes: Vec::new(),
            extras: Vec::new(),
        }
    }

    fn commands(mut self, nix: &str, nd: &str) -> Row {
        self.nix_cmd = nix.to_string();
        self.nd_cmd = nd.to_string();
        self
    }
}

/// nixdispatch's default `--connect-timeout`, in seconds (CONTRACT.md).
const ND_CONNECT_TIMEOUT: f64 = 3.0;

/// Rows of 10+ derivations, 2,000+ paths, and the daemon rows get `--long-runs`: each of their
/// runs takes 10 s or more at 30 ms, and the default bench must stay near 40 minutes.
fn long_chain(n: usize) -> bool {
    n >= 10
}
fn long_plan(n: usize) -> bool {
    n >= 2000
}

/// Runs every scenario the configuration asks for, pushing rows as they finish (so that an
/// interrupted bench still reports what it measured).
pub fn all(cfg: &Config, rows: &mut Vec<Row>) -> Result<(), String> {
    if cfg.wants("noop") || cfg.wants("remote") || cfg.wants("session") || cfg.wants("held") {
        for (i, &b) in cfg.builders.iter().enumerate() {
            builder_up(cfg, On::new(b, i == 0), rows)?;
        }
    }
    if cfg.wants("down") {
        unreachable(cfg, Fault::Down, rows)?;
    }
    if cfg.wants("tarpit") {
        unreachable(cfg, Fault::Tarpit, rows)?;
    }
    if cfg.wants("plan") {
        for (i, &b) in cfg.builders.iter().enumerate() {
            plan(cfg, On::new(b, i == 0), rows)?;
        }
    }
    if cfg.wants("daemon") {
        for v in [ClientNix::V2_26, ClientNix::V2_34] {
            if cfg.clients.contains(&v) {
                daemon(cfg, v, rows)?;
            }
        }
    }
    if cfg.wants("cost") {
        super::cost::rows(cfg, rows)?;
    }
    Ok(())
}

/// seasmoke's Nix for a group of rows: the first of `--builders` runs every row under its
/// plain key; each further one the short rows, keyed `ROW@VERSION`.
#[derive(Clone, Copy)]
struct On {
    builder: BuilderNix,
    first: bool,
}

impl On {
    fn new(builder: BuilderNix, first: bool) -> On {
        On { builder, first }
    }

    /// The row's key on this builder.
    fn key(self, key: &str) -> String {
        if self.first {
            key.to_string()
        } else {
            format!("{key}@{}", self.builder.version())
        }
    }

    /// Whether a row's key is one of this builder's.
    fn owns(self, key: &str) -> bool {
        if self.first {
            !key.contains('@')
        } else {
            key.ends_with(&self.key(""))
        }
    }

    /// Words for the title.
    fn title(self, title: String) -> String {
        format!("{title} (seasmoke on Nix {})", self.builder.version())
    }
}

/// The environment variable that makes nixdispatch write its phase lines (src/timing.rs) on
/// stderr without the rest of `-vv` (which would also raise nix's verbosity).
const PHASES_LOG: (&str, &str) = ("RUST_LOG", "warn,nixdispatch::timing=debug");

fn start(opts: LabOptions) -> Result<Lab, String> {
    Lab::start(opts).map_err(|e| match e {
        LabError::NotRoot => e.to_string(),
        other => format!("the lab did not start: {other}"),
    })
}

pub(super) fn lab_err(what: &str) -> impl Fn(LabError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

pub(super) fn renew(lab: &Lab) -> Result<(), String> {
    lab.renew_nonce()
        .map(|_| ())
        .map_err(lab_err("renewing the nonce"))
}

pub(super) fn nix_cmd(lab: &Lab, v: ClientNix, args: &[&str]) -> Command {
    let mut c = lab.client_command(v, "nix");
    c.args(args);
    c
}

fn nd_cmd(cfg: &Config, lab: &Lab, v: ClientNix, args: &[&str]) -> Command {
    let mut c = lab.nixdispatch(v, &cfg.bin);
    c.args(["--progress", "plain"])
        .args(args)
        .env(PHASES_LOG.0, PHASES_LOG.1);
    c
}

/// `nix build --no-link --max-jobs 0 --builders SPEC X`: plain nix sending every build to the
/// builder.
fn nix_remote(lab: &Lab, v: ClientNix, spec: &str, x: &str) -> Command {
    nix_cmd(
        lab,
        v,
        &[
            "build",
            "--no-link",
            "--max-jobs",
            "0",
            "--builders",
            spec,
            x,
        ],
    )
}

/// `nixdispatch --builder SPEC build --no-link X`.
fn nd_build(cfg: &Config, lab: &Lab, v: ClientNix, spec: &str, x: &str) -> Command {
    nd_cmd(cfg, lab, v, &["--builder", spec, "build", "--no-link", x])
}

fn chain_name(n: usize) -> String {
    if n == 3 {
        "chain".into()
    } else {
        format!("chain{n}")
    }
}

/// Two sides, plain nix and nixdispatch, into the row.
#[allow(clippy::too_many_arguments)]
fn pair(
    lab: &Lab,
    row: &mut Row,
    runs: usize,
    each_run: &dyn Fn() -> Result<(), String>,
    each_side: &dyn Fn() -> Result<(), String>,
    nix: &dyn Fn() -> Command,
    nd: &dyn Fn() -> Command,
) -> Result<(), String> {
    let heading = format!("{} (Nix {} client)", row.title, row.client);
    let mut got = rounds(
        lab,
        &heading,
        runs,
        each_run,
        &[
            Side {
                label: "plain nix",
                prepare: each_side,
                cmd: nix,
            },
            Side {
                label: "nixdispatch",
                prepare: each_side,
                cmd: nd,
            },
        ],
    )?;
    row.nd = got.pop().unwrap_or_default();
    row.nix = got.pop().unwrap_or_default();
    Ok(())
}

fn nothing() -> Result<(), String> {
    Ok(())
}

/// Rows 1-3 on one lab (every client has its own store): a signing builder (so nixdispatch may
/// substitute from it in `held`), latency on the way to seasmoke, builders only on the command
/// line.
fn builder_up(cfg: &Config, on: On, rows: &mut Vec<Row>) -> Result<(), String> {
    let shortest = cfg.chains.iter().copied().min();
    let chains: Vec<usize> = if on.first {
        cfg.chains.clone()
    } else {
        shortest.into_iter().collect()
    };
    let lab = start(LabOptions {
        latency: cfg.latency,
        builder_signs: true,
        builder_nix: on.builder,
        fixtures: chains
            .iter()
            .filter(|n| **n != 3)
            .map(|n| Fixture::chain(&chain_name(*n), *n).output_bytes(1024))
            .collect(),
        ..LabOptions::default()
    })?;
    let spec = lab.builder_spec();
    let ms = cfg.latency.as_millis();
    for &v in &cfg.clients {
        if cfg.wants("noop") && on.first {
            let x = lab.flake_ref("chain");
            let mut row = Row::new(
                "noop",
                "noop",
                "noop: #chain already valid locally".into(),
                v,
                Target::RatioAtMost(1.2),
            )
            .commands(
                "nix build --no-link --builders '<spec>' X",
                "nixdispatch --builder '<spec>' build --no-link X",
            );
            // Fresh paths each run, built locally (untimed) so both sides find them valid.
            let prepare = || -> Result<(), String> {
                renew(&lab)?;
                let mut c = nix_cmd(&lab, v, &["build", "--no-link", &x]);
                c.stdout(Stdio::null()).stderr(Stdio::null());
                match c.status() {
                    Ok(s) if s.success() => Ok(()),
                    other => Err(format!("noop: building {x} locally first: {other:?}")),
                }
            };
            pair(
                &lab,
                &mut row,
                cfg.runs,
                &prepare,
                &nothing,
                &|| nix_cmd(&lab, v, &["build", "--no-link", "--builders", &spec, &x]),
                &|| nd_build(cfg, &lab, v, &spec, &x),
            )?;
            note_modes(&mut row);
            let ssh: u64 = row.nd.iter().map(|s| s.ssh).sum();
            row.notes.push(if ssh == 0 {
                "nixdispatch opened no ssh connection (as it must)".into()
            } else {
                format!("BUG: nixdispatch opened {ssh} ssh connection(s) with nothing to do")
            });
            rows.push(row);
        }
        // The same chains through nix's build hook and as a session on seasmoke (issue 21),
        // each asked for by name: the default may be either.
        for (scenario, via, what) in [
            ("remote", "hook", "on seasmoke"),
            ("session", "session", "as a session on seasmoke"),
        ] {
            if !cfg.wants(scenario) {
                continue;
            }
            for &n in &chains {
                let x = lab.flake_ref(&chain_name(n));
                let mut title = format!(
                    "{scenario}: build #{} ({n} drvs) {what}, {ms} ms each way",
                    chain_name(n)
                );
                if !on.first {
                    title = on.title(title);
                }
                let mut row = Row::new(
                    &on.key(&format!("{scenario}{n}")),
                    scenario,
                    title,
                    v,
                    Target::RatioAtMost(0.8),
                )
                .commands(
                    "nix build --no-link --max-jobs 0 --builders '<spec>' X",
                    &format!("nixdispatch --builder '<spec>' --remote-via {via} build --no-link X"),
                );
                let nd = || {
                    nd_cmd(
                        cfg,
                        &lab,
                        v,
                        &[
                            "--builder",
                            &spec,
                            "--remote-via",
                            via,
                            "build",
                            "--no-link",
                            &x,
                        ],
                    )
                };
                pair(
                    &lab,
                    &mut row,
                    cfg.runs_for(long_chain(n)),
                    &nothing,
                    &|| renew(&lab),
                    &|| nix_remote(&lab, v, &spec, &x),
                    &nd,
                )?;
                note_modes(&mut row);
                rows.push(row);
            }
        }
        // Beside the session rows: the session against the hook, same chain, same run.
        for &n in &chains {
            let find = |scenario: &str| {
                let key = on.key(&format!("{scenario}{n}"));
                rows.iter()
                    .position(|r| r.key == key && r.client == v.version())
            };
            if let (Some(hook), Some(session)) = (find("remote"), find("session")) {
                let (h, s) = (median(&rows[hook].nd), median(&rows[session].nd));
                if let Some(r) = ratio(s, h) {
                    let r = r.value();
                    rows[session]
                        .notes
                        .push(format!("session / hook (nixdispatch, same run): {r:.2}"));
                }
            }
        }
        if cfg.wants("held") {
            let x = lab.flake_ref("chain");
            let title = "held: seasmoke already holds #chain (signed), the client nothing";
            let mut row = Row::new(
                &on.key("held"),
                "held",
                if on.first {
                    title.into()
                } else {
                    on.title(title.into())
                },
                v,
                Target::RatioAtMost(0.8),
            )
            .commands(
                "nix build --no-link --max-jobs 0 --builders '<spec>' X",
                "nixdispatch --builder '<spec>' build --no-link X",
            );
            let seed = || -> Result<(), String> {
                renew(&lab)?;
                lab.build_on_builder(&x)
                    .map(|_| ())
                    .map_err(lab_err("seeding seasmoke"))
            };
            pair(
                &lab,
                &mut row,
                cfg.runs,
                &nothing,
                &seed,
                &|| nix_remote(&lab, v, &spec, &x),
                &|| nd_build(cfg, &lab, v, &spec, &x),
            )?;
            note_modes(&mut row);
            rows.push(row);
        }
    }
    Ok(())
}

/// Row 4: seasmoke down or tarpitted, nix with its defaults (local jobs allowed). A lab of its
/// own: a tarpitted nix may leave ssh sessions behind; Drop ends them all.
fn unreachable(cfg: &Config, fault: Fault, rows: &mut Vec<Row>) -> Result<(), String> {
    let lab = start(LabOptions {
        latency: cfg.latency,
        ..LabOptions::default()
    })?;
    lab.set_fault(fault);
    let x = lab.flake_ref("chain");
    let spec = lab.builder_spec();
    let prepare = || renew(&lab);
    for &v in &cfg.clients {
        let nix = || nix_cmd(&lab, v, &["build", "--no-link", "--builders", &spec, &x]);
        let nd = || nd_build(cfg, &lab, v, &spec, &x);
        let nix_text =
            "nix build --no-link --builders '<spec>' X   (nix defaults: local jobs allowed)";
        let nd_text = "nixdispatch --builder '<spec>' build --no-link X";
        if fault == Fault::Down {
            let mut row = Row::new(
                "down",
                "down",
                "down: seasmoke refuses connections, build #chain".into(),
                v,
                Target::RatioAtMost(1.2),
            )
            .commands(nix_text, nd_text);
            pair(&lab, &mut row, cfg.runs, &nothing, &prepare, &nix, &nd)?;
            note_modes(&mut row);
            rows.push(row);
            continue;
        }
        let mut row = Row::new(
            "tarpit",
            "tarpit",
            "tarpit: seasmoke accepts TCP, never answers; build #chain".into(),
            v,
            Target::LocalStartWithin {
                connect_timeout: ND_CONNECT_TIMEOUT,
                slack: 0.3,
            },
        )
        .commands(nix_text, nd_text);
        // nixdispatch (bounded by its connect timeout) and the local build it falls back to,
        // then plain nix once, up to the cap.
        let local = || nix_cmd(&lab, v, &["build", "--no-link", "--builders", "", &x]);
        let mut got = rounds(
            &lab,
            &format!("{} (Nix {} client)", row.title, row.client),
            cfg.runs,
            &nothing,
            &[
                Side {
                    label: "nixdispatch",
                    prepare: &prepare,
                    cmd: &nd,
                },
                Side {
                    label: "plain nix, local build only (--builders '')",
                    prepare: &prepare,
                    cmd: &local,
                },
            ],
        )?;
        row.extras.push(Extra {
            key: "local",
            what: "plain nix building X locally".into(),
            command: "nix build --no-link --builders '' X".into(),
            samples: got.pop().unwrap_or_default(),
        });
        row.nd = got.pop().unwrap_or_default();
        eprintln!(
            "bench: plain nix against the tarpit (Nix {} client), capped at {} s",
            row.client,
            cfg.cap.as_secs()
        );
        for i in 0..cfg.runs {
            let what = format!("run {}/{} plain nix", i + 1, cfg.runs);
            let s = one(&lab, &what, &prepare, nix(), cfg.cap)?;
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
        note_modes(&mut row);
        rows.push(row);
    }
    drop(lab);
    Ok(())
}

/// Row 5: the cost of deciding, on wide fixtures half of which seasmoke holds.
fn plan(cfg: &Config, on: On, rows: &mut Vec<Row>) -> Result<(), String> {
    let smallest = cfg.wide.iter().copied().min();
    let fixtures: Vec<(usize, String)> = cfg
        .wide
        .iter()
        .filter(|n| on.first || Some(**n) == smallest)
        .map(|&n| (n, format!("wide{n}")))
        .collect();
    let lab = start(LabOptions {
        latency: cfg.latency,
        http_cache: true,
        builder_nix: on.builder,
        fixtures: fixtures
            .iter()
            .map(|(n, name)| Fixture::wide(name, *n))
            .collect(),
        ..LabOptions::default()
    })?;
    // Something in the cache, so that it has a nix-cache-info and both tools really ask it.
    lab.push_to_cache(&lab.flake_ref("hello"))
        .map_err(lab_err("filling the HTTP cache"))?;
    let spec = lab.builder_spec();
    let cache_dir = lab.dir().join("home/.cache/nix");
    // Half of each fixture's leaves made valid in seasmoke's store. Building 2,500 leaves there
    // for real took over 8 minutes on this machine (and then failed), so the leaves' output
    // paths (from evaluating the fixture on seasmoke) are created as small directories in its
    // store and registered with `nix-store --register-validity`: planning only asks which paths
    // are valid, it never reads them. Planning writes nothing but .drv files, so the seeding
    // holds for every run and client.
    for (n, name) in &fixtures {
        interrupted()?;
        let t = Instant::now();
        let count = seed_valid(&lab, name, n / 2)?;
        eprintln!(
            "bench: made {count} leaves of #{name} valid on seasmoke in {:.1?}",
            t.elapsed()
        );
    }
    let clear = || -> Result<(), String> {
        match std::fs::remove_dir_all(&cache_dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("emptying {}: {e}", cache_dir.display())),
        }
    };
    for &v in &cfg.clients {
        for (n, name) in &fixtures {
            let x = lab.flake_ref(name);
            let title = format!(
                "plan: #{name} ({n} leaves + root), {} leaves on seasmoke, none local, \
                 HTTP cache on",
                n / 2
            );
            let mut row = Row::new(
                &on.key(&format!("plan{n}")),
                "plan",
                if on.first { title } else { on.title(title) },
                v,
                Target::RatioAtMost(1.5),
            )
            .commands(
                "nix build --dry-run --builders '<spec>' X",
                "nixdispatch --builder '<spec>' plan --json X",
            );
            let dry = || nix_cmd(&lab, v, &["build", "--dry-run", "--builders", &spec, &x]);
            // One untimed dry run writes the .drv files into this client's store, so that
            // neither side pays for them.
            interrupted()?;
            let t = Instant::now();
            let warm = dry().stdout(Stdio::null()).stderr(Stdio::null()).status();
            if !matches!(warm, Ok(s) if s.success()) {
                return Err(format!("plan: the untimed dry run of {x} failed: {warm:?}"));
            }
            eprintln!(
                "bench: (evaluated #{name} on the Nix {} client in {:.1?}, untimed)",
                v.version(),
                t.elapsed()
            );
            pair(
                &lab,
                &mut row,
                cfg.runs_for(long_plan(*n)),
                &nothing,
                &clear,
                &dry,
                &|| nd_cmd(cfg, &lab, v, &["--builder", &spec, "plan", "--json", &x]),
            )?;
            for s in &mut row.nd {
                let v: Option<serde_json::Value> = serde_json::from_str(s.stdout.trim()).ok();
                let count = |k: &str| v.as_ref()?.get("counts")?.get(k)?.as_u64();
                let parts =
                    ["valid_locally", "from_caches", "from_builders", "to_build"].map(count);
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
            if let (Some(nd), Some(nix)) = (row.nd.last(), row.nix.last()) {
                row.notes.push(format!(
                    "nixdispatch: {} paths decided, {} from seasmoke's store, {} to build",
                    opt_num(nd.paths),
                    opt_num(nd.from_builders),
                    opt_num(nd.to_build)
                ));
                row.notes.push(format!(
                    "plain nix: {} paths decided, {} to build (it does not look into a \
                     builder's store)",
                    opt_num(nix.paths),
                    opt_num(nix.to_build)
                ));
            }
            rows.push(row);
        }
        // Round trips must not grow with the number of paths: compare the sizes.
        let sizes: Vec<String> = rows
            .iter()
            .filter(|r| r.scenario == "plan" && r.client == v.version() && on.owns(&r.key))
            .map(|r| {
                format!(
                    "{}: {} ssh / {} cache requests",
                    r.key,
                    opt_num(median_u64(r.nd.iter().map(|s| s.ssh))),
                    opt_num(median_u64(r.nd.iter().map(|s| s.cache)))
                )
            })
            .collect();
        if sizes.len() > 1 {
            if let Some(r) = rows.iter_mut().rev().find(|r| r.scenario == "plan") {
                r.notes
                    .push(format!("nixdispatch by size: {}", sizes.join("; ")));
            }
        }
    }
    // For scale: one ssh session to seasmoke at this latency, and nixdispatch's probe alone.
    if let (Some(&v), Some(row), true) = (
        cfg.clients.first(),
        rows.iter_mut().find(|r| r.scenario == "plan"),
        on.first,
    ) {
        let ssh_config = lab.ssh_config().display().to_string();
        let ssh = || {
            let mut c = lab.client_command(v, "ssh");
            c.args(["-F", &ssh_config, "seasmoke", "true"]);
            c
        };
        let probe = || nd_cmd(cfg, &lab, v, &["--builder", &spec, "probe"]);
        let mut got = rounds(
            &lab,
            &format!("for scale (Nix {} client)", v.version()),
            cfg.runs,
            &nothing,
            &[
                Side {
                    label: "ssh seasmoke true",
                    prepare: &nothing,
                    cmd: &ssh,
                },
                Side {
                    label: "nixdispatch probe",
                    prepare: &nothing,
                    cmd: &probe,
                },
            ],
        )?;
        let probe = got.pop().unwrap_or_default();
        let ssh = got.pop().unwrap_or_default();
        row.extras.push(Extra {
            key: "ssh",
            what: "one ssh session".into(),
            command: "ssh -F LAB/ssh_config seasmoke true".into(),
            samples: ssh,
        });
        row.extras.push(Extra {
            key: "probe",
            what: "nixdispatch's probe alone".into(),
            command: "nixdispatch --builder '<spec>' probe".into(),
            samples: probe,
        });
    }
    drop(lab);
    Ok(())
}

/// Makes the first `half` leaves of `#NAME` valid in seasmoke's store without building them
/// (see [`plan`]); returns how many.
fn seed_valid(lab: &Lab, name: &str, half: usize) -> Result<usize, String> {
    let mut c = lab.builder_command("nix");
    c.args(["eval", "--json", &format!("{}.deps", lab.flake_ref(name))]);
    c.stdin(Stdio::null());
    let out = c
        .output()
        .map_err(|e| format!("evaluating #{name} on seasmoke: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "evaluating #{name} on seasmoke: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let leaves: Vec<String> = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("#{name}.deps is not a list of paths: {e}"))?;
    let store = lab.builder_nix_dir().join("store");
    let mut reginfo = String::new();
    let mut count = 0;
    for path in leaves.iter().take(half) {
        let base = path
            .strip_prefix("/nix/store/")
            .ok_or_else(|| format!("#{name}: {path} is not in /nix/store"))?;
        let dir = store.join(base);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(dir.join("nonce"), format!("{}\n", lab.nonce()))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        // path, deriver (none), number of references (none).
        reginfo.push_str(&format!("{path}\n\n0\n"));
        count += 1;
    }
    let mut c = lab.builder_command("nix-store");
    c.arg("--register-validity")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .map_err(|e| format!("nix-store --register-validity on seasmoke: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(reginfo.as_bytes())
            .map_err(|e| format!("nix-store --register-validity: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("nix-store --register-validity: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nix-store --register-validity on seasmoke: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(count)
}

// ----- the daemon client -----------------------------------------------------------------------

/// nix/lib.nix of this checkout.
fn lib_nix() -> Result<PathBuf, String> {
    let candidates = [
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../nix/lib.nix")),
        PathBuf::from("nix/lib.nix"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .ok_or_else(|| "daemon rows: nix/lib.nix not found (run from the repository)".into())
}

/// Root's ssh configuration for seasmoke as the declarative set-up writes it
/// (`lib.sshConfig` with the daemon variant's machine), control sockets in `control_dir`.
fn declared_ssh_config(lab: &Lab, control_dir: &str) -> Result<String, String> {
    let lib = lib_nix()?;
    let expr = format!(
        r#"let lib = import {lib}; b = {{ hostName = "seasmoke"; address = "127.0.0.1";
             port = {port}; sshUser = "root"; sshKey = "{key}"; systems = [ "x86_64-linux" ];
             maxJobs = 2; substitute = false; }};
           in lib.sshConfig {{ builders = [ b ]; controlDir = "{control_dir}"; }}"#,
        lib = lib.display(),
        port = lab.builder_port(),
        key = nixdispatch_lab::daemon::ROOT_KEY,
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .env("NIX_CONFIG", "experimental-features = nix-command")
        .output()
        .map_err(|e| format!("daemon rows: nix-instantiate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "daemon rows: evaluating lib.sshConfig failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice::<String>(&out.stdout)
        .map_err(|e| format!("daemon rows: lib.sshConfig did not give a string: {e}"))
}

/// Switches root's ssh configuration on vermax (`/etc/ssh/ssh_config` of the daemon variant)
/// and makes the next run cold: live connections cut, control sockets removed.
struct RootSsh<'a> {
    lab: &'a Lab,
    client: &'a DaemonClient<'a>,
    file: PathBuf,
    today: String,
    declared: String,
    control_dir: PathBuf,
}

impl RootSsh<'_> {
    fn set(&self, declared: bool) -> Result<(), String> {
        // The file is bind-mounted into the daemon's namespace: rewrite it in place (same inode).
        let text = if declared {
            format!("{}\n{}", self.declared, self.today)
        } else {
            self.today.clone()
        };
        std::fs::write(&self.file, text)
            .map_err(|e| format!("writing {}: {e}", self.file.display()))?;
        self.lab.drop_builder_connections();
        if let Ok(entries) = std::fs::read_dir(&self.control_dir) {
            for e in entries.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        renew(self.lab)
    }

    /// The declared configuration with a master already up, as after an earlier build within
    /// `ControlPersist`: root runs `ssh root@seasmoke true` (untimed), which leaves the master
    /// behind in root's control directory.
    fn warm(&self) -> Result<(), String> {
        self.set(true)?;
        let mut c = self.client.root_command("ssh");
        // Null stdio: the master that stays in the background must not hold a pipe of ours.
        c.args(["root@seasmoke", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match c.status() {
            Ok(s) if s.success() => {}
            other => return Err(format!("daemon rows: root's ssh to seasmoke: {other:?}")),
        }
        let up = std::fs::read_dir(&self.control_dir).map_or(0, |d| d.count());
        if up == 0 {
            return Err("daemon rows: root's ssh left no control master behind".into());
        }
        Ok(())
    }
}

/// Row 6: alice through vermax's nix-daemon.
fn daemon(cfg: &Config, v: ClientNix, rows: &mut Vec<Row>) -> Result<(), String> {
    let root = match v {
        ClientNix::V2_34 => sid_root(),
        _ => trixie_root(),
    };
    let n = 6;
    let lab = start(LabOptions {
        latency: cfg.latency,
        fixtures: vec![Fixture::chain(&chain_name(n), n).output_bytes(1024)],
        ..LabOptions::default()
    })?;
    let client: DaemonClient<'_> = lab
        .start_daemon(DaemonOptions {
            root: Some(root),
            ..DaemonOptions::default()
        })
        .map_err(lab_err("the daemon variant did not start"))?;
    // Inside the chroot /root is LABDIR/daemon/root (mode 700): a root-only directory whose
    // socket paths stay short (a unix socket path holds 107 bytes).
    let control_dir = client.root_home().join(".ssh/cm");
    std::fs::create_dir_all(&control_dir).map_err(|e| format!("{}: {e}", control_dir.display()))?;
    let file = lab.dir().join("daemon/etc/ssh_config");
    let today = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let ssh = RootSsh {
        lab: &lab,
        client: &client,
        declared: declared_ssh_config(&lab, "/root/.ssh/cm")?,
        file,
        today,
        control_dir,
    };
    let x = lab.flake_ref(&chain_name(n));
    let plain = || {
        let mut c = client.command("nix");
        c.args(["build", "--no-link", &x]);
        c
    };
    let nd = || {
        let mut c = client.nixdispatch(&cfg.bin);
        c.args(["--progress", "plain", "build", "--no-link", &x])
            .env(PHASES_LOG.0, PHASES_LOG.1);
        c
    };
    let today = || ssh.set(false);
    let declared = || ssh.set(true);
    let warm = || ssh.warm();
    let ms = cfg.latency.as_millis();
    let mut got = rounds(
        &lab,
        &format!(
            "daemon client: alice builds #{} ({n} drvs) through vermax's nix-daemon (Nix {}), \
             {ms} ms each way, cold (no master left over) and warm (a master up)",
            chain_name(n),
            v.version()
        ),
        cfg.runs_for(true),
        &nothing,
        &[
            Side {
                label: "plain nix, root's ssh as today",
                prepare: &today,
                cmd: &plain,
            },
            Side {
                label: "plain nix, declared root ssh",
                prepare: &declared,
                cmd: &plain,
            },
            Side {
                label: "nixdispatch, declared root ssh",
                prepare: &declared,
                cmd: &nd,
            },
            Side {
                label: "nixdispatch, root's ssh as today",
                prepare: &today,
                cmd: &nd,
            },
            Side {
                label: "plain nix, declared root ssh, master up",
                prepare: &warm,
                cmd: &plain,
            },
            Side {
                label: "nixdispatch, declared root ssh, master up",
                prepare: &warm,
                cmd: &nd,
            },
        ],
    )?;
    let nd_warm = got.pop().unwrap_or_default();
    let nix_warm = got.pop().unwrap_or_default();
    let nd_today = got.pop().unwrap_or_default();
    let nd_declared = got.pop().unwrap_or_default();
    let nix_declared = got.pop().unwrap_or_default();
    let nix_today = got.pop().unwrap_or_default();
    let title = |what: &str| {
        format!(
            "daemon client (alice, non-root): remote #{} ({n} drvs), {ms} ms; nixdispatch with \
             the declared root ssh config vs plain nix {what}",
            chain_name(n)
        )
    };
    let nd_text =
        "nixdispatch build --no-link X   (as alice; root's ssh config from lib.sshConfig)";
    let mut row = Row::new(
        "daemon-today",
        "daemon",
        title("as users run it today (no persisting master)"),
        v,
        Target::RatioAtMost(0.8),
    )
    .commands(
        "nix build --no-link X   (as alice; root's ssh config without a master)",
        nd_text,
    );
    let nix_today_again = nix_today.clone();
    row.nix = nix_today;
    row.nd = nd_declared.clone();
    row.extras.push(Extra {
        key: "nd-today",
        what: "nixdispatch with root's ssh as today".into(),
        command: "nixdispatch build --no-link X   (as alice; no master)".into(),
        samples: nd_today,
    });
    note_modes(&mut row);
    rows.push(row);
    let mut row = Row::new(
        "daemon-declared",
        "daemon",
        title("given the same root ssh config"),
        v,
        Target::RatioAtMost(1.05),
    )
    .commands(
        "nix build --no-link X   (as alice; root's ssh config from lib.sshConfig)",
        nd_text,
    );
    row.nix = nix_declared;
    row.nd = nd_declared;
    note_modes(&mut row);
    rows.push(row);
    // Warm: a master up from an earlier build, as within ControlPersist of the last one.
    let mut row = Row::new(
        "daemon-today-warm",
        "daemon",
        title("as users run it today; nixdispatch's master already up from an earlier build"),
        v,
        Target::RatioAtMost(0.8),
    )
    .commands(
        "nix build --no-link X   (as alice; root's ssh config without a master)",
        "nixdispatch build --no-link X   (as alice; declared root ssh config, master up)",
    );
    row.nix = nix_today_again;
    row.nd = nd_warm.clone();
    note_modes(&mut row);
    rows.push(row);
    let mut row = Row::new(
        "daemon-declared-warm",
        "daemon",
        title("given the same root ssh config, both with a master up from an earlier build"),
        v,
        Target::RatioAtMost(1.05),
    )
    .commands(
        "nix build --no-link X   (as alice; declared root ssh config, master up)",
        "nixdispatch build --no-link X   (as alice; declared root ssh config, master up)",
    );
    row.nix = nix_warm;
    row.nd = nd_warm;
    note_modes(&mut row);
    rows.push(row);
    drop(client);
    drop(lab);
    Ok(())
}

// ----- scraps ------------------------------------------------------------------------------------

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
    if modes.is_empty() {
        return;
    }
    row.notes.push(format!(
        "nixdispatch chose mode {}",
        if uniq.len() == 1 {
            uniq[0].clone()
        } else {
            modes.join("/")
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_counts() {
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
    }
}
