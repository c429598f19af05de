//! `nixdispatch-lab`: the two-host lab for people.
//!
//! ```text
//! nixdispatch-lab up [--latency-ms N] [--bandwidth-kbps N] [--http-cache] [--builder-signs] [--builders-in-nix]
//!                    [--daemon] [--nixdispatch PATH] [--builder-nix 2.26|2.34]           start a lab, print how to use it, wait for Ctrl-C
//! nixdispatch-lab down [--lab DIR]                  stop it from another terminal
//! nixdispatch-lab fault none|down|tarpit|stall|hostkey|auth [--lab DIR]
//! nixdispatch-lab latency MS [--lab DIR]            one-way delay each direction
//! nixdispatch-lab bandwidth KBPS|off [--lab DIR]     cap the link to seasmoke, each direction
//! nixdispatch-lab kill-builder|restart-builder [--lab DIR]
//! nixdispatch-lab demo --nixdispatch PATH [--client 2.34|2.26|2.8]   (default 2.34, current Nix)
//! nixdispatch-lab bench --nixdispatch PATH [--runs N] [--latency-ms MS] [--json]
//! ```

// As in the library (and the main crate): no unwrap, expect or panic outside tests.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nixdispatch_lab::{BuilderNix, ClientNix, Fault, Lab, LabError, LabOptions};

mod bench;

const USAGE: &str = "\
nixdispatch-lab: a two-host Nix lab on this machine (seasmoke the builder, vermax the client)

usage:
  nixdispatch-lab up [--latency-ms N] [--bandwidth-kbps N] [--http-cache] [--builder-signs] [--builders-in-nix]
                     [--daemon] [--nixdispatch PATH] [--builder-nix 2.26|2.34]
        start a lab, print how to use it, and keep it up until Ctrl-C (or `down`)
  nixdispatch-lab down [--lab DIR]
  nixdispatch-lab fault none|down|tarpit|stall|hostkey|auth [--lab DIR]
  nixdispatch-lab latency MS [--lab DIR]       one-way delay added in each direction
  nixdispatch-lab bandwidth KBPS|off [--lab DIR]
        cap the link to seasmoke at KBPS kilobytes (1000 bytes) per second each way
  nixdispatch-lab kill-builder|restart-builder [--lab DIR]
  nixdispatch-lab demo --nixdispatch PATH [--client 2.34|2.26|2.8]
        `nixdispatch home` three times: seasmoke empty, seasmoke holding the result, seasmoke down
  nixdispatch-lab bench --nixdispatch PATH [--runs N] [--latency-ms MS] [--json] (bench --help)
        nixdispatch against plain nix on fresh labs: medians and ratios

