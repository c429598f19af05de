//! The `cost` rows (issue 22: choosing by cost, not only by presence), on one lab whose link to
//! seasmoke and whose HTTP cache the bench caps between rows. X is a fixture of the lab flake;
//! `<spec>` is [`Lab::builder_spec`]. nixdispatch runs with a history of its own per row and
//! client (`XDG_STATE_HOME` in the lab), seeded by untimed runs where the row says so.
//!
//! 1. `cost-slow`: seasmoke behind 1 MB/s each way, `#costheavy` (two quick leaves of 6 MB and
//!    their root). Plain nix with its defaults, free to build here too (`nix build --no-link
//!    --builders '<spec>' X`), against nixdispatch once its history knows both sides (seeded with
//!    one run through seasmoke and one `--mode local`). Target ≤ 0.5.
//! 2. `cost-fast`: no cap, `#costlong` (two leaves sleeping 4 s, their root). Plain nix sending
//!    every build to seasmoke (`--max-jobs 0`, what nixdispatch did before it weighed anything)
//!    against nixdispatch with a seeded history: still remote, no slower than plain nix (target
//!    ≤ 1.1: nixdispatch's probe and planning are a fixed few tenths of a second), and beside it
//!    nixdispatch `--mode remote` (no weighing: what it did before a history existed). The lab
//!    cannot make seasmoke a faster machine: both sides sleep the same, so the row shows that a
//!    history does not take long builds away from the builder, not that a faster one wins.
//! 3. `cost-cache`: the HTTP cache serves at 1 MB/s, seasmoke's link is not capped; both hold
//!    `#costbig` (10 MB, seasmoke signs). Plain nix (`--builders '<spec>'`, the cache its
//!    substituter) against nixdispatch once its history measured both (seeded with one run that
//!    substitutes from the cache and one build copied back from seasmoke). Target ≤ 0.5.
//! 4. `cost-first`: as `cost-slow`, with an empty history every run: nixdispatch must do what it
//!    did before weighing anything (remote, `--max-jobs 0`) and say no estimate was used (the
//!    notes count it). Against plain nix `--max-jobs 0`, target ≤ 1.1 (as row 2).
//! 5. `cost-noisy`: the link's cap changes between runs (2 MB/s, 500 kB/s, 8 MB/s, 1 MB/s) on
//!    `#costnoisy` (two 1 s leaves of 2 MB). At each cap: plain nix (defaults) and nixdispatch
//!    (auto, history seeded at 1 MB/s and learning as it goes), then nixdispatch forced local and
//!    forced remote for the best choice in hindsight. The notes give, per cap and in all, the
//!    regret (the forced run of the mode chosen against the best forced run: what the choice
//!    cost; nixdispatch's probe and weighing are given apart) and each mode's estimate (from
//!    `plan --json` just before) against its forced run. Target ≤ 1.0 against plain nix.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use nixdispatch_lab::{ClientNix, Fixture, Lab, LabOptions};

use super::measure::{one, rounds, Sample, Side, NO_CAP};
use super::scenarios::{lab_err, nix_cmd, renew, Extra, Row, Target};
use super::{interrupted, Config};

const SLOW_LINK: u64 = 1_000_000;
const NOISY_CAPS: [u64; 4] = [2_000_000, 500_000, 8_000_000, 1_000_000];

fn row(key: &str, title: String, v: ClientNix, target: f64, nix: &str, nd: &str) -> Row {
    Row {
        key: key.to_string(),
        scenario: "cost",
        title,
        client: v.version(),
        nix_cmd: nix.to_string(),
        nd_cmd: nd.to_string(),
        nix: Vec::new(),
        nd: Vec::new(),
        target: Target::RatioAtMost(target),
        notes: Vec::new(),
        extras: Vec::new(),
    }
}

/// nixdispatch with the history in `state`.
fn nd(cfg: &Config, lab: &Lab, v: ClientNix, state: &PathBuf, args: &[&str]) -> Command {
    let mut c = lab.nixdispatch(v, &cfg.bin);
    c.env("XDG_STATE_HOME", state)
        .args(["--progress", "plain"])
        .args(args);
    c
}