Without --lab, commands address the one lab that `up` started (with several, say which). Needs root.";

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "up" => up(rest),
        "down" => control(rest, "down"),
        "fault" | "latency" | "bandwidth" => match rest.first() {
            Some(v) => control(&rest[1..], &format!("{cmd} {v}")),
            None => Err(format!("{cmd}: which one? (see --help)")),
        },
        "kill-builder" | "restart-builder" => control(rest, cmd),
        "demo" => demo(rest),
        "bench" => bench::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nixdispatch-lab: {e}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` from `args`.
fn opt<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn flag(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name)
}

fn check_args(args: &[String], flags: &[&str], opts: &[&str]) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if opts.contains(&a) {
            if i + 1 >= args.len() {
                return Err(format!("{a} needs a value"));
            }
            i += 2;
        } else if flags.contains(&a) {
            i += 1;
        } else {
            return Err(format!("unexpected argument {a:?} (see --help)"));
        }
    }
    Ok(())
}

/// Labs started by `nixdispatch-lab up` that answer on their control socket.
fn running_labs() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut labs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nixdispatch-lab-"))
                && UnixStream::connect(p.join("control.sock")).is_ok()
        })
        .collect();
    labs.sort();
    labs
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn default_nixdispatch() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let sibling = exe.parent()?.join("nixdispatch");
    sibling.exists().then_some(sibling)
}

fn start_lab(opts: LabOptions) -> Result<Lab, String> {
    Lab::start(opts).map_err(|e| match e {
        LabError::NotRoot => e.to_string(),
        other => format!("the lab did not start: {other}"),
    })
}

fn up(args: &[String]) -> Result<(), String> {
    check_args(
        args,
        &[
            "--http-cache",
            "--builder-signs",
            "--builders-in-nix",
            "--daemon",
        ],
        &[
            "--latency-ms",
            "--bandwidth-kbps",
            "--nixdispatch",
            "--builder-nix",
        ],
    )?;
    let bandwidth = match opt(args, "--bandwidth-kbps") {
        Some(v) => parse_bandwidth(v).map_err(|e| format!("--{e}"))?,
        None => None,
    };
    let builder_nix = match opt(args, "--builder-nix").unwrap_or("2.26") {
        "2.26" => BuilderNix::V2_26,
        "2.34" => BuilderNix::V2_34,
        other => return Err(format!("--builder-nix {other:?}: 2.26 or 2.34")),
    };
    let latency_ms: u64 = match opt(args, "--latency-ms") {
        Some(v) => v
            .parse()
            .map_err(|_| format!("--latency-ms {v:?}: a number of milliseconds"))?,
        None => 0,
    };
    let opts = LabOptions {
        latency: Duration::from_millis(latency_ms),
        bandwidth,
        http_cache: flag(args, "--http-cache"),
        builder_signs: flag(args, "--builder-signs"),
        configure_builders_in_nix: flag(args, "--builders-in-nix"),
        builder_nix,
        ..LabOptions::default()
    };
    install_signal_handlers();
    let t0 = Instant::now();
    let lab = Arc::new(start_lab(opts)?);
    let nixdispatch = opt(args, "--nixdispatch")
        .map(PathBuf::from)
        .or_else(default_nixdispatch);
    let installed = match &nixdispatch {
        Some(bin) => Some(lab.install_nixdispatch(bin).map_err(|e| e.to_string())?),
        None => None,
    };
    let sock_path = lab.dir().join("control.sock");
    let listener = UnixListener::bind(&sock_path).map_err(|e| format!("control socket: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket: {e}"))?;

    print_usage(&lab, installed.as_deref(), t0.elapsed());
    let daemon = if flag(args, "--daemon") {
        let d = lab
            .start_daemon(nixdispatch_lab::DaemonOptions::default())
            .map_err(|e| e.to_string())?;
        println!(
            "A multi-user vermax (nix-daemon as root, root-only builder key; alice is trusted):\n  {}/bin/vermax-daemon      a shell as alice (or append a command)\n",
            lab.dir().display()
        );
        Some(d)
    } else {
        None
    };

    while !STOP.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((conn, _)) => {
                if handle_control(&lab, conn) {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(format!("control socket: {e}")),
        }
    }
    eprintln!(
        "nixdispatch-lab: stopping the lab in {}",
        lab.dir().display()
    );
    drop(listener);
    drop(daemon);
    drop(lab);
    eprintln!("nixdispatch-lab: down");
    Ok(())
}

/// Executes one control line; returns true when the lab should go down.
fn handle_control(lab: &Lab, conn: UnixStream) -> bool {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = String::new();
    let mut reader = BufReader::new(&conn);
    if reader.read_line(&mut line).is_err() {
        return false;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let (reply, stop) = match words.as_slice() {
        ["down"] => ("ok: stopping".to_string(), true),
        ["fault", name] => match parse_fault(name) {
            Some(f) => match lab.try_set_fault(f) {
                Ok(()) => {
                    eprintln!("nixdispatch-lab: fault {f:?}");
                    (format!("ok: fault {f:?}"), false)
                }
                Err(e) => (format!("error: {e}"), false),
            },
            None => (
                format!("error: unknown fault {name:?} (none, down, tarpit, stall, hostkey, auth)"),
                false,
            ),
        },
        ["latency", ms] => match ms.parse::<u64>() {
            Ok(ms) => {
                lab.set_latency(Duration::from_millis(ms));
                eprintln!("nixdispatch-lab: latency {ms} ms each way");
                (format!("ok: latency {ms} ms each way"), false)
            }
            Err(_) => (format!("error: latency {ms:?}: milliseconds"), false),
        },
        ["bandwidth", kbps] => match parse_bandwidth(kbps) {
            Ok(cap) => {
                lab.set_bandwidth(cap);
                let said = bandwidth_words(cap);
                eprintln!("nixdispatch-lab: bandwidth {said}");
                (format!("ok: bandwidth {said}"), false)
            }
            Err(e) => (format!("error: {e}"), false),
        },
        ["kill-builder"] => {
            lab.kill_builder();
            eprintln!("nixdispatch-lab: seasmoke killed");
            ("ok: seasmoke killed".to_string(), false)
        }
        ["restart-builder"] => match lab.restart_builder() {
            Ok(()) => {
                eprintln!("nixdispatch-lab: seasmoke restarted");
                ("ok: seasmoke restarted".to_string(), false)
            }
            Err(e) => (format!("error: {e}"), false),
        },
        _ => (
            format!("error: unknown control command {:?}", line.trim()),
            false,
        ),
    };
    let mut w = &conn;
    let _ = writeln!(w, "{reply}");
    stop
}

/// `KBPS` (kilobytes of 1000 bytes per second) or `off`, as bytes per second.
fn parse_bandwidth(text: &str) -> Result<Option<u64>, String> {
    if text == "off" {
        return Ok(None);
    }
    match text.parse::<u64>() {
        Ok(kbps) if kbps > 0 => Ok(Some(kbps * 1000)),
        _ => Err(format!(
            "bandwidth {text:?}: kilobytes per second (a whole number above 0), or off"
        )),
    }
}

fn bandwidth_words(cap: Option<u64>) -> String {
    match cap {
        Some(b) => format!("{} kB/s each way", b / 1000),
        None => "unlimited".to_string(),
    }
}

fn parse_fault(name: &str) -> Option<Fault> {
    Some(match name {
        "none" => Fault::None,
        "down" => Fault::Down,
        "tarpit" => Fault::Tarpit,
        "hostkey" | "host-key-changed" => Fault::HostKeyChanged,
        "auth" | "auth-refused" => Fault::AuthRefused,
        "stall" => Fault::Stall,
        _ => return None,
    })
}

fn control(args: &[String], line: &str) -> Result<(), String> {
    check_args(args, &[], &["--lab"])?;
    let dir = match opt(args, "--lab") {
        Some(d) => PathBuf::from(d),
        None => match running_labs().as_slice() {
            [] => return Err("no lab is up (nixdispatch-lab up starts one)".into()),
            [one] => one.clone(),
            many => {
                let list: Vec<String> = many.iter().map(|p| p.display().to_string()).collect();
                return Err(format!(
                    "{} labs are up; say which with --lab DIR:\n  {}",
                    many.len(),
                    list.join("\n  ")
                ));
            }
        },
    };
    let sock = dir.join("control.sock");
    let mut conn = UnixStream::connect(&sock)
        .map_err(|e| format!("no lab answers at {}: {e}", sock.display()))?;
    writeln!(conn, "{line}").map_err(|e| e.to_string())?;
    let mut reply = String::new();
    BufReader::new(&conn)
        .read_line(&mut reply)
        .map_err(|e| e.to_string())?;
    let reply = reply.trim();
    if let Some(err) = reply.strip_prefix("error: ") {
        return Err(err.to_string());
    }
    println!("{}", reply.strip_prefix("ok: ").unwrap_or(reply));
    if line == "down" {
        // Wait until the lab directory is gone.
        let t0 = Instant::now();
        while dir.exists() && t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn print_usage(lab: &Lab, nixdispatch: Option<&Path>, took: Duration) {
    let d = lab.dir().display();
    let opts = lab.options();
    let builder_nix = match opts.builder_nix {
        BuilderNix::V2_26 => "2.26.3",
        BuilderNix::V2_34 => "2.34.8 (the sid root)",
    };
    let latency = if opts.latency.is_zero() {
        "no added latency".to_string()
    } else {
        format!("{} ms added each way", opts.latency.as_millis())
    };
    let latency = match opts.bandwidth {
        Some(_) => format!("{latency}, {}", bandwidth_words(opts.bandwidth)),
        None => latency,
    };
    let cache_role = if opts.http_cache {
        "the client's substituter"
    } else {
        "not a substituter unless you pass --substituters; `up --http-cache` makes it one"
    };
    let builders = if opts.configure_builders_in_nix {
        "set in the client's nix config (builders = ...)"
    } else {
        "not in the client's nix config; pass --builder (nixdispatch) or --builders (nix)"
    };
    println!(
        "nixdispatch lab is up in {took:.1?}: {d}  (pid {pid})

  seasmoke   builder, Nix {builder_nix}, sshd behind a proxy on 127.0.0.1:{port} ({latency})
             ssh -F {d}/ssh_config seasmoke        builder spec: {spec}
             builders are {builders}
  upstream   HTTP binary cache {cache}, {cache_role}
  fixtures   {flake}  (#hello #chain #wide #big #fail #slow, homeConfigurations.\"root@vermax\",
             nixosConfigurations.vermax)

A shell on vermax, the client (or append a command):
  {d}/bin/vermax-2.26      Nix 2.26 + nh, chroot of the trixie root
  {d}/bin/vermax-2.34      Nix 2.34 + nh, chroot of the sid root
  {d}/bin/vermax-2.8       this machine's Nix 2.8
and, inside it, for example:
  {nd} plan {flake}#chain
  {nd} home --flake {flake}
  nix build --no-link --max-jobs 0 --builders '{spec}' {flake}#chain
seasmoke's own store, without ssh:  {d}/bin/seasmoke nix path-info --all

The scripts set this environment (and give vermax its own /nix, which a plain export cannot):",
        pid = std::process::id(),
        port = lab.builder_port(),
        spec = lab.builder_spec(),
        cache = lab.cache_url(),
        flake = lab.flake(),
        nd = if nixdispatch.is_some() {
            "nixdispatch"
        } else {
            "nixdispatch (not copied in: pass --nixdispatch PATH)"
        },
    );
    // Not NIXDISPATCH_LAB: it marks the lab's processes, which die with the lab.
    for (k, v) in lab.client_env() {
        if !matches!(k.as_str(), "PATH" | "LANG" | "NIXDISPATCH_LAB") {
            println!("export {k}='{}'", v.trim_end());
        }
    }
    println!(
        "
From another terminal:  nixdispatch-lab fault down|tarpit|stall|hostkey|auth|none
                        nixdispatch-lab latency MS | bandwidth KBPS|off
                        nixdispatch-lab kill-builder | restart-builder
Ctrl-C here (or nixdispatch-lab down) stops the lab, ends the shells inside it and removes {d}."
    );
}

/// `nixdispatch home` three times on the lab's home-manager fixture.
fn demo(args: &[String]) -> Result<(), String> {
    check_args(args, &[], &["--nixdispatch", "--client", "--latency-ms"])?;
    let bin = opt(args, "--nixdispatch")
        .map(PathBuf::from)
        .or_else(default_nixdispatch)
        .ok_or("demo: --nixdispatch PATH is needed")?;
    let client = match opt(args, "--client").unwrap_or("2.34") {
        "2.26" => ClientNix::V2_26,
        "2.8" => ClientNix::V2_8,
        "2.34" => ClientNix::V2_34,
        other => return Err(format!("--client {other:?}: 2.34, 2.26 or 2.8")),
    };
    let latency_ms: u64 = opt(args, "--latency-ms")
        .map(|v| v.parse().map_err(|_| format!("--latency-ms {v:?}")))
        .transpose()?
        .unwrap_or(30);
    install_signal_handlers();
    let lab = start_lab(LabOptions {
        latency: Duration::from_millis(latency_ms),
        configure_builders_in_nix: true,
        ..LabOptions::default()
    })?;
    println!(
        "nixdispatch demo: lab in {} (seasmoke behind {latency_ms} ms each way; client Nix {})\n",
        lab.dir().display(),
        client.version()
    );
    let steps = [
        "1. seasmoke is empty: expect a remote build there",
        "2. seasmoke holds the result, the client does not: expect a copy, no build",
        "3. seasmoke is down (connection refused): expect a local build, no hang",
    ];
    let mut failures = 0;
    for (i, title) in steps.iter().enumerate() {
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        if i > 0 {
            // A fresh client each time, so there is something to fetch or build.
            lab.reset_client(client).map_err(|e| e.to_string())?;
        }
        if i == 2 {
            lab.try_set_fault(Fault::Down).map_err(|e| e.to_string())?;
        }
        println!("=== {title}");
        println!("$ nixdispatch home --flake {}", lab.flake());
        let t0 = Instant::now();
        let mut c = lab
            .try_nixdispatch(client, &bin)
            .map_err(|e| e.to_string())?;
        c.args(["home", "--flake", &lab.flake()]);
        if let Ok(term) = std::env::var("TERM") {
            c.env("TERM", term);
        }
        let status = c
            .status()
            .map_err(|e| format!("running nixdispatch: {e}"))?;
        println!(
            "=== {} after {:.1?}; activation marker: {}\n",
            status,
            t0.elapsed(),
            lab.marker("home-activated")
                .unwrap_or_else(|| "(none)".into())
        );
        if !status.success() {
            failures += 1;
        }
        let _ = std::fs::remove_file(lab.markers_dir().join("home-activated"));
    }
    drop(lab);
    if failures > 0 {
        return Err(format!("demo: {failures} of 3 runs failed"));
    }
    Ok(())
}