/// An untimed run that must succeed (seeding a history, filling a store).
fn untimed(what: &str, mut c: Command) -> Result<String, String> {
    interrupted()?;
    c.stdin(Stdio::null());
    let out = c.output().map_err(|e| format!("{what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    eprintln!("bench:   ({what}, untimed)");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Teaches the history both sides of a row: one run of `auto` through seasmoke and one of
/// `x` built here, each on renewed stores.
fn seed_both_sides(
    cfg: &Config,
    lab: &Lab,
    v: ClientNix,
    state: &PathBuf,
    auto: &[&str],
    x: &str,
) -> Result<(), String> {
    renew(lab)?;
    untimed(
        "seeding: nixdispatch through seasmoke",
        nd(cfg, lab, v, state, auto),
    )?;
    renew(lab)?;
    untimed(
        "seeding: nixdispatch --mode local",
        nd(
            cfg,
            lab,
            v,
            state,
            &["--mode", "local", "build", "--no-link", x],
        ),
    )?;
    Ok(())
}

fn state(lab: &Lab, key: &str, v: ClientNix) -> PathBuf {
    lab.dir().join(format!("bench-state/{key}-{}", v.version()))
}

/// The `mode: ...` line's reason in nixdispatch's stderr.
fn reason(s: &Sample) -> String {
    s.stderr
        .lines()
        .find_map(|l| l.strip_prefix("mode: "))
        .unwrap_or("")
        .to_string()
}

fn note_modes(row: &mut Row) {
    let modes: Vec<String> = row
        .nd
        .iter()
        .map(|s| s.mode.clone().unwrap_or_else(|| "?".into()))
        .collect();
    if modes.is_empty() {
        return;
    }
    row.notes
        .push(format!("nixdispatch chose mode {}", modes.join("/")));
    if let Some(s) = row.nd.last() {
        row.notes.push(format!("its reason: {}", reason(s)));
    }
}

fn pair(
    lab: &Lab,
    row: &mut Row,
    runs: usize,
    prepare: &dyn Fn() -> Result<(), String>,
    plain: &dyn Fn() -> Command,
    ours: &dyn Fn() -> Command,
) -> Result<(), String> {
    pair_and(lab, row, runs, prepare, plain, ours, None)
}

/// [`pair`], with a third side measured in the same rounds into the row's extras.
fn pair_and(
    lab: &Lab,
    row: &mut Row,
    runs: usize,
    prepare: &dyn Fn() -> Result<(), String>,
    plain: &dyn Fn() -> Command,
    ours: &dyn Fn() -> Command,
    extra: Option<(&'static str, &str, &dyn Fn() -> Command)>,
) -> Result<(), String> {
    let heading = format!("{} (Nix {} client)", row.title, row.client);
    let nothing = || Ok(());
    let mut sides = vec![
        Side {
            label: "plain nix",
            prepare,
            cmd: plain,
        },
        Side {
            label: "nixdispatch",
            prepare,
            cmd: ours,
        },
    ];
    if let Some((_, command, cmd)) = extra {
        sides.push(Side {
            label: command,
            prepare,
            cmd,
        });
    }
    let mut got = rounds(lab, &heading, runs, &nothing, &sides)?;
    if let Some((key, command, _)) = extra {
        row.extras.push(Extra {
            key,
            what: "beside it".into(),
            command: command.to_string(),
            samples: got.pop().unwrap_or_default(),
        });
    }
    row.nd = got.pop().unwrap_or_default();
    row.nix = got.pop().unwrap_or_default();
    Ok(())
}

/// Every `cost` row, on one lab.
pub fn rows(cfg: &Config, rows: &mut Vec<Row>) -> Result<(), String> {
    let lab = Lab::start(LabOptions {
        latency: cfg.latency,
        http_cache: true,
        builder_signs: true,
        fixtures: vec![
            Fixture::wide("costheavy", 2).output_bytes(6_000_000),
            Fixture::wide("costlong", 2).build_secs(4.0),
            Fixture::single("costbig").output_bytes(10_000_000),
            Fixture::single("costsized").output_bytes(2_000_000),
            Fixture::wide("costnoisy", 2)
                .build_secs(1.0)
                .output_bytes(2_000_000),
        ],
        ..LabOptions::default()
    })
    .map_err(|e| format!("the lab did not start: {e}"))?;
    let spec = lab.builder_spec();
    let ms = cfg.latency.as_millis();
    let auto = |x: &str| -> Vec<String> {
        ["--builder", &spec, "build", "--no-link", x]
            .map(String::from)
            .to_vec()
    };
    for &v in &cfg.clients {
        // 1. slow link, quick builds with large outputs.
        lab.set_bandwidth(Some(SLOW_LINK));
        let x = lab.flake_ref("costheavy");
        let st = state(&lab, "cost-slow", v);
        let mut r = row(
            "cost-slow",
            format!(
                "cost: #costheavy (two quick 6 MB leaves + root), seasmoke behind 1 MB/s and \
                 {ms} ms; nixdispatch's history knows both sides"
            ),
            v,
            0.5,
            "nix build --no-link --builders '<spec>' X   (nix defaults: local jobs allowed)",
            "nixdispatch --builder '<spec>' build --no-link X   (history seeded)",
        );
        let args = auto(&x);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        seed_both_sides(cfg, &lab, v, &st, &args, &x)?;
        pair(
            &lab,
            &mut r,
            cfg.runs,
            &|| renew(&lab),
            &|| nix_cmd(&lab, v, &["build", "--no-link", "--builders", &spec, &x]),
            &|| nd(cfg, &lab, v, &st, &args),
        )?;
        note_modes(&mut r);
        rows.push(r);

        // 4. the same, first run: no history.
        let st = state(&lab, "cost-first", v);
        let mut r = row(
            "cost-first",
            format!(
                "cost: #costheavy behind 1 MB/s and {ms} ms, nixdispatch with an empty history \
                 (today's rule)"
            ),
            v,
            1.1,
            "nix build --no-link --max-jobs 0 --builders '<spec>' X",
            "nixdispatch --builder '<spec>' build --no-link X   (empty history)",
        );
        let fresh = || -> Result<(), String> {
            match std::fs::remove_dir_all(&st) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(format!("{}: {e}", st.display()))
                }
                _ => {}
            }
            renew(&lab)
        };
        pair(
            &lab,
            &mut r,
            cfg.runs,
            &fresh,
            &|| remote_only(&lab, v, &spec, &x),
            &|| nd(cfg, &lab, v, &st, &args),
        )?;
        note_modes(&mut r);
        let said =
            r.nd.iter()
                .filter(|s| reason(s).contains("no estimate was used"))
                .count();
        r.notes.push(format!(
            "the reason said no estimate was used in {said} of {} runs",
            r.nd.len()
        ));
        rows.push(r);

        // 2. fast link, long builds.
        lab.set_bandwidth(None);
        let x = lab.flake_ref("costlong");
        let st = state(&lab, "cost-fast", v);
        let mut r = row(
            "cost-fast",
            format!(
                "cost: #costlong (two 4 s leaves + root), no cap, {ms} ms; nixdispatch's \
                 history knows both sides"
            ),
            v,
            1.1,
            "nix build --no-link --max-jobs 0 --builders '<spec>' X",
            "nixdispatch --builder '<spec>' build --no-link X   (history seeded)",
        );
        let args = auto(&x);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        seed_both_sides(cfg, &lab, v, &st, &args, &x)?;
        let forced = [
            "--builder",
            spec.as_str(),
            "--mode",
            "remote",
            "build",
            "--no-link",
            &x,
        ];
        pair_and(
            &lab,
            &mut r,
            cfg.runs,
            &|| renew(&lab),
            &|| remote_only(&lab, v, &spec, &x),
            &|| nd(cfg, &lab, v, &st, &args),
            Some((
                "forced",
                "nixdispatch --builder '<spec>' --mode remote build --no-link X",
                &|| nd(cfg, &lab, v, &st, &forced),
            )),
        )?;
        note_modes(&mut r);
        rows.push(r);

        // 3. a slow cache and a fast builder holding the same large output.
        lab.set_cache_bandwidth(Some(SLOW_LINK));
        let x = lab.flake_ref("costbig");
        let st = state(&lab, "cost-cache", v);
        let mut r = row(
            "cost-cache",
            format!(
                "cost: #costbig (10 MB) in the HTTP cache at 1 MB/s and in seasmoke's store \
                 (signed, no cap, {ms} ms); nixdispatch's history measured both"
            ),
            v,
            0.5,
            "nix build --no-link --builders '<spec>' X   (the cache its substituter)",
            "nixdispatch --builder '<spec>' build --no-link X   (history seeded)",
        );
        let both_hold = || -> Result<(), String> {
            renew(&lab)?;
            lab.push_to_cache(&x)
                .map_err(lab_err("filling the cache"))?;
            lab.build_on_builder(&x)
                .map_err(lab_err("seeding seasmoke"))?;
            Ok(())
        };
        let args = auto(&x);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        both_hold()?;
        untimed(
            "seeding: nixdispatch from the cache",
            nd(cfg, &lab, v, &st, &args),
        )?;
        renew(&lab)?;
        let sized = lab.flake_ref("costsized");
        untimed(
            "seeding: nixdispatch building #costsized on seasmoke",
            nd(
                cfg,
                &lab,
                v,
                &st,
                &auto(&sized).iter().map(String::as_str).collect::<Vec<_>>(),
            ),
        )?;
        pair(
            &lab,
            &mut r,
            cfg.runs,
            &both_hold,
            &|| nix_cmd(&lab, v, &["build", "--no-link", "--builders", &spec, &x]),
            &|| nd(cfg, &lab, v, &st, &args),
        )?;
        note_modes(&mut r);
        let nars = |s: &[Sample]| s.iter().map(|s| s.cache).collect::<Vec<_>>();
        r.notes.push(format!(
            "HTTP cache requests per run: plain nix {:?}, nixdispatch {:?}",
            nars(&r.nix),
            nars(&r.nd)
        ));
        rows.push(r);
        lab.set_cache_bandwidth(None);

        // 5. a noisy link: regret and the estimate's error.
        noisy(cfg, &lab, v, &spec, rows)?;
        lab.set_bandwidth(None);
    }
    drop(lab);
    Ok(())
}

/// `nix build --no-link --max-jobs 0 --builders SPEC X`.
fn remote_only(lab: &Lab, v: ClientNix, spec: &str, x: &str) -> Command {
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

/// The estimate `plan --json` gave for `mode`, seconds.
fn estimate(plan: &serde_json::Value, mode: &str) -> Option<f64> {
    plan["estimates"]
        .as_array()?
        .iter()
        .find(|e| e["mode"] == mode)?["secs"]
        .as_f64()
}

/// Row 5: the link's cap changes between runs.
fn noisy(
    cfg: &Config,
    lab: &Lab,
    v: ClientNix,
    spec: &str,
    rows: &mut Vec<Row>,
) -> Result<(), String> {
    let x = lab.flake_ref("costnoisy");
    let st = state(lab, "cost-noisy", v);
    let caps: Vec<String> = NOISY_CAPS
        .iter()
        .map(|c| format!("{} kB/s", c / 1000))
        .collect();
    let mut r = row(
        "cost-noisy",
        format!(
            "cost: #costnoisy (two 1 s leaves of 2 MB + root), the link's cap changing between \
             runs ({}), {} ms; nixdispatch's history seeded once at 1 MB/s and learning",
            caps.join(", "),
            cfg.latency.as_millis()
        ),
        v,
        1.0,
        "nix build --no-link --builders '<spec>' X   (nix defaults)",
        "nixdispatch --builder '<spec>' build --no-link X",
    );
    let auto = ["--builder", spec, "build", "--no-link", &x];
    lab.set_bandwidth(Some(SLOW_LINK));
    seed_both_sides(cfg, lab, v, &st, &auto, &x)?;
    eprintln!(
        "bench: {} (Nix {} client), 1 run per cap",
        r.title,
        v.version()
    );
    let prepare = || renew(lab);
    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let mut regrets = Vec::new();
    let mut overheads = Vec::new();
    let errors = std::cell::RefCell::new(Vec::new());
    let mut right = 0;
    let mut lines = Vec::new();
    for cap in NOISY_CAPS {
        interrupted()?;
        lab.set_bandwidth(Some(cap));
        renew(lab)?;
        let plan_out = untimed(
            "nixdispatch plan --json",
            nd(cfg, lab, v, &st, &["--builder", spec, "plan", "--json", &x]),
        )?;
        let plan: serde_json::Value = serde_json::from_str(plan_out.trim()).unwrap_or_default();
        let kb = cap / 1000;
        let plain = one(
            lab,
            &format!("{kb} kB/s plain nix"),
            &prepare,
            nix_cmd(lab, v, &["build", "--no-link", "--builders", spec, &x]),
            NO_CAP,
        )?;
        let ours = one(
            lab,
            &format!("{kb} kB/s nixdispatch"),
            &prepare,
            nd(cfg, lab, v, &st, &auto),
            NO_CAP,
        )?;
        let here = one(
            lab,
            &format!("{kb} kB/s nixdispatch --mode local"),
            &prepare,
            nd(
                cfg,
                lab,
                v,
                &st,
                &["--mode", "local", "build", "--no-link", &x],
            ),
            NO_CAP,
        )?;
        let there = one(
            lab,
            &format!("{kb} kB/s nixdispatch --mode remote"),
            &prepare,
            nd(
                cfg,
                lab,
                v,
                &st,
                &[
                    "--builder",
                    spec,
                    "--mode",
                    "remote",
                    "build",
                    "--no-link",
                    &x,
                ],
            ),
            NO_CAP,
        )?;
        let chosen = ours.mode.clone().unwrap_or_else(|| "?".into());
        let (best, best_secs) = if here.secs <= there.secs {
            ("local", here.secs)
        } else {
            ("remote", there.secs)
        };
        // The choice's regret: the forced run of the mode chosen against the best forced run
        // (nixdispatch's own probe and weighing are counted apart, as overhead).
        let chosen_secs = match chosen.as_str() {
            "local" => here.secs,
            "remote" => there.secs,
            _ => ours.secs,
        };
        let regret = (chosen_secs - best_secs).max(0.0);
        regrets.push(regret);
        overheads.push(ours.secs - chosen_secs);
        if chosen == best {
            right += 1;
        }
        let error = |mode: &str, actual: f64| {
            estimate(&plan, mode).map_or(format!("{mode}: no estimate"), |e| {
                errors.borrow_mut().push((e - actual) / actual);
                format!(
                    "{mode} estimated {e:.1} s, took {actual:.1} s ({:+.0}%)",
                    (e - actual) / actual * 100.0
                )
            })
        };
        lines.push(format!(
            "{kb} kB/s: chose {chosen} ({:.1} s), best in hindsight {best} (local {:.1} s, \
             remote {:.1} s), choice regret {regret:.1} s; {}; {}; plain nix {:.1} s",
            ours.secs,
            here.secs,
            there.secs,
            error("local", here.secs),
            error("remote", there.secs),
            plain.secs
        ));
        r.nix.push(plain);
        r.nd.push(ours);
        local.push(here);
        remote.push(there);
    }
    let total: f64 = regrets.iter().sum();
    let best_total: f64 = local
        .iter()
        .zip(&remote)
        .map(|(a, b)| a.secs.min(b.secs))
        .sum();
    let overhead = overheads.iter().sum::<f64>() / overheads.len().max(1) as f64;
    let errors = errors.into_inner();
    let mean_abs = errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len().max(1) as f64;
    r.notes.push(format!(
        "choices: {right} of {} the best in hindsight; regret {total:.1} s lost against the \
         best forced run at each cap ({best_total:.1} s in all); nixdispatch's probe and \
         weighing on top: {overhead:.1} s a run on average; estimates off by {:.0}% on average \
         (absolute, both modes)",
        NOISY_CAPS.len(),
        mean_abs * 100.0
    ));
    r.notes.extend(lines);
    r.notes.push(
        "an estimate covers the builds and copies only; each forced run it is compared with \
         also evaluates (and, remote, probes): a few tenths of a second here"
            .into(),
    );
    r.extras.push(Extra {
        key: "local",
        what: "nixdispatch --mode local at each cap".into(),
        command: "nixdispatch --mode local build --no-link X".into(),
        samples: local,
    });
    r.extras.push(Extra {
        key: "remote",
        what: "nixdispatch --mode remote at each cap".into(),
        command: "nixdispatch --builder '<spec>' --mode remote build --no-link X".into(),
        samples: remote,
    });
    rows.push(r);
    Ok(())
}
